"""Electronic seals: sealing, strict parsing, and each way verification must fail."""

from __future__ import annotations

import base64
import dataclasses
from typing import Any

import pytest

from core import canonical
from core.errors import DocumentError, EncodingError, SignatureError, SignatureFormatError, VerificationError
from core.licenses import License, canonical_bytes, parse_document
from core.seal import (
    ALGORITHM,
    Seal,
    SealFormatError,
    SealMismatchError,
    seal_document,
    signed_payload,
    verify_seal,
)
from core.sm2 import DEFAULT_SIGNER_ID, PrivateKey
from core.synth import generate

KEY = PrivateKey.from_bytes(bytes.fromhex("3945208f7b2144b13f36e38ac6d39f95889393692860b51a42fb81ef4df7c5b8"))
OTHER_KEY = PrivateKey.from_bytes(bytes.fromhex("01" * 32))
TIME = 1_714_550_400_000


@pytest.fixture(scope="module")
def license() -> License:
    return parse_document(next(generate("physician", 1, "440000", 5)))


@pytest.fixture(scope="module")
def seal(license: License) -> Seal:
    return seal_document(license, KEY, TIME)


def test_seal_fields(license: License, seal: Seal) -> None:
    assert seal.issuer_province == license.issuer.province == "440000"
    assert seal.issuer_authority == license.issuer.authority
    assert seal.key_id == KEY.public_key.key_id
    assert seal.signing_time == TIME
    assert seal.signer_id == DEFAULT_SIGNER_ID.decode()
    assert seal.algorithm == ALGORITHM == "SM2-with-SM3"


def test_valid_seal_verifies_on_the_license_and_on_its_canonical_bytes(license: License, seal: Seal) -> None:
    verify_seal(license, seal, KEY.public_key)
    verify_seal(canonical_bytes(license), seal, KEY.public_key)


def test_signature_covers_document_and_seal_info(license: License, seal: Seal) -> None:
    payload = signed_payload(license.to_canonical_dict(), seal.info())
    assert canonical.decode_canonical(payload) == {
        "document": license.to_canonical_dict(),
        "seal": seal.info(),
    }
    KEY.public_key.verify(payload, seal.signature, DEFAULT_SIGNER_ID)
    assert "signature" not in seal.info()


def test_dict_round_trip(seal: Seal) -> None:
    data = seal.to_dict()
    assert base64.b64decode(data["signature"]) == seal.signature
    assert Seal.from_dict(data) == seal
    assert Seal.from_dict(canonical.decode(canonical.encode(data))) == seal


def test_bit_flipped_signature_fails(license: License, seal: Seal) -> None:
    flipped = bytearray(seal.signature)
    flipped[-1] ^= 0x01
    with pytest.raises(SignatureError) as info:
        verify_seal(license, dataclasses.replace(seal, signature=bytes(flipped)), KEY.public_key)
    assert info.value.key_id == KEY.public_key.key_id


def test_truncated_signature_is_a_format_error(license: License, seal: Seal) -> None:
    with pytest.raises(SignatureFormatError):
        verify_seal(license, dataclasses.replace(seal, signature=seal.signature[:-1]), KEY.public_key)


def test_altered_field_fails(license: License, seal: Seal) -> None:
    doc = license.to_canonical_dict()
    doc["holder"]["name"] = doc["holder"]["name"] + "某"
    with pytest.raises(SignatureError):
        verify_seal(parse_document(doc), seal, KEY.public_key)
    with pytest.raises(SignatureError):
        verify_seal(canonical.encode(doc), seal, KEY.public_key)


@pytest.mark.parametrize("change", [{"signing_time": TIME + 1}, {"signer_id": "ALICE123"}, {"signing_time": 0}])
def test_altered_seal_claims_fail(license: License, seal: Seal, change: dict[str, Any]) -> None:
    with pytest.raises(SignatureError):
        verify_seal(license, dataclasses.replace(seal, **change), KEY.public_key)


def test_wrong_key_is_a_key_mismatch_with_evidence(license: License, seal: Seal) -> None:
    with pytest.raises(SealMismatchError) as info:
        verify_seal(license, seal, OTHER_KEY.public_key)
    assert isinstance(info.value, VerificationError)
    assert info.value.what == "key_id"
    assert info.value.expected == KEY.public_key.key_id
    assert info.value.calculated == OTHER_KEY.public_key.key_id


def test_seal_relabelled_to_another_key_fails(license: License, seal: Seal) -> None:
    relabelled = dataclasses.replace(seal, key_id=OTHER_KEY.public_key.key_id)
    with pytest.raises(SignatureError):
        verify_seal(license, relabelled, OTHER_KEY.public_key)


def test_seal_of_another_issuer_does_not_transfer(license: License) -> None:
    shanghai_doc = next(generate("physician", 1, "310000", 5))
    other = seal_document(parse_document(shanghai_doc), KEY, TIME)
    with pytest.raises(SealMismatchError) as info:
        verify_seal(license, other, KEY.public_key)
    assert info.value.what == "issuer_province"
    forged = dataclasses.replace(other, issuer_province="440000", issuer_authority=license.issuer.authority)
    with pytest.raises(SignatureError):
        verify_seal(license, forged, KEY.public_key)


def test_non_canonical_document_bytes_are_refused(license: License, seal: Seal) -> None:
    data = canonical_bytes(license)
    with pytest.raises(EncodingError):
        verify_seal(data + b" ", seal, KEY.public_key)
    with pytest.raises(DocumentError):
        verify_seal(b'{"kind":"nurse"}', seal, KEY.public_key)


def _seal_dict(seal: Seal, **changes: Any) -> dict[str, Any]:
    data = seal.to_dict()
    data.update(changes)
    return {k: v for k, v in data.items() if v is not ...}


@pytest.mark.parametrize(
    "changes",
    [
        {"format": 2},
        {"format": True},
        {"algorithm": "SM2"},
        {"signing_time": 1.0},
        {"signing_time": -1},
        {"signing_time": "1714550400000"},
        {"key_id": "AB" * 32},
        {"key_id": "ab" * 20},
        {"issuer_province": "440100"},
        {"issuer_authority": ""},
        {"signer_id": "张三"},
        {"signer_id": ""},
        {"signature": "not base64!"},
        {"signature": "AAAA="},
        {"signature": ""},
        {"signature": base64.b64encode(bytes(81)).decode()},
        {"extra": 1},
        {"signature": ...},
    ],
)
def test_from_dict_is_strict(seal: Seal, changes: dict[str, Any]) -> None:
    with pytest.raises(SealFormatError):
        Seal.from_dict(_seal_dict(seal, **changes))


def test_non_canonical_base64_is_refused(license: License) -> None:
    # A DER signature is 70-72 bytes; only lengths that are not a multiple of 3 carry padding, so
    # sign until one does (each signature has a fresh nonce; P(72 bytes) is about 1/4 per try).
    for _ in range(64):
        padded = seal_document(license, KEY, TIME)
        if len(padded.signature) % 3:
            break
    else:  # pragma: no cover - probability 4^-64
        pytest.fail("no padded signature in 64 tries")
    text = padded.to_dict()["signature"]
    assert text.endswith("=")
    Seal.from_dict(_seal_dict(padded, signature=text))  # the canonical form is accepted
    with pytest.raises(SealFormatError):  # padding dropped
        Seal.from_dict(_seal_dict(padded, signature=text.rstrip("=")))
    # The last data character carries 2 or 4 unused bits; setting one keeps the decoded bytes but
    # is not the canonical encoding (RFC 4648 §3.5).
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    data = text.rstrip("=")
    flipped = data[:-1] + alphabet[alphabet.index(data[-1]) ^ 1] + text[len(data) :]
    assert base64.b64decode(flipped) == padded.signature
    with pytest.raises(SealFormatError, match="canonical base64"):
        Seal.from_dict(_seal_dict(padded, signature=flipped))


def test_sealing_misuse(license: License) -> None:
    with pytest.raises(ValueError):
        seal_document(license, KEY, -1)
    with pytest.raises(ValueError):
        seal_document(license, KEY, 1.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        seal_document(license, KEY, TIME, signer_id="id")  # type: ignore[arg-type]


def test_custom_signer_id(license: License) -> None:
    seal = seal_document(license, KEY, TIME, signer_id=b"440000-health-commission")
    verify_seal(license, seal, KEY.public_key)
    assert seal.signer_id == "440000-health-commission"


@pytest.mark.parametrize("kind", ["physician", "nurse", "institution"])
def test_payload_from_canonical_bytes_is_the_signed_payload(kind: str) -> None:
    from core.seal import _license_payload

    for doc in generate(kind, 3, "650000", 7):
        lic = parse_document(doc)
        unsigned = seal_document(lic, KEY, TIME)
        assert _license_payload(lic, unsigned.info()) == signed_payload(doc, unsigned.info())
