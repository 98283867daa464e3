"""The node's HTTP API on a real SQLite file (TestClient): issue, change, revoke, queries, 422/409 answers."""

from __future__ import annotations

import copy
from typing import Any

from nodekit import NodeUnderTest, institutions, nurses, physicians

from core import canonical, synth
from core.codes import LicenseId
from core.commitment import verify_commitment
from core.licenses import parse_document
from core.seal import Seal, verify_seal


def test_issue_answers_pending_and_stores_a_sealed_committed_version(node: NodeUnderTest) -> None:
    doc = physicians(1)[0]
    r = node.issue(doc)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["status"] == "pending" and body["license_status"] == "active"
    assert body["license_id"] == doc["license_id"]
    assert body["base_id"] == LicenseId.parse(doc["license_id"]).base
    assert body["holder_token"].startswith("llh_")
    view = node.client.get(f"/v1/licenses/{body['base_id']}", headers=node.auth("operator")).json()
    stored = canonical.encode(view["document"])
    assert parse_document(stored).to_canonical_dict() == doc
    verify_commitment(stored, bytes.fromhex(view["salt"]), bytes.fromhex(body["commitment"]))
    verify_seal(stored, Seal.from_dict(view["seal"]), node.ctx.signing_key.public_key)
    for table in ("licenses", "license_versions", "license_events", "outbox"):
        assert node.count(table) == 1, table


def test_invalid_document_is_422_naming_each_bad_field(node: NodeUnderTest) -> None:
    doc = physicians(1)[0]
    doc["holder"]["citizen_id"] = "44010619900101001"  # 17 characters
    doc["practice"]["category"] = "astrology"
    doc["issued_on"] = "2020-02-30"
    del doc["practice"]["scope"]
    doc["extra"] = 1
    r = node.issue(doc)
    assert r.status_code == 422
    errors = r.json()["errors"]
    assert set(errors) == {
        "holder.citizen_id",
        "practice.category",
        "issued_on",
        "practice.scope",
        "extra",
    }, errors
    assert "44010619900101001" not in r.text
    assert node.count("licenses") == 0 and node.count("audit_log") == 0


def test_malformed_json_and_empty_body_are_422(node: NodeUnderTest) -> None:
    h = node.auth("operator")
    for body in (b"", b"{", b'{"format": 1.0}', b'{"a": 1, "a": 2}', b"[]", b'"x"', b"\xff\xfe"):
        r = node.client.post("/v1/licenses", content=body, headers=h)
        assert r.status_code == 422, (body, r.text)
        assert r.json()["errors"], body


def test_document_of_another_authority_is_422_on_the_issuer_fields(node: NodeUnderTest) -> None:
    foreign = next(synth.generate("nurse", 1, "110000", 3))
    r = node.issue(foreign)
    assert r.status_code == 422
    assert {"issuer.province", "issuer.authority_uscc", "issuer.authority"} <= set(r.json()["errors"])


def test_issuing_the_same_license_twice_is_409_and_changes_nothing(node: NodeUnderTest) -> None:
    doc = nurses(1)[0]
    assert node.issue(doc).status_code == 201
    again = copy.deepcopy(doc)
    again["practice"]["institution"]["name"] = "另一家医院"
    r = node.issue(again)
    assert r.status_code == 409 and r.json()["current"] == f"version {doc['version']}"
    assert node.count("license_versions") == 1


def _event(node: NodeUnderTest, base: str, body: dict[str, Any]) -> Any:
    return node.client.post(f"/v1/licenses/{base}/events", json=body, headers=node.auth("operator"))


def test_change_filing_cancel_revoke_flow_and_history(node: NodeUnderTest) -> None:
    doc = physicians(1)[0]
    base = node.issue(doc).json()["base_id"]
    v1 = doc["version"]
    other = institutions(3)[2]["holder"]
    r = _event(
        node,
        base,
        {
            "type": "filing",
            "institution": {"name": other["name"], "uscc": other["uscc"]},
            "filed_on": doc["issued_on"],
        },
    )
    assert r.status_code == 201, r.text
    assert r.json()["new_version"] and r.json()["version"] == v1 + 1
    assert LicenseId.parse(r.json()["license_id"]).version == v1 + 1
    r = _event(node, base, {"type": "cancel-filing", "uscc": other["uscc"]})
    assert r.status_code == 201 and r.json()["version"] == v1 + 2
    new_inst = institutions(5)[4]["holder"]
    r = _event(
        node,
        base,
        {
            "type": "change",
            "reason": "moved",
            "changes": {"practice": {"primary_institution": {"name": new_inst["name"], "uscc": new_inst["uscc"]}}},
        },
    )
    assert r.status_code == 201, r.text
    current = node.client.get(f"/v1/licenses/{base}", headers=node.auth("operator")).json()
    assert current["version"] == v1 + 3
    assert current["document"]["practice"]["primary_institution"]["uscc"] == new_inst["uscc"]
    assert current["document"]["holder"] == doc["holder"]
    # an earlier version stays readable by its full identifier
    old = node.client.get(f"/v1/licenses/{doc['license_id']}", headers=node.auth("operator")).json()
    assert old["version"] == v1 and old["document"] == doc
    r = _event(node, base, {"type": "revoke", "reason": "death"})
    assert r.status_code == 201 and r.json()["license_status"] == "revoked" and not r.json()["new_version"]
    for body in (
        {"type": "reinstate", "reason": "x"},
        {"type": "renew", "valid_from": "2025-01-01", "valid_to": "2030-01-01"},
        {"type": "suspend", "reason": "x"},
    ):
        r = _event(node, base, body)
        assert r.status_code == 409, body
        assert r.json()["current"] == "revoked"
    history = node.client.get(f"/v1/licenses/{base}/history", headers=node.auth("auditor")).json()
    assert [v["version"] for v in history["versions"]] == [v1, v1 + 1, v1 + 2, v1 + 3]
    assert [e["type"] for e in history["events"]] == ["issue", "filing", "cancel-filing", "change", "revoke"]
    assert all(v["status"] == "pending" and v["anchor"] is None for v in history["versions"])
    assert history["events"][-1]["ledger"]["kind"] == "status"
    # the three new versions each took a status_seq first (their version updates, reason NEW_VERSION)
    assert history["events"][-1]["ledger"]["status_seq"] == 3
    assert node.count("outbox") == 8  # 4 leaves, 3 version updates, 1 revocation


def test_suspend_reinstate_and_renew_of_a_nurse(node: NodeUnderTest) -> None:
    doc = nurses(1)[0]
    base = node.issue(doc).json()["base_id"]
    assert _event(node, base, {"type": "suspend", "reason": "review"}).json()["license_status"] == "suspended"
    r = _event(node, base, {"type": "renew", "valid_from": "2025-01-01", "valid_to": "2030-01-01"})
    assert r.status_code == 409
    assert _event(node, base, {"type": "reinstate", "reason": "ok"}).json()["license_status"] == "reinstated"
    r = _event(node, base, {"type": "renew", "valid_from": "2025-01-01", "valid_to": "2030-01-01"})
    assert r.status_code == 201 and r.json()["version"] == doc["version"] + 1
    r = _event(node, base, {"type": "renew", "valid_from": "2025-01-01", "valid_to": "2024-01-01"})
    assert r.status_code == 422 and "valid_to" in r.json()["errors"]
    r = _event(
        node,
        base,
        {
            "type": "filing",
            "institution": {"name": "x", "uscc": "12440303344752713B"},
            "filed_on": "2025-01-01",
        },
    )
    assert r.status_code == 422 and r.json()["errors"] == {"type": "filing applies to physicians only"}


def test_change_cannot_touch_the_envelope_or_the_holders_identity(node: NodeUnderTest) -> None:
    base = node.issue(physicians(1)[0]).json()["base_id"]
    r = _event(
        node,
        base,
        {
            "type": "change",
            "changes": {"license_id": "x", "issuer": {}, "holder": {"citizen_id": "110105194912310029"}},
        },
    )
    assert r.status_code == 422
    assert set(r.json()["errors"]) == {"changes.license_id", "changes.issuer", "changes.holder.citizen_id"}
    assert "110105194912310029" not in r.text
    assert node.count("license_versions") == 1


def test_malformed_events_are_422_naming_the_field(node: NodeUnderTest) -> None:
    base = node.issue(nurses(1)[0]).json()["base_id"]
    cases: list[tuple[dict[str, Any], str]] = [
        ({"type": "explode"}, "body.type"),
        ({"type": "suspend"}, "body.reason"),
        ({"type": "suspend", "reason": "has spaces"}, "body.reason"),
        ({"type": "renew", "valid_from": 20250101, "valid_to": "2030-01-01"}, "body.valid_from"),
        ({"type": "change", "changes": {}}, "changes"),
    ]
    for body, field in cases:
        r = _event(node, base, body)
        assert r.status_code == 422, body
        assert field in r.json()["errors"], (body, r.json())
    assert (
        node.client.post(f"/v1/licenses/{base}/events", content=b"{", headers=node.auth("operator")).status_code == 422
    )


def test_unknown_and_malformed_license_ids(node: NodeUnderTest) -> None:
    h = node.auth("operator")
    missing = LicenseId.parse(physicians(1)[0]["license_id"]).base
    assert node.client.get(f"/v1/licenses/{missing}", headers=h).status_code == 404
    r = node.client.get("/v1/licenses/1.2.156.3005.2.nope", headers=h)
    assert r.status_code == 422 and "id" in r.json()["errors"]
    assert _event(node, missing, {"type": "suspend", "reason": "x"}).status_code == 404


def test_holder_sees_own_licenses_and_progress_but_not_others(node: NodeUnderTest) -> None:
    mine, theirs = physicians(2)
    token = node.issue(mine).json()["holder_token"]
    other_base = node.issue(theirs).json()["base_id"]
    h = {"Authorization": f"Bearer {token}"}
    own = node.client.get("/v1/holder/licenses", headers=h)
    assert own.status_code == 200
    [item] = own.json()["licenses"]
    assert item["document"] == mine and item["status"] == "pending" and not item["masked"]
    assert [e["type"] for e in item["events"]] == ["issue"]
    assert node.client.get(f"/v1/licenses/{item['base_id']}", headers=h).status_code == 200
    assert node.client.get(f"/v1/licenses/{other_base}", headers=h).status_code == 403
    # a new token for the same holder (operator desk) works; a made-up citizen ID is 404, a bad one 422
    r = node.client.post(
        "/v1/holder-tokens", json={"citizen_id": mine["holder"]["citizen_id"]}, headers=node.auth("operator")
    )
    assert r.status_code == 201
    again = node.client.get("/v1/holder/licenses", headers={"Authorization": f"Bearer {r.json()['holder_token']}"})
    assert again.json()["licenses"][0]["base_id"] == item["base_id"]
    assert (
        node.client.post(
            "/v1/holder-tokens", json={"citizen_id": "11010519491231002X"}, headers=node.auth("operator")
        ).status_code
        == 404
    )
    r = node.client.post("/v1/holder-tokens", json={"citizen_id": "123"}, headers=node.auth("operator"))
    assert r.status_code == 422 and "citizen_id" in r.json()["errors"]


def test_institution_lists_only_its_own_physicians_and_nurses(node: NodeUnderTest) -> None:
    docs = physicians(40) + nurses(40)
    for d in docs:
        assert node.issue(d).status_code == 201
    uscc = node.institution_uscc
    expected = sorted(
        d["license_id"]
        for d in docs
        if uscc
        in (
            [
                d["practice"]["primary_institution"]["uscc"],
                *(f["uscc"] for f in d["practice"]["filed_institutions"]),
            ]
            if d["kind"] == "physician"
            else [d["practice"]["institution"]["uscc"]]
        )
    )
    r = node.client.get(f"/v1/institutions/{uscc}/staff", headers=node.auth("institution"))
    assert r.status_code == 200
    assert sorted(i["license_id"] for i in r.json()["items"]) == expected and r.json()["total"] == len(expected)
    assert all("citizen_id" not in str(i) for i in r.json()["items"])
    other = "12440303344752713B"
    assert node.client.get(f"/v1/institutions/{other}/staff", headers=node.auth("institution")).status_code == 403
    r = node.client.get(f"/v1/institutions/{uscc}/staff?kind=nurse&limit=1", headers=node.auth("operator"))
    assert r.status_code == 200 and len(r.json()["items"]) <= 1
    assert node.client.get("/v1/institutions/XYZ/staff", headers=node.auth("operator")).status_code == 422


def test_statistics_count_by_kind_category_city_institution_and_month(node: NodeUnderTest) -> None:
    docs = physicians(12) + nurses(8) + institutions(3)
    for d in docs:
        node.issue(d)
    base = LicenseId.parse(docs[0]["license_id"]).base
    _event(node, base, {"type": "suspend", "reason": "x"})
    stats = node.client.get("/v1/stats", headers=node.auth("auditor")).json()
    assert stats["total"] == 23
    assert stats["by_kind"] == {"institution": 3, "nurse": 8, "physician": 12}
    assert stats["by_status"] == {"active": 22, "suspended": 1}
    categories = {d["practice"]["category"] for d in docs if d["kind"] == "physician"}
    assert set(stats["by_practice_category"]["physician"]) == categories
    assert sum(stats["by_practice_category"]["physician"].values()) == 12
    assert sum(c["count"] for c in stats["by_city"]) == 23
    assert all(c["city_code"].startswith("44") for c in stats["by_city"])
    assert sum(i["staff"] for i in stats["top_institutions_by_staff"]) == 20
    months = {(m["type"], m["count"]) for m in stats["changes_by_month"]}
    assert ("issue", 23) in months and ("suspend", 1) in months


def test_public_view_masks_personal_data(node: NodeUnderTest) -> None:
    doc = physicians(1)[0]
    base = node.issue(doc).json()["base_id"]
    r = node.client.get(f"/v1/public/licenses/{base}")
    assert r.status_code == 200
    text = r.text
    holder = doc["holder"]
    assert holder["citizen_id"] not in text and doc["practice"]["qualification_certificate_no"] not in text
    assert holder["name"] not in text
    masked = r.json()["document"]["holder"]
    assert masked["name"] == holder["name"][0] + "*" * (len(holder["name"]) - 1)
    assert masked["citizen_id"].startswith(holder["citizen_id"][:4]) and "*" in masked["citizen_id"]
    assert r.json()["document"]["practice"]["primary_institution"] == doc["practice"]["primary_institution"]
    assert "salt" not in r.json()
    # an agency gets facts and status, but the document masked and no salt
    agency = node.client.get(f"/v1/licenses/{base}", headers=node.auth("agency")).json()
    assert agency["masked"] and agency.get("salt") is None
    assert holder["citizen_id"] not in str(agency)


def test_every_read_of_personal_data_is_audited(node: NodeUnderTest) -> None:
    doc = physicians(1)[0]
    issued = node.issue(doc).json()
    base, token = issued["base_id"], issued["holder_token"]
    c = node.client
    c.get(f"/v1/licenses/{base}", headers=node.auth("operator"))
    c.get(f"/v1/licenses/{base}", headers=node.auth("auditor"))
    c.get(f"/v1/licenses/{base}", headers=node.auth("agency"))  # masked: not a personal-data read
    c.get(f"/v1/public/licenses/{base}")  # masked
    c.get("/v1/holder/licenses", headers={"Authorization": f"Bearer {token}"})
    c.get(f"/v1/institutions/{node.institution_uscc}/staff", headers=node.auth("institution"))
    entries = c.get("/v1/audit?limit=1000", headers=node.auth("auditor")).json()["entries"]
    personal = [(e["role"], e["action"]) for e in entries if e["personal_data"]]
    assert personal == [
        ("operator", "license.read"),
        ("auditor", "license.read"),
        ("holder", "holder.licenses"),
        ("institution", "institution.staff"),
    ]
    reads = [e for e in entries if e["action"] == "license.read"]
    assert all(e["object"] == issued["license_id"] and e["actor"].count(":") == 1 for e in reads)
    assert all(doc["holder"]["citizen_id"] not in str(e) and doc["holder"]["name"] not in str(e) for e in entries)
    keys = {e["actor"].split(":")[1] for e in entries}
    assert not any(node.keys[r].split("_", 2)[2] in str(entries) for r in node.keys)  # no secret in the log
    assert len(keys) >= 4
