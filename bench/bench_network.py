"""Benchmark the embedded ledger on a 3-node loopback network (national + 2 provinces, one process each).

Usage: ``python3 bench/bench_network.py [--single N] [--grouped N]``. ``run()`` returns the figures as a dict.

Every submission goes through a peer's HTTP API, the Raft ordering service and every peer's executor and block
store (SQLite, WAL, ``synchronous=FULL``), exactly as in ``licledger network up``. Figures:

* ``anchor commit latency p50/p99 (ms)``: one ``AnchorBatch`` per submission, from the HTTP call to the
  submitting peer's commit of its block (``wait=true``); each province submits sequentially (its ``batch_seq``
  must be contiguous), both provinces at once.
* ``committed anchor txs/s (one per submission)``: the same run's throughput.
* ``committed anchor txs/s (grouped)``: each submission carries a province's next ``GROUP`` anchors, submitted
  without waiting for the commit; time until the last block is committed at every peer.
* ``licenses anchored/s (batch of 1,000 / 10,000 leaves)``: building the batch (GB/T 36904 identifiers, salted
  commitments, RFC 9162 SM3 tree), signing and anchoring it, until committed; divided into the leaves.
* ``ledger bytes per anchored license`` and ``ledger bytes per anchor tx``: the size of one peer's SQLite
  files (database + WAL, after a checkpoint of the WAL) over everything anchored in this run; the ledger holds
  one root per batch, so the per-license figure is the per-anchor figure over the batch size.
The ``ratio`` figures divide two figures measured in this same run.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from network.localnet import NetworkConfig, init_network, load_member_key
from network.peer.client import PeerClient
from network.procs import down, up
from network.workload import Province

PROVINCES = ("110000", "310000")
GROUP = 25


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _wait_all(config: NetworkConfig, height: int, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    for member in config.members:
        client = PeerClient(member.http_url)
        while client.status()["height"] < height:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{member.name} did not reach height {height}")
            time.sleep(0.02)


def _single(config: NetworkConfig, provinces: dict[str, Province], count: int) -> tuple[list[float], float]:
    latencies: list[float] = []
    lock = threading.Lock()

    def submit(name: str) -> None:
        client = PeerClient(config.member(name).http_url, timeout=60)
        province = provinces[name]
        for _ in range(count):
            envelope = province.anchor(province.make_batch(16))
            start = time.perf_counter()
            result = client.submit([envelope], wait=True, timeout=30)
            elapsed = time.perf_counter() - start
            if not result["txs"][0]["valid"]:
                raise RuntimeError(f"anchor rejected: {result['txs'][0]}")
            with lock:
                latencies.append(elapsed)

    threads = [threading.Thread(target=submit, args=(name,)) for name in provinces]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return latencies, time.perf_counter() - start


def _grouped(config: NetworkConfig, provinces: dict[str, Province], groups: int) -> float:
    last_block = [0]
    lock = threading.Lock()

    def submit(name: str) -> None:
        client = PeerClient(config.member(name).http_url, timeout=60)
        province = provinces[name]
        for _ in range(groups):
            envelopes = [province.anchor(province.make_batch(16)) for _ in range(GROUP)]
            result = client.submit(envelopes, wait=False)
            with lock:
                last_block[0] = max(last_block[0], int(result["block"]))

    threads = [threading.Thread(target=submit, args=(name,)) for name in provinces]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    _wait_all(config, last_block[0] + 1)
    return groups * GROUP * len(provinces) / (time.perf_counter() - start)


def _big_batches(config: NetworkConfig, province: Province, leaves: int, count: int) -> float:
    client = PeerClient(config.member(province.name).http_url, timeout=60)
    start = time.perf_counter()
    for _ in range(count):
        envelope = province.anchor(province.make_batch(leaves))
        result = client.submit([envelope], wait=True, timeout=60)
        if not result["txs"][0]["valid"]:
            raise RuntimeError(f"anchor rejected: {result['txs'][0]}")
    return leaves * count / (time.perf_counter() - start)


def _ledger_bytes(config: NetworkConfig, name: str) -> int:
    db = config.data_dir(name) / "ledger.sqlite"
    with sqlite3.connect(db, timeout=30) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return sum(p.stat().st_size for p in db.parent.glob("ledger.sqlite*"))


def run(single: int = 40, grouped: int = 8, big: dict[int, int] | None = None) -> dict[str, float]:
    big = big or {1_000: 6, 10_000: 2}
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="licledger-bench-network-") as tmp:
        config = init_network(Path(tmp) / "net", list(PROVINCES), seed="bench", checkpoint_interval=50)
        try:
            statuses = up(config)
            if not all(s.healthy for s in statuses):
                raise RuntimeError(f"network not healthy: {statuses}")
            provinces = {name: Province(config.network_id, name, load_member_key(config, name)) for name in PROVINCES}
            latencies, elapsed = _single(config, provinces, single)
            results["anchor commit latency p50 (ms)"] = 1000 * _percentile(latencies, 0.50)
            results["anchor commit latency p99 (ms)"] = 1000 * _percentile(latencies, 0.99)
            results["committed anchor txs/s (one per submission)"] = len(latencies) / elapsed
            results["committed anchor txs/s (grouped)"] = _grouped(config, provinces, grouped)
            results["ratio: grouped / one per submission"] = (
                results["committed anchor txs/s (grouped)"] / results["committed anchor txs/s (one per submission)"]
            )
            for leaves, count in sorted(big.items()):
                rate = _big_batches(config, provinces[PROVINCES[0]], leaves, count)
                results[f"licenses anchored/s (batch of {leaves:,} leaves)"] = rate
            anchors = sum(p.next_batch_seq for p in provinces.values())
            licenses = len(latencies) * 16 + grouped * GROUP * len(PROVINCES) * 16
            licenses += sum(leaves * count for leaves, count in big.items())
            height = max(PeerClient(m.http_url).status()["height"] for m in config.members)
            _wait_all(config, height)
            size = _ledger_bytes(config, "national")
            results["ledger bytes per anchored license"] = size / licenses
            results["ledger bytes per anchor tx"] = size / anchors
            results["ledger height (blocks)"] = float(height)
        finally:
            down(config, timeout=20)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--single", type=int, default=40, help="single-anchor submissions per province")
    parser.add_argument("--grouped", type=int, default=8, help=f"submissions of {GROUP} anchors per province")
    args = parser.parse_args()
    for name, value in run(args.single, args.grouped).items():
        print(f"{name:<50} {value:>12,.2f}")


if __name__ == "__main__":
    main()
