"""``licledger node``: initialise, run and administer a provincial node.

* ``init --dir DIR``: settings file, database schema (``alembic upgrade head``), the province's SM2 signing
  key SM4-encrypted under ``LICLEDGER_KEK`` (:mod:`core.keystore`), the node secret, and a first operator API
  key, printed once.
* ``serve [--seal-workers N]``: the HTTP API under uvicorn (migrates first); the batch route's sealing in N
  worker processes that follow key rotations (:mod:`node.sealworkers`).
* ``apikey create|list|revoke``: API keys, stored hashed.
* ``import FILE [--workers N]``: resumable bulk import of JSON lines (:mod:`node.importer`), sealed by N worker
  processes (default: the CPUs) while this one stores.
* ``init --network-dir NET [--member CODE]`` joins the node to a ledger network's province member: the member's
  SM2 key (``NET/keys/<member>.key``, under the network's KEK) becomes the node's signing key, re-encrypted under
  ``LICLEDGER_KEK``, so seals verify against the membership; the peers' URLs and the network id go to ``node.env``.
* ``anchor [--once] [--force]``: the anchoring worker (:mod:`sync.anchor`); ``serve`` also runs it in-process.
* ``announce [--url URL | --withdraw]``: put the node's API URL on the ledger for the other provinces' nodes
  (:mod:`node.directory`).
* ``reconcile [--no-repair]``: compare the node's records with the ledger (:mod:`sync.reconcile`).
* ``rotate-key request|submit``: rotate the signing key through the ledger (:mod:`node.commands.rotate`).
* ``backfill-version-updates [--apply]``: enqueue the version updates a database made before them lacks
  (:mod:`node.commands.backfill`).

Secrets never come from the command line: the KEK is read from the environment only.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import click

from core.codes import validate_uscc
from core.divisions import PROVINCES, province_of
from core.errors import DocumentError, FormatError
from core.keystore import encrypt_private_key
from core.sm2 import PrivateKey
from node.commands.backfill import backfill_version_updates
from node.commands.rotate import rotate_key
from node.settings import (
    DATABASE_FILE,
    SETTINGS_FILE,
    NodeSettings,
    SettingsError,
    load_settings,
    render_settings_file,
    sqlite_url,
)

_DIR = click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="The node directory (default: $LICLEDGER_DIR or the current directory).",
)
PUBLIC_KEY_FILE = "province-key.pub.pem"


def _settings(directory: Path | None, **overrides: object) -> NodeSettings:
    try:
        return load_settings(directory, **{k: v for k, v in overrides.items() if v is not None})
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None


@click.group("node")
def node() -> None:
    """Initialise, run and administer a provincial node."""


# --- init ------------------------------------------------------------------------------------------------


def _synthetic_authority(province: str) -> tuple[str, str]:
    """The issuer ``licledger gen`` uses for ``province`` (development only, so generated stock imports)."""
    from core.synth import generate

    issuer = next(generate("nurse", 1, province, 0))["issuer"]
    return issuer["authority"], issuer["authority_uscc"]


@node.command("init")
@click.option(
    "--dir",
    "directory",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory to create the node in.",
)
@click.option("--province", help="GB/T 2260 provincial-level code (default: from --authority-uscc).")
@click.option("--authority-uscc", help="The issuing authority's unified social credit code.")
@click.option("--authority", help="The issuing authority's name (default: <province>卫生健康委员会).")
@click.option("--database-url", help="SQLAlchemy URL (default: an SQLite file in the node directory).")
@click.option("--development", is_flag=True, help="Development mode: insecure defaults allowed (see docs).")
@click.option(
    "--network-dir",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="Join this `licledger network` directory: sign with its province member's key.",
)
@click.option("--member", help="The network member to join as (default: the province).")
def init(
    directory: Path,
    province: str | None,
    authority_uscc: str | None,
    authority: str | None,
    database_url: str | None,
    development: bool,
    network_dir: Path | None,
    member: str | None,
) -> None:
    """Create a node: settings, schema, encrypted signing key, node secret, first operator API key."""
    from node.apikeys import create_key
    from node.context import open_node
    from node.tokens import create_secret_file, write_new_file

    if province is not None and province not in PROVINCES:
        raise click.BadParameter("must be a GB/T 2260 provincial-level code such as 440000", param_hint="--province")
    joined = None
    if network_dir is not None:
        joined = _join_network(network_dir, member or province, authority_uscc)
        province, authority_uscc = joined.member, authority_uscc or joined.issuers[0]
    elif member is not None:
        raise click.UsageError("--member needs --network-dir")
    if authority_uscc is not None:
        try:
            validate_uscc(authority_uscc)
        except DocumentError as exc:
            raise click.BadParameter(str(exc), param_hint="--authority-uscc") from None
        province = province or province_of(authority_uscc[2:8])
    elif province is not None and development:
        default_name, authority_uscc = _synthetic_authority(province)
        authority = authority or default_name
    else:
        raise click.UsageError("give --authority-uscc (and --province for the XPCC); in --development, --province")
    assert province is not None
    authority = authority or f"{PROVINCES[province].name_zh}卫生健康委员会"
    directory = directory.resolve()
    if (directory / SETTINGS_FILE).exists():
        raise click.ClickException(f"{directory / SETTINGS_FILE} exists: this directory already holds a node")
    values = {
        "mode": "development" if development else "production",
        "province": province,
        "authority": authority,
        "authority_uscc": authority_uscc,
        "database_url": database_url or sqlite_url(directory / DATABASE_FILE),
    }
    if joined is not None:
        values["network_id"] = joined.network_id
        values["ledger_urls"] = ",".join(joined.urls)
    settings = _settings(directory, **values)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = joined.key if joined is not None else PrivateKey.generate()
    try:
        write_new_file(settings.key_file, encrypt_private_key(key, settings.kek_bytes), 0o600)
        write_new_file(directory / PUBLIC_KEY_FILE, key.public_key.to_pem(), 0o644)
        create_secret_file(settings.secret_file, settings.kek_bytes)
    except FileExistsError as exc:
        raise click.ClickException(f"{exc.filename} exists; refusing to overwrite it") from None
    if not database_url:
        write_new_file(directory / DATABASE_FILE, b"", 0o600)  # SQLite keeps the mode, also for -wal/-shm
    write_new_file(directory / SETTINGS_FILE, render_settings_file(values).encode("utf-8"), 0o600)
    ctx = open_node(settings)
    try:
        with ctx.sessions() as session, session.begin():
            text, info = create_key(session, ctx.secrets, role="operator", now_ms=ctx.clock(), label="init")
    finally:
        ctx.close()
    click.echo(f"node initialised in {directory} ({values['mode']} mode)")
    click.echo(f"province: {province}  authority: {authority} ({authority_uscc})")
    click.echo(f"signing key id: {key.key_id}  (public key: {directory / PUBLIC_KEY_FILE})")
    if joined is not None:
        click.echo(
            f"ledger: network {joined.network_id[:16]}… as member {joined.member}, peers {', '.join(joined.urls)}"
        )
    click.echo(f"database: {'SQLite ' + str(directory / DATABASE_FILE) if not database_url else 'as configured'}")
    click.echo(f"operator API key {info.key_id} (shown once, store it now):")
    click.echo(text)
    if development:
        click.echo("warning: development mode; do not hold real data in this node", err=True)


@dataclass(frozen=True)
class _Joined:
    member: str
    issuers: tuple[str, ...]
    key: PrivateKey
    network_id: str
    urls: list[str]


def _join_network(network_dir: Path, member: str | None, authority_uscc: str | None) -> _Joined:
    """The member's key, issuers and peers from a `licledger network` directory (docs/node.md, "Joining")."""
    from core.consortium import PROVINCE, Genesis
    from core.transactions import Envelope
    from network.localnet import NetworkConfig, load_member_key

    if member is None:
        raise click.UsageError("--network-dir needs --member (or --province): which province member to join as")
    try:
        config = NetworkConfig.load(network_dir)
        genesis = Genesis.from_dict(Envelope.from_bytes(config.genesis_envelope).tx.args["genesis"])
        record = genesis.member(member)
        if record is None or record.role != PROVINCE:
            raise click.UsageError(f"{member} is not a province member of the network in {network_dir}")
        key = load_member_key(config, member)
    except FormatError as exc:
        raise click.ClickException(f"cannot join the network in {network_dir}: {exc}") from None
    if key.key_id not in {k.key_id for k in record.keys}:
        raise click.ClickException(f"{config.key_file(member)} is not the key the genesis lists for {member}")
    if authority_uscc is not None and authority_uscc not in record.issuers:
        raise click.BadParameter(
            f"member {member} anchors for {', '.join(record.issuers)} only", param_hint="--authority-uscc"
        )
    own = config.member(member).http_url
    urls = [own] + [m.http_url for m in config.members if m.http_url != own]
    return _Joined(member, record.issuers, key, config.network_id, urls)


# --- serve -----------------------------------------------------------------------------------------------


@node.command("serve")
@_DIR
@click.option("--host", default=None, help="Address to bind (default from settings: 127.0.0.1).")
@click.option("--port", type=click.IntRange(1, 65535), default=None, help="Port (default from settings: 8600).")
@click.option(
    "--seal-workers",
    type=click.IntRange(0, 256),
    default=0,
    show_default=True,
    help="Processes that validate and seal the documents of POST /v1/licenses/batch (0: in the request's "
    "thread). Each loads the key from the node's keystore with LICLEDGER_KEK; after a key rotation they are "
    "replaced by processes holding the new key.",
)
def serve(directory: Path | None, host: str | None, port: int | None, seal_workers: int) -> None:
    """Run the node's HTTP API (uvicorn); migrates the database first."""
    import uvicorn

    from node.context import open_node
    from node.logsafe import configure_logging, uvicorn_log_config
    from node.main import create_app
    from node.sealworkers import SealingWorkers, share

    settings = _settings(directory, host=host, port=port)
    configure_logging(settings.log_level)
    ctx = open_node(settings)
    scheduler = None
    workers = SealingWorkers(ctx, seal_workers) if seal_workers else None
    try:
        if workers is not None:
            workers.start()
            share(workers)
        if settings.anchor_in_process and ctx.ledger is not None:
            from sync.scheduler import start_background

            scheduler = start_background(ctx)
        uvicorn.run(
            create_app(ctx),
            host=settings.host,
            port=settings.port,
            log_config=uvicorn_log_config(settings.log_level),
            server_header=False,
        )
    finally:
        if scheduler is not None:
            scheduler.shutdown(wait=True)
        if workers is not None:
            share(None)
            workers.close()
        ctx.close()


# --- anchoring and reconciliation ----------------------------------------------------------------------


@node.command("anchor")
@_DIR
@click.option("--once", is_flag=True, help="Run one pass and exit (default: keep running, like `serve` does).")
@click.option("--force", is_flag=True, help="Batch every pending leaf now, whatever the size and age thresholds.")
@click.option("--json", "as_json", is_flag=True, help="Print the pass report as JSON.")
def anchor(directory: Path | None, once: bool, force: bool, as_json: bool) -> None:
    """Put pending licenses and status changes on the ledger (exit 1 if a pass stopped on an error)."""
    import json

    from node.context import open_node
    from node.logsafe import configure_logging
    from sync.anchor import AnchorWorker

    settings = _settings(directory)
    configure_logging(settings.log_level)
    ctx = open_node(settings)
    try:
        if ctx.ledger is None:
            raise click.ClickException(
                "this node has not joined a ledger (LICLEDGER_LEDGER_URLS, LICLEDGER_NETWORK_ID)"
            )
        if not once:
            from sync.scheduler import run_blocking

            run_blocking(ctx)
            return
        report = AnchorWorker(ctx).run_once(force=force, check_ledger=True)
    finally:
        ctx.close()
    if as_json:
        click.echo(json.dumps(report.to_dict(), sort_keys=True))
    else:
        click.echo(
            f"anchored {report.leaves} licenses in {report.batches} batches, {report.statuses} status changes; "
            f"pending {report.pending_leaves} licenses, {report.pending_statuses} status changes"
        )
        for item in report.rejected:
            click.echo(f"rejected: {item}", err=True)
    if report.error:
        raise click.ClickException(report.error)


@node.command("genesis")
@_DIR
@click.option(
    "--network-dir",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="The `licledger network init` directory whose genesis to submit.",
)
def genesis(directory: Path | None, network_dir: Path) -> None:
    """Put the network's genesis (its InitConsortium envelope, signed by the national member) on this node's
    ledger: needed once on Hyperledger Fabric, where nothing else does it; the embedded network applies its
    genesis itself. Safe to repeat: the same envelope is applied once and reported where it landed."""
    from core.transactions import Envelope
    from network.localnet import NetworkConfig
    from node.context import open_node
    from node.ledger import LedgerRequestError, LedgerUnavailableError

    settings = _settings(directory)
    try:
        config = NetworkConfig.load(network_dir)
    except FormatError as exc:
        raise click.ClickException(f"cannot read the network in {network_dir}: {exc}") from None
    if settings.network_id != config.network_id:
        raise click.ClickException(
            f"the network in {network_dir} is {config.network_id[:16]}…, this node's is "
            f"{(settings.network_id or 'none')[:16]}…"
        )
    ctx = open_node(settings)
    try:
        if ctx.ledger is None:
            raise click.ClickException("this node has not joined a ledger")
        tx_id = Envelope.from_bytes(config.genesis_envelope).tx_id
        try:
            [verdict] = ctx.ledger.submit([config.genesis_envelope])
            if not verdict.valid:
                verdict = ctx.ledger.committed(tx_id) or verdict
        except (LedgerUnavailableError, LedgerRequestError) as exc:
            raise click.ClickException(str(exc)) from None
    finally:
        ctx.close()
    if not verdict.valid:
        raise click.ClickException(f"the ledger refused the genesis: {verdict.reason}: {verdict.message}")
    click.echo(f"genesis {tx_id} of network {config.network_id[:16]}… is in block {verdict.block}")


@node.command("announce")
@_DIR
@click.option("--url", default=None, help="The node's API URL for other provinces (default: LICLEDGER_PUBLIC_URL).")
@click.option("--withdraw", is_flag=True, help="Withdraw the announcement (other nodes stop referring here).")
def announce(directory: Path | None, url: str | None, withdraw: bool) -> None:
    """Put where this node's API is on the ledger (AnnounceNode, signed with the province's key), so the other
    provinces' nodes refer proof and voucher requests for its licenses here without configuring it."""
    from node.context import open_node
    from node.directory import AnnounceRefusedError, announce
    from node.errors import RotationPendingError
    from node.ledger import LedgerRequestError, LedgerUnavailableError

    settings = _settings(directory)
    if withdraw and url is not None:
        raise click.UsageError("--withdraw takes no --url")
    target = "" if withdraw else (url or settings.public_url or "").rstrip("/")
    if not withdraw and not target:
        raise click.UsageError("no URL: pass --url or set LICLEDGER_PUBLIC_URL")
    ctx = open_node(settings)
    try:
        done = announce(ctx, target)
    except RotationPendingError as exc:
        raise click.ClickException(f"a key rotation is pending; announce after it: {exc}") from None
    except (AnnounceRefusedError, LedgerUnavailableError, LedgerRequestError) as exc:
        raise click.ClickException(f"{type(exc).__name__}: {exc}") from None
    finally:
        ctx.close()
    shown = target or "(withdrawn)"
    if done.block is None:
        click.echo(f"{done.member}: already announced as {shown} (seq {done.seq})")
    else:
        click.echo(f"{done.member}: announced {shown} (seq {done.seq}, block {done.block})")


@node.command("reconcile")
@_DIR
@click.option("--no-repair", is_flag=True, help="Only report; do not resubmit unfinished work.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def reconcile(directory: Path | None, no_repair: bool, as_json: bool) -> None:
    """Compare the node's anchoring records with the ledger; repair what can be, report the rest (exit 1)."""
    import json

    from node.context import open_node
    from node.logsafe import configure_logging
    from sync.reconcile import reconcile as run

    settings = _settings(directory)
    configure_logging(settings.log_level)
    ctx = open_node(settings)
    try:
        if ctx.ledger is None:
            raise click.ClickException(
                "this node has not joined a ledger (LICLEDGER_LEDGER_URLS, LICLEDGER_NETWORK_ID)"
            )
        report = run(ctx, repair=not no_repair)
    finally:
        ctx.close()
    if as_json:
        click.echo(json.dumps(report.to_dict(), sort_keys=True, ensure_ascii=False))
    else:
        click.echo(report.summary())
        for finding in report.findings:
            click.echo(f"  {finding.describe()}")
    if not report.ok:
        raise SystemExit(1)


# --- API keys --------------------------------------------------------------------------------------------


@node.group("apikey")
def apikey() -> None:
    """Create, list and revoke API keys (stored hashed; a key's text is shown once)."""


@apikey.command("create")
@_DIR
@click.option("--role", required=True, type=click.Choice(["operator", "institution", "agency", "auditor"]))
@click.option("--institution", "institution_uscc", help="The institution's USCC (role institution only).")
@click.option("--label", default="", help="A note for the listing (no personal data).")
def apikey_create(directory: Path | None, role: str, institution_uscc: str | None, label: str) -> None:
    """Create an API key and print it once."""
    from node.apikeys import create_key
    from node.context import open_node

    ctx = open_node(_settings(directory))
    try:
        with ctx.sessions() as session, session.begin():
            try:
                text, info = create_key(
                    session,
                    ctx.secrets,
                    role=role,
                    now_ms=ctx.clock(),
                    institution_uscc=institution_uscc,
                    label=label,
                )
            except ValueError as exc:
                raise click.UsageError(str(exc)) from None
    finally:
        ctx.close()
    click.echo(f"{info.role} API key {info.key_id} (shown once, store it now):")
    click.echo(text)


@apikey.command("list")
@_DIR
def apikey_list(directory: Path | None) -> None:
    """List API keys (ids, roles, scopes; never secrets)."""
    from node.apikeys import list_keys
    from node.context import open_node

    ctx = open_node(_settings(directory))
    try:
        with ctx.sessions() as session:
            keys = list_keys(session)
    finally:
        ctx.close()
    for k in keys:
        state = "revoked" if k.revoked_ms is not None else "active"
        click.echo(f"{k.key_id}  {k.role:<11}  {k.institution_uscc or '-':<18}  {state:<7}  {k.label}")


@apikey.command("revoke")
@_DIR
@click.argument("key_id")
def apikey_revoke(directory: Path | None, key_id: str) -> None:
    """Revoke API key KEY_ID (it stays listed, marked revoked)."""
    from node.apikeys import revoke_key
    from node.context import open_node

    ctx = open_node(_settings(directory))
    try:
        with ctx.sessions() as session, session.begin():
            info = revoke_key(session, key_id, ctx.clock())
    finally:
        ctx.close()
    click.echo(f"revoked {info.key_id} ({info.role})")


# --- import ----------------------------------------------------------------------------------------------


@node.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, readable=True, path_type=Path))
@_DIR
@click.option(
    "--chunk-lines",
    type=click.IntRange(1, 100_000),
    default=5000,  # node.importer.DEFAULT_CHUNK_LINES (not imported here: it would slow every CLI start; tested)
    show_default=True,
    help="Lines per database transaction (larger chunks write fewer index pages per license).",
)
@click.option(
    "--workers",
    type=click.IntRange(0, 256),
    default=None,
    help="Processes that validate and seal while this one stores, in order (default: the number of CPUs; "
    "0: everything in this process). Each loads the key from the node's keystore with LICLEDGER_KEK.",
)
def import_(file: Path, directory: Path | None, chunk_lines: int, workers: int | None) -> None:
    """Import licenses from FILE (JSON lines), resumably; rejected lines are reported with their numbers."""
    from node.context import open_node
    from node.importer import list_rejects, run_import
    from node.sealing import default_workers

    ctx = open_node(_settings(directory))
    try:
        with click.progressbar(
            length=os.stat(file).st_size,
            label="importing",
            file=click.get_text_stream("stderr"),
            show_pos=False,
            show_percent=True,
        ) as bar:
            result = run_import(
                ctx,
                file,
                chunk_lines=chunk_lines,
                workers=default_workers() if workers is None else workers,
                progress=bar.update,
            )
        rejected = list_rejects(ctx, result.digest)
    finally:
        ctx.close()
    for line, error in rejected:
        click.echo(f"{file}:{line}: rejected: {error}", err=True)
    if result.resumed_from_line:
        click.echo(f"resumed after line {result.resumed_from_line}")
    click.echo(
        f"{result.lines} lines: {result.imported} imported, {result.present} already present, "
        f"{result.rejected} rejected (file digest {result.digest[:16]}...)"
    )
    if result.rejected:
        raise SystemExit(2)


node.add_command(rotate_key)
node.add_command(backfill_version_updates)
