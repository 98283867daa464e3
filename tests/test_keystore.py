"""Encrypted SM2 keys at rest (core.keystore): PBKDF2-HMAC-SM3, the SM4-GCM envelope, and tampering."""

from __future__ import annotations

import hashlib
import json

import pytest
from gmssl_pyx import sm3_hmac
from hypothesis import given, settings
from hypothesis import strategies as st

from core import canonical
from core.errors import DecryptionError, FormatError
from core.hashing import sm3
from core.keystore import (
    MIN_ITERATIONS,
    KEKError,
    decrypt_private_key,
    encrypt_private_key,
    is_encrypted_key,
    kek_from_env,
    kek_from_hex,
    kek_from_passphrase,
    pbkdf2_hmac_sm3,
    read_envelope,
)
from core.sm2 import PrivateKey

KEK = bytes.fromhex("000102030405060708090a0b0c0d0e0f")
FAST = MIN_ITERATIONS


@pytest.fixture(scope="module")
def key() -> PrivateKey:
    return PrivateKey.generate()


@pytest.fixture(scope="module")
def kek_file(key: PrivateKey) -> bytes:
    return encrypt_private_key(key, KEK)


@pytest.fixture(scope="module")
def passphrase_file(key: PrivateKey) -> bytes:
    return encrypt_private_key(key, passphrase="correct horse battery staple", iterations=FAST)


def _edit(blob: bytes, **changes: object) -> bytes:
    doc = json.loads(blob)
    for field, value in changes.items():
        if field.startswith("kdf_"):
            doc["kdf"][field[4:]] = value
        elif value is None:
            del doc[field]
        else:
            doc[field] = value
    return canonical.encode(doc)


# --- key derivation ----------------------------------------------------------------------------------------


def test_hmac_sm3_is_rfc2104_over_sm3() -> None:
    key, message = b"k" * 70, b"message"  # a key longer than the block is hashed first
    block_key = sm3(key).ljust(64, b"\x00")
    inner = sm3(bytes(b ^ 0x36 for b in block_key) + message)
    assert sm3_hmac(key, message) == sm3(bytes(b ^ 0x5C for b in block_key) + inner)


@pytest.mark.parametrize(("iterations", "length"), [(1, 16), (2, 32), (1000, 16), (3, 40), (5, 64)])
def test_pbkdf2_hmac_sm3_matches_openssl(iterations: int, length: int) -> None:
    if "sm3" not in hashlib.algorithms_available:
        pytest.skip("hashlib has no SM3 in this OpenSSL build")
    expected = hashlib.pbkdf2_hmac("sm3", b"passphrase", b"saltsalt", iterations, length)
    assert pbkdf2_hmac_sm3(b"passphrase", b"saltsalt", iterations, length) == expected


def test_kek_from_passphrase() -> None:
    kek = kek_from_passphrase("密码 passphrase", b"saltsalt", FAST)
    assert len(kek) == 16
    assert kek == pbkdf2_hmac_sm3("密码 passphrase".encode(), b"saltsalt", FAST, 16)
    assert kek != kek_from_passphrase("密码 passphrase", b"saltsal2", FAST)
    assert kek != kek_from_passphrase("密码 passphrase", b"saltsalt", FAST + 1)
    with pytest.raises(ValueError, match="empty"):
        kek_from_passphrase("", b"saltsalt")
    with pytest.raises(ValueError, match="8 bytes"):
        kek_from_passphrase("x", b"short")
    with pytest.raises(TypeError):
        kek_from_passphrase(b"x", b"saltsalt")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        pbkdf2_hmac_sm3(b"x", b"saltsalt", 0, 16)


def test_kek_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_KEK", KEK.hex().upper() + "\n")
    assert kek_from_env("TEST_KEK") == KEK
    monkeypatch.delenv("TEST_KEK")
    with pytest.raises(KEKError, match="TEST_KEK is not set"):
        kek_from_env("TEST_KEK")
    for secret in ("5ec2e7" * 5, "5ec2e7" * 6, "zz" + "5ec2e7" * 5, "0x" + KEK.hex()[2:]):
        monkeypatch.setenv("TEST_KEK", secret)
        with pytest.raises(KEKError, match="32 hexadecimal digits") as info:
            kek_from_env("TEST_KEK")
        assert secret not in str(info.value) and "5ec2e7" not in str(info.value)
    assert kek_from_hex(KEK.hex()) == KEK


# --- round trips -------------------------------------------------------------------------------------------


def test_kek_round_trip(key: PrivateKey, kek_file: bytes) -> None:
    assert decrypt_private_key(kek_file, KEK) == key
    assert kek_file.endswith(b"\n") and canonical.decode_canonical(kek_file[:-1])
    doc = json.loads(kek_file)
    assert doc["key_id"] == key.key_id and doc["algorithm"] == "SM4-GCM" and "kdf" not in doc
    assert key.to_bytes().hex() not in kek_file.decode()


def test_passphrase_round_trip(key: PrivateKey, passphrase_file: bytes) -> None:
    assert decrypt_private_key(passphrase_file, passphrase="correct horse battery staple") == key
    kdf = json.loads(passphrase_file)["kdf"]
    assert kdf["algorithm"] == "PBKDF2-HMAC-SM3" and kdf["iterations"] == FAST
    assert read_envelope(passphrase_file).uses_passphrase


def test_default_iterations_round_trip(key: PrivateKey) -> None:
    blob = encrypt_private_key(key, passphrase="p")
    assert json.loads(blob)["kdf"]["iterations"] == 200_000
    assert decrypt_private_key(blob, passphrase="p") == key


def test_reformatted_json_still_decrypts(key: PrivateKey, kek_file: bytes) -> None:
    pretty = json.dumps(json.loads(kek_file), indent=2).encode()
    assert decrypt_private_key(pretty, KEK) == key


def test_encryption_is_randomised(key: PrivateKey) -> None:
    assert encrypt_private_key(key, KEK) != encrypt_private_key(key, KEK)


def test_is_encrypted_key(key: PrivateKey, kek_file: bytes, passphrase_file: bytes) -> None:
    assert is_encrypted_key(kek_file) and is_encrypted_key(passphrase_file)
    for other in (key.to_pem(), b"", b"{}", b"[1]", b"\xff", _edit(kek_file, version=2)):
        assert not is_encrypted_key(other)


# --- wrong secrets and tampering ---------------------------------------------------------------------------


def test_wrong_secret_is_decryption_error(kek_file: bytes, passphrase_file: bytes) -> None:
    with pytest.raises(DecryptionError, match="wrong passphrase or KEK"):
        decrypt_private_key(kek_file, bytes(16))
    with pytest.raises(DecryptionError):
        decrypt_private_key(passphrase_file, passphrase="Correct horse battery staple")


def test_secret_of_the_wrong_kind_is_caller_error(kek_file: bytes, passphrase_file: bytes) -> None:
    with pytest.raises(ValueError, match="protected by a passphrase"):
        decrypt_private_key(passphrase_file, KEK)
    with pytest.raises(ValueError, match="protected by a KEK"):
        decrypt_private_key(kek_file, passphrase="x")
    with pytest.raises(ValueError, match="exactly one"):
        decrypt_private_key(kek_file)
    with pytest.raises(ValueError, match="exactly one"):
        decrypt_private_key(kek_file, KEK, passphrase="x")
    with pytest.raises(ValueError, match="16 bytes"):
        decrypt_private_key(kek_file, KEK + b"\x00")


def test_key_id_is_authenticated(kek_file: bytes) -> None:
    other_id = PrivateKey.generate().key_id
    with pytest.raises(DecryptionError):
        decrypt_private_key(_edit(kek_file, key_id=other_id), KEK)


def test_kdf_parameters_are_authenticated(passphrase_file: bytes) -> None:
    with pytest.raises(DecryptionError):
        decrypt_private_key(_edit(passphrase_file, kdf_iterations=FAST + 1), passphrase="correct horse battery staple")


def test_ciphertext_moved_to_another_envelope_fails(key: PrivateKey, kek_file: bytes) -> None:
    other = encrypt_private_key(PrivateKey.generate(), KEK)
    moved = _edit(other, nonce=json.loads(kek_file)["nonce"], ciphertext=json.loads(kek_file)["ciphertext"])
    with pytest.raises(DecryptionError):
        decrypt_private_key(moved, KEK)


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"format": "other"}, "format is not"),
        ({"version": 2}, "unsupported version 2"),
        ({"algorithm": "AES-GCM"}, "algorithm 'AES-GCM'"),
        ({"nonce": None}, "missing fields ['nonce']"),
        ({"extra": 1}, "unexpected fields ['extra']"),
        ({"nonce": "AAAA"}, "nonce must be 12 bytes"),
        ({"nonce": "not base64!"}, "nonce is not valid base64"),
        ({"nonce": 5}, "nonce must be a base64 string"),
        ({"kdf_salt": "AAAAAAAAAAB="}, "salt is not canonical base64"),
        ({"ciphertext": "AAAA"}, "shorter than the GCM tag"),
        ({"key_id": "ABC"}, "key_id must be 64 lower-case hex"),
        ({"kdf_iterations": 10**12}, "iterations must be in"),
        ({"kdf_iterations": 1}, "iterations must be in"),
        ({"kdf_iterations": True}, "iterations must be in"),
        ({"kdf_algorithm": "scrypt"}, "kdf algorithm 'scrypt'"),
        ({"kdf_salt": "AAAA"}, "salt is shorter than 8 bytes"),
        ({"kdf": 7}, "kdf must be an object"),
    ],
)
def test_malformed_envelopes_are_format_errors(
    passphrase_file: bytes, changes: dict[str, object], expected: str
) -> None:
    blob = _edit(passphrase_file, **changes)
    with pytest.raises(FormatError) as info:
        decrypt_private_key(blob, passphrase="correct horse battery staple")
    assert expected in str(info.value)
    assert not isinstance(info.value, DecryptionError)


@pytest.mark.parametrize("blob", [b"", b"not json", b"[]", b'{"format":"licledger-encrypted-key"}', b"\xff\xfe"])
def test_garbage_is_format_error(blob: bytes) -> None:
    with pytest.raises(FormatError):
        decrypt_private_key(blob, KEK)


@settings(max_examples=150)
@given(data=st.data())
def test_mutated_file_never_yields_a_key_or_crashes(key: PrivateKey, kek_file: bytes, data: st.DataObject) -> None:
    blob = bytearray(kek_file)
    pos = data.draw(st.integers(0, len(blob) - 2))
    blob[pos] = data.draw(st.integers(0, 255).filter(lambda b: b != kek_file[pos]))
    try:
        recovered = decrypt_private_key(bytes(blob), KEK)
    except (FormatError, DecryptionError):
        return
    # Only changes that keep the same JSON meaning (e.g. an escaped character) may still decrypt.
    assert recovered == key
    assert json.loads(bytes(blob)) == json.loads(kek_file)
