"""Consortium checkpoints: a C2SP tlog-checkpoint body extended with the ledger's state, cosigned by members
as a C2SP signed note with SM2 signatures. docs/checkpoint.md specifies the format with a full example.

Rules, before any code:

1. **Body** (UTF-8, every line ends in ``\\n``, no other control characters)::

       <origin>                      e.g. licledger.example/consortium-demo
       <log_size>                    anchor-log tree_size, decimal          } the three lines of a
       <log_root base64>             anchor-log root_hash (RFC 9162, SM3)   } C2SP tlog-checkpoint
       height <decimal>              ledger height (number of blocks)
       status-root <base64>          status-map (sparse Merkle tree) root
       membership-root <base64>      membership root
       block-hash <base64>           hash of the block at ``height``
       timestamp <decimal>           milliseconds since the Unix epoch (UTC)

   The first three lines are exactly a tlog-checkpoint, so log tooling can read the anchor log's state; the
   rest are extension lines in this fixed order. Decimals have no sign and no leading zeros and are below
   2^63; hashes are 32 bytes in canonical standard base64 with padding (RFC 4648 §4, §3.5). The origin is
   1-255 printable ASCII characters without spaces and does not start with ``{``, so a checkpoint body can
   never be mistaken for the canonical JSON licledger signs elsewhere.
2. **Note** = body, one empty line, then 1-100 signature lines ``— <name> <base64(key hint || signature)>``
   (C2SP signed-note; ``—`` is U+2014). ``name`` is the member name: non-empty, no whitespace, no ``+``.
   ``key hint`` is the first 4 bytes of ``SM3(name || 0x0A || 0x04 || SPKI DER)``; ``signature`` is the DER
   SM2 signature (GB/T 32918.2) over the body bytes with the default signer ID (GM/T 0009-2012).
   :func:`parse_checkpoint` raises :class:`~core.errors.FormatError` on any deviation.
3. **Verification** (:func:`verify_cosignatures`): a cosignature counts when its name is a member, its key
   hint matches one of that member's keys, and the signature verifies under that key. Each member counts
   once however many of its signatures are present. Unknown names, unmatched hints and bad signatures are
   recorded as failures, not fatal: a node can still accept a checkpoint that a quorum of members signed.
   Fewer than ``quorum`` distinct verified members raises :class:`QuorumError` with the evidence.
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from core.errors import FormatError, SignatureError, SignatureFormatError, VerificationError
from core.hashing import sm3
from core.sm2 import PrivateKey, PublicKey

HASH_SIZE = 32
KEY_HINT_SIZE = 4
SM2_SIGNATURE_TYPE = 0x04
MAX_SIGNATURES = 100
MAX_INTEGER = 2**63 - 1
SIGNATURE_PREFIX = "— "  # U+2014 EM DASH, U+0020

_ORIGIN = re.compile(r"[\x21-\x7e]{1,255}")
_DECIMAL = re.compile(r"0|[1-9][0-9]{0,18}")
_EXTENSIONS = ("height", "status-root", "membership-root", "block-hash", "timestamp")


def _b64(data: bytes) -> str:
    return binascii.b2a_base64(data, newline=False).decode("ascii")


def _unb64(text: str, what: str) -> bytes:
    try:
        data = binascii.a2b_base64(text.encode("ascii"), strict_mode=True)
    except (binascii.Error, UnicodeEncodeError):
        raise FormatError(f"checkpoint: {what} is not valid base64") from None
    if _b64(data) != text:
        raise FormatError(f"checkpoint: {what} is not canonical base64")
    return data


def _decimal(text: str, what: str) -> int:
    if not _DECIMAL.fullmatch(text) or int(text) > MAX_INTEGER:
        raise FormatError(f"checkpoint: {what} must be a decimal integer without leading zeros, below 2^63")
    return int(text)


def _hash(text: str, what: str) -> bytes:
    value = _unb64(text, what)
    if len(value) != HASH_SIZE:
        raise FormatError(f"checkpoint: {what} must be {HASH_SIZE} bytes, got {len(value)}")
    return value


def _check_name(name: str) -> None:
    if not isinstance(name, str):
        raise TypeError(f"signer name must be str, not {type(name).__name__}")
    if not name or "+" in name or any(ch.isspace() for ch in name) or not name.isprintable():
        raise ValueError(f"signer name {name!r} must be non-empty, printable, without whitespace or '+'")


# --- the body ----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """The state of the consortium ledger at ``height``, as cosigned by its members."""

    origin: str
    height: int
    log_size: int
    log_root: bytes
    status_root: bytes
    membership_root: bytes
    block_hash: bytes
    timestamp_ms: int

    def __post_init__(self) -> None:
        if not isinstance(self.origin, str) or not _ORIGIN.fullmatch(self.origin) or self.origin[0] == "{":
            raise ValueError("origin must be 1-255 printable ASCII characters, no spaces, not starting with '{'")
        for name in ("height", "log_size", "timestamp_ms"):
            value = getattr(self, name)
            if type(value) is not int or not 0 <= value <= MAX_INTEGER:
                raise ValueError(f"{name} must be an int in [0, 2^63 - 1]")
        for name in ("log_root", "status_root", "membership_root", "block_hash"):
            value = getattr(self, name)
            if not isinstance(value, bytes) or len(value) != HASH_SIZE:
                raise ValueError(f"{name} must be {HASH_SIZE} bytes")

    def body(self) -> bytes:
        """The signed bytes (rule 1)."""
        lines = [
            self.origin,
            str(self.log_size),
            _b64(self.log_root),
            f"height {self.height}",
            f"status-root {_b64(self.status_root)}",
            f"membership-root {_b64(self.membership_root)}",
            f"block-hash {_b64(self.block_hash)}",
            f"timestamp {self.timestamp_ms}",
        ]
        return "".join(line + "\n" for line in lines).encode("ascii")

    @classmethod
    def from_body(cls, body: bytes) -> Checkpoint:
        """Parse a body strictly; ``from_body(c.body()) == c`` and nothing else parses to ``c``."""
        if not isinstance(body, bytes):
            raise TypeError(f"body must be bytes, not {type(body).__name__}")
        try:
            text = body.decode("ascii")
        except UnicodeDecodeError as exc:
            raise FormatError(f"checkpoint: body has a non-ASCII byte at offset {exc.start}") from None
        if not text.endswith("\n"):
            raise FormatError("checkpoint: body must end with a newline")
        lines = text[:-1].split("\n")
        if len(lines) != 3 + len(_EXTENSIONS):
            raise FormatError(f"checkpoint: body has {len(lines)} lines, expected {3 + len(_EXTENSIONS)}")
        for number, line in enumerate(lines, 1):
            if not line.isprintable():
                raise FormatError(f"checkpoint: line {number} contains a control character")
        origin = lines[0]
        if not _ORIGIN.fullmatch(origin) or origin.startswith("{"):
            raise FormatError("checkpoint: origin must be 1-255 printable ASCII characters without spaces")
        values: dict[str, str] = {}
        for number, (line, key) in enumerate(zip(lines[3:], _EXTENSIONS, strict=True), 4):
            found, sep, value = line.partition(" ")
            if found != key or not sep:
                raise FormatError(f"checkpoint: line {number} must be '{key} <value>', got {line[:40]!r}")
            values[key] = value
        try:
            return cls(
                origin=origin,
                log_size=_decimal(lines[1], "tree size"),
                log_root=_hash(lines[2], "root hash"),
                height=_decimal(values["height"], "height"),
                status_root=_hash(values["status-root"], "status-root"),
                membership_root=_hash(values["membership-root"], "membership-root"),
                block_hash=_hash(values["block-hash"], "block-hash"),
                timestamp_ms=_decimal(values["timestamp"], "timestamp"),
            )
        except ValueError as exc:
            if isinstance(exc, FormatError):
                raise
            raise FormatError(f"checkpoint: {exc}") from None


# --- signatures --------------------------------------------------------------------------------------------


def key_hint(name: str, public_key: PublicKey) -> bytes:
    """First 4 bytes of ``SM3(name || 0x0A || 0x04 || SPKI DER)`` (after C2SP signed-note key IDs)."""
    _check_name(name)
    return sm3(name.encode("utf-8") + b"\n" + bytes([SM2_SIGNATURE_TYPE]) + public_key.to_der())[:KEY_HINT_SIZE]


@dataclass(frozen=True, slots=True)
class Cosignature:
    """One signature line of a checkpoint note."""

    name: str
    key_hint: bytes
    signature: bytes

    def __post_init__(self) -> None:
        _check_name(self.name)
        if not isinstance(self.key_hint, bytes) or len(self.key_hint) != KEY_HINT_SIZE:
            raise ValueError(f"key_hint must be {KEY_HINT_SIZE} bytes")
        if not isinstance(self.signature, bytes) or not self.signature:
            raise ValueError("signature must be non-empty bytes")

    def line(self) -> bytes:
        return f"{SIGNATURE_PREFIX}{self.name} {_b64(self.key_hint + self.signature)}\n".encode()


def cosign(checkpoint: Checkpoint, name: str, private_key: PrivateKey) -> Cosignature:
    """``name``'s SM2 cosignature of ``checkpoint`` (rule 2)."""
    return Cosignature(name, key_hint(name, private_key.public_key), private_key.sign(checkpoint.body()))


def render(checkpoint: Checkpoint, cosignatures: Iterable[Cosignature]) -> bytes:
    """The note: body, an empty line, the signature lines in the order given."""
    cosigs = list(cosignatures)
    if not 1 <= len(cosigs) <= MAX_SIGNATURES:
        raise ValueError(f"a checkpoint note carries 1 to {MAX_SIGNATURES} signatures, not {len(cosigs)}")
    return checkpoint.body() + b"\n" + b"".join(c.line() for c in cosigs)


def _parse_signature_line(line: str, number: int) -> Cosignature:
    if not line.startswith(SIGNATURE_PREFIX):
        raise FormatError(f"checkpoint: signature line {number} does not start with '— '")
    name, sep, encoded = line[len(SIGNATURE_PREFIX) :].partition(" ")
    if not sep or not name or " " in encoded:
        raise FormatError(f"checkpoint: signature line {number} must be '— <name> <base64>'")
    blob = _unb64(encoded, f"signature line {number}")
    if len(blob) <= KEY_HINT_SIZE:
        raise FormatError(f"checkpoint: signature line {number} is too short for a key hint and a signature")
    try:
        return Cosignature(name, blob[:KEY_HINT_SIZE], blob[KEY_HINT_SIZE:])
    except ValueError as exc:
        raise FormatError(f"checkpoint: signature line {number}: {exc}") from None


def parse_checkpoint(text: bytes) -> tuple[Checkpoint, list[Cosignature]]:
    """Parse a note strictly (rules 1-2). Signatures are parsed, not verified."""
    if not isinstance(text, bytes):
        raise TypeError(f"text must be bytes, not {type(text).__name__}")
    separator = text.find(b"\n\n")
    if separator < 0:
        raise FormatError("checkpoint: no empty line between the body and the signatures")
    body, signatures = text[: separator + 1], text[separator + 2 :]
    checkpoint = Checkpoint.from_body(body)
    try:
        sig_text = signatures.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FormatError(f"checkpoint: signatures are not UTF-8 (byte {separator + 2 + exc.start})") from None
    if not sig_text.endswith("\n"):
        raise FormatError("checkpoint: the last signature line must end with a newline")
    lines = sig_text[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise FormatError(f"checkpoint: {len(lines)} signature lines, more than {MAX_SIGNATURES}")
    return checkpoint, [_parse_signature_line(line, n) for n, line in enumerate(lines, 1)]


# --- verification ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CosignatureFailure:
    """Why one signature line did not count."""

    name: str
    key_hint: bytes
    reason: str


class QuorumError(VerificationError):
    """Fewer than ``needed`` distinct members' cosignatures verified; carries who did and what failed."""

    def __init__(self, needed: int, got: int, verified_names: list[str], failures: list[CosignatureFailure]) -> None:
        self.needed = needed
        self.got = got
        self.verified_names = list(verified_names)
        self.failures = list(failures)
        detail = "; ".join(f"{f.name} [{f.key_hint.hex()}]: {f.reason}" for f in self.failures) or "none"
        super().__init__(
            f"checkpoint cosigned by {got} of the {needed} members required "
            f"(verified: {', '.join(self.verified_names) or 'none'}; failures: {detail})"
        )


def verify_cosignatures(
    checkpoint: Checkpoint,
    cosignatures: Sequence[Cosignature],
    members: Mapping[str, Sequence[PublicKey]],
    quorum: int,
) -> list[str]:
    """The names of the members whose cosignatures verify, in first-seen order (rule 3).

    Raises :class:`QuorumError` if fewer than ``quorum`` distinct members verified.
    """
    if type(quorum) is not int or quorum < 1:
        raise ValueError("quorum must be a positive int")
    if quorum > len(members):
        raise ValueError(f"quorum {quorum} exceeds the {len(members)} members")
    body = checkpoint.body()
    verified: list[str] = []
    failures: list[CosignatureFailure] = []
    for cosig in cosignatures:
        if cosig.name in verified:
            continue  # a member counts once; its extra lines are neither needed nor held against it
        keys = members.get(cosig.name)
        if keys is None:
            failures.append(CosignatureFailure(cosig.name, cosig.key_hint, "not a member"))
            continue
        candidates = [k for k in keys if key_hint(cosig.name, k) == cosig.key_hint]
        if not candidates:
            failures.append(CosignatureFailure(cosig.name, cosig.key_hint, "key hint matches none of its keys"))
            continue
        reason = ""
        for key in candidates:
            try:
                key.verify(body, cosig.signature)
            except SignatureFormatError as exc:
                reason = f"malformed signature: {exc}"
            except SignatureError:
                reason = f"signature does not verify under key {key.key_id}"
            else:
                verified.append(cosig.name)
                break
        else:
            failures.append(CosignatureFailure(cosig.name, cosig.key_hint, reason))
    if len(verified) < quorum:
        raise QuorumError(needed=quorum, got=len(verified), verified_names=verified, failures=failures)
    return verified
