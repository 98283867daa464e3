"""Base45 (RFC 9285): bytes as text in the QR code alphanumeric character set.

QR codes store the 45 characters ``0-9 A-Z space $ % * + - . / :`` in *alphanumeric mode* at 5.5 bits each, so
base45 text (3 characters per 2 bytes) costs about 8.25 bits per byte in a QR code: nearly as compact as byte
mode, and it survives scanners that mangle binary. The EU Digital COVID Certificate (``HC1:`` + base45 of zlib)
made this the usual way to put a compressed document in a QR code; licledger's vouchers do the same.

Rules (RFC 9285 §4): every 2 bytes ``[a, b]`` become ``n = a * 256 + b = c + 45 * d + 45^2 * e`` written as the
three characters ``c d e``; a final single byte ``a = c + 45 * d`` becomes ``c d``. Decoding refuses characters
outside the alphabet, a length of ``3k + 1`` and triplets or pairs above 65535 / 255 (§4.3: such strings are
invalid, so every byte string has exactly one encoding).
"""

from __future__ import annotations

from core.errors import FormatError

__all__ = ["ALPHABET", "Base45Error", "b45decode", "b45encode"]

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"
_VALUE = {ch: i for i, ch in enumerate(ALPHABET)}


class Base45Error(FormatError):
    """Text that is not the base45 encoding of any byte string (RFC 9285 §4.3)."""


def b45encode(data: bytes) -> str:
    """The base45 text of ``data`` (RFC 9285 §4)."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError(f"b45encode() takes bytes, not {type(data).__name__}")
    raw = bytes(data)
    out: list[str] = []
    for i in range(0, len(raw) - 1, 2):
        n = raw[i] * 256 + raw[i + 1]
        n, c = divmod(n, 45)
        e, d = divmod(n, 45)
        out.append(ALPHABET[c] + ALPHABET[d] + ALPHABET[e])
    if len(raw) % 2:
        d, c = divmod(raw[-1], 45)
        out.append(ALPHABET[c] + ALPHABET[d])
    return "".join(out)


def b45decode(text: str) -> bytes:
    """The bytes whose base45 encoding is ``text``; :class:`Base45Error` for anything else."""
    if not isinstance(text, str):
        raise TypeError(f"b45decode() takes str, not {type(text).__name__}")
    if len(text) % 3 == 1:
        raise Base45Error(f"base45 text of {len(text)} characters: a length of 3k + 1 is not valid")
    try:
        values = [_VALUE[ch] for ch in text]
    except KeyError as exc:
        raise Base45Error(f"character {exc.args[0]!r} is not in the base45 alphabet") from None
    out = bytearray()
    for i in range(0, len(values) - 2, 3):
        n = values[i] + 45 * values[i + 1] + 2025 * values[i + 2]
        if n > 0xFFFF:
            raise Base45Error(f"base45 triplet at offset {i} encodes {n}, above 65535")
        out += n.to_bytes(2, "big")
    if len(values) % 3 == 2:
        n = values[-2] + 45 * values[-1]
        if n > 0xFF:
            raise Base45Error(f"final base45 pair encodes {n}, above 255")
        out.append(n)
    return bytes(out)
