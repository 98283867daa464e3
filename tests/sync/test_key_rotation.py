"""Key rotation through the ledger, two-party: `licledger node rotate-key request` (the province signs with its old
and new key), `licledger network endorse` (the national authority adds its endorsement), `licledger node
rotate-key submit` (committed, then the node switches keys). On a real 3-province network: a license issued and
anchored before the rotation and one after both verify VALID against the genesis trust root; an endorsement by a
key that is not national's, or a request tampered with after the endorsement, is rejected by the contract with its
reason and the node keeps its key."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from anchorkit import Issuer, documents, join_node, open_joined
from netkit import Net, licledger

from core import canonical
from core.consortium import NATIONAL
from core.keystore import decrypt_private_key
from core.transactions import Envelope, Signature
from node.keyrotation import PENDING_KEY_FILE, RETIRED_DIR
from node.settings import load_settings
from sync.anchor import AnchorWorker
from verifier.core import Result, load_trust_root, verify_bundle

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Net]:
    n = Net.started(tmp_path_factory.mktemp("rotation") / "net")
    yield n
    n.down()


def _node_key_id(directory: Path) -> str:
    settings = load_settings(directory)
    return decrypt_private_key(settings.key_file.read_bytes(), settings.kek_bytes).key_id


def _run(*args: str | Path) -> tuple[int, str]:
    done = licledger(*args)
    return done.returncode, done.stdout + done.stderr


def _member_keys(net: Net, member: str) -> list[dict[str, Any]]:
    record = canonical.decode(net.client(member).query("GetMember", [member, ""])[1])["record"]
    keys: list[dict[str, Any]] = record["keys"]
    return keys


def _proof(issuer: Issuer, license_id: str, timeout: float = 60.0) -> bytes:
    """The proof once a final checkpoint covers the license's batch (425 meanwhile)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer = issuer.client.get(f"/v1/licenses/{license_id}/proof")
        if answer.status_code == 200:
            return answer.content
        assert answer.status_code == 425, answer.text
        time.sleep(0.5)
    raise AssertionError(f"no proof of {license_id}: {answer.text}")


def _request(net: Net, node_dir: Path, tmp_path: Path) -> Path:
    request = tmp_path / "request.json"
    code, out = _run("node", "rotate-key", "request", "--dir", node_dir, "--out", request)
    assert code == 0, out
    return request


def test_rotated_key_seals_and_anchors_and_old_seals_still_verify(net: Net, tmp_path: Path) -> None:
    member, node_dir = "440000", tmp_path / "node"
    join_node(node_dir, net, member)
    trust = load_trust_root((net.directory / "network.json").read_bytes(), network_id=net.config.network_id)
    old_key_id = _node_key_id(node_dir)

    def issue_and_anchor(start: int) -> tuple[str, bytes]:
        ctx = open_joined(node_dir)
        issuer = Issuer(ctx)
        try:
            [license_id] = issuer.issue(documents("nurse", 1, member, ctx.settings.authority_uscc, start=start))
            report = AnchorWorker(ctx).run_once(force=True)
            assert report.error is None and report.leaves == 1, report
            return license_id, _proof(issuer, license_id)
        finally:
            issuer.close()
            ctx.close()

    before, _ = issue_and_anchor(100)

    request = _request(net, node_dir, tmp_path)
    assert (node_dir / PENDING_KEY_FILE).exists()
    signed = tmp_path / "signed.json"
    code, out = _run("network", "endorse", request, "--dir", net.directory, "--out", signed)
    assert code == 0, out
    assert Envelope.from_bytes(signed.read_bytes()).signature_by(NATIONAL, net.national_key.key_id)  # type: ignore[union-attr]
    assert _node_key_id(node_dir) == old_key_id  # nothing switches before the ledger commits
    code, out = _run("node", "rotate-key", "submit", signed, "--dir", node_dir)
    assert code == 0, out

    new_key_id = _node_key_id(node_dir)
    assert new_key_id != old_key_id and not (node_dir / PENDING_KEY_FILE).exists()
    note = canonical.decode((node_dir / RETIRED_DIR / f"{old_key_id}.json").read_bytes().strip())
    assert note["successor"] == new_key_id
    keys = {k["key_id"]: k for k in _member_keys(net, member)}
    assert keys[old_key_id]["valid_until_ms"] == note["retired_ms"] == keys[new_key_id]["valid_from_ms"]

    after, _ = issue_and_anchor(200)
    ctx = open_joined(node_dir)
    issuer = Issuer(ctx)
    try:
        assert ctx.signing_key.key_id == new_key_id
        for license_id, seal_key in ((before, old_key_id), (after, new_key_id)):
            bundle = _proof(issuer, license_id)
            assert seal_key in bundle.decode()
            verdict = verify_bundle(
                bundle,
                trust,
                now_ms=time.time_ns() // 1_000_000,
                max_checkpoint_age_ms=None,
                expected_license_id=license_id,
            )
            assert verdict.result is Result.VALID, verdict.to_dict(personal=False)
    finally:
        issuer.close()
        ctx.close()


def _rejected(net: Net, node_dir: Path, signed: bytes, tmp_path: Path, reason: str) -> None:
    before = _node_key_id(node_dir)
    path = tmp_path / f"bad-{reason}.json"
    path.write_bytes(signed)
    code, out = _run("node", "rotate-key", "submit", path, "--dir", node_dir)
    assert code != 0 and reason in out, out
    assert _node_key_id(node_dir) == before and (node_dir / PENDING_KEY_FILE).exists()
    assert not (node_dir / RETIRED_DIR).exists()


def test_endorsement_by_a_key_that_is_not_national_is_rejected(net: Net, tmp_path: Path) -> None:
    member, node_dir = "310000", tmp_path / "node"
    join_node(node_dir, net, member)
    request = Envelope.from_bytes(_request(net, node_dir, tmp_path).read_bytes())
    impostor = net.provinces["110000"].key  # a member's key, but not the national authority's
    forged = Signature(NATIONAL, impostor.key_id, impostor.sign(request.tx.signing_message()))
    signed = Envelope(request.tx, (*request.signatures, forged)).to_bytes()
    _rejected(net, node_dir, signed, tmp_path, "BAD_ENDORSEMENT")


def test_request_tampered_after_endorsement_is_rejected(net: Net, tmp_path: Path) -> None:
    member, node_dir = "310000", tmp_path / "node"
    join_node(node_dir, net, member)
    request = _request(net, node_dir, tmp_path)
    signed = tmp_path / "signed.json"
    code, out = _run("network", "endorse", request, "--dir", net.directory, "--out", signed)
    assert code == 0, out
    envelope = Envelope.from_bytes(signed.read_bytes())
    tx = envelope.tx
    tampered_tx = type(tx)(tx.type, tx.network_id, tx.author, tx.key_id, tx.timestamp_ms + 1, tx.seq, tx.args)
    tampered = Envelope(tampered_tx, envelope.signatures).to_bytes()
    _rejected(net, node_dir, tampered, tmp_path, "BAD_SIGNATURE")


def test_endorse_refuses_what_is_not_a_rotation_request(net: Net, tmp_path: Path) -> None:
    member, node_dir = "310000", tmp_path / "node"
    join_node(node_dir, net, member)
    request = Envelope.from_bytes(_request(net, node_dir, tmp_path).read_bytes())
    half = tmp_path / "no-proof-of-possession.json"
    half.write_bytes(Envelope(request.tx, request.signatures[:1]).to_bytes())
    code, out = _run("network", "endorse", half, "--dir", net.directory)
    assert code != 0 and "RotationRequestError" in out and "a request carries exactly" in out, out


def test_submit_after_a_lost_answer_switches_to_the_committed_key(net: Net, tmp_path: Path) -> None:
    """The endorsed rotation reached the ledger but the node never learnt it (answer lost, crash before the
    switch): submitting again finds the committed, valid copy and switches (it does not fail on the replay).
    Runs last: it retires a second member's peer key, after which checkpoints would lack a quorum."""
    member, node_dir = "110000", tmp_path / "node"
    join_node(node_dir, net, member)
    request = _request(net, node_dir, tmp_path)
    signed = tmp_path / "signed.json"
    code, out = _run("network", "endorse", request, "--dir", net.directory, "--out", signed)
    assert code == 0, out
    [verdict] = net.submit(signed.read_bytes(), via="310000")["txs"]
    assert verdict["valid"], verdict
    old_key_id = _node_key_id(node_dir)
    code, out = _run("node", "rotate-key", "submit", signed, "--dir", node_dir)
    assert code == 0, out
    new_key_id = _node_key_id(node_dir)
    assert new_key_id != old_key_id and (node_dir / RETIRED_DIR / f"{old_key_id}.enc").exists()
    assert any(k["key_id"] == new_key_id and k["valid_until_ms"] is None for k in _member_keys(net, member))
