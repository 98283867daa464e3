"""SM4 (GB/T 32907-2016) and SM4-GCM (NIST SP 800-38D, RFC 8998): standard vectors, an independent oracle,
and tampering."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.errors import DecryptionError, FormatError
from core.sm4 import NONCE_SIZE, TAG_SIZE, _seal, encrypt_block, gcm_decrypt, gcm_encrypt

# GB/T 32907-2016 Appendix A, example 1: key = plaintext.
STANDARD_KEY = bytes.fromhex("0123456789abcdeffedcba9876543210")
STANDARD_CIPHERTEXT = bytes.fromhex("681edf34d206965e86b3e94f536e4246")
# GB/T 32907-2016 Appendix A, example 2: the same block encrypted 1,000,000 times.
STANDARD_MILLION = bytes.fromhex("595298c7c6fd271f0402f804c33d3f66")

# RFC 8998 Appendix A.1 (SM4-GCM).
RFC8998_KEY = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")
RFC8998_IV = bytes.fromhex("00001234567800000000ABCD")
RFC8998_AAD = bytes.fromhex("FEEDFACEDEADBEEFFEEDFACEDEADBEEFABADDAD2")
RFC8998_PLAINTEXT = bytes.fromhex(
    "AAAAAAAAAAAAAAAABBBBBBBBBBBBBBBBCCCCCCCCCCCCCCCCDDDDDDDDDDDDDDDD"
    "EEEEEEEEEEEEEEEEFFFFFFFFFFFFFFFFEEEEEEEEEEEEEEEEAAAAAAAAAAAAAAAA"
)
RFC8998_CIPHERTEXT = bytes.fromhex(
    "17F399F08C67D5EE19D0DC9969C4BB7D5FD46FD3756489069157B282BB200735"
    "D82710CA5C22F0CCFA7CBF93D496AC15A56834CBCF98C397B4024A2691233B8D"
)
RFC8998_TAG = bytes.fromhex("83DE3541E4C2B58177E065A9BF7B62EC")

KEY = bytes(range(16))


def test_gbt32907_example_1_block() -> None:
    assert encrypt_block(STANDARD_KEY, STANDARD_KEY) == STANDARD_CIPHERTEXT


def test_gbt32907_example_1_with_independent_oracle() -> None:
    ciphers = pytest.importorskip("cryptography.hazmat.primitives.ciphers")
    enc = ciphers.Cipher(ciphers.algorithms.SM4(STANDARD_KEY), ciphers.modes.ECB()).encryptor()
    assert enc.update(STANDARD_KEY) + enc.finalize() == STANDARD_CIPHERTEXT


def test_gbt32907_example_2_one_million_encryptions() -> None:
    block = STANDARD_KEY
    for _ in range(1_000_000):
        block = encrypt_block(STANDARD_KEY, block)
    assert block == STANDARD_MILLION


def test_rfc8998_sm4_gcm_vector() -> None:
    assert _seal(RFC8998_KEY, RFC8998_IV, RFC8998_PLAINTEXT, RFC8998_AAD) == (RFC8998_CIPHERTEXT, RFC8998_TAG)
    blob = RFC8998_IV + RFC8998_CIPHERTEXT + RFC8998_TAG
    assert gcm_decrypt(RFC8998_KEY, blob, RFC8998_AAD) == RFC8998_PLAINTEXT


@given(plaintext=st.binary(max_size=100), aad=st.binary(max_size=70), key=st.binary(min_size=16, max_size=16))
def test_agrees_with_independent_sm4_gcm(plaintext: bytes, aad: bytes, key: bytes) -> None:
    """Both directions against OpenSSL's SM4-GCM (via ``cryptography``), including the empty plaintext, whose
    tag licledger computes itself."""
    ciphers = pytest.importorskip("cryptography.hazmat.primitives.ciphers")
    blob = gcm_encrypt(key, plaintext, aad)
    nonce, body, tag = blob[:NONCE_SIZE], blob[NONCE_SIZE:-TAG_SIZE], blob[-TAG_SIZE:]
    dec = ciphers.Cipher(ciphers.algorithms.SM4(key), ciphers.modes.GCM(nonce, tag)).decryptor()
    dec.authenticate_additional_data(aad)
    assert dec.update(body) + dec.finalize() == plaintext
    enc = ciphers.Cipher(ciphers.algorithms.SM4(key), ciphers.modes.GCM(nonce)).encryptor()
    enc.authenticate_additional_data(aad)
    theirs = nonce + enc.update(plaintext) + enc.finalize() + enc.tag
    assert theirs == blob
    assert gcm_decrypt(key, theirs, aad) == plaintext


def test_round_trip_and_fresh_nonces() -> None:
    for plaintext in (b"", b"x", b"k" * 16, b"licence" * 1000):
        blob = gcm_encrypt(KEY, plaintext, b"aad")
        assert len(blob) == NONCE_SIZE + len(plaintext) + TAG_SIZE
        assert gcm_decrypt(KEY, blob, b"aad") == plaintext
    assert len({gcm_encrypt(KEY, b"same")[:NONCE_SIZE] for _ in range(50)}) == 50


@given(data=st.data(), plaintext=st.binary(max_size=40))
def test_any_bit_flip_is_detected(data: st.DataObject, plaintext: bytes) -> None:
    blob = bytearray(gcm_encrypt(KEY, plaintext, b"header"))
    bit = data.draw(st.integers(0, len(blob) * 8 - 1))
    blob[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(DecryptionError):
        gcm_decrypt(KEY, bytes(blob), b"header")


def test_wrong_key_or_aad_or_truncation_is_detected() -> None:
    blob = gcm_encrypt(KEY, b"secret", b"v1")
    with pytest.raises(DecryptionError):
        gcm_decrypt(bytes(16), blob, b"v1")
    with pytest.raises(DecryptionError):
        gcm_decrypt(KEY, blob, b"v2")
    with pytest.raises(DecryptionError):
        gcm_decrypt(KEY, blob[:-1], b"v1")
    with pytest.raises(DecryptionError):
        gcm_decrypt(KEY, blob + b"\x00", b"v1")
    empty = gcm_encrypt(KEY, b"", b"v1")
    with pytest.raises(DecryptionError):
        gcm_decrypt(KEY, empty, b"v2")


def test_too_short_is_format_error_not_decryption_error() -> None:
    for size in (0, 1, NONCE_SIZE + TAG_SIZE - 1):
        with pytest.raises(FormatError, match="shorter than nonce and tag") as info:
            gcm_decrypt(KEY, bytes(size))
        assert not isinstance(info.value, DecryptionError)


def test_key_and_type_misuse() -> None:
    for bad in (b"", bytes(15), bytes(17), bytes(32)):
        with pytest.raises(ValueError, match="16 bytes"):
            gcm_encrypt(bad, b"x")
        with pytest.raises(ValueError, match="16 bytes"):
            gcm_decrypt(bad, bytes(40))
    with pytest.raises(TypeError):
        gcm_encrypt("0123456789abcdef", b"x")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        gcm_encrypt(KEY, "text")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        encrypt_block(KEY, b"short")
    blob = bytearray(gcm_encrypt(KEY, b"ok", bytearray(b"a")))  # type: ignore[arg-type]
    assert gcm_decrypt(KEY, blob, memoryview(b"a")) == b"ok"  # type: ignore[arg-type]
