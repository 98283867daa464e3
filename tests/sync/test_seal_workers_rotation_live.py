"""Key rotation under ``licledger node serve --seal-workers 2``: the sealing workers follow the new key.

On a real 3-province network on loopback, one serve process (never restarted) with two spawned sealing workers:
a batch sealed by the workers with the old key; while the rotation is pending a batch is refused (503) and
nothing is sealed; after `node rotate-key submit` the pool is replaced by new worker processes holding the new
key, the old workers exit, and the next batch is sealed **by the pool** (``GET /v1/sealing``: its batch counter,
not the in-thread one, moves) with the new key; licenses of both batches verify VALID against the genesis.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from anchorkit import cli, documents, join_node, serving, wait_for
from netkit import Net

from core import canonical
from network.localnet import load_kek, load_member_key
from node.settings import load_settings
from verifier.core import Result, load_trust_root, verify_bundle

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MEMBER = "310000"


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Net]:
    n = Net.started(tmp_path_factory.mktemp("seal-workers-rotation") / "net")
    yield n
    n.down()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_seal_workers_follow_a_key_rotation_without_restart(net: Net, tmp_path: Path) -> None:
    node_dir = tmp_path / "node"
    operator = join_node(node_dir, net, MEMBER)
    uscc = load_settings(node_dir).authority_uscc
    log = tmp_path / "serve.log"
    trust = load_trust_root((net.directory / "network.json").read_bytes(), network_id=net.config.network_id)
    with (
        serving(node_dir, log, "--seal-workers", "2") as (proc, url),
        httpx.Client(base_url=url, headers={"Authorization": f"Bearer {operator}"}, timeout=60) as client,
    ):

        def sealing() -> dict[str, Any] | None:
            assert proc.poll() is None, log.read_text()
            try:
                answer = client.get("/v1/sealing")
            except httpx.TransportError:
                return None
            return answer.json() if answer.status_code == 200 else None

        def batch(start: int) -> list[dict[str, Any]]:
            docs = documents("nurse", 3, MEMBER, uscc, start=start)
            answer = client.post("/v1/licenses/batch", content=canonical.encode({"documents": docs}))
            assert answer.status_code == 201, answer.text
            licenses: list[dict[str, Any]] = answer.json()["licenses"]
            return licenses

        def verdict(license_id: str) -> Result | None:
            got = client.get(f"/v1/licenses/{license_id}/proof")
            if got.status_code != 200:
                return None
            now = time.time_ns() // 1_000_000
            v = verify_bundle(
                got.content, trust, now_ms=now, max_checkpoint_age_ms=None, expected_license_id=license_id
            )
            return v.result

        first = wait_for("node serve and its sealing workers", sealing, 90)
        old_key_id = client.get("/healthz").json()["signing_key_id"]
        assert (first["workers"], first["key_id"], len(first["pids"]), first["pools_started"]) == (2, old_key_id, 2, 1)
        before = batch(400)
        assert {x["seal_key_id"] for x in before} == {old_key_id}
        sealed_by = sealing() or {}
        assert (sealed_by["batches_by_workers"], sealed_by["batches_in_thread"]) == (1, 0)  # by the pool

        request, signed = tmp_path / "request.json", tmp_path / "signed.json"
        cli("node", "rotate-key", "request", "--dir", node_dir, "--out", request)
        # pending: a batch is refused before anything is sealed, by the pool or in the request's thread
        docs = documents("nurse", 2, MEMBER, uscc, start=398)
        refused = client.post("/v1/licenses/batch", content=canonical.encode({"documents": docs}))
        assert refused.status_code == 503 and "rotation is pending" in refused.json()["detail"], refused.text
        assert client.get(f"/v1/licenses/{docs[0]['license_id']}").status_code == 404
        pending = sealing()
        assert pending is not None and pending["key_id"] == old_key_id and pending["pids"] == first["pids"]
        assert (pending["batches_by_workers"], pending["batches_in_thread"]) == (1, 0)

        cli("network", "endorse", request, "--dir", net.directory, "--out", signed)
        cli("node", "rotate-key", "submit", signed, "--dir", node_dir, "--network-dir", net.directory)
        new_key_id = load_member_key(net.config, MEMBER, load_kek(net.config)).key_id
        assert new_key_id != old_key_id

        # the same serve process: a new pool with the new key replaces the old one, whose workers exit
        def replaced() -> dict[str, Any] | None:
            now = sealing()
            return now if now and now["key_id"] == new_key_id and now["draining"] == 0 else None

        second = wait_for("the sealing workers to hold the new key", replaced, 60)
        assert second["pools_started"] == 2 and len(second["pids"]) == 2
        assert not set(second["pids"]) & set(first["pids"])
        wait_for("the old workers to exit", lambda: not any(_alive(p) for p in first["pids"]), 30)

        after = batch(401)
        assert {x["seal_key_id"] for x in after} == {new_key_id}
        counted = sealing()
        assert counted is not None and counted["pids"] == second["pids"]
        # sealed by the pool, not in the request's thread
        assert (counted["batches_by_workers"], counted["batches_in_thread"]) == (2, 0)

        for license_id in (before[0]["license_id"], after[0]["license_id"], after[2]["license_id"]):
            wait_for(f"{license_id} to verify VALID", lambda i=license_id: verdict(i) is Result.VALID, 90)
        assert proc.poll() is None
    text = log.read_text(errors="replace")
    assert f"seal with key {new_key_id} instead of {old_key_id}" in text, text
    assert "Traceback" not in text, text
