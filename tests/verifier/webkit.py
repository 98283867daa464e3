"""Helpers for the ``/verify`` web page tests, shared by the node's page (test_verify_service) and the standalone
service's (test_online_crossnode): Debian's headless Chromium driven by Playwright, uploads, a tampered bundle and a
photo of a printed voucher."""

from __future__ import annotations

import contextlib
import io
import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pypdfium2 as pdfium  # type: ignore[import-untyped]
import pytest
from onlinekit import call
from PIL import Image, ImageFilter

__all__ = ["CHROMIUM", "CHROMIUM_ARGS", "chromium", "photo_of_voucher", "tampered", "upload"]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@contextlib.contextmanager
def chromium() -> Iterator[Any]:
    """Debian's Chromium launched headless by Playwright (never a downloaded browser); skips the test, saying why,
    when either is missing. For a module-scoped ``browser`` fixture."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"Debian's chromium is not installed at {CHROMIUM} (apt-get install -y chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


def upload(page: Any, url: str, name: str, data: bytes, mime: str) -> Any:
    """Open ``url``/verify, upload ``data`` as the file ``name`` and wait for the verdict; the banner's locator."""
    page.goto(url + "/verify")
    page.set_input_files("#file", files=[{"name": name, "mimeType": mime, "buffer": data}])
    page.wait_for_selector("#result:not([hidden])", timeout=20_000)
    return page.locator("#banner")


def tampered(bundle: bytes) -> bytes:
    """The bundle with one hash of the leaf's inclusion proof changed (step 4 must fail)."""
    value = json.loads(bundle)
    proof = value["leaf"]["inclusion_proof"]
    proof[0] = ("f" if proof[0][0] != "f" else "0") + proof[0][1:]
    return json.dumps(value).encode()


def photo_of_voucher(node_url: str, license_id: str) -> bytes:
    """A JPEG "photo" of the node's printed public voucher: rendered, tilted 3°, blurred and speckled."""
    status, pdf = call(f"{node_url}/v1/licenses/{license_id}/voucher.pdf?view=public")
    assert status == 200
    page = pdfium.PdfDocument(pdf)[0].render(scale=2).to_pil().convert("RGB")
    im = page.rotate(-3, expand=True, fillcolor=(210, 205, 198), resample=Image.Resampling.BICUBIC)
    im = im.filter(ImageFilter.GaussianBlur(0.5))
    rnd = random.Random(3)
    px = im.load()
    assert px is not None
    for _ in range(4000):
        x, y, v = rnd.randrange(im.width), rnd.randrange(im.height), rnd.randrange(256)
        px[x, y] = (v, v, v)
    out = io.BytesIO()
    im.save(out, "JPEG", quality=85)
    return out.getvalue()
