"""The native fast paths (``core._native``, built from core/_native.c) if they can be used, else ``None``.

Each fast path has a pure-Python reference in core/ that stays authoritative: a fast path returns exactly what the
reference would, or declines (``None``, or ``Decline`` from the decoder) and the caller runs the reference, which
gives the answer or the error with its evidence (tests/test_native.py checks this differentially). Callers write::

    if NATIVE is not None and (root := NATIVE.inclusion_root(...)) is not None:
        ...

The module is not used when

* ``LICLEDGER_PURE_PYTHON=1`` is set (to compare, or to debug with the references alone);
* it was not built (no C compiler at install time: the extension is optional);
* it was built from another version of core/_native.c than the one beside it (a stale in-place build after an
  edit: rebuild with ``pip install -e .``). The check compares the SHA-256 compiled in with the file's.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol, cast

__all__ = ["NATIVE", "NativeModule", "why_not_native"]

_LOG = logging.getLogger(__name__)


class NativeModule(Protocol):
    """What core/_native.c provides (its docstrings say more)."""

    Decline: type[Exception]
    SOURCE_SHA256: str

    def sm3(self, data: bytes, /) -> bytes: ...
    def inclusion_root(self, leaf_index: int, tree_size: int, leaf_hash: bytes, proof: Any, /) -> bytes | None: ...
    def sparse_root(self, key: bytes, value_hash: bytes | None, depths: Any, siblings: Any, /) -> bytes | None: ...
    def hashes_from_hex(self, value: Any, /) -> tuple[bytes, ...] | None: ...
    def hash_from_hex(self, value: Any, /) -> bytes | None: ...
    def decode(self, data: bytes, /) -> Any: ...
    def encode(self, value: Any, /) -> bytes | None: ...
    def uscc_check_char(self, first17: Any, /) -> str | None: ...
    def mod11_2(self, digits: Any, /) -> str | None: ...
    def mod37_36_state(self, text: Any, state: Any, /) -> int | None: ...
    def uscc_valid(self, text: Any, /) -> bool | None: ...
    def license_id_valid(
        self, type_code: Any, issuer_uscc: Any, serial: Any, version: Any, check: Any, /
    ) -> bool | None: ...


_SOURCE = Path(__file__).with_name("_native.c")


def _load(source: Path = _SOURCE) -> tuple[NativeModule | None, str | None]:
    if os.environ.get("LICLEDGER_PURE_PYTHON", "") not in ("", "0"):
        return None, "LICLEDGER_PURE_PYTHON is set"
    try:
        from core import _native  # type: ignore[attr-defined]
    except ImportError as exc:
        return None, f"core._native is not built ({exc})"
    module = cast(ModuleType, _native)
    if source.exists():
        digest = hashlib.sha256(source.read_bytes()).hexdigest()
        if digest != module.SOURCE_SHA256:
            _LOG.warning("core._native was built from another core/_native.c; using the pure-Python code (rebuild)")
            return None, f"core._native was built from source {module.SOURCE_SHA256[:16]}, not {digest[:16]}"
    return cast(NativeModule, module), None


NATIVE, _WHY_NOT = _load()


def why_not_native() -> str | None:
    """``None`` when the native fast paths are in use, else the reason they are not."""
    return _WHY_NOT
