"""One peer in-process over the fsync'd single-node orderer and the real executor: the commit loop, invalid
payloads that reach the orderer directly, restart verification and tamper response, checkpoint duties."""

from __future__ import annotations

import itertools
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from core.consortium import NATIONAL, Consortium, build_consortium
from core.transactions import init_consortium, propose_checkpoint
from network.ordering import SingleNodeOrdering
from network.peer.blocks import encode_payload
from network.peer.chaincode import EnvelopeShapeError, ExecutorChaincode
from network.peer.checkpoints import CheckpointDuty
from network.peer.errors import PeerUnhealthyError
from network.peer.peer import Peer
from network.peer.store import BlockStore
from network.workload import Province

PROVINCES = ["110000", "310000"]


@dataclass
class Local:
    consortium: Consortium
    genesis: bytes
    directory: Path

    def peer(self, *, ordering: SingleNodeOrdering | None = None) -> Peer:
        store = BlockStore(f"sqlite:///{self.directory / 'ledger.sqlite'}")
        return Peer(store, ExecutorChaincode(), self.genesis, ordering=ordering, name="local")

    def province(self, name: str) -> Province:
        return Province(self.consortium.network_id, name, self.consortium.keys[name])


@pytest.fixture
def local(tmp_path: Path) -> Local:
    created = int(time.time() * 1000) - 60_000
    consortium = build_consortium(PROVINCES, "local-peer-test", created_ms=created)
    genesis = init_consortium(consortium.genesis, consortium.keys[NATIONAL], timestamp_ms=created)
    return Local(consortium, genesis, tmp_path)


@pytest.fixture
def running(local: Local) -> Iterator[tuple[Peer, SingleNodeOrdering]]:
    ordering = SingleNodeOrdering(local.directory / "orderer.journal")
    peer = local.peer(ordering=ordering)
    peer.open()
    peer.start()
    yield peer, ordering
    peer.stop()
    ordering.close()


def test_genesis_is_block_zero_and_formed_identically(local: Local) -> None:
    a = local.peer()
    a.open()
    (local.directory / "other").mkdir()
    b = Peer(
        BlockStore(f"sqlite:///{local.directory / 'other' / 'b.sqlite'}"),
        ExecutorChaincode(),
        local.genesis,
        name="b",
    )
    b.open()
    assert a.height == b.height == 1
    assert a.tip_hash == b.tip_hash
    assert a.blocks(0, 1)[0].records[0].valid
    assert a.blocks(0, 1)[0].header.timestamp == local.consortium.genesis.created_ms


def test_garbage_ordered_directly_becomes_a_rejected_tx_and_the_chain_goes_on(
    running: tuple[Peer, SingleNodeOrdering], local: Local
) -> None:
    peer, ordering = running
    ordering.append(b"\x00 not a batch at all")
    ordering.append(encode_payload([b'{"tx":{},"signatures":[]}', b"\xff"]))
    province = local.province("110000")
    result = peer.submit([province.anchor(province.make_batch(3))], wait=True)
    assert result["block"] == 3 and result["txs"][0]["valid"]
    garbage, malformed = peer.blocks(1, 2)
    assert [(r.valid, r.reason) for r in garbage.records] == [(False, "MALFORMED_PAYLOAD")]
    assert [(r.valid, r.reason) for r in malformed.records] == [(False, "MALFORMED_PAYLOAD")] * 2
    assert garbage.header.timestamp == peer.blocks(0, 1)[0].header.timestamp  # no valid tx: time stands still


def test_submission_shape_is_checked_before_ordering(running: tuple[Peer, SingleNodeOrdering]) -> None:
    _, ordering = running
    chaincode = ExecutorChaincode()
    for bad in (b"", b"[]", b'{"tx":{},"signatures":[]}', b'{"signatures":[{"signer":"a"}],"tx":{}}'):
        with pytest.raises(EnvelopeShapeError):
            chaincode.precheck(bad)
    assert ordering.committed_size() == 0


def test_transaction_dated_in_the_future_is_not_ordered(running: tuple[Peer, SingleNodeOrdering], local: Local) -> None:
    """Admission (PeerConfig.max_future_ms): a transaction dated beyond the peer's clock plus the tolerance would
    hold back checkpoints until real time reached it, so the peer refuses to order it and names the skew."""
    peer, ordering = running
    key = local.consortium.keys[NATIONAL]
    ahead = _now_ms() + peer.config.max_future_ms + 60_000
    future = propose_checkpoint(local.consortium.network_id, member=NATIONAL, seq=0, key=key, timestamp_ms=ahead)
    before = ordering.committed_size()
    with pytest.raises(ValueError, match=r"ahead of this peer's clock"):
        peer.submit([future], wait=True)
    assert ordering.committed_size() == before
    near = propose_checkpoint(
        local.consortium.network_id, member=NATIONAL, seq=0, key=key, timestamp_ms=_now_ms() + 1000
    )
    assert peer.submit([near], wait=True)["txs"][0]["valid"]  # within the tolerance: ordered and valid


def test_anchor_replayed_twice_in_one_block_is_refused_both_times(local: Local) -> None:
    """Within a block each transaction sees the writes of the valid ones before it."""
    ordering = SingleNodeOrdering(local.directory / "orderer.journal")
    peer = local.peer(ordering=ordering)
    peer.open()
    province = local.province("110000")
    batch = province.make_batch(2)
    anchor = province.anchor(batch)
    peer.commit_payload(1, encode_payload([anchor]))
    block = peer.commit_payload(2, encode_payload([anchor, anchor]))
    assert [(r.valid, r.reason) for r in block.records] == [(False, "BATCH_SEQ_REPLAY")] * 2
    ordering.close()


def test_restart_detects_a_block_altered_on_disk_and_refuses_to_serve_it(local: Local) -> None:
    ordering = SingleNodeOrdering(local.directory / "orderer.journal")
    peer = local.peer(ordering=ordering)
    peer.open()
    province = local.province("310000")
    for _ in range(4):
        peer.commit_payload(peer.height, encode_payload([province.anchor(province.make_batch(2))]))
    peer.store.close()
    with sqlite3.connect(local.directory / "ledger.sqlite") as conn:
        conn.execute("UPDATE txs SET reason = 'FORGED' WHERE block_number = 2")
    restarted = local.peer(ordering=ordering)
    restarted.open()
    assert not restarted.healthy and restarted.bad_block == 2
    assert "block 2" in (restarted.problem or "")
    assert len(restarted.blocks(0, 2)) == 2
    with pytest.raises(PeerUnhealthyError) as exc:
        restarted.blocks(2, 1)
    assert exc.value.block == 2
    with pytest.raises(PeerUnhealthyError):
        restarted.query("GetLedgerInfo", [])
    ordering.close()


def test_state_row_altered_on_disk_is_detected_at_startup(local: Local) -> None:
    peer = local.peer()
    peer.open()
    peer.store.close()
    with sqlite3.connect(local.directory / "ledger.sqlite") as conn:
        conn.execute("UPDATE state SET value = X'00' WHERE key = (SELECT min(key) FROM state)")
    restarted = local.peer()
    restarted.open()
    assert not restarted.healthy and restarted.bad_block == 0


def test_members_propose_and_cosign_until_a_checkpoint_is_final(
    running: tuple[Peer, SingleNodeOrdering], local: Local
) -> None:
    peer, _ = running
    names = [NATIONAL, *PROVINCES]
    duties = [
        CheckpointDuty(
            peer,
            member=name,
            key=local.consortium.keys[name],
            network_id=local.consortium.network_id,
            interval=3,
            proposers=names,
            idle_interval=0.3,
        )
        for name in names
    ]
    for duty in duties:
        peer.add_commit_hook(duty.on_block)
        duty.start()
    try:
        province = local.province("110000")
        for _ in range(4):
            assert peer.submit([province.anchor(province.make_batch(5))], wait=True)["txs"][0]["valid"]
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            info = peer.chaincode.describe(peer.query("GetLedgerInfo", [])[1])
            if info["latest_final_checkpoint"] is not None:
                cp = peer.chaincode.describe(peer.query("GetLatestFinalCheckpoint", [])[1])
                if cp["fields"]["log_size"] == 4:
                    break
            time.sleep(0.1)
        else:
            raise AssertionError("no final checkpoint over the 4 anchors")
        assert len({c["member"] for c in cp["cosignatures"]}) >= cp["quorum"]
    finally:
        for duty in duties:
            duty.stop()


def _duties(peer: Peer, local: Local, members: list[str], **kw: object) -> list[CheckpointDuty]:
    """Checkpoint duties of ``members`` on one peer, hooked to its commits (not started)."""
    duties = [
        CheckpointDuty(
            peer,
            member=name,
            key=local.consortium.keys[name],
            network_id=local.consortium.network_id,
            interval=1000,  # no block window in these tests: proposals come from the idle rule
            proposers=members,
            idle_interval=0.3,
            **kw,  # type: ignore[arg-type]
        )
        for name in members
    ]
    for duty in duties:
        peer.add_commit_hook(duty.on_block)
    return duties


def _checkpoint(peer: Peer, seq: int) -> dict[str, Any]:
    value: dict[str, Any] = peer.chaincode.describe(peer.query("GetCheckpoint", [str(seq)])[1])
    return value


def _wait_final(peer: Peer, what: str, check: Any, timeout: float = 20) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = peer.chaincode.describe(peer.query("GetLedgerInfo", [])[1])
        if info["latest_final_checkpoint"] is not None:
            cp = _checkpoint(peer, info["latest_final_checkpoint"])
            if check(cp):
                return cp
        time.sleep(0.05)
    raise AssertionError(f"no final checkpoint {what}")


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def test_checkpoint_proposed_by_a_member_that_never_transacted_carries_the_current_time(
    running: tuple[Peer, SingleNodeOrdering], local: Local
) -> None:
    """310000 never transacted: its key is valid from the genesis, a minute ago, and it has no clock. Its
    checkpoint is dated now all the same (a verifier with a maximum checkpoint age of seconds accepts it)."""
    peer, _ = running
    duties = _duties(peer, local, ["310000", NATIONAL])  # 310000's turn at idle (first by name)
    for duty in duties:
        duty.start()
    try:
        province = local.province("110000")
        started = _now_ms()
        assert peer.submit([province.anchor(province.make_batch(3))], wait=True)["txs"][0]["valid"]
        cp = _wait_final(peer, "over the anchor", lambda c: c["fields"]["log_size"] == 1)
        assert cp["proposer"] == "310000"
        assert started <= cp["fields"]["timestamp_ms"] <= _now_ms()
        with peer.store.snapshot() as snap:
            assert snap.get("clock/310000") is None  # its duties did not touch its own clock
            assert snap.get("clock/310000/duty") is not None
    finally:
        for duty in duties:
            duty.stop()


def test_idle_ledger_gets_a_fresh_checkpoint_after_the_refresh_interval_and_no_more(
    running: tuple[Peer, SingleNodeOrdering], local: Local
) -> None:
    peer, _ = running
    refresh = 1500
    duties = _duties(peer, local, ["310000", NATIONAL], refresh_ms=refresh)
    for duty in duties:
        duty.start()
    try:
        province = local.province("110000")
        assert peer.submit([province.anchor(province.make_batch(3))], wait=True)["txs"][0]["valid"]
        first = _wait_final(peer, "over the anchor", lambda c: c["fields"]["log_size"] == 1)
        # nothing changes any more; a newer checkpoint over the same log comes once the first is stale
        fresh = _wait_final(peer, "refreshed", lambda c: c["seq"] > first["seq"])
        assert fresh["fields"]["log_size"] == 1 and fresh["fields"]["log_root"] == first["fields"]["log_root"]
        assert fresh["fields"]["timestamp_ms"] - first["fields"]["timestamp_ms"] >= refresh
        assert _now_ms() - fresh["fields"]["timestamp_ms"] < refresh + 2000
        # heartbeats only: no checkpoint begets another sooner than the refresh interval
        time.sleep(2.0)
        info = peer.chaincode.describe(peer.query("GetLedgerInfo", [])[1])
        stamps = [_checkpoint(peer, s)["fields"]["timestamp_ms"] for s in range(info["checkpoint_next"])]
        assert all(b - a >= refresh for a, b in itertools.pairwise(stamps[1:])), stamps
        assert len(stamps) <= 2 + (stamps[-1] - stamps[0]) // refresh, stamps
    finally:
        for duty in duties:
            duty.stop()


def test_cosigners_refuse_a_checkpoint_dated_outside_their_tolerance_and_the_ledger_moves_past_it(
    running: tuple[Peer, SingleNodeOrdering], local: Local
) -> None:
    peer, _ = running
    members = ["310000", NATIONAL, "110000"]
    duties = _duties(peer, local, members, tolerance_ms=5000)
    # a proposal dated a minute ago (valid for the contract: the key was valid, no later transaction)
    stale_ms = local.consortium.genesis.created_ms + 1000
    stale = propose_checkpoint(
        local.consortium.network_id, member=NATIONAL, seq=0, key=local.consortium.keys[NATIONAL], timestamp_ms=stale_ms
    )
    assert peer.submit([stale], wait=True)["txs"][0]["valid"]
    for duty in duties:
        duty.start()  # each sees the proposal's block first
    try:
        fresh = _wait_final(peer, "superseding the stale one", lambda c: c["seq"] >= 1)
        assert abs(_now_ms() - fresh["fields"]["timestamp_ms"]) < 5000
        old = _checkpoint(peer, 0)
        assert not old["final"] and old["cosignatures"] == []
        for duty in duties:
            assert 0 in duty.refused and "behind this member's clock" in duty.refused[0]
    finally:
        for duty in duties:
            duty.stop()


def test_concurrent_submissions_are_split_to_fit_the_orderers_payload_limit(local: Local) -> None:
    """The Raft orderer refuses entries over its byte limit (large entries cause elections), so the peer's
    client-side batching must cap payloads by bytes as well as by count."""
    import threading

    limit = 3000
    ordering = SingleNodeOrdering(local.directory / "orderer.journal", max_payload_bytes=limit)
    peer = local.peer(ordering=ordering)
    peer.open()
    peer.start()
    try:
        province = local.province("110000")
        anchors = [province.anchor(province.make_batch(2)) for _ in range(12)]
        assert sum(len(a) for a in anchors) > limit  # together they would not fit in one payload
        results: list[dict[str, object]] = []
        threads = [threading.Thread(target=lambda a=a: results.append(peer.submit([a], wait=True))) for a in anchors]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(results) == 12
        assert max(len(p) for p in ordering.read(0, 1000)) <= limit
        assert ordering.committed_size() >= 2
        with pytest.raises(ValueError, match="orderer takes at most"):
            peer.submit(anchors, wait=False)
    finally:
        peer.stop()
        ordering.close()
