"""``licledger fabric``: run the contract's chaincode server and deploy it on a Fabric channel (thin commands).

The work is in :mod:`chaincode.server` (the chaincode server) and :mod:`network.fabric_lifecycle` (package,
install, approve, commit). The connection options default to the node's ``LICLEDGER_FABRIC_*`` variables, except
the identity: lifecycle steps need an organisation admin (``--msp-dir`` / ``LICLEDGER_FABRIC_ADMIN_MSP_DIR``),
not the node's client identity.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from network.fabric_gateway import FabricGateway, FabricGatewayError, FabricIdentity
from network.fabric_lifecycle import FabricLifecycle, LifecycleError, ServerTLS, ccaas_package, package_id

_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)


def _connection(f: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option("--peer", envvar="LICLEDGER_FABRIC_GATEWAY", required=True, help="The peer, host:port."),
        click.option("--msp-id", envvar="LICLEDGER_FABRIC_MSP_ID", required=True, help="The organisation's MSP id."),
        click.option(
            "--msp-dir",
            envvar="LICLEDGER_FABRIC_ADMIN_MSP_DIR",
            required=True,
            type=click.Path(exists=True, file_okay=False, path_type=Path),
            help="An organisation admin's MSP directory (signcerts/, keystore/).",
        ),
        click.option("--tls-ca", envvar="LICLEDGER_FABRIC_TLS_CA", type=_FILE, help="PEM of the peer's TLS CA."),
        click.option("--server-name", envvar="LICLEDGER_FABRIC_SERVER_NAME", help="Name in the peer's certificate."),
        click.option("--channel", envvar="LICLEDGER_FABRIC_CHANNEL", default="licledger", show_default=True),
        click.option("--timeout", type=click.FloatRange(min=1), default=120.0, show_default=True, help="Seconds."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


_NAME = click.option(
    "--name", envvar="LICLEDGER_FABRIC_CHAINCODE", default="licledger", show_default=True, help="Chaincode name."
)
_VERSION = click.option("--version", "version", default="1", show_default=True, help="Chaincode version.")
_SEQUENCE = click.option(
    "--sequence", type=click.IntRange(min=1), default=None, help="Definition sequence (default: committed + 1)."
)


@contextmanager
def _lifecycle(
    peer: str,
    msp_id: str,
    msp_dir: Path,
    tls_ca: Path | None,
    server_name: str | None,
    channel: str,
    timeout: float,
) -> Iterator[FabricLifecycle]:
    try:
        identity = FabricIdentity.from_msp_dir(msp_id, msp_dir)
    except (OSError, ValueError) as exc:
        raise click.BadParameter(str(exc), param_hint="--msp-dir") from None
    tls = tls_ca.read_bytes() if tls_ca is not None else None
    gateway = FabricGateway(
        peer, identity, channel=channel, chaincode="_lifecycle", tls_root_cert=tls, server_name=server_name,
        timeout=timeout,
    )  # fmt: skip
    try:
        yield FabricLifecycle(gateway)
    except (FabricGatewayError, LifecycleError) as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        gateway.close()


@click.group("fabric")
def fabric() -> None:
    """Run the contract as a Fabric chaincode server; package, install, approve and commit it on a channel."""


@fabric.command("chaincode")
@click.option("--id", "package", envvar="CHAINCODE_ID", required=True, help="The installed package id.")
@click.option("--address", envvar="CHAINCODE_SERVER_ADDRESS", required=True, help="host:port to listen on.")
@click.option("--tls-key", envvar="CORE_TLS_CLIENT_KEY_PATH", type=_FILE, help="The server's TLS key (PEM).")
@click.option("--tls-cert", envvar="CORE_TLS_CLIENT_CERT_PATH", type=_FILE, help="The server's TLS certificate.")
@click.option("--client-ca", envvar="CORE_PEER_TLS_ROOTCERT_FILE", type=_FILE, help="CA of the peer's client cert.")
@click.option("--log-level", type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"]), default="ERROR")
def chaincode_cmd(
    package: str, address: str, tls_key: Path | None, tls_cert: Path | None, client_ca: Path | None, log_level: str
) -> None:
    """Serve the license-registry contract as chaincode-as-a-service (runs until stopped)."""
    from chaincode.server import main

    argv = ["--id", package, "--address", address, "--log-level", log_level]
    for flag, value in (("--tls-key", tls_key), ("--tls-cert", tls_cert), ("--client-ca", client_ca)):
        if value is not None:
            argv += [flag, str(value)]
    main(argv)


@fabric.command("package")
@click.argument("output", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--label", required=True, help="Package label, e.g. licledger_1.")
@click.option("--address", required=True, help="host:port the peer dials the chaincode server at.")
@click.option("--tls-client-key", type=_FILE, help="The peer's TLS client key (PEM): mutual TLS.")
@click.option("--tls-client-cert", type=_FILE, help="The peer's TLS client certificate (PEM).")
@click.option("--tls-root-cert", type=_FILE, help="The CA of the chaincode server's certificate (PEM).")
def package_cmd(
    output: Path,
    label: str,
    address: str,
    tls_client_key: Path | None,
    tls_client_cert: Path | None,
    tls_root_cert: Path | None,
) -> None:
    """Write a chaincode-as-a-service package for the contract's server; print its package id."""
    given = [p for p in (tls_client_key, tls_client_cert, tls_root_cert) if p is not None]
    if given and len(given) != 3:
        raise click.UsageError("--tls-client-key, --tls-client-cert and --tls-root-cert go together")
    try:
        tls = None
        if given:
            assert tls_client_key and tls_client_cert and tls_root_cert
            tls = ServerTLS(tls_client_key.read_text(), tls_client_cert.read_text(), tls_root_cert.read_text())
        data = ccaas_package(label, address, tls)
    except LifecycleError as exc:
        raise click.ClickException(str(exc)) from None
    if output.exists():
        raise click.ClickException(f"{output} exists; not replaced")
    output.write_bytes(data)
    click.echo(package_id(label, data))


@fabric.command("install")
@click.argument("package", type=_FILE)
@_connection
def install_cmd(package: Path, **conn: Any) -> None:
    """Install a chaincode package on the peer (as its admin); print its package id."""
    with _lifecycle(**conn) as lifecycle:
        click.echo(lifecycle.install(package.read_bytes()))


@fabric.command("approve")
@click.option("--package-id", "package", required=True, help="The id `install` printed.")
@_NAME
@_VERSION
@_SEQUENCE
@_connection
def approve_cmd(package: str, name: str, version: str, sequence: int | None, **conn: Any) -> None:
    """Approve the chaincode definition for your organisation (ordered; waits for the block)."""
    with _lifecycle(**conn) as lifecycle:
        seq = sequence if sequence is not None else lifecycle.next_sequence(name)
        done = lifecycle.approve(name, version, seq, package)
        click.echo(
            f"approved {name} version {version} sequence {seq} for {lifecycle.msp_id} (block {done.block_number})"
        )


@fabric.command("commit")
@_NAME
@_VERSION
@_SEQUENCE
@click.option("--endorsing-org", "orgs", multiple=True, help="MSP id to endorse (repeat; default: all approvers).")
@_connection
def commit_cmd(name: str, version: str, sequence: int | None, orgs: tuple[str, ...], **conn: Any) -> None:
    """Commit the chaincode definition on the channel once enough organisations approved it."""
    with _lifecycle(**conn) as lifecycle:
        seq = sequence if sequence is not None else lifecycle.next_sequence(name)
        done = lifecycle.commit(name, version, seq, orgs)
        click.echo(
            f"committed {name} version {version} sequence {seq} on {lifecycle.channel} (block {done.block_number})"
        )


@fabric.command("status")
@_NAME
@_VERSION
@_SEQUENCE
@_connection
def status_cmd(name: str, version: str, sequence: int | None, **conn: Any) -> None:
    """The packages installed on the peer, the committed definition, and who approved the next one (JSON)."""
    with _lifecycle(**conn) as lifecycle:
        committed = lifecycle.committed(name)
        seq = sequence if sequence is not None else (1 if committed is None else committed.sequence + 1)
        out = {
            "channel": lifecycle.channel,
            "name": name,
            "installed": lifecycle.installed(),
            "committed": None
            if committed is None
            else {"sequence": committed.sequence, "version": committed.version, "approvals": committed.approvals},
            "next": {"sequence": seq, "version": version, "approvals": lifecycle.readiness(name, version, seq)},
        }
        click.echo(json.dumps(out, indent=2, sort_keys=True))
