"""Salted SM3 commitments to license documents and the RFC 9162 leaf records that anchor them."""

from __future__ import annotations

import json

import pytest

from core import canonical, merkle
from core.codes import LicenseId
from core.commitment import (
    COMMITMENT_SIZE,
    LEAF_TYPE,
    SALT_SIZE,
    CommitmentFormatError,
    CommitmentMismatchError,
    commitment,
    leaf_data,
    license_leaf_hash,
    new_salt,
    verify_commitment,
)
from core.errors import FormatError, VerificationError
from core.hashing import SHA256, sm3
from core.licenses import canonical_bytes, parse_document
from core.synth import generate

SALT = bytes(range(32))


def document() -> bytes:
    return canonical_bytes(parse_document(next(generate("physician", 1, "440000", 3))))


def test_commitment_is_sm3_of_salt_then_document() -> None:
    doc = document()
    value = commitment(doc, SALT)
    assert value == sm3(SALT + doc)
    assert len(value) == COMMITMENT_SIZE


def test_sm3_known_answer_under_the_commitment() -> None:
    # GM/T 0004-2012 appendix A.1: SM3("abc").
    assert sm3(b"abc").hex() == "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"


def test_verify_commitment_accepts_the_opening() -> None:
    doc = document()
    verify_commitment(doc, SALT, commitment(doc, SALT))


def test_altered_document_is_a_mismatch_with_evidence() -> None:
    doc = document()
    expected = commitment(doc, SALT)
    altered = bytearray(doc)
    altered[len(altered) // 2] ^= 0x01
    with pytest.raises(CommitmentMismatchError) as info:
        verify_commitment(bytes(altered), SALT, expected)
    assert isinstance(info.value, VerificationError)
    assert info.value.expected == expected
    assert info.value.calculated == commitment(bytes(altered), SALT)
    assert expected.hex() in str(info.value)


def test_wrong_salt_is_a_mismatch() -> None:
    doc = document()
    with pytest.raises(CommitmentMismatchError):
        verify_commitment(doc, bytes(32), commitment(doc, SALT))


@pytest.mark.parametrize(("salt", "value"), [(bytes(31), bytes(32)), (bytes(32), bytes(31)), ("x" * 32, bytes(32))])
def test_malformed_openings_are_format_errors(salt: object, value: bytes) -> None:
    with pytest.raises(CommitmentFormatError) as info:
        verify_commitment(document(), salt, value)  # type: ignore[arg-type]
    assert isinstance(info.value, FormatError)


def test_commitment_misuse() -> None:
    with pytest.raises(ValueError):
        commitment(b"{}", bytes(16))
    with pytest.raises(TypeError):
        commitment("{}", SALT)  # type: ignore[arg-type]


def test_new_salt() -> None:
    salts = {new_salt() for _ in range(16)}
    assert len(salts) == 16
    assert all(len(s) == SALT_SIZE for s in salts)


def test_leaf_data_is_canonical_and_carries_no_personal_data() -> None:
    raw = next(generate("physician", 1, "440000", 3))
    license = parse_document(raw)
    value = commitment(canonical_bytes(license), SALT)
    leaf = leaf_data(license.license_id, license.version, value)
    assert (
        leaf
        == (
            '{"commitment":"' + value.hex() + '","license":"' + license.license_id.base + '",'
            '"type":"licledger.license-version","version":' + str(license.version) + "}"
        ).encode()
    )
    record = json.loads(leaf)
    assert set(record) == {"commitment", "license", "type", "version"}
    for secret in (raw["holder"]["citizen_id"], raw["holder"]["name"]):
        assert secret.encode() not in leaf


def test_leaf_data_accepts_the_identifier_as_object_full_string_or_base() -> None:
    license_id = LicenseId.parse("1.2.156.3005.2.11100000000013338W032.11220000013544541J.2430599.001.F")
    value = bytes(32)
    expected = leaf_data(license_id, 1, value)
    assert leaf_data(str(license_id), 1, value) == expected
    assert leaf_data(license_id.base, 1, value) == expected
    assert leaf_data(license_id.base, 2, value) == leaf_data(license_id.next_version(), 2, value)
    assert leaf_data(license_id.base, 2, value) != expected


@pytest.mark.parametrize(
    ("license_id", "version", "value"),
    [
        ("1.2.156.3005.2.11100000000013338W032.11220000013544541J.2430599.001.F", 2, bytes(32)),
        ("1.2.156.3005.2.11100000000013338W032.11220000013544541J", 1, bytes(32)),
        ("1.2.156.3005.2.11100000000013338W032.11220000013544541J.2430599", 0, bytes(32)),
        ("1.2.156.3005.2.11100000000013338W032.11220000013544541J.2430599", 1, bytes(31)),
    ],
)
def test_leaf_data_misuse(license_id: str, version: int, value: bytes) -> None:
    with pytest.raises(ValueError):
        leaf_data(license_id, version, value)


def test_license_leaf_hash_is_the_rfc9162_leaf_hash() -> None:
    license_id = "1.2.156.3005.2.11100000000013338W032.11220000013544541J.2430599"
    leaf = leaf_data(license_id, 1, SALT)
    assert license_leaf_hash(license_id, 1, SALT) == sm3(b"\x00" + leaf)
    assert license_leaf_hash(license_id, 1, SALT, SHA256) == merkle.leaf_hash(leaf, SHA256)


@pytest.mark.parametrize("kind", ["physician", "nurse", "institution"])
def test_leaf_data_is_exactly_the_canonical_encoding_of_the_record(kind: str) -> None:
    for i, raw in enumerate(generate(kind, 5, "650000", 17)):
        license_id = parse_document(raw).license_id
        for version in (1, 9, 10, 999):
            value = sm3(bytes([i, version % 256]))
            record = {"commitment": value.hex(), "license": license_id.base, "type": LEAF_TYPE, "version": version}
            assert leaf_data(license_id.base, version, value) == canonical.encode(record)
