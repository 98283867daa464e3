"""The role matrix: every role against every route, allowed (2xx/404) or refused (401 without a credential,
403 with the wrong role or scope); revoked and forged credentials are 401."""

from __future__ import annotations

from typing import Any

import pytest
from nodekit import NodeUnderTest, physicians, start_node

ROLES = ("public", "operator", "institution", "other_institution", "agency", "auditor", "holder", "other_holder")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Any:
    import os

    from nodekit import KEK

    os.environ["LICLEDGER_KEK"] = KEK
    n = start_node(tmp_path_factory.mktemp("matrix") / "node", public_rate_per_second=0, public_rate_burst=0)
    mine, other = physicians(2, seed=5)
    # the institution key's USCC must be the primary institution of `mine`
    n.keys["institution"] = _institution_key(n, mine["practice"]["primary_institution"]["uscc"])
    a = n.issue(mine).json()
    b = n.issue(other).json()
    n.keys["holder"], n.keys["other_holder"] = a["holder_token"], b["holder_token"]
    yield n, a["base_id"], mine["practice"]["primary_institution"]["uscc"], mine["holder"]["citizen_id"]
    n.client.close()
    n.ctx.close()


def _institution_key(n: NodeUnderTest, uscc: str) -> str:
    from node.apikeys import create_key

    with n.ctx.sessions() as session, session.begin():
        return create_key(session, n.ctx.secrets, role="institution", institution_uscc=uscc, now_ms=n.ctx.clock())[0]


# route -> {role: expected status}; roles not listed get the default of the route
def _routes(base: str, uscc: str, citizen_id: str) -> list[tuple[str, str, dict[str, Any] | None, dict[str, int]]]:
    ok_read = {"operator": 200, "auditor": 200, "agency": 200, "institution": 200, "holder": 200}
    return [
        ("GET", f"/v1/licenses/{base}", None, ok_read),
        ("GET", f"/v1/licenses/{base}/status", None, ok_read),
        (
            "GET",
            f"/v1/licenses/{base}/history",
            None,
            {"operator": 200, "auditor": 200, "institution": 200, "holder": 200},
        ),
        ("POST", f"/v1/licenses/{base}/events", {"type": "suspend", "reason": "matrix"}, {"operator": 201}),
        ("POST", "/v1/licenses", {"format": 1}, {"operator": 422}),
        ("POST", "/v1/holder-tokens", {"citizen_id": citizen_id}, {"operator": 201}),
        ("GET", "/v1/holder/licenses", None, {"holder": 200, "other_holder": 200}),
        ("GET", f"/v1/institutions/{uscc}/staff", None, {"operator": 200, "auditor": 200, "institution": 200}),
        ("GET", "/v1/stats", None, {"operator": 200, "auditor": 200}),
        ("GET", "/v1/audit", None, {"operator": 200, "auditor": 200}),
        ("GET", f"/v1/public/licenses/{base}", None, dict.fromkeys(ROLES, 200)),
        ("GET", "/healthz", None, dict.fromkeys(ROLES, 200)),
    ]


def _default(role: str) -> int:
    return 401 if role == "public" else 403


def test_role_matrix(world: Any) -> None:
    n, base, uscc, citizen_id = world
    failures = []
    for method, path, body, allowed in _routes(base, uscc, citizen_id):
        for role in ROLES:
            expected = allowed.get(role, _default(role))
            r = n.client.request(method, path, json=body, headers=n.auth(role))
            if r.status_code != expected:
                failures.append(f"{role:18} {method} {path.split('/v1/')[-1][:40]}: {r.status_code} != {expected}")
    assert not failures, "\n".join(failures)


def test_out_of_scope_reads_are_403_for_holders_and_institutions(world: Any) -> None:
    n, _, _, _ = world
    other_base = n.client.get("/v1/holder/licenses", headers=n.auth("other_holder")).json()["licenses"][0]["base_id"]
    for role in ("holder", "other_institution"):
        for suffix in ("", "/status", "/history"):
            r = n.client.get(f"/v1/licenses/{other_base}{suffix}", headers=n.auth(role))
            assert r.status_code == 403, (role, suffix)


@pytest.mark.parametrize(
    "header",
    [
        "Bearer llk_aaaaaaaaaaaa_" + "A" * 43,  # well-formed, unknown
        "Bearer llh_aaaaaaaaaaaa_" + "A" * 43,
        "Bearer not-a-credential",
        "Bearer ",
        "Basic dXNlcjpwYXNz",
    ],
)
def test_unknown_or_malformed_credentials_are_401(world: Any, header: str) -> None:
    n, base, _, _ = world
    r = n.client.get(f"/v1/licenses/{base}/status", headers={"Authorization": header})
    assert r.status_code == 401
    assert r.headers.get("www-authenticate") == "Bearer"


def test_a_key_with_a_wrong_secret_or_revoked_is_401(world: Any) -> None:
    from node.apikeys import create_key, revoke_key

    n, base, _, _ = world
    with n.ctx.sessions() as session, session.begin():
        key, info = create_key(session, n.ctx.secrets, role="agency", now_ms=n.ctx.clock())
    url = f"/v1/licenses/{base}/status"
    assert n.client.get(url, headers={"Authorization": f"Bearer {key}"}).status_code == 200
    forged = key[:-1] + ("A" if key[-1] != "A" else "B")
    assert n.client.get(url, headers={"Authorization": f"Bearer {forged}"}).status_code == 401
    with n.ctx.sessions() as session, session.begin():
        revoke_key(session, info.key_id, n.ctx.clock())
    assert n.client.get(url, headers={"Authorization": f"Bearer {key}"}).status_code == 401


def test_keys_of_one_node_are_unknown_to_another(world: Any, tmp_path: Any) -> None:
    n, _, _, _ = world
    other = start_node(tmp_path / "other")
    try:
        assert other.client.get("/v1/stats", headers=other.auth("auditor")).status_code == 200
        assert other.client.get("/v1/stats", headers=n.auth("auditor")).status_code == 401
    finally:
        other.client.close()
        other.ctx.close()
