"""Online verification (``licledger verify --id/--qr --node/--peer``, verifier.online) against a real 3-province
network with two provincial nodes served by uvicorn; lying nodes are real HTTP proxies that rewrite answers.

Named after what they reproduce: a split view (two quorum-signed checkpoints with one tree_size and two roots), a
forged consistency proof, a node serving another license's bundle, a stale checkpoint, a stale source, too few
sources; and the honest paths: two sources, advancing through a consistency proof, a revoked license, a voucher
QR photo (offline bundle) and a reference QR code."""

from __future__ import annotations

import io
import json
import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pypdfium2 as pdfium  # type: ignore[import-untyped]
import pytest
import segno
from click.testing import CliRunner, Result
from onlinekit import Deployment, Licenses, Proxy, call, free_port, prepare
from PIL import Image, ImageFilter

from core.bundle import QrReference
from node.cli import cli

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def dep(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    d = Deployment.start(tmp_path_factory.mktemp("online"))
    yield d
    d.stop()


@pytest.fixture(scope="module")
def lic(dep: Deployment) -> Licenses:
    return prepare(dep)


def verify(dep: Deployment, state: Path, *args: str) -> tuple[Result, dict[str, Any]]:
    result = CliRunner().invoke(
        cli, ["verify", *args, "--trust-root", str(dep.network_json), "--state", str(state), "--json"]
    )
    try:
        return result, json.loads(result.stdout)
    except ValueError:
        return result, {}


def bj(dep: Deployment) -> str:
    return dep.nodes["110000"].url


def sh(dep: Deployment) -> str:
    return dep.nodes["310000"].url


def test_verifies_against_two_nodes_and_keeps_the_trusted_checkpoint(
    dep: Deployment, lic: Licenses, tmp_path: Path
) -> None:
    state = tmp_path / "state.json"
    result, report = verify(dep, state, "--id", lic.active, "--node", bj(dep), "--node", sh(dep))
    assert result.exit_code == 0, result.output
    assert report["result"] == "VALID" and report["verdict"]["facts"]["status"] == "active"
    assert [s["ok"] for s in report["sources"]] == [True, True]
    assert report["trusted_checkpoint"]["advanced"] and report["trusted_checkpoint"]["before"] is None
    saved = json.loads(state.read_bytes())
    assert saved["format"] == "licledger-verifier-state/1" and saved["trust_root"]["checkpoint"]
    # any node that holds the license, any mix of nodes and peers: Shanghai's node has no such license (404)
    again, report2 = verify(
        dep, state, "--id", lic.active, "--node", sh(dep), "--node", bj(dep), "--peer", dep.peer_url("440000")
    )
    assert again.exit_code == 0, again.output
    assert report2["trusted_checkpoint"]["before"]["tree_size"] >= report["trusted_checkpoint"]["after"]["tree_size"]
    assert report2["bundle_source"] == f"node {bj(dep)}" and any("not found" in n for n in report2["notes"])


def test_revoked_license_online_is_revoked_exit_1(dep: Deployment, lic: Licenses, tmp_path: Path) -> None:
    result, report = verify(
        dep, tmp_path / "s.json", "--id", lic.revoked, "--node", bj(dep), "--peer", dep.peer_url("310000")
    )
    assert result.exit_code == 1, result.output
    assert report["result"] == "REVOKED"
    assert report["verdict"]["steps"][6]["reason"] == "REVOKED"


def test_checkpoint_advances_only_through_a_verified_consistency_proof(
    dep: Deployment, lic: Licenses, tmp_path: Path
) -> None:
    state = tmp_path / "state.json"
    first, report = verify(dep, state, "--id", lic.active, "--node", bj(dep), "--node", sh(dep))
    assert first.exit_code == 0, first.output
    size = report["trusted_checkpoint"]["after"]["tree_size"]
    node = dep.nodes["110000"]
    [new_id] = node.issue(dep.documents("110000", 1, start=100))
    node.wait_proof(new_id)
    with Proxy(sh(dep)) as watched:
        second, report = verify(dep, state, "--id", new_id, "--node", watched.url, "--node", bj(dep))
    assert second.exit_code == 0, second.output
    moved = report["trusted_checkpoint"]
    assert moved["advanced"] and moved["before"]["tree_size"] == size < moved["after"]["tree_size"]
    assert any(p.startswith("/v1/ledger/consistency?from=") for p in watched.requests), (watched.requests, report)
    saved = json.loads(state.read_bytes())
    assert saved["checkpoint_seq"] == moved["after"]["seq"]


def _flip_proof(path: str, status: int, body: bytes) -> tuple[int, bytes]:
    value = json.loads(body)
    if value.get("consistency_proof"):
        first = value["consistency_proof"][0]
        value["consistency_proof"][0] = ("0" if first[0] != "0" else "1") + first[1:]
    return status, json.dumps(value).encode()


def test_forged_consistency_proof_stops_with_evidence_and_nothing_advances(
    dep: Deployment, lic: Licenses, tmp_path: Path
) -> None:
    state = tmp_path / "state.json"
    assert verify(dep, state, "--id", lic.active, "--node", bj(dep), "--node", sh(dep))[0].exit_code == 0
    before = state.read_bytes()
    node = dep.nodes["110000"]
    [new_id] = node.issue(dep.documents("110000", 1, start=200))
    node.wait_proof(new_id)
    rewrites = {"/v1/ledger/consistency": _flip_proof}
    with Proxy(bj(dep), rewrites) as a, Proxy(sh(dep), rewrites) as b:
        result, report = verify(dep, state, "--id", new_id, "--node", a.url, "--node", b.url)
    assert result.exit_code == 1, result.output
    assert report["result"] == "SPLIT_VIEW" and "consistent" in report["split_view"]["problem"]
    assert report["split_view"]["consistency_proof"]
    assert state.read_bytes() == before  # the trusted checkpoint did not move


def test_split_view_two_conflicting_checkpoints_stop_with_both_as_evidence(
    dep: Deployment, lic: Licenses, tmp_path: Path
) -> None:
    forged, equivocate = dep.equivocation(sh(dep))

    with Proxy(sh(dep), {"/v1/ledger/checkpoint": equivocate}) as liar:
        result, report = verify(dep, tmp_path / "s.json", "--id", lic.active, "--node", bj(dep), "--node", liar.url)
        args = ["--id", lic.active, "--node", bj(dep), "--node", liar.url, "--trust-root", str(dep.network_json)]
        text = CliRunner().invoke(cli, ["verify", *args, "--state", str(tmp_path / "t.json")])
    assert result.exit_code == 1 and text.exit_code == 1, result.output
    evidence = report["split_view"]
    assert report["result"] == "SPLIT_VIEW" and report["verdict"] is None
    first, second = evidence["checkpoints"]
    assert first["tree_size"] == second["tree_size"] and first["root_hash"] != second["root_hash"]
    assert {first["source"], second["source"]} == {f"node {bj(dep)}", f"node {liar.url}"}
    assert forged in (first["note"], second["note"])
    assert "SPLIT VIEW" in text.stdout and forged.strip() in text.stdout
    assert not (tmp_path / "s.json").exists()  # nothing trusted from a run that found equivocation


def test_a_node_serving_another_licenses_bundle_is_rejected(dep: Deployment, lic: Licenses, tmp_path: Path) -> None:
    _, other = dep.nodes["110000"].proof(lic.revoked)

    def swap(path: str, status: int, body: bytes) -> tuple[int, bytes]:
        return 200, other

    rewrites = {f"/v1/licenses/{lic.active}/proof": swap}
    peer = dep.peer_url("440000")
    with Proxy(bj(dep), rewrites) as liar:
        alone, report = verify(dep, tmp_path / "a.json", "--id", lic.active, "--node", liar.url, "--peer", peer)
        helped, report2 = verify(
            dep, tmp_path / "b.json", "--id", lic.active, "--node", liar.url, "--node", bj(dep), "--peer", peer
        )
    assert alone.exit_code == 1, alone.output
    assert report["result"] == "INVALID" and report["verdict"]["steps"][0]["reason"] == "WRONG_LICENSE"
    assert helped.exit_code == 0, helped.output
    assert report2["bundle_source"] == f"node {bj(dep)}"
    assert any("WRONG_LICENSE" in n for n in report2["notes"])


def test_stale_checkpoint_is_undecided_exit_2(dep: Deployment, lic: Licenses, tmp_path: Path) -> None:
    later = str(int(time.time() * 1000) + 3 * 86_400_000)
    result, report = verify(
        dep, tmp_path / "s.json", "--id", lic.active, "--node", bj(dep), "--node", sh(dep), "--at", later
    )
    assert result.exit_code == 2, result.output
    assert report["result"] == "UNDECIDED" and report["verdict"]["steps"][7]["reason"] == "STALE_CHECKPOINT"


def test_a_stale_source_moves_nothing_back(dep: Deployment, lic: Licenses, tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    status, body = call(sh(dep) + "/v1/ledger/checkpoint")
    assert status == 200
    old = json.loads(body)
    node = dep.nodes["110000"]
    [new_id] = node.issue(dep.documents("110000", 1, start=300))
    node.wait_proof(new_id)
    assert verify(dep, state, "--id", new_id, "--node", bj(dep), "--node", sh(dep))[0].exit_code == 0
    trusted_seq = json.loads(state.read_bytes())["checkpoint_seq"]
    assert trusted_seq > old["seq"]

    def replay(path: str, status: int, body: bytes) -> tuple[int, bytes]:
        return 200, json.dumps(old).encode()

    with Proxy(sh(dep), {"/v1/ledger/checkpoint": replay}) as stale:
        result, report = verify(dep, state, "--id", new_id, "--node", bj(dep), "--node", stale.url)
    assert result.exit_code == 0, result.output
    assert any("behind the trusted checkpoint" in n for n in report["notes"])
    # Nothing moved back to the stale source's checkpoint (a newer one may have become final meanwhile: heartbeat).
    assert json.loads(state.read_bytes())["checkpoint_seq"] >= trusted_seq


def test_fewer_than_two_sources_exit_2_unless_min_sources_1(dep: Deployment, lic: Licenses, tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    one, report = verify(dep, tmp_path / "a.json", "--id", lic.active, "--node", bj(dep), "--node", dead)
    assert one.exit_code == 2, one.output
    assert report["result"] == "UNDECIDED" and "only 1 source" in report["undecided"]
    assert report["sources"][1]["ok"] is False
    allowed, report = verify(dep, tmp_path / "b.json", "--id", lic.active, "--node", bj(dep), "--min-sources", "1")
    assert allowed.exit_code == 0, allowed.output
    twice, report = verify(dep, tmp_path / "c.json", "--id", lic.active, "--node", bj(dep), "--node", bj(dep) + "/")
    assert twice.exit_code == 2 and "only 1 source" in report["undecided"], twice.output  # one URL counts once


def _photo(image: Image.Image, seed: int = 7) -> bytes:
    """A photograph-like copy: slightly rotated, blurred, speckled, JPEG."""
    im = image.convert("RGB").rotate(4, expand=True, fillcolor=(205, 203, 195), resample=Image.Resampling.BICUBIC)
    im = im.filter(ImageFilter.GaussianBlur(0.6))
    rnd = random.Random(seed)
    px = im.load()
    assert px is not None
    for _ in range(5000):
        x, y, v = rnd.randrange(im.width), rnd.randrange(im.height), rnd.randrange(256)
        px[x, y] = (v, v, v)
    out = io.BytesIO()
    im.save(out, "JPEG", quality=85)
    return out.getvalue()


def test_voucher_qr_photo_verifies_online(dep: Deployment, lic: Licenses, tmp_path: Path) -> None:
    status, pdf = call(f"{bj(dep)}/v1/licenses/{lic.active}/voucher.pdf?view=public")
    assert status == 200
    page = pdfium.PdfDocument(pdf)[0].render(scale=2).to_pil()
    photo = tmp_path / "voucher.jpg"
    photo.write_bytes(_photo(page))
    result, report = verify(
        dep, tmp_path / "s.json", "--qr", str(photo), "--node", sh(dep), "--peer", dep.peer_url("440000")
    )
    assert result.exit_code == 0, result.output
    assert report["result"] == "VALID" and report["verdict"]["facts"]["license_id"] == lic.active


def test_reference_qr_code_fetches_from_the_node_it_names(dep: Deployment, lic: Licenses, tmp_path: Path) -> None:
    _, raw = dep.nodes["110000"].proof(lic.revoked)
    bundle = json.loads(raw)
    ref = QrReference(lic.revoked, "110000", bytes.fromhex(bundle["commitment"]), bj(dep)).to_qr_payload()
    out = io.BytesIO()
    segno.make_qr(ref, error="m").save(out, kind="png", scale=8)
    image = tmp_path / "ref.jpg"
    image.write_bytes(_photo(Image.open(io.BytesIO(out.getvalue()))))
    result, report = verify(dep, tmp_path / "s.json", "--qr", str(image), "--peer", dep.peer_url("310000"))
    assert result.exit_code == 1, result.output
    assert report["result"] == "REVOKED" and report["bundle_source"] == f"node {bj(dep)}"
    # the voucher's commitment binds it: a reference with another commitment is not this license's voucher
    wrong = QrReference(lic.revoked, "110000", bytes(32), bj(dep)).to_qr_payload()
    out = io.BytesIO()
    segno.make_qr(wrong, error="m").save(out, kind="png", scale=8)
    image.write_bytes(out.getvalue())
    result, report = verify(dep, tmp_path / "t.json", "--qr", str(image), "--peer", dep.peer_url("310000"))
    assert result.exit_code == 1 and report["verdict"]["steps"][0]["reason"] == "WRONG_COMMITMENT", result.output


def test_commitment_lookup_finds_the_issuers_node_and_binds_the_bundle(
    dep: Deployment, lic: Licenses, tmp_path: Path
) -> None:
    """``--commitment``: the version is fetched by its commitment; a node that does not hold it (another
    province's: a commitment names no issuer, so it cannot refer) answers 404 and the next node is asked."""
    _, raw = dep.nodes["110000"].proof(lic.revoked)
    commitment = json.loads(raw)["commitment"]
    result, report = verify(dep, tmp_path / "s.json", "--commitment", commitment, "--node", sh(dep), "--node", bj(dep))
    assert result.exit_code == 1, result.output
    assert report["result"] == "REVOKED" and report["verdict"]["facts"]["license_id"] == lic.revoked
    assert report["bundle_source"] == f"node {bj(dep)}"
    assert any(n.startswith(f"no bundle from node {sh(dep)}") for n in report["notes"]), report["notes"]
    # with --expect, the bundle must also be for that license
    result, report = verify(
        dep, tmp_path / "t.json", "--commitment", commitment.upper(), "--node", bj(dep), "--min-sources", "1"
    )
    assert result.exit_code == 1 and report["result"] == "REVOKED", result.output
    result, report = verify(
        dep, tmp_path / "u.json", "--commitment", commitment, "--expect", lic.active, "--node", bj(dep),
        "--min-sources", "1",
    )  # fmt: skip
    assert result.exit_code == 1 and report["verdict"]["steps"][0]["reason"] == "WRONG_LICENSE", result.output


def test_commitment_lookup_rejects_a_bundle_with_another_commitment(
    dep: Deployment, lic: Licenses, tmp_path: Path
) -> None:
    """A node answering a commitment with another version's (valid) bundle is caught: WRONG_COMMITMENT."""
    _, raw = dep.nodes["110000"].proof(lic.revoked)
    asked = json.loads(dep.nodes["110000"].proof(lic.active)[1])["commitment"]

    def swap(path: str, status: int, body: bytes) -> tuple[int, bytes]:
        return 200, raw

    with Proxy(bj(dep), {f"/v1/commitments/{asked}/proof": swap}) as liar:
        result, report = verify(
            dep, tmp_path / "s.json", "--commitment", asked, "--node", liar.url, "--peer", dep.peer_url("440000")
        )
    assert result.exit_code == 1, result.output
    assert report["verdict"]["steps"][0]["reason"] == "WRONG_COMMITMENT"


def test_commitment_that_no_node_holds_or_is_malformed(dep: Deployment, lic: Licenses, tmp_path: Path) -> None:
    result, report = verify(dep, tmp_path / "s.json", "--commitment", "ab" * 32, "--node", bj(dep), "--node", sh(dep))
    assert result.exit_code == 2 and "ab" * 32 in report["undecided"], result.output
    for bad in ("ab" * 31, "zz" * 32):
        result, _ = verify(dep, tmp_path / "t.json", "--commitment", bad, "--node", bj(dep))
        assert result.exit_code == 2 and "--commitment" in result.output and "64 hex digits" in result.output
    result, _ = verify(dep, tmp_path / "u.json", "--commitment", "ab" * 32)
    assert result.exit_code == 2 and "--commitment needs --node" in result.output
    result, _ = verify(dep, tmp_path / "v.json", "--commitment", "ab" * 32, "--id", lic.active, "--node", bj(dep))
    assert result.exit_code == 2 and "exactly one of" in result.output
