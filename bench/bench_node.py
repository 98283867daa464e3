"""Benchmark the provincial node's write path: bulk import and API issuing, on SQLite and PostgreSQL.

Usage: ``python3 bench/bench_node.py [--count N] [--api N] [--no-postgres]``. Every figure is measured in this
run; ``*_vs_sm2_sign`` divides by the raw SM2 signing rate (``PrivateKey.sign`` over a seal payload of the
same size) measured moments before, the bound every issued license pays once (each is sealed). Anchoring is
not included here: the anchoring worker is the next step (issue 4, second half).
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
from node.importer import run_import
from node.main import create_app
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


def _bench(name: str, url: str | None, count: int, api: int, sign: float, results: dict[str, float]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp) / "node"
        operator = _node(directory, url)
        ctx = open_node(load_settings(directory, public_rate_per_second=0, public_rate_burst=0))
        try:
            docs = list(synth.generate("physician", count, "440000", 5))
            path = Path(tmp) / "stock.jsonl"
            path.write_bytes(b"\n".join(canonical.encode(d) for d in docs) + b"\n")
            start = time.perf_counter()
            result = run_import(ctx, path, chunk_lines=500)
            rate = result.imported / (time.perf_counter() - start)
            results[f"{name}: import, licenses/s ({count:,})"] = rate
            results[f"{name}: import_vs_sm2_sign"] = rate / sign
            client = TestClient(create_app(ctx))
            fresh = list(synth.generate("nurse", api, "440000", 6))
            headers = {"Authorization": f"Bearer {operator}"}
            bodies = [canonical_bytes(parse_document(d)) for d in fresh]
            start = time.perf_counter()
            for body in bodies:
                assert client.post("/v1/licenses", content=body, headers=headers).status_code == 201
            rate = api / (time.perf_counter() - start)
            results[f"{name}: POST /v1/licenses, licenses/s ({api:,}, one client)"] = rate
            results[f"{name}: api_vs_sm2_sign"] = rate / sign
        finally:
            ctx.close()


def run(count: int = 5000, api: int = 500, postgres: bool = True) -> dict[str, float]:
    os.environ["LICLEDGER_KEK"] = KEK
    results: dict[str, float] = {}
    sign = _sign_rate(2000)
    results["raw SM2 sign/s"] = sign
    _bench("sqlite", None, count, api, sign, results)
    if postgres:
        name = f"licledger_bench_{secrets.token_hex(4)}"
        admin = "postgresql://postgres@127.0.0.1:5432/test"
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        try:
            _bench("postgres", f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}", count, api, sign, results)
        finally:
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=5000)
    parser.add_argument("--api", type=int, default=500)
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()
    for name, value in run(args.count, args.api, not args.no_postgres).items():
        print(f"{name:60} {value:12,.2f}")


if __name__ == "__main__":
    main()
