"""The license-registry contract on a real Hyperledger Fabric network (orderer, peer, chaincode-as-a-service),
driven through the peer's Gateway service by :mod:`network.fabric_gateway`.

What it shows: the same contract the embedded ledger runs accepts an SM2-signed genesis, batches and status
changes on Fabric, refuses forged and replayed envelopes with the same reasons (as endorsement errors, so nothing
reaches a block), and answers queries whose RFC 9162 proofs and sparse-tree status proofs verify. Needs Fabric's
binaries (tests/network/fabricnet.py); skipped, saying why, on a machine without them.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from fabricnet import (
    CHAINCODE,
    CHANNEL,
    ORG,
    FabricNet,
    anchor_env,
    free_port,
    licenses,
    module_network,
    now_ms,
    revoke_env,
)

from chaincode.anchoring import status_tree_key
from core.consortium import Consortium, build_consortium
from core.merkle import verify_inclusion
from core.smt import SparseProof, verify_sparse_proof
from core.transactions import ACTIVE, REVOKED, init_consortium
from network.fabric_gateway import (
    FabricGateway,
    FabricGatewayError,
    FabricIdentity,
    low_s_signature,
)
from node.fabric_ledger import MAX_ATTEMPTS, FabricLedger, fabric_nonce
from node.ledger import LedgerUnavailableError

PROVINCES = ("110000", "310000")

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FabricNet]:
    yield from module_network(tmp_path_factory)


@pytest.fixture(scope="module")
def gateway(net: FabricNet) -> Iterator[FabricGateway]:
    with net.gateway() as gw:
        yield gw


@pytest.fixture(scope="module")
def consortium(gateway: FabricGateway) -> Consortium:
    c = build_consortium(list(PROVINCES), "fabric-test")
    commit = gateway.submit("Submit", init_consortium(c.genesis, c.key("national"), timestamp_ms=now_ms()).decode())
    assert json.loads(commit.result)["type"] == "InitConsortium"
    return c


def test_genesis_batch_status_change_and_proofs_on_fabric(gateway: FabricGateway, consortium: Consortium) -> None:
    c = consortium
    ids, commitments, tree = licenses(c, "110000", 5)
    env = anchor_env(c, "110000", 0, tree, c.key("110000"))
    commit = gateway.submit("Submit", env.decode())
    event = json.loads(commit.result)
    assert event["type"] == "AnchorBatch" and event["log_index"] == 0 and commit.block_number > 0

    info = json.loads(gateway.evaluate("GetLedgerInfo"))
    assert info["network_id"] == c.network_id and info["log"]["size"] == 1
    batch = json.loads(gateway.evaluate("GetBatch", "110000", "0"))
    proof = json.loads(gateway.evaluate("GetLogInclusionProof", str(batch["log_index"]), "1"))
    assert proof["leaf_hash"] == batch["leaf_hash"]
    verify_inclusion(
        0,
        1,
        bytes.fromhex(proof["leaf_hash"]),
        [bytes.fromhex(h) for h in proof["inclusion_proof"]],
        bytes.fromhex(info["log"]["root"]),
    )

    # revoke the third license: the contract checks its leaf under the anchored root
    revoke = revoke_env(c, "110000", ids, commitments, tree, 2)
    assert json.loads(gateway.submit("Submit", revoke.decode()).result)["type"] == "ChangeStatus"
    for i, expected in ((2, REVOKED), (1, ACTIVE)):
        answer = json.loads(gateway.evaluate("GetStatus", str(ids[i]), ""))
        assert answer["status"] == expected
        value = None if answer["value_hash"] is None else bytes.fromhex(answer["value_hash"])
        # the status tree proof verifies: membership for the revoked license, non-membership for the other
        verify_sparse_proof(
            bytes.fromhex(answer["root"]),
            status_tree_key(ids[i].base),
            value,
            SparseProof.from_dict(answer["proof"]),
        )
        assert (value is None) == (expected == ACTIVE)

    # a replay is refused at endorsement with the contract's reason, and the ledger does not move
    with pytest.raises(FabricGatewayError) as replay:
        gateway.submit("Submit", env.decode())
    assert replay.value.reason == "BATCH_SEQ_REPLAY", replay.value
    assert json.loads(gateway.evaluate("GetLedgerInfo"))["tx_count"] == info["tx_count"] + 1  # + the revocation


def test_forged_envelope_is_refused_by_the_contract_on_fabric(gateway: FabricGateway, consortium: Consortium) -> None:
    c = consortium
    _, _, tree = licenses(c, "310000", 3)
    env = anchor_env(c, "310000", 0, tree, c.key("110000"))  # another province's key
    with pytest.raises(FabricGatewayError) as refused:
        gateway.submit("Submit", env.decode())
    assert refused.value.reason in {"UNKNOWN_KEY", "BAD_SIGNATURE"}, refused.value
    assert refused.value.details, "the gateway names the endorsing peer that refused"


def self_made_identity(common_name: str) -> FabricIdentity:
    """An identity with a self-signed certificate that no channel MSP issued."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return FabricIdentity(ORG, cert.public_bytes(serialization.Encoding.PEM), key)


def test_an_identity_outside_the_channel_is_refused(net: FabricNet, tmp_path: Path) -> None:
    """A self-made certificate that no channel MSP issued: the gateway refuses the proposal."""
    intruder = self_made_identity("intruder")
    with (
        net.gateway(1, CHAINCODE, intruder) as gw,
        pytest.raises(FabricGatewayError) as refused,
    ):
        gw.evaluate("GetLedgerInfo")
    assert refused.value.reason is None


def test_low_s_signatures_only() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

    half = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551 // 2
    from cryptography.hazmat.primitives import hashes

    for i in range(64):
        message = f"m{i}".encode()
        sig = low_s_signature(key.sign(message, ec.ECDSA(hashes.SHA256())))
        assert decode_dss_signature(sig)[1] <= half
        key.public_key().verify(sig, message, ec.ECDSA(hashes.SHA256()))


def test_fabric_nonces_are_a_function_of_the_envelope_and_the_attempt() -> None:
    tx = "ab" * 32
    assert fabric_nonce(tx, 0) == b"licledger/" + bytes.fromhex(tx) + b"\x00"
    assert len({fabric_nonce(tx, a) for a in range(MAX_ATTEMPTS)}) == MAX_ATTEMPTS
    with pytest.raises(ValueError, match="attempt"):
        fabric_nonce(tx, MAX_ATTEMPTS)


def test_concurrent_provinces_conflict_on_fabric_and_are_resubmitted(
    net: FabricNet, gateway: FabricGateway, consortium: Consortium
) -> None:
    """Every accepted transaction writes the ledger head, so two provinces' transactions cut into one block
    conflict (``MVCC_READ_CONFLICT``) and only the first is valid: :class:`FabricLedger` resubmits the other as
    its next attempt (node.fabric_ledger rule 2). Both end valid, each exactly once on the ledger."""
    c = consortium
    ledgers = [FabricLedger(gateway, c.network_id) for _ in range(2)]  # two clients: no shared submit lock
    resubmitted = []
    for r in range(10):  # until two submissions shared a block (almost always the first round)
        envelopes = []
        for province in PROVINCES:
            seq = 1 + r if province == "110000" else r  # 110000 anchored batch 0 in the first test
            _, _, tree = licenses(c, province, 2 + r)
            envelopes.append(anchor_env(c, province, seq, tree, c.key(province)))
        with ThreadPoolExecutor(2) as pool:
            verdicts = list(pool.map(lambda pair: pair[0].submit([pair[1]])[0], zip(ledgers, envelopes, strict=True)))
        assert all(v.valid for v in verdicts), verdicts
        for v in verdicts:
            found = ledgers[0].committed(v.tx_id)  # from the block: with its position there
            assert found is not None and found.index >= 0 and dataclasses.replace(found, index=-1) == v
            first = ledgers[0]._attempt(v.tx_id, 0)
            if first != found:  # attempt 0 lost the block to the other province: attempt 1 is the valid one
                assert first is not None and not first.valid and first.reason == "MVCC_READ_CONFLICT", first
                resubmitted.append(v)
        if resubmitted:
            break
    assert resubmitted, "no round conflicted: the two submissions never shared a block"


def test_a_ledger_whose_gateways_all_fail_names_each_and_needs_one_identity() -> None:
    """node.fabric_ledger rules 4 and 5, without Fabric: two gateways on closed loopback ports."""
    identity = self_made_identity("node")
    ports = [free_port(), free_port()]
    gateways = [
        FabricGateway(f"127.0.0.1:{p}", identity, channel=CHANNEL, chaincode=CHAINCODE, timeout=5) for p in ports
    ]
    ledger = FabricLedger(gateways, "ab" * 32)
    with pytest.raises(LedgerUnavailableError) as caught:
        ledger.query("GetLedgerInfo")
    assert all(f"127.0.0.1:{p} (GetLedgerInfo)" in str(caught.value) for p in ports), caught.value
    other = FabricGateway("127.0.0.1:1", self_made_identity("other"), channel=CHANNEL, chaincode=CHAINCODE)
    with pytest.raises(ValueError, match="same Fabric identity"):
        FabricLedger([gateways[0], other], "ab" * 32)
    with pytest.raises(ValueError, match="at least one"):
        FabricLedger([], "ab" * 32)
    for gw in [*gateways, other]:
        gw.close()


def test_only_the_contracts_reasons_are_taken_from_gateway_messages() -> None:
    detail = ("127.0.0.1:7051", "Org1MSP", "chaincode response 500, BATCH_SEQ_REPLAY: batch_seq 0 was already used")
    refused = FabricGatewayError("endorse Submit", grpc.StatusCode.ABORTED, "failed to endorse", [detail])
    assert refused.reason == "BATCH_SEQ_REPLAY" and "127.0.0.1:7051 (Org1MSP)" in str(refused)
    for message in ("TLS: handshake failed", "chaincode response 500, SOMETHING_ELSE: x"):
        assert FabricGatewayError("evaluate", grpc.StatusCode.UNKNOWN, message, []).reason is None
