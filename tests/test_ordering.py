"""The Raft ordering service: configuration refusals (fast, in-process) and fault tests on real processes.

Fault tests start three ``network.ordering_server`` processes on free 127.0.0.1 ports and kill them with
SIGKILL. Every address used here is in 127.0.0.0/8.
"""

from __future__ import annotations

import logging
import os
import pickle
import socket
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from pysyncobj.tcp_connection import TcpConnection

from network.errors import OrderingUnavailableError
from network.ordering import DEFAULT_MAX_PAYLOAD_BYTES, MAX_BATCH_BYTES, OrderingService, RaftOrdering
from network.ordering_cluster import LocalOrderingCluster, OrderingServerProcess, free_loopback_ports
from network.raft_ordering import check_addresses, decode_batch, encode_batch, parse_address

SECRET = "a-test-network-secret-0123456789"
FAST = ("--connection-retry", "0.3")


def _node(tmp_path: Path, **kwargs: object) -> RaftOrdering:
    (port,) = free_loopback_ports(1)
    options: dict[str, object] = {"secret": SECRET, "journal_dir": tmp_path / "journal"}
    options.update(kwargs)
    return RaftOrdering(f"127.0.0.1:{port}", [], **options)  # type: ignore[arg-type]


# --- refusals (no process, no traffic) ----------------------------------------------------------------------


@pytest.mark.parametrize("secret", [None, "", "short", b"fifteen-bytes!!"])
def test_refuses_to_start_without_a_secret_of_16_bytes(tmp_path: Path, secret: object) -> None:
    with pytest.raises(ValueError, match="secret"):
        _node(tmp_path, secret=secret)
    assert not (tmp_path / "journal").exists()


@pytest.mark.parametrize(
    ("self_address", "partners"),
    [
        ("10.1.2.3:7001", []),
        ("192.168.0.10:7001", []),
        ("127.0.0.1:7001", ["127.0.0.1:7002", "172.16.0.5:7003"]),
        ("::1:7001", ["2001:db8::1:7002"]),
    ],
)
def test_refuses_non_loopback_addresses_without_the_flag(
    tmp_path: Path, self_address: str, partners: list[str]
) -> None:
    with pytest.raises(ValueError, match="non-loopback"):
        RaftOrdering(self_address, partners, secret=SECRET, journal_dir=tmp_path / "j")
    assert not (tmp_path / "j").exists()


def test_non_loopback_addresses_need_the_flag_and_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    # The policy function alone: starting a node here would send traffic outside 127.0.0.0/8.
    with caplog.at_level(logging.WARNING, logger="network.raft_ordering"):
        partners = check_addresses("10.1.2.3:7001", ["10.1.2.4:7001", "10.1.2.3:7001"], allow_non_loopback=True)
    assert partners == ["10.1.2.4:7001"]
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("10.1.2.3:7001" in m for m in warned) and any("10.1.2.4:7001" in m for m in warned)


@pytest.mark.parametrize(
    "address",
    [
        "0.0.0.0:7001",
        ":::7001",
        "localhost:7001",
        "127.000.0.1:7001",
        "127.0.0.1",
        "127.0.0.1:0",
        "127.0.0.1:x",
    ],
)
def test_refuses_wildcard_names_and_malformed_addresses_even_with_the_flag(address: str) -> None:
    with pytest.raises(ValueError):
        check_addresses(address, [], allow_non_loopback=True)


def test_parse_address_accepts_canonical_ipv4_and_ipv6() -> None:
    assert str(parse_address("127.0.0.1:7001")[0]) == "127.0.0.1"
    assert parse_address("::1:7001")[1] == 7001


def test_refuses_a_group_writable_journal_dir(tmp_path: Path) -> None:
    journal = tmp_path / "journal"
    journal.mkdir(mode=0o700)
    journal.chmod(0o770)
    with pytest.raises(ValueError, match="writable by group or others"):
        _node(tmp_path)


def test_binds_only_its_loopback_address_not_every_interface(tmp_path: Path) -> None:
    node = _node(tmp_path)
    try:
        port = int(node.status()["self"].rsplit(":", 1)[1])
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        # pysyncobj alone would bind 0.0.0.0, which also answers on 127.0.0.2.
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.2", port), timeout=2).close()
    finally:
        node.close()


def test_a_journal_dir_serves_one_node_at_a_time(tmp_path: Path) -> None:
    node = _node(tmp_path)
    try:
        with pytest.raises(ValueError, match="in use"):
            _node(tmp_path)
    finally:
        node.close()


# --- one member, in process ---------------------------------------------------------------------------------


def test_single_member_orders_deduplicates_and_survives_restart(tmp_path: Path) -> None:
    node = _node(tmp_path)
    address = node.status()["self"]
    try:
        assert isinstance(node, OrderingService)
        assert node.append(b"tx-a", timeout=10) == 0
        assert node.append_batch([b"tx-b", b"tx-a", b"tx-c", b"tx-b"]) == [1, 0, 2, 1]
        assert node.append(b"tx-c") == 2  # a retry returns the first position
        assert node.read(0) == [b"tx-a", b"tx-b", b"tx-c"]
        assert node.read(1, 1) == [b"tx-b"] and node.read(3) == []
        assert node.position_of(b"tx-c") == 2 and node.position_of(b"tx-z") is None
        status = node.status()
        assert status["role"] == "leader" and status["leader"] == address and status["committed_size"] == 3
    finally:
        node.close()
    with pytest.raises(ValueError, match="closed"):
        node.append(b"tx-d")
    restarted = RaftOrdering(address, [], secret=SECRET, journal_dir=tmp_path / "journal")
    try:
        assert restarted.wait_for(3, 10)
        assert restarted.read(0) == [b"tx-a", b"tx-b", b"tx-c"]
        assert restarted.append(b"tx-d") == 3
    finally:
        restarted.close()


def test_misuse_raises_type_and_value_errors(tmp_path: Path) -> None:
    node = _node(tmp_path, max_payload_bytes=64)
    try:
        with pytest.raises(TypeError):
            node.append("text")  # type: ignore[arg-type]
        with pytest.raises(ValueError):
            node.append(b"")
        with pytest.raises(ValueError):
            node.append(b"x" * 65)
        with pytest.raises(ValueError):
            node.append(b"x", timeout=0)
        with pytest.raises(TypeError):
            node.append_batch(b"not-a-list")  # type: ignore[arg-type]
        with pytest.raises(ValueError):
            node.append_batch([])
        with pytest.raises(ValueError):
            node.read(-1)
        with pytest.raises(ValueError):
            node.read(0, 0)
    finally:
        node.close()


def test_append_without_a_quorum_times_out_with_evidence(tmp_path: Path) -> None:
    partner_port, self_port = free_loopback_ports(2)
    node = RaftOrdering(
        f"127.0.0.1:{self_port}", [f"127.0.0.1:{partner_port}"], secret=SECRET, journal_dir=tmp_path / "j"
    )
    try:
        with pytest.raises(OrderingUnavailableError) as caught:
            node.append(b"tx", timeout=1.0)
        assert caught.value.reason == "no_leader" and caught.value.timeout == 1.0
    finally:
        node.close()


def test_batches_larger_than_one_raft_entry_may_carry_are_refused(tmp_path: Path) -> None:
    node = _node(tmp_path)
    try:
        assert node.max_payload_bytes == DEFAULT_MAX_PAYLOAD_BYTES
        with pytest.raises(ValueError, match="exceeds the maximum"):
            node.append(b"x" * (DEFAULT_MAX_PAYLOAD_BYTES + 1))
        with pytest.raises(ValueError, match="split it"):
            node.append_batch([b"x" * 1000] * (MAX_BATCH_BYTES // 1000))
        assert node.committed_size() == 0
    finally:
        node.close()


def test_the_pysyncobj_internal_the_transport_fix_relies_on_exists() -> None:
    # _FlushingTCPTransport re-subscribes connections with their private poll callback (pinned 0.3.17).
    assert callable(getattr(TcpConnection, "_TcpConnection__processConnection", None))


def test_batch_encoding_round_trips_and_rejects_malformed_blobs() -> None:
    payloads = [b"a", b"\x00" * 300, b"tx"]
    blob = encode_batch(payloads)
    assert decode_batch(blob) == payloads
    for bad in [b"", blob[:-1], blob + b"\x00", b"\x02" + blob[1:], encode_batch([]), encode_batch([b""])]:
        assert decode_batch(bad) is None


# --- three processes on loopback ----------------------------------------------------------------------------


def _stream_all(cluster: LocalOrderingCluster, run: str, count: int, interval: float = 0.02) -> None:
    for i, node in enumerate(cluster.nodes):
        node.call("stream", prefix=f"{run}-n{i}", count=count, interval=interval, timeout=20.0)


def _wait_streams(nodes: list[OrderingServerProcess], timeout: float = 60.0) -> None:
    for node in nodes:
        assert node.wait_event(lambda e: e.get("event") == "stream_done", timeout), node.address


def _wait_acks(nodes: list[OrderingServerProcess], at_least: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while any(len(n.acks()) < at_least for n in nodes):
        assert time.monotonic() < deadline, "streams did not start"
        time.sleep(0.02)


def _all_acks(nodes: list[OrderingServerProcess]) -> dict[bytes, int]:
    acked: dict[bytes, int] = {}
    for node in nodes:
        for payload, position in node.acks().items():
            assert acked.setdefault(payload, position) == position
    return acked


def _assert_every_ack_is_in_every_sequence(cluster: LocalOrderingCluster, acked: dict[bytes, int]) -> int:
    size = max(acked.values()) + 1
    sequences = cluster.sequences(size)
    assert len(sequences) == sum(n.alive for n in cluster.nodes)
    assert all(seq == sequences[0] for seq in sequences), "members disagree on the order"
    lost = {p: pos for p, pos in acked.items() if sequences[0][pos] != p}
    assert not lost, f"acknowledged entries lost or moved: {lost}"
    assert len(set(sequences[0])) == size, "a payload was ordered twice"
    return size


def _nacks(node: OrderingServerProcess) -> list[dict[str, object]]:
    return [e for e in node.events() if e.get("event") == "nack"]


@pytest.mark.integration
@pytest.mark.slow
def test_three_members_appending_concurrently_commit_one_identical_sequence(tmp_path: Path) -> None:
    with LocalOrderingCluster(tmp_path, extra_args=FAST) as cluster:
        cluster.wait_leader()
        _stream_all(cluster, "run", 40, interval=0.0)
        _wait_streams(cluster.nodes)
        assert all(len(n.acks()) == 40 and not _nacks(n) for n in cluster.nodes)
        acked = _all_acks(cluster.nodes)
        assert sorted(acked.values()) == list(range(120))  # dense, 0-based, no duplicates
        _assert_every_ack_is_in_every_sequence(cluster, acked)


@pytest.mark.integration
@pytest.mark.slow
def test_leader_kill9_mid_stream_loses_no_acknowledged_entry_and_it_catches_up(tmp_path: Path) -> None:
    with LocalOrderingCluster(tmp_path, extra_args=FAST) as cluster:
        leader = cluster.wait_leader()
        survivors = [n for n in cluster.nodes if n is not leader]
        _stream_all(cluster, "run", 80)
        _wait_acks(cluster.nodes, 10)
        leader.kill()
        acked_at_kill = {n.address: len(n.acks()) for n in survivors}
        new_leader = cluster.wait_leader()
        assert new_leader is not leader
        _wait_streams(survivors)
        for node in survivors:  # progress resumed, and no append failed across the failover
            assert len(node.acks()) == 80 > acked_at_kill[node.address] and not _nacks(node)
        acked = _all_acks(cluster.nodes)  # includes what the old leader acknowledged before dying
        size = _assert_every_ack_is_in_every_sequence(cluster, acked)
        leader.start()
        assert leader.call("wait_for", size=size, timeout=30)["reached"]
        _assert_every_ack_is_in_every_sequence(cluster, acked)
        assert leader.call("append", payload=b"after-restart".hex())["position"] == size


@pytest.mark.integration
@pytest.mark.slow
def test_follower_kill9_mid_stream_loses_nothing_and_it_catches_up(tmp_path: Path) -> None:
    with LocalOrderingCluster(tmp_path, extra_args=FAST) as cluster:
        leader = cluster.wait_leader()
        follower = next(n for n in cluster.nodes if n is not leader)
        survivors = [n for n in cluster.nodes if n is not follower]
        _stream_all(cluster, "run", 60)
        _wait_acks(cluster.nodes, 10)
        follower.kill()
        _wait_streams(survivors)
        assert all(len(n.acks()) == 60 and not _nacks(n) for n in survivors)
        assert cluster.wait_leader() is leader  # losing a follower costs no election
        acked = _all_acks(cluster.nodes)
        size = _assert_every_ack_is_in_every_sequence(cluster, acked)
        follower.start()
        assert follower.call("wait_for", size=size, timeout=30)["reached"]
        _assert_every_ack_is_in_every_sequence(cluster, acked)


@pytest.mark.integration
@pytest.mark.slow
def test_full_cluster_kill9_and_restart_keeps_every_acknowledged_entry(tmp_path: Path) -> None:
    with LocalOrderingCluster(tmp_path, extra_args=FAST) as cluster:
        cluster.wait_leader()
        _stream_all(cluster, "run", 200)
        _wait_acks(cluster.nodes, 15)
        for node in cluster.nodes:
            node.kill()
        acked = _all_acks(cluster.nodes)
        assert acked
        for node in cluster.nodes:
            node.start()
        cluster.wait_leader()
        size = _assert_every_ack_is_in_every_sequence(cluster, acked)
        position = cluster.nodes[0].call("append", payload=b"after-restart".hex())["position"]
        assert position >= size


@pytest.mark.integration
@pytest.mark.slow
def test_member_behind_a_compaction_catches_up_from_the_full_dump(tmp_path: Path) -> None:
    args = (*FAST, "--compaction-min-entries", "20", "--compaction-interval", "0.6")
    with LocalOrderingCluster(tmp_path, extra_args=args) as cluster:
        leader = cluster.wait_leader()
        lagging = next(n for n in cluster.nodes if n is not leader)
        lagging.kill()
        leader.call("stream", prefix="while-down", count=150, interval=0.005)
        _wait_streams([leader])
        acked = _all_acks([leader])
        deadline = time.monotonic() + 20
        while leader.call("status")["status"]["log_entries"] >= 100:  # the prefix the follower lacks is gone
            assert time.monotonic() < deadline, "the leader never compacted its log"
            time.sleep(0.1)
        lagging.start()
        size = _assert_every_ack_is_in_every_sequence(cluster, acked)
        assert (lagging.journal_dir / "raft.dump").exists()  # it caught up by installing the leader's dump
        for node in cluster.nodes:  # and everyone restarts from dump + journal
            node.kill()
        for node in cluster.nodes:
            node.start()
        cluster.wait_leader()
        assert _assert_every_ack_is_in_every_sequence(cluster, acked) == size


# --- the pickle remote-code-execution attack on the Raft port -----------------------------------------------


class _CreateMarkerFile:
    """Unpickling this calls ``os.open(path, O_CREAT)``: code execution in whoever unpickles it."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self) -> tuple[object, ...]:
        return (os.open, (self.path, os.O_CREAT | os.O_WRONLY, 0o600))


def _frame(message_bytes: bytes) -> bytes:
    # pysyncobj framing: native int32 length, then zlib(pickle(message)), Fernet-encrypted with a password.
    return struct.pack("i", len(message_bytes)) + message_bytes


def _attack(port: int, frames: list[bytes]) -> None:
    for frame in frames:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
            conn.sendall(frame)
            time.sleep(0.3)


def _exploit_frames(marker: Path, member: str) -> list[bytes]:
    exploit = zlib.compress(pickle.dumps(_CreateMarkerFile(marker), protocol=2))
    guessed_key = Fernet(Fernet.generate_key())  # an attacker who guesses wrong
    command = b"\x00" + pickle.dumps((0, (encode_batch([b"INJECTED"]),)), protocol=2)  # a real _apply call
    inject = zlib.compress(pickle.dumps({"type": "apply_command", "command": command}, protocol=2))
    return [
        _frame(exploit),
        _frame(guessed_key.encrypt(exploit)),
        _frame(zlib.compress(pickle.dumps(member))) + _frame(inject),  # pose as a member, then inject
    ]


_BARE_PYSYNCOBJ = """
import sys, time
from pysyncobj import SyncObj, SyncObjConf
node = SyncObj(sys.argv[1], [], SyncObjConf(bindAddress=sys.argv[1]))
node.waitBinded()
print("ready", flush=True)
time.sleep(60)
"""


@pytest.mark.integration
@pytest.mark.slow
def test_pickle_rce_on_raft_port_without_the_secret_runs_no_code_and_injects_nothing(tmp_path: Path) -> None:
    # Control: the same bytes against pysyncobj without a password do run code, so the check below can fail.
    (bare_port,) = free_loopback_ports(1)
    bare = subprocess.Popen(
        [sys.executable, "-c", _BARE_PYSYNCOBJ, f"127.0.0.1:{bare_port}"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert bare.stdout is not None and bare.stdout.readline().strip() == "ready"
        control_marker = tmp_path / "control-marker"
        _attack(bare_port, _exploit_frames(control_marker, "127.0.0.1:1")[:1])
        assert control_marker.exists(), "the exploit did not work against unprotected pysyncobj"
    finally:
        bare.kill()
        bare.wait()

    marker = tmp_path / "marker"
    with LocalOrderingCluster(tmp_path, extra_args=FAST) as cluster:
        leader = cluster.wait_leader()
        assert leader.call("append", payload=b"before".hex())["position"] == 0
        for node in cluster.nodes:
            port = int(node.address.rsplit(":", 1)[1])
            member = next(a for a in cluster.addresses if a != node.address)
            _attack(port, _exploit_frames(marker, member))
        assert not marker.exists(), "code ran in an ordering node"
        assert all(n.alive for n in cluster.nodes)
        assert leader.call("append", payload=b"after".hex())["position"] == 1
        assert cluster.sequences(2) == [[b"before", b"after"]] * 3
        assert all(n.call("size")["size"] == 2 for n in cluster.nodes), "an entry was injected"
