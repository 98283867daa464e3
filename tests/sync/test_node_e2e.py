"""End to end: a real 3-province network (`licledger network`), real provincial nodes (`licledger node init
--network-dir`, `licledger node serve` under uvicorn with the anchoring scheduler in-process) on SQLite and on
PostgreSQL. Licenses are issued over HTTP, anchored by the worker, one is revoked, and the proofs fetched over HTTP
are verified by verifier.core against the network's genesis: VALID for the active, REVOKED for the revoked; the
voucher's QR code, read back from the rendered page, carries a bundle that verifies too, and so does the proof
fetched by the license version's commitment."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pypdfium2 as pdfium  # type: ignore[import-untyped]
import pytest
import zxingcpp
from anchorkit import KEK, documents, join_node, wait_for
from netkit import Net
from nodekit import fresh_postgres_database

from core.bundle import ProofBundle, from_qr_payload
from core.merkle import verify_consistency
from network.localnet import free_loopback_ports
from verifier.core import Result, TrustRoot, load_trust_root, verify_bundle

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# A real freshness policy: checkpoint duties are dated at the peers' clocks, so a checkpoint over a batch anchored
# seconds ago is seconds old (before, it carried its proposer's last transaction time, possibly the genesis time).
MAX_CHECKPOINT_AGE_MS = 10 * 60 * 1000


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Net]:
    n = Net.started(tmp_path_factory.mktemp("e2e") / "net")
    yield n
    n.down()


@dataclass
class Served:
    url: str
    operator: str
    proc: subprocess.Popen[bytes]
    log: Path

    def client(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)


@pytest.fixture
def serve(net: Net, tmp_path: Path) -> Iterator[Any]:
    started: list[Served] = []

    def start(member: str, database_url: str | None = None) -> Served:
        directory = tmp_path / f"node-{member}"
        operator = join_node(directory, net, member, database_url=database_url)
        [port] = free_loopback_ports(1)
        dead = f"http://127.0.0.1:{free_loopback_ports(1)[0]}"  # failover: the first peer never answers
        peers = ",".join([dead, *(m.http_url for m in net.config.members)])
        env = {
            **os.environ,
            "LICLEDGER_KEK": KEK,
            "LICLEDGER_PORT": str(port),
            "LICLEDGER_LEDGER_URLS": peers,
            "LICLEDGER_ANCHOR_INTERVAL_MS": "200",
            "LICLEDGER_ANCHOR_BATCH_MAX_AGE_MS": "300",
            "LICLEDGER_CHECKPOINT_CACHE_MS": "0",
            "LICLEDGER_PUBLIC_RATE_PER_SECOND": "0",
        }
        log = tmp_path / f"serve-{member}.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-c", "from node.cli import main; main()", "node", "serve", "--dir", str(directory)],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        served = Served(f"http://127.0.0.1:{port}", operator, proc, log)
        started.append(served)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text()
            try:
                if httpx.get(served.url + "/healthz", timeout=2).status_code == 200:
                    return served
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise AssertionError(log.read_text())

    yield start
    for s in started:
        s.proc.send_signal(signal.SIGTERM)
        s.proc.wait(30)


def _proof(client: httpx.Client, license_id: str, view: str | None = None) -> bytes:
    """The proof once the node can give it; 425 (not anchored / no final checkpoint yet) meanwhile."""

    def get() -> bytes | None:
        answer = client.get(f"/v1/licenses/{license_id}/proof", params={"view": view} if view else None)
        if answer.status_code == 425:
            assert answer.json()["reason"] in ("NOT_ANCHORED", "NO_FINAL_CHECKPOINT", "STATUS_PENDING")
            return None
        assert answer.status_code == 200, answer.text
        return answer.content

    result: bytes = wait_for(f"proof of {license_id}", get)
    return result


def _verify(bundle: bytes, trust: TrustRoot, license_id: str) -> Any:
    return verify_bundle(
        bundle,
        trust,
        now_ms=time.time_ns() // 1_000_000,
        max_checkpoint_age_ms=MAX_CHECKPOINT_AGE_MS,
        expected_license_id=license_id,
    )


def _flow(net: Net, served: Served, member: str, kinds: list[str]) -> dict[str, Any]:
    """Issue over HTTP, wait for anchoring, revoke the first, verify every proof; returns what the caller checks."""
    trust = load_trust_root((net.directory / "network.json").read_bytes(), network_id=net.config.network_id)
    operator = served.client(served.operator)
    health = operator.get("/healthz").json()
    uscc = health["authority_uscc"]
    issued = []
    for i, kind in enumerate(kinds):
        [doc] = documents(kind, 1, member, uscc, start=500 + i)
        answer = operator.post("/v1/licenses", json=doc)
        assert answer.status_code == 201, answer.text
        assert answer.json()["status"] == "pending"
        issued.append(answer.json())
    ids = [a["license_id"] for a in issued]
    wait_for(
        "anchoring", lambda: all(operator.get(f"/v1/licenses/{i}/status").json()["status"] == "anchored" for i in ids)
    )
    first_cp = wait_for(
        "a final checkpoint over a batch",
        lambda: (cp := operator.get("/v1/ledger/checkpoint").json()).get("log_size", 0) > 0 and cp,
    )
    revoked = ids[0]
    assert operator.post(f"/v1/licenses/{revoked}/events", json={"type": "revoke", "reason": "R01"}).status_code == 201

    public = served.client()
    verdicts = {}
    for license_id in ids:
        for view, client in (("full", operator), ("public", public)):
            bundle = _proof(client, license_id)
            parsed = ProofBundle.from_json(bundle)
            assert parsed.disclosed == (view == "full")
            verdicts[(license_id, view)] = _verify(bundle, trust, license_id)
    for (license_id, view), verdict in verdicts.items():
        expected = Result.REVOKED if license_id == revoked else Result.VALID
        assert verdict.result is expected, (license_id, view, verdict.to_dict(personal=False))

    # the seal key is the province's member key, valid at signing time (verifier step 2 checked it; here explicitly)
    member_keys = {
        k["key_id"] for k in net.client(member).get_json(f"/v1/query/GetMember?arg={member}&arg=")["record"]["keys"]
    }
    assert {a["seal_key_id"] for a in issued} == {health["signing_key_id"]} and health["signing_key_id"] in member_keys

    # consistency proof between the first checkpoint seen and the latest
    latest = operator.get("/v1/ledger/checkpoint").json()
    answer = operator.get("/v1/ledger/consistency", params={"from": first_cp["seq"], "to": latest["seq"]}).json()
    old, new = answer["from_checkpoint"], answer["to_checkpoint"]
    assert (old["seq"], new["seq"]) == (first_cp["seq"], latest["seq"])
    roots = [trust.verify_checkpoint(cp["note"].encode())[0] for cp in (old, new)]
    proof = [bytes.fromhex(h) for h in answer["consistency_proof"]]
    verify_consistency(roots[0].log_size, roots[1].log_size, proof, roots[0].log_root, roots[1].log_root)
    advanced = TrustRoot(trust.genesis, note=old["note"].encode()).advanced(new["note"].encode(), proof)
    assert advanced.checkpoint is not None and advanced.checkpoint.log_size == latest["log_size"]
    return {"ids": ids, "issued": issued, "trust": trust, "operator": operator, "public": public}


def _qr_of(pdf: bytes) -> tuple[str, str]:
    page = pdfium.PdfDocument(pdf)[0]
    codes = zxingcpp.read_barcodes(page.render(scale=150 / 72).to_pil())
    assert len(codes) == 1
    return codes[0].text, page.get_textpage().get_text_range()


def test_issue_anchor_revoke_prove_on_sqlite(net: Net, serve: Any) -> None:
    member = "440000"
    served = serve(member)
    out = _flow(net, served, member, ["physician", "nurse", "institution", "physician"])
    active, revoked = out["ids"][1], out["ids"][0]

    # the holder gets the full proof and a voucher with their data; the QR carries a bundle that verifies
    holder_token = out["issued"][1]["holder_token"]
    holder = served.client(holder_token)
    assert ProofBundle.from_json(_proof(holder, active)).disclosed
    assert not ProofBundle.from_json(_proof(holder, out["ids"][3])).disclosed  # someone else's: public view only
    pdf = holder.get(f"/v1/licenses/{active}/voucher.pdf")
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    payload, text = _qr_of(pdf.content)
    decoded = from_qr_payload(payload)
    assert isinstance(decoded, ProofBundle) and decoded.disclosed and str(decoded.license_id) == active
    assert _verify(decoded.to_json(), out["trust"], active).result is Result.VALID
    assert decoded.document is not None and decoded.document.holder.name in text

    # the public voucher: masked facts, a public bundle in the QR code
    pdf = out["public"].get(f"/v1/licenses/{revoked}/voucher.pdf")
    payload, text = _qr_of(pdf.content)
    decoded = from_qr_payload(payload)
    assert isinstance(decoded, ProofBundle) and not decoded.disclosed
    assert _verify(decoded.to_json(), out["trust"], revoked).result is Result.REVOKED
    assert "已吊销" in text and "个人信息已按规定隐去" in text

    # by commitment (what a QR reference and the ledger's leaf carry): the same version's bundle, same views
    for license_id, token, disclosed, expected in (
        (revoked, None, False, Result.REVOKED),
        (active, holder_token, True, Result.VALID),
    ):
        commitment = next(i["commitment"] for i in out["issued"] if i["license_id"] == license_id)
        answer = served.client(token).get(f"/v1/commitments/{commitment}/proof")
        assert answer.status_code == 200, answer.text
        by_commitment = ProofBundle.from_json(answer.content)
        assert str(by_commitment.license_id) == license_id and by_commitment.commitment.hex() == commitment
        assert by_commitment.disclosed == disclosed
        assert _verify(answer.content, out["trust"], license_id).result is expected

    # disclosures are audited (full proofs and vouchers), public views are not
    audit = out["operator"].get("/v1/audit", params={"limit": 500}).json()
    actions = {(e["action"], e["object"]) for e in audit["entries"] if e["personal_data"]}
    assert ("license.proof", active) in actions and ("license.voucher", active) in actions


def test_core_flow_on_postgresql(net: Net, serve: Any) -> None:
    member = "310000"
    with fresh_postgres_database() as url:
        served = serve(member, database_url=url)
        _flow(net, served, member, ["nurse", "physician"])
        served.proc.send_signal(signal.SIGTERM)
        served.proc.wait(30)
