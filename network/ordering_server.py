"""A standalone Raft ordering member, driven over stdin/stdout, for tests, benchmarks and experiments.

In a deployment the peer process embeds :class:`network.raft_ordering.RaftOrdering`; this entry point runs the
same class alone so that tests can kill -9 real ordering processes::

    LICLEDGER_ORDERING_SECRET=... python -m network.ordering_server --self 127.0.0.1:7001 \\
        --partners 127.0.0.1:7002,127.0.0.1:7003 --journal-dir /var/lib/licledger/ord1 \\
        --secret-env LICLEDGER_ORDERING_SECRET

The secret is read from the named environment variable, never from the command line (which ``ps`` shows).
The control channel is the process's own stdin/stdout (no extra listening port): one JSON object per line in,
one per line out. Requests carry an ``id`` that the response repeats; payloads travel as hex.

* ``append {payload, timeout}`` -> ``{position}``; ``append_batch {payloads, timeout}`` -> ``{positions}``
* ``read {position, limit}`` -> ``{payloads}``; ``size`` -> ``{size}``; ``wait_for {size, timeout}`` ->
  ``{reached}``; ``status`` -> ``{status}``
* ``stream {prefix, count, timeout, interval}``: append ``prefix-0``, ``prefix-1``, ... one at a time in the
  background, pausing ``interval`` seconds before each, emitting ``{"event": "ack", "payload", "position"}``
  after each acknowledged append (``nack`` on error) and ``{"event": "stream_done"}`` at the end. A line is
  written only after ``append`` returned, so every ``ack`` read by the driver is an acknowledged entry.
* ``bench {count, batch, size, threads}`` -> per-commit latencies measured inside this process.
* ``close``: leave the cluster and exit. End of stdin does the same.

Failures are reported as ``{"ok": false, "error": type, "message": ...}``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from core.errors import LicledgerError
from network.raft_ordering import RaftOrdering

_out_lock = threading.Lock()


def emit(message: dict[str, Any]) -> None:
    """Write one JSON line to stdout and flush it (a line is a promise: it is written after the fact)."""
    line = json.dumps(message, sort_keys=True)
    with _out_lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def _stream(node: RaftOrdering, prefix: str, count: int, timeout: float, interval: float) -> None:
    for i in range(count):
        time.sleep(interval)
        payload = f"{prefix}-{i}".encode()
        try:
            position = node.append(payload, timeout=timeout)
        except (LicledgerError, ValueError) as exc:
            emit({"event": "nack", "stream": prefix, "payload": payload.hex(), "error": type(exc).__name__})
            continue
        emit({"event": "ack", "stream": prefix, "payload": payload.hex(), "position": position})
    emit({"event": "stream_done", "stream": prefix})


def _bench(node: RaftOrdering, count: int, batch: int, size: int, threads: int) -> dict[str, Any]:
    latencies: list[float] = []
    lock = threading.Lock()
    rounds = max(1, count // (batch * threads))

    def worker() -> None:
        local = []
        for _ in range(rounds):
            payloads = [os.urandom(size) for _ in range(batch)]
            started = time.perf_counter()
            if batch == 1:
                node.append(payloads[0], timeout=30.0)
            else:
                node.append_batch(payloads, timeout=30.0)
            local.append(time.perf_counter() - started)
        with lock:
            latencies.extend(local)

    workers = [threading.Thread(target=worker) for _ in range(threads)]
    started = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    elapsed = time.perf_counter() - started
    return {"latencies": latencies, "elapsed": elapsed, "payloads": rounds * batch * threads}


def _handlers(node: RaftOrdering) -> dict[str, Callable[[dict[str, Any]], dict[str, Any]]]:
    return {
        "append": lambda r: {"position": node.append(bytes.fromhex(r["payload"]), r.get("timeout", 10.0))},
        "append_batch": lambda r: {
            "positions": node.append_batch([bytes.fromhex(p) for p in r["payloads"]], r.get("timeout", 10.0))
        },
        "read": lambda r: {"payloads": [p.hex() for p in node.read(r["position"], r.get("limit", 1000))]},
        "size": lambda r: {"size": node.committed_size()},
        "wait_for": lambda r: {"reached": node.wait_for(r["size"], r["timeout"])},
        "status": lambda r: {"status": node.status()},
        "stream": lambda r: _start_thread(
            _stream, node, r["prefix"], r["count"], r.get("timeout", 10.0), r.get("interval", 0.0)
        ),
        "bench": lambda r: _bench(node, r["count"], r.get("batch", 1), r.get("size", 1024), r.get("threads", 1)),
    }


def _start_thread(target: Callable[..., None], *args: Any) -> dict[str, Any]:
    threading.Thread(target=target, args=args, daemon=True).start()
    return {}


def _serve(node: RaftOrdering, request: dict[str, Any]) -> None:
    handler = _handlers(node).get(request.get("op", ""))
    reply: dict[str, Any] = {"id": request.get("id")}
    try:
        if handler is None:
            raise ValueError(f"unknown op {request.get('op')!r}")
        reply.update(handler(request))
        reply["ok"] = True
    except Exception as exc:  # reported to the driver, which decides what it means
        reply.update({"ok": False, "error": type(exc).__name__, "message": str(exc)})
    emit(reply)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m network.ordering_server", description=__doc__.split("\n")[0])
    parser.add_argument("--self", dest="self_address", required=True, help="this member, ip:port")
    parser.add_argument("--partners", default="", help="the other members, comma-separated ip:port")
    parser.add_argument("--journal-dir", required=True)
    parser.add_argument("--secret-env", required=True, help="name of the environment variable holding the secret")
    parser.add_argument("--compaction-min-entries", type=int, default=100_000, help="0 disables compaction")
    parser.add_argument("--compaction-interval", type=float, default=86_400.0)
    parser.add_argument("--connection-retry", type=float, default=1.0)
    parser.add_argument("--pysyncobj-batching", action="store_true", help="appendEntriesUseBatch=True")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    secret = os.environ.get(args.secret_env)
    if secret is None:
        print(f"environment variable {args.secret_env} is not set", file=sys.stderr)
        return 2
    node = RaftOrdering(
        args.self_address,
        [p for p in args.partners.split(",") if p],
        secret=secret,
        journal_dir=args.journal_dir,
        compaction_min_entries=args.compaction_min_entries or None,
        compaction_interval=args.compaction_interval,
        connection_retry=args.connection_retry,
        low_latency=not args.pysyncobj_batching,
    )
    emit({"event": "ready", "pid": os.getpid(), "size": node.committed_size()})
    try:
        for line in sys.stdin:
            request = json.loads(line)
            if request.get("op") == "close":
                break
            threading.Thread(target=_serve, args=(node, request), daemon=True).start()
    finally:
        node.close()
    emit({"event": "closed"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
