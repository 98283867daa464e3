"""Cross-node resolution and the standalone verification service, on a real 3-province network with Beijing's and
Shanghai's nodes served by uvicorn, each knowing the other through ``LICLEDGER_NODE_DIRECTORY``.

* ``licledger verify --id ID --node <Shanghai>`` for a Beijing license: Shanghai refers to Beijing (307), the
  verifier fetches there and verifies; Shanghai's own ``POST /v1/verify {"license_id"}`` forwards the same way.
* A stale bundle is re-proven at the newest checkpoint from Shanghai's ledger proofs (``/v1/ledger/proofs``),
  never asking Beijing: a license revoked after the bundle was taken shows REVOKED.
* Lying nodes (real HTTP proxies): a referral to a fake issuer serving a tampered bundle (INVALID, the failing
  step as evidence), re-proofs that replay an old status proof (UNDECIDED, the liar named), a conflicting
  checkpoint (SPLIT_VIEW with both notes).
* ``licledger verifier serve`` as a real process on loopback: VALID / REVOKED / INVALID over HTTP, batches,
  ``{"license_id"}`` through the nodes, a stale bundle refreshed, 4xx naming the problem, 401/403 for missing,
  unknown and revoked keys, masked personal data for agency keys and the public route, none of it in the log.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import segno
from fastapi.testclient import TestClient
from onlinekit import Deployment, Licenses, Proxy, call, free_port, get_no_redirect, licledger, prepare, verify_cli
from webkit import chromium, photo_of_voucher, tampered, upload

from core.bundle import QrReference
from core.checkpoint import parse_checkpoint
from verifier.server import ServerConfig, create_app
from verifier.trust import load_trust_root

pytestmark = [pytest.mark.integration, pytest.mark.slow]
MEMBERS = ("110000", "310000")


@pytest.fixture(scope="module")
def dep(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    d = Deployment.start(tmp_path_factory.mktemp("crossnode"), members=MEMBERS, referrals=True)
    yield d
    d.stop()


@dataclass
class Stale:
    """A Beijing license whose bundle was taken while active; revoked since, under a newer final checkpoint."""

    license_id: str
    old_bundle: bytes
    new_bundle: bytes


@pytest.fixture(scope="module")
def lic(dep: Deployment) -> Licenses:
    return prepare(dep)


@pytest.fixture(scope="module")
def stale(dep: Deployment, lic: Licenses) -> Stale:
    node = dep.nodes["110000"]
    [license_id] = node.issue(dep.documents("110000", 1, start=400))
    old = node.wait_proof(license_id)
    node.event(license_id, {"type": "revoke", "reason": "R01"})
    new = node.wait_proof(license_id, status="revoked")
    # Shanghai's node reads its own member's peer, which may be a block behind Beijing's: wait until it has the
    # checkpoint that proves the revocation (eventual consistency, not a verification matter)
    height = parse_checkpoint(json.loads(new)["checkpoint"].encode())[0].height
    deadline = time.monotonic() + 30
    while True:
        status, body = call(dep.nodes["310000"].url + "/v1/ledger/checkpoint")
        if status == 200 and parse_checkpoint(json.loads(body)["note"].encode())[0].height >= height:
            break
        assert time.monotonic() < deadline, body
        time.sleep(0.2)
    return Stale(license_id, old, new)


def bj(dep: Deployment) -> str:
    return dep.nodes["110000"].url


def sh(dep: Deployment) -> str:
    return dep.nodes["310000"].url


# --- cross-node resolution: licledger verify ----------------------------------------------------------------------


def test_verify_id_at_another_provinces_node_is_referred_to_the_issuers_node(
    dep: Deployment, lic: Licenses, tmp_path: Path
) -> None:
    status, location, body = get_no_redirect(f"{sh(dep)}/v1/licenses/{lic.active}/proof?view=public")
    assert status == 307 and json.loads(body)["node"] == bj(dep) and json.loads(body)["issuer"] == "110000"
    assert location == f"{bj(dep)}/v1/licenses/{lic.active}/proof?view=public"
    result, report = verify_cli(dep, tmp_path / "a.json", "--id", lic.active, "--node", sh(dep), "--min-sources", "1")
    assert result.exit_code == 0, result.output
    assert report["result"] == "VALID" and report["verdict"]["facts"]["license_id"] == lic.active
    assert report["bundle_source"] == f"node {bj(dep)}"
    assert any("referred to node " + bj(dep) in n for n in report["notes"]), report["notes"]
    assert report["trusted_checkpoint"]["advanced"]  # with the members' records from Shanghai's /v1/ledger/members
    assert not any("member records" in n for n in report["notes"]), report["notes"]
    revoked, report = verify_cli(
        dep, tmp_path / "b.json", "--id", lic.revoked, "--node", sh(dep), "--peer", dep.peer_url("440000")
    )
    assert revoked.exit_code == 1 and report["result"] == "REVOKED", revoked.output


def test_another_provinces_node_verifies_a_license_id_by_forwarding(dep: Deployment, lic: Licenses) -> None:
    agency = dep.nodes["310000"].api_key("agency")
    status, body = call(
        f"{sh(dep)}/v1/verify", method="POST", body=json.dumps({"license_id": lic.revoked}).encode(), token=agency
    )
    assert status == 200, body
    answer = json.loads(body)
    assert answer["result"] == "REVOKED" and answer["summary"]["issuer"]["province"] == "110000"
    unknown = lic.active.split(".")
    unknown[7] = unknown[7][:-3] + "999"
    status, _ = call(
        f"{sh(dep)}/v1/public/verify", method="POST", body=json.dumps({"license_id": ".".join(unknown[:8])}).encode()
    )
    assert status == 404


def test_stale_bundle_is_reproven_from_a_non_issuer_node(dep: Deployment, stale: Stale, tmp_path: Path) -> None:
    old = tmp_path / "old.json"
    old.write_bytes(stale.old_bundle)
    with Proxy(sh(dep)) as watched:
        result, report = verify_cli(dep, tmp_path / "s.json", str(old), "--node", watched.url, "--min-sources", "1")
    assert result.exit_code == 1, result.output
    assert report["result"] == "REVOKED" and report["verdict"]["facts"]["status"] == "revoked"
    assert report["verdict"]["facts"]["checkpoint_log_size"] > json.loads(stale.old_bundle)["batch"]["log_index"]
    assert any(p.startswith("/v1/ledger/proofs?") for p in watched.requests), watched.requests
    assert any("re-proven at the newest checkpoint" in n for n in report["notes"]), report["notes"]


def test_lying_reproof_replaying_an_old_status_proof_is_undecided_with_evidence(
    dep: Deployment, stale: Stale, tmp_path: Path
) -> None:
    old_value = json.loads(stale.old_bundle)

    def replay_status(path: str, status: int, body: bytes) -> tuple[int, bytes]:
        value = json.loads(body)
        value["status"] = old_value["status"]  # "still active": a proof under an older status root
        return status, json.dumps(value).encode()

    old = tmp_path / "old.json"
    old.write_bytes(stale.old_bundle)  # fresh enough for the default policy: alone, it would be VALID
    with Proxy(sh(dep), {"/v1/ledger/proofs": replay_status}) as liar:
        result, report = verify_cli(dep, tmp_path / "s.json", str(old), "--node", liar.url, "--min-sources", "1")
    assert result.exit_code == 2, result.output
    assert report["result"] == "UNDECIDED"
    step8 = report["verdict"]["steps"][7]
    assert step8["reason"] == "STATUS_NOT_REPROVEN"
    [failed] = step8["evidence"]["failed_sources"]
    assert failed["source"] == f"node {liar.url}" and failed["step"]["reason"] == "STATUS_PROOF_INVALID"


def test_a_referral_to_a_fake_issuer_serving_a_tampered_bundle_is_invalid(
    dep: Deployment, lic: Licenses, tmp_path: Path
) -> None:
    def tamper(path: str, status: int, body: bytes) -> tuple[int, bytes]:
        return status, tampered(body)

    with Proxy(bj(dep), {"/v1/licenses/": tamper}) as fake:

        def refer(path: str, status: int, body: bytes) -> tuple[int, bytes]:
            return 307, json.dumps({"detail": "ask there", "issuer": "110000", "node": fake.url}).encode()

        with Proxy(sh(dep), {"/v1/licenses/": refer}) as liar:
            result, report = verify_cli(
                dep, tmp_path / "s.json", "--id", lic.active, "--node", liar.url, "--peer", dep.peer_url("440000")
            )
    assert result.exit_code == 1, result.output
    assert report["result"] == "INVALID"
    assert report["verdict"]["steps"][3]["reason"] == "LEAF_NOT_IN_BATCH"
    assert report["verdict"]["steps"][3]["evidence"]["expected_root"]
    assert any(f"referred to node {fake.url}" in n for n in report["notes"]), report["notes"]


def test_a_referring_node_with_a_conflicting_checkpoint_is_a_split_view(
    dep: Deployment, lic: Licenses, tmp_path: Path
) -> None:
    forged, equivocate = dep.equivocation(sh(dep))

    with Proxy(sh(dep), {"/v1/ledger/checkpoint": equivocate}) as liar:
        result, report = verify_cli(
            dep, tmp_path / "s.json", "--id", lic.active, "--node", liar.url, "--peer", dep.peer_url("310000")
        )
    assert result.exit_code == 1, result.output
    assert report["result"] == "SPLIT_VIEW" and report["verdict"] is None
    assert forged in [cp["note"] for cp in report["split_view"]["checkpoints"]]


# --- licledger verifier serve -------------------------------------------------------------------------------------


@dataclass
class Service:
    url: str
    keys: dict[str, str]
    log: Path
    proc: subprocess.Popen[bytes]
    state: Path


def _key(keys: Path, name: str, role: str = "agency") -> str:
    done = licledger("verifier", "key", "create", "--keys", keys, "--name", name, "--role", role)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@contextlib.contextmanager
def serve(dep: Deployment, directory: Path, *args: str) -> Iterator[Service]:
    """``licledger verifier serve`` in its own process on loopback with the network's genesis as trust root, a
    key file with an agency, an auditor and a revoked key, and ``args`` (``--node``, ``--public``, ...)."""
    keys_file = directory / "keys.json"
    keys = {"agency": _key(keys_file, "某市医保局"), "auditor": _key(keys_file, "审计署", "auditor")}
    keys["revoked"] = _key(keys_file, "已停用机构")
    revoked_id = keys["revoked"].split("_")[1]
    assert licledger("verifier", "key", "revoke", revoked_id, "--keys", keys_file).returncode == 0
    port = free_port()
    argv = [sys.executable, "-c", "from node.cli import main; main()", "verifier", "serve"]
    argv += ["--trust-root", str(dep.network_json), "--state", str(directory / "state.json")]
    argv += ["--keys", str(keys_file), "--port", str(port), *args]
    log = directory / "service.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "LICLEDGER_KEK": ""})
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, log.read_text(errors="replace")
            try:
                if call(url + "/healthz")[0] == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, log.read_text(errors="replace")
            time.sleep(0.2)
        yield Service(url, keys, log, proc, directory / "state.json")
    finally:
        proc.terminate()
        proc.wait(15)


@pytest.fixture(scope="module")
def service(dep: Deployment, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """The service online through both nodes, with the public page; refreshing on every request."""
    args = ["--public", "--node", sh(dep), "--node", bj(dep), "--refresh", "0"]
    with serve(dep, tmp_path_factory.mktemp("service"), *args, "--public-rate", "1000", "--public-burst", "1000") as s:
        yield s


def post(service: Service, path: str, body: bytes | dict[str, Any], key: str | None = "agency") -> tuple[int, Any]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    status, answer = call(service.url + path, method="POST", body=data, token=service.keys[key] if key else None)
    try:
        return status, json.loads(answer)
    except ValueError:
        return status, answer


def test_service_verifies_valid_revoked_and_invalid_bundles_over_http(
    service: Service, dep: Deployment, lic: Licenses
) -> None:
    good, revoked = dep.nodes["110000"].wait_proof(lic.active), dep.nodes["110000"].wait_proof(lic.revoked)
    status, answer = post(service, "/v1/verify", good)
    assert status == 200 and answer["result"] == "VALID", answer
    assert [s["ok"] for s in answer["steps"]] == [True] * 8 and answer["trusted_checkpoint"]["tree_size"] >= 1
    status, answer = post(service, "/v1/verify", revoked)
    assert status == 200 and answer["result"] == "REVOKED"
    bad = json.loads(tampered(good))
    status, answer = post(service, "/v1/verify", {"bundles": [json.loads(good), json.loads(revoked), bad]})
    assert status == 200 and answer["counts"] == {"VALID": 1, "REVOKED": 1, "INVALID": 1}, answer
    assert answer["results"][2]["summary"]["failed_step"]["reason"] == "LEAF_NOT_IN_BATCH"
    status, answer = post(service, "/v1/verify", {"license_id": lic.revoked})  # through the nodes
    assert status == 200 and answer["result"] == "REVOKED", answer
    # by commitment: every node asked in turn (no referral), the bundle bound to that commitment
    commitment = json.loads(revoked)["commitment"]
    status, answer = post(service, "/v1/verify", {"commitment": commitment})
    assert status == 200 and answer["result"] == "REVOKED" and answer["summary"]["license_id"] == lic.revoked, answer
    status, answer = post(service, "/v1/verify", {"commitment": "ab" * 32})
    assert status == 404 and "ab" * 32 in answer["detail"], answer


def test_service_refreshes_a_stale_bundle_from_the_nodes(service: Service, stale: Stale) -> None:
    status, answer = post(service, "/v1/verify?max_age_ms=0", stale.old_bundle)
    assert status == 200 and answer["result"] == "REVOKED", answer  # active in the bundle, revoked since


@pytest.mark.parametrize(
    ("body", "path"),
    [
        (b"", "$"),
        (b"[1]", "$"),
        (b'{"format": "licledger-proof/1"}', "$"),
        (b'{"bundles": []}', "bundles"),
        (b'{"bundles": [{"format": 1}]}', "bundles[0]"),
        (b'{"license_id": 7}', "license_id"),
        (b'{"commitment": "xyz"}', "commitment"),
    ],
)
def test_service_bad_input_is_422_naming_the_problem(service: Service, body: bytes, path: str) -> None:
    status, answer = post(service, "/v1/verify", body)
    assert status == 422, answer
    assert any(k.startswith(path) for k in answer["errors"]), answer


def test_service_needs_a_valid_unrevoked_key(service: Service, dep: Deployment, lic: Licenses) -> None:
    good = dep.nodes["110000"].wait_proof(lic.active)
    assert post(service, "/v1/verify", good, key=None)[0] == 401
    status, _ = call(service.url + "/v1/verify", method="POST", body=good, token="llv_00000000_" + "A" * 43)
    assert status == 401
    status, answer = post(service, "/v1/verify", good, key="revoked")
    assert status == 403 and "revoked" in answer["detail"]
    status, answer = post(service, "/v1/public/verify", {"license_id": lic.active}, key=None)
    assert status == 200 and answer["result"] == "VALID" and answer["facts"]["document"] is None
    status, page = call(service.url + "/verify")
    assert status == 200 and b"<html" in page.lower()


def test_service_masks_personal_data_and_keeps_it_out_of_its_log(
    service: Service, dep: Deployment, lic: Licenses
) -> None:
    node = dep.nodes["110000"]
    status, full = call(f"{node.url}/v1/licenses/{lic.active}/proof", token=node.operator)
    assert status == 200
    holder = json.loads(full)["disclosure"]["document"]["holder"]
    status, masked = post(service, "/v1/verify", full)
    assert status == 200 and masked["result"] == "VALID"
    assert holder["name"] not in json.dumps(masked, ensure_ascii=False)
    assert holder["citizen_id"] not in json.dumps(masked)
    status, shown = post(service, "/v1/verify", full, key="auditor")
    assert status == 200 and shown["facts"]["holder"]["citizen_id"] == holder["citizen_id"]
    log = service.log.read_text(encoding="utf-8", errors="replace")
    assert "POST /v1/verify" in log
    for secret in (holder["name"], holder["citizen_id"], service.keys["agency"], service.keys["auditor"]):
        assert secret not in log


def test_offline_service_in_process_limits(dep: Deployment, lic: Licenses, tmp_path: Path) -> None:
    """Without --node and --public: offline verdicts, no public routes, body limit, per-key rate limit."""
    keys_file = tmp_path / "keys.json"
    key = _key(keys_file, "agency")
    root = load_trust_root(dep.network_json.read_bytes())
    config = ServerConfig(trust_root=root, keys_path=keys_file, rate_per_second=0.01, rate_burst=2)
    good = dep.nodes["110000"].wait_proof(lic.active)
    with TestClient(create_app(config)) as client:
        auth = {"Authorization": f"Bearer {key}"}
        assert client.post("/v1/public/verify", content=good).status_code == 404
        assert client.get("/verify").status_code == 404
        assert client.post("/v1/verify", json={"license_id": lic.active}, headers=auth).status_code == 404
        assert client.post("/v1/verify", content=good, headers=auth).json()["result"] == "VALID"
        assert client.post("/v1/verify", content=b"{" + b" " * (1024 * 1024), headers=auth).status_code == 413
        limited = client.post("/v1/verify", content=good, headers=auth)
        assert limited.status_code == 429 and limited.headers["Retry-After"]


def test_service_reference_qr_code_resolves_through_the_nodes_and_keeps_its_state(
    service: Service, dep: Deployment, lic: Licenses
) -> None:
    bundle = json.loads(dep.nodes["110000"].wait_proof(lic.revoked))
    ref = QrReference(lic.revoked, "110000", bytes.fromhex(bundle["commitment"]), "http://192.0.2.1:1").to_qr_payload()
    out = io.BytesIO()
    segno.make_qr(ref, error="m").save(out, kind="png", scale=8)
    status, answer = post(service, "/v1/verify/qr", out.getvalue())
    assert status == 200 and answer["result"] == "REVOKED", answer  # from the configured nodes, not the QR's URL
    assert answer["qr"]["form"] == "reference"
    status, health = call(service.url + "/healthz")
    trusted = json.loads(health)["trusted_checkpoint"]
    assert status == 200 and trusted["tree_size"] >= 1 and not json.loads(health)["alarm"]
    saved = json.loads(service.state.read_bytes())  # the advanced trust root, usable by `licledger verify --state`
    assert saved["format"] == "licledger-verifier-state/1" and saved["checkpoint_seq"] is not None
    assert call(service.url + "/verify/assets/verify.js")[0] == 200


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as b:
        yield b


def test_service_web_page_in_chromium_shows_bundle_qr_and_tampered_verdicts(
    browser: Any, service: Service, dep: Deployment, lic: Licenses
) -> None:
    """The standalone service's /verify page (``--public``) driven in headless Chromium over real HTTP."""
    page = browser.new_page(viewport={"width": 1000, "height": 1300})
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    good = dep.nodes["110000"].wait_proof(lic.active)

    banner = upload(page, service.url, "bundle.json", good, "application/json")
    assert banner.get_attribute("data-result") == "VALID"
    assert "有效" in banner.inner_text() and "VALID" in banner.inner_text()
    issuer = page.inner_text("#f-issuer")
    assert "北京市" in issuer and "110000" in issuer and lic.active.split(".")[6] in issuer  # province, USCC
    assert "有效" in page.inner_text("#status-badge") and lic.active in page.inner_text("#f-id")
    steps = page.locator("#steps li.step-ok")
    assert [steps.nth(i).get_attribute("data-step") for i in range(steps.count())] == [str(n) for n in range(1, 9)]

    banner = upload(page, service.url, "voucher.jpg", photo_of_voucher(bj(dep), lic.active), "image/jpeg")
    assert banner.get_attribute("data-result") == "VALID"  # the voucher's QR code carries the whole bundle
    assert lic.active in page.inner_text("#f-id") and page.locator("#steps li.step-ok").count() == 8

    bundle = json.loads(dep.nodes["110000"].wait_proof(lic.revoked))
    ref = QrReference(lic.revoked, "110000", bytes.fromhex(bundle["commitment"]), "http://192.0.2.1:1").to_qr_payload()
    png = io.BytesIO()
    segno.make_qr(ref, error="m").save(png, kind="png", scale=8)
    banner = upload(page, service.url, "reference.png", png.getvalue(), "image/png")
    assert banner.get_attribute("data-result") == "REVOKED"  # resolved through the service's --node URLs
    assert "已吊销" in banner.inner_text() and "已吊销" in page.inner_text("#status-badge")

    banner = upload(page, service.url, "tampered.json", tampered(good), "application/json")
    assert banner.get_attribute("data-result") == "INVALID"
    assert "核验未通过" in banner.inner_text() and "LEAF_NOT_IN_BATCH" in banner.inner_text()
    failing = page.locator("#steps li.step-fail")
    assert failing.count() == 1 and failing.get_attribute("data-step") == "4"
    assert "LEAF_NOT_IN_BATCH" in failing.inner_text()
    assert page.locator("#steps li.step-ok").count() == 4  # 1, 6, 2, 3 ran before 4
    assert page.locator("#steps li.step-skip").count() == 3  # 5, 7, 8 not run
    assert not errors, errors


def test_service_with_a_lying_node_raises_the_alarm_and_keeps_its_trust_root(
    dep: Deployment, lic: Licenses, tmp_path: Path
) -> None:
    forged, equivocate = dep.equivocation(sh(dep))

    keys_file = tmp_path / "keys.json"
    key = _key(keys_file, "agency")
    root = load_trust_root(dep.network_json.read_bytes())
    good = dep.nodes["110000"].wait_proof(lic.active)
    with Proxy(sh(dep), {"/v1/ledger/checkpoint": equivocate}) as liar:
        config = ServerConfig(
            trust_root=root, keys_path=keys_file, nodes=(bj(dep), liar.url), refresh_s=0, state_path=tmp_path / "s"
        )
        with TestClient(create_app(config)) as client:
            answer = client.post("/v1/verify", content=good, headers={"Authorization": f"Bearer {key}"})
            health = client.get("/healthz").json()
            alarm = client.app.state.service.trust.alarm  # type: ignore[attr-defined]
    assert answer.status_code == 200 and answer.json()["result"] == "VALID"  # judged under the pinned root
    assert health["alarm"] is True and health["trusted_checkpoint"]["tree_size"] is None  # nothing advanced
    assert forged in [cp["note"] for cp in alarm["checkpoints"]]
    assert not (tmp_path / "s").exists()


# --- the service's batches: one online refresh per batch, worker processes for large ones ------------------------


def _paths(proxies: tuple[Proxy, ...], prefix: str) -> list[str]:
    return [path for proxy in proxies for path in proxy.requests if path.startswith(prefix)]


def _same(answer: dict[str, Any]) -> dict[str, Any]:
    """A verdict answer without what depends on the instant of the request (step 8's age and ``now_ms``)."""

    def timeless(step: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in step.items() if k not in ("detail", "evidence")} if step["number"] == 8 else step

    failed = answer["summary"]["failed_step"]
    summary = {**answer["summary"], "failed_step": failed and timeless(failed)}
    return {**answer, "steps": [timeless(s) for s in answer["steps"]], "summary": summary}


def test_service_batch_refreshes_online_once_for_all_its_stale_bundles(
    dep: Deployment, lic: Licenses, stale: Stale, tmp_path: Path
) -> None:
    """Six stale bundles in one batch (``max_age_ms=0``): each node's checkpoint is fetched once per batch, each
    consistency proof and the members' records at most once; then each stale bundle is re-proven at that newest
    checkpoint (one ``/v1/ledger/proofs`` each). The verdicts are those of the same bundles sent one by one."""
    keys_file = tmp_path / "keys.json"
    auth = {"Authorization": f"Bearer {_key(keys_file, 'agency')}"}
    root = load_trust_root(dep.network_json.read_bytes())
    node = dep.nodes["110000"]
    good, revoked = node.wait_proof(lic.active), node.wait_proof(lic.revoked)
    bundles = [json.loads(stale.old_bundle)] * 5 + [json.loads(b) for b in (good, revoked, tampered(good))]
    with Proxy(bj(dep)) as p1, Proxy(sh(dep)) as p2:
        config = ServerConfig(trust_root=root, keys_path=keys_file, nodes=(p1.url, p2.url), refresh_s=3600)
        with TestClient(create_app(config)) as client:
            # first with the periodic refresh falling in the request (its run is the batch's), then without
            for _ in range(2):
                p1.requests.clear()
                p2.requests.clear()
                answer = client.post("/v1/verify?max_age_ms=0", json={"bundles": bundles}, headers=auth)
                assert answer.status_code == 200, answer.text
                results = answer.json()["results"]
                assert [r["result"] for r in results] == ["REVOKED"] * 5 + ["UNDECIDED", "REVOKED", "INVALID"]
                assert [len(_paths((p,), "/v1/ledger/checkpoint")) for p in (p1, p2)] == [1, 1], p1.requests
                consistency = _paths((p1, p2), "/v1/ledger/consistency")
                assert len(consistency) == len(set(consistency)), consistency
                assert len(_paths((p1, p2), "/v1/ledger/members")) <= 1
                assert 5 <= len(_paths((p1, p2), "/v1/ledger/proofs")) <= 6  # one per bundle not at the newest
            singles = [client.post("/v1/verify?max_age_ms=0", json=b, headers=auth).json() for b in bundles]
    assert [_same(r) for r in results] == [_same(s) for s in singles]
    checkpoint = results[0]["facts"]["checkpoint_log_size"]
    assert (
        checkpoint > json.loads(stale.old_bundle)["batch"]["log_index"] and results[0]["facts"]["status"] == "revoked"
    )


def _descendants(pid: int) -> list[str]:
    """The command lines of ``pid``'s descendant processes (from /proc)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(stat.parent.name))
    out, todo = [], list(children.get(pid, []))
    while todo:
        child = todo.pop()
        with contextlib.suppress(OSError):
            out.append((Path("/proc") / str(child) / "cmdline").read_bytes().replace(b"\0", b" ").decode())
        todo += children.get(child, [])
    return out


def test_service_with_workers_verifies_large_batches_in_processes_with_the_same_verdicts_in_order(
    dep: Deployment, lic: Licenses, stale: Stale, tmp_path: Path
) -> None:
    """``--workers 2``: a batch of 40 (at least ``--parallel-min-batch 32``) goes to two worker processes; its
    answers are those of the same 40 sent as two batches of 20 (verified in the web process), in the same order."""
    node = dep.nodes["110000"]
    status, full = call(f"{node.url}/v1/licenses/{lic.active}/proof", token=node.operator)  # SM2 seal to verify
    assert status == 200
    public, revoked = node.wait_proof(lic.active), node.wait_proof(lic.revoked)
    kinds = [full, public, revoked, tampered(public), stale.new_bundle, stale.old_bundle]
    bundles = [json.loads(kinds[i % len(kinds)]) for i in range(40)]
    with serve(dep, tmp_path, "--workers", "2", "--parallel-min-batch", "32") as svc:
        status, parallel = post(svc, "/v1/verify", {"bundles": bundles}, key="auditor")
        assert status == 200, parallel
        assert len([c for c in _descendants(svc.proc.pid) if "forkserver" in c]) == 3  # the fork server, 2 workers
        halves = [post(svc, "/v1/verify", {"bundles": bundles[i : i + 20]}, key="auditor") for i in (0, 20)]
    assert [status for status, _ in halves] == [200, 200]
    in_process = [r for _, answer in halves for r in answer["results"]]
    assert [_same(r) for r in parallel["results"]] == [_same(r) for r in in_process]
    assert [r["result"] for r in parallel["results"][:6]] == [
        "VALID",
        "VALID",
        "REVOKED",
        "INVALID",
        "REVOKED",
        "VALID",
    ]
    assert parallel["results"][0]["facts"]["document"] is not None  # the auditor's disclosed bundle, from a worker
    assert "Traceback" not in svc.log.read_text(errors="replace")
