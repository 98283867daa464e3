"""Salted commitments to license documents, and the Merkle leaf that anchors a license version on the ledger.

The ledger never sees personal data. What it records for each license version is

* ``commitment = SM3(salt || document)`` (GM/T 0004-2012), where ``document`` is the canonical bytes of the
  license (:func:`core.licenses.canonical_bytes`) and ``salt`` 32 random bytes kept by the issuing province
  with the document. The salt makes the commitment hiding: without it, nobody can test a guessed citizen ID
  against the ledger. Whoever is shown the document and its salt can check the commitment
  (:func:`verify_commitment`).
* a leaf record (:func:`leaf_data`), the canonical JSON object

  ``{"commitment": "<64 hex>", "license": "<license_id base>", "type": "licledger.license-version",
  "version": n}``

  carrying nothing but the commitment and the public identifier; its RFC 9162 §2.1.1 leaf hash is
  ``SM3(0x00 || leaf_data)`` (:func:`license_leaf_hash`, computed by :func:`core.merkle.leaf_hash`).
"""

from __future__ import annotations

import re
import secrets

from core import merkle
from core.codes import MAX_VERSION, LicenseId
from core.errors import FormatError, VerificationError
from core.hashing import SM3, HashFunction

SALT_SIZE = 32
COMMITMENT_SIZE = 32
LEAF_TYPE = "licledger.license-version"
COMMITMENT_HEX = "[0-9a-fA-F]{64}"
"""A commitment as text (routes, request bodies, the CLI): 64 hex digits, either case."""


class CommitmentFormatError(FormatError):
    """A salt or commitment presented for verification has the wrong type or length."""


class CommitmentMismatchError(VerificationError):
    """The document and salt do not hash to the expected commitment."""

    def __init__(self, expected: bytes, calculated: bytes) -> None:
        self.expected = expected
        self.calculated = calculated
        super().__init__(f"commitment mismatch: expected {expected.hex()}, calculated {calculated.hex()}")


def parse_commitment_hex(text: object) -> bytes | None:
    """The commitment ``text`` names (:data:`COMMITMENT_HEX`), or ``None`` if it is not one."""
    if not isinstance(text, str) or not re.fullmatch(COMMITMENT_HEX, text):
        return None
    return bytes.fromhex(text)


def new_salt() -> bytes:
    """32 bytes from the operating system's CSPRNG."""
    return secrets.token_bytes(SALT_SIZE)


def commitment(document_bytes: bytes, salt: bytes) -> bytes:
    """``SM3(salt || document_bytes)``; ``document_bytes`` should be the license's canonical bytes."""
    if not isinstance(document_bytes, bytes | bytearray) or not isinstance(salt, bytes | bytearray):
        raise TypeError("commitment() takes bytes")
    if len(salt) != SALT_SIZE:
        raise ValueError(f"salt must be {SALT_SIZE} bytes, got {len(salt)}")
    return SM3(bytes(salt) + bytes(document_bytes))


def verify_commitment(document_bytes: bytes, salt: bytes, commitment_value: bytes) -> None:
    """Check that ``document_bytes`` and ``salt`` open ``commitment_value``.

    Raises :class:`CommitmentFormatError` for a salt or commitment of the wrong size and
    :class:`CommitmentMismatchError` (expected and calculated values) when they do not match.
    """
    for name, value, size in (("salt", salt, SALT_SIZE), ("commitment", commitment_value, COMMITMENT_SIZE)):
        if not isinstance(value, bytes | bytearray) or len(value) != size:
            raise CommitmentFormatError(f"{name} must be {size} bytes")
    if not isinstance(document_bytes, bytes | bytearray):
        raise TypeError("document_bytes must be bytes")
    calculated = commitment(document_bytes, salt)
    if not secrets.compare_digest(calculated, bytes(commitment_value)):
        raise CommitmentMismatchError(bytes(commitment_value), calculated)


def leaf_data(license_id: LicenseId | str, version: int, commitment_value: bytes) -> bytes:
    """The canonical leaf record of one license version (see the module docstring).

    ``license_id`` is a :class:`LicenseId` or its string, full or base (without version and check); when it
    carries a version, that version must equal ``version``.
    """
    if isinstance(license_id, LicenseId):
        if license_id.version != version:
            raise ValueError(f"license_id is version {license_id.version}, not {version}")
        base = license_id.base
    elif isinstance(license_id, str):
        base = _base_of(license_id, version)
    else:
        raise TypeError("license_id must be a LicenseId or str")
    if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version <= MAX_VERSION:
        raise ValueError(f"version must be 1..{MAX_VERSION}, got {version!r}")
    if not isinstance(commitment_value, bytes | bytearray) or len(commitment_value) != COMMITMENT_SIZE:
        raise ValueError(f"commitment must be {COMMITMENT_SIZE} bytes")
    # The canonical encoding of {"commitment", "license", "type", "version"} (keys in that order), written out:
    # the base is [0-9A-Z.] only (validated above as a GB/T 36904 identifier), so nothing needs escaping.
    # tests/test_commitment.py checks it against core.canonical.encode.
    return b'{"commitment":"%s","license":"%s","type":"%s","version":%d}' % (
        bytes(commitment_value).hex().encode("ascii"),
        base.encode("ascii"),
        LEAF_TYPE.encode("ascii"),
        version,
    )


def _base_of(text: str, version: int) -> str:
    if text.count(".") == 9:
        parsed = LicenseId.parse(text)
        if parsed.version != version:
            raise ValueError(f"license_id is version {parsed.version}, not {version}")
        return parsed.base
    # A base: validate it by building the identifier it names at this version.
    parts = text.split(".")
    if len(parts) != 8 or ".".join(parts[:5]) != "1.2.156.3005.2":
        raise ValueError(f"not a license identifier or identifier base: {text!r}")
    return LicenseId.build(parts[5], parts[6], parts[7], version).base


def license_leaf_hash(
    license_id: LicenseId | str, version: int, commitment_value: bytes, hash_function: HashFunction = SM3
) -> bytes:
    """RFC 9162 leaf hash ``HASH(0x00 || leaf_data(...))`` of a license version (:mod:`core.merkle`)."""
    return merkle.leaf_hash(leaf_data(license_id, version, commitment_value), hash_function)
