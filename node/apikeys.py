"""API keys and holder tokens: create, list, revoke, and turn a presented credential into a principal.

Keys are stored as ``HMAC-SM3`` hashes under a node-secret purpose key (:mod:`node.tokens`); the text of a key
is shown once, when it is created. A revoked key stays in the table (with ``revoked_ms``) so the audit log's
actor ids keep meaning something.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import Session

from core.codes import validate_uscc
from core.errors import DocumentError
from node.access import KEY_ROLES, Principal
from node.db.models import ApiKey, HolderToken
from node.errors import AuthenticationError, NotFoundError
from node.tokens import API_KEY_PREFIX, NodeSecrets, new_credential, parse_credential


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """A key as listed: never its secret."""

    key_id: str
    role: str
    institution_uscc: str | None
    label: str
    created_ms: int
    revoked_ms: int | None


def create_key(
    session: Session,
    secrets: NodeSecrets,
    *,
    role: str,
    now_ms: int,
    institution_uscc: str | None = None,
    label: str = "",
) -> tuple[str, KeyInfo]:
    """A new API key: returns its text (shown once) and its listing. ``ValueError`` for a bad role/scope."""
    if role not in KEY_ROLES:
        raise ValueError(f"role must be one of {', '.join(KEY_ROLES)}")
    if (role == "institution") != (institution_uscc is not None):
        raise ValueError("an institution key needs --institution USCC, and only an institution key takes one")
    if institution_uscc is not None:
        try:
            validate_uscc(institution_uscc)
        except DocumentError as exc:
            raise ValueError(f"institution: {exc}") from None
    if len(label) > 100 or any(not ch.isprintable() for ch in label):
        raise ValueError("label must be at most 100 printable characters")
    credential = new_credential(API_KEY_PREFIX)
    row = ApiKey(
        key_id=credential.id,
        secret_hash=secrets.credential_hash(credential),
        role=role,
        institution_uscc=institution_uscc,
        label=label,
        created_ms=now_ms,
    )
    session.add(row)
    session.flush()
    return str(credential), _info(row)


def _info(row: ApiKey) -> KeyInfo:
    return KeyInfo(row.key_id, row.role, row.institution_uscc, row.label, row.created_ms, row.revoked_ms)


def list_keys(session: Session) -> list[KeyInfo]:
    return [_info(row) for row in session.scalars(sa.select(ApiKey).order_by(ApiKey.id))]


def revoke_key(session: Session, key_id: str, now_ms: int) -> KeyInfo:
    """Revoke key ``key_id`` (idempotent); :class:`NotFoundError` if there is no such key."""
    row = session.scalar(sa.select(ApiKey).where(ApiKey.key_id == key_id))
    if row is None:
        raise NotFoundError("API key", key_id)
    if row.revoked_ms is None:
        row.revoked_ms = now_ms
    return _info(row)


def authenticate(session: Session, secrets: NodeSecrets, text: str) -> Principal:
    """The principal a bearer credential stands for; :class:`AuthenticationError` otherwise.

    The same error, without detail, for an unknown id, a wrong secret and a revoked credential.
    """
    try:
        credential = parse_credential(text)
    except ValueError:
        raise AuthenticationError("malformed credential") from None
    if credential.prefix == API_KEY_PREFIX:
        key = session.scalar(sa.select(ApiKey).where(ApiKey.key_id == credential.id))
        if key is None or key.revoked_ms is not None or not secrets.matches(credential, key.secret_hash):
            raise AuthenticationError("unknown or revoked credential")
        role = next((r for r in KEY_ROLES if r == key.role), None)
        if role is None:  # the table's CHECK constraint makes this unreachable
            raise AuthenticationError("unknown or revoked credential")
        return Principal(role, key.key_id, institution_uscc=key.institution_uscc)
    token = session.scalar(sa.select(HolderToken).where(HolderToken.token_id == credential.id))
    if token is None or token.revoked_ms is not None or not secrets.matches(credential, token.secret_hash):
        raise AuthenticationError("unknown or revoked credential")
    return Principal("holder", token.token_id, holder_hash=token.holder_hash)
