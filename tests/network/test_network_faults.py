"""kill -9 in the middle of a stream of anchors: the Raft leader, a follower, then every member at once.

No acknowledged transaction may be lost (acknowledged = a peer returned its ordering position), progress must
resume, and a restarted member must catch up to the same blocks as the others. Real processes, loopback only.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from netkit import Net

from core.transactions import tx_id_of
from network.peer.client import PeerRequestError
from network.procs import kill_member

pytestmark = [pytest.mark.integration, pytest.mark.slow]


class _Stopped(Exception):
    pass


class Stream:
    """Every province anchors small batches through its own peer (falling back to others) in a thread."""

    def __init__(self, net: Net) -> None:
        self.net = net
        self.acked: list[str] = []
        self.pending: dict[str, bytes] = {}
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Stream:
        self._stop.clear()
        self.error = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(60)
        assert not self._thread.is_alive()

    def wait_acks(self, count: int, timeout: float = 40.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.acked) < count:
            assert self.error is None, self.error
            assert time.monotonic() < deadline, f"only {len(self.acked)} of {count} acknowledged"
            time.sleep(0.05)

    def _run(self) -> None:
        names = self.net.names
        try:
            while not self._stop.is_set():
                for name, province in self.net.provinces.items():
                    envelope = self.pending.get(name) or province.anchor(province.make_batch(4))
                    self.pending[name] = envelope  # unknown outcome until a peer acknowledges it
                    prefer = [name, *[n for n in names if n != name]]
                    self._submit(envelope, prefer)
                    self.acked.append(tx_id_of(envelope))
                    del self.pending[name]
        except _Stopped:
            return
        except BaseException as exc:
            self.error = exc

    def _submit(self, envelope: bytes, prefer: list[str]) -> None:
        deadline = time.monotonic() + 45
        while time.monotonic() < deadline:
            for name in prefer:
                if self._stop.is_set():
                    raise _Stopped
                try:
                    self.net.client(name, timeout=12).submit([envelope], wait=False, timeout=10)
                    return
                except PeerRequestError:
                    continue
            time.sleep(0.2)
        raise AssertionError("no peer acknowledged a submission for 45 s")


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Net]:
    network = Net.started(tmp_path_factory.mktemp("faults") / "net", checkpoint_interval=8)
    try:
        yield network
    finally:
        network.down()


@pytest.fixture(scope="module")
def stream(net: Net) -> Stream:
    return Stream(net)


def _assert_no_acknowledged_tx_lost(net: Net, acked: list[str]) -> None:
    for name in net.names:
        client = net.client(name)
        for tx_id in acked:
            found = client.get_json(f"/v1/transactions/{tx_id}")
            assert found["valid"], (name, found)


def _kill_mid_stream(net: Net, stream: Stream, victims: list[str]) -> None:
    stream.start()
    stream.wait_acks(len(stream.acked) + 6)
    for victim in victims:
        assert kill_member(net.config, victim) is not None
    at_kill = len(stream.acked)
    survivors = [n for n in net.names if n not in victims]
    if len(survivors) * 2 > len(net.names):
        stream.wait_acks(at_kill + 6)  # a majority is left: progress resumes without the victims
    stream.stop()
    net.up()  # restarts exactly the members that are down
    net.wait_converged()
    stream.start()
    stream.wait_acks(len(stream.acked) + 3)  # and with them back
    stream.stop()
    net.wait_converged()
    _assert_no_acknowledged_tx_lost(net, stream.acked)


def test_leader_killed_mid_stream_loses_no_acknowledged_tx_and_catches_up(net: Net, stream: Stream) -> None:
    _kill_mid_stream(net, stream, [net.leader()])


def test_follower_killed_mid_stream_loses_no_acknowledged_tx_and_catches_up(net: Net, stream: Stream) -> None:
    leader = net.leader()
    _kill_mid_stream(net, stream, [next(n for n in net.names if n != leader)])


def test_whole_network_killed_mid_stream_loses_no_acknowledged_tx(net: Net, stream: Stream) -> None:
    _kill_mid_stream(net, stream, list(net.names))
    chains = {name: [b["block_hash"] for b in net.all_blocks(name)] for name in net.names}
    common = min(len(c) for c in chains.values())
    assert len({tuple(c[:common]) for c in chains.values()}) == 1
