"""``licledger verifier``: run the standalone verification service and manage its agency API keys.

Usage::

    licledger verifier serve --trust-root GENESIS_OR_TRUST_ROOT [--state FILE] [--node URL ...] [--keys FILE]
                             [--public] [--host 127.0.0.1] [--port 8700] [--max-age 1d] [--min-sources 2]
                             [--workers N [--parallel-min-batch 32]]
    licledger verifier key create --name AGENCY [--role agency|auditor] [--keys FILE]
    licledger verifier key list [--keys FILE] [--json]
    licledger verifier key revoke KEY_ID [--keys FILE]

The service is :mod:`verifier.server`; the key file :mod:`verifier.agency_keys` (default
``$LICLEDGER_VERIFIER_HOME/keys.json``, ``~/.licledger/verifier/keys.json``). This module reads options and prints.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import click

from verifier.agency_keys import KeyFile, KeyFileError
from verifier.cli import parse_duration
from verifier.online import VerifierState, default_state_path
from verifier.trust import TrustRootError, load_trust_root

__all__ = ["verifier"]


def _home() -> Path:
    return Path(os.environ.get("LICLEDGER_VERIFIER_HOME") or str(Path.home() / ".licledger" / "verifier"))


_KEYS = click.option(
    "--keys",
    "keys_path",
    metavar="FILE",
    envvar="LICLEDGER_VERIFIER_KEYS",
    help="The API key file (default $LICLEDGER_VERIFIER_HOME/keys.json).",
)


def _keys(path: str | None) -> KeyFile:
    return KeyFile(Path(path) if path else _home() / "keys.json")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def verifier() -> None:
    """The standalone verification service for agencies (no node, no database) and its API keys."""


@verifier.command("serve")
@click.option(
    "--trust-root",
    "trust_root_path",
    metavar="FILE",
    envvar="LICLEDGER_TRUST_ROOT",
    required=True,
    help="The network's genesis (genesis JSON, GetGenesis answer, network.json) or a trust-root file.",
)
@click.option("--network-id", metavar="HEX", help="Require the genesis to have this network id (its SM3).")
@click.option(
    "--state",
    "state_path",
    metavar="FILE",
    envvar="LICLEDGER_VERIFIER_STATE",
    help="The trusted checkpoint, read if present and rewritten when it advances "
    "(default ~/.licledger/verifier/<network id>.json when --node is given).",
)
@click.option("--node", "nodes", metavar="URL", multiple=True, help="A provincial node for online refresh (repeat).")
@_KEYS
@click.option("--public", is_flag=True, help="Serve the /verify page and the keyless, masked public routes.")
@click.option("--host", default="127.0.0.1", show_default=True, envvar="LICLEDGER_VERIFIER_HOST")
@click.option(
    "--port", default=8700, show_default=True, type=click.IntRange(1, 65535), envvar="LICLEDGER_VERIFIER_PORT"
)
@click.option("--allow-public-bind", is_flag=True, help="Allow binding all interfaces (0.0.0.0, ::).")
@click.option("--max-age", default="1d", show_default=True, help="Default freshness policy, or 'none'.")
@click.option("--min-sources", default=2, show_default=True, type=click.IntRange(1, 64), help="Online refresh.")
@click.option("--refresh", "refresh_s", default=10.0, show_default=True, type=click.FloatRange(0, 86400))
@click.option("--timeout", default=10.0, show_default=True, type=click.FloatRange(0.1, 300), help="Per node request.")
@click.option("--rate", default=50.0, show_default=True, type=click.FloatRange(0), help="Per key, requests/s.")
@click.option("--burst", default=100, show_default=True, type=click.IntRange(0))
@click.option("--public-rate", default=5.0, show_default=True, type=click.FloatRange(0), help="Per address.")
@click.option("--public-burst", default=20, show_default=True, type=click.IntRange(0))
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Worker processes verifying large batches offline (1: in the web process only).",
)
@click.option(
    "--parallel-min-batch",
    default=32,
    show_default=True,
    type=click.IntRange(1, 100),
    help="Batches of at least this many bundles go to the workers (with --workers > 1).",
)
@click.option("--log-level", default="INFO", type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"]))
def serve(
    trust_root_path: str,
    network_id: str | None,
    state_path: str | None,
    nodes: tuple[str, ...],
    keys_path: str | None,
    public: bool,
    host: str,
    port: int,
    allow_public_bind: bool,
    max_age: str,
    min_sources: int,
    refresh_s: float,
    timeout: float,
    rate: float,
    burst: int,
    public_rate: float,
    public_burst: int,
    workers: int,
    parallel_min_batch: int,
    log_level: str,
) -> None:
    """Serve POST /v1/verify (agency API keys), optionally the public page, against a pinned trust root."""
    import uvicorn

    from node.logsafe import configure_logging, uvicorn_log_config
    from verifier.server import ServerConfig, create_app

    if host in ("0.0.0.0", "::", "") and not allow_public_bind:  # noqa: S104
        raise click.UsageError("binding all interfaces needs --allow-public-bind")
    try:
        root = load_trust_root(Path(trust_root_path).read_bytes(), network_id=network_id)
    except (OSError, TrustRootError) as exc:
        raise click.UsageError(f"unusable trust root {trust_root_path}: {exc}") from None
    state = Path(state_path) if state_path else (default_state_path(root.network_id) if nodes else None)
    seq = None
    if state is not None and state.exists():
        try:
            saved = VerifierState.load(state, network_id=root.network_id)
        except (OSError, TrustRootError) as exc:
            raise click.UsageError(f"unusable verifier state {state}: {exc}") from None
        if saved.trust_root.checkpoint is not None:
            root, seq = saved.trust_root, saved.checkpoint_seq
    keys = _keys(keys_path)
    try:
        count = len([k for k in keys.records() if k.revoked_ms is None])
    except (KeyFileError, OSError) as exc:
        raise click.UsageError(f"unusable key file {keys.path}: {exc}") from None
    try:
        config = ServerConfig(
            trust_root=root,
            checkpoint_seq=seq,
            state_path=state,
            nodes=nodes,
            keys_path=keys.path,
            public=public,
            max_age_ms=parse_duration(max_age),
            min_sources=min_sources,
            refresh_s=refresh_s,
            timeout_s=timeout,
            rate_per_second=rate,
            rate_burst=burst,
            public_rate_per_second=public_rate,
            public_rate_burst=public_burst,
            workers=workers,
            parallel_min_batch=parallel_min_batch,
        )
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    configure_logging(log_level)
    mode = f"online via {len(nodes)} node(s)" if nodes else "offline"
    parallel = f"batches of {parallel_min_batch}+ over {workers} workers" if workers > 1 else "one process"
    click.echo(
        f"licledger verifier: network {root.network_id}, {mode}, {count} active API key(s), "
        f"public routes {'on' if public else 'off'}, {parallel}, http://{host}:{port}",
        err=True,
    )
    uvicorn.run(create_app(config), host=host, port=port, log_config=uvicorn_log_config(log_level), server_header=False)


@verifier.group("key")
def key() -> None:
    """Create, list and revoke the agencies' API keys (stored hashed)."""


@key.command("create")
@click.option("--name", required=True, help="The agency the key is for.")
@click.option("--role", type=click.Choice(["agency", "auditor"]), default="agency", show_default=True)
@_KEYS
def create(name: str, role: str, keys_path: str | None) -> None:
    """Create a key; it is printed once, on standard output, and stored only as its SM3 hash."""
    keys = _keys(keys_path)
    try:
        token, record = keys.create(name, "auditor" if role == "auditor" else "agency", now_ms=int(time.time() * 1000))
    except (KeyFileError, ValueError) as exc:
        raise click.UsageError(str(exc)) from None
    click.echo(f"key {record.id} for {record.name} ({record.role}) stored in {keys.path}; shown once:", err=True)
    click.echo(token)


@key.command("list")
@_KEYS
@click.option("--json", "as_json", is_flag=True)
def list_keys(keys_path: str | None, as_json: bool) -> None:
    """The keys: id, agency, role, created and revoked times (never the keys themselves)."""
    try:
        records = _keys(keys_path).records()
    except KeyFileError as exc:
        raise click.UsageError(str(exc)) from None
    if as_json:
        click.echo(json.dumps([{k: v for k, v in r.to_dict().items() if k != "hash"} for r in records], indent=2))
        return
    for r in records:
        revoked = "" if r.revoked_ms is None else f"  revoked {r.revoked_ms}"
        click.echo(f"{r.id}  {r.role:<7}  {r.name}  created {r.created_ms}{revoked}")


@key.command("revoke")
@click.argument("key_id")
@_KEYS
def revoke(key_id: str, keys_path: str | None) -> None:
    """Revoke a key (kept in the file, refused with 403 from then on)."""
    try:
        record = _keys(keys_path).revoke(key_id, now_ms=int(time.time() * 1000))
    except KeyFileError as exc:
        raise click.UsageError(str(exc)) from None
    click.echo(f"key {record.id} ({record.name}) revoked")
