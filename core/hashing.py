"""Hash functions as parameters (the transparency-dev ``rfc6962.New(crypto.Hash)`` pattern).

licledger hashes with SM3 (GM/T 0004-2012, GB/T 32905-2016). SHA-256 exists so that the RFC 9162 / RFC 6962
Merkle code can be checked against published vectors and other implementations.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

from gmssl_pyx import sm3_hash

from core.native import NATIVE


@dataclass(frozen=True, slots=True)
class HashFunction:
    """A named hash function with a fixed digest size."""

    name: str
    digest_size: int
    digest: Callable[[bytes], bytes]

    def __call__(self, data: bytes) -> bytes:
        return self.digest(data)


def _sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _gmssl_sm3(data: bytes) -> bytes:
    return bytes(sm3_hash(data))


# core._native's SM3 gives the same digests (tests/test_native.py), as fast as GmSSL's and without the copy
_sm3: Callable[[bytes], bytes] = _gmssl_sm3 if NATIVE is None else NATIVE.sm3


SM3 = HashFunction("sm3", 32, _sm3)
SHA256 = HashFunction("sha256", 32, _sha256)

_BY_NAME = {h.name: h for h in (SM3, SHA256)}


def sm3(data: bytes) -> bytes:
    """SM3 digest of ``data`` (GM/T 0004-2012)."""
    return _sm3(data)


def by_name(name: str) -> HashFunction:
    """The hash function called ``name`` (``"sm3"`` or ``"sha256"``)."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise ValueError(f"unknown hash function {name!r}; expected one of {sorted(_BY_NAME)}") from None
