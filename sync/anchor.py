"""The anchoring worker: moves the outbox onto the ledger, batch by batch, crash-safely.

It follows the protocol in :mod:`node.outbox` (whose docstring is the contract) and never trusts its memory over
the database: every decision starts from the outbox, and every step that the ledger will see is recorded first.

One pass (:meth:`AnchorWorker.run_once`), in this order:

0. **Anything due?** From the outbox alone (:func:`node.outbox.backlog`, index probes, no counting): with no
   recorded batch or status change unfinished, no status change waiting and the pending leaves below both
   thresholds, the pass ends without asking the ledger anything and reports no pending counts (``node serve``
   passes every ``anchor_interval_ms``).
1. **Finish unfinished batches** (``built``: recorded, maybe submitted): if the ledger already committed the
   batch's transaction, record it; otherwise submit the *stored* envelope again (same bytes, same ``tx_id``).
2. **Finish submitted status changes** the same way.
3. **New batches**, while the pending leaves reach ``anchor_batch_size`` or the oldest is older than
   ``anchor_batch_max_age_ms`` (or the pass is forced): take up to ``anchor_batch_size`` pending leaves in outbox
   order, ``batch_seq = next_batch_seq()``, the RFC 9162 root over their leaf hashes (:mod:`core.merkle`), sign
   ``AnchorBatch`` (:func:`core.transactions.anchor_batch`) with the province's member key, ``record_batch``
   (committed) **before** submitting, submit and wait for the block, read the batch's anchor-log index
   (``GetBatch``), ``record_batch_anchored``.
4. **Status changes** whose cited version is anchored (:func:`node.outbox.pending_status_changes`): sign
   ``ChangeStatus`` with the leaf's RFC 9162 inclusion proof in its batch, ``record_status_submitted``
   (committed), submit, ``record_status_anchored``; repeat while changes become ready (a license's next change
   waits for its previous one).

Why a crash loses nothing and anchors nothing twice: a leaf is in at most one recorded batch (the outbox's unique
``(batch_seq, leaf_index)`` and pending-only rule); a recorded batch always goes out with its stored bytes, which
the ledger accepts at most once (``BATCH_SEQ_REPLAY``); the ledger's ``batch_seq`` and the node's are both
contiguous from 0, so a batch can be neither skipped nor duplicated. Steps 1-2 run first so that a pass never
signs anything newer than what is still in flight (the ledger refuses a member's transaction dated before its
previous one), and transactions are never dated before one the node signed already, even if the clock steps
back.

Failures: the ledger unreachable (:class:`~node.ledger.LedgerUnavailableError`) ends the pass, leaving everything
recorded for the next one; issuing is unaffected. A batch the contract rejects (:class:`AnchorRejectedError`)
also ends the pass: later batches cannot be anchored before it. A rejected status change is set aside for this
process (not resubmitted every pass) and the pass goes on; :mod:`sync.reconcile` reports both. The ledger holding
*another* transaction under one of the node's numbers is :class:`LedgerConflictError`: evidence of a second
signer with the province's key or of a database restored from an old backup, never repaired automatically.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core import merkle
from core.errors import VerificationError
from core.transactions import anchor_batch, change_status, tx_id_of
from node import outbox
from node.context import NodeContext
from node.db.engine import unit_of_work
from node.db.models import AnchorBatch, Outbox
from node.errors import ConflictError, RotationPendingError
from node.ledger import Committed, Ledger, LedgerUnavailableError, MembershipError
from node.proofs import batch_leaf_hashes

log = logging.getLogger("licledger.anchor")

STEPS = (
    "batch-recorded",
    "batch-submitted",
    "batch-anchored",
    "status-recorded",
    "status-submitted",
    "status-anchored",
)
"""The points a pass reports to ``on_step`` (after the named effect is durable / happened)."""

STATUS_CHUNK = 500
TREE_CACHE = 64
MAX_STATUS_ROUNDS = 16


class AnchorRejectedError(VerificationError):
    """The contract rejected one of the node's transactions. Carries the transaction and the reason code."""

    def __init__(self, what: str, tx_id: str, reason: str | None, message: str | None) -> None:
        self.what = what
        self.tx_id = tx_id
        self.reason = reason
        self.message = message
        super().__init__(f"{what}: transaction {tx_id} rejected: {reason}: {message}")


class LedgerConflictError(VerificationError):
    """The ledger holds another transaction than the node's under the node's number (batch or status seq)."""

    def __init__(self, what: str, ours: str, theirs: str | None) -> None:
        self.what = what
        self.ours = ours
        self.theirs = theirs
        super().__init__(f"{what}: the ledger holds transaction {theirs}, the node recorded {ours}")


@dataclass
class PassReport:
    """What one pass did, and what is left."""

    batches: int = 0
    leaves: int = 0
    statuses: int = 0
    resubmitted: int = 0
    rejected: list[str] = field(default_factory=list)
    error: str | None = None
    pending_leaves: int | None = None
    """Leaves not yet anchored after the pass; ``None`` after a pass that had nothing due (not counted: counting
    cost every idle pass time in proportion to the backlog)."""
    pending_statuses: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _no_step(step: str, detail: dict[str, Any]) -> None:
    log.debug("%s %s", step, detail)


class AnchorWorker:
    """Anchors one node's outbox on ``ledger`` (default: the node's own ledger client). One pass at a time per
    worker; several workers (processes) on one database are safe (the outbox's checks), only wasteful.

    ``on_step(step, detail)`` is called after each durable step (:data:`STEPS`); tests use it to kill the process
    at a chosen point.
    """

    def __init__(
        self,
        node: NodeContext,
        ledger: Ledger | None = None,
        *,
        on_step: Callable[[str, dict[str, Any]], None] = _no_step,
    ) -> None:
        client = ledger if ledger is not None else node.ledger
        if client is None:
            raise ValueError("the node has no ledger: set LICLEDGER_LEDGER_URLS and LICLEDGER_NETWORK_ID")
        self.node = node
        self.ledger = client
        self.on_step = on_step
        self.settings = node.settings
        self.member = node.settings.province
        self._lock = threading.Lock()
        self._trees: OrderedDict[int, merkle.MerkleTree] = OrderedDict()
        self._last_signed: int | None = None
        self._set_aside: dict[str, str] = {}
        """tx id -> reason: status changes the contract rejected, not resubmitted by this worker again."""

    # --- the pass ---

    def run_once(self, *, force: bool = False, check_ledger: bool = False) -> PassReport:
        """One pass (module docstring). Never raises for ledger trouble: the report's ``error`` says it.

        A pass with nothing due (:meth:`_due`) asks the ledger nothing and reports the pending counts, unless
        ``check_ledger`` (``licledger node anchor --once``): then the node's membership is checked all the same,
        so an operator learns at once that the node could not anchor."""
        with self._lock:
            report = PassReport()
            if not (force or check_ledger):
                with self.node.sessions() as session:
                    due = self._due(session)
                if not due:  # nothing to submit nor to sign: the ledger is not asked anything (passes run every second)
                    return report
            try:
                with self.node.sessions() as session:
                    at = self._signing_time(session)
                self.ledger.check_member(self.member, self.node.signing_key.key_id, self.settings.authority_uscc, at)
                self._finish_batches(report)  # envelopes stored earlier: signed before any rotation request
                self._finish_statuses(report)
                self.node.check_no_pending_rotation()  # nothing newly signed while a key rotation is pending
                while self._new_batch(report, force):
                    pass
                for _ in range(MAX_STATUS_ROUNDS):
                    if not self._new_statuses(report):
                        break
            except (LedgerUnavailableError, AnchorRejectedError, LedgerConflictError, MembershipError) as exc:
                report.error = f"{type(exc).__name__}: {exc}"
                log.warning("anchoring pass stopped: %s", report.error)
            except RotationPendingError as exc:
                report.error = f"{type(exc).__name__}: {exc}"
                log.info("anchoring pass paused: a key rotation is pending")
            except _Raced as exc:
                report.error = f"another worker is anchoring: {exc}"
                log.info("anchoring pass yielded: %s", report.error)
            with self.node.sessions() as session:
                counts = outbox.open_counts(session)
            report.pending_leaves = counts.get("leaf:pending", 0) + counts.get("leaf:batched", 0)
            report.pending_statuses = counts.get("status:pending", 0) + counts.get("status:batched", 0)
            if report.batches or report.statuses or report.resubmitted:
                log.info(
                    "anchored %d leaves in %d batches, %d status changes (%d resubmitted); pending %d/%d",
                    report.leaves,
                    report.batches,
                    report.statuses,
                    report.resubmitted,
                    report.pending_leaves,
                    report.pending_statuses,
                )
            return report

    def _due(self, session: Session) -> bool:
        """Whether a pass has anything to do: a recorded batch or status change not yet known to be on the
        ledger, a status change waiting, or pending leaves reaching the batch size or age threshold.

        Index probes, not counts (:func:`node.outbox.backlog`): the age is that of the pending leaf with the
        lowest id (a leaf enqueued concurrently with a lower id but a later time differs by the length of its
        transaction), and the leaves are counted, up to the batch size, only when the span of their ids could
        hold that many."""
        backlog = outbox.backlog(session)
        if backlog.unfinished:
            return True
        if backlog.first_leaf_ms is None:
            return False
        if self.node.clock() - backlog.first_leaf_ms >= self.settings.anchor_batch_max_age_ms:
            return True
        size = self.settings.anchor_batch_size
        return backlog.leaf_span >= size and outbox.pending_leaves_reach(session, size)

    def finish_unfinished(self) -> PassReport:
        """Steps 1-2 only: resubmit (or record) what was recorded but not yet known to be on the ledger.
        Raises the ledger errors that :meth:`run_once` reports."""
        with self._lock:
            report = PassReport()
            self._finish_batches(report)
            self._finish_statuses(report)
            return report

    @property
    def set_aside(self) -> dict[str, str]:
        """Status-change transactions the contract rejected in this process (tx id -> reason)."""
        return dict(self._set_aside)

    # --- batches ---

    def _finish_batches(self, report: PassReport) -> None:
        with self.node.sessions() as session:
            unfinished = [(b.batch_seq, b.tx_id, b.envelope) for b in outbox.unfinished_batches(session)]
        for batch_seq, tx_id, envelope in unfinished:
            self._anchor_batch(batch_seq, tx_id, envelope, report, resubmit=True)

    def _new_batch(self, report: PassReport, force: bool) -> bool:
        """Step 3 once; whether a batch was anchored."""
        size = self.settings.anchor_batch_size
        try:
            with unit_of_work(self.node.sessions) as session:
                leaves = outbox.pending_leaves(session, size)
                if not leaves:
                    return False
                oldest = min(leaf.created_ms for leaf in leaves)
                if (
                    not force
                    and len(leaves) < size
                    and self.node.clock() - oldest < self.settings.anchor_batch_max_age_ms
                ):
                    return False
                now = self._signing_time(session)
                batch_seq = outbox.next_batch_seq(session)
                root = merkle.root_hash([leaf.leaf_hash for leaf in leaves])
                envelope = anchor_batch(
                    self.ledger.network_id,
                    issuer=self.member,
                    batch_seq=batch_seq,
                    root=root,
                    leaf_count=len(leaves),
                    key=self.node.signing_key,
                    timestamp_ms=now,
                )
                tx_id = tx_id_of(envelope)
                outbox.record_batch(
                    session,
                    batch_seq=batch_seq,
                    outbox_ids=[leaf.outbox_id for leaf in leaves],
                    root_hash=root,
                    tx_id=tx_id,
                    envelope=envelope,
                    now_ms=now,
                )
        except (ConflictError, IntegrityError) as exc:
            raise _Raced(str(exc).splitlines()[0]) from None
        self.on_step("batch-recorded", {"batch_seq": batch_seq, "tx_id": tx_id, "leaves": len(leaves)})
        self._anchor_batch(batch_seq, tx_id, envelope, report, resubmit=False)
        return True

    def _anchor_batch(self, batch_seq: int, tx_id: str, envelope: bytes, report: PassReport, *, resubmit: bool) -> None:
        where = self.ledger.committed(tx_id) if resubmit else None
        if where is None or not where.valid:
            verdict = self.ledger.submit([envelope])[0]
            self.on_step("batch-submitted", {"batch_seq": batch_seq, "tx_id": tx_id})
            where = self._resolve(f"batch {batch_seq}", tx_id, verdict, ("BATCH_SEQ_DUPLICATE",))
            report.resubmitted += int(resubmit)
        answer = self.ledger.query("GetBatch", self.member, str(batch_seq))
        theirs = None if answer is None else answer["record"]["tx_id"]
        if theirs != tx_id:
            raise LedgerConflictError(f"batch {batch_seq}", tx_id, theirs)
        with unit_of_work(self.node.sessions) as session:
            added = outbox.record_batch_anchored(
                session,
                batch_seq=batch_seq,
                block_number=where.block,
                log_index=int(answer["log_index"]),
                now_ms=self.node.clock(),
            )
        report.batches += 1
        report.leaves += added
        self.on_step("batch-anchored", {"batch_seq": batch_seq, "block": where.block, "leaves": added})

    def _resolve(self, what: str, tx_id: str, verdict: Committed, conflicts: Sequence[str]) -> Committed:
        """The valid commit of ``tx_id``: this verdict, or the first copy for a replay; else raise."""
        if verdict.valid:
            return verdict
        first = self.ledger.committed(tx_id)
        if first is not None and first.valid:
            return first
        if verdict.reason in conflicts:
            raise LedgerConflictError(what, tx_id, None)
        raise AnchorRejectedError(what, tx_id, verdict.reason, verdict.message)

    # --- status changes ---

    def _finish_statuses(self, report: PassReport) -> None:
        with self.node.sessions() as session:
            rows = session.execute(
                sa.select(Outbox.id, Outbox.tx_id, Outbox.envelope)
                .where(Outbox.kind == "status", Outbox.state == "batched")
                .order_by(Outbox.id)
            ).all()
        todo = [(oid, str(tx), bytes(env or b"")) for oid, tx, env in rows if tx not in self._set_aside]
        if not todo:
            return
        waiting = []
        for oid, tx_id, envelope in todo:
            where = self.ledger.committed(tx_id)
            if where is not None and where.valid:
                self._status_anchored(oid, where, report)
            else:
                waiting.append((oid, tx_id, envelope))
        if waiting:
            self._submit_statuses(waiting, report)
            report.resubmitted += len(waiting)

    def _new_statuses(self, report: PassReport) -> bool:
        """Step 4 for the changes ready now; whether any was anchored or set aside."""
        with unit_of_work(self.node.sessions) as session:
            ready = outbox.pending_status_changes(session, STATUS_CHUNK)
            if not ready:
                return False
            now = self._signing_time(session)
            signed = []
            for change in ready:
                tree = self._tree(session, change.batch_seq)
                envelope = change_status(
                    self.ledger.network_id,
                    issuer=self.member,
                    license_id=change.license_full_id,
                    status=change.status,
                    reason=change.reason,
                    effective_ms=change.effective_ms,
                    status_seq=change.status_seq,
                    commitment=change.commitment,
                    batch_seq=change.batch_seq,
                    leaf_index=change.leaf_index,
                    inclusion_proof=tree.inclusion_proof(change.leaf_index),
                    key=self.node.signing_key,
                    timestamp_ms=now,
                )
                tx_id = tx_id_of(envelope)
                try:
                    outbox.record_status_submitted(
                        session, change.outbox_id, tx_id=tx_id, envelope=envelope, now_ms=now
                    )
                except ConflictError as exc:
                    raise _Raced(str(exc)) from None
                signed.append((change.outbox_id, tx_id, envelope))
        self.on_step("status-recorded", {"count": len(signed)})
        before = report.statuses + len(report.rejected)
        self._submit_statuses(signed, report)
        return report.statuses + len(report.rejected) > before

    def _submit_statuses(self, items: list[tuple[int, str, bytes]], report: PassReport) -> None:
        verdicts = self.ledger.submit([env for _, _, env in items])
        self.on_step("status-submitted", {"count": len(items)})
        for (oid, tx_id, _), verdict in zip(items, verdicts, strict=True):
            try:
                where = self._resolve(f"status change {oid}", tx_id, verdict, ())
            except AnchorRejectedError as exc:
                self._set_aside[tx_id] = str(exc.reason)
                report.rejected.append(f"status outbox {oid}: {exc.reason}")
                log.warning("status change (outbox %d) rejected: %s; set aside", oid, exc.reason)
                continue
            self._status_anchored(oid, where, report)

    def _status_anchored(self, outbox_id: int, where: Committed, report: PassReport) -> None:
        with unit_of_work(self.node.sessions) as session:
            outbox.record_status_anchored(session, outbox_id, block_number=where.block, now_ms=self.node.clock())
        report.statuses += 1
        self.on_step("status-anchored", {"outbox_id": outbox_id, "block": where.block})

    def _signing_time(self, session: Session) -> int:
        """The clock, but never before a transaction this node signed already: the ledger refuses a member's
        transaction dated before its previous one (``TIMESTAMP_REGRESSION``), so a clock stepped back must not
        make the node's stored envelopes unacceptable forever."""
        if self._last_signed is None:
            batches = session.scalar(sa.select(sa.func.max(AnchorBatch.created_ms))) or 0
            statuses = session.scalar(
                sa.select(sa.func.max(Outbox.batched_ms)).where(
                    Outbox.kind == "status", Outbox.state.in_(("batched", "anchored"))
                )
            )
            self._last_signed = max(batches, statuses or 0)
        self._last_signed = max(self.node.clock(), self._last_signed)
        return self._last_signed

    def _tree(self, session: Session, batch_seq: int) -> merkle.MerkleTree:
        tree = self._trees.get(batch_seq)
        if tree is None:
            tree = merkle.MerkleTree(batch_leaf_hashes(session, batch_seq))
            self._trees[batch_seq] = tree
            while len(self._trees) > TREE_CACHE:
                self._trees.popitem(last=False)
        else:
            self._trees.move_to_end(batch_seq)
        return tree


class _Raced(Exception):
    """Another worker recorded the same step first; this pass stops and the next one starts from the outbox."""
