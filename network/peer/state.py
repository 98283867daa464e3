"""World-state views handed to the executor (pure; the database side is in :mod:`network.peer.store`).

The executor reads state through two calls (``get`` and a sorted half-open ``range``). Within a block, each
transaction sees the writes of the valid transactions before it: :class:`PendingState` layers those writes
over the committed state, so the block's outcome depends only on the committed state and the block's own
payload. Keys compare by code point, which is the order of their UTF-8 bytes, the order the store sorts them
in.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Protocol


class StateReader(Protocol):
    """What the executor reads (the ``WorldState`` protocol of :mod:`network.executor`)."""

    def get(self, key: str) -> bytes | None: ...

    def range(self, start: str, end: str) -> Iterator[tuple[str, bytes]]:
        """``[start, end)`` in ascending key order; ``end == ""``: no upper bound (Fabric's convention)."""
        ...


class PendingState:
    """Committed state plus the not yet committed writes of the block being executed."""

    def __init__(self, base: StateReader) -> None:
        self._base = base
        self._writes: dict[str, bytes | None] = {}

    @property
    def writes(self) -> Mapping[str, bytes | None]:
        return self._writes

    def apply(self, writes: Mapping[str, bytes | None]) -> None:
        """Layer one valid transaction's writes (``None`` deletes) over what is already pending."""
        self._writes.update(writes)

    def get(self, key: str) -> bytes | None:
        if key in self._writes:
            return self._writes[key]
        return self._base.get(key)

    def range(self, start: str, end: str) -> Iterator[tuple[str, bytes]]:
        """Keys in ``[start, end)`` in ascending order (``end == ""``: no upper bound); pending writes shadow
        committed values."""
        pending = sorted(k for k in self._writes if start <= k and (end == "" or k < end))
        base = self._base.range(start, end)
        i = 0
        for key, value in base:
            while i < len(pending) and pending[i] < key:
                yield from self._pending_item(pending[i])
                i += 1
            if i < len(pending) and pending[i] == key:
                yield from self._pending_item(key)
                i += 1
            else:
                yield key, value
        for key in pending[i:]:
            yield from self._pending_item(key)

    def _pending_item(self, key: str) -> Iterator[tuple[str, bytes]]:
        value = self._writes[key]
        if value is not None:
            yield key, value


class DictState:
    """An in-memory :class:`StateReader` (used for bootstrap checks and unit tests)."""

    def __init__(self, items: Mapping[str, bytes] | None = None) -> None:
        self.items: dict[str, bytes] = dict(items or {})

    def get(self, key: str) -> bytes | None:
        return self.items.get(key)

    def range(self, start: str, end: str) -> Iterator[tuple[str, bytes]]:
        for key in sorted(k for k in self.items if start <= k and (end == "" or k < end)):
            yield key, self.items[key]
