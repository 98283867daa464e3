"""``licledger node announce`` against a real network: a province puts its node's URL on the ledger, and another
province's node, with nothing configured, refers requests for that province's licenses there (307); the
operator's LICLEDGER_NODE_DIRECTORY still overrides; a withdrawal stops the referrals; bad URLs are refused
before anything is signed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from anchorkit import Issuer, cli, documents, join_node, open_joined
from netkit import Net, licledger

from core.codes import LicenseId
from node.ledger import LedgerClient

pytestmark = [pytest.mark.integration, pytest.mark.slow]

GD_URL = "http://127.0.0.1:18443/gd"


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Net]:
    n = Net.started(tmp_path_factory.mktemp("announce") / "net")
    yield n
    n.down()


def _nodes(ledger: LedgerClient) -> dict[str, tuple[str, int]]:
    return {n["member"]: (n["url"], n["seq"]) for n in ledger.query("GetNodes")["nodes"]}


def _referral(node: Path, license_id: str, **overrides: str) -> tuple[int, str | None]:
    """A fresh node context (a fresh directory) asked for the proof of another province's license."""
    ctx = open_joined(node, **overrides)
    issuer = Issuer(ctx)
    try:
        answer = issuer.client.get(
            f"/v1/licenses/{quote(license_id, safe='')}/proof", headers=issuer.headers, follow_redirects=False
        )
        return answer.status_code, answer.headers.get("location")
    finally:
        issuer.close()
        ctx.close()


def test_announced_node_is_where_other_provinces_refer(net: Net, tmp_path: Path) -> None:
    gd, bj = tmp_path / "gd", tmp_path / "bj"
    join_node(gd, net, "440000")
    join_node(bj, net, "110000")
    ctx = open_joined(gd)
    assert ctx.ledger is not None
    ledger = ctx.ledger
    [doc] = documents("physician", 1, "440000", ctx.settings.authority_uscc)
    ctx.close()
    base = str(LicenseId.parse(doc["license_id"]).base)
    assert _referral(bj, base)[0] == 404  # nobody announced, nothing configured: not found here

    for bad, says in (("ftp://x.example", "not an http(s) URL"), ("http://u@x.example", "user info")):
        done = licledger("node", "announce", "--dir", gd, "--url", bad)
        assert done.returncode != 0 and says in done.stderr, done.stderr
    assert _nodes(ledger) == {}  # nothing was signed

    assert "440000: announced http://127.0.0.1:18443/gd (seq 0" in cli("node", "announce", "--dir", gd, "--url", GD_URL)
    assert "already announced" in cli("node", "announce", "--dir", gd, "--url", GD_URL)
    assert _nodes(ledger) == {"440000": (GD_URL, 0)}

    status, location = _referral(bj, base)
    assert status == 307 and location == f"{GD_URL}/v1/licenses/{quote(base, safe='')}/proof", (status, location)
    # the operator's own directory entry wins over the announcement
    status, location = _referral(bj, base, node_directory="440000=http://127.0.0.1:18444")
    assert status == 307 and location is not None and location.startswith("http://127.0.0.1:18444/v1/"), location

    assert "(withdrawn) (seq 1" in cli("node", "announce", "--dir", gd, "--withdraw")
    assert _nodes(ledger) == {"440000": ("", 1)}
    assert _referral(bj, base)[0] == 404


def test_serve_announces_its_public_url_when_the_ledger_holds_another(net: Net, tmp_path: Path) -> None:
    """``LICLEDGER_ANNOUNCE_INTERVAL_S``: the scheduler's job announces ``public_url`` once, then leaves the ledger
    alone while it holds that URL, and announces again when the setting changes."""
    from sync.scheduler import announce_job

    sh = tmp_path / "sh"
    join_node(sh, net, "310000")
    ctx = open_joined(sh, public_url="http://127.0.0.1:18500/", announce_interval_s=3600)
    assert ctx.ledger is not None
    try:
        announce_job(ctx)
        announce_job(ctx)
        assert _nodes(ctx.ledger)["310000"] == ("http://127.0.0.1:18500", 0)
    finally:
        ctx.close()
    ctx = open_joined(sh, public_url="http://127.0.0.1:18501", announce_interval_s=3600)
    assert ctx.ledger is not None
    try:
        announce_job(ctx)
        assert _nodes(ctx.ledger)["310000"] == ("http://127.0.0.1:18501", 1)
        assert ctx.directory.current()["310000"] == "http://127.0.0.1:18501"
    finally:
        ctx.close()
    ctx = open_joined(sh, public_url="http://127.0.0.1:18502/?node=1", announce_interval_s=3600)
    assert ctx.ledger is not None
    try:
        announce_job(ctx)  # a bad URL is logged, never raised, and nothing is signed
        assert _nodes(ctx.ledger)["310000"] == ("http://127.0.0.1:18501", 1)
    finally:
        ctx.close()
