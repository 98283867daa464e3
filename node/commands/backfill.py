"""``licledger node backfill-version-updates [--apply]``: enqueue the version updates (``NEW_VERSION`` status
changes) that a node database made before them lacks (:mod:`node.backfill`, docs/node.md "The outbox").

A dry run (the default) lists what it would enqueue and writes nothing, not even a migration. ``--apply``
migrates to the newest schema (the outbox's unique ``(event_id, kind)`` of migration 0002 is what lets a
version event hold both its leaf and its update), then enqueues one update per license, each in its own
transaction, printing each as it is committed. Running it again finds nothing to do.
"""

from __future__ import annotations

import os
from pathlib import Path

import click

from node.settings import SETTINGS_FILE, SettingsError, load_settings


@click.command("backfill-version-updates")
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="The node directory (default: $LICLEDGER_DIR or the current directory).",
)
@click.option("--apply", "apply", is_flag=True, help="Enqueue them (default: a dry run that writes nothing).")
def backfill_version_updates(directory: Path | None, apply: bool) -> None:
    """Enqueue the missing version updates of licenses whose current version came from a version event."""
    from node.backfill import backfill
    from node.context import open_node
    from node.db.migrate import current_revision, upgrade

    base = Path(directory if directory is not None else os.environ.get("LICLEDGER_DIR", ".")).resolve()
    if not (base / SETTINGS_FILE).exists():
        raise click.ClickException(
            f"{base} holds no node (no {SETTINGS_FILE}): not initialised; run `licledger node init --dir {base}` first"
        )
    try:
        settings = load_settings(base)
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None
    try:
        ctx = open_node(settings, migrate=False)
    except FileNotFoundError as exc:
        raise click.ClickException(str(exc)) from None
    try:
        if current_revision(ctx.engine) is None:
            raise click.ClickException(
                f"the node's database has no schema: the node in {settings.dir} is not initialised "
                "(`licledger node init`), or LICLEDGER_DATABASE_URL names another database"
            )
        if apply:
            upgrade(ctx.engine)
        result = backfill(ctx, apply=apply, report=lambda u: click.echo(f"enqueued {u.describe()}"))
    finally:
        ctx.close()
    if not apply:
        for update in result.updates:
            click.echo(f"would enqueue {update.describe()}")
    done = "enqueued" if apply else "would enqueue"
    if result.updates:
        click.echo(
            f"{done} {len(result.updates)} version updates (NEW_VERSION), one transaction per license"
            + ("; the anchoring worker submits each once its version is anchored" if apply else "")
        )
        if not apply:
            click.echo("dry run: nothing written; run again with --apply to enqueue them")
    else:
        click.echo("nothing to do: every current version made by a version event has its version update")
    if result.cited:
        click.echo(f"{result.cited} licenses need none: a status change made after their new version already cites it")
