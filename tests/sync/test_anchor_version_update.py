"""A license's new version and its version update (ChangeStatus, reason NEW_VERSION) against a real 3-province
network: the update waits for the new version's leaf, survives a worker SIGKILLed after recording it and after
submitting it, and lands on the ledger exactly once, so that the status record names the current version."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from anchorkit import Issuer, documents, join_node, kill_worker_at, open_joined
from netkit import Net
from test_anchor_faults import _assert_anchored_exactly_once, _states

from sync.anchor import AnchorWorker
from verifier.core import Result, load_trust_root, verify_bundle

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Net]:
    n = Net.started(tmp_path_factory.mktemp("version") / "net")
    yield n
    n.down()


def test_version_update_is_anchored_once_after_its_version_across_kills(net: Net, tmp_path: Path) -> None:
    """A change of scope makes a new version: its leaf is anchored, then its version update (ChangeStatus, reason
    NEW_VERSION, citing the new version's leaf) is signed, recorded and submitted; a worker killed after recording
    it and again after submitting it leaves exactly one status change on the ledger, naming the new version."""
    member = "310000"
    node_dir = tmp_path / "node"
    join_node(node_dir, net, member)
    ctx = open_joined(node_dir)
    issuer = Issuer(ctx)
    try:
        [lic] = issuer.issue(documents("nurse", 1, member, ctx.settings.authority_uscc, start=700))
        AnchorWorker(ctx).run_once(force=True)
        written = issuer.event(lic, {"type": "renew", "valid_from": "2024-01-01", "valid_to": "2028-12-31"})
        v2 = written["license_id"]
        assert v2 != lic and _states(ctx)["status:pending"] == 1  # waits for the new version's leaf
        kill_worker_at(node_dir, "status-recorded")
        assert _states(ctx)["status:batched"] == 1 and _states(ctx)["leaf:anchored"] == 2
        kill_worker_at(node_dir, "status-submitted")
        final = AnchorWorker(ctx).run_once(force=True)
        assert final.error is None and not final.rejected, final
        _assert_anchored_exactly_once(ctx, net, member)
        record = net.client(member).get_json(f"/v1/query/GetStatus?arg={lic}&arg=")["record"]
        assert (record["license_id"], record["reason"], record["status"], record["status_seq"]) == (
            v2,
            "NEW_VERSION",
            "active",
            0,
        )
        # a later status change takes the next status_seq and cites the current version
        issuer.event(v2, {"type": "suspend", "reason": "S01"})
        assert AnchorWorker(ctx).run_once(force=True).statuses == 1
        record = net.client(member).get_json(f"/v1/query/GetStatus?arg={lic}&arg=")["record"]
        assert (record["license_id"], record["status"], record["status_seq"]) == (v2, "suspended", 1)
    finally:
        issuer.close()
        ctx.close()


def test_old_versions_proof_from_the_node_verifies_superseded(net: Net, tmp_path: Path) -> None:
    """End to end: the node's proof bundle of version 1, once the version update is under a final checkpoint,
    is SUPERSEDED (naming version 2); version 2's is VALID."""
    member = "110000"
    node_dir = tmp_path / "node"
    join_node(node_dir, net, member)
    ctx = open_joined(node_dir)
    issuer = Issuer(ctx)
    trust = load_trust_root((net.directory / "network.json").read_bytes(), network_id=net.config.network_id)
    try:
        [v1] = issuer.issue(documents("nurse", 1, member, ctx.settings.authority_uscc, start=800))
        AnchorWorker(ctx).run_once(force=True)
        v2 = issuer.event(v1, {"type": "renew", "valid_from": "2024-01-01", "valid_to": "2028-12-31"})["license_id"]
        assert AnchorWorker(ctx).run_once(force=True).statuses == 1

        def verdict(license_id: str) -> Result | None:
            answer = issuer.client.get(f"/v1/licenses/{license_id}/proof", headers=issuer.headers)
            if answer.status_code == 425:
                return None
            assert answer.status_code == 200, answer.text
            now = time.time_ns() // 1_000_000
            v = verify_bundle(answer.content, trust, now_ms=now, max_checkpoint_age_ms=600_000)
            return v.result

        deadline = time.monotonic() + 60
        results: tuple[Result | None, Result | None] = (None, None)
        while time.monotonic() < deadline:
            AnchorWorker(ctx).run_once(force=True)
            results = (verdict(v1), verdict(v2))
            if results == (Result.SUPERSEDED, Result.VALID):
                break
            assert results[0] in (None, Result.VALID, Result.SUPERSEDED), results  # VALID only before the update
            time.sleep(0.5)
        assert results == (Result.SUPERSEDED, Result.VALID), results
        # the node's verification API says the same, and its summary names the newer version
        bundle = issuer.client.get(f"/v1/licenses/{v1}/proof", headers=issuer.headers).content
        answer = issuer.client.post("/v1/verify", content=bundle, headers=issuer.headers)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert (body["result"], body["exit_code"], body["facts"]["superseded_by"]) == ("SUPERSEDED", 1, v2)
        assert (
            body["summary"]["failed_step"]["reason"] == "SUPERSEDED" and v2 in body["summary"]["failed_step"]["detail"]
        )
    finally:
        issuer.close()
        ctx.close()
