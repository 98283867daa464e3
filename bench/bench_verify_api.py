"""Benchmark ``POST /v1/verify`` on a served node: throughput and p50/p99 latency under load from a second process
on loopback, next to the raw SM2 verification rate measured in the same run.

Usage: ``python3 bench/bench_verify_api.py [--licenses 64] [--seconds 8] [--max-requests 20000] [--clients 8]``.

Setup: a real 3-province network and Beijing's node (``licledger node serve``: uvicorn, one worker, in-process
anchoring) with ``--licenses`` issued and anchored; the bundles are fetched from the node (disclosed, each with an
SM2 seal to verify, and public view, without). The load generator is a separate Python process with ``--clients``
threads, each on its own keep-alive HTTP connection, sending for ``--seconds`` or ``--max-requests``, whichever
comes first (bounded in count and time, loopback only). Scenarios: one disclosed bundle per request, one public
bundle per request, and batches of ``--batch`` disclosed bundles; then the same batches on the standalone service
(``licledger verifier serve``, offline, one uvicorn process) verifying in its web process, and with
``--service-workers`` worker processes (``--workers``; batches of at least 32 go to them). ``vs SM2`` divides
verifications/s by the raw ``PublicKey.verify`` rate of the same seals measured in this process before the load
(the bound for disclosed bundles: one SM2 verification each).
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _load(url: str, token: str, bodies: list[bytes], clients: int, seconds: float, max_requests: int) -> dict[str, Any]:
    """Runs in the second process: send ``bodies`` round-robin; latencies in ms of 200 answers."""
    parsed = urllib.parse.urlsplit(url)
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors = [0] * clients
    counter = iter(range(max_requests))
    lock = threading.Lock()
    stop = time.perf_counter() + seconds

    def worker(k: int) -> None:
        conn = http.client.HTTPConnection(parsed.hostname or "127.0.0.1", parsed.port, timeout=60)
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        while time.perf_counter() < stop:
            with lock:
                i = next(counter, None)
            if i is None:
                break
            start = time.perf_counter()
            conn.request("POST", "/v1/verify", body=bodies[i % len(bodies)], headers=headers)
            answer = conn.getresponse()
            answer.read()
            if answer.status == 200:
                latencies[k].append((time.perf_counter() - start) * 1000)
            else:
                errors[k] += 1
        conn.close()

    began = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - began
    flat = sorted(x for per in latencies for x in per)
    return {"ok": len(flat), "errors": sum(errors), "seconds": elapsed, "latencies": flat}


def _pct(values: list[float], p: float) -> float:
    return values[min(len(values) - 1, int(p / 100 * len(values)))] if values else float("nan")


def _sm2_rate(bundles: list[bytes], seconds: float = 2.0) -> float:
    from core.bundle import ProofBundle
    from core.seal import signed_payload

    work = []
    for raw in bundles:
        b = ProofBundle.from_json(raw)
        assert b.document is not None and b.seal is not None and b.member is not None
        key = b.member.key(b.seal.key_id)
        assert key is not None
        work.append((key.public_key, signed_payload(b.document.to_canonical_dict(), b.seal.info()), b.seal.signature))
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        pk, message, signature = work[n % len(work)]
        pk.verify(message, signature)
        n += 1
    return n / (time.perf_counter() - start)


def _scenario(
    url: str, token: str, bodies: list[bytes], per: int, args: argparse.Namespace, tmp: Path
) -> tuple[int, int, float, float, float, float, float, float]:
    """Load ``url``'s ``POST /v1/verify`` with ``bodies`` from ``--procs`` other processes; the table's figures."""
    job = tmp / "job.json"
    job.write_text(
        json.dumps(
            {
                "url": url,
                "token": token,
                "bodies": [b.decode() for b in bodies],
                "clients": max(1, args.clients // args.procs),
                "seconds": args.seconds,
                "max_requests": max(1, (args.max_requests if per == 1 else args.max_requests // per) // args.procs),
            }
        )
    )
    procs = [
        subprocess.Popen(
            [sys.executable, __file__, "--load", str(job)],
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        for _ in range(args.procs)
    ]
    parts = [json.loads(p.communicate(timeout=args.seconds + 120)[0]) for p in procs]
    ok, errors = sum(x["ok"] for x in parts), sum(x["errors"] for x in parts)
    seconds = max(x["seconds"] for x in parts)
    lat = sorted(v for x in parts for v in x["latencies"])
    rps = ok / seconds
    top = lat[-1] if lat else float("nan")
    return ok, errors, rps, rps * per, _pct(lat, 50), _pct(lat, 90), _pct(lat, 99), top


@contextlib.contextmanager
def _service(trust_root: Path, directory: Path, workers: int) -> Iterator[tuple[str, str]]:
    """``licledger verifier serve`` offline on loopback with ``--workers``; its URL and an agency key."""
    from onlinekit import call, free_port

    directory.mkdir()
    keys = directory / "keys.json"
    cli = [sys.executable, "-c", "from node.cli import main; main()", "verifier"]
    made = subprocess.run(
        [*cli, "key", "create", "--keys", str(keys), "--name", "bench"], capture_output=True, text=True, check=True
    )
    port = free_port()
    argv = [*cli, "serve", "--trust-root", str(trust_root), "--keys", str(keys), "--port", str(port)]
    argv += ["--workers", str(workers), "--rate", "1000000", "--burst", "1000000", "--log-level", "WARNING"]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if call(url + "/healthz")[0] == 200:
                    break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the verification service did not start")
            time.sleep(0.2)
        yield url, made.stdout.strip()
    finally:
        proc.terminate()
        proc.wait(15)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--licenses", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--max-requests", type=int, default=20_000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--service-workers", type=int, default=2, help="the service's --workers in its last scenario")
    parser.add_argument("--procs", type=int, default=1, help="load processes sharing --clients")
    parser.add_argument("--load", help=argparse.SUPPRESS)  # internal: run as the load generator
    args = parser.parse_args()
    if args.load:
        job = json.loads(Path(args.load).read_text())
        bodies = [b.encode() for b in job["bodies"]]
        result = _load(job["url"], job["token"], bodies, job["clients"], job["seconds"], job["max_requests"])
        print(json.dumps(result))
        return
    sys.path.insert(0, str(ROOT / "tests" / "verifier"))
    from onlinekit import Deployment, call

    env = {"LICLEDGER_VERIFY_RATE_PER_SECOND": "1000000", "LICLEDGER_VERIFY_RATE_BURST": "1000000"}
    with tempfile.TemporaryDirectory(prefix="bench-verify-") as tmp:
        dep = Deployment.start(Path(tmp), members=("110000",), node_env=env)
        try:
            node = dep.nodes["110000"]
            ids = node.issue(dep.documents("110000", args.licenses))
            for lid in ids:
                node.wait_proof(lid)
            disclosed = []
            for lid in ids:
                status, body = call(f"{node.url}/v1/licenses/{lid}/proof", token=node.operator)
                assert status == 200, body
                disclosed.append(body)
            public = [node.proof(lid)[1] for lid in ids]
            agency = node.api_key("agency")
            sm2 = _sm2_rate(disclosed)
            batches = [
                json.dumps({"bundles": [json.loads(b) for b in disclosed[i : i + args.batch]]}).encode()
                for i in range(0, len(disclosed) - args.batch + 1, args.batch)
            ] or [json.dumps({"bundles": [json.loads(b) for b in disclosed]}).encode()]
            per_batch = len(json.loads(batches[0])["bundles"])
            rows = []
            for name, bodies, per in (
                ("disclosed, 1 per request", disclosed, 1),
                ("public view, 1 per request", public, 1),
                (f"disclosed, batches of {per_batch}", batches, per_batch),
            ):
                rows.append((name, *_scenario(node.url, agency, bodies, per, args, Path(tmp))))
            for workers in (1, args.service_workers):
                with _service(dep.network_json, Path(tmp) / f"service-{workers}", workers) as (url, key):
                    name = f"service, batches of {per_batch}, " + (f"{workers} workers" if workers > 1 else "1 proc")
                    rows.append((name, *_scenario(url, key, batches, per_batch, args, Path(tmp))))
        finally:
            dep.stop()
    print(f"raw SM2 verify (PublicKey.verify, the seals' payloads), this process: {sm2:,.0f}/s")
    print(
        f"load: {args.clients} client threads in {args.procs} other process(es), loopback, "
        f"<= {args.seconds:g} s per scenario"
    )
    head = ("requests", "errors", "req/s", "verif/s", "vs SM2", "p50 ms", "p90 ms", "p99 ms", "max ms")
    widths = (8, 6, 8, 8, 7, 7, 7, 7, 7)
    print(f"{'scenario':<36} " + " ".join(f"{h:>{w}}" for h, w in zip(head, widths, strict=True)))
    for name, ok, errors, rps, vps, p50, p90, p99, top in rows:
        print(
            f"{name:<36} {ok:>8} {errors:>6} {rps:>8.0f} {vps:>8.0f} {vps / sm2:>7.2f} {p50:>7.1f} {p90:>7.1f} "
            f"{p99:>7.1f} {top:>7.0f}"
        )


if __name__ == "__main__":
    main()
