"""Reconciliation: does the ledger hold what the node's records say it anchored? Repair what can be repaired,
report the rest.

The node's outbox and receipts (:mod:`node.outbox`) are what the node *believes*; the ledger's batch records and
status map are what verifiers will see. Checks, in order:

1. **Repair unfinished work** (unless ``repair=False``): batches recorded but not known anchored, and status
   changes submitted but not known anchored, are looked up on the ledger and recorded, or resubmitted with their
   stored envelopes (:meth:`sync.anchor.AnchorWorker.finish_unfinished`). What is still unfinished afterwards is
   reported (``BATCH_UNFINISHED``, ``STATUS_UNFINISHED`` with the contract's reason if it rejected it).
2. **Every anchored batch** is on the ledger under the node's province and ``batch_seq`` (``BATCH_MISSING``)
   with the node's transaction id, RFC 9162 root, leaf count and anchor-log index (``BATCH_MISMATCH``, naming
   each differing field with both values).
3. **No batch the node does not know**: the ledger has no batch right after the node's last one
   (``BATCH_UNKNOWN``: someone else signed with the province's key, or the database was restored from an old
   backup).
4. **Every license with an anchored status change** has, on the ledger, the status and ``status_seq`` of its
   newest anchored change (``STATUS_MISMATCH``); a ledger ahead of the node is ``STATUS_UNKNOWN``.

Nothing in steps 2-4 is repaired automatically: each needs a person (evidence of a second signer, a lost ledger,
a restored database). The report is structured (:meth:`ReconcileReport.to_dict`) and names objects by batch
number and license identifier only, never personal data.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from typing import Any

import sqlalchemy as sa

from node import outbox
from node.context import NodeContext
from node.db.models import AnchorBatch, License, Outbox
from node.ledger import LedgerUnavailableError, MembershipError
from sync.anchor import AnchorRejectedError, AnchorWorker, LedgerConflictError

log = logging.getLogger("licledger.reconcile")


@dataclass(frozen=True)
class Finding:
    """One disagreement between the node and the ledger (or unfinished work), with both sides' values."""

    code: str
    object: str
    detail: str
    node: Any = None
    ledger: Any = None
    repaired: bool = False

    def describe(self) -> str:
        state = "repaired" if self.repaired else "NOT REPAIRED"
        sides = "" if self.node is None and self.ledger is None else f" (node {self.node!r}, ledger {self.ledger!r})"
        return f"{self.code} {self.object}: {self.detail}{sides} [{state}]"


@dataclass
class ReconcileReport:
    """The outcome: counts checked, findings, what is still pending, and a ledger error if it stopped."""

    batches_checked: int = 0
    statuses_checked: int = 0
    repaired_batches: int = 0
    repaired_statuses: int = 0
    findings: list[Finding] = field(default_factory=list)
    pending: dict[str, int] = field(default_factory=dict)
    error: str | None = None

    @property
    def ok(self) -> bool:
        """No error and every finding repaired."""
        return self.error is None and all(f.repaired for f in self.findings)

    def summary(self) -> str:
        bad = sum(not f.repaired for f in self.findings)
        head = "consistent" if self.ok else f"{bad} problem(s)"
        text = (
            f"{head}: {self.batches_checked} batches and {self.statuses_checked} licenses' statuses checked, "
            f"{self.repaired_batches} batches and {self.repaired_statuses} status changes repaired"
        )
        return text + (f"; stopped: {self.error}" if self.error else "")

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["ok"] = self.ok
        return out


def reconcile(node: NodeContext, *, repair: bool = True, worker: AnchorWorker | None = None) -> ReconcileReport:
    """Run the checks of the module docstring; never raises for ledger trouble (``report.error`` says it)."""
    worker = worker or AnchorWorker(node)
    report = ReconcileReport()
    try:
        if repair:
            _repair(worker, report)
        _unfinished(node, worker, report)
        _batches(node, report)
        _statuses(node, report)
    except (LedgerUnavailableError, LedgerConflictError, MembershipError) as exc:
        report.error = f"{type(exc).__name__}: {exc}"
    with node.sessions() as session:
        report.pending = outbox.pending_counts(session)
    if not report.ok:
        log.warning("reconciliation: %s", report.summary())
    return report


def _repair(worker: AnchorWorker, report: ReconcileReport) -> None:
    try:
        done = worker.finish_unfinished()
    except AnchorRejectedError as exc:
        report.findings.append(
            Finding(
                "BATCH_REJECTED",
                exc.what,
                f"the contract rejects the stored transaction: {exc.reason}",
                node=exc.tx_id,
                ledger=exc.reason,
            )
        )
        return
    report.repaired_batches += done.batches
    report.repaired_statuses += done.statuses
    if done.batches or done.statuses:
        report.findings.append(
            Finding(
                "UNFINISHED",
                "outbox",
                f"{done.batches} batches and {done.statuses} status changes were "
                "recorded but not known anchored; now anchored",
                repaired=True,
            )
        )


def _unfinished(node: NodeContext, worker: AnchorWorker, report: ReconcileReport) -> None:
    rejected = worker.set_aside
    with node.sessions() as session:
        for batch in outbox.unfinished_batches(session):
            report.findings.append(
                Finding("BATCH_UNFINISHED", f"batch {batch.batch_seq}", "recorded, not anchored", node=batch.tx_id)
            )
        rows = session.execute(
            sa.select(Outbox.tx_id, License.base_id, Outbox.status_seq)
            .join(License, License.id == Outbox.license_id)
            .where(Outbox.kind == "status", Outbox.state == "batched")
        ).all()
    for tx_id, base_id, seq in rows:
        reason = rejected.get(str(tx_id))
        detail = f"status_seq {seq} submitted, not anchored" + (f": rejected ({reason})" if reason else "")
        report.findings.append(Finding("STATUS_UNFINISHED", base_id, detail, node=tx_id, ledger=reason))


def _batches(node: NodeContext, report: ReconcileReport) -> None:
    member = node.settings.province
    ledger = node.ledger
    assert ledger is not None
    with node.sessions() as session:
        batches = list(session.scalars(sa.select(AnchorBatch).order_by(AnchorBatch.batch_seq)))
    for batch in batches:
        if batch.state != "anchored":
            continue
        report.batches_checked += 1
        answer = ledger.query("GetBatch", member, str(batch.batch_seq))
        name = f"batch {batch.batch_seq}"
        if answer is None:
            report.findings.append(Finding("BATCH_MISSING", name, "anchored on the node, absent from the ledger"))
            continue
        record = answer["record"]
        ours = {
            "tx_id": batch.tx_id,
            "root": batch.root_hash.hex(),
            "leaf_count": batch.leaf_count,
            "log_index": batch.log_index,
        }
        theirs = {
            "tx_id": record.get("tx_id"),
            "root": record.get("root"),
            "leaf_count": record.get("leaf_count"),
            "log_index": answer.get("log_index"),
        }
        for key in ours:
            if ours[key] != theirs[key]:
                report.findings.append(Finding("BATCH_MISMATCH", name, key, node=ours[key], ledger=theirs[key]))
    following = len(batches)
    answer = ledger.query("GetBatch", member, str(following))
    if answer is not None:
        report.findings.append(
            Finding(
                "BATCH_UNKNOWN",
                f"batch {following}",
                "on the ledger under this province, unknown to the node",
                ledger=answer["record"].get("tx_id"),
            )
        )


def _statuses(node: NodeContext, report: ReconcileReport) -> None:
    ledger = node.ledger
    assert ledger is not None
    newest = (
        sa.select(Outbox.license_id, sa.func.max(Outbox.status_seq).label("seq"))
        .where(Outbox.kind == "status", Outbox.state == "anchored")
        .group_by(Outbox.license_id)
        .subquery()
    )
    with node.sessions() as session:
        rows = session.execute(
            sa.select(License.base_id, Outbox.status, Outbox.status_seq, Outbox.tx_id)
            .join(newest, sa.and_(newest.c.license_id == Outbox.license_id, newest.c.seq == Outbox.status_seq))
            .join(License, License.id == Outbox.license_id)
            .where(Outbox.kind == "status")
            .order_by(License.base_id)
        ).all()
    for base_id, status, seq, tx_id in rows:
        report.statuses_checked += 1
        answer = ledger.query("GetStatus", base_id, "")
        record = None if answer is None else answer.get("record")
        if record is None:
            report.findings.append(
                Finding(
                    "STATUS_MISSING",
                    base_id,
                    "anchored status change absent from the ledger",
                    node={"status": status, "status_seq": seq},
                )
            )
            continue
        theirs = {"status": record.get("status"), "status_seq": record.get("status_seq"), "tx_id": record.get("tx_id")}
        ours = {"status": status, "status_seq": seq, "tx_id": tx_id}
        if theirs != ours:
            code = "STATUS_UNKNOWN" if int(record.get("status_seq", -1)) > int(seq or 0) else "STATUS_MISMATCH"
            report.findings.append(Finding(code, base_id, "ledger status differs", node=ours, ledger=theirs))
