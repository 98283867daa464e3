"""Reading a voucher's QR code (ISO/IEC 18004) from a photo or scan: image bytes in, the payload text out.

The voucher's QR code carries :meth:`core.bundle.ProofBundle.to_qr_payload` (``LLB1:`` a whole bundle, ``LLR1:``
a reference); :func:`core.bundle.from_qr_payload` parses it. This module only finds and decodes the symbol, with
zxing-cpp (``zxingcpp``) on an image opened by Pillow; it trusts nothing it reads.

Rules:

1. The image is untrusted input: at most :data:`MAX_IMAGE_BYTES` bytes and :data:`MAX_PIXELS` pixels (checked
   from the header before decoding, so a decompression bomb is refused unread), PNG, JPEG, WebP, GIF or BMP.
2. Exactly the QR symbols whose text starts with a licledger prefix count; a photo with no such symbol, or with
   two different ones, is refused (:class:`QrImageError`), never guessed at.
3. A photo is read as taken first; only if that finds no licledger symbol is it read again through
   :data:`_RETRIES` (a 3x3 median filter against sensor speckle, then the global-histogram binarizer), stopping at
   the first reading that finds one. A retry only changes how pixels are binarized, never what a symbol decodes
   to: every symbol still passes the decoder's Reed-Solomon check (ISO/IEC 18004 clause 7.5), so a retry cannot
   produce a payload the photo does not hold.
"""

from __future__ import annotations

import io
import warnings

import zxingcpp
from PIL import Image, ImageFilter, UnidentifiedImageError

from core.bundle import OFFLINE_QR_PREFIX, REFERENCE_QR_PREFIX
from core.errors import FormatError

__all__ = ["MAX_IMAGE_BYTES", "MAX_PIXELS", "QrImageError", "decode_qr_image"]

MAX_IMAGE_BYTES = 16 * 1024 * 1024
MAX_PIXELS = 40_000_000
"""A 40-megapixel photo is larger than phone cameras take; anything bigger is refused before decoding."""
FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP")
_PREFIXES = (OFFLINE_QR_PREFIX, REFERENCE_QR_PREFIX)
_QR = zxingcpp.BarcodeFormats(zxingcpp.BarcodeFormat.QRCode)
_RETRIES = (
    ("median", zxingcpp.Binarizer.LocalAverage),
    ("plain", zxingcpp.Binarizer.GlobalHistogram),
)
"""Rule 3: the readings tried after the photo as taken: (image preparation, zxing-cpp binarizer)."""


class QrImageError(FormatError):
    """The image is not readable, or holds no (or more than one) licledger QR code."""


def decode_qr_image(data: bytes) -> str:
    """The licledger payload of the QR code in the image ``data`` (rules 1-2); :class:`QrImageError` otherwise."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError(f"decode_qr_image() takes bytes, not {type(data).__name__}")
    if len(data) == 0:
        raise QrImageError("the image is empty")
    if len(data) > MAX_IMAGE_BYTES:
        raise QrImageError(f"the image is {len(data)} bytes, more than {MAX_IMAGE_BYTES}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(bytes(data)), formats=FORMATS)
            width, height = image.size
            if width * height > MAX_PIXELS:
                raise QrImageError(f"the image is {width}x{height} pixels, more than {MAX_PIXELS}")
            image.load()
            gray = image.convert("L")
    except QrImageError:
        raise
    except UnidentifiedImageError:
        raise QrImageError("not a PNG, JPEG, WebP, GIF or BMP image") from None
    except (OSError, ValueError, Image.DecompressionBombError, Warning) as exc:
        raise QrImageError(f"the image cannot be read: {type(exc).__name__}") from None
    found = zxingcpp.read_barcodes(gray, formats=_QR)
    texts = {b.text for b in found if b.valid and b.text.startswith(_PREFIXES)}
    any_code = bool(found)
    for preparation, binarizer in _RETRIES:
        if texts:
            break
        prepared = gray.filter(ImageFilter.MedianFilter(3)) if preparation == "median" else gray
        found = zxingcpp.read_barcodes(prepared, formats=_QR, binarizer=binarizer)
        texts = {b.text for b in found if b.valid and b.text.startswith(_PREFIXES)}
        any_code = any_code or bool(found)
    if not texts:
        others = "a QR code of something else" if any_code else "no QR code"
        raise QrImageError(f"found {others} in the image; hold the voucher's code flat, sharp and well lit")
    if len(texts) > 1:
        raise QrImageError(f"the image holds {len(texts)} different licledger QR codes; photograph one")
    return texts.pop()
