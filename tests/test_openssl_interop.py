"""Interoperability with the real ``openssl`` command (OpenSSL 3): signatures, signer IDs and key files."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from core.ec import SM2_P256
from core.hashing import sm3
from core.sm2 import DEFAULT_SIGNER_ID, PrivateKey, PublicKey, encode_signature

OPENSSL = shutil.which("openssl")
pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(OPENSSL is None, reason="the openssl command is not installed"),
]

MESSAGE = b"message digest"
ALICE_ID = b"ALICE123@YAHOO.COM"
# The recommended-curve known-answer vector (same as tests/test_sm2.py).
RECOMMENDED_D = 0x3945208F7B2144B13F36E38AC6D39F95889393692860B51A42FB81EF4DF7C5B8
RECOMMENDED_K = 0x59276E27D506861A16680F3AD9C02DCCEF3CC1FA3CDBE4CE6D54B80DEAC1BC21
RECOMMENDED_R = 0xF5A03B0648D2C4630EEAC513E1BB81A15944DA3827D5B74143AC7EACEEE720B3
RECOMMENDED_S = 0xB1B6AA29DF212FD8763182BC0D421CA1BB9038FD1F7F42D4840B69C485BBC1AA
RECOMMENDED_ALICE_Z = bytes.fromhex("26db4bc1839bd22e97e1dab667ec5e0a730d5e16521398b4435c576a93afd7ed")

SIGNER_IDS = [DEFAULT_SIGNER_ID, ALICE_ID, b"province-110000"]


def reference_sign(d: int, e: int, k: int) -> tuple[int, int]:
    """GB/T 32918.2 §6.1 steps A3-A6 with a fixed nonce, in pure Python (test oracle only)."""
    point = SM2_P256.multiply(k)
    assert point is not None
    r = (e + point[0]) % SM2_P256.n
    return r, pow(1 + d, -1, SM2_P256.n) * (k - r * d) % SM2_P256.n


def openssl(*args: str | Path) -> bytes:
    assert OPENSSL is not None
    done = subprocess.run([OPENSSL, *map(str, args)], capture_output=True, check=False, timeout=30)
    if done.returncode != 0:
        raise AssertionError(f"openssl {' '.join(map(str, args))} failed: {done.stderr.decode(errors='replace')}")
    return done.stdout


def openssl_verify(tmp_path: Path, public: PublicKey, message: bytes, signature: bytes, signer_id: bytes) -> None:
    (tmp_path / "pub.pem").write_bytes(public.to_pem())
    (tmp_path / "msg").write_bytes(message)
    (tmp_path / "sig").write_bytes(signature)
    out = openssl(
        "pkeyutl", "-verify", "-pubin", "-inkey", tmp_path / "pub.pem", "-rawin", "-digest", "sm3",
        "-pkeyopt", f"distid:{signer_id.decode()}", "-in", tmp_path / "msg", "-sigfile", tmp_path / "sig",
    )  # fmt: skip
    assert b"Signature Verified Successfully" in out


def openssl_sign(tmp_path: Path, key_pem: Path, message: bytes, signer_id: bytes) -> bytes:
    (tmp_path / "msg").write_bytes(message)
    openssl(
        "pkeyutl", "-sign", "-inkey", key_pem, "-rawin", "-digest", "sm3",
        "-pkeyopt", f"distid:{signer_id.decode()}", "-in", tmp_path / "msg", "-out", tmp_path / "osig",
    )  # fmt: skip
    return (tmp_path / "osig").read_bytes()


@pytest.fixture
def openssl_key(tmp_path: Path) -> Path:
    path = tmp_path / "openssl-key.pem"
    openssl("genpkey", "-algorithm", "SM2", "-out", path)
    return path


@pytest.mark.parametrize("signer_id", SIGNER_IDS)
def test_licledger_signature_verifies_in_openssl(tmp_path: Path, signer_id: bytes) -> None:
    key = PrivateKey.generate()
    message = b"licledger checkpoint body\n" * 10
    openssl_verify(tmp_path, key.public_key, message, key.sign(message, signer_id), signer_id)


def test_openssl_rejects_licledger_signature_under_other_signer_id(tmp_path: Path) -> None:
    key = PrivateKey.generate()
    with pytest.raises(AssertionError, match="failed"):
        openssl_verify(tmp_path, key.public_key, MESSAGE, key.sign(MESSAGE, b"province-110000"), ALICE_ID)


@pytest.mark.parametrize("signer_id", SIGNER_IDS)
def test_openssl_signature_verifies_in_licledger(tmp_path: Path, openssl_key: Path, signer_id: bytes) -> None:
    key = PrivateKey.from_pem(openssl_key.read_bytes())
    signature = openssl_sign(tmp_path, openssl_key, MESSAGE, signer_id)
    key.public_key.verify(MESSAGE, signature, signer_id)
    assert not key.public_key.is_valid_signature(MESSAGE, signature, b"someone-else")


def test_openssl_generated_key_loads_with_same_key_id(openssl_key: Path) -> None:
    key = PrivateKey.from_pem(openssl_key.read_bytes())
    spki = openssl("pkey", "-in", openssl_key, "-pubout", "-outform", "DER")
    assert key.key_id == sm3(spki).hex()
    assert key.public_key.to_der() == spki
    assert PublicKey.from_pem(openssl("pkey", "-in", openssl_key, "-pubout")) == key.public_key
    # licledger writes the PKCS#8 file byte for byte as OpenSSL does.
    assert key.to_pem() == openssl_key.read_bytes()


def test_openssl_sec1_and_ecparam_keys_load(tmp_path: Path, openssl_key: Path) -> None:
    key = PrivateKey.from_pem(openssl_key.read_bytes())
    sec1 = openssl("ec", "-in", openssl_key)  # OpenSSL 3.0 labels it "SM2 PRIVATE KEY"
    assert PrivateKey.from_pem(sec1) == key
    ecparam = openssl("ecparam", "-name", "SM2", "-genkey")  # a parameters block, then the key
    generated = PrivateKey.from_pem(ecparam)
    spki = openssl("pkey", "-pubout", "-outform", "DER", "-in", _write(tmp_path / "ecparam.pem", ecparam))
    assert generated.public_key.to_der() == spki


def test_licledger_keys_load_in_openssl(tmp_path: Path) -> None:
    key = PrivateKey.generate()
    key_path = _write(tmp_path / "k.pem", key.to_pem())
    assert openssl("pkey", "-in", key_path, "-pubout") == key.public_key.to_pem()
    text = openssl("pkey", "-in", key_path, "-noout", "-text").decode()
    assert "SM2" in text
    pub_path = _write(tmp_path / "pub.pem", key.public_key.to_pem())
    assert openssl("pkey", "-pubin", "-in", pub_path, "-outform", "DER") == key.public_key.to_der()
    signature = openssl_sign(tmp_path, key_path, MESSAGE, DEFAULT_SIGNER_ID)
    key.public_key.verify(MESSAGE, signature)


def test_key_without_embedded_public_key_signs_for_openssl(tmp_path: Path) -> None:
    """A PKCS#8 file with no public key: licledger derives d·G in pure Python; OpenSSL must agree."""
    key = PrivateKey.generate()
    stripped = PrivateKey.from_bytes(key.to_bytes())
    openssl_verify(tmp_path, stripped.public_key, MESSAGE, stripped.sign(MESSAGE), DEFAULT_SIGNER_ID)


@pytest.mark.parametrize(
    ("signer_id", "expected_z"),
    [(DEFAULT_SIGNER_ID, None), (ALICE_ID, RECOMMENDED_ALICE_Z)],
)
def test_recommended_curve_vector_and_alice_z_confirmed_by_openssl(
    tmp_path: Path, signer_id: bytes, expected_z: bytes | None
) -> None:
    """The fixed-nonce signature computed in pure Python verifies in OpenSSL, so OpenSSL computes the same Z
    for that ID; for the default ID it is the published known-answer signature."""
    key = PrivateKey.from_bytes(RECOMMENDED_D.to_bytes(32, "big"))
    if expected_z is not None:
        assert key.public_key.z(signer_id) == expected_z
    e = int.from_bytes(key.public_key.digest(MESSAGE, signer_id), "big")
    r, s = reference_sign(RECOMMENDED_D, e, RECOMMENDED_K)
    if signer_id == DEFAULT_SIGNER_ID:
        assert (r, s) == (RECOMMENDED_R, RECOMMENDED_S)
    openssl_verify(tmp_path, key.public_key, MESSAGE, encode_signature(r, s), signer_id)


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path
