"""The printed voucher (核验凭证) of a license: its facts laid out for print and a QR code to verify it.

A one-page A4 PDF drawn with reportlab: the title and kind, the license's facts as label/value rows (Chinese
text in reportlab's built-in CID font STSong-Light, so nothing is downloaded or embedded), the status the proof
bundle establishes, the identifiers, and a QR code (ISO/IEC 18004, drawn as vector modules with ``segno``)
carrying :meth:`core.bundle.ProofBundle.to_qr_payload`: the whole bundle offline (``LLB1:``) when it fits a
QR code, else a reference (``LLR1:``: license id, issuer, commitment, node URL) for fetching the proof.

Personal data: the caller passes the document as it may be shown, full for roles entitled to it (the holder
printing their own), masked otherwise; the QR code carries a bundle of the same view. Nothing here decides
access (:mod:`node.access` does) or does I/O.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import segno
from reportlab.lib.pagesizes import A4  # type: ignore[import-untyped]
from reportlab.lib.units import mm  # type: ignore[import-untyped]
from reportlab.pdfbase import pdfmetrics  # type: ignore[import-untyped]
from reportlab.pdfbase.cidfonts import UnicodeCIDFont  # type: ignore[import-untyped]
from reportlab.pdfgen.canvas import Canvas  # type: ignore[import-untyped]

CJK_FONT = "STSong-Light"
MONO_FONT = "Courier"
QR_MARGIN_MODULES = 4
"""ISO/IEC 18004 quiet zone."""

TITLES = {"physician": "医师执业证书", "nurse": "护士执业证书", "institution": "医疗机构执业许可证"}
STATUS_TEXT = {"active": "有效", "reinstated": "有效（已恢复）", "suspended": "暂停执业", "revoked": "已吊销"}
CATEGORY_TEXT = {"clinical": "临床", "tcm": "中医", "dental": "口腔", "public_health": "公共卫生"}
SEX_TEXT = {"male": "男", "female": "女"}

_registered = False


def _fonts() -> None:
    global _registered
    if not _registered:
        pdfmetrics.registerFont(UnicodeCIDFont(CJK_FONT))
        _registered = True


def _rows(doc: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The facts of a license document (full or masked) as (label, value) rows, by kind."""
    kind = doc["kind"]
    holder, practice, issuer = doc["holder"], doc["practice"], doc["issuer"]
    rows: list[tuple[str, str]] = []
    if kind in ("physician", "nurse"):
        rows += [("姓名", holder["name"]), ("性别", SEX_TEXT.get(holder["sex"], holder["sex"]))]
        rows.append(("身份证件号码", holder["citizen_id"]))
    if kind == "physician":
        rows += [
            ("医师资格证书编码", practice["qualification_certificate_no"]),
            ("执业类别", CATEGORY_TEXT.get(practice["category"], practice["category"])),
            ("执业范围", "、".join(practice["scope"])),
            ("主要执业机构", practice["primary_institution"]["name"]),
        ]
        filed = [f["name"] for f in practice.get("filed_institutions", [])]
        if filed:
            rows.append(("备案执业机构", "、".join(filed)))
        rows.append(("发证日期", doc["issued_on"]))
    elif kind == "nurse":
        rows += [
            ("执业机构", practice["institution"]["name"]),
            ("有效期", f"{doc['valid_from']} 至 {doc['valid_to']}"),
        ]
    else:
        rows += [
            ("机构名称", holder["name"]),
            ("统一社会信用代码", holder["uscc"]),
            ("地址", holder["address"]),
            ("法定代表人", holder["legal_representative"]),
            ("主要负责人", holder["principal"]),
            ("机构类别", practice["category"]),
            ("诊疗科目", "、".join(d["name"] for d in practice["departments"])),
            ("有效期", f"{doc['valid_from']} 至 {doc['valid_to']}"),
        ]
    rows += [("发证机关", issuer["authority"]), ("版本", str(doc["version"]))]
    return rows


def _wrap(text: str, font: str, size: float, width: float) -> list[str]:
    """Break ``text`` into lines no wider than ``width`` points (character by character: CJK has no spaces)."""
    lines, line = [], ""
    for ch in text:
        if pdfmetrics.stringWidth(line + ch, font, size) > width and line:
            lines.append(line)
            line = ch
        else:
            line += ch
    return [*lines, line]


def _ms_text(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M UTC")


def render_voucher(
    document: Mapping[str, Any],
    *,
    masked: bool,
    status: str,
    license_id: str,
    commitment: str,
    checkpoint_size: int,
    checkpoint_ms: int,
    qr_payload: str,
    node_url: str,
    printed_ms: int,
) -> bytes:
    """The voucher PDF. ``document`` is the license document as the caller may see it (``masked`` if so)."""
    _fonts()
    out = io.BytesIO()
    width, height = A4
    c = Canvas(out, pagesize=A4, invariant=True, pageCompression=1)
    c.setTitle(f"{TITLES.get(document['kind'], '电子证照')} 核验凭证")
    c.setAuthor(str(document["issuer"]["authority"]))
    left, right = 20 * mm, width - 20 * mm
    y = height - 25 * mm

    c.setFont(CJK_FONT, 20)
    c.drawCentredString(width / 2, y, "电子证照核验凭证")
    y -= 10 * mm
    c.setFont(CJK_FONT, 14)
    c.drawCentredString(width / 2, y, TITLES.get(document["kind"], str(document["kind"])))
    y -= 6 * mm
    c.setLineWidth(0.8)
    c.line(left, y, right, y)
    y -= 9 * mm

    label_w, size = 38 * mm, 11
    for label, value in _rows(document):
        c.setFont(CJK_FONT, size)
        c.drawString(left, y, label)
        for line in _wrap(value, CJK_FONT, size, right - left - label_w):
            c.drawString(left + label_w, y, line)
            y -= 6.5 * mm
    c.setFont(CJK_FONT, size)
    c.drawString(left, y, "状态")
    c.setFont(CJK_FONT, size + 1)
    c.drawString(left + label_w, y, f"{STATUS_TEXT.get(status, status)}（截至 {_ms_text(checkpoint_ms)} 的账本检查点）")
    y -= 9 * mm

    c.setFont(CJK_FONT, 9)
    c.drawString(left, y, "证照标识（GB/T 36904）")
    y -= 5 * mm
    id_size = min(8.5, (right - left) / max(1.0, pdfmetrics.stringWidth(license_id, MONO_FONT, 1.0)))
    c.setFont(MONO_FONT, id_size)
    c.drawString(left, y, license_id)
    y -= 6 * mm
    c.setFont(CJK_FONT, 9)
    c.drawString(left, y, "承诺值（SM3）")
    c.setFont(MONO_FONT, 8.5)
    c.drawString(left + label_w, y, commitment)
    y -= 5 * mm
    c.setFont(CJK_FONT, 9)
    c.drawString(left, y, "账本检查点")
    c.drawString(left + label_w, y, f"日志大小 {checkpoint_size}，{_ms_text(checkpoint_ms)}")
    y -= 8 * mm

    qr = segno.make(qr_payload, error="l" if len(qr_payload) > 1000 else "m", boost_error=False)
    side = min(y - 30 * mm, 110 * mm)
    modules = qr.symbol_size(border=QR_MARGIN_MODULES)[0]
    unit = side / modules
    x0, y0 = (width - side) / 2, y - side
    c.setFillColorRGB(0, 0, 0)
    for row, bits in enumerate(qr.matrix_iter(scale=1, border=QR_MARGIN_MODULES)):
        for col, bit in enumerate(bits):
            if bit:
                c.rect(x0 + col * unit, y0 + side - (row + 1) * unit, unit, unit, stroke=0, fill=1)
    y = y0 - 6 * mm
    c.setFont(CJK_FONT, 10)
    kind = "离线核验包" if qr_payload.startswith("LLB1:") else "证照引用（联网获取证明）"
    c.drawCentredString(width / 2, y, f"扫码核验：{kind}，二维码版本 {qr.version}")
    y -= 5 * mm
    c.setFont(MONO_FONT, 8)
    c.drawCentredString(width / 2, y, node_url)

    c.setFont(CJK_FONT, 8)
    note = "个人信息已按规定隐去。" if masked else "本凭证含个人信息，仅限持证人及有权机构使用。"
    c.drawString(left, 15 * mm, f"{note}打印时间 {_ms_text(printed_ms)}。核验以二维码中的证明为准。")
    c.showPage()
    c.save()
    return out.getvalue()
