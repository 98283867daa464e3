"""``licledger node rotate-key``: rotate the province's SM2 signing key through the ledger (:mod:`node.keyrotation`).

* ``request [--out REQ.json]``: new pending key (SM4-encrypted under ``LICLEDGER_KEK``) and the ``RotateKey``
  request signed by the current and the new key, for the national authority to endorse
  (``licledger network endorse REQ.json``).
* ``submit SIGNED.json``: submit the endorsed envelope, wait for its block, switch the signing key on a valid
  commit (the old key is kept under ``retired-keys/``). A running ``node serve`` adopts the new key within a
  second. ``--network-dir DIR`` also hands the new key to the member's peer in that ``licledger network``
  directory, which then cosigns checkpoints with it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from node.settings import SettingsError, load_settings

if TYPE_CHECKING:
    from node.context import NodeContext

_DIR = click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="The node directory (default: $LICLEDGER_DIR or the current directory).",
)


@click.group("rotate-key")
def rotate_key() -> None:
    """Rotate the province's signing key (the national authority endorses in between)."""


def _open(directory: Path | None) -> NodeContext:
    from node.context import open_node

    try:
        return open_node(load_settings(directory))
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None


@rotate_key.command("request")
@_DIR
@click.option(
    "--out", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Default: rotation-request.json"
)
def request(directory: Path | None, out: Path | None) -> None:
    """Create the pending key and write the rotation request for the national authority."""
    from node.keyrotation import request_rotation

    ctx = _open(directory)
    try:
        data = request_rotation(ctx)
        pending_from = ctx.signing_key.key_id
    finally:
        ctx.close()
    target = out or Path("rotation-request.json")
    target.write_bytes(data)
    click.echo(f"rotation request of key {pending_from}: {target}")
    click.echo(f"next: `licledger network endorse {target}` by the national authority, then `rotate-key submit`")


@rotate_key.command("submit")
@click.argument("signed", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@_DIR
@click.option("--timeout", type=float, default=None, help="Seconds to wait for the block (default from settings).")
@click.option(
    "--network-dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="The `licledger network` directory of this member's peer: its key file gets the new key too.",
)
def submit(signed: Path, directory: Path | None, timeout: float | None, network_dir: Path | None) -> None:
    """Submit the endorsed rotation, wait for commit, switch the signing key."""
    from node.keyrotation import submit_rotation

    ctx = _open(directory)
    try:
        rotated = submit_rotation(ctx, signed.read_bytes(), timeout=timeout, network_dir=network_dir)
    finally:
        ctx.close()
    click.echo(
        f"rotated: key {rotated.old_key_id} retired at {rotated.retired_ms}, signing key now {rotated.new_key_id} "
        f"(tx {rotated.tx_id}, block {rotated.block}); a running `node serve` adopts it within a second"
    )
    if network_dir is not None:
        click.echo(f"the peer's key file in {network_dir} holds the new key; the running peer adopts it")
