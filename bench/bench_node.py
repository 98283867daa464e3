"""Benchmark the provincial node's write path: bulk import and API issuing, on SQLite and PostgreSQL.

Usage: ``python3 bench/bench_node.py [--count N] [--api N] [--no-postgres] [--no-sqlite] [--modes M,...]``
(10^6 licenses imported with the sealing workers: ``--count 1000000 --modes importN``). Every figure is measured in this
run; ``*_vs_sm2_sign`` divides by the raw SM2 signing rate (``PrivateKey.sign`` over a seal payload of the
same size) measured moments before, the bound every issued license pays once (each is sealed). Import runs in
one process and with ``--workers N`` sealing processes (default: the CPUs); API issuing one license a request
and ``POST /v1/licenses/batch`` (sealed in the request's thread). Anchoring is not included here: end to end with
anchoring is ``bench/bench_anchor.py``.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psycopg
from click.testing import CliRunner
from fastapi.testclient import TestClient

from core import canonical, synth
from core.licenses import canonical_bytes, parse_document
from core.seal import signed_payload
from core.sm2 import PrivateKey
from node.cli import cli
from node.context import open_node
from node.importer import DEFAULT_CHUNK_LINES, run_import
from node.main import create_app
from node.records import MAX_BATCH
from node.sealing import default_workers
from node.settings import load_settings

KEK = "00112233445566778899aabbccddeeff"


def _sign_rate(count: int) -> float:
    key = PrivateKey.generate()
    doc = parse_document(next(synth.generate("physician", 1, "440000", 1)))
    payload = signed_payload(doc.to_canonical_dict(), {"pad": "x" * 200})
    start = time.perf_counter()
    for _ in range(count):
        key.sign(payload)
    return count / (time.perf_counter() - start)


def _node(directory: Path, url: str | None) -> str:
    args = ["node", "init", "--dir", str(directory), "--province", "440000", "--development"]
    result = CliRunner().invoke(cli, [*args, *(["--database-url", url] if url else [])], env={"LICLEDGER_KEK": KEK})
    assert result.exit_code == 0, result.output
    return next(line for line in result.stdout.splitlines() if line.startswith("llk_"))


MODES = ("import1", "importN", "api", "batch")


def _stock(path: Path, count: int, start: int) -> None:
    """``count`` physicians' documents as JSON lines, written as they are generated (10^6 do not fit in a list
    comfortably)."""
    with path.open("wb") as out:
        for doc in synth.generate("physician", count, "440000", 5, start=start):
            out.write(canonical.encode(doc) + b"\n")


def _bench(
    name: str,
    url: str | None,
    count: int,
    api: int,
    sign: float,
    workers: int,
    results: dict[str, float],
    modes: tuple[str, ...] = MODES,
    chunk_lines: int = DEFAULT_CHUNK_LINES,
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp) / "node"
        operator = _node(directory, url)
        ctx = open_node(load_settings(directory, public_rate_per_second=0, public_rate_burst=0))
        try:
            path = Path(tmp) / "stock.jsonl"
            if "import1" in modes:
                _stock(path, count, 0)
                start = time.perf_counter()
                result = run_import(ctx, path, chunk_lines=chunk_lines)
                rate = result.imported / (time.perf_counter() - start)
                results[f"{name}: import, 1 process, licenses/s ({count:,})"] = rate
                results[f"{name}: import_vs_sm2_sign, 1 process"] = rate / sign
            if "importN" in modes:
                _stock(path, count, count)
                start = time.perf_counter()  # includes starting the workers
                result = run_import(ctx, path, chunk_lines=chunk_lines, workers=workers)
                elapsed = time.perf_counter() - start
                rate = result.imported / elapsed
                label = f"{workers} sealing workers (their start-up included)"
                results[f"{name}: import, {label}, licenses/s ({count:,})"] = rate
                results[f"{name}: import, {label}, minutes ({count:,})"] = elapsed / 60
                results[f"{name}: import_vs_sm2_sign, {workers} sealing workers (can exceed 1.0)"] = rate / sign
            if "api" not in modes and "batch" not in modes:
                return
            client = TestClient(create_app(ctx))
            fresh = list(synth.generate("nurse", api, "440000", 6))
            headers = {"Authorization": f"Bearer {operator}"}
            bodies = [canonical_bytes(parse_document(d)) for d in fresh]
            if "api" in modes and api:
                start = time.perf_counter()
                for body in bodies:
                    assert client.post("/v1/licenses", content=body, headers=headers).status_code == 201
                rate = api / (time.perf_counter() - start)
                results[f"{name}: POST /v1/licenses, licenses/s ({api:,}, one client)"] = rate
                results[f"{name}: api_vs_sm2_sign"] = rate / sign
            if "batch" not in modes:
                return
            batch = [canonical_bytes(parse_document(d)) for d in synth.generate("nurse", count, "440000", 6, start=api)]
            start = time.perf_counter()
            for i in range(0, count, MAX_BATCH):
                body = b'{"documents":[' + b",".join(batch[i : i + MAX_BATCH]) + b"]}"
                response = client.post("/v1/licenses/batch", content=body, headers=headers)
                assert response.status_code == 201, response.text
            rate = count / (time.perf_counter() - start)
            results[f"{name}: POST /v1/licenses/batch ({MAX_BATCH} a request), licenses/s ({count:,})"] = rate
            results[f"{name}: batch_api_vs_sm2_sign"] = rate / sign
        finally:
            ctx.close()


def run(
    count: int = 5000,
    api: int = 500,
    postgres: bool = True,
    workers: int | None = None,
    modes: tuple[str, ...] = MODES,
    sqlite: bool = True,
    chunk_lines: int = DEFAULT_CHUNK_LINES,
) -> dict[str, float]:
    os.environ["LICLEDGER_KEK"] = KEK
    workers = default_workers() if workers is None else workers
    results: dict[str, float] = {"CPU cores (os.cpu_count; shared with other work)": float(os.cpu_count() or 1)}
    sign = _sign_rate(2000)
    results["raw SM2 sign/s"] = sign
    results["import lines per transaction (--chunk-lines)"] = chunk_lines
    if sqlite:
        _bench("sqlite", None, count, api, sign, workers, results, modes, chunk_lines)
    if postgres:
        name = f"licledger_bench_{secrets.token_hex(4)}"
        admin = "postgresql://postgres@127.0.0.1:5432/test"
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        try:
            _bench(
                "postgres",
                f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}",
                count,
                api,
                sign,
                workers,
                results,
                modes,
                chunk_lines,
            )
        finally:
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=5000)
    parser.add_argument("--api", type=int, default=500)
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--workers", type=int, default=None, help="sealing worker processes (default: CPUs)")
    parser.add_argument("--no-sqlite", action="store_true")
    parser.add_argument(
        "--chunk-lines",
        type=int,
        default=DEFAULT_CHUNK_LINES,
        help=f"import lines per transaction (default {DEFAULT_CHUNK_LINES}, the importer's)",
    )
    parser.add_argument(
        "--modes",
        default=",".join(MODES),
        help="comma-separated, of: import1 (import in 1 process), importN (with the sealing workers), api "
        "(POST /v1/licenses), batch (POST /v1/licenses/batch); default all. 10^6 licenses: "
        "--count 1000000 --modes importN",
    )
    args = parser.parse_args()
    modes = tuple(m for m in args.modes.split(",") if m)
    unknown = sorted(set(modes) - set(MODES))
    if unknown:
        parser.error(f"unknown mode(s) {', '.join(unknown)}; choose from {', '.join(MODES)}")
    results = run(args.count, args.api, not args.no_postgres, args.workers, modes, not args.no_sqlite, args.chunk_lines)
    for name, value in results.items():
        print(f"{name:80} {value:12,.2f}")


if __name__ == "__main__":
    main()
