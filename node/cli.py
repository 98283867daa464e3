"""The ``licledger`` command line: one entry point for everything a person runs.

The root group is thin. Each command lives in the package it belongs to and is imported only when invoked,
so ``licledger --help`` stays fast and a verifier-only install never loads the node's web stack.
Errors that licledger raises on purpose are caught once here and printed as a diagnosis, not a traceback.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

from core.errors import LicledgerError

# name -> (module, attribute, one-line help). Add a line here to add a command.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "demo": ("node.commands.demo", "demo", "Run the whole product end to end on loopback (network, node, proofs)."),
    "fabric": (
        "network.fabric_cli",
        "fabric",
        "Run the contract as a Hyperledger Fabric chaincode server; deploy it on a channel.",
    ),
    "gen": ("node.commands.gen", "gen", "Write realistic synthetic licenses as JSON lines."),
    "keys": ("node.commands.keys", "keys", "Generate, inspect and protect SM2 keys."),
    "node": ("node.commands.node", "node", "Initialise, run and administer a provincial node."),
    "network": (
        "network.cli",
        "network",
        "Create, start, inspect and stop a local multi-province ledger network.",
    ),
    "verifier": (
        "verifier.server_cli",
        "verifier",
        "Run the standalone verification service for agencies; manage its API keys.",
    ),
    "verify": (
        "verifier.cli",
        "verify",
        "Verify a license proof bundle, a voucher QR code, or a license id against a node.",
    ),
}


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module_name, attr, _ = COMMANDS[cmd_name]
        command = getattr(importlib.import_module(module_name), attr)
        assert isinstance(command, click.Command)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][2]) for name in self.list_commands(ctx)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="licledger")
def cli() -> None:
    """licledger: a federated ledger for cross-region verification of health-industry e-licenses."""


def main(argv: list[str] | None = None) -> Any:
    try:
        return cli.main(args=argv, prog_name="licledger", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except LicledgerError as exc:
        click.echo(f"licledger: {type(exc).__name__}: {exc}", err=True)
        sys.exit(1)
