"""The node's verification API (``POST /v1/verify``, ``/v1/verify/qr``, ``/v1/public/verify[/qr]``) and the
``/verify`` web page, on a real network with a node served by uvicorn. The page is driven end to end in Debian's
headless Chromium through Playwright (skipped, saying why, when Chromium is not installed)."""

from __future__ import annotations

import io
import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from onlinekit import KEK, Deployment, Licenses, prepare
from PIL import Image
from webkit import chromium, photo_of_voucher, tampered, upload

from node.apikeys import create_key
from node.context import open_node
from node.main import create_app
from node.settings import load_settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def dep(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    d = Deployment.start(tmp_path_factory.mktemp("verify"), members=("110000",))
    yield d
    d.stop()


@pytest.fixture(scope="module")
def lic(dep: Deployment) -> Licenses:
    return prepare(dep)


@pytest.fixture(scope="module")
def api(dep: Deployment) -> Iterator[tuple[TestClient, dict[str, str]]]:
    """The same node's app in-process (same directory and ledger), with a key per role."""
    os.environ["LICLEDGER_KEK"] = KEK
    ctx = open_node(load_settings(dep.nodes["110000"].directory))
    keys = {"operator": dep.nodes["110000"].operator}
    with ctx.sessions() as session, session.begin():
        for role in ("agency", "auditor"):
            keys[role] = create_key(session, ctx.secrets, role=role, now_ms=ctx.clock())[0]
        keys["institution"] = create_key(
            session, ctx.secrets, role="institution", institution_uscc="12440303344752713B", now_ms=ctx.clock()
        )[0]
    client = TestClient(create_app(ctx), raise_server_exceptions=False)
    yield client, keys
    client.close()
    ctx.close()


def bearer(keys: dict[str, str], role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {keys[role]}"}


def bundle_of(dep: Deployment, license_id: str) -> bytes:
    status, body = dep.nodes["110000"].proof(license_id)
    assert status == 200, body
    return body


# --- the API -----------------------------------------------------------------------------------------------------


def test_verify_needs_agency_operator_or_auditor(
    api: tuple[TestClient, dict[str, str]], dep: Deployment, lic: Licenses
) -> None:
    client, keys = api
    body = bundle_of(dep, lic.active)
    assert client.post("/v1/verify", content=body).status_code == 401
    assert client.post("/v1/verify", content=body, headers=bearer(keys, "institution")).status_code == 403
    for role in ("agency", "operator", "auditor"):
        answer = client.post("/v1/verify", content=body, headers=bearer(keys, role))
        assert answer.status_code == 200, answer.text
        verdict = answer.json()
        assert verdict["result"] == "VALID" and [s["ok"] for s in verdict["steps"]] == [True] * 8
        assert verdict["summary"]["issuer"]["province_zh"] == "北京市"
        assert verdict["trusted_checkpoint"]["tree_size"] >= 1


def test_verify_single_batch_and_license_id(
    api: tuple[TestClient, dict[str, str]], dep: Deployment, lic: Licenses
) -> None:
    client, keys = api
    agency = bearer(keys, "agency")
    good, revoked = json.loads(bundle_of(dep, lic.active)), json.loads(bundle_of(dep, lic.revoked))
    bad = json.loads(tampered(bundle_of(dep, lic.active)))
    answer = client.post("/v1/verify", json={"bundles": [good, revoked, bad]}, headers=agency)
    assert answer.status_code == 200, answer.text
    results = answer.json()["results"]
    assert [r["result"] for r in results] == ["VALID", "REVOKED", "INVALID"]
    assert answer.json()["counts"] == {"VALID": 1, "REVOKED": 1, "INVALID": 1}
    failed = results[2]["summary"]["failed_step"]
    assert failed["number"] == 4 and failed["reason"] == "LEAF_NOT_IN_BATCH"
    by_id = client.post("/v1/verify", json={"license_id": lic.revoked}, headers=agency)
    assert by_id.status_code == 200 and by_id.json()["result"] == "REVOKED"
    unknown = lic.active.rsplit(".", 3)[0][:-3] + "999"
    assert client.post("/v1/verify", json={"license_id": unknown}, headers=agency).status_code in (404, 422)
    # by commitment: the node's own license version, bound to that commitment
    commitment = json.loads(bundle_of(dep, lic.revoked))["commitment"]
    by_commitment = client.post("/v1/verify", json={"commitment": commitment.upper()}, headers=agency)
    assert by_commitment.status_code == 200 and by_commitment.json()["result"] == "REVOKED", by_commitment.text
    assert by_commitment.json()["summary"]["license_id"] == lic.revoked
    public = client.post("/v1/public/verify", json={"commitment": commitment})
    assert public.status_code == 200 and public.json()["result"] == "REVOKED"
    missing = client.post("/v1/verify", json={"commitment": "ab" * 32}, headers=agency)
    assert missing.status_code == 404 and "ab" * 32 in missing.json()["detail"]


@pytest.mark.parametrize(
    ("body", "path"),
    [
        (b"", "$"),
        (b"[1, 2]", "$"),
        (b'{"format": "licledger-proof/1"}', "$"),
        (b'{"bundles": []}', "bundles"),
        (b'{"bundles": [{"format": 1}]}', "bundles[0]"),
        (b'{"license_id": 7}', "license_id"),
        (b'{"commitment": "abc"}', "commitment"),
        (b'{"commitment": 7}', "commitment"),
        (b'{"a": 1.5}', "$"),
    ],
)
def test_malformed_requests_are_422_naming_the_problem(
    api: tuple[TestClient, dict[str, str]], body: bytes, path: str
) -> None:
    client, keys = api
    answer = client.post("/v1/verify", content=body, headers=bearer(keys, "agency"))
    assert answer.status_code == 422, answer.text
    assert any(k.startswith(path) for k in answer.json()["errors"]), answer.json()


def test_malformed_field_in_a_batch_is_named_by_index_and_path(
    api: tuple[TestClient, dict[str, str]], dep: Deployment, lic: Licenses
) -> None:
    client, keys = api
    good = json.loads(bundle_of(dep, lic.active))
    broken = json.loads(bundle_of(dep, lic.active))
    broken["batch"]["record"]["root"] = "XYZ"
    answer = client.post("/v1/verify", json={"bundles": [good, broken]}, headers=bearer(keys, "agency"))
    assert answer.status_code == 422
    assert list(answer.json()["errors"]) == ["bundles[1].batch.record.root"]


def test_qr_photo_and_garbage_images(api: tuple[TestClient, dict[str, str]], dep: Deployment, lic: Licenses) -> None:
    client, keys = api
    photo = photo_of_voucher(dep.nodes["110000"].url, lic.active)
    answer = client.post("/v1/verify/qr", content=photo, headers=bearer(keys, "agency"))
    assert answer.status_code == 200 and answer.json()["result"] == "VALID", answer.text
    assert answer.json()["qr"]["form"] == "offline"
    public = client.post("/v1/public/verify/qr", content=photo)
    assert public.status_code == 200 and public.json()["result"] == "VALID"
    for junk in (b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, b"GIF89a", _blank_png()):
        refused = client.post("/v1/public/verify/qr", content=junk)
        assert refused.status_code == 422, refused.text


def _blank_png() -> bytes:
    out = io.BytesIO()
    Image.new("L", (200, 200), 255).save(out, "PNG")
    return out.getvalue()


def test_public_verify_masks_personal_data(api: tuple[TestClient, dict[str, str]], lic: Licenses) -> None:
    client, _ = api
    answer = client.post("/v1/public/verify", json={"license_id": lic.active})
    assert answer.status_code == 200 and answer.json()["result"] == "VALID"
    assert answer.json()["facts"]["document"] is None  # public view: commitment only, nothing personal


def test_verify_is_rate_limited_per_credential(
    api: tuple[TestClient, dict[str, str]], dep: Deployment, lic: Licenses, monkeypatch: pytest.MonkeyPatch
) -> None:
    from node.api.routes import verify as routes

    client, keys = api
    monkeypatch.setattr(routes, "RATE_PER_SECOND", 0.01)
    monkeypatch.setattr(routes, "RATE_BURST", 2)
    monkeypatch.delattr(client.app.state, "verify_bucket", raising=False)  # type: ignore[attr-defined]
    body = bundle_of(dep, lic.active)
    codes = [client.post("/v1/verify", content=body, headers=bearer(keys, "auditor")).status_code for _ in range(3)]
    assert codes == [200, 200, 429]
    assert client.post("/v1/verify", content=body, headers=bearer(keys, "agency")).status_code == 200  # its own
    del client.app.state.verify_bucket  # type: ignore[attr-defined]


# --- the web page in Chromium -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as b:
        yield b


def test_web_page_shows_valid_revoked_invalid_and_qr_verdicts(
    browser: Any, dep: Deployment, lic: Licenses, tmp_path: Path
) -> None:
    url = dep.nodes["110000"].url
    page = browser.new_page(viewport={"width": 1000, "height": 1300})
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)

    banner = upload(page, url, "bundle.json", bundle_of(dep, lic.active), "application/json")
    assert banner.get_attribute("data-result") == "VALID"
    assert "有效" in banner.inner_text() and "VALID" in banner.inner_text()
    assert "北京市" in page.inner_text("#f-issuer")
    assert page.locator("#steps li.step-ok").count() == 8
    page.screenshot(path=str(tmp_path / "valid.png"), full_page=True)

    banner = upload(page, url, "revoked.json", bundle_of(dep, lic.revoked), "application/json")
    assert banner.get_attribute("data-result") == "REVOKED"
    assert "已吊销" in page.inner_text("#status-badge")
    page.screenshot(path=str(tmp_path / "revoked.png"), full_page=True)

    banner = upload(page, url, "tampered.json", tampered(bundle_of(dep, lic.active)), "application/json")
    assert banner.get_attribute("data-result") == "INVALID"
    failing = page.locator("#steps li.step-fail")
    assert failing.count() == 1 and failing.get_attribute("data-step") == "4"
    assert "LEAF_NOT_IN_BATCH" in failing.inner_text() and "LEAF_NOT_IN_BATCH" in banner.inner_text()
    page.screenshot(path=str(tmp_path / "invalid.png"), full_page=True)

    banner = upload(page, url, "voucher.jpg", photo_of_voucher(dep.nodes["110000"].url, lic.active), "image/jpeg")
    assert banner.get_attribute("data-result") == "VALID"
    assert lic.active in page.inner_text("#f-id")
    page.screenshot(path=str(tmp_path / "qr.png"), full_page=True)

    # a commitment typed instead of a license ID: the same verdict as the license's
    page.goto(url + "/verify")
    page.fill("#license-id", json.loads(bundle_of(dep, lic.revoked))["commitment"])
    page.click("#by-id button[type=submit]")
    page.wait_for_selector("#result:not([hidden])", timeout=20_000)
    assert page.locator("#banner").get_attribute("data-result") == "REVOKED"
    assert lic.revoked in page.inner_text("#f-id")

    page.goto(url + "/verify")
    page.set_input_files("#file", files=[{"name": "x.json", "mimeType": "application/json", "buffer": b"{}"}])
    page.wait_for_selector("#error:not([hidden])", timeout=20_000)
    assert "422" not in page.inner_text("#error") and "$" in page.inner_text("#error")
    assert not [e for e in errors if "422" not in e], errors  # the only console error: the refused upload
    keep = os.environ.get("LICLEDGER_SCREENSHOT_DIR")
    if keep:
        shutil.copy(tmp_path / "revoked.png", Path(keep) / "verify-page-revoked.png")
        shutil.copy(tmp_path / "invalid.png", Path(keep) / "verify-page-invalid.png")
        shutil.copy(tmp_path / "valid.png", Path(keep) / "verify-page.png")


def test_the_nodes_trust_root_advances_with_the_ledger(
    api: tuple[TestClient, dict[str, str]], dep: Deployment, lic: Licenses
) -> None:
    client, keys = api
    before = client.post("/v1/verify", json={"license_id": lic.active}, headers=bearer(keys, "agency")).json()
    node = dep.nodes["110000"]
    [new_id] = node.issue(dep.documents("110000", 1, start=50))
    node.wait_proof(new_id)
    deadline = time.monotonic() + 20
    while True:
        answer = client.post("/v1/verify", json={"license_id": new_id}, headers=bearer(keys, "agency"))
        after = answer.json()
        if (
            answer.status_code == 200
            and after["trusted_checkpoint"]["tree_size"] > before["trusted_checkpoint"]["tree_size"]
        ):
            break
        assert time.monotonic() < deadline, (before["trusted_checkpoint"], after)
        time.sleep(0.3)
    assert after["result"] == "VALID"
    assert after["trusted_checkpoint"]["seq"] > before["trusted_checkpoint"]["seq"]
    assert client.app.state.verifier.alarm is None  # type: ignore[attr-defined]
