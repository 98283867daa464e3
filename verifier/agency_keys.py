"""API keys of the standalone verification service (``licledger verifier key ...``), stored hashed in one file.

Rules:

1. A key is ``llv_<id>_<secret>``: ``id`` 8 hex digits (public, names the key in lists and logs), ``secret`` 32
   random bytes (``secrets.token_urlsafe``). It is printed once, when created, and never stored.
2. The file (``licledger-verifier-keys/1``, canonical JSON, mode 0600, written atomically) keeps per key: ``id``,
   ``name`` (the agency), ``role`` (``agency``: personal data masked; ``auditor``: personal data of submitted
   disclosed bundles returned), ``hash`` = SM3 (GM/T 0004) of the whole key, ``created_ms``, ``revoked_ms``. A
   256-bit random secret needs no salt or slow hash: nothing can be guessed from its hash.
3. Lookup is by ``id``, then a constant-time comparison of the hashes; a revoked key is known but refused.
4. The service re-reads the file when it changes, so keys created or revoked while it runs apply at once.
"""

from __future__ import annotations

import dataclasses
import hmac
import os
import re
import secrets
import threading
from pathlib import Path
from typing import Any, Literal

from core import canonical
from core.errors import FormatError
from core.hashing import sm3

__all__ = ["KEYS_FORMAT", "AgencyKey", "KeyFile", "KeyFileError"]

KEYS_FORMAT = "licledger-verifier-keys/1"
Role = Literal["agency", "auditor"]
ROLES: tuple[Role, ...] = ("agency", "auditor")
_TOKEN = re.compile(r"llv_([0-9a-f]{8})_[A-Za-z0-9_-]{43}")


class KeyFileError(FormatError):
    """The key file is not a ``licledger-verifier-keys/1`` file, or a key named does not exist."""


@dataclasses.dataclass(frozen=True, slots=True)
class AgencyKey:
    id: str
    name: str
    role: Role
    hash: str
    created_ms: int
    revoked_ms: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, value: Any) -> AgencyKey:
        fields = {f.name for f in dataclasses.fields(cls)}
        if not isinstance(value, dict) or set(value) != fields:
            raise KeyFileError(f"{KEYS_FORMAT}: a key must have exactly the fields {sorted(fields)}")
        if value["role"] not in ROLES or not re.fullmatch(r"[0-9a-f]{8}", str(value["id"])):
            raise KeyFileError(f"{KEYS_FORMAT}: key {value['id']!r} has a bad id or role")
        return cls(**value)


class KeyFile:
    """The key file at ``path`` (rules 2-4); thread-safe."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._keys: dict[str, AgencyKey] = {}

    def records(self) -> list[AgencyKey]:
        """Every key, revoked ones included, oldest first (re-read if the file changed)."""
        with self._lock:
            self._reload()
            return sorted(self._keys.values(), key=lambda k: (k.created_ms, k.id))

    def _reload(self) -> None:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            self._stamp, self._keys = None, {}
            return
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp == self._stamp:
            return
        value = canonical.decode(self.path.read_bytes())
        if not isinstance(value, dict) or value.get("format") != KEYS_FORMAT or set(value) != {"format", "keys"}:
            raise KeyFileError(f"{self.path} is not a {KEYS_FORMAT} file")
        if not isinstance(value["keys"], list):
            raise KeyFileError(f"{self.path}: keys must be a list")
        keys = [AgencyKey.from_dict(k) for k in value["keys"]]
        self._keys, self._stamp = {k.id: k for k in keys}, stamp

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        data = canonical.encode({"format": KEYS_FORMAT, "keys": [k.to_dict() for k in self._keys.values()]})
        tmp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(tmp, self.path)
        self._stamp = None

    def create(self, name: str, role: Role, *, now_ms: int) -> tuple[str, AgencyKey]:
        """A new key for agency ``name``: the key itself (shown once) and its stored record."""
        if not 0 < len(name) <= 200 or not name.isprintable():
            raise ValueError("the agency name must be 1-200 printable characters")
        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}")
        with self._lock:
            self._reload()
            key_id = secrets.token_hex(4)
            while key_id in self._keys:
                key_id = secrets.token_hex(4)
            token = f"llv_{key_id}_{secrets.token_urlsafe(32)}"
            record = AgencyKey(key_id, name, role, sm3(token.encode("ascii")).hex(), now_ms)
            self._keys[key_id] = record
            self._save()
        return token, record

    def revoke(self, key_id: str, *, now_ms: int) -> AgencyKey:
        with self._lock:
            self._reload()
            record = self._keys.get(key_id)
            if record is None:
                raise KeyFileError(f"no key {key_id!r} in {self.path}")
            if record.revoked_ms is None:
                record = dataclasses.replace(record, revoked_ms=now_ms)
                self._keys[key_id] = record
                self._save()
        return record

    def authenticate(self, token: str) -> AgencyKey | None:
        """The key record ``token`` is (revoked ones included: the caller refuses those), or ``None``."""
        match = _TOKEN.fullmatch(token)
        if match is None:
            return None
        with self._lock:
            self._reload()
            record = self._keys.get(match.group(1))
        if record is None:
            return None
        if not hmac.compare_digest(sm3(token.encode("ascii")).hex(), record.hash):
            return None
        return record
