"""A small strict ASN.1 DER codec (ITU-T X.690 §8, §10) and PEM armour (RFC 7468) for SM2 keys and signatures.

Only what licledger needs: single-byte tags, definite lengths, INTEGER, BIT STRING, OCTET STRING, OBJECT
IDENTIFIER, NULL, SEQUENCE and context-specific tags. The reader refuses everything DER forbids, so that a
value has exactly one encoding and a signature over it cannot be re-encoded into a second valid form:

* indefinite lengths (``0x80``), lengths in long form that fit the short form, leading zero length octets;
* lengths running past the end of the input, and trailing bytes after the outermost value;
* high-tag-number form tags (tag number 31);
* INTEGERs with a redundant leading ``0x00`` / ``0xFF`` octet, empty INTEGERs;
* BIT STRINGs with unused bits where whole octets are expected;
* OBJECT IDENTIFIER sub-identifiers with a leading ``0x80`` octet, or truncated.

Every error is raised as the caller's :class:`~core.errors.FormatError` subclass (``KeyFormatError`` for keys,
``SignatureFormatError`` for signatures) with a message naming the field and the byte offset.
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Callable

from core.errors import FormatError

INTEGER = 0x02
BIT_STRING = 0x03
OCTET_STRING = 0x04
NULL = 0x05
OBJECT_IDENTIFIER = 0x06
SEQUENCE = 0x30

_TAG_NAMES = {
    INTEGER: "INTEGER",
    BIT_STRING: "BIT STRING",
    OCTET_STRING: "OCTET STRING",
    NULL: "NULL",
    OBJECT_IDENTIFIER: "OBJECT IDENTIFIER",
    SEQUENCE: "SEQUENCE",
}
_MAX_LENGTH_OCTETS = 4


def context_tag(number: int, *, constructed: bool = True) -> int:
    """The tag octet of ``[number]`` (context-specific class); EXPLICIT tags are constructed."""
    if not 0 <= number < 31:
        raise ValueError("context tag number must be in 0..30")
    return 0x80 | (0x20 if constructed else 0) | number


def tag_name(tag: int) -> str:
    if tag in _TAG_NAMES:
        return _TAG_NAMES[tag]
    if tag & 0xC0 == 0x80:
        return f"[{tag & 0x1F}]"
    return f"tag 0x{tag:02x}"


# --- reading ---------------------------------------------------------------------------------------------


class Reader:
    """Reads consecutive DER values from ``data``; ``what`` names the structure in error messages."""

    def __init__(self, data: bytes, what: str, error: type[FormatError] = FormatError, base: int = 0) -> None:
        self._data = bytes(data)
        self._pos = 0
        self._what = what
        self._error = error
        self._base = base

    def fail(self, message: str, at: int | None = None) -> FormatError:
        """An error of the reader's class, for the caller to raise."""
        offset = self._base + (self._pos if at is None else at)
        return self._error(f"{self._what}: {message} (at byte {offset})")

    @property
    def at_end(self) -> bool:
        return self._pos >= len(self._data)

    def peek_tag(self) -> int | None:
        return None if self.at_end else self._data[self._pos]

    def read_tlv(self, name: str) -> tuple[int, bytes, int]:
        """Read one value: returns ``(tag, contents, absolute offset of contents)``."""
        data, start = self._data, self._pos
        if start >= len(data):
            raise self.fail(f"{name}: expected a value, found end of input")
        tag = data[start]
        if tag & 0x1F == 0x1F:
            raise self.fail(f"{name}: high-tag-number form is not supported", start)
        if start + 1 >= len(data):
            raise self.fail(f"{name}: truncated before the length octets", start)
        first = data[start + 1]
        pos = start + 2
        if first < 0x80:
            length = first
        elif first == 0x80:
            raise self.fail(f"{name}: indefinite length is not allowed in DER", start + 1)
        else:
            count = first & 0x7F
            if count > _MAX_LENGTH_OCTETS:
                raise self.fail(f"{name}: length of {count} octets is too large", start + 1)
            if pos + count > len(data):
                raise self.fail(f"{name}: truncated length octets", start + 1)
            octets = data[pos : pos + count]
            if octets[0] == 0:
                raise self.fail(f"{name}: non-minimal length (leading zero octet)", start + 1)
            length = int.from_bytes(octets, "big")
            if length < 0x80:
                raise self.fail(f"{name}: non-minimal length (long form for {length})", start + 1)
            pos += count
        if pos + length > len(data):
            raise self.fail(
                f"{name}: length {length} runs past the end of the input ({len(data) - pos} bytes left)",
                start,
            )
        self._pos = pos + length
        return tag, data[pos : pos + length], self._base + pos

    def read(self, tag: int, name: str) -> tuple[bytes, int]:
        """Read one value that must have ``tag``; returns ``(contents, absolute offset of contents)``."""
        found = self.peek_tag()
        if found != tag:
            got = "end of input" if found is None else tag_name(found)
            raise self.fail(f"{name}: expected {tag_name(tag)}, found {got}")
        _, contents, offset = self.read_tlv(name)
        return contents, offset

    def read_sequence(self, name: str) -> Reader:
        contents, offset = self.read(SEQUENCE, name)
        return Reader(contents, f"{self._what} {name}", self._error, offset)

    def read_explicit(self, number: int, name: str) -> Reader:
        contents, offset = self.read(context_tag(number), name)
        return Reader(contents, f"{self._what} {name}", self._error, offset)

    def read_integer(self, name: str) -> int:
        contents, offset = self.read(INTEGER, name)
        if not contents:
            raise self.fail(f"INTEGER {name}: empty contents", offset - self._base)
        if len(contents) > 1 and (
            (contents[0] == 0x00 and contents[1] < 0x80) or (contents[0] == 0xFF and contents[1] >= 0x80)
        ):
            raise self.fail(f"INTEGER {name}: non-minimal encoding (redundant leading octet)", offset - self._base)
        return int.from_bytes(contents, "big", signed=True)

    def read_octet_string(self, name: str) -> bytes:
        return self.read(OCTET_STRING, name)[0]

    def read_bit_string(self, name: str) -> bytes:
        """A BIT STRING holding whole octets (unused-bits octet 0), as for public keys."""
        contents, offset = self.read(BIT_STRING, name)
        if not contents:
            raise self.fail(f"BIT STRING {name}: missing the unused-bits octet", offset - self._base)
        if contents[0] != 0:
            raise self.fail(f"BIT STRING {name}: {contents[0]} unused bits, expected 0", offset - self._base)
        return contents[1:]

    def read_oid(self, name: str) -> str:
        contents, offset = self.read(OBJECT_IDENTIFIER, name)
        return decode_oid(contents, lambda msg: self.fail(f"OBJECT IDENTIFIER {name}: {msg}", offset - self._base))

    def read_null(self, name: str) -> None:
        contents, offset = self.read(NULL, name)
        if contents:
            raise self.fail(f"NULL {name}: non-empty contents", offset - self._base)

    def finish(self) -> None:
        """Refuse trailing bytes after the last expected value."""
        if not self.at_end:
            raise self.fail(f"{len(self._data) - self._pos} trailing bytes after the last field")


def decode_oid(contents: bytes, fail: Callable[[str], FormatError]) -> str:
    """Dotted form of an OBJECT IDENTIFIER's contents (X.690 §8.19); ``fail`` builds the error to raise."""
    if not contents:
        raise fail("empty contents")
    if contents[-1] & 0x80:
        raise fail("truncated sub-identifier")
    arcs: list[int] = []
    value = 0
    fresh = True
    for octet in contents:
        if fresh and octet == 0x80:
            raise fail("sub-identifier with a leading 0x80 octet")
        value = (value << 7) | (octet & 0x7F)
        fresh = not octet & 0x80
        if fresh:
            arcs.append(value)
            value = 0
    first = arcs[0]
    head = [0, first] if first < 40 else [1, first - 40] if first < 80 else [2, first - 80]
    return ".".join(str(a) for a in head + arcs[1:])


# --- writing ---------------------------------------------------------------------------------------------


def encode_length(length: int) -> bytes:
    if length < 0x80:
        return bytes([length])
    octets = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(octets)]) + octets


def encode_tlv(tag: int, contents: bytes) -> bytes:
    return bytes([tag]) + encode_length(len(contents)) + contents


def encode_integer(value: int) -> bytes:
    # Minimal two's complement (X.690 §8.3.2): a negative value needs as many octets as its complement ~value.
    length = (value if value >= 0 else ~value).bit_length() // 8 + 1
    return encode_tlv(INTEGER, value.to_bytes(length, "big", signed=True))


def encode_sequence(*parts: bytes) -> bytes:
    return encode_tlv(SEQUENCE, b"".join(parts))


def encode_octet_string(value: bytes) -> bytes:
    return encode_tlv(OCTET_STRING, value)


def encode_bit_string(value: bytes) -> bytes:
    return encode_tlv(BIT_STRING, b"\x00" + value)


def encode_explicit(number: int, inner: bytes) -> bytes:
    return encode_tlv(context_tag(number), inner)


def encode_oid(dotted: str) -> bytes:
    arcs = [int(a) for a in dotted.split(".")]
    if len(arcs) < 2 or arcs[0] > 2 or (arcs[0] < 2 and arcs[1] >= 40) or min(arcs) < 0:
        raise ValueError(f"invalid OBJECT IDENTIFIER {dotted!r}")
    out = bytearray()
    for arc in [40 * arcs[0] + arcs[1], *arcs[2:]]:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        out += bytes(reversed(chunk))
    return encode_tlv(OBJECT_IDENTIFIER, bytes(out))


# --- PEM (RFC 7468) ---------------------------------------------------------------------------------------

_PEM_BLOCK = re.compile(
    rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n(.*?)-----END ([A-Z0-9 ]+)-----",
    re.DOTALL,
)
_BASE64_BODY = re.compile(rb"[A-Za-z0-9+/=\s]*")


def pem_blocks(data: bytes | str, error: type[FormatError] = FormatError) -> list[tuple[str, bytes]]:
    """Every ``(label, DER bytes)`` block in ``data``; text outside the blocks is ignored (RFC 7468 §2)."""
    raw = data.encode("ascii", errors="replace") if isinstance(data, str) else bytes(data)
    blocks: list[tuple[str, bytes]] = []
    for match in _PEM_BLOCK.finditer(raw):
        label, body, end_label = match.group(1), match.group(2), match.group(3)
        if label != end_label:
            raise error(f"PEM: BEGIN {label.decode()} closed by END {end_label.decode()}")
        if not _BASE64_BODY.fullmatch(body):
            raise error(f"PEM {label.decode()}: headers or non-base64 characters in the body are not supported")
        compact = b"".join(body.split())
        try:
            der = binascii.a2b_base64(compact, strict_mode=True)
        except binascii.Error as exc:
            raise error(f"PEM {label.decode()}: invalid base64 ({exc})") from None
        blocks.append((label.decode("ascii"), der))
    if not blocks and b"-----BEGIN" in raw:
        raise error("PEM: unterminated or malformed BEGIN/END lines")
    return blocks


def pem_encode(label: str, der: bytes) -> bytes:
    """RFC 7468 strict form: base64 in 64-character lines, LF line endings."""
    b64 = binascii.b2a_base64(der, newline=False)
    lines = [b64[i : i + 64] for i in range(0, len(b64), 64)]
    return b"".join(
        [
            f"-----BEGIN {label}-----\n".encode(),
            *(line + b"\n" for line in lines),
            f"-----END {label}-----\n".encode(),
        ]
    )
