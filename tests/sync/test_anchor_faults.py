"""The anchoring worker against a real 4-province network: a worker process SIGKILLed at every step of the outbox
protocol, the ledger down while licenses are issued, a node whose key is not its member's, a tampered record.

Every license must end anchored exactly once, the ledger's batch_seq must be contiguous and equal to the node's,
and reconciliation must find the node and the ledger in agreement (or name the difference)."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from anchorkit import Issuer, documents, join_node, kill_worker_at, ledger_batches, open_joined
from netkit import PROVINCES, Net, licledger

from core import canonical
from core.codes import LicenseId
from node import outbox
from node.context import NodeContext
from node.db.models import AnchorBatch, AnchorReceipt, LicenseVersion, Outbox
from node.ledger import LedgerClient
from sync.anchor import AnchorWorker, PassReport
from sync.reconcile import reconcile

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Net]:
    # 320000 is for the one test whose worker must start from batch 0 on its own (the others share the three)
    n = Net.started(tmp_path_factory.mktemp("anchor") / "net", provinces=(*PROVINCES, "320000"))
    yield n
    n.down()


def _states(ctx: NodeContext) -> dict[str, int]:
    """Entries per ``kind:state``; a leaf counts as ``anchored`` when its batch is (node.outbox)."""
    with ctx.sessions() as session:
        counts = outbox.pending_counts(session)
        entries = session.execute(
            sa.select(Outbox.kind, Outbox.state, sa.func.count()).group_by(Outbox.kind, Outbox.state)
        )
        by_row = {f"{k}:{s}": n for k, s, n in entries}
    # the leaf entries are pending or batched, and the batches account for every batched one
    assert set(by_row) - {"status:pending", "status:batched", "status:anchored"} <= {"leaf:pending", "leaf:batched"}
    assert by_row.get("leaf:batched", 0) == counts.get("leaf:batched", 0) + counts.get("leaf:anchored", 0), counts
    return counts


def _assert_anchored_exactly_once(ctx: NodeContext, net: Net, member: str) -> None:
    """Every outbox entry anchored, one receipt per version, and the ledger's batches are exactly the node's."""
    assert set(_states(ctx)) <= {"leaf:anchored", "status:anchored"}, _states(ctx)
    with ctx.sessions() as session:
        versions = session.scalar(sa.select(sa.func.count()).select_from(LicenseVersion))
        receipts = session.execute(sa.select(AnchorReceipt.version_id, AnchorReceipt.batch_seq)).all()
        batches = list(session.scalars(sa.select(AnchorBatch).order_by(AnchorBatch.batch_seq)))
    assert len(receipts) == versions == len({v for v, _ in receipts})
    on_ledger = ledger_batches(net, member)
    assert [b["record"]["batch_seq"] for b in on_ledger] == list(range(len(batches)))  # contiguous, none missing
    assert [(b["record"]["tx_id"], b["record"]["root"], b["record"]["leaf_count"]) for b in on_ledger] == [
        (b.tx_id, b.root_hash.hex(), b.leaf_count) for b in batches
    ]
    assert sum(b.leaf_count for b in batches) == versions
    report = reconcile(ctx, repair=False)
    assert report.ok and not report.findings, report.to_dict()


def test_worker_killed_at_every_step_anchors_every_license_exactly_once(
    net: Net, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    member = "440000"
    node_dir = tmp_path / "node"
    join_node(node_dir, net, member)
    monkeypatch.setenv("LICLEDGER_ANCHOR_BATCH_SIZE", "4")  # the worker processes inherit it: several batches
    ctx = open_joined(node_dir)
    issuer = Issuer(ctx)
    try:
        ids = issuer.issue(documents("nurse", 10, member, ctx.settings.authority_uscc, start=300))

        # 1. killed after record_batch, before submitting: recorded on the node, absent from the ledger
        kill_worker_at(node_dir, "batch-recorded")
        with ctx.sessions() as session:
            assert [b.state for b in session.scalars(sa.select(AnchorBatch))] == ["built"]
        assert ledger_batches(net, member) == []

        # 2. killed after submitting (the stored envelope), before record_batch_anchored: on the ledger only
        kill_worker_at(node_dir, "batch-submitted")
        assert len(ledger_batches(net, member)) == 1
        assert _states(ctx)["leaf:batched"] == 4

        # 3. the next pass records batch 0 from the ledger without resubmitting, anchors batch 1, killed after
        #    submitting batch 2
        steps = kill_worker_at(node_dir, "batch-submitted", nth=2)
        assert steps.count("STEP batch-anchored") == 2, steps
        assert len(ledger_batches(net, member)) == 3

        # 4. status changes: killed after recording the signed ChangeStatus, then after submitting it
        AnchorWorker(ctx).run_once(force=True)
        issuer.event(ids[0], {"type": "revoke", "reason": "R01"})
        issuer.event(ids[1], {"type": "suspend", "reason": "S01"})
        kill_worker_at(node_dir, "status-recorded")
        assert _states(ctx)["status:batched"] == 2
        kill_worker_at(node_dir, "status-submitted")

        # 5. reconciliation repairs what the killed worker left: the changes are on the ledger, now recorded
        report = reconcile(ctx, repair=True)
        assert report.ok, report.to_dict()
        assert report.repaired_statuses == 2 and _states(ctx).get("status:batched", 0) == 0
        assert net.client(member).get_json(f"/v1/query/GetStatus?arg={ids[0]}&arg=")["status"] == "revoked"

        # 6. reinstate the suspended license, renew another (a new version), and a final uninterrupted pass
        issuer.event(ids[1], {"type": "reinstate", "reason": "S02"})
        issuer.event(ids[2], {"type": "renew", "valid_from": "2024-01-01", "valid_to": "2028-12-31"})
        final = AnchorWorker(ctx).run_once(force=True)
        # the reinstatement, and the renewal's version update once its new version is anchored
        assert final.error is None and final.statuses == 2 and final.leaves == 1, final
        _assert_anchored_exactly_once(ctx, net, member)
        status = net.client(member).get_json(f"/v1/query/GetStatus?arg={ids[1]}&arg=")
        assert (status["status"], status["record"]["status_seq"]) == ("reinstated", 1)
        renewed = net.client(member).get_json(f"/v1/query/GetStatus?arg={ids[2]}&arg=")["record"]
        assert (renewed["reason"], renewed["status"], renewed["status_seq"]) == ("NEW_VERSION", "active", 0)
        assert LicenseId.parse(renewed["license_id"]).version == LicenseId.parse(ids[2]).version + 1

        # 7. a record altered behind the node's back is named, with both values
        with ctx.engine.begin() as conn:
            conn.execute(sa.update(AnchorBatch).where(AnchorBatch.batch_seq == 1).values(root_hash=b"\x01" * 32))
        report = reconcile(ctx, repair=False)
        assert not report.ok
        [finding] = report.findings
        assert (finding.code, finding.object, finding.detail, finding.node) == (
            "BATCH_MISMATCH",
            "batch 1",
            "root",
            "01" * 32,
        )
        assert finding.ledger == ledger_batches(net, member)[1]["record"]["root"]
        done = licledger("node", "reconcile", "--no-repair", "--json", "--dir", node_dir)
        assert done.returncode == 1, done.stderr
        assert [f["code"] for f in json.loads(done.stdout)["findings"]] == ["BATCH_MISMATCH"]
    finally:
        issuer.close()
        ctx.close()


def test_node_key_that_is_not_its_member_key_is_refused(
    net: Net, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A node with a key of its own (not joined with --network-dir) must not anchor: its seals would not verify
    against the membership. The worker checks before signing anything."""
    member = "110000"
    done = licledger("node", "init", "--dir", tmp_path / "node", "--province", member, "--development")
    assert done.returncode == 0, done.stderr
    monkeypatch.setenv("LICLEDGER_NETWORK_ID", net.config.network_id)
    monkeypatch.setenv("LICLEDGER_LEDGER_URLS", net.config.member(member).http_url)
    done = licledger("node", "anchor", "--once", "--dir", tmp_path / "node")
    assert done.returncode == 1
    assert "MembershipError" in done.stderr and "not a key of its member" in done.stderr, done.stderr
    assert ledger_batches(net, member) == []


def test_clock_stepped_back_does_not_make_transactions_unacceptable(net: Net, tmp_path: Path) -> None:
    """The ledger refuses a member's transaction dated before its previous one; a node whose clock steps back an
    hour (NTP correction, VM restore) must still anchor, dating its transactions no earlier than its last one."""
    member = "110000"
    join_node(tmp_path / "node", net, member)
    ctx = open_joined(tmp_path / "node")
    issuer = Issuer(ctx)
    try:
        ids = issuer.issue(documents("nurse", 2, member, ctx.settings.authority_uscc, start=40))
        assert AnchorWorker(ctx).run_once(force=True).leaves == 2
        [first] = ledger_batches(net, member)
        real = ctx.clock
        ctx.clock = lambda: real() - 3_600_000
        issuer.issue(documents("nurse", 2, member, ctx.settings.authority_uscc, start=50))
        issuer.event(ids[0], {"type": "suspend", "reason": "S01"})
        report = AnchorWorker(ctx).run_once(force=True)  # a new worker: it learns the last time from the records
        assert report.error is None and (report.leaves, report.statuses) == (2, 1), report
        batches = ledger_batches(net, member)
        assert batches[1]["record"]["timestamp_ms"] == first["record"]["timestamp_ms"]
        _assert_anchored_exactly_once(ctx, net, member)
    finally:
        issuer.close()
        ctx.close()


def test_ledger_down_issuing_goes_on_and_anchoring_catches_up(net: Net, tmp_path: Path) -> None:
    member = "310000"
    join_node(tmp_path / "node", net, member)
    ctx = open_joined(tmp_path / "node")
    issuer = Issuer(ctx)
    worker = AnchorWorker(ctx)
    uscc = ctx.settings.authority_uscc
    try:
        first = issuer.issue(documents("physician", 3, member, uscc, start=10))
        assert worker.run_once(force=True).leaves == 3
        net.down()
        # issuing, events and reads do not need the ledger
        later = issuer.issue(documents("physician", 4, member, uscc, start=20))
        issuer.event(first[0], {"type": "revoke", "reason": "R09"})
        report = worker.run_once(force=True)
        assert report.error is not None and report.error.startswith("LedgerUnavailableError"), report
        assert (report.pending_leaves, report.pending_statuses) == (4, 1)
        public = issuer.client.get(f"/v1/licenses/{first[1]}/proof")
        assert public.status_code == 503, public.text
        assert issuer.client.get(f"/v1/licenses/{later[0]}/proof").json()["reason"] == "NOT_ANCHORED"

        net.up()
        net.wait_converged()
        report = worker.run_once(force=True)
        assert report.error is None, report
        assert (report.leaves, report.statuses, report.pending_leaves, report.pending_statuses) == (4, 1, 0, 0)
        _assert_anchored_exactly_once(ctx, net, member)
        answer = canonical.decode(net.client(member).query("GetStatus", [first[0], ""])[1])
        assert answer["status"] == "revoked"
    finally:
        issuer.close()
        ctx.close()


def test_pass_with_nothing_due_asks_the_ledger_nothing(net: Net, tmp_path: Path) -> None:
    """``node serve`` runs a pass every second: one with nothing to sign or finish must not touch the ledger (its
    membership query cost every peer CPU on every pass). A worker whose ledger is an unreachable address shows
    it: such a pass reports no error, while a pass with something due (or asked to check) reports the ledger."""
    member = "320000"
    join_node(tmp_path / "node", net, member)
    ctx = open_joined(tmp_path / "node", anchor_batch_size=10, anchor_batch_max_age_ms=60_000)
    issuer = Issuer(ctx)
    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert ctx.ledger is not None
    unreachable = AnchorWorker(ctx, LedgerClient([f"http://127.0.0.1:{port}"], ctx.ledger.network_id, timeout=2))
    try:
        assert unreachable.run_once() == PassReport()  # nothing at all
        issuer.issue(documents("nurse", 3, member, ctx.settings.authority_uscc, start=70))
        report = unreachable.run_once()  # 3 young leaves: below both thresholds; nothing counted
        assert report == PassReport(), report
        with ctx.sessions() as session:
            assert outbox.pending_counts(session)["leaf:pending"] == 3
        issuer.issue(documents("nurse", 7, member, ctx.settings.authority_uscc, start=80))
        reached = unreachable.run_once()  # 10 young leaves: the batch size
        assert reached.error is not None and reached.error.startswith("LedgerUnavailableError"), reached
        assert (reached.pending_leaves, reached.pending_statuses) == (10, 0), reached
        for due in (unreachable.run_once(check_ledger=True), unreachable.run_once(force=True)):
            assert due.error is not None and due.error.startswith("LedgerUnavailableError"), due
        real = ctx.clock
        ctx.clock = lambda: real() + 61_000  # the oldest leaf is now older than the age threshold
        aged = unreachable.run_once()
        assert aged.error is not None and aged.error.startswith("LedgerUnavailableError"), aged
        report = AnchorWorker(ctx).run_once()
        assert (report.error, report.leaves, report.pending_leaves) == (None, 10, 0), report
        _assert_anchored_exactly_once(ctx, net, member)
    finally:
        issuer.close()
        ctx.close()
