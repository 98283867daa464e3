"""Argument checks and limits shared by the ordering backends (caller misuse: TypeError or ValueError)."""

from __future__ import annotations

from collections.abc import Sequence

#: Largest encoded batch: 5 bytes + (4 bytes + payload) per payload. With the Raft backend one batch is one
#: log entry, and pysyncobj spends about 0.1 ms of CPU per KiB per follower on it (pickle protocol 2, zlib,
#: Fernet; see bench/bench_ordering.py). Heartbeats queue behind it on the same connection, so entries of
#: 1 MiB delayed them past the 0.4 s election timeout and caused repeated elections; 100-300 KiB did not.
MAX_BATCH_BYTES = 128 * 1024
#: Largest payload accepted by default (a signed anchor or status transaction is a few KiB; a peer that packs
#: many transactions into one payload must keep it under this size).
DEFAULT_MAX_PAYLOAD_BYTES = MAX_BATCH_BYTES - 9
#: Most payloads one ``append_batch`` call may carry.
MAX_BATCH_PAYLOADS = 10_000
#: Most payloads :meth:`OrderingService.read` returns in one call.
MAX_READ_LIMIT = 10_000


def check_payload(payload: object, max_payload_bytes: int) -> bytes:
    """Return ``payload`` if it is an acceptable payload, else raise ``TypeError`` / ``ValueError``."""
    if type(payload) is not bytes:
        raise TypeError(f"payload must be bytes, not {type(payload).__name__}")
    if not payload:
        raise ValueError("payload must not be empty")
    if len(payload) > max_payload_bytes:
        raise ValueError(f"payload of {len(payload)} bytes exceeds the maximum of {max_payload_bytes}")
    return payload


def check_batch(payloads: Sequence[bytes], max_payload_bytes: int) -> list[bytes]:
    """Validate a batch for :meth:`OrderingService.append_batch` and return it as a list."""
    if isinstance(payloads, bytes | bytearray | str):
        raise TypeError("payloads must be a sequence of bytes, not a single bytes or str object")
    batch = [check_payload(p, max_payload_bytes) for p in payloads]
    if not batch:
        raise ValueError("payloads must not be empty")
    if len(batch) > MAX_BATCH_PAYLOADS:
        raise ValueError(f"a batch holds at most {MAX_BATCH_PAYLOADS} payloads, got {len(batch)}")
    encoded = batch_bytes(batch)
    if encoded > MAX_BATCH_BYTES:
        raise ValueError(f"a batch encodes to at most {MAX_BATCH_BYTES} bytes, got {encoded}; split it")
    return batch


def batch_bytes(payloads: Sequence[bytes]) -> int:
    """Size of ``payloads`` encoded as one batch (see ``network.raft_ordering.encode_batch``)."""
    return 5 + sum(4 + len(p) for p in payloads)


def check_timeout(timeout: float) -> float:
    """Return ``timeout`` as a float if it is a positive, finite number of seconds."""
    if isinstance(timeout, bool) or not isinstance(timeout, int | float):
        raise TypeError(f"timeout must be a number of seconds, not {type(timeout).__name__}")
    if not 0 < timeout < float("inf"):
        raise ValueError(f"timeout must be positive and finite, got {timeout!r}")
    return float(timeout)


def check_read(position: int, limit: int) -> None:
    """Raise ``TypeError`` / ``ValueError`` unless ``read(position, limit)`` is a well-formed request."""
    for name, value in (("position", position), ("limit", limit)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if position < 0:
        raise ValueError(f"position must be >= 0, got {position}")
    if not 1 <= limit <= MAX_READ_LIMIT:
        raise ValueError(f"limit must be in 1..{MAX_READ_LIMIT}, got {limit}")
