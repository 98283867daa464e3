"""The strict DER reader/writer (X.690 §8, §10) and PEM armour (RFC 7468) behind SM2 keys and signatures."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core import der
from core.errors import FormatError, KeyFormatError


def reader(data: bytes) -> der.Reader:
    return der.Reader(data, "test", KeyFormatError)


@given(st.integers(-(2**300), 2**300))
def test_integer_round_trip_is_minimal(value: int) -> None:
    encoded = der.encode_integer(value)
    r = reader(encoded)
    assert r.read_integer("v") == value
    r.finish()


@given(st.lists(st.integers(0, 2**70), min_size=0, max_size=8), st.integers(0, 2), st.integers(0, 39))
def test_oid_round_trip(tail: list[int], first: int, second: int) -> None:
    dotted = ".".join(str(a) for a in [first, second, *tail])
    assert reader(der.encode_oid(dotted)).read_oid("oid") == dotted


@pytest.mark.parametrize("length", [0, 1, 127, 128, 255, 256, 65535, 65536])
def test_lengths_round_trip(length: int) -> None:
    encoded = der.encode_octet_string(bytes(length))
    r = reader(encoded)
    assert r.read_octet_string("o") == bytes(length)
    r.finish()


@pytest.mark.parametrize(
    ("blob", "expected"),
    [
        (b"\x02\x02\x00\x01", "non-minimal encoding"),
        (b"\x02\x02\xff\x80", "non-minimal encoding"),
        (b"\x02\x00", "empty contents"),
        (b"\x02\x80\x01\x00\x00", "indefinite length"),
        (b"\x02\x81\x01\x01", "non-minimal length (long form for 1)"),
        (b"\x02\x82\x00\x81" + bytes(129), "leading zero octet"),
        (b"\x02\x02\x01", "runs past the end"),
        (b"\x02", "truncated before the length octets"),
        (b"\x02\x82\x01", "truncated length octets"),
        (b"", "expected INTEGER, found end of input"),
        (b"\x04\x01\x00", "expected INTEGER, found OCTET STRING"),
    ],
)
def test_integer_errors(blob: bytes, expected: str) -> None:
    with pytest.raises(KeyFormatError) as info:
        reader(blob).read_integer("v")
    assert expected in str(info.value)
    assert "test:" in str(info.value) and "at byte" in str(info.value)


@pytest.mark.parametrize(
    ("blob", "expected"),
    [
        (b"\x06\x00", "empty contents"),
        (b"\x06\x02\x2a\x86", "truncated sub-identifier"),
        (b"\x06\x03\x2a\x80\x01", "leading 0x80"),
    ],
)
def test_oid_errors(blob: bytes, expected: str) -> None:
    with pytest.raises(KeyFormatError, match=expected):
        reader(blob).read_oid("oid")


def test_bit_string_and_null_and_trailing() -> None:
    with pytest.raises(KeyFormatError, match="3 unused bits"):
        reader(b"\x03\x02\x03\xf8").read_bit_string("b")
    with pytest.raises(KeyFormatError, match="missing the unused-bits octet"):
        reader(b"\x03\x00").read_bit_string("b")
    reader(b"\x05\x00").read_null("n")
    with pytest.raises(KeyFormatError, match="non-empty"):
        reader(b"\x05\x01\x00").read_null("n")
    r = reader(b"\x05\x00\x05\x00")
    r.read_null("n")
    with pytest.raises(KeyFormatError, match="2 trailing bytes"):
        r.finish()


def test_nested_offsets_are_absolute() -> None:
    blob = der.encode_sequence(der.encode_integer(1), der.encode_tlv(der.INTEGER, b"\x00\x01"))
    seq = reader(blob).read_sequence("outer")
    seq.read_integer("a")
    with pytest.raises(KeyFormatError, match=r"at byte 7"):
        seq.read_integer("b")


def test_context_tags() -> None:
    assert der.context_tag(0) == 0xA0 and der.context_tag(1, constructed=False) == 0x81
    inner = reader(der.encode_explicit(1, der.encode_integer(7))).read_explicit(1, "x")
    assert inner.read_integer("i") == 7
    with pytest.raises(ValueError):
        der.context_tag(31)
    with pytest.raises(ValueError):
        der.encode_oid("3.1")


def test_pem_round_trip_and_surrounding_text() -> None:
    body = bytes(range(200))
    pem = der.pem_encode("TEST BLOCK", body)
    assert all(len(line) <= 64 for line in pem.splitlines())
    assert der.pem_blocks(b"Bag Attributes: x\n" + pem + b"trailer\n") == [("TEST BLOCK", body)]
    crlf = pem.replace(b"\n", b"\r\n")
    assert der.pem_blocks(crlf) == [("TEST BLOCK", body)]


def test_pem_errors() -> None:
    with pytest.raises(FormatError, match="closed by END"):
        der.pem_blocks(b"-----BEGIN A-----\nAA==\n-----END B-----\n")
    with pytest.raises(FormatError, match="headers or non-base64"):
        der.pem_blocks(b"-----BEGIN A-----\nProc-Type: 4,ENCRYPTED\nAA==\n-----END A-----\n")
    with pytest.raises(FormatError, match="unterminated"):
        der.pem_blocks(b"-----BEGIN A-----\nAA==\n")


@given(st.binary(max_size=64))
def test_random_input_only_raises_format_errors(blob: bytes) -> None:
    r = reader(blob)
    try:
        while not r.at_end:
            tag = r.peek_tag()
            assert tag is not None
            r.read_tlv("v")
    except KeyFormatError:
        pass
