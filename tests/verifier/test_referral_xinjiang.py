"""Referrals between Xinjiang (650000) and the Xinjiang Production and Construction Corps (XPCC, 660000), whose
issuing authorities share the division prefix 65 (core/divisions.py), on a real network of Beijing, Xinjiang and
the XPCC with the three nodes served by uvicorn, each knowing the others (``LICLEDGER_NODE_DIRECTORY``).

* A license of the XPCC's member is referred to the XPCC's node and one of Xinjiang's to Xinjiang's node, from a
  third province's node (where the ledger's member records decide) and from each other's, for the proof and the
  voucher.
* A node asked for an unknown license of one of its own authorities answers 404, never a referral to its
  neighbour (Xinjiang's node used to send it to the XPCC's).
* ``licledger verify --id`` at Beijing's node follows the referral to either; Beijing's own ``POST
  /v1/public/verify {"license_id"}`` forwards to the right one.

The authorities' registration divisions that only the ledger can tell apart (an XPCC authority in Shihezi,
``659001``) are covered by the unit tests of ``node.proofs.issuer_nodes`` (tests/node/test_node_directory.py):
the network's genesis gives each member synthetic authorities (``650000`` and ``660000``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from onlinekit import Deployment, call, get_no_redirect, verify_cli

from core.codes import LicenseId

pytestmark = [pytest.mark.integration, pytest.mark.slow]
BEIJING, XINJIANG, XPCC = "110000", "650000", "660000"
MEMBERS = (BEIJING, XINJIANG, XPCC)


@pytest.fixture(scope="module")
def dep(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    d = Deployment.start(tmp_path_factory.mktemp("xinjiang"), members=MEMBERS, provinces=MEMBERS, referrals=True)
    yield d
    d.stop()


@dataclass
class Issued:
    """One license issued on Xinjiang's node and one on the XPCC's, both provable."""

    xinjiang: str
    xpcc: str

    def of(self, province: str) -> str:
        return self.xinjiang if province == XINJIANG else self.xpcc


@pytest.fixture(scope="module")
def issued(dep: Deployment) -> Issued:
    [xj] = dep.nodes[XINJIANG].issue(dep.documents(XINJIANG, 1))
    [xpcc] = dep.nodes[XPCC].issue(dep.documents(XPCC, 1))
    dep.nodes[XINJIANG].wait_proof(xj)
    dep.nodes[XPCC].wait_proof(xpcc)
    return Issued(xj, xpcc)


def url(dep: Deployment, province: str) -> str:
    return dep.nodes[province].url


@pytest.mark.parametrize(
    ("at", "issuer"),
    [(BEIJING, XPCC), (BEIJING, XINJIANG), (XINJIANG, XPCC), (XPCC, XINJIANG)],
    ids=["xpcc-at-beijing", "xinjiang-at-beijing", "xpcc-at-xinjiang", "xinjiang-at-xpcc"],
)
@pytest.mark.parametrize("route", ["proof", "voucher.pdf"])
def test_a_license_is_referred_to_the_node_of_its_issuer_not_its_neighbour(
    dep: Deployment, issued: Issued, at: str, issuer: str, route: str
) -> None:
    license_id = issued.of(issuer)
    status, location, body = get_no_redirect(f"{url(dep, at)}/v1/licenses/{license_id}/{route}?view=public")
    assert status == 307, body
    assert json.loads(body)["issuer"] == issuer and json.loads(body)["node"] == url(dep, issuer)
    assert location == f"{url(dep, issuer)}/v1/licenses/{license_id}/{route}?view=public"
    status, _ = call(f"{url(dep, issuer)}/v1/licenses/{license_id}/{route}?view=public")
    assert status == 200  # and the referred node holds it


@pytest.mark.parametrize("province", [XINJIANG, XPCC])
def test_an_unknown_license_of_a_nodes_own_authority_is_404_not_a_referral_to_its_neighbour(
    dep: Deployment, issued: Issued, province: str
) -> None:
    known = LicenseId.parse(issued.of(province))
    unknown = str(LicenseId.build(known.type_code, known.issuer_uscc, known.serial[:-3] + "999", 1))
    for route in ("proof", "voucher.pdf"):
        status, location, body = get_no_redirect(f"{url(dep, province)}/v1/licenses/{unknown}/{route}?view=public")
        assert (status, location) == (404, None), body


@pytest.mark.parametrize("issuer", [XINJIANG, XPCC])
def test_verify_id_at_beijings_node_follows_the_referral_to_the_issuer(
    dep: Deployment, issued: Issued, issuer: str, tmp_path: Path
) -> None:
    license_id = issued.of(issuer)
    result, report = verify_cli(
        dep, tmp_path / "state.json", "--id", license_id, "--node", url(dep, BEIJING), "--min-sources", "1"
    )
    assert result.exit_code == 0, result.output
    assert report["result"] == "VALID" and report["verdict"]["facts"]["issuer"] == issuer
    assert report["bundle_source"] == f"node {url(dep, issuer)}"
    assert any(f"referred to node {url(dep, issuer)}" in n for n in report["notes"]), report["notes"]


def test_beijings_node_verifies_a_license_id_by_forwarding_to_the_issuer(dep: Deployment, issued: Issued) -> None:
    names = {XINJIANG: "新疆维吾尔自治区", XPCC: "新疆生产建设兵团"}
    for issuer, name in names.items():
        body = json.dumps({"license_id": issued.of(issuer)}).encode()
        status, answer = call(f"{url(dep, BEIJING)}/v1/public/verify", method="POST", body=body)
        assert status == 200, answer
        summary = json.loads(answer)["summary"]
        assert summary["result"] == "VALID"
        assert (summary["issuer"]["province"], summary["issuer"]["province_zh"]) == (issuer, name)
