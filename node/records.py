"""The province's license records: issuing and lifecycle events, each one unit of work.

Every function here only *adds to the caller's session*; the caller (a request, an import chunk) commits once,
so a license, its version, its event, its outbox entry and its audit entry commit together or not at all.

Issuing (``POST /v1/licenses``, ``licledger node import``), in order:

1. the document is parsed and validated (:func:`core.licenses.parse_document`; each bad field named);
2. its issuer is this node's province and authority (else :class:`DocumentError` on ``issuer.*``);
3. the license (identifier base, GB/T 36904) is not yet registered (else :class:`ConflictError`);
4. a fresh salt and the commitment ``SM3(salt || canonical bytes)`` (:mod:`core.commitment`), the RFC 9162
   leaf hash, and the seal: the province's SM2 signature (:func:`core.seal.seal_document`);
5. rows: license, ``issue`` event, version, institutions, outbox leaf (:mod:`node.outbox`), audit entry;
6. for a natural-person holder, a holder token (:mod:`node.tokens`), returned once.

Events (``POST /v1/licenses/{id}/events``): the license row is locked (``FOR UPDATE``), the transition checked
(:mod:`node.lifecycle`), then either a new version (steps 4-5 with the new document) or a status change
(an outbox status entry citing the current version).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.orm import Session

from core import canonical
from core.errors import DocumentError, EncodingError
from core.licenses import (
    License,
    parse_document,
)
from core.transactions import NEW_VERSION
from node import audit, bulk, lifecycle, outbox
from node.access import Principal
from node.context import NodeContext
from node.db.models import AuditEntry, HolderToken, LicenseEvent, LicenseInstitution, LicenseVersion, Outbox
from node.db.models import License as LicenseRow
from node.errors import ConflictError, InvalidTransitionError, NotFoundError
from node.sealing import Rejected, Sealed, Sealer, SealingPool, institutions_of
from node.tokens import HOLDER_TOKEN_PREFIX, Credential, new_credential

_LICENSES = cast(sa.Table, LicenseRow.__table__)
_EVENTS = cast(sa.Table, LicenseEvent.__table__)
_VERSIONS = cast(sa.Table, LicenseVersion.__table__)
_OUTBOX = cast(sa.Table, Outbox.__table__)
_INSTITUTIONS = cast(sa.Table, LicenseInstitution.__table__)
_HOLDER_TOKENS = cast(sa.Table, HolderToken.__table__)
_AUDIT = cast(sa.Table, AuditEntry.__table__)


@dataclass(frozen=True, slots=True)
class Request:
    """Who is acting, in which request, at what time: stamped on events and audit entries."""

    principal: Principal
    request_id: str
    now_ms: int


@dataclass(frozen=True, slots=True)
class Written:
    """What an event stored: the license row, its current version and the event."""

    license: LicenseRow
    version: LicenseVersion
    event: LicenseEvent


def _month(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m")


# --- writing ----------------------------------------------------------------------------------------------


def _event_values(kind: str, reason: str, version: int, status: str, req: Request) -> dict[str, Any]:
    return {
        "type": kind,
        "reason": reason,
        "actor": req.principal.actor[:64],
        "actor_role": req.principal.role,
        "occurred_ms": req.now_ms,
        "month": _month(req.now_ms),
        "version": version,
        "status": status,
        "request_id": req.request_id[:64],
    }


def _store_version(
    session: Session, node: NodeContext, row: LicenseRow, doc: License, event: LicenseEvent, now_ms: int
) -> LicenseVersion:
    """A new version of an existing license (events), with its outbox leaf and institutions."""
    version = LicenseVersion(license_id=row.id, event_id=event.id, **Sealer.of(node).seal(doc, now_ms).columns)
    session.add(version)
    session.flush()
    outbox.enqueue_leaf(session, row, version, event, now_ms)
    session.execute(sa.delete(LicenseInstitution).where(LicenseInstitution.license_id == row.id))
    session.add_all(
        LicenseInstitution(license_id=row.id, uscc=uscc, relation=relation)
        for uscc, relation in institutions_of(doc).items()
    )
    return version


def validate(document: Mapping[str, Any] | bytes, node: NodeContext) -> License:
    """Steps 1-2: the parsed document, issued by this node's authority; :class:`DocumentError` otherwise."""
    return Sealer.of(node).validate(document)


@dataclass(frozen=True, slots=True)
class Stored:
    """A newly registered license, as the issuing answer reports it."""

    base_id: str
    full_id: str
    version: int
    commitment: bytes
    seal_key_id: str
    holder_token: str | None


def issue(
    session: Session,
    node: NodeContext,
    document: Mapping[str, Any] | bytes,
    req: Request,
) -> Stored:
    """Register a new license (steps 1-6 of the module docstring) in ``session``."""
    doc = validate(document, node)
    base = doc.license_id.base
    existing = session.scalar(sa.select(LicenseRow.current_version).where(LicenseRow.base_id == base))
    if existing is not None:
        raise ConflictError(
            f"license {base} is already registered",
            current=f"version {existing}",
            requested=f"version {doc.version}",
        )
    [stored] = store_many(session, node, [doc], req)
    return stored


MAX_BATCH = 500
"""Documents per ``POST /v1/licenses/batch`` (the body must also stay under ``LICLEDGER_MAX_BODY_BYTES``)."""


def batch_documents(body: bytes) -> list[Mapping[str, Any]]:
    """The documents of a batch body ``{"documents": [<license document>, ...]}`` (strict JSON, 1 to
    :data:`MAX_BATCH` objects); :class:`DocumentError` naming the problem otherwise."""
    try:
        data = canonical.decode(body)
    except EncodingError as exc:
        raise DocumentError("the batch is not valid JSON", {"$": str(exc)}) from None
    if not isinstance(data, Mapping) or set(data) != {"documents"}:
        raise DocumentError("not a batch", {"$": 'must be an object {"documents": [...]}'})
    documents = data["documents"]
    if not isinstance(documents, list) or not 1 <= len(documents) <= MAX_BATCH:
        raise DocumentError("not a batch", {"documents": f"must be a list of 1 to {MAX_BATCH} license documents"})
    errors = {f"documents[{i}]": "must be an object" for i, d in enumerate(documents) if not isinstance(d, Mapping)}
    if errors:
        raise DocumentError("not a batch of license documents", errors)
    return documents


def issue_batch(
    session: Session,
    node: NodeContext,
    documents: Sequence[Mapping[str, Any]],
    req: Request,
    *,
    pool: SealingPool | None = None,
) -> list[Stored]:
    """Register every license of ``documents`` in ``session``, or none (steps 1-6 for each, one unit of work).

    All or nothing: :class:`DocumentError` naming ``documents[i].<field>`` for every invalid document and every
    repeat of a license earlier in the batch; :class:`ConflictError` naming the indexes of licenses already
    registered. Validation and sealing run in ``pool``'s worker processes when given (:mod:`node.sealing`)."""
    answers = (pool or SealingPool(node, 0)).map(documents, req.now_ms)
    errors: dict[str, str] = {}
    first: dict[str, int] = {}
    for i, answer in enumerate(answers):
        if isinstance(answer, Rejected):
            fields = answer.errors or {"$": answer.message}
            errors.update({f"documents[{i}]" + ("" if k == "$" else f".{k}"): v for k, v in fields.items()})
        elif answer.base_id in first:
            errors[f"documents[{i}].license_id"] = f"is the same license as documents[{first[answer.base_id]}]"
        else:
            first[answer.base_id] = i
    if errors:
        bad = len({k.split("]")[0] for k in errors})
        raise DocumentError(f"{bad} of {len(documents)} documents are invalid; nothing was stored", errors)
    sealed = [a for a in answers if isinstance(a, Sealed)]
    registered = set(session.scalars(sa.select(LicenseRow.base_id).where(LicenseRow.base_id.in_(list(first)))))
    if registered:
        indexes = sorted(first[b] for b in registered)
        raise ConflictError(
            f"{len(indexes)} of the licenses are already registered; nothing was stored",
            current="registered: " + ", ".join(f"documents[{i}]" for i in indexes[:50]),
            requested=f"{len(documents)} new licenses",
        )
    return store_sealed(session, node, sealed, req)


def store_many(
    session: Session,
    node: NodeContext,
    docs: Sequence[License],
    req: Request,
    *,
    reason: str = "issue",
    with_holder_token: bool = True,
    audit_entry: bool = True,
) -> list[Stored]:
    """Steps 4-6 for validated documents (sealed here, in this process): :func:`store_sealed`."""
    sealer = Sealer.of(node)
    sealed = [sealer.seal(doc, req.now_ms) for doc in docs]
    return store_sealed(
        session, node, sealed, req, reason=reason, with_holder_token=with_holder_token, audit_entry=audit_entry
    )


def store_sealed(
    session: Session,
    node: NodeContext,
    sealed: Sequence[Sealed],
    req: Request,
    *,
    reason: str = "issue",
    with_holder_token: bool = True,
    audit_entry: bool = True,
) -> list[Stored]:
    """Steps 5-6 for sealed documents (:mod:`node.sealing`, possibly from worker processes) whose licenses the
    caller checked are not yet registered and are distinct: a handful of Core executemany INSERTs whatever the
    number of documents (licenses, events and versions with ``RETURNING id``; outbox leaves, institutions,
    holder tokens and audit entries without), no ORM objects, nothing encoded again."""
    if not sealed:
        return []
    now = req.now_ms
    license_ids = bulk.insert(
        session,
        _LICENSES,
        [
            {
                "base_id": item.base_id,
                "kind": item.kind,
                "current_version": item.version,
                "status": "active",
                "status_seq": 0,
                "created_ms": now,
                "updated_ms": now,
                **item.facets,
            }
            for item in sealed
        ],
        key="base_id",
    )
    event = _event_values("issue", reason, 0, "active", req)
    event_ids = bulk.insert(
        session,
        _EVENTS,
        [{**event, "license_id": lid, "version": item.version} for item, lid in zip(sealed, license_ids, strict=True)],
        key="license_id",
    )
    version_ids = bulk.insert(
        session,
        _VERSIONS,
        [
            {"license_id": lid, "event_id": eid, **item.columns}
            for item, lid, eid in zip(sealed, license_ids, event_ids, strict=True)
        ],
        key="license_id",
    )
    bulk.insert(
        session,
        _OUTBOX,
        [
            outbox.leaf_values(item.base_id, item.version, lid, vid, eid, now)
            for item, lid, vid, eid in zip(sealed, license_ids, version_ids, event_ids, strict=True)
        ],
    )
    bulk.insert(
        session,
        _INSTITUTIONS,
        [
            {"license_id": lid, "uscc": uscc, "relation": relation}
            for item, lid in zip(sealed, license_ids, strict=True)
            for uscc, relation in item.institutions
        ],
    )
    tokens: list[str | None] = []
    token_rows: list[dict[str, Any]] = []
    for item in sealed:
        holder = item.facets["holder_hash"]
        if with_holder_token and holder is not None:
            credential = new_credential(HOLDER_TOKEN_PREFIX)
            token_rows.append(_holder_token_values(node, credential, holder, now))
            tokens.append(str(credential))
        else:
            tokens.append(None)
    if token_rows:
        bulk.insert(session, _HOLDER_TOKENS, token_rows)
    if audit_entry:
        # The values are identifiers by construction (GB/T 36904 base ids, the kind enum, version numbers), the
        # same entry node.audit.record writes for one license (checked by the tests), without an ORM object.
        bulk.insert(
            session,
            _AUDIT,
            [
                {
                    "occurred_ms": now,
                    "actor": req.principal.actor[:64],
                    "role": req.principal.role,
                    "action": "license.issue",
                    "object": item.base_id,
                    "personal_data": False,
                    "detail": canonical.encode({"kind": item.kind, "version": item.version}).decode("utf-8"),
                    "request_id": req.request_id[:64],
                }
                for item in sealed
            ],
        )
    return [
        Stored(item.base_id, item.full_id, item.version, item.commitment, item.seal_key_id, token)
        for item, token in zip(sealed, tokens, strict=True)
    ]


def lock_license(session: Session, base_id: str) -> LicenseRow:
    """The license row, locked for update until the end of the transaction; :class:`NotFoundError`."""
    row = session.scalar(sa.select(LicenseRow).where(LicenseRow.base_id == base_id).with_for_update())
    if row is None:
        raise NotFoundError("license", base_id)
    return row


def current_version(session: Session, row: LicenseRow) -> LicenseVersion:
    version = session.scalar(
        sa.select(LicenseVersion).where(
            LicenseVersion.license_id == row.id, LicenseVersion.version == row.current_version
        )
    )
    assert version is not None, "a license row always has its current version"
    return version


def apply_event(session: Session, node: NodeContext, base_id: str, event: Any, req: Request) -> Written:
    """Apply lifecycle ``event`` (a :data:`node.lifecycle.Event`) to license ``base_id``."""
    row = lock_license(session, base_id)
    current = current_version(session, row)
    if isinstance(event, lifecycle.StatusEvent):
        if event.type not in lifecycle.TRANSITIONS[row.status]:
            raise InvalidTransitionError(event.type, row.status)
        row.status = lifecycle.status_after(row.status, event.type)
        row.updated_ms = req.now_ms
        record = LicenseEvent(
            license_id=row.id, **_event_values(event.type, event.reason, row.current_version, row.status, req)
        )
        session.add(record)
        session.flush()
        last = outbox.last_effective_ms(session, row.id)
        effective = req.now_ms if last is None else max(req.now_ms, last)
        outbox.enqueue_status(
            session,
            row,
            current,
            record,
            status=row.status,
            reason=event.reason,
            effective_ms=effective,
            now_ms=req.now_ms,
        )
        written = Written(row, current, record)
    else:
        if row.status not in lifecycle.WRITABLE_STATUSES:
            raise InvalidTransitionError(event.type, row.status)
        doc = parse_document(current.document)
        try:
            new_doc = lifecycle.next_document(doc, event, datetime.fromtimestamp(req.now_ms / 1000, UTC))
        except ValueError as exc:  # past version 999
            if isinstance(exc, DocumentError):
                raise
            raise ConflictError(str(exc), current=f"version {row.current_version}") from None
        row.current_version = new_doc.version
        row.updated_ms = req.now_ms
        for name, value in Sealer.of(node).facets(new_doc).items():
            setattr(row, name, value)
        record = LicenseEvent(
            license_id=row.id, **_event_values(event.type, event.reason, row.current_version, row.status, req)
        )
        session.add(record)
        session.flush()
        version = _store_version(session, node, row, new_doc, record, req.now_ms)
        session.flush()
        # the version update: once this version is anchored, the ledger's status record names it (same status),
        # so a verifier shown an older version's bundle learns it is superseded (docs/chaincode.md "Status map")
        last = outbox.last_effective_ms(session, row.id)
        outbox.enqueue_status(
            session,
            row,
            version,
            record,
            status=row.status,
            reason=NEW_VERSION,
            effective_ms=req.now_ms if last is None else max(req.now_ms, last),
            now_ms=req.now_ms,
        )
        written = Written(row, version, record)
    audit.record(
        session,
        req.principal,
        f"license.{event.type}",
        now_ms=req.now_ms,
        request_id=req.request_id,
        object=base_id,
        detail={"version": row.current_version, "status": row.status},
    )
    session.flush()
    return written


def _holder_token_values(node: NodeContext, credential: Credential, holder_hash: bytes, now_ms: int) -> dict[str, Any]:
    return {
        "token_id": credential.id,
        "secret_hash": node.secrets.credential_hash(credential),
        "holder_hash": holder_hash,
        "created_ms": now_ms,
    }


def new_holder_token(session: Session, node: NodeContext, holder_hash: bytes, now_ms: int) -> str:
    """A new holder token for the holder ``holder_hash``; the text is returned once and stored hashed."""
    credential = new_credential(HOLDER_TOKEN_PREFIX)
    session.add(HolderToken(**_holder_token_values(node, credential, holder_hash, now_ms)))
    return str(credential)


def issue_holder_token(session: Session, node: NodeContext, citizen_id: str, req: Request) -> str:
    """A fresh holder token for the holder of a citizen ID that has a license here (lost-token case)."""
    holder = node.secrets.holder_hash(citizen_id)
    if session.scalar(sa.select(LicenseRow.id).where(LicenseRow.holder_hash == holder).limit(1)) is None:
        raise NotFoundError("holder", "with this citizen ID")
    token = new_holder_token(session, node, holder, req.now_ms)
    audit.record(
        session,
        req.principal,
        "holder_token.issue",
        now_ms=req.now_ms,
        request_id=req.request_id,
        detail={"token_id": token.split("_")[1]},
    )
    return token
