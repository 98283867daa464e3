"""Benchmark the Raft ordering service on a 3-member loopback cluster of real processes.

Usage: ``python3 bench/bench_ordering.py [--count N]``. ``run()`` returns the figures as a dict.

Latencies are measured inside a member process (as the embedding peer would see them): from ``append`` /
``append_batch`` being called to its return, i.e. to commit by a majority. Every figure comes from this run on
this machine; ``*_vs_pysyncobj_default`` divides by the same measurement on a second cluster run with
pysyncobj's default ``appendEntriesUseBatch=True``, moments apart. The full-dump figure times exactly what a
pysyncobj log compaction does with licledger's state (gzip of a pickled list of payloads).
"""

from __future__ import annotations

import argparse
import gzip
import io
import os
import pickle
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from network.ordering_cluster import LocalOrderingCluster

PAYLOAD_BYTES = 1024


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _figures(results: dict[str, float], name: str, reply: dict[str, Any], per: str = "appends") -> None:
    latencies = reply["latencies"]
    results[f"{name}: {per}/s"] = reply["payloads"] / reply["elapsed"]
    results[f"{name}: commit p50 (ms)"] = 1000 * statistics.median(latencies)
    results[f"{name}: commit p99 (ms)"] = 1000 * _percentile(latencies, 0.99)


def _bench(node: Any, count: int, batch: int = 1, threads: int = 1) -> dict[str, Any]:
    reply: dict[str, Any] = node.call(
        "bench", count=count, batch=batch, size=PAYLOAD_BYTES, threads=threads, reply_timeout=600
    )
    if not reply.get("ok"):
        raise RuntimeError(f"bench failed: {reply}")
    return reply


def _cluster_figures(results: dict[str, float], base: Path, count: int) -> None:
    with LocalOrderingCluster(base / "low-latency", extra_args=("--connection-retry", "0.3")) as cluster:
        leader = cluster.wait_leader()
        follower = next(n for n in cluster.nodes if n is not leader)
        term = leader.call("status")["status"]["term"]
        _bench(leader, 50)  # warm-up
        _figures(results, "leader, sync single appends", _bench(leader, count))
        _figures(results, "follower (forwarded), sync single appends", _bench(follower, count))
        _figures(results, "leader, 8 threads of sync single appends", _bench(leader, 4 * count, threads=8))
        for batch in (10, 100):
            reply = _bench(leader, 20 * batch, batch=batch)
            _figures(results, f"leader, client batches of {batch}", reply, per="payloads")
        results["elections during the runs above"] = leader.call("status")["status"]["term"] - term

        size = leader.call("size")["size"]
        started = time.perf_counter()
        follower.kill()
        follower.start()
        assert follower.call("wait_for", size=size, timeout=120, reply_timeout=130)["reached"]
        results[f"follower kill -9, restart, catch-up to {size:,} payloads (s)"] = time.perf_counter() - started

        leader = cluster.wait_leader()  # a restarting member may have caused an election
        survivor = next(n for n in cluster.nodes if n is not leader)
        started = time.perf_counter()
        leader.kill()
        reply = survivor.call("append", payload=b"after-failover".hex(), timeout=30, reply_timeout=40)
        assert reply.get("ok"), reply
        results["leader kill -9 to next committed append on a survivor (s)"] = time.perf_counter() - started

    with LocalOrderingCluster(base / "default", extra_args=("--pysyncobj-batching",)) as cluster:
        leader = cluster.wait_leader()
        _bench(leader, 10)
        reply = _bench(leader, max(20, count // 10))
        default_p50 = 1000 * statistics.median(reply["latencies"])
        results["pysyncobj default batching, sync single appends: commit p50 (ms)"] = default_p50
        results["sync single append p50 vs_pysyncobj_default"] = (
            results["leader, sync single appends: commit p50 (ms)"] / default_p50
        )


def _dump_figure(results: dict[str, float], entries: int) -> None:
    payloads = [os.urandom(PAYLOAD_BYTES) for _ in range(entries)]
    started = time.perf_counter()
    with io.BytesIO() as buffer:
        with gzip.GzipFile(fileobj=buffer, mode="wb") as g:  # pysyncobj's serializer: gzip level 9, pickle 2
            pickle.dump([{}, payloads], g, 2)
        written = buffer.tell()
    elapsed = time.perf_counter() - started
    results[f"full dump of {entries:,} x 1 KiB payloads (s)"] = elapsed
    results["full dump throughput (MB of state/s)"] = entries * PAYLOAD_BYTES / elapsed / 1e6
    results["full dump size / state size"] = written / (entries * PAYLOAD_BYTES)


def run(count: int = 400) -> dict[str, float]:
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="licledger-bench-ordering-") as tmp:
        _cluster_figures(results, Path(tmp), count)
    _dump_figure(results, 20_000)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=400, help="sequential appends per latency figure")
    args = parser.parse_args()
    for key, value in run(args.count).items():
        print(f"  {key:<72} {value:>12,.3f}")


if __name__ == "__main__":
    main()
