"""The contract on a three-organisation Fabric channel (each organisation its own peer and chaincode server), under
the default policies: endorsement and lifecycle endorsement by a majority, two of three.

What it shows: with one organisation's peer down the channel goes on (the gateway finds the two others, the
transaction commits with their endorsements), the peer catches up after a restart and then answers every query
as the others do; and a chaincode definition approved by two of the three organisations is committed by
``FabricLifecycle.commit`` with the approvers' endorsements. Skipped, saying why, without Fabric's binaries.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
from fabricnet import FabricNet, anchor_env, endorsers, licenses, module_network, msp_id, now_ms

from core.consortium import build_consortium
from core.transactions import init_consortium
from network.fabric_gateway import FabricGatewayError, FabricIdentity
from network.fabric_lifecycle import LifecycleError, ccaas_package
from node.fabric_ledger import FabricLedger, fabric_nonce

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ALL = {msp_id(1), msp_id(2), msp_id(3)}


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FabricNet]:
    yield from module_network(tmp_path_factory, orgs=3)


def test_one_organisations_peer_down_does_not_stop_the_channel(net: FabricNet) -> None:
    c = build_consortium(["110000", "310000", "440000"], "fabric-three")
    with net.gateway(1) as one:
        genesis = one.submit("Submit", init_consortium(c.genesis, c.key("national"), timestamp_ms=now_ms()).decode())
        found = endorsers(one, genesis.tx_id)
        assert len(found) >= 2 and found <= ALL  # a majority endorsed

        net.kill(net.peer_name(3))
        _, _, tree = licenses(c, "440000", 4, "three")
        env = anchor_env(c, "440000", 0, tree)
        anchored = one.submit("Submit", env.decode())
        assert json.loads(anchored.result)["type"] == "AnchorBatch"
        assert endorsers(one, anchored.tx_id) == {msp_id(1), msp_id(2)}  # the two that are up

        net.restart(net.peer_name(3))
        with net.gateway(3) as three:
            deadline = time.monotonic() + 60
            while True:  # the restarted peer pulls the blocks it missed from the orderer
                try:
                    answers = [
                        [gw.evaluate("GetLedgerInfo"), gw.evaluate("GetBatch", "440000", "0")] for gw in (one, three)
                    ]
                except FabricGatewayError:  # the peer is still starting: asked again below
                    answers = [[b""], [b"starting"]]
                if answers[0] == answers[1] or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
            assert answers[0] == answers[1]
            info = json.loads(answers[0][0])
            assert info["log"]["size"] == 1 and info["tx_count"] == 2


def test_definition_approved_by_a_majority_commits(net: FabricNet) -> None:
    name, label = "registry-majority", "registry_majority_1"
    package = ccaas_package(label, "127.0.0.1:1")  # never invoked: only the definition is committed here
    pids = []
    for org in (1, 2, 3):
        with net.lifecycle(org) as lifecycle:
            pids.append(lifecycle.install(package))
    assert len(set(pids)) == 1  # one package, one id on every peer
    for org in (1, 2):
        with net.lifecycle(org) as lifecycle:
            net.retried(lambda lc=lifecycle: lc.approve(name, "1", 1, pids[0]))
    with net.lifecycle(3) as lifecycle:
        assert lifecycle.readiness(name, "1", 1) == {msp_id(1): True, msp_id(2): True, msp_id(3): False}
        with pytest.raises(LifecycleError, match=f"not approved by {msp_id(3)}"):
            lifecycle.commit(name, "1", 1, sorted(ALL))  # asking org 3 to endorse is refused before sending
        # by the approvers, a majority of the channel (retried while this organisation's peer, restarted by the
        # test above, has not yet heard of the others' peers through gossip)
        done = net.retried(lambda: lifecycle.commit(name, "1", 1))
        assert endorsers(lifecycle.gateway, done.tx_id) == {msp_id(1), msp_id(2)}
        committed = lifecycle.committed(name)
        assert committed is not None and committed.sequence == 1
        assert committed.approvals == {msp_id(1): True, msp_id(2): True, msp_id(3): False}
        assert lifecycle.next_sequence(name) == 2


def test_a_nodes_ledger_fails_over_to_its_next_gateway(net: FabricNet) -> None:
    """``FabricLedger`` with two gateways (node.fabric_ledger rule 5): organisation 1's client goes through its own
    peer, and when that peer dies, through organisation 2's; the channel's majority (2 and 3) still endorses."""
    name = net.deploy("failover")
    c = build_consortium(["110000", "310000", "440000"], "fabric-failover")
    identity = FabricIdentity.from_msp_dir(msp_id(1), net.user_msp(org=1))
    gateways = [net.gateway(org, name, identity) for org in (1, 2)]  # organisation 1's client at both peers
    ledger = FabricLedger(gateways, c.network_id)
    try:
        [genesis] = ledger.submit([init_consortium(c.genesis, c.key("national"), timestamp_ms=now_ms())])
        assert genesis.valid and ledger.gateway is gateways[0]

        net.kill(net.peer_name(1))
        _, _, tree = licenses(c, "110000", 3, "failover")
        env = anchor_env(c, "110000", 0, tree)
        [anchored] = ledger.submit([env])
        assert anchored.valid, anchored
        assert ledger.gateway is gateways[1]  # it stays with the gateway that answered
        assert ledger.query("GetLedgerInfo")["log"]["size"] == 1
        found = ledger.committed(anchored.tx_id)
        assert found is not None and found.block == anchored.block
        assert endorsers(gateways[1], fabric_tx_id(ledger, anchored.tx_id)) == {msp_id(2), msp_id(3)}
    finally:
        net.restart(net.peer_name(1))
        for gw in gateways:
            gw.close()


def fabric_tx_id(ledger: FabricLedger, tx_id: str) -> str:
    """The Fabric transaction id of envelope ``tx_id``'s first attempt (node.fabric_ledger rule 1)."""
    return ledger.gateways[0].transaction_id(fabric_nonce(tx_id, 0))
