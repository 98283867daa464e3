"""Key rotation while everything keeps running: a `licledger node serve` process and the member's peer adopt the
new key without a restart (network.keyfile.KeyFile), and the node seals nothing while the rotation is pending.

On a real 3-province network on loopback: a license issued over HTTP before the rotation, then
`node rotate-key request` / `network endorse` / `node rotate-key submit --network-dir`, then a license issued over
HTTP by the *same* serve process: it is sealed and anchored with the new key, both verify VALID against the
genesis, and the member's peer cosigns later checkpoints with the new key.
"""

from __future__ import annotations

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

MEMBER = "440000"


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Net]:
    n = Net.started(tmp_path_factory.mktemp("live-rotation") / "net")
    yield n
    n.down()


def test_running_serve_and_peer_adopt_the_rotated_key(net: Net, tmp_path: Path) -> None:
    node_dir = tmp_path / "node"
    operator = join_node(node_dir, net, MEMBER)
    uscc = load_settings(node_dir).authority_uscc
    log = tmp_path / "serve.log"
    trust = load_trust_root((net.directory / "network.json").read_bytes(), network_id=net.config.network_id)
    with (
        serving(node_dir, log) as (proc, url),
        httpx.Client(base_url=url, headers={"Authorization": f"Bearer {operator}"}, timeout=30) as client,
    ):

        def healthy() -> dict[str, Any] | None:
            assert proc.poll() is None, log.read_text()
            try:
                answer = httpx.get(url + "/healthz", timeout=2)
            except httpx.TransportError:
                return None
            return answer.json() if answer.status_code == 200 else None

        old_key_id = wait_for("node serve", healthy, 60)["signing_key_id"]

        def issue(start: int) -> tuple[str, bytes]:
            [doc] = documents("nurse", 1, MEMBER, uscc, start=start)
            answer = client.post("/v1/licenses", content=canonical.encode(doc))
            assert answer.status_code == 201, answer.text
            license_id = answer.json()["license_id"]

            def proof() -> bytes | None:
                got = client.get(f"/v1/licenses/{license_id}/proof")
                return got.content if got.status_code == 200 else None

            return license_id, wait_for(f"the proof of {license_id}", proof, 90)

        before, _ = issue(300)

        request, signed = tmp_path / "request.json", tmp_path / "signed.json"
        cli("node", "rotate-key", "request", "--dir", node_dir, "--out", request)
        # While the rotation is pending nothing is sealed (a seal by the old key after the request time would not
        # verify once the rotation commits): issuing answers 503 with Retry-After, and nothing is stored.
        [pending_doc] = documents("nurse", 1, MEMBER, uscc, start=299)
        refused = client.post("/v1/licenses", content=canonical.encode(pending_doc))
        assert refused.status_code == 503 and "rotation is pending" in refused.json()["detail"], refused.text
        assert refused.headers["Retry-After"] == "30"
        assert client.get(f"/v1/licenses/{pending_doc['license_id']}").status_code == 404
        # A revocation is accepted and queued; the anchoring worker signs it only after the switch (new key).
        revoked = client.post(f"/v1/licenses/{before}/events", json={"type": "revoke", "reason": "R01"})
        assert revoked.status_code in (200, 201), revoked.text
        time.sleep(1.0)  # several anchoring passes (every 200 ms) pause instead of signing with the old key
        cli("network", "endorse", request, "--dir", net.directory, "--out", signed)
        out = cli("node", "rotate-key", "submit", signed, "--dir", node_dir, "--network-dir", net.directory)
        assert "adopts it" in out
        config = net.config
        new_key = load_member_key(config, MEMBER, load_kek(config))
        assert new_key.key_id != old_key_id
        assert config.key_file(MEMBER).with_name(f"{MEMBER}.key.{old_key_id}").exists()  # the old file is kept

        # The same serve process, never restarted, now seals and anchors with the new key.
        wait_for("serve to report the new key", lambda: (healthy() or {}).get("signing_key_id") == new_key.key_id, 10)
        after, after_bundle = issue(301)
        assert new_key.key_id in after_bundle.decode()
        assert proc.poll() is None
        now = time.time_ns() // 1_000_000

        def verdict_of(license_id: str) -> Result:
            bundle = client.get(f"/v1/licenses/{license_id}/proof").content
            now_ms = time.time_ns() // 1_000_000
            verdict = verify_bundle(
                bundle, trust, now_ms=now_ms, max_checkpoint_age_ms=None, expected_license_id=license_id
            )
            return verdict.result

        wait_for("the revocation queued during the rotation", lambda: verdict_of(before) is Result.REVOKED, 60)
        assert verdict_of(after) is Result.VALID

        # The member's peer (never restarted) cosigns with the new key once its membership state lists it.
        peer = net.client(MEMBER)

        def cosigned_with_new_key() -> bool:
            info = canonical.decode(peer.query("GetLedgerInfo", [])[1])
            for seq in range(int(info["checkpoint_next"]) - 1, -1, -1):
                record = canonical.decode(peer.query("GetCheckpoint", [str(seq)])[1])
                for c in record["cosignatures"]:
                    if c["member"] == MEMBER:
                        if c["key_id"] == new_key.key_id:
                            return True
                        break
                if int(record["fields"]["timestamp_ms"]) < now - 60_000:
                    break
            return False

        issue(302)  # new anchors make new checkpoints
        wait_for("a checkpoint cosigned by the peer with the new key", cosigned_with_new_key, 60)
