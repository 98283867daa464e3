"""The contract on a two-organisation Fabric channel: each organisation its own peer and its own chaincode server,
the default endorsement policy a majority of the two (so both). A transaction commits only if both peers'
executions of the contract agree byte for byte, which is the determinism the embedded ledger relies on too;
afterwards both peers answer every query the same. Skipped, saying why, without Fabric's binaries."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
from fabricnet import FabricNet, anchor_env, endorsers, licenses, module_network, msp_id, now_ms, revoke_env

from core.consortium import build_consortium
from core.transactions import REVOKED, init_consortium

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FabricNet]:
    yield from module_network(tmp_path_factory, orgs=2)


def test_both_organisations_endorse_and_agree(net: FabricNet) -> None:
    c = build_consortium(["110000", "310000"], "fabric-orgs")
    with net.gateway(1) as one, net.gateway(2) as two:
        genesis = one.submit("Submit", init_consortium(c.genesis, c.key("national"), timestamp_ms=now_ms()).decode())
        assert endorsers(one, genesis.tx_id) == {msp_id(1), msp_id(2)}

        ids, commitments, tree = licenses(c, "110000", 3, "orgs")
        env = anchor_env(c, "110000", 0, tree)
        anchored = two.submit("Submit", env.decode())  # submitted through the other organisation's gateway
        assert json.loads(anchored.result)["type"] == "AnchorBatch"
        assert endorsers(two, anchored.tx_id) == {msp_id(1), msp_id(2)}
        revoke = revoke_env(c, "110000", ids, commitments, tree, 1)
        one.submit("Submit", revoke.decode())

        # both peers committed the same blocks and hold the same state: every answer is identical
        deadline = time.monotonic() + 30
        while True:
            answers = [
                [
                    gw.evaluate("GetLedgerInfo"),
                    gw.evaluate("GetStatus", str(ids[1]), ""),
                    gw.evaluate("GetBatch", "110000", "0"),
                ]
                for gw in (one, two)
            ]
            if answers[0] == answers[1] or time.monotonic() > deadline:
                break
            time.sleep(0.2)  # the second peer may commit the last block a moment later
        assert answers[0] == answers[1]
        info = json.loads(answers[0][0])
        assert info["log"]["size"] == 1 and info["tx_count"] == 3
        assert json.loads(answers[0][1])["status"] == REVOKED
