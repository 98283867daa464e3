"""``POST /v1/licenses/batch``: up to 500 documents stored all or nothing in one transaction, every bad document
named by index and field, licenses already registered named by index, operator only, each license audited as
if issued alone; sealing in this process or in a shared pool of worker processes gives the same answers."""

from __future__ import annotations

from typing import Any

import pytest
from nodekit import NodeUnderTest, institutions, nurses, physicians

from core import canonical, synth
from core.seal import Seal, verify_seal
from node import sealworkers
from node.records import MAX_BATCH

URL = "/v1/licenses/batch"


def _post(node: NodeUnderTest, docs: list[Any], role: str = "operator") -> Any:
    return node.client.post(URL, content=canonical.encode({"documents": docs}), headers=node.auth(role))


def _stored(node: NodeUnderTest) -> tuple[int, int, int, int]:
    return tuple(node.count(t) for t in ("licenses", "license_versions", "outbox", "license_events"))  # type: ignore[return-value]


def _check_issued(node: NodeUnderTest, docs: list[dict[str, Any]], body: dict[str, Any]) -> None:
    assert body["count"] == len(docs) == len(body["licenses"])
    for doc, issued in zip(docs, body["licenses"], strict=True):
        assert issued["license_id"] == doc["license_id"] and issued["status"] == "pending"
        assert (issued["holder_token"] is None) == (doc["kind"] == "institution")
        got = node.client.get(f"/v1/licenses/{issued['base_id']}", headers=node.auth("auditor")).json()
        assert got["commitment"] == issued["commitment"]
        seal = Seal.from_dict(got["seal"])
        verify_seal(canonical.encode(got["document"]), seal, node.ctx.signing_key.public_key)


def test_batch_stores_every_license_with_its_outbox_entry_and_audit(node: NodeUnderTest) -> None:
    docs = physicians(3, seed=40) + nurses(2, seed=40) + institutions(1, seed=40)
    response = _post(node, docs)
    assert response.status_code == 201, response.text
    _check_issued(node, docs, response.json())
    assert _stored(node) == (6, 6, 6, 6)
    token = response.json()["licenses"][0]["holder_token"]
    mine = node.client.get("/v1/holder/licenses", headers={"Authorization": f"Bearer {token}"}).json()
    assert [x["license_id"] for x in mine["licenses"]] == [docs[0]["license_id"]]
    single = physicians(1, seed=41)[0]
    assert node.issue(single).status_code == 201
    entries = node.client.get("/v1/audit?limit=1000", headers=node.auth("auditor")).json()["entries"]
    issues = [e for e in entries if e["action"] == "license.issue"]
    assert [e["object"] for e in issues] == [d["license_id"].rsplit(".", 2)[0] for d in [*docs, single]]
    shape = {(e["role"], e["actor"], tuple(sorted(e["detail"])), e["personal_data"]) for e in issues}
    assert len(shape) == 1, shape  # a batch entry is the entry the single route writes


def test_bad_documents_are_named_by_index_and_field_and_nothing_is_stored(node: NodeUnderTest) -> None:
    docs: list[Any] = physicians(5, seed=42)
    docs[1] = dict(docs[1], version=2)  # the version differs from the identifier's
    docs[3] = next(synth.generate("nurse", 1, "110000", 1))  # another authority
    docs[4] = {**docs[4], "holder": {**docs[4]["holder"], "citizen_id": "not-an-id"}}
    response = _post(node, docs)
    assert response.status_code == 422, response.text
    errors = response.json()["errors"]
    assert any(k.startswith("documents[1].version") for k in errors), errors
    assert "documents[3].issuer.authority_uscc" in errors, errors
    assert "documents[4].holder.citizen_id" in errors, errors
    assert not any(k.startswith(("documents[0]", "documents[2]")) for k in errors), errors
    assert "not-an-id" not in response.text  # field errors never echo values
    assert _stored(node) == (0, 0, 0, 0)


def test_a_license_twice_in_a_batch_is_named(node: NodeUnderTest) -> None:
    docs = physicians(3, seed=43)
    response = _post(node, [*docs, docs[1]])
    assert response.status_code == 422
    assert response.json()["errors"] == {"documents[3].license_id": "is the same license as documents[1]"}
    assert _stored(node) == (0, 0, 0, 0)


def test_licenses_already_registered_are_a_conflict_and_nothing_is_stored(node: NodeUnderTest) -> None:
    docs = physicians(4, seed=44)
    assert node.issue(docs[2]).status_code == 201
    response = _post(node, docs)
    assert response.status_code == 409, response.text
    assert "documents[2]" in response.json()["current"]
    assert _stored(node) == (1, 1, 1, 1)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b'{"documents": [', "$"),
        (b"[]", "$"),
        (b'{"documents": [], "x": 1}', "$"),
        (b'{"documents": []}', "documents"),
        (canonical.encode({"documents": [{}] * (MAX_BATCH + 1)}), "documents"),
        (b'{"documents": [{}, 3]}', "documents[1]"),
        (b'{"documents": [{"format": 1.5}]}', "$"),
    ],
)
def test_malformed_batches_are_422(node: NodeUnderTest, body: bytes, field: str) -> None:
    response = node.client.post(URL, content=body, headers=node.auth("operator"))
    assert response.status_code == 422, response.text
    assert field in response.json()["errors"], response.json()


@pytest.mark.parametrize(("role", "status"), [("public", 401), ("auditor", 403), ("agency", 403), ("institution", 403)])
def test_only_the_operator_issues_batches(node: NodeUnderTest, role: str, status: int) -> None:
    assert _post(node, physicians(1, seed=45), role).status_code == status
    assert _stored(node) == (0, 0, 0, 0)


def test_a_shared_pool_of_sealing_workers_gives_the_same_answers(node: NodeUnderTest) -> None:
    docs = physicians(150, seed=46) + nurses(50, seed=46)
    bad = [dict(docs[0], version=2)]
    with sealworkers.SealingWorkers(node.ctx, 2) as workers:
        workers.start()
        sealworkers.share(workers)
        try:
            with sealworkers.lease(node.ctx) as pool:
                assert pool is not None and pool.sealer.key.key_id == node.ctx.signing_key.key_id
            rejected = _post(node, [*docs[1:], *bad])
            assert rejected.status_code == 422 and any(
                k.startswith("documents[199].") for k in rejected.json()["errors"]
            )
            response = _post(node, docs)
            assert (workers.batches_by_workers, workers.batches_in_thread) == (3, 0)
        finally:
            sealworkers.share(None)
    assert response.status_code == 201, response.text
    _check_issued(node, docs[:20], {**response.json(), "count": 20, "licenses": response.json()["licenses"][:20]})
    assert _stored(node) == (200, 200, 200, 200)
