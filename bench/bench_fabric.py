"""Benchmark a provincial node anchoring on real Hyperledger Fabric: licenses issued *and anchored* per second
against the raw SM2 signing rate of the same run, as ``bench/bench_anchor.py`` measures on the embedded ledger.

Usage: ``python3 bench/bench_fabric.py [--count N] [--workers N] [--repeat N] [--orgs N]``. Needs Fabric's
binaries (``LICLEDGER_FABRIC_HOME`` or ``peer`` on the PATH, docs/node.md "Running on Hyperledger Fabric"); it
starts the same loopback network as the tests (``tests/network/fabricnet.py``: one Raft orderer, one peer per
organisation, TLS, the contract as chaincode-as-a-service; ``--orgs 3``: three organisations, a majority of
which endorses every transaction, as ``tests/network/test_fabric_three_orgs.py``), puts a new consortium's
genesis on it, joins a SQLite node with ``LICLEDGER_LEDGER_BACKEND=fabric`` through organisation 1's peer and
runs bench_anchor's end-to-end measurement (``_end_to_end``: JSON lines validated, sealed, stored with their
outbox entries per import chunk while the anchoring job runs passes every 100 ms, batches of 4,096, the node's
default; the clock stops at the last receipt), in 1 process and with N sealing workers. Also printed: CPU
microseconds per license of this process and the workers, and of the Fabric processes (orderer, peers,
chaincode servers: on the same cores here, on other machines in production).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "network"))

from bench_anchor import KEK, PASS_INTERVAL_MS, _documents, measured_run  # noqa: E402
from click.testing import CliRunner  # noqa: E402
from fabricnet import FabricNet, fabric_home, fabric_network  # noqa: E402

from network.localnet import NetworkConfig, init_network  # noqa: E402
from node.cli import cli  # noqa: E402
from node.context import open_node  # noqa: E402
from node.sealing import SealingPool, default_workers  # noqa: E402
from node.settings import load_settings  # noqa: E402

MEMBER = "440000"


def run(count: int, workers: int, repeat: int, orgs: int = 1) -> dict[str, float]:
    home = fabric_home()
    if home is None:
        raise SystemExit(
            "no Fabric binaries: set LICLEDGER_FABRIC_HOME (docs/node.md, 'Running on Hyperledger Fabric')"
        )
    os.environ["LICLEDGER_KEK"] = KEK
    out: dict[str, float] = {"CPU cores (os.cpu_count; shared with other work)": float(os.cpu_count() or 1)}
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "fabric").mkdir()
        with fabric_network(home, Path(tmp) / "fabric", orgs=orgs) as net:
            return _run(net, Path(tmp), count, workers, repeat, out)


def _run(net: FabricNet, tmp: Path, count: int, workers: int, repeat: int, out: dict[str, float]) -> dict[str, float]:
    config = init_network(Path(tmp) / "net", ["110000", "310000", MEMBER], seed="bench-fabric")
    directory = Path(tmp) / "node"
    init = ["node", "init", "--dir", str(directory), "--network-dir", str(config.directory)]
    done = CliRunner().invoke(cli, [*init, "--member", MEMBER, "--development"])
    assert done.exit_code == 0, done.output
    ctx = open_node(
        load_settings(
            directory,
            anchor_interval_ms=PASS_INTERVAL_MS,
            **net.node_settings(),
        )
    )
    try:
        assert ctx.ledger is not None
        [genesis] = ctx.ledger.submit([NetworkConfig.load(config.directory).genesis_envelope])
        assert genesis.valid, genesis
        fabric_pids = [p.pid for p in net.procs]
        uscc = ctx.settings.authority_uscc
        with SealingPool(ctx, workers) as pool:
            pool.warm_up()
            pool.map(_documents(MEMBER, workers, uscc, 2 * count), ctx.clock())
            for r in range(repeat):
                for m, (label, with_pool) in enumerate(
                    [("1 process", None), (f"{workers} sealing workers + this process", pool)]
                ):
                    lines = _documents(MEMBER, count, uscc, (3 + 2 * r + m) * count)
                    tag = f"fabric, sqlite: run {r + 1}, {label}"
                    label_ledger = f"Fabric's orderer, {net.orgs} peer(s) and chaincode server(s)"
                    measured_run(ctx, lines, fabric_pids, with_pool, out, tag, label_ledger)
        batches = ctx.ledger.query("GetLedgerInfo")["log"]["size"]
        out["anchor log entries (batches) on Fabric after the runs"] = float(batches)
    finally:
        ctx.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=None, help="sealing worker processes (default: CPUs)")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--orgs", type=int, default=1, help="peer organisations (majority endorsement; default 1)")
    args = parser.parse_args()
    if args.orgs < 1:
        parser.error("--orgs must be at least 1")
    results: dict[str, Any] = run(args.count, args.workers or default_workers(), args.repeat, args.orgs)
    for name, value in results.items():
        print(f"{name:100} {value:12,.2f}")


if __name__ == "__main__":
    main()
