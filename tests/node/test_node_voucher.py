"""The printed voucher: every kind lays out, the QR code read back from the rendered page is the payload given
(reference and a near-capacity offline payload), personal data appears only on an entitled voucher; and a node
that has joined no ledger answers proof routes clearly (425 not anchored, 404 no checkpoint)."""

from __future__ import annotations

import secrets

import pypdfium2 as pdfium  # type: ignore[import-untyped]
import pytest
import sqlalchemy as sa
import zxingcpp
from nodekit import NodeUnderTest, institutions, nurses, physicians

from core import canonical
from core.base45 import b45encode
from core.bundle import OFFLINE_QR_PREFIX, QrReference, from_qr_payload
from core.licenses import parse_document
from node.voucher import render_voucher

T = 1_790_000_000_000


def _render(document: dict[str, object], payload: str, *, masked: bool) -> tuple[str, list[str]]:
    """Text of the voucher's page and the QR codes found on it rendered at 150 dpi."""
    pdf_bytes = render_voucher(
        document,
        masked=masked,
        status="active",
        license_id=str(document["license_id"]),
        commitment="ab" * 32,
        checkpoint_size=12,
        checkpoint_ms=T,
        qr_payload=payload,
        node_url="http://127.0.0.1:8600",
        printed_ms=T + 1,
    )
    assert pdf_bytes.startswith(b"%PDF-")
    page = pdfium.PdfDocument(pdf_bytes)[0]
    text = page.get_textpage().get_text_range()
    image = page.render(scale=150 / 72).to_pil()
    return text, [r.text for r in zxingcpp.read_barcodes(image)]


@pytest.mark.parametrize("kind", ["physician", "nurse", "institution"])
def test_voucher_qr_reads_back_as_the_reference_payload(kind: str) -> None:
    doc = {"physician": physicians, "nurse": nurses, "institution": institutions}[kind](1)[0]
    lic = parse_document(canonical.encode(doc))
    payload = QrReference(str(lic.license_id), "440000", bytes(32), "http://127.0.0.1:8600").to_qr_payload()
    text, codes = _render(lic.to_canonical_dict(), payload, masked=False)
    assert codes == [payload]
    ref = from_qr_payload(codes[0])
    assert isinstance(ref, QrReference) and ref.license_id == str(lic.license_id)
    assert str(doc["license_id"]) in text and doc["issuer"]["authority"] in text
    assert doc["holder"]["name"] in text  # entitled: the full document


def test_near_capacity_offline_payload_reads_back() -> None:
    doc = physicians(1)[0]
    payload = OFFLINE_QR_PREFIX + b45encode(secrets.token_bytes(2700))  # ~4,000 characters: a version 39-40 QR
    _, codes = _render(doc, payload, masked=False)
    assert codes == [payload]


def test_masked_voucher_carries_no_personal_data() -> None:
    doc = physicians(1)[0]
    lic = parse_document(canonical.encode(doc))
    text, _ = _render(lic.masked(), "LLR1:X", masked=True)
    holder = doc["holder"]
    assert holder["name"] not in text and holder["citizen_id"] not in text
    assert holder["name"][0] + "*" in text and "个人信息已按规定隐去" in text


def test_node_without_ledger_answers_proof_routes_clearly(node: NodeUnderTest) -> None:
    license_id = node.issue(physicians(1)[0]).json()["license_id"]
    for path in (f"/v1/licenses/{license_id}/proof", f"/v1/licenses/{license_id}/voucher.pdf"):
        answer = node.client.get(path, headers=node.auth("operator"))
        assert answer.status_code == 425, answer.text
        assert answer.json()["reason"] == "NOT_ANCHORED" and answer.headers["Retry-After"]
    answer = node.client.get("/v1/ledger/checkpoint")
    assert answer.status_code == 404 and "not joined a ledger" in answer.json()["detail"]
    # the full view is for entitled roles only; the public view is for anyone
    assert node.client.get(f"/v1/licenses/{license_id}/proof?view=full").status_code == 403
    assert node.client.get(f"/v1/licenses/{license_id}/proof?view=public").status_code == 425


def test_proof_by_commitment_names_the_same_version_and_refuses_bad_input(node: NodeUnderTest) -> None:
    issued = node.issue(physicians(1)[0]).json()
    commitment = issued["commitment"]
    for given in (commitment, commitment.upper()):  # hex in either case
        answer = node.client.get(f"/v1/commitments/{given}/proof", headers=node.auth("operator"))
        assert answer.status_code == 425 and answer.json()["reason"] == "NOT_ANCHORED", answer.text
    # the same access rule as by identifier: the full view only for entitled roles
    assert node.client.get(f"/v1/commitments/{commitment}/proof?view=full").status_code == 403
    assert node.client.get(f"/v1/commitments/{commitment}/proof?view=public").status_code == 425
    # a commitment this node never made: 404 naming it; not a commitment at all: 422 naming the field
    unknown = node.client.get(f"/v1/commitments/{'0' * 64}/proof")
    assert unknown.status_code == 404 and "0" * 64 in unknown.json()["detail"]
    for bad in ("ab" * 31, "xy" * 32, "ab" * 33):
        answer = node.client.get(f"/v1/commitments/{bad}/proof")
        assert answer.status_code == 422 and "commitment" in answer.text, answer.text


def test_proof_by_commitment_refuses_to_guess_between_two_versions(node: NodeUnderTest) -> None:
    """Two versions with one commitment can only be a damaged database: 409 naming both, nothing served."""
    first, second = (node.issue(doc).json() for doc in physicians(2))
    with node.ctx.engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE license_versions SET commitment = :c WHERE full_id = :id"),
            {"c": bytes.fromhex(first["commitment"]), "id": second["license_id"]},
        )
    answer = node.client.get(f"/v1/commitments/{first['commitment']}/proof", headers=node.auth("operator"))
    assert answer.status_code == 409, answer.text
    assert first["base_id"] in answer.text and second["base_id"] in answer.text
