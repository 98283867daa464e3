"""SM3 (GM/T 0004-2012 / GB/T 32905-2016) through core.hashing: the standard's example vectors."""

from __future__ import annotations

import hashlib

import pytest

from core.hashing import SM3, by_name, sm3

# GM/T 0004-2012 Appendix A, examples 1 and 2.
ABC_DIGEST = "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"
ABCD16_DIGEST = "debe9ff92275b8a138604889c18e5a4d6fdb70e5387e5765293dcba39c0c5732"


def test_gmt0004_example_1_abc() -> None:
    assert sm3(b"abc").hex() == ABC_DIGEST


def test_gmt0004_example_2_512_bit_message() -> None:
    message = b"abcd" * 16
    assert len(message) == 64
    assert sm3(message).hex() == ABCD16_DIGEST


def test_hash_function_object() -> None:
    assert SM3(b"abc").hex() == ABC_DIGEST
    assert SM3.digest_size == 32 == len(sm3(b""))
    assert by_name("sm3") is SM3


@pytest.mark.parametrize("size", [0, 1, 55, 56, 63, 64, 65, 1000])
def test_padding_boundaries_match_openssl_sm3(size: int) -> None:
    """Lengths around the 448-bit padding boundary, against OpenSSL's SM3 when Python's hashlib has it."""
    if "sm3" not in hashlib.algorithms_available:
        pytest.skip("hashlib has no SM3 in this OpenSSL build")
    message = bytes(range(256)) * 4
    assert sm3(message[:size]) == hashlib.new("sm3", message[:size]).digest()
