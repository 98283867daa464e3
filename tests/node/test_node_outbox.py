"""The outbox as the anchoring worker will drive it: batches with idempotent sequence numbers, receipts,
status changes gated on anchored leaves, and the ledger references the API then shows."""

from __future__ import annotations

import pytest
from nodekit import NodeUnderTest, nurses, physicians

from core import merkle
from core.merkle import inclusion_proof, verify_inclusion
from core.transactions import anchor_batch, tx_id_of
from node import outbox
from node.errors import ConflictError

NETWORK = "ab" * 32


def _build(node: NodeUnderTest, limit: int = 100) -> tuple[int, list[outbox.PendingLeaf], bytes, bytes]:
    with node.ctx.sessions() as session:
        leaves = outbox.pending_leaves(session, limit)
        seq = outbox.next_batch_seq(session)
    root = merkle.root_hash([leaf.leaf_hash for leaf in leaves])
    envelope = anchor_batch(
        NETWORK,
        issuer="440000",
        batch_seq=seq,
        root=root,
        leaf_count=len(leaves),
        key=node.ctx.signing_key,
        timestamp_ms=node.ctx.clock(),
    )
    return seq, leaves, root, envelope


def _record(node: NodeUnderTest, seq: int, leaves: list[outbox.PendingLeaf], root: bytes, envelope: bytes) -> None:
    with node.ctx.sessions() as session, session.begin():
        outbox.record_batch(
            session,
            batch_seq=seq,
            outbox_ids=[leaf.outbox_id for leaf in leaves],
            root_hash=root,
            tx_id=tx_id_of(envelope),
            envelope=envelope,
            now_ms=node.ctx.clock(),
        )


def _anchor(node: NodeUnderTest, seq: int, block: int) -> int:
    with node.ctx.sessions() as session, session.begin():
        return outbox.record_batch_anchored(
            session, batch_seq=seq, block_number=block, log_index=seq, now_ms=node.ctx.clock()
        )


def test_batch_anchor_receipts_and_api_references(node: NodeUnderTest) -> None:
    docs = physicians(5)
    bases = [node.issue(d).json()["base_id"] for d in docs]
    seq, leaves, root, envelope = _build(node)
    assert seq == 0 and [leaf.license_base_id for leaf in leaves] == bases
    _record(node, seq, leaves, root, envelope)
    with node.ctx.sessions() as session:
        assert outbox.pending_leaves(session, 100) == []
        assert [b.batch_seq for b in outbox.unfinished_batches(session)] == [0]
        assert outbox.next_batch_seq(session) == 1
    assert _anchor(node, 0, block=7) == 5
    assert _anchor(node, 0, block=7) == 0  # idempotent
    view = node.client.get(f"/v1/licenses/{bases[3]}", headers=node.auth("operator")).json()
    assert view["status"] == "anchored"
    anchor = view["anchor"]
    assert (anchor["batch_seq"], anchor["leaf_index"], anchor["block_number"]) == (0, 3, 7)
    assert anchor["batch_root"] == root.hex() and anchor["tx_id"] == tx_id_of(envelope)
    proof = inclusion_proof([leaf.leaf_hash for leaf in leaves], 3, 5)
    verify_inclusion(3, 5, leaves[3].leaf_hash, proof, root)
    history = node.client.get(f"/v1/licenses/{bases[3]}/history", headers=node.auth("auditor")).json()
    assert history["events"][0]["ledger"]["state"] == "anchored"
    assert history["versions"][0]["anchor"]["leaf_index"] == 3
    with node.ctx.sessions() as session:
        assert outbox.unfinished_batches(session) == []
        assert outbox.pending_counts(session) == {"leaf:anchored": 5}


def test_recording_the_same_batch_twice_is_a_no_op(node: NodeUnderTest) -> None:
    for d in nurses(3):
        node.issue(d)
    seq, leaves, root, envelope = _build(node)
    _record(node, seq, leaves, root, envelope)
    _record(node, seq, leaves, root, envelope)  # the worker crashed after committing and retried
    assert node.count("anchor_batches") == 1


def test_batch_seq_reuse_gap_wrong_root_and_double_batching_are_refused(node: NodeUnderTest) -> None:
    for d in nurses(4):
        node.issue(d)
    seq, leaves, root, envelope = _build(node)
    first, rest = leaves[:2], leaves[2:]
    root1 = merkle.root_hash([leaf.leaf_hash for leaf in first])
    with pytest.raises(ConflictError, match="not the root"):
        _record(node, seq, first, root, envelope)
    _record(node, seq, first, root1, b"envelope-0")
    root2 = merkle.root_hash([leaf.leaf_hash for leaf in rest])
    with pytest.raises(ConflictError, match="already recorded"):
        _record(node, 0, rest, root2, b"another transaction")
    with pytest.raises(ConflictError, match="not the next"):
        _record(node, 5, rest, root2, b"gap")
    with pytest.raises(ConflictError, match="not a pending leaf"):
        _record(node, 1, first, root1, b"leaf already batched")
    _record(node, 1, rest, root2, b"envelope-1")
    assert node.count("anchor_batches") == 2
    with node.ctx.engine.connect() as conn:
        import sqlalchemy as sa

        rows = conn.execute(sa.text("SELECT batch_seq, leaf_index FROM outbox ORDER BY id")).all()
    assert [tuple(r) for r in rows] == [(0, 0), (0, 1), (1, 0), (1, 1)]


def test_status_changes_wait_for_their_leaf_and_for_earlier_changes(node: NodeUnderTest) -> None:
    doc = physicians(1)[0]
    base = node.issue(doc).json()["base_id"]
    h = node.auth("operator")
    node.client.post(f"/v1/licenses/{base}/events", json={"type": "suspend", "reason": "a"}, headers=h)
    node.client.post(f"/v1/licenses/{base}/events", json={"type": "reinstate", "reason": "b"}, headers=h)
    with node.ctx.sessions() as session:
        assert outbox.pending_status_changes(session, 10) == []  # the leaf is not anchored yet
    seq, leaves, root, envelope = _build(node)
    _record(node, seq, leaves, root, envelope)
    _anchor(node, seq, block=3)
    with node.ctx.sessions() as session:
        [first] = outbox.pending_status_changes(session, 10)
    assert (first.status, first.status_seq, first.batch_seq, first.leaf_index) == ("suspended", 0, 0, 0)
    assert first.license_full_id == doc["license_id"]
    with node.ctx.sessions() as session, session.begin():
        outbox.record_status_submitted(session, first.outbox_id, tx_id="c" * 64, envelope=b"e", now_ms=1)
        outbox.record_status_submitted(session, first.outbox_id, tx_id="c" * 64, envelope=b"e", now_ms=1)
    with node.ctx.sessions() as session:
        assert outbox.pending_status_changes(session, 10) == []  # seq 1 waits until seq 0 is anchored
    with node.ctx.sessions() as session, session.begin():
        outbox.record_status_anchored(session, first.outbox_id, block_number=4, now_ms=2)
    with node.ctx.sessions() as session:
        [second] = outbox.pending_status_changes(session, 10)
    assert (second.status, second.status_seq) == ("reinstated", 1)
    assert second.effective_ms >= first.effective_ms
    with node.ctx.sessions() as session, session.begin(), pytest.raises(ConflictError):
        outbox.record_status_anchored(session, second.outbox_id, block_number=5, now_ms=3)
    history = node.client.get(f"/v1/licenses/{base}/history", headers=h).json()
    assert [e["ledger"]["state"] for e in history["events"]] == ["anchored", "anchored", "pending"]
    assert history["events"][1]["ledger"]["tx_id"] == "c" * 64


def _backlog(node: NodeUnderTest) -> tuple[outbox.Backlog, list[bool]]:
    with node.ctx.sessions() as session:
        return outbox.backlog(session), [outbox.pending_leaves_reach(session, n) for n in range(6)]


def test_backlog_is_what_the_pass_check_needs(node: NodeUnderTest) -> None:
    """The anchoring worker's check before a pass: unfinished work, the lowest pending leaf's time, the span of
    pending leaf ids (an upper bound of their number), and whether N leaves are pending; through every state."""
    empty, reach = _backlog(node)
    assert empty == outbox.Backlog(unfinished=False, first_leaf_ms=None, leaf_span=0)
    assert reach == [True, False, False, False, False, False]
    bases = [node.issue(d).json()["base_id"] for d in physicians(4)]
    with node.ctx.sessions() as session:
        created = [leaf.created_ms for leaf in outbox.pending_leaves(session, 10)]
    backlog, reach = _backlog(node)
    assert backlog == outbox.Backlog(unfinished=False, first_leaf_ms=created[0], leaf_span=4)
    assert reach == [True, True, True, True, True, False]
    seq, leaves, root, envelope = _build(node, limit=3)
    _record(node, seq, leaves, root, envelope)
    backlog, reach = _backlog(node)  # a batch recorded, not yet anchored; one leaf left
    assert backlog == outbox.Backlog(unfinished=True, first_leaf_ms=created[3], leaf_span=1)
    assert reach == [True, True, False, False, False, False]
    _anchor(node, seq, block=2)
    assert _backlog(node)[0] == outbox.Backlog(unfinished=False, first_leaf_ms=created[3], leaf_span=1)
    h = node.auth("operator")
    answer = node.client.post(f"/v1/licenses/{bases[0]}/events", json={"type": "suspend", "reason": "a"}, headers=h)
    assert answer.status_code == 201, answer.text
    backlog, reach = _backlog(node)  # a status change waits
    assert (backlog.unfinished, backlog.first_leaf_ms, backlog.leaf_span) == (True, created[3], 1)
    with node.ctx.sessions() as session:
        [change] = outbox.pending_status_changes(session, 10)
    with node.ctx.sessions() as session, session.begin():
        outbox.record_status_submitted(session, change.outbox_id, tx_id="d" * 64, envelope=b"e", now_ms=1)
    assert _backlog(node)[0].unfinished  # submitted, not yet anchored
    with node.ctx.sessions() as session, session.begin():
        outbox.record_status_anchored(session, change.outbox_id, block_number=3, now_ms=2)
    assert not _backlog(node)[0].unfinished
    answer = node.client.post(f"/v1/licenses/{bases[1]}/events", json={"type": "revoke", "reason": "R09"}, headers=h)
    assert answer.status_code == 201, answer.text
    node.issue(physicians(6)[5])
    backlog, reach = _backlog(node)  # two leaves pending, the ids of both status entries between them
    assert (backlog.unfinished, backlog.first_leaf_ms, backlog.leaf_span) == (True, created[3], 4)
    assert reach == [True, True, True, False, False, False]
