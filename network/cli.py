"""``licledger network``: create, start, inspect and stop a local multi-province ledger network (thin
commands).

The work is in :mod:`network.localnet` (directory, keys, genesis) and :mod:`network.procs` (processes).
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from core.consortium import NATIONAL
from network.localnet import DEFAULT_CHECKPOINT_INTERVAL, NetworkConfig, init_network, load_member_key
from network.procs import MemberStatus, down, network_status, up

_DIR = click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("licledger-network"),
    show_default=True,
    help="Network directory.",
)


@click.group("network")
def network() -> None:
    """Create, start, inspect and stop a local multi-province ledger network (loopback only)."""


@network.command("init")
@click.option("--provinces", required=True, help="Comma-separated GB/T 2260 provincial codes, e.g. 110000,310000.")
@_DIR
@click.option("--quorum", type=click.IntRange(min=1), default=None, help="Cosignatures that make a checkpoint final.")
@click.option("--seed", default=None, help="Derive keys from this seed (reproducible; tests and demos only).")
@click.option(
    "--checkpoint-interval",
    type=click.IntRange(min=1),
    default=DEFAULT_CHECKPOINT_INTERVAL,
    show_default=True,
    help="Blocks between checkpoint proposals.",
)
@click.option("--kek-env", is_flag=True, help="Take the key-encryption key from LICLEDGER_NETWORK_KEK (hex).")
def init_cmd(
    provinces: str,
    directory: Path,
    quorum: int | None,
    seed: str | None,
    checkpoint_interval: int,
    kek_env: bool,
) -> None:
    """Generate member keys (national authority included), genesis, Raft secret, ports and network.json."""
    codes = [p.strip() for p in provinces.split(",") if p.strip()]
    try:
        config = init_network(
            directory,
            codes,
            quorum=quorum,
            seed=seed,
            checkpoint_interval=checkpoint_interval,
            kek_from_env=kek_env,
        )
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    click.echo(f"network {config.network_id[:16]}… in {config.directory}")
    for m in config.members:
        click.echo(f"  {m.name:<10} {m.role:<9} key {m.key_id[:16]}…  http {m.http_port}  raft {m.raft_port}")


def _table(statuses: list[MemberStatus]) -> str:
    rows = [("member", "pid", "height", "block hash", "health", "raft", "final checkpoint")]
    for s in statuses:
        if not s.reachable:
            health = "down"
        elif s.healthy:
            health = "healthy"
        else:
            health = f"UNHEALTHY: {s.problem}"
        cp = s.checkpoint or {}
        fields = cp.get("fields") or {}
        cp_text = "-" if not cp else f"#{cp.get('seq', '?')} log size {fields.get('log_size', '?')}"
        rows.append(
            (
                s.name,
                str(s.pid or "-"),
                "-" if s.height is None else str(s.height),
                (s.block_hash or "-")[:16],
                health,
                s.role or "-",
                cp_text,
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(r[:-1])) + "  " + r[-1] for r in rows)


@network.command("up")
@_DIR
@click.option("--timeout", type=float, default=60.0, show_default=True, help="Seconds to wait for readiness.")
def up_cmd(directory: Path, timeout: float) -> None:
    """Start one process per member on loopback (detached) and wait until all are healthy."""
    config = NetworkConfig.load(directory)
    statuses = up(config, timeout=timeout)
    click.echo(_table(statuses))
    bad = [s.name for s in statuses if not (s.reachable and s.healthy)]
    if bad:
        raise click.ClickException(f"not healthy: {', '.join(bad)} (see {config.directory / 'logs'})")


@network.command("status")
@_DIR
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def status_cmd(directory: Path, as_json: bool) -> None:
    """Show each peer's height, tip block hash, health, Raft role and latest final checkpoint."""
    config = NetworkConfig.load(directory)
    statuses = network_status(config)
    if as_json:
        click.echo(json.dumps([s.to_json() for s in statuses], indent=2, sort_keys=True))
    else:
        click.echo(_table(statuses))


@network.command("down")
@_DIR
@click.option("--timeout", type=float, default=20.0, show_default=True, help="Seconds to wait after SIGTERM.")
def down_cmd(directory: Path, timeout: float) -> None:
    """Stop every member process cleanly (SIGTERM, wait, then report)."""
    config = NetworkConfig.load(directory)
    report = down(config, timeout=timeout)
    for name, outcome in report.items():
        click.echo(f"{name:<10} {outcome}")
    if any("killed" in v for v in report.values()):
        raise click.ClickException("some members had to be killed")


@network.command("endorse")
@click.argument("request", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@_DIR
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Default: REQUEST.signed")
def endorse_cmd(request: Path, directory: Path, out: Path | None) -> None:
    """Check a member's key rotation request against the ledger and add the national endorsement."""
    from network.endorse import endorse_rotation, lookup_member

    config = NetworkConfig.load(directory)
    data = request.read_bytes()
    author = _request_author(data)
    try:
        record = lookup_member(config, author)
    except ConnectionError as exc:
        raise click.ClickException(str(exc)) from None
    signed = endorse_rotation(data, load_member_key(config, NATIONAL), config.network_id, record)
    target = out or request.with_name(request.name + ".signed")
    target.write_bytes(signed)
    click.echo(f"endorsed key rotation of {author} (seq {record.seq + 1 if record else '?'}): {target}")


def _request_author(data: bytes) -> str:
    from core.transactions import Envelope

    return Envelope.from_bytes(data).tx.author


@network.command("follow")
@click.option(
    "--genesis",
    "genesis_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="The consortium's network.json (or its genesis envelope): the only thing trusted.",
)
@click.option("--from", "sources", required=True, help="Comma-separated member peer URLs to pull blocks from.")
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Directory of the replica's own block store (created if missing).",
)
@click.option("--db-url", default=None, help="SQLAlchemy URL of the block store (default: SQLite in --dir).")
@click.option("--port", type=click.IntRange(1, 65535), default=8500, show_default=True, help="Read API port.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Read API address.")
@click.option("--interval", type=float, default=1.0, show_default=True, help="Seconds between pulls.")
def follow_cmd(
    genesis_file: Path, sources: str, directory: Path, db_url: str | None, port: int, host: str, interval: float
) -> None:
    """Keep a verifying replica of the ledger (auditors, verifiers): every block is re-executed before it is kept.

    Serves the peer read API (/v1/status, /v1/blocks, /v1/query/...) on --host:--port until SIGINT/SIGTERM.
    """
    import logging
    import signal

    import uvicorn

    from network.follow import MultiSourceFollower, genesis_from_file
    from network.peer.api import create_app
    from network.peer.chaincode import ExecutorChaincode
    from network.peer.client import PeerClient
    from network.peer.peer import Peer
    from network.peer.store import BlockStore

    try:
        genesis = genesis_from_file(genesis_file.read_bytes())
        clients = [PeerClient(u.strip()) for u in sources.split(",") if u.strip()]
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    if not clients:
        raise click.BadParameter("give at least one peer URL", param_hint="--from")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    store = BlockStore(db_url or f"sqlite:///{directory / 'replica.sqlite'}")
    peer = Peer(store, ExecutorChaincode(), genesis, ordering=None, name="follower")
    peer.open()
    if not peer.healthy:
        store.close()
        raise click.ClickException(f"the replica's store in {directory} failed verification: {peer.problem}")
    follower = MultiSourceFollower(peer, clients, interval=interval)
    follower.start()
    app = create_app(peer, member="follower", extra_status=follower.status)
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False))
    signal.signal(signal.SIGTERM, lambda _sig, _frame: None)  # uvicorn handles it and returns from run()
    try:
        server.run()
    finally:
        follower.stop()
        store.close()
        click.echo(f"replica stopped at height {peer.height}")
