"""The issuing authority's electronic seal on a license, modelled on GM/T 0031-2014 / GB/T 38540-2020.

A :class:`Seal` is an SM2 signature (GB/T 32918.2, SM3 digest with the signer ID's ``Z_A``) by the issuing
authority over the canonical bytes (RFC 8785 subset, :mod:`core.canonical`) of::

    {"document": <license canonical dict>, "seal": <seal info: every Seal field except the signature>}

so the signature covers the document *and* the seal's own claims (issuer, key, signing time, signer ID,
algorithm). licledger implements this signing structure, not the ASN.1 ``SES_Signature`` of GB/T 38540:
there is no seal image, no seal-maker certificate chain and no ``SESeal`` object; ``key_id`` names the
authority's key, whose binding to the authority is decided by the caller (the consortium's key registry),
not here.
docs/formats.md maps the fields to GB/T 38540.

Verification (:func:`verify_seal`), in order:

1. the seal parsed strictly (:meth:`Seal.from_dict`: exact fields, types, canonical base64);
2. the public key given is the one the seal names (``key_id``), else :class:`SealMismatchError`;
3. the document is a valid license (canonical bytes, :func:`core.licenses.parse_document`);
4. the seal's issuer (province, authority) is the document's issuer, else :class:`SealMismatchError`;
5. the SM2 signature verifies over the payload, else :class:`~core.errors.SignatureError` (or
   :class:`~core.errors.SignatureFormatError` for a malformed DER signature).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import re
from collections.abc import Mapping
from typing import Any

from core import canonical
from core.canonical import MAX_SAFE_INTEGER
from core.divisions import PROVINCES
from core.errors import FormatError, VerificationError
from core.licenses import License, canonical_bytes, parse_document
from core.sm2 import DEFAULT_SIGNER_ID, PrivateKey, PublicKey

ALGORITHM = "SM2-with-SM3"
SEAL_FORMAT = 1
MAX_SIGNATURE_SIZE = 80  # DER SEQUENCE of two 256-bit INTEGERs is at most 72 bytes
_KEY_ID = re.compile(r"[0-9a-f]{64}")
_SIGNER_ID = re.compile(r"[\x20-\x7e]{1,128}")
_FIELDS = frozenset(
    {
        "algorithm",
        "format",
        "issuer_authority",
        "issuer_province",
        "key_id",
        "signature",
        "signer_id",
        "signing_time",
    }
)


class SealFormatError(FormatError):
    """A seal object is malformed: missing or unknown fields, wrong types, bad base64."""


class SealMismatchError(VerificationError):
    """A seal's claim differs from what it is checked against (key, issuer). Carries both values."""

    def __init__(self, what: str, expected: str, calculated: str) -> None:
        self.what = what
        self.expected = expected
        self.calculated = calculated
        super().__init__(f"{what} mismatch: seal says {expected!r}, found {calculated!r}")


@dataclasses.dataclass(frozen=True, slots=True)
class Seal:
    """An electronic seal: who sealed, with which key, when, and the SM2 signature (DER)."""

    issuer_province: str
    issuer_authority: str
    key_id: str
    signing_time: int
    """Milliseconds since 1970-01-01T00:00:00Z."""
    signer_id: str
    algorithm: str
    signature: bytes

    def info(self) -> dict[str, Any]:
        """The seal's signed claims: every field except the signature, plus the format version."""
        return {
            "algorithm": self.algorithm,
            "format": SEAL_FORMAT,
            "issuer_authority": self.issuer_authority,
            "issuer_province": self.issuer_province,
            "key_id": self.key_id,
            "signer_id": self.signer_id,
            "signing_time": self.signing_time,
        }

    def to_dict(self) -> dict[str, Any]:
        """The seal as a JSON object; the signature in standard base64 (RFC 4648 §4) with padding."""
        return {**self.info(), "signature": base64.b64encode(self.signature).decode("ascii")}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Seal:
        """Parse a seal object strictly; raises :class:`SealFormatError`."""
        if not isinstance(data, Mapping):
            raise SealFormatError("seal must be a JSON object")
        keys = set(data)
        if keys != _FIELDS:
            missing, unknown = sorted(_FIELDS - keys), sorted(keys - _FIELDS)
            raise SealFormatError(f"seal fields wrong: missing {missing}, unknown {unknown}")
        if data["format"] != SEAL_FORMAT or type(data["format"]) is not int:
            raise SealFormatError(f"seal format must be {SEAL_FORMAT}")
        if data["algorithm"] != ALGORITHM:
            raise SealFormatError(f"seal algorithm must be {ALGORITHM!r}")
        for name in ("issuer_authority", "issuer_province", "key_id", "signer_id", "signature"):
            if not isinstance(data[name], str):
                raise SealFormatError(f"seal {name} must be a string")
        signing_time = data["signing_time"]
        if type(signing_time) is not int or not 0 <= signing_time <= MAX_SAFE_INTEGER:
            raise SealFormatError("seal signing_time must be a non-negative integer (milliseconds, UTC)")
        return cls(
            issuer_province=data["issuer_province"],
            issuer_authority=data["issuer_authority"],
            key_id=data["key_id"],
            signing_time=signing_time,
            signer_id=data["signer_id"],
            algorithm=data["algorithm"],
            signature=_decode_signature(data["signature"]),
        )

    def __post_init__(self) -> None:
        if self.issuer_province not in PROVINCES:
            raise SealFormatError("seal issuer_province must be a GB/T 2260 provincial code or 660000")
        if not self.issuer_authority or len(self.issuer_authority) > 200:
            raise SealFormatError("seal issuer_authority must be 1 to 200 characters")
        if _KEY_ID.fullmatch(self.key_id) is None:
            raise SealFormatError("seal key_id must be 64 lower-case hex characters (SM3 of the public key)")
        if _SIGNER_ID.fullmatch(self.signer_id) is None:
            raise SealFormatError("seal signer_id must be 1 to 128 printable ASCII characters")
        if not isinstance(self.signature, bytes) or not 0 < len(self.signature) <= MAX_SIGNATURE_SIZE:
            raise SealFormatError(f"seal signature must be 1 to {MAX_SIGNATURE_SIZE} bytes")


def _decode_signature(text: str) -> bytes:
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise SealFormatError("seal signature is not base64") from None
    if base64.b64encode(raw).decode("ascii") != text:
        raise SealFormatError("seal signature is not in canonical base64")
    return raw


def signed_payload(document: Mapping[str, Any], seal_info: Mapping[str, Any]) -> bytes:
    """The bytes a seal signs: canonical ``{"document": ..., "seal": ...}``."""
    return canonical.encode({"document": document, "seal": seal_info})


def _license_payload(license: License, seal_info: Mapping[str, Any]) -> bytes:
    """:func:`signed_payload` for a license, from its canonical bytes (computed once per license): the canonical
    encoding of an object is its sorted members' encodings, and ``"document"`` sorts before ``"seal"``."""
    return b'{"document":' + canonical_bytes(license) + b',"seal":' + canonical.encode(seal_info) + b"}"


def seal_document(
    license: License,
    private_key: PrivateKey,
    signing_time_ms: int,
    *,
    signer_id: bytes = DEFAULT_SIGNER_ID,
) -> Seal:
    """Seal ``license`` with the issuing authority's key at ``signing_time_ms`` (ms since the epoch, UTC).

    The time is a parameter, not read from a clock, so sealing is reproducible and testable.
    """
    if type(signing_time_ms) is not int or not 0 <= signing_time_ms <= MAX_SAFE_INTEGER:
        raise ValueError("signing_time_ms must be a non-negative integer")
    if not isinstance(signer_id, bytes):
        raise TypeError("signer_id must be bytes")
    try:
        signer_text = signer_id.decode("ascii")
    except UnicodeDecodeError:
        raise ValueError("signer_id must be printable ASCII") from None
    unsigned = Seal(
        issuer_province=license.issuer.province,
        issuer_authority=license.issuer.authority,
        key_id=private_key.key_id,
        signing_time=signing_time_ms,
        signer_id=signer_text,
        algorithm=ALGORITHM,
        signature=b"\x00",  # placeholder: info() leaves the signature out
    )
    signature = private_key.sign(_license_payload(license, unsigned.info()), signer_id)
    return dataclasses.replace(unsigned, signature=signature)


def verify_seal(document: License | bytes, seal: Seal, public_key: PublicKey) -> None:
    """Verify ``seal`` on ``document`` (a license, or its canonical bytes) under ``public_key``.

    Returns ``None`` or raises (steps as in the module docstring): :class:`SealMismatchError`,
    :class:`~core.errors.DocumentError` / :class:`~core.errors.EncodingError`,
    :class:`~core.errors.SignatureError`, :class:`~core.errors.SignatureFormatError`.
    """
    if not isinstance(seal, Seal):
        raise TypeError("seal must be a Seal")
    if not isinstance(public_key, PublicKey):
        raise TypeError("public_key must be a core.sm2.PublicKey")
    # 2. the key is the one the seal names
    if public_key.key_id != seal.key_id:
        raise SealMismatchError("key_id", seal.key_id, public_key.key_id)
    # 3. the document is a valid license, in canonical form
    if isinstance(document, bytes | bytearray):
        license = parse_document(canonical.decode_canonical(bytes(document)))
    else:
        license = document
    if isinstance(document, bytes | bytearray) and canonical_bytes(license) != bytes(document):
        raise SealMismatchError("document bytes", bytes(document).hex(), canonical_bytes(license).hex())
    # 4. the seal's issuer is the document's issuer
    if seal.issuer_province != license.issuer.province:
        raise SealMismatchError("issuer_province", seal.issuer_province, license.issuer.province)
    if seal.issuer_authority != license.issuer.authority:
        raise SealMismatchError("issuer_authority", seal.issuer_authority, license.issuer.authority)
    # 5. the signature
    public_key.verify(_license_payload(license, seal.info()), seal.signature, seal.signer_id.encode("ascii"))
