"""The ordering service interface: a totally ordered, append-only stream of opaque payloads.

This is licledger's equivalent of Hyperledger Fabric's orderer (``orderer/consensus``): it decides *in which
order* transactions are applied and nothing else. The contract, which every implementation honours:

1. **Opaque payloads.** A payload is a non-empty ``bytes`` object (a signed transaction). The orderer never
   parses, validates or executes it. Trust never rests on ordering: every peer validates every transaction it
   reads from the stream (signatures, membership, sequence numbers) and rejects invalid ones identically, so a
   malicious payload that gets ordered is merely an ordered rejection.
2. **Dense total order.** Committed payloads have positions 0, 1, 2, ... with no gaps. Every replica of the
   same network returns the same payload for the same position, forever (positions are never reassigned).
3. **Durability of acknowledgements.** When :meth:`OrderingService.append` returns a position, the payload is
   committed: for Raft, it is in the journal of a majority of members (Raft §5.3-5.4); for the single-node
   backend, it is fsync'd. It is never lost by a crash of any minority, nor by a kill -9 of every process.
4. **Idempotent retries.** The same payload (equal SM3 digest, GM/T 0004-2012) is ordered at most once:
   appending it again returns the position of the first copy. A client whose ``append`` timed out may simply
   retry; it will never double-order. (Replayed *transactions* with different bytes are the peer's job to
   reject.)
5. **Reads are local and never block long.** :meth:`OrderingService.read` returns what this replica has
   already committed; a lagging replica returns fewer payloads, never different ones.

The peer consumes the stream with ``wait_for(height + 1, timeout)`` then ``read(height)``, writes what it
validated to its own fsync'd block store, and treats that block store, not the orderer's journal, as the
source of truth.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from network.ordering_checks import (
    DEFAULT_MAX_PAYLOAD_BYTES,
    MAX_BATCH_BYTES,
    MAX_BATCH_PAYLOADS,
    MAX_READ_LIMIT,
)
from network.raft_ordering import RaftOrdering
from network.single_ordering import SingleNodeOrdering

__all__ = [
    "DEFAULT_MAX_PAYLOAD_BYTES",
    "MAX_BATCH_BYTES",
    "MAX_BATCH_PAYLOADS",
    "MAX_READ_LIMIT",
    "OrderingService",
    "RaftOrdering",
    "SingleNodeOrdering",
]


@runtime_checkable
class OrderingService(Protocol):
    """A totally ordered, durable, append-only stream of opaque payloads (see the module docstring)."""

    @property
    def max_payload_bytes(self) -> int:
        """The largest payload :meth:`append` accepts; a client packing transactions must stay under it."""
        ...

    def append(self, payload: bytes, timeout: float = 10.0) -> int:
        """Order ``payload`` and return its 0-based position once it is committed.

        Blocks until the payload is committed (Raft: acknowledged by a majority; single node: fsync'd), or
        until ``timeout`` seconds have passed. Leader changes inside the deadline are retried transparently.
        If the same payload (by SM3 digest) was already ordered, returns its existing position.

        Raises :class:`network.errors.OrderingUnavailableError` when the commit could not be confirmed before
        the deadline (no leader, no quorum): the outcome is then unknown and retrying the same payload is
        safe. Raises ``TypeError`` if ``payload`` is not ``bytes`` and ``ValueError`` if it is empty, larger
        than the configured maximum, if ``timeout`` is not positive, or if the service is closed.
        """
        ...

    def append_batch(self, payloads: Sequence[bytes], timeout: float = 10.0) -> list[int]:
        """Order several payloads as one commit (client-side batching); return their positions in order.

        Same blocking, idempotency and error semantics as :meth:`append`; payloads not ordered before get
        consecutive positions in batch order. Raft commits the batch as one log entry, so all of it or none of
        it is ordered; the single-node backend may keep a prefix of a batch whose call was cut short by a
        crash. Either way the positions of acknowledged payloads never change and a retry orders the rest.
        """
        ...

    def read(self, position: int, limit: int = 1000) -> list[bytes]:
        """Return the committed payloads at positions ``[position, position + limit)`` known to this replica.

        Never blocks on the network; returns fewer than ``limit`` payloads (possibly none) at the end of the
        stream. Raises ``ValueError`` for a negative ``position`` or a ``limit`` outside
        ``1..MAX_READ_LIMIT``.
        """
        ...

    def committed_size(self) -> int:
        """Number of payloads this replica has committed (the next position to be assigned, as seen here)."""
        ...

    def wait_for(self, size: int, timeout: float) -> bool:
        """Block until ``committed_size() >= size`` or ``timeout`` seconds pass; return whether it was."""
        ...

    def position_of(self, payload: bytes) -> int | None:
        """The position of ``payload`` if this replica committed it, else ``None`` (local, non-blocking)."""
        ...

    def leader(self) -> str | None:
        """The last known leader's address, or ``None`` during an election; may be stale by one election."""
        ...

    def status(self) -> dict[str, Any]:
        """A diagnostic snapshot: ``role``, ``term``, ``commit_index``, ``committed_size``, ``leader``,
        ``peers`` (address -> reachable), ``has_quorum``. Not for decisions: any field may change at once.
        """
        ...

    def close(self) -> None:
        """Stop taking part in ordering and release ports and files. Idempotent.

        Appends then raise ``ValueError``; reads of what was already committed still work (Raft backend).
        """
        ...
