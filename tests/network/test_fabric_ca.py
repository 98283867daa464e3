"""A node whose Fabric identity a Fabric CA issued, as production organisations issue them (``fabric-ca-server``
and ``fabric-ca-client``), instead of cryptogen's files.

The organisation's CA (the one its channel MSP trusts, made by cryptogen for the test network) is served by a real
``fabric-ca-server``; an admin enrols, registers a ``client`` identity for the node, and the node's MSP directory is
what ``fabric-ca-client enroll`` writes. ``FabricIdentity.from_msp_dir`` reads it, and the node's ledger puts a
genesis and a batch on the channel with it. Skipped, saying why, without Fabric's or Fabric CA's binaries.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fabricnet import ORG, FabricNet, anchor_env, fabric_home, free_port, licenses, module_network, org_domain

from core.consortium import build_consortium
from core.transactions import init_consortium
from network.fabric_gateway import FabricIdentity
from node.fabric_ledger import FabricLedger

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def fabric_ca_tool(name: str) -> Path | None:
    """``fabric-ca-server`` or ``fabric-ca-client``: beside Fabric's binaries, or on the PATH."""
    home = fabric_home()
    if home is not None and (home / "bin" / name).exists():
        return home / "bin" / name
    found = shutil.which(name)
    return Path(found) if found else None


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FabricNet]:
    if fabric_ca_tool("fabric-ca-server") is None or fabric_ca_tool("fabric-ca-client") is None:
        pytest.skip("Fabric CA's binaries (fabric-ca-server, fabric-ca-client) are not installed")
    yield from module_network(tmp_path_factory)


def ca_client(*args: str) -> str:
    client = fabric_ca_tool("fabric-ca-client")
    assert client is not None
    done = subprocess.run([str(client), *args], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


def test_a_node_with_a_fabric_ca_issued_identity_anchors(net: FabricNet, tmp_path: Path) -> None:
    ca = net.org_dir(1) / "ca"
    port, operations = free_port(), free_port()
    server = fabric_ca_tool("fabric-ca-server")
    assert server is not None
    argv = [str(server), "start", "-b", "admin:adminpw", "--port", str(port), "--home", str(tmp_path / "ca-server")]
    argv += ["--operations.listenaddress", f"127.0.0.1:{operations}"]
    argv += ["--ca.certfile", str(ca / f"ca.{org_domain(1)}-cert.pem"), "--ca.keyfile", str(ca / "priv_sk")]
    net.start("fabric-ca", argv, {}, port)
    url = f"127.0.0.1:{port}"
    admin = tmp_path / "ca-admin"
    ca_client("enroll", "-u", f"http://admin:adminpw@{url}", "--home", str(admin))
    ca_client(
        "register", "--id.name", "licledger-node", "--id.secret", "node-secret", "--id.type", "client",
        "-u", f"http://{url}", "--home", str(admin),
    )  # fmt: skip
    msp = tmp_path / "node-msp"
    ca_client("enroll", "-u", f"http://licledger-node:node-secret@{url}", "-M", str(msp), "--home", str(admin))
    assert (msp / "signcerts" / "cert.pem").exists() and len(list((msp / "keystore").glob("*_sk"))) == 1

    identity = FabricIdentity.from_msp_dir(ORG, msp)  # Fabric CA's layout: signcerts/cert.pem, keystore/<SKI>_sk
    name = net.deploy("fabric-ca")
    c = build_consortium(["110000"], "fabric-ca")
    with net.gateway(1, name, identity) as gateway:
        ledger = FabricLedger(gateway, c.network_id)
        now = time.time_ns() // 1_000_000
        [genesis] = ledger.submit([init_consortium(c.genesis, c.key("national"), timestamp_ms=now)])
        assert genesis.valid, genesis
        _, _, tree = licenses(c, "110000", 2, "ca")
        env = anchor_env(c, "110000", 0, tree)
        [anchored] = ledger.submit([env])
        assert anchored.valid and anchored.block > genesis.block, anchored
        assert ledger.query("GetBatch", "110000", "0")["record"]["tx_id"] == anchored.tx_id
