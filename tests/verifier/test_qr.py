"""Voucher QR codes from photos (verifier.qr) and ``licledger verify --qr`` offline, on the verifier test ledger:
QR codes drawn by segno from ``ProofBundle.to_qr_payload``, photographed-like (scaled, rotated, blurred, speckled,
JPEG); images that must be refused (not an image, a decompression bomb, no code, a code of something else, two
different licledger codes); the verifier's state file refusing another network's or a corrupt state."""

from __future__ import annotations

import io
import json
import random
from pathlib import Path

import pytest
import segno
import zxingcpp
from click.testing import CliRunner
from PIL import Image, ImageFilter
from verifykit import scenario

from core.bundle import public_view
from node.cli import cli
from verifier.online import VerifierState
from verifier.qr import MAX_PIXELS, QrImageError, decode_qr_image
from verifier.trust import TrustRootError


def qr_image(payload: str, scale: int = 6) -> Image.Image:
    out = io.BytesIO()
    segno.make_qr(payload, error="m").save(out, kind="png", scale=scale, border=4)
    return Image.open(io.BytesIO(out.getvalue()))


def photographed(image: Image.Image, *, angle: float = 5.0, size: float = 1.3, seed: int = 1) -> bytes:
    """Scaled, slightly rotated, blurred and speckled, saved as JPEG: a phone photo of a printed code."""
    im = image.convert("RGB")
    im = im.resize((int(im.width * size), int(im.height * size)), Image.Resampling.BILINEAR)
    im = im.rotate(angle, expand=True, fillcolor=(214, 210, 200), resample=Image.Resampling.BICUBIC)
    im = im.filter(ImageFilter.GaussianBlur(0.7))
    rnd = random.Random(seed)
    px = im.load()
    assert px is not None
    for _ in range(im.width * im.height // 200):
        x, y, v = rnd.randrange(im.width), rnd.randrange(im.height), rnd.randrange(256)
        px[x, y] = (v, v, v)
    out = io.BytesIO()
    im.save(out, "JPEG", quality=80)
    return out.getvalue()


@pytest.fixture(scope="module")
def payload() -> str:
    s = scenario()
    text = public_view(s.world.bundle(s.active, s.seq)).to_qr_payload(offline=True)
    assert text.startswith("LLB1:")
    return text


@pytest.mark.parametrize(
    ("angle", "size"), [(0.0, 1.0), (5.0, 1.3), (-8.0, 0.9), (90.0, 1.1), (12.0, 0.7), (3.0, 0.65)]
)
def test_photographed_offline_qr_code_decodes_to_the_exact_payload(payload: str, angle: float, size: float) -> None:
    assert decode_qr_image(photographed(qr_image(payload), angle=angle, size=size)) == payload


@pytest.mark.parametrize(("angle", "size"), [(3.0, 0.65)])
def test_a_speckled_photo_the_plain_reading_misses_is_read_by_a_retry(angle: float, size: float) -> None:
    """Rule 3. A fixed payload as long as an offline bundle, so the photo is the same in every run: zxing-cpp alone
    finds nothing in it (the precondition, checked), decode_qr_image's median-filtered retry reads it exactly."""
    rnd = random.Random(7)
    text = "LLB1:" + "".join(rnd.choice("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:") for _ in range(2543))
    photo = photographed(qr_image(text), angle=angle, size=size)
    plain = zxingcpp.read_barcodes(Image.open(io.BytesIO(photo)).convert("L"), formats=zxingcpp.BarcodeFormat.QRCode)
    assert [b.text for b in plain if b.valid] == []
    assert decode_qr_image(photo) == text


def test_verify_qr_offline_from_a_photo(payload: str, tmp_path: Path) -> None:
    s = scenario()
    trust = tmp_path / "trust.json"
    trust.write_bytes(s.world.trust_root().to_json())
    photo = tmp_path / "voucher.jpg"
    photo.write_bytes(photographed(qr_image(payload)))
    at = str(s.checkpoint_ms + 60_000)
    result = CliRunner().invoke(cli, ["verify", "--qr", str(photo), "--trust-root", str(trust), "--at", at, "--json"])
    assert result.exit_code == 0, result.output
    verdict = json.loads(result.stdout)
    assert verdict["result"] == "VALID" and verdict["facts"]["license_id"] == str(s.active.license_id)


def test_verify_qr_of_a_revoked_license_exits_1(tmp_path: Path) -> None:
    s = scenario()
    trust = tmp_path / "trust.json"
    trust.write_bytes(s.world.trust_root().to_json())
    photo = tmp_path / "revoked.png"
    qr_image(public_view(s.world.bundle(s.revoked, s.seq)).to_qr_payload(offline=True)).save(photo)
    at = str(s.checkpoint_ms + 60_000)
    result = CliRunner().invoke(cli, ["verify", "--qr", str(photo), "--trust-root", str(trust), "--at", at])
    assert result.exit_code == 1 and result.stdout.startswith("REVOKED"), result.output


def _png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def test_images_without_one_licledger_code_are_refused(payload: str) -> None:
    blank = Image.new("L", (300, 300), 255)
    two = Image.new("RGB", (1400, 700), "white")
    s = scenario()
    other = public_view(s.world.bundle(s.revoked, s.seq)).to_qr_payload(offline=True)
    two.paste(qr_image(payload, 3).convert("RGB"), (20, 20))
    two.paste(qr_image(other, 3).convert("RGB"), (720, 20))
    cases = [
        (b"%PDF-1.7 not an image", "not a PNG"),
        (b"", "empty"),
        (_png(qr_image(payload))[:200], "cannot be read"),
        (_png(blank), "no QR code"),
        (_png(qr_image("https://example.org/not-a-license")), "something else"),
        (_png(two), "2 different licledger QR codes"),
    ]
    for data, why in cases:
        with pytest.raises(QrImageError, match=why):
            decode_qr_image(data)


def test_decompression_bomb_is_refused_before_decoding() -> None:
    side = int(MAX_PIXELS**0.5) + 100
    out = io.BytesIO()
    Image.new("1", (side, side), 1).save(out, "PNG")  # a few KB on disk, 40+ megapixels decoded
    assert len(out.getvalue()) < 200_000
    with pytest.raises(QrImageError, match=r"more than 40000000"):
        decode_qr_image(out.getvalue())


def test_cli_says_why_a_photo_cannot_be_read_and_exits_2(tmp_path: Path) -> None:
    s = scenario()
    trust = tmp_path / "trust.json"
    trust.write_bytes(s.world.trust_root().to_json())
    blank = tmp_path / "blank.png"
    Image.new("L", (200, 200), 255).save(blank)
    result = CliRunner().invoke(cli, ["verify", "--qr", str(blank), "--trust-root", str(trust)])
    assert result.exit_code == 2 and "no QR code" in result.output


def test_state_file_of_another_network_or_corrupt_is_refused(tmp_path: Path) -> None:
    s = scenario()
    state = tmp_path / "state.json"
    VerifierState(s.world.trust_root(), None).save(state)
    assert VerifierState.load(state, network_id=s.world.nid).trust_root.network_id == s.world.nid
    with pytest.raises(TrustRootError):
        VerifierState.load(state, network_id="ab" * 32)
    state.write_bytes(s.world.trust_root().to_json())  # a trust-root file, not a state file
    with pytest.raises(TrustRootError):
        VerifierState.load(state)
    trust = tmp_path / "trust.json"
    trust.write_bytes(s.world.trust_root().to_json())
    args = ["--id", str(s.active.license_id), "--node", "http://127.0.0.1:9", "--state", str(state)]
    result = CliRunner().invoke(cli, ["verify", *args, "--trust-root", str(trust)])
    assert result.exit_code == 2 and "unusable verifier state" in result.output
