"""The node secret, pseudonymous holder lookups and bearer credentials (API keys, holder tokens).

Rules:

1. **Node secret.** 32 random bytes made by ``licledger node init``, stored SM4-GCM-encrypted (GB/T 32907,
   :mod:`core.sm4`) under the KEK in ``node-secret.enc`` with the associated data
   ``licledger/node-secret/v1``.
   Purpose keys are ``HMAC-SM3(node_secret, label)`` (RFC 2104 over GM/T 0004), one per use, so a hash made
   for one purpose is useless for another.
2. **Holder hash.** The citizen ID is never an index: licenses are found by
   ``HMAC-SM3(holder_key, citizen_id)``. Without the node secret nobody can test a guessed ID against the
   table (the ID space is small enough to enumerate under a plain hash).
3. **Credentials** are ``<prefix><id>_<secret>``: ``llk_`` for API keys, ``llh_`` for holder tokens; ``id`` is
   12 characters from ``[a-z2-7]`` (looked up, shown in listings and the audit log), ``secret`` 32 random
   bytes in unpadded base64url. The database stores ``HMAC-SM3(purpose_key, id ":" secret)`` and compares
   in constant time. A slow password KDF is unnecessary for 256-bit random secrets; the HMAC key means a
   stolen table alone cannot even confirm a leaked credential.
"""

from __future__ import annotations

import base64
import hmac
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from gmssl_pyx import sm3_hmac

from core import sm4
from core.errors import FormatError

SECRET_SIZE = 32
SECRET_AAD = b"licledger/node-secret/v1"
API_KEY_PREFIX = "llk_"
HOLDER_TOKEN_PREFIX = "llh_"  # noqa: S105 - a prefix, not a secret
_ID_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"
_ID_LENGTH = 12
_SECRET_TEXT_LENGTH = 43  # unpadded base64url of 32 bytes
_CREDENTIAL = re.compile(r"(llk_|llh_)([a-z2-7]{12})_([A-Za-z0-9_-]{43})")
CREDENTIAL_PATTERN = r"ll[kh]_[a-z2-7]{12}_[A-Za-z0-9_-]{43}"
"""What a credential looks like (used by the log redaction filter)."""


class CredentialFormatError(FormatError):
    """A presented credential is not of the form ``llk_<id>_<secret>`` / ``llh_<id>_<secret>``."""


def _hmac_sm3(key: bytes, message: bytes) -> bytes:
    mac: bytes = sm3_hmac(key, message)
    return mac


def create_secret_file(path: Path, kek: bytes) -> None:
    """Make a new node secret and write it encrypted under ``kek`` to ``path`` (mode 0600, never replaced)."""
    write_new_file(path, sm4.gcm_encrypt(kek, secrets.token_bytes(SECRET_SIZE), SECRET_AAD), 0o600)


def write_new_file(path: Path, data: bytes, mode: int) -> None:
    """Create ``path`` with exactly ``mode`` and write ``data``; ``FileExistsError`` if it exists."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        os.fchmod(fd, mode)
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def load_secret_file(path: Path, kek: bytes) -> NodeSecrets:
    """The node secret in ``path``; :class:`~core.errors.DecryptionError` for a wrong KEK or altered file."""
    secret = sm4.gcm_decrypt(kek, path.read_bytes(), SECRET_AAD)
    if len(secret) != SECRET_SIZE:
        raise FormatError(f"{path.name}: the node secret must be {SECRET_SIZE} bytes")
    return NodeSecrets(secret)


@dataclass(frozen=True, slots=True)
class Credential:
    """A parsed bearer credential."""

    prefix: str
    id: str
    secret: str

    def __str__(self) -> str:
        return f"{self.prefix}{self.id}_{self.secret}"

    def __repr__(self) -> str:
        return f"Credential({self.prefix}{self.id}_…)"


def new_credential(prefix: str) -> Credential:
    """A fresh credential with a random id and secret."""
    if prefix not in (API_KEY_PREFIX, HOLDER_TOKEN_PREFIX):
        raise ValueError(f"unknown credential prefix {prefix!r}")
    ident = "".join(secrets.choice(_ID_ALPHABET) for _ in range(_ID_LENGTH))
    secret = base64.urlsafe_b64encode(secrets.token_bytes(SECRET_SIZE)).rstrip(b"=").decode("ascii")
    assert len(secret) == _SECRET_TEXT_LENGTH
    return Credential(prefix, ident, secret)


def parse_credential(text: str) -> Credential:
    """Parse ``llk_<id>_<secret>`` or ``llh_<id>_<secret>``; the error never echoes the text."""
    match = _CREDENTIAL.fullmatch(text)
    if match is None:
        raise CredentialFormatError(
            "credential must be llk_<12 characters>_<43 characters> (API key) or llh_... (holder token)"
        )
    return Credential(match.group(1), match.group(2), match.group(3))


class NodeSecrets:
    """Purpose keys derived from the node secret (rule 1) and the hashes made with them."""

    __slots__ = ("_api_key", "_holder", "_holder_token")

    def __init__(self, secret: bytes) -> None:
        if not isinstance(secret, bytes) or len(secret) != SECRET_SIZE:
            raise ValueError(f"node secret must be {SECRET_SIZE} bytes")
        self._holder = _hmac_sm3(secret, b"licledger/holder-id/v1")
        self._api_key = _hmac_sm3(secret, b"licledger/api-key/v1")
        self._holder_token = _hmac_sm3(secret, b"licledger/holder-token/v1")

    def __repr__(self) -> str:
        return "NodeSecrets(…)"

    def holder_hash(self, citizen_id: str) -> bytes:
        """``HMAC-SM3(holder_key, citizen_id)``: how a natural-person holder is looked up (rule 2)."""
        return _hmac_sm3(self._holder, citizen_id.encode("utf-8"))

    def credential_hash(self, credential: Credential) -> bytes:
        """The stored hash of an API key or holder token (rule 3)."""
        key = self._api_key if credential.prefix == API_KEY_PREFIX else self._holder_token
        return _hmac_sm3(key, f"{credential.id}:{credential.secret}".encode("ascii"))

    def matches(self, credential: Credential, stored_hash: bytes) -> bool:
        """Whether ``credential`` hashes to ``stored_hash`` (constant-time comparison)."""
        return hmac.compare_digest(self.credential_hash(credential), stored_hash)
