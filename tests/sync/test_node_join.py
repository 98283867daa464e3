"""`licledger node init --network-dir NET --member CODE`: the node signs and seals with its province member's key
(re-encrypted under the node's KEK), issues for one of the member's issuers, and knows the peers and network id.
Wrong joins are refused before anything is written. No process is started: `network init` only writes files."""

from __future__ import annotations

from pathlib import Path

import pytest
from anchorkit import KEK
from click.testing import CliRunner

from core.consortium import Genesis
from core.keystore import decrypt_private_key
from core.transactions import Envelope
from network.localnet import NetworkConfig, init_network, load_member_key
from node.cli import cli
from node.settings import load_settings


@pytest.fixture
def network(tmp_path: Path) -> NetworkConfig:
    return init_network(tmp_path / "net", ["110000", "440000"], seed="join-test")


def _init(*args: str | Path) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["node", "init", *map(str, args)], env={"LICLEDGER_KEK": KEK})
    return result.exit_code, result.output


def test_joined_node_signs_with_its_member_key(network: NetworkConfig, tmp_path: Path) -> None:
    code, output = _init("--dir", tmp_path / "node", "--network-dir", network.directory, "--member", "440000")
    assert code == 0, output
    settings = load_settings(tmp_path / "node")
    member_key = load_member_key(network, "440000")
    node_key = decrypt_private_key(settings.key_file.read_bytes(), settings.kek_bytes)
    assert node_key.key_id == member_key.key_id == network.member("440000").key_id
    assert node_key.public_key.to_der() == member_key.public_key.to_der()
    genesis = Genesis.from_dict(Envelope.from_bytes(network.genesis_envelope).tx.args["genesis"])
    record = genesis.member("440000")
    assert record is not None and settings.authority_uscc == record.issuers[0]
    assert settings.network_id == network.network_id
    assert settings.mode == "production"  # joining needs no development shortcut
    assert settings.ledger_url_list[0] == network.member("440000").http_url  # own member's peer first
    assert sorted(settings.ledger_url_list) == sorted(m.http_url for m in network.members)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--member", "national"], "not a province member"),
        (["--member", "310000"], "not a province member"),
        (["--member", "440000", "--authority-uscc", "11440000421680613Q"], "anchors for"),
        ([], "needs --member"),
    ],
)
def test_wrong_joins_are_refused(network: NetworkConfig, tmp_path: Path, args: list[str], message: str) -> None:
    code, output = _init("--dir", tmp_path / "node", "--network-dir", network.directory, *args)
    assert code != 0 and message in output, output
    assert not (tmp_path / "node").exists()


def test_member_needs_a_network(tmp_path: Path) -> None:
    code, output = _init("--dir", tmp_path / "node", "--member", "440000", "--province", "440000", "--development")
    assert code != 0 and "--member needs --network-dir" in output
