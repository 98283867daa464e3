"""A provincial node on Hyperledger Fabric: the node's ledger backend ``fabric`` (node.fabric_ledger) against a real
Fabric network (tests/network/fabricnet.py: Raft orderer, peer, the contract as chaincode-as-a-service). Skipped,
saying why, on a machine without Fabric's binaries."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from anchorkit import Issuer, documents, open_joined
from fabricnet import CHAINCODE, CHANNEL, ORG, FabricNet, fabric_home, fabric_network
from netkit import licledger

from chaincode.checkpoints import checkpoint_body, cosign
from core.consortium import Genesis
from core.transactions import REVOKED, Envelope, cosign_checkpoint, init_consortium, propose_checkpoint
from network.localnet import NetworkConfig, load_member_key
from node.fabric_ledger import FabricLedger
from sync.anchor import AnchorWorker
from verifier.core import Result, load_trust_root, verify_bundle

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FabricNet]:
    home = fabric_home()
    if home is None:
        pytest.skip(
            "no Hyperledger Fabric binaries: set LICLEDGER_FABRIC_HOME to a Fabric release's directory "
            "(bin/ and config/) or put its bin/ on the PATH (docs/chaincode.md, 'Running on Fabric')"
        )
    with fabric_network(home, tmp_path_factory.mktemp("fabric")) as running:
        yield running


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def _checkpoint(ledger: FabricLedger, config: NetworkConfig) -> dict[str, Any]:
    """What the embedded peers' checkpoint duty does (network.peer.checkpoints), done here by hand: the national
    member proposes the next checkpoint and every member cosigns the body the contract stored."""
    keys = {m.name: load_member_key(config, m.name) for m in config.members}
    info = ledger.query("GetLedgerInfo")
    seq = info["checkpoint_next"]
    at = max(now_ms(), info["time_ms"] + 1)
    [proposed] = ledger.submit(
        [propose_checkpoint(config.network_id, member="national", seq=seq, key=keys["national"], timestamp_ms=at)]
    )
    assert proposed.valid, proposed
    record = ledger.query("GetCheckpoint", str(seq))
    body = checkpoint_body(config.network_id, record["fields"])
    assert body.decode() == record["body"]
    for name, key in keys.items():
        [done] = ledger.submit(
            [
                cosign_checkpoint(
                    config.network_id, member=name, seq=seq, signature=cosign(body, key), key=key, timestamp_ms=at + 1
                )
            ]
        )
        assert done.valid, done
    final = ledger.query("GetCheckpoint", str(seq))
    assert final["final"], final
    return final


def test_a_node_issues_anchors_revokes_and_proves_on_fabric(net: FabricNet, tmp_path: Path) -> None:
    """``licledger network init`` makes the consortium; its genesis envelope is submitted to Fabric; a node joins
    as a province (``node init --network-dir``) with ``LICLEDGER_LEDGER_BACKEND=fabric``; licenses issued through
    its API are anchored on Fabric by the node's own anchoring job, one is revoked, and after a quorum-cosigned
    checkpoint the node's proof bundles verify offline against the network's trust root: VALID and REVOKED."""
    network_dir = tmp_path / "net"
    done = licledger("network", "init", "--provinces", "110000,310000", "--dir", network_dir, "--seed", "fabric-node")
    assert done.returncode == 0, done.stdout + done.stderr
    config = NetworkConfig.load(network_dir)
    fabric = {
        "ledger_backend": "fabric",
        "fabric_gateway": net.peer_endpoint,
        "fabric_msp_id": ORG,
        "fabric_msp_dir": net.user_msp(),
        "fabric_tls_ca": net.peer_tls_ca,
        "fabric_channel": CHANNEL,
        "fabric_chaincode": CHAINCODE,
    }
    done = licledger(
        "node", "init", "--dir", tmp_path / "node", "--network-dir", network_dir, "--member", "110000", "--development"
    )
    assert done.returncode == 0, done.stdout + done.stderr
    ctx = open_joined(tmp_path / "node", **fabric)
    assert isinstance(ctx.ledger, FabricLedger)
    [genesis] = ctx.ledger.submit([config.genesis_envelope])
    assert genesis.valid and genesis.block > 0, genesis
    assert ctx.ledger.committed(genesis.tx_id) == genesis
    # the same envelope again is Fabric's duplicate: answered with where it was committed (rule 1), applied once
    [again] = ctx.ledger.submit([config.genesis_envelope])
    assert again == genesis
    # another genesis is refused by the contract at endorsement: in no block
    national = load_member_key(config, "national")
    second = init_consortium(
        Genesis.from_dict(Envelope.from_bytes(config.genesis_envelope).tx.args["genesis"]),
        national,
        timestamp_ms=now_ms(),
    )
    [refused] = ctx.ledger.submit([second])
    assert not refused.valid and refused.reason == "ALREADY_INITIALISED" and (refused.block, refused.index) == (-1, -1)
    assert ctx.ledger.committed(Envelope.from_bytes(second).tx_id) is None

    issuer = Issuer(ctx)
    try:
        uscc = ctx.settings.authority_uscc
        ids = issuer.issue(documents("physician", 3, "110000", uscc) + documents("nurse", 1, "110000", uscc))
        report = AnchorWorker(ctx).run_once(force=True)
        assert report.error is None and report.batches == 1 and report.leaves == 4, report
        on_ledger = ctx.ledger.query("GetBatch", "110000", "0")
        assert on_ledger["record"]["leaf_count"] == 4
        assert ctx.ledger.query("GetBatch", "110000", "1") is None
        issuer.event(ids[0], {"type": "revoke", "reason": "R01"})
        report = AnchorWorker(ctx).run_once(force=True)
        assert report.error is None and report.statuses == 1, report
        assert ctx.ledger.query("GetStatus", ids[0], "")["status"] == REVOKED

        _checkpoint(ctx.ledger, config)
        trust = load_trust_root((network_dir / "network.json").read_bytes(), network_id=config.network_id)
        for license_id in ids[:2]:
            answer = issuer.client.get(f"/v1/licenses/{license_id}/proof", headers=issuer.headers)
            assert answer.status_code == 200, answer.text
            verdict = verify_bundle(
                answer.content, trust, now_ms=now_ms(), max_checkpoint_age_ms=600_000, expected_license_id=license_id
            )
            expected = Result.REVOKED if license_id == ids[0] else Result.VALID
            assert verdict.result is expected, verdict.to_dict(personal=False)
    finally:
        issuer.close()
        ctx.close()
