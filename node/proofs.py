"""Proof bundles for the node's licenses, assembled from its own records and the ledger's answers (no HTTP here).

A bundle (:mod:`core.bundle`, format ``licledger-proof/1``) proves one license version against the ledger's
latest **final** (quorum-cosigned) checkpoint. The node contributes what only it has (the leaf's RFC 9162
inclusion proof in its batch, rebuilt from the batch's leaf hashes; the document, salt and seal when disclosed)
and fetches the rest from the ledger at that checkpoint: the batch record (``GetBatch``), its inclusion in the
anchor log (``GetLogInclusionProof`` at the checkpoint's ``tree_size``), the status proof (``GetStatus``) and
the issuer's member record (``GetMember``). :func:`core.bundle.assemble_bundle` refuses parts that do not fit
together, so the node never serves a bundle it could have known to fail verification.

When a proof cannot be given yet, :class:`ProofNotReadyError` says why (HTTP 425 with ``Retry-After``):

* ``NOT_ANCHORED``: the version's batch is not on the ledger yet;
* ``NO_FINAL_CHECKPOINT``: no final checkpoint covers the batch yet (its anchor-log ``tree_size`` is not past
  the batch's log index);
* ``STATUS_PENDING``: the node holds a status change (suspension, revocation, ...) that is not anchored yet, or
  anchored but not yet under a final checkpoint: a bundle now would prove a status the node knows is outdated.

Ledger answers that do not depend on the newest state are cached: batch records (immutable once anchored),
inclusion proofs per ``(log index, tree size)``, member and status proofs per checkpoint, batch trees; the latest
final checkpoint for ``checkpoint_cache_ms``. A first proof of a license therefore costs one ledger round trip
(``GetStatus``), a repeated one none.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.orm import Session

from core import canonical, merkle
from core.bundle import ProofBundle, assemble_bundle
from core.licenses import parse_document
from node.context import NodeContext
from node.db.models import AnchorReceipt, LicenseVersion, Outbox
from node.errors import NodeError
from node.ledger import LedgerClient, LedgerRequestError
from node.queries import Loaded

K = TypeVar("K")
V = TypeVar("V")
CACHE_SIZE = 256


class ProofNotReadyError(NodeError):
    """A proof cannot be given *yet*; ``reason`` is a stable code, ``retry_after`` seconds a hint."""

    def __init__(self, reason: str, message: str, *, retry_after: int) -> None:
        self.reason = reason
        self.retry_after = retry_after
        super().__init__(message)


class NoLedgerError(NodeError):
    """The node has not joined a ledger, so it has no proofs to give."""


class _Lru(OrderedDict[K, V]):
    def __init__(self, size: int = CACHE_SIZE) -> None:
        super().__init__()
        self.size = size
        self.lock = threading.Lock()

    def fetch(self, key: K, make: Callable[[], V]) -> V:
        with self.lock:
            if key in self:
                self.move_to_end(key)
                return self[key]
        value = make()
        with self.lock:
            self[key] = value
            while len(self) > self.size:
                self.popitem(last=False)
        return value


class ProofService:
    """Builds bundles for one node; thread-safe (caches behind locks, ledger client shared)."""

    def __init__(self, node: NodeContext) -> None:
        self.node = node
        self._checkpoint: tuple[float, dict[str, Any] | None] | None = None
        self._cp_lock = threading.Lock()
        self._batches: _Lru[int, dict[str, Any]] = _Lru()
        self._inclusions: _Lru[tuple[int, int], dict[str, Any]] = _Lru()
        self._members: _Lru[int, dict[str, Any]] = _Lru(8)
        self._trees: _Lru[int, merkle.MerkleTree] = _Lru(64)
        self._statuses: _Lru[tuple[str, int], dict[str, Any] | None] = _Lru(4096)

    @property
    def ledger(self) -> LedgerClient:
        if self.node.ledger is None:
            raise NoLedgerError("this node has not joined a ledger: no proofs, no checkpoints")
        return self.node.ledger

    # --- checkpoints ---

    def latest_checkpoint(self) -> dict[str, Any] | None:
        """The latest final checkpoint (``GetLatestFinalCheckpoint``), cached for ``checkpoint_cache_ms``."""
        ttl = self.node.settings.checkpoint_cache_ms / 1000
        with self._cp_lock:
            cached = self._checkpoint
        if cached is not None and time.monotonic() - cached[0] < ttl:
            return cached[1]
        value = self.ledger.latest_final_checkpoint()
        with self._cp_lock:
            self._checkpoint = (time.monotonic(), value)
        return value

    def checkpoint(self, seq: int) -> dict[str, Any] | None:
        """Final checkpoint ``seq`` or ``None`` (unknown or not final)."""
        answer = self.ledger.query("GetCheckpoint", str(seq))
        if answer is None or not answer.get("final") or not answer.get("note"):
            return None
        result: dict[str, Any] = answer
        return result

    def consistency(self, old: dict[str, Any], new: dict[str, Any]) -> list[str]:
        """RFC 9162 §2.1.4 consistency proof (hex) from ``old``'s anchor log to ``new``'s."""
        size1, size2 = int(old["fields"]["log_size"]), int(new["fields"]["log_size"])
        if size1 == 0 or size1 == size2:
            return []
        answer = self.ledger.query("GetLogConsistencyProof", str(size1), str(size2))
        if answer is None:
            raise LedgerRequestError(404, "NOT_FOUND", f"no consistency proof {size1} -> {size2}")
        return list(answer["consistency_proof"])

    # --- bundles ---

    def bundle(self, session: Session, loaded: Loaded, *, disclose: bool) -> ProofBundle:
        """The bundle of ``loaded``'s version; with ``disclose``, document, salt and seal included."""
        settings = self.node.settings
        member = settings.province
        wait = max(1, settings.anchor_batch_max_age_ms // 1000)
        version = loaded.version
        receipt = session.scalar(sa.select(AnchorReceipt).where(AnchorReceipt.version_id == version.id))
        if receipt is None or receipt.log_index is None:
            raise ProofNotReadyError(
                "NOT_ANCHORED", f"license {version.full_id} is not anchored on the ledger yet", retry_after=wait
            )
        status_rows = session.execute(
            sa.select(Outbox.status_seq, Outbox.state).where(
                Outbox.license_id == loaded.row.id, Outbox.kind == "status"
            )
        ).all()
        if any(state != "anchored" for _, state in status_rows):
            raise ProofNotReadyError(
                "STATUS_PENDING", "a status change of this license is not on the ledger yet", retry_after=wait
            )
        newest_seq = max((int(seq or 0) for seq, _ in status_rows), default=-1)
        cp = self.latest_checkpoint()
        if cp is None or int(cp["fields"]["log_size"]) <= receipt.log_index:
            raise ProofNotReadyError(
                "NO_FINAL_CHECKPOINT", "no final checkpoint covers this license's batch yet", retry_after=2
            )
        seq = int(cp["seq"])
        status = self._statuses.fetch(
            (loaded.row.base_id, seq), lambda: self.ledger.query("GetStatus", loaded.row.base_id, str(seq))
        )
        record = None if status is None else status.get("record")
        if (
            status is None
            or (record is None and newest_seq >= 0)
            or (record is not None and int(record["status_seq"]) < newest_seq)
        ):
            raise ProofNotReadyError(
                "STATUS_PENDING",
                "the license's latest status change is not under a final checkpoint yet",
                retry_after=2,
            )
        batch = self._batches.fetch(receipt.batch_seq, lambda: self._query("GetBatch", member, str(receipt.batch_seq)))
        log_size = int(cp["fields"]["log_size"])
        inclusion = self._inclusions.fetch(
            (receipt.log_index, log_size),
            lambda: self._query("GetLogInclusionProof", str(receipt.log_index), str(log_size)),
        )
        member_proof = self._members.fetch(seq, lambda: self._query("GetMember", member, str(seq)))
        tree = self._trees.fetch(receipt.batch_seq, lambda: self._tree(session, receipt.batch_seq))
        document = salt = seal = None
        if disclose:
            document = parse_document(version.document)
            salt = version.salt
            seal = canonical.decode(version.seal)
        return assemble_bundle(
            license_id=version.full_id,
            issuer=member,
            commitment_value=version.commitment,
            leaf_index=receipt.leaf_index,
            leaf_inclusion_proof=tree.inclusion_proof(receipt.leaf_index),
            batch=batch,
            log_inclusion=inclusion,
            status=status,
            member=member_proof,
            checkpoint=cp,
            document=document,
            salt=salt,
            seal=seal,
        )

    def _query(self, function: str, *args: str) -> dict[str, Any]:
        answer = self.ledger.query(function, *args)
        if not isinstance(answer, dict):
            raise LedgerRequestError(404, "NOT_FOUND", f"{function}({', '.join(args)}) found nothing")
        return answer

    @staticmethod
    def _tree(session: Session, batch_seq: int) -> merkle.MerkleTree:
        return merkle.MerkleTree(batch_leaf_hashes(session, batch_seq))


def batch_leaf_hashes(session: Session, batch_seq: int) -> list[bytes]:
    """The leaf hashes of batch ``batch_seq`` in leaf order, from the node's records (the batch's RFC 9162 tree)."""
    return list(
        session.scalars(
            sa.select(LicenseVersion.leaf_hash)
            .join(Outbox, Outbox.version_id == LicenseVersion.id)
            .where(Outbox.kind == "leaf", Outbox.batch_seq == batch_seq)
            .order_by(Outbox.leaf_index)
        )
    )
