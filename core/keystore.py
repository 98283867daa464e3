"""SM2 signing keys at rest: SM4-GCM under a key-encryption key (KEK) taken from the environment or derived
from a passphrase with PBKDF2-HMAC-SM3 (RFC 8018 §5.2; HMAC per RFC 2104 over SM3, GM/T 0004-2012).

An encrypted key file is one canonical JSON object (:func:`core.canonical.encode`) followed by a newline::

    {"algorithm":"SM4-GCM","ciphertext":"<base64>","format":"licledger-encrypted-key",
     "kdf":{"algorithm":"PBKDF2-HMAC-SM3","iterations":200000,"salt":"<base64>"},
     "key_id":"<hex SM3 of the SPKI>","nonce":"<base64>","version":1}

* ``kdf`` is present only for passphrase-protected files; a KEK-protected file has no ``kdf`` field.
* The plaintext is the key's PKCS#8 DER (:meth:`core.sm2.PrivateKey.to_der`); ``ciphertext`` is the SM4-GCM
  ciphertext followed by the 16-byte tag, ``nonce`` the 12-byte GCM nonce.
* The associated data is the canonical JSON of every field except ``nonce`` and ``ciphertext`` (so
  ``format``, ``version``, ``algorithm``, ``kdf`` and ``key_id`` are all authenticated): editing any of them,
  or moving the ciphertext to another envelope, makes decryption fail. After decryption the key's ID must
  equal ``key_id``.
* PBKDF2 iterations lie in ``[10_000, 10_000_000]``, on write and on read: the floor keeps weak files out,
  the ceiling keeps a hostile file from stalling a node.

Python cannot wipe memory reliably: the decrypted scalar lives in ordinary ``bytes`` until garbage-collected.
"""

from __future__ import annotations

import binascii
import os
import re
import secrets
from dataclasses import dataclass
from typing import Any

from gmssl_pyx import sm3_hmac

from core import canonical, sm4
from core.errors import DecryptionError, EncodingError, FormatError, KeyFormatError
from core.sm2 import PrivateKey

FORMAT = "licledger-encrypted-key"
VERSION = 1
ALGORITHM = "SM4-GCM"
KDF_ALGORITHM = "PBKDF2-HMAC-SM3"
DEFAULT_ITERATIONS = 200_000
MIN_ITERATIONS = 10_000
MAX_ITERATIONS = 10_000_000
SALT_SIZE = 16
KEK_SIZE = sm4.KEY_SIZE
DEFAULT_KEK_ENV = "LICLEDGER_KEK"

_HEX_KEK = re.compile(r"[0-9a-fA-F]{32}")
_KEY_ID = re.compile(r"[0-9a-f]{64}")


class KEKError(FormatError):
    """The key-encryption key is missing or malformed. The message never contains the key's value."""


# --- key derivation ----------------------------------------------------------------------------------------


def _hmac_sm3(key: bytes, message: bytes) -> bytes:
    mac: bytes = sm3_hmac(key, message)
    return mac


def pbkdf2_hmac_sm3(password: bytes, salt: bytes, iterations: int, length: int) -> bytes:
    """PBKDF2 (RFC 8018 §5.2) with PRF = HMAC-SM3: ``T_i = U_1 XOR ... XOR U_c`` for each 32-byte block."""
    if iterations < 1 or length < 1:
        raise ValueError("iterations and length must be positive")
    blocks = []
    for index in range(1, -(-length // 32) + 1):
        u = _hmac_sm3(password, salt + index.to_bytes(4, "big"))
        acc = int.from_bytes(u, "big")
        for _ in range(iterations - 1):
            u = _hmac_sm3(password, u)
            acc ^= int.from_bytes(u, "big")
        blocks.append(acc.to_bytes(32, "big"))
    return b"".join(blocks)[:length]


def kek_from_passphrase(passphrase: str, salt: bytes, iterations: int = DEFAULT_ITERATIONS) -> bytes:
    """A 16-byte SM4 KEK from ``passphrase`` (UTF-8, not normalised) by PBKDF2-HMAC-SM3 (RFC 8018 §5.2)."""
    if not isinstance(passphrase, str):
        raise TypeError(f"passphrase must be str, not {type(passphrase).__name__}")
    if not passphrase:
        raise ValueError("passphrase must not be empty")
    if not isinstance(salt, bytes) or len(salt) < 8:
        raise ValueError("salt must be at least 8 bytes (RFC 8018 §4.1)")
    return pbkdf2_hmac_sm3(passphrase.encode("utf-8"), salt, iterations, KEK_SIZE)


def kek_from_hex(text: str, source: str = "KEK") -> bytes:
    """A 16-byte KEK from 32 hex digits (surrounding whitespace ignored); the error never echoes ``text``."""
    stripped = text.strip()
    if not _HEX_KEK.fullmatch(stripped):
        raise KEKError(f"{source} must be exactly 32 hexadecimal digits (a 16-byte SM4 key)")
    return bytes.fromhex(stripped)


def kek_from_env(var: str = DEFAULT_KEK_ENV) -> bytes:
    """The KEK held as 32 hex digits in environment variable ``var``."""
    value = os.environ.get(var)
    if value is None or not value.strip():
        raise KEKError(f"environment variable {var} is not set; it must hold the 32-hex-digit key-encryption key")
    return kek_from_hex(value, f"environment variable {var}")


# --- envelope ----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class KeyEnvelope:
    """A parsed encrypted-key file; :func:`read_envelope` checks its shape, not its contents."""

    key_id: str
    nonce: bytes
    ciphertext: bytes
    salt: bytes | None = None
    iterations: int | None = None

    @property
    def uses_passphrase(self) -> bool:
        return self.salt is not None

    def header(self) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "format": FORMAT,
            "version": VERSION,
            "algorithm": ALGORITHM,
            "key_id": self.key_id,
        }
        if self.salt is not None:
            fields["kdf"] = {
                "algorithm": KDF_ALGORITHM,
                "iterations": self.iterations,
                "salt": _b64(self.salt),
            }
        return fields

    def associated_data(self) -> bytes:
        return canonical.encode(self.header())

    def to_bytes(self) -> bytes:
        document = self.header() | {"nonce": _b64(self.nonce), "ciphertext": _b64(self.ciphertext)}
        return canonical.encode(document) + b"\n"


def _b64(data: bytes) -> str:
    return binascii.b2a_base64(data, newline=False).decode("ascii")


def _unb64(value: object, field: str) -> bytes:
    if not isinstance(value, str):
        raise FormatError(f"encrypted key: {field} must be a base64 string")
    try:
        decoded = binascii.a2b_base64(value.encode("ascii"), strict_mode=True)
    except (binascii.Error, UnicodeEncodeError):
        raise FormatError(f"encrypted key: {field} is not valid base64") from None
    if _b64(decoded) != value:  # non-zero padding bits: a second spelling of the same bytes
        raise FormatError(f"encrypted key: {field} is not canonical base64 (RFC 4648 §3.5)")
    return decoded


def _exact_fields(obj: dict[str, Any], wanted: set[str], what: str) -> None:
    if set(obj) != wanted:
        missing, extra = sorted(wanted - set(obj)), sorted(set(obj) - wanted)
        raise FormatError(f"{what}: missing fields {missing}, unexpected fields {extra}")


def read_envelope(blob: bytes) -> KeyEnvelope:
    """Parse an encrypted-key file strictly; raises :class:`FormatError` naming what is wrong."""
    if not isinstance(blob, bytes | bytearray):
        raise TypeError(f"blob must be bytes, not {type(blob).__name__}")
    try:
        doc = canonical.decode(bytes(blob))
    except EncodingError as exc:
        raise FormatError(f"encrypted key: not a JSON envelope ({exc})") from None
    if not isinstance(doc, dict):
        raise FormatError("encrypted key: the envelope must be a JSON object")
    if doc.get("format") != FORMAT:
        raise FormatError(f"encrypted key: format is not {FORMAT!r}")
    if doc.get("version") != VERSION:
        raise FormatError(f"encrypted key: unsupported version {doc.get('version')!r}; expected {VERSION}")
    base = {"format", "version", "algorithm", "key_id", "nonce", "ciphertext"}
    _exact_fields(doc, base | ({"kdf"} if "kdf" in doc else set()), "encrypted key")
    if doc["algorithm"] != ALGORITHM:
        raise FormatError(f"encrypted key: algorithm {doc['algorithm']!r} is not {ALGORITHM!r}")
    key_id = doc["key_id"]
    if not isinstance(key_id, str) or not _KEY_ID.fullmatch(key_id):
        raise FormatError("encrypted key: key_id must be 64 lower-case hex digits")
    nonce = _unb64(doc["nonce"], "nonce")
    if len(nonce) != sm4.NONCE_SIZE:
        raise FormatError(f"encrypted key: nonce must be {sm4.NONCE_SIZE} bytes, got {len(nonce)}")
    ciphertext = _unb64(doc["ciphertext"], "ciphertext")
    if len(ciphertext) <= sm4.TAG_SIZE:
        raise FormatError("encrypted key: ciphertext is shorter than the GCM tag")
    salt: bytes | None = None
    iterations: int | None = None
    if "kdf" in doc:
        kdf = doc["kdf"]
        if not isinstance(kdf, dict):
            raise FormatError("encrypted key: kdf must be an object")
        _exact_fields(kdf, {"algorithm", "iterations", "salt"}, "encrypted key kdf")
        if kdf["algorithm"] != KDF_ALGORITHM:
            raise FormatError(f"encrypted key: kdf algorithm {kdf['algorithm']!r} is not {KDF_ALGORITHM!r}")
        iterations = kdf["iterations"]
        if type(iterations) is not int or not MIN_ITERATIONS <= iterations <= MAX_ITERATIONS:
            raise FormatError(f"encrypted key: kdf iterations must be in [{MIN_ITERATIONS}, {MAX_ITERATIONS}]")
        salt = _unb64(kdf["salt"], "kdf salt")
        if len(salt) < 8:
            raise FormatError("encrypted key: kdf salt is shorter than 8 bytes")
    return KeyEnvelope(key_id=key_id, nonce=nonce, ciphertext=ciphertext, salt=salt, iterations=iterations)


def is_encrypted_key(blob: bytes) -> bool:
    """``True`` if ``blob`` is a well-formed licledger encrypted-key file (contents not yet authenticated)."""
    try:
        read_envelope(blob)
    except (FormatError, TypeError):
        return False
    return True


# --- encrypt / decrypt -------------------------------------------------------------------------------------


def _check_kek(kek: bytes) -> None:
    if not isinstance(kek, bytes):
        raise TypeError(f"kek must be bytes, not {type(kek).__name__}")
    if len(kek) != KEK_SIZE:
        raise ValueError(f"kek must be {KEK_SIZE} bytes, got {len(kek)}")


def _one_secret(kek: bytes | None, passphrase: str | None) -> None:
    if (kek is None) == (passphrase is None):
        raise ValueError("give exactly one of kek and passphrase")


def encrypt_private_key(
    key: PrivateKey,
    kek: bytes | None = None,
    *,
    passphrase: str | None = None,
    iterations: int = DEFAULT_ITERATIONS,
) -> bytes:
    """The encrypted-key file for ``key`` under ``kek`` (16 bytes) or a ``passphrase``."""
    if not isinstance(key, PrivateKey):
        raise TypeError(f"key must be a PrivateKey, not {type(key).__name__}")
    _one_secret(kek, passphrase)
    salt: bytes | None = None
    if passphrase is not None:
        if not MIN_ITERATIONS <= iterations <= MAX_ITERATIONS:
            raise ValueError(f"iterations must be in [{MIN_ITERATIONS}, {MAX_ITERATIONS}]")
        salt = secrets.token_bytes(SALT_SIZE)
        kek = kek_from_passphrase(passphrase, salt, iterations)
    assert kek is not None
    _check_kek(kek)
    header = KeyEnvelope(
        key_id=key.key_id,
        nonce=b"",
        ciphertext=b"",
        salt=salt,
        iterations=iterations if salt is not None else None,
    )
    sealed = sm4.gcm_encrypt(kek, key.to_der(), header.associated_data())
    nonce, ciphertext = sealed[: sm4.NONCE_SIZE], sealed[sm4.NONCE_SIZE :]
    return KeyEnvelope(header.key_id, nonce, ciphertext, header.salt, header.iterations).to_bytes()


def decrypt_private_key(blob: bytes, kek: bytes | None = None, *, passphrase: str | None = None) -> PrivateKey:
    """The key in an encrypted-key file.

    Raises :class:`FormatError` for a malformed file, :class:`~core.errors.DecryptionError` for a wrong KEK
    or passphrase or an altered file, and ``ValueError`` if the secret given is not the kind the file needs.
    """
    _one_secret(kek, passphrase)
    envelope = read_envelope(blob)
    if envelope.uses_passphrase and passphrase is None:
        raise ValueError("this key file is protected by a passphrase, not a KEK")
    if not envelope.uses_passphrase and kek is None:
        raise ValueError("this key file is protected by a KEK, not a passphrase")
    if passphrase is not None:
        assert envelope.salt is not None and envelope.iterations is not None
        kek = kek_from_passphrase(passphrase, envelope.salt, envelope.iterations)
    assert kek is not None
    _check_kek(kek)
    try:
        pkcs8 = sm4.gcm_decrypt(kek, envelope.nonce + envelope.ciphertext, envelope.associated_data())
    except DecryptionError:
        raise DecryptionError("cannot decrypt the key: wrong passphrase or KEK, or the file was altered") from None
    key = PrivateKey.from_der(pkcs8)
    if key.key_id != envelope.key_id:
        raise KeyFormatError("encrypted key: the decrypted key does not match the envelope's key_id")
    return key
