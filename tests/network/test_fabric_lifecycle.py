"""``licledger fabric``: the contract's chaincode package and Fabric's chaincode lifecycle from licledger's CLI.

The package tests need nothing; the lifecycle test runs against a real Fabric network (tests/network/fabricnet.py,
skipped, saying why, without Fabric's binaries): a second contract instance is packaged, installed, approved and
committed through the ``licledger fabric`` commands alone, its chaincode server started with
``licledger fabric chaincode``, and it then accepts a genesis and answers queries.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from fabricnet import CHANNEL, LICLEDGER, ORG, FabricNet, free_port, module_network, org_domain

from core.consortium import build_consortium
from core.transactions import init_consortium
from network.fabric_gateway import FabricGateway, FabricIdentity
from network.fabric_lifecycle import LifecycleError, ServerTLS, ccaas_package, package_id, package_label
from node.cli import cli

CERT = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
KEY = "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n"


def members(package: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(package), mode="r:gz") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers()}  # type: ignore[union-attr]


# --- the package (no Fabric needed) ---------------------------------------------------------------------


def test_ccaas_package_is_what_the_ccaas_builder_reads_and_is_reproducible() -> None:
    tls = ServerTLS(KEY, CERT, CERT)
    first = ccaas_package("licledger_1", "chaincode.gd.example:9999", tls)
    assert ccaas_package("licledger_1", "chaincode.gd.example:9999", tls) == first  # byte for byte
    outer = members(first)
    assert list(outer) == ["metadata.json", "code.tar.gz"]
    assert json.loads(outer["metadata.json"]) == {"label": "licledger_1", "type": "ccaas"}
    connection = json.loads(members(outer["code.tar.gz"])["connection.json"])
    assert connection == {
        "address": "chaincode.gd.example:9999",
        "dial_timeout": "10s",
        "tls_required": True,
        "client_auth_required": True,
        "client_key": KEY,
        "client_cert": CERT,
        "root_cert": CERT,
    }
    assert gzip.decompress(first)[:100].startswith(b"metadata.json")
    assert package_id("licledger_1", first) == "licledger_1:" + hashlib.sha256(first).hexdigest()
    assert package_label(first) == "licledger_1"
    plain = json.loads(members(members(ccaas_package("x", "127.0.0.1:1"))["code.tar.gz"])["connection.json"])
    assert plain == {"address": "127.0.0.1:1", "dial_timeout": "10s", "tls_required": False}
    assert ccaas_package("x", "127.0.0.1:2") != ccaas_package("x", "127.0.0.1:1")


@pytest.mark.parametrize(
    ("label", "address", "message"),
    [
        ("bad label", "127.0.0.1:1", "package label 'bad label'"),
        ("_x", "127.0.0.1:1", "package label '_x'"),
        ("ok", "no-port", "address 'no-port' must be host:port"),
        ("ok", "", "address '' must be host:port"),
    ],
)
def test_ccaas_package_refuses_bad_input_naming_it(label: str, address: str, message: str) -> None:
    with pytest.raises(LifecycleError, match=message):
        ccaas_package(label, address)


def test_tls_material_must_be_pem() -> None:
    with pytest.raises(LifecycleError, match="client key is not PEM"):
        ServerTLS("key", CERT, CERT)
    with pytest.raises(LifecycleError, match="root certificate is not PEM"):
        ServerTLS(KEY, CERT, "nope")


def test_package_label_refuses_what_is_not_a_package() -> None:
    with pytest.raises(LifecycleError, match="not a chaincode package"):
        package_label(b"not a tar")
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w:gz") as tar:
        info = tarfile.TarInfo("other.txt")
        tar.addfile(info, io.BytesIO(b""))
    with pytest.raises(LifecycleError, match="not a chaincode package"):
        package_label(raw.getvalue())


def test_package_command(tmp_path: Path) -> None:
    (tmp_path / "k.pem").write_text(KEY)
    (tmp_path / "c.pem").write_text(CERT)
    out = tmp_path / "pkg.tar.gz"
    tls = ["--tls-client-key", str(tmp_path / "k.pem"), "--tls-client-cert", str(tmp_path / "c.pem")]
    tls += ["--tls-root-cert", str(tmp_path / "c.pem")]
    args = ["fabric", "package", str(out), "--label", "licledger_2", "--address", "127.0.0.1:7777"]
    result = CliRunner().invoke(cli, [*args, *tls])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == package_id("licledger_2", out.read_bytes())
    assert json.loads(members(members(out.read_bytes())["code.tar.gz"])["connection.json"])["tls_required"] is True

    again = CliRunner().invoke(cli, [*args, *tls])  # never replaces a file
    assert again.exit_code == 1 and "exists; not replaced" in again.output
    partial = CliRunner().invoke(cli, [*args[:2], str(tmp_path / "p2"), *args[3:], *tls[:2]])
    assert partial.exit_code == 2 and "go together" in partial.output
    bad = CliRunner().invoke(cli, [*args[:2], str(tmp_path / "p3"), "--label", "no good", "--address", "h:1"])
    assert bad.exit_code == 1 and "package label 'no good'" in bad.output
    assert not (tmp_path / "p2").exists() and not (tmp_path / "p3").exists()


# --- the lifecycle on a real Fabric network ------------------------------------------------------------


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FabricNet]:
    yield from module_network(tmp_path_factory)


def run(net: FabricNet, *args: str) -> Result:
    """``licledger fabric ...`` as organisation 1's admin, connected to its peer (the LICLEDGER_FABRIC_*
    variables, as an operator would set them)."""
    env = {
        "LICLEDGER_FABRIC_GATEWAY": net.peer_endpoint,
        "LICLEDGER_FABRIC_MSP_ID": ORG,
        "LICLEDGER_FABRIC_ADMIN_MSP_DIR": str(net.org_dir(1) / "users" / f"Admin@{org_domain(1)}" / "msp"),
        "LICLEDGER_FABRIC_TLS_CA": str(net.peer_tls_ca),
        "LICLEDGER_FABRIC_CHANNEL": CHANNEL,
        "LICLEDGER_FABRIC_CHAINCODE": "registry-cli",
    }
    return CliRunner().invoke(cli, ["fabric", *args], env=env)


@pytest.mark.integration
@pytest.mark.slow
def test_deploy_through_licledger_fabric_commands(net: FabricNet, tmp_path: Path) -> None:
    org = net.org_dir(1)
    peer_tls = net.peer_dir / "tls"
    server_tls = org / "peers" / f"chaincode.{org_domain(1)}" / "tls"
    port = free_port()
    package = tmp_path / "registry.tar.gz"
    args = ["fabric", "package", str(package), "--label", "registry_cli_1", "--address", f"127.0.0.1:{port}"]
    args += ["--tls-client-key", str(peer_tls / "server.key"), "--tls-client-cert", str(peer_tls / "server.crt")]
    made = CliRunner().invoke(cli, [*args, "--tls-root-cert", str(server_tls / "ca.crt")])
    assert made.exit_code == 0, made.output
    pid = made.output.strip()

    installed = run(net, "install", str(package))
    assert installed.exit_code == 0, installed.output
    assert installed.output.strip() == pid
    again = run(net, "install", str(package))  # installing twice answers the same id
    assert again.exit_code == 0 and again.output.strip() == pid, again.output

    status = json.loads(run(net, "status").output)
    assert status["installed"][pid] == "registry_cli_1"
    assert status["committed"] is None
    assert status["next"] == {"sequence": 1, "version": "1", "approvals": {ORG: False}}

    early = run(net, "commit")  # refused before anything is sent: nobody approved
    assert early.exit_code == 1 and "is not approved by any organisation" in early.output, early.output
    wrong = run(net, "commit", "--endorsing-org", "NoSuchMSP")
    assert wrong.exit_code == 1 and "not organisations of channel licledger: NoSuchMSP" in wrong.output

    server = [*LICLEDGER, "fabric", "chaincode", "--id", pid, "--address", f"127.0.0.1:{port}"]
    server += ["--tls-key", str(server_tls / "server.key"), "--tls-cert", str(server_tls / "server.crt")]
    net.start("chaincode-registry-cli", [*server, "--client-ca", str(peer_tls / "ca.crt")], {}, port)

    approved = run(net, "approve", "--package-id", pid)
    assert approved.exit_code == 0, approved.output
    assert approved.output.startswith(f"approved registry-cli version 1 sequence 1 for {ORG} (block ")
    assert json.loads(run(net, "status").output)["next"]["approvals"] == {ORG: True}

    committed = run(net, "commit")
    assert committed.exit_code == 0, committed.output
    assert committed.output.startswith("committed registry-cli version 1 sequence 1 on licledger (block ")
    status = json.loads(run(net, "status").output)
    assert status["committed"] == {"sequence": 1, "version": "1", "approvals": {ORG: True}}
    assert status["next"]["sequence"] == 2

    # the deployed contract works: a genesis commits and the ledger answers
    c = build_consortium(["110000"], "fabric-cli")
    with FabricGateway(
        net.peer_endpoint,
        FabricIdentity.from_msp_dir(ORG, net.user_msp()),
        channel=CHANNEL,
        chaincode="registry-cli",
        tls_root_cert=net.peer_tls_ca.read_bytes(),
        timeout=60,
    ) as gateway:
        genesis = init_consortium(c.genesis, c.key("national"), timestamp_ms=time.time_ns() // 1_000_000)
        assert json.loads(gateway.submit("Submit", genesis.decode()).result)["type"] == "InitConsortium"
        assert json.loads(gateway.evaluate("GetLedgerInfo"))["network_id"] == c.network_id

    # approving the committed definition again is harmless (Fabric accepts it unchanged); changing it under the
    # committed sequence is Fabric's refusal, shown with the peer's words
    same = run(net, "approve", "--package-id", pid, "--sequence", "1")
    assert same.exit_code == 0, same.output
    stale = run(net, "approve", "--package-id", pid, "--sequence", "1", "--version", "2")
    assert stale.exit_code == 1 and "does not match passed Version '2'" in stale.output, stale.output


def test_lifecycle_commands_name_a_missing_connection(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["fabric", "status"], env={"LICLEDGER_FABRIC_GATEWAY": "127.0.0.1:1"})
    assert result.exit_code == 2 and "--msp-id" in result.output
    empty = tmp_path / "msp"
    empty.mkdir()
    result = CliRunner().invoke(
        cli, ["fabric", "status", "--peer", "127.0.0.1:1", "--msp-id", "X", "--msp-dir", str(empty)]
    )
    assert result.exit_code == 2 and "--msp-dir" in result.output
