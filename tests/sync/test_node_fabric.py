"""A provincial node on Hyperledger Fabric: the node's ledger backend ``fabric`` (node.fabric_ledger) against a real
Fabric network (tests/network/fabricnet.py: Raft orderer, peer, the contract as chaincode-as-a-service). Skipped,
saying why, on a machine without Fabric's binaries."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from anchorkit import Issuer, documents, open_joined, serving, wait_for
from fabricnet import FabricNet, module_network
from netkit import licledger

from core.consortium import Genesis
from core.transactions import REVOKED, Envelope, init_consortium
from network.localnet import NetworkConfig, load_member_key
from node.fabric_ledger import FabricLedger
from sync.anchor import AnchorWorker
from sync.scheduler import checkpoint_duty
from verifier.core import Result, load_trust_root, verify_bundle

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FabricNet]:
    yield from module_network(tmp_path_factory)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def test_a_node_issues_anchors_revokes_and_proves_on_fabric(net: FabricNet, tmp_path: Path) -> None:
    """``licledger network init`` makes the consortium; its genesis envelope is submitted to Fabric; a node joins
    as a province (``node init --network-dir``) with ``LICLEDGER_LEDGER_BACKEND=fabric``; licenses issued through
    its API are anchored on Fabric by the node's own anchoring job, one is revoked, and after a quorum-cosigned
    checkpoint the node's proof bundles verify offline against the network's trust root: VALID and REVOKED."""
    network_dir = tmp_path / "net"
    done = licledger("network", "init", "--provinces", "110000,310000", "--dir", network_dir, "--seed", "fabric-node")
    assert done.returncode == 0, done.stdout + done.stderr
    config = NetworkConfig.load(network_dir)
    fabric = net.node_settings()
    done = licledger(
        "node", "init", "--dir", tmp_path / "node", "--network-dir", network_dir, "--member", "110000", "--development"
    )
    assert done.returncode == 0, done.stdout + done.stderr
    done = licledger(
        "node", "init", "--dir", tmp_path / "node2", "--network-dir", network_dir, "--member", "310000", "--development"
    )
    assert done.returncode == 0, done.stdout + done.stderr
    ctx = open_joined(tmp_path / "node", **fabric)
    assert isinstance(ctx.ledger, FabricLedger)
    [genesis] = ctx.ledger.submit([config.genesis_envelope])
    assert genesis.valid and genesis.block > 0, genesis
    found = ctx.ledger.committed(genesis.tx_id)  # read from its block: the position in it too
    assert found is not None and found.index >= 0 and genesis.index == -1  # the commit status names only the block
    assert dataclasses.replace(found, index=-1) == genesis
    # the same envelope again is Fabric's duplicate: answered with where it was committed (rule 1), applied once
    [again] = ctx.ledger.submit([config.genesis_envelope])
    assert again == found  # found in its block, so with its position
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

        # the provinces' checkpoint duty (sync.checkpoints): the first proposes and cosigns, the second cosigns,
        # and with 2 of the 3 members the checkpoint is final
        other = open_joined(tmp_path / "node2", **fabric)
        duties = [checkpoint_duty(ctx), checkpoint_duty(other)]
        first = duties[0].run_once()
        assert first.error is None and first.proposed == 0 and first.cosigned == [0], first
        assert not ctx.ledger.query("GetCheckpoint", "0")["final"]
        second = duties[1].run_once()
        assert second.error is None and second.proposed is None and second.cosigned == [0], second
        assert ctx.ledger.latest_final_checkpoint() is not None
        again = duties[0].run_once()  # nothing changed and the checkpoint is fresh: nothing to do
        assert (again.proposed, again.cosigned, again.error) == (None, [], None)
        other.close()
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


def test_two_provinces_serve_on_fabric_and_their_checkpoint_duty_makes_proofs_final(
    net: FabricNet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real processes: ``licledger node genesis`` puts a new network's genesis on Fabric (twice: applied once),
    two provinces' ``licledger node serve`` run with ``LICLEDGER_LEDGER_BACKEND=fabric``; licenses issued over
    HTTP are anchored by the first node's scheduler, and the two nodes' checkpoint duties make a final
    checkpoint, so the proofs verify offline: the revoked license REVOKED, the other VALID."""
    network_dir = tmp_path / "net"
    done = licledger("network", "init", "--provinces", "110000,310000", "--dir", network_dir, "--seed", "fabric-serve")
    assert done.returncode == 0, done.stdout + done.stderr
    config = NetworkConfig.load(network_dir)
    # a chaincode of this test's own: the module's other test initialised the first one with another genesis
    chaincode = net.deploy("licledger-serve")
    for name, value in {**net.node_environment(chaincode), "LICLEDGER_CHECKPOINT_DUTY_INTERVAL_S": "0.5"}.items():
        monkeypatch.setenv(name, value)
    keys = {}
    for member in ("110000", "310000"):
        done = licledger(
            "node", "init", "--dir", tmp_path / member, "--network-dir", network_dir, "--member", member,
            "--development",
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        [keys[member]] = [line for line in done.stdout.splitlines() if line.startswith("llk_")]
    blocks = set()
    for _ in range(2):
        done = licledger("node", "genesis", "--dir", tmp_path / "110000", "--network-dir", network_dir)
        assert done.returncode == 0, done.stdout + done.stderr
        blocks.add(done.stdout.split(" is in block ")[1].strip())
    assert len(blocks) == 1, blocks

    trust = load_trust_root((network_dir / "network.json").read_bytes(), network_id=config.network_id)
    with (
        serving(tmp_path / "110000", tmp_path / "a.log") as (_, url_a),
        serving(tmp_path / "310000", tmp_path / "b.log") as (_, url_b),
        httpx.Client(base_url=url_a, headers={"Authorization": f"Bearer {keys['110000']}"}, timeout=30) as a,
    ):
        wait_for("both nodes up", lambda: all(_up(u) for u in (url_a, url_b)))
        uscc = a.get("/healthz").json()["authority_uscc"]
        ids = []
        for doc in documents("physician", 2, "110000", uscc, start=900):
            answer = a.post("/v1/licenses", json=doc)
            assert answer.status_code == 201, answer.text
            ids.append(answer.json()["license_id"])
        wait_for(
            "anchoring", lambda: all(a.get(f"/v1/licenses/{i}/status").json()["status"] == "anchored" for i in ids)
        )
        assert a.post(f"/v1/licenses/{ids[0]}/events", json={"type": "revoke", "reason": "R01"}).status_code == 201

        def verdict(license_id: str, expected: Result) -> bool:
            answer = a.get(f"/v1/licenses/{license_id}/proof")
            if answer.status_code == 425:
                return False
            assert answer.status_code == 200, answer.text
            result = verify_bundle(
                answer.content, trust, now_ms=now_ms(), max_checkpoint_age_ms=600_000, expected_license_id=license_id
            ).result
            return result is expected

        wait_for("a final checkpoint with the revocation", lambda: verdict(ids[0], Result.REVOKED), timeout=90)
        assert verdict(ids[1], Result.VALID)
    assert "Traceback" not in (tmp_path / "a.log").read_text() + (tmp_path / "b.log").read_text()


def _up(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_fabric_peer_down_issuing_goes_on_and_anchoring_catches_up(net: FabricNet, tmp_path: Path) -> None:
    """The issue's fault rule on Fabric: with the peer killed, licenses are still issued (pending), an anchoring
    pass reports the ledger unavailable and changes nothing; once the peer is back, the next pass anchors every
    license exactly once."""
    network_dir = tmp_path / "net"
    done = licledger("network", "init", "--provinces", "110000,310000", "--dir", network_dir, "--seed", "fabric-down")
    assert done.returncode == 0, done.stdout + done.stderr
    chaincode = net.deploy("licledger-down")
    done = licledger(
        "node", "init", "--dir", tmp_path / "node", "--network-dir", network_dir, "--member", "110000", "--development"
    )
    assert done.returncode == 0, done.stdout + done.stderr
    ctx = open_joined(tmp_path / "node", **net.node_settings(chaincode), ledger_timeout_s=10)
    issuer = Issuer(ctx)
    try:
        assert ctx.ledger is not None
        [genesis] = ctx.ledger.submit([NetworkConfig.load(network_dir).genesis_envelope])
        assert genesis.valid
        uscc = ctx.settings.authority_uscc
        net.kill("peer")
        try:
            ids = issuer.issue(documents("nurse", 3, "110000", uscc, start=40))
            report = AnchorWorker(ctx).run_once(force=True)
            assert report.error is not None and report.batches == 0, report
            assert {
                issuer.client.get(f"/v1/licenses/{i}/status", headers=issuer.headers).json()["status"] for i in ids
            } == {"pending"}
        finally:
            net.restart("peer")
        report = wait_for(
            "anchoring after the peer is back", lambda: (r := AnchorWorker(ctx).run_once(force=True)).batches and r
        )
        assert report.error is None and report.leaves == 3, report
        assert ctx.ledger.query("GetBatch", "110000", "0")["record"]["leaf_count"] == 3
        assert ctx.ledger.query("GetBatch", "110000", "1") is None  # anchored once
    finally:
        issuer.close()
        ctx.close()


def test_a_node_with_two_peers_of_its_organisation_anchors_through_the_other_when_one_dies(
    net: FabricNet, tmp_path: Path
) -> None:
    """An organisation's second peer (``cryptogen extend``, joined, the contract installed) and a node configured
    with both (``LICLEDGER_FABRIC_GATEWAY=peer0,peer1``, node.fabric_ledger rule 5): with the first peer killed,
    issuing goes on and the anchoring pass commits through the second, each license anchored once."""
    second = net.add_peer(1)
    network_dir = tmp_path / "net"
    done = licledger("network", "init", "--provinces", "110000,310000", "--dir", network_dir, "--seed", "fabric-ha")
    assert done.returncode == 0, done.stdout + done.stderr
    chaincode = net.deploy("licledger-ha")  # installed on both peers of the organisation
    done = licledger(
        "node", "init", "--dir", tmp_path / "node", "--network-dir", network_dir, "--member", "110000", "--development"
    )
    assert done.returncode == 0, done.stdout + done.stderr
    both = f"{net.endpoint(1)},{net.endpoint(1, second)}"
    ctx = open_joined(tmp_path / "node", **{**net.node_settings(chaincode), "fabric_gateway": both})
    issuer = Issuer(ctx)
    try:
        ledger = ctx.ledger
        assert isinstance(ledger, FabricLedger) and len(ledger.gateways) == 2
        [genesis] = ledger.submit([NetworkConfig.load(network_dir).genesis_envelope])
        assert genesis.valid and ledger.gateway.endpoint == net.endpoint(1)
        uscc = ctx.settings.authority_uscc
        issuer.issue(documents("physician", 3, "110000", uscc, start=60))
        report = AnchorWorker(ctx).run_once(force=True)
        assert report.error is None and report.leaves == 3, report

        net.kill("peer")
        try:
            issuer.issue(documents("physician", 4, "110000", uscc, start=70))
            report = AnchorWorker(ctx).run_once(force=True)
            assert report.error is None and report.batches == 1 and report.leaves == 4, report
            assert ledger.gateway.endpoint == net.endpoint(1, second)
            assert ledger.query("GetBatch", "110000", "1")["record"]["leaf_count"] == 4
            assert ledger.query("GetBatch", "110000", "2") is None  # each license anchored once
        finally:
            net.restart("peer")
    finally:
        issuer.close()
        ctx.close()
