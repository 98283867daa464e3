"""Ordering for a one-member network: a local, fsync'd, append-only journal file (no Raft, no network).

Used by a one-member development network and by tests of the ordering service's consumers; it honours the
whole :class:`network.ordering.OrderingService` contract, with "committed" meaning "fsync'd to the journal".

Journal format (big-endian)::

    header  = b"licledger-ordering-v1\\n"
    record  = length (u32) || SM3(payload) (32 bytes, GM/T 0004-2012) || payload (length bytes)

A record is acknowledged only after ``fsync`` returns. On open, every record's digest is checked. A damaged
*last* record is the trace of a crash during an unacknowledged append and is truncated away; damage anywhere
else raises :class:`network.errors.OrderingJournalError` with the byte offset. One process at a time may open
a journal (``flock``).
"""

from __future__ import annotations

import fcntl
import os
import struct
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from core.hashing import sm3
from network.errors import OrderingJournalError
from network.ordering_checks import (
    DEFAULT_MAX_PAYLOAD_BYTES,
    check_batch,
    check_payload,
    check_read,
    check_timeout,
)

MAGIC = b"licledger-ordering-v1\n"
_RECORD_HEAD = struct.Struct(">I32s")


class SingleNodeOrdering:
    """An :class:`network.ordering.OrderingService` backed by one fsync'd file; thread-safe within a process.

    ``append`` blocks only for the write and ``fsync`` (``timeout`` is accepted for interface compatibility
    and validated, but a local disk either completes or raises ``OSError``). Opening raises
    :class:`OrderingJournalError` for a corrupt journal and ``ValueError`` if another process holds it.
    """

    def __init__(
        self,
        journal_path: Path | str,
        *,
        name: str = "local",
        max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
    ) -> None:
        if not 0 < max_payload_bytes <= DEFAULT_MAX_PAYLOAD_BYTES:
            raise ValueError(f"max_payload_bytes must be in 1..{DEFAULT_MAX_PAYLOAD_BYTES} (as for Raft)")
        self._path = Path(journal_path)
        self._name = name
        self._max_payload_bytes = max_payload_bytes
        self._cond = threading.Condition()
        self._offsets: list[int] = []  # byte offset of each record
        self._index: dict[bytes, int] = {}
        created = not self._path.exists()
        self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._fd)
            raise ValueError(f"ordering journal {self._path} is in use by another process") from None
        try:
            self._end = self._load(created)
        except BaseException:
            os.close(self._fd)
            raise
        self._closed = False

    # --- OrderingService ------------------------------------------------------------------------------------

    def append(self, payload: bytes, timeout: float = 10.0) -> int:
        """Append and fsync ``payload`` (or return the position of an identical earlier payload)."""
        check_payload(payload, self._max_payload_bytes)
        check_timeout(timeout)
        return self._append([payload])[0]

    def append_batch(self, payloads: Sequence[bytes], timeout: float = 10.0) -> list[int]:
        """Append several payloads with one write and one fsync; a crash mid-call may keep a prefix."""
        batch = check_batch(payloads, self._max_payload_bytes)
        check_timeout(timeout)
        return self._append(batch)

    @property
    def max_payload_bytes(self) -> int:
        """The largest payload :meth:`append` accepts (at most the Raft backend's limit)."""
        return self._max_payload_bytes

    def read(self, position: int, limit: int = 1000) -> list[bytes]:
        """Payloads ``[position, position + limit)`` read back from the journal with one ``pread``."""
        check_read(position, limit)
        with self._cond:
            if self._closed:
                raise ValueError("the ordering service is closed")
            stop = min(position + limit, len(self._offsets))
            if position >= stop:
                return []
            start_offset = self._offsets[position]
            end_offset = self._offsets[stop] if stop < len(self._offsets) else self._end
            data = os.pread(self._fd, end_offset - start_offset, start_offset)
        out, cursor = [], 0
        for _ in range(stop - position):
            length, _digest = _RECORD_HEAD.unpack_from(data, cursor)
            cursor += _RECORD_HEAD.size
            out.append(data[cursor : cursor + length])
            cursor += length
        return out

    def committed_size(self) -> int:
        """Number of fsync'd payloads."""
        with self._cond:
            return len(self._offsets)

    def wait_for(self, size: int, timeout: float) -> bool:
        """Block until ``size`` payloads are committed (by another thread) or ``timeout`` passes."""
        with self._cond:
            return self._cond.wait_for(lambda: len(self._offsets) >= size, check_timeout(timeout))

    def position_of(self, payload: bytes) -> int | None:
        """Position of ``payload`` if it was ordered, else ``None``."""
        digest = sm3(check_payload(payload, self._max_payload_bytes))
        with self._cond:
            return self._index.get(digest)

    def leader(self) -> str | None:
        """This node's name: a single member is always its own leader (``None`` once closed)."""
        return None if self._closed else self._name

    def status(self) -> dict[str, Any]:
        """The same keys as the Raft backend's status, for a one-member network."""
        size = self.committed_size()
        return {
            "backend": "single",
            "self": self._name,
            "role": "closed" if self._closed else "leader",
            "term": 0,
            "leader": self.leader(),
            "commit_index": size,
            "last_applied": size,
            "committed_size": size,
            "has_quorum": not self._closed,
            "peers": {},
            "journal": str(self._path),
        }

    def close(self) -> None:
        """Release the journal file and its lock. Idempotent; later calls raise ``ValueError``."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            os.close(self._fd)
            self._cond.notify_all()

    def __enter__(self) -> SingleNodeOrdering:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- internals ----------------------------------------------------------------------------------------

    def _append(self, batch: list[bytes]) -> list[int]:
        with self._cond:
            if self._closed:
                raise ValueError("the ordering service is closed")
            positions: list[int] = []
            pending: dict[bytes, int] = {}
            records: list[bytes] = []
            new_offsets: list[int] = []
            offset = self._end
            for payload in batch:
                digest = sm3(payload)
                position = self._index.get(digest, pending.get(digest))
                if position is None:
                    position = len(self._offsets) + len(new_offsets)
                    pending[digest] = position
                    record = _RECORD_HEAD.pack(len(payload), digest) + payload
                    records.append(record)
                    new_offsets.append(offset)
                    offset += len(record)
                positions.append(position)
            if records:
                self._write_all(b"".join(records))
                self._offsets.extend(new_offsets)
                self._index.update(pending)
                self._end = offset
                self._cond.notify_all()
            return positions

    def _write_all(self, data: bytes) -> None:
        try:
            view = memoryview(data)
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
            os.fsync(self._fd)
        except OSError:
            # Leave no partial record behind an acknowledged one (e.g. ENOSPC mid-write).
            os.ftruncate(self._fd, self._end)
            raise

    def _load(self, created: bool) -> int:
        size = os.fstat(self._fd).st_size
        if size == 0:
            os.write(self._fd, MAGIC)
            os.fsync(self._fd)
            if created:
                _fsync_dir(self._path.parent)
            return len(MAGIC)
        head = os.pread(self._fd, len(MAGIC), 0)
        if head != MAGIC:
            if size < len(MAGIC) and MAGIC.startswith(head):  # crash while writing the header
                os.ftruncate(self._fd, 0)
                return self._load(created)
            raise OrderingJournalError("not a licledger ordering journal", path=str(self._path), offset=0)
        data = os.pread(self._fd, size - len(MAGIC), len(MAGIC))
        offset = len(MAGIC)
        cursor = 0
        while cursor < len(data):
            problem = _check_record(data, cursor)
            if problem is not None:
                torn_tail = problem == "truncated" or not data[cursor:].strip(b"\0") or _is_last(data, cursor)
                if not torn_tail:
                    raise OrderingJournalError(
                        f"journal record {problem} before the end of the journal",
                        path=str(self._path),
                        offset=offset + cursor,
                    )
                os.ftruncate(self._fd, offset + cursor)  # torn final write: it was never acknowledged
                os.fsync(self._fd)
                break
            length, digest = _RECORD_HEAD.unpack_from(data, cursor)
            self._index.setdefault(digest, len(self._offsets))
            self._offsets.append(offset + cursor)
            cursor += _RECORD_HEAD.size + length
        return offset + cursor


def _check_record(data: bytes, cursor: int) -> str | None:
    """``None`` if a whole, well-formed record starts at ``cursor``; else what is wrong with it."""
    if cursor + _RECORD_HEAD.size > len(data):
        return "truncated"
    length, digest = _RECORD_HEAD.unpack_from(data, cursor)
    start = cursor + _RECORD_HEAD.size
    if start + length > len(data):
        return "truncated"
    if length == 0:
        return "has length 0"
    if sm3(data[start : start + length]) != digest:
        return "fails its SM3 check"
    return None


def _is_last(data: bytes, cursor: int) -> bool:
    length: int = struct.unpack_from(">I", data, cursor)[0]
    return cursor + _RECORD_HEAD.size + length == len(data)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
