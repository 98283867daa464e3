"""The proof bundle: everything needed to check one license version offline (format ``licledger-proof/1``).

docs/proof-bundle.md describes every field with an example; docs/schemas/proof-bundle-v1.json is the JSON Schema.
A bundle is canonical JSON (RFC 8785 subset, :mod:`core.canonical`) holding, for one license version:

* ``license_id`` (GB/T 36904) and ``issuer``, the province (GB/T 2260 code) whose member anchored it;
* ``commitment`` = ``SM3(salt || canonical document)`` (GM/T 0004) and the *disclosure*: the document and its salt
  (for the holder and roles entitled to them) or ``null`` (the public view: commitment only);
* ``seal``: the issuing authority's SM2 seal (:mod:`core.seal`, GB/T 32918.2) over the document, present exactly
  when the document is disclosed (a seal without its document would let anyone test guesses of the personal
  data against the signature, which the salted commitment exists to prevent);
* ``leaf``: the leaf record (:func:`core.commitment.leaf_data`) with its RFC 9162 inclusion proof in its batch;
* ``batch``: the batch record the issuer anchored, with its RFC 9162 inclusion proof in the ledger's anchor log
  at the checkpoint's ``tree_size``;
* ``status``: the license's status record (or ``null``: never changed) with its sparse Merkle proof under the
  checkpoint's status root (``GetStatus``);
* ``member``: the issuer's member record (keys and their validity) with its sparse Merkle proof under the
  checkpoint's membership root (``GetMember``);
* ``checkpoint``: the signed checkpoint note (:mod:`core.checkpoint`, C2SP signed note with SM2 cosignatures).

Rules, before any code:

1. :meth:`ProofBundle.from_json` parses strictly: at most :data:`MAX_BUNDLE_BYTES`, strict JSON (no floats, no
   duplicate keys), exactly the fields of the format (unknown or missing fields are errors), lower-case hex hashes
   of 32 bytes, proofs of at most :data:`MAX_PROOF_HASHES` hashes, every embedded object parsed by its own module
   (document, seal, member record, sparse proofs, checkpoint note). Anything else raises
   :class:`InvalidBundleError` naming the path of the bad field (``batch.record.root``).
2. Parsing also checks that the parts speak of one license and one issuer (document, seal, batch, member and
   status records agree with ``license_id`` and ``issuer``). It checks no hash, proof or signature: that is
   :func:`verifier.core.verify_bundle`'s job.
3. :meth:`ProofBundle.to_json` is the canonical encoding; ``from_json(b.to_json())`` gives ``b`` back.
4. Versioning: ``format`` names the version. A reader accepts exactly the versions it implements; any change of a
   field or of its meaning makes a new version (``licledger-proof/2``), never a silent extension.

:func:`assemble_bundle` builds a bundle from a node's records and the ledger's query answers; :func:`public_view`
strips the document, salt and seal. :meth:`ProofBundle.to_qr_payload` / :func:`from_qr_payload` give the compact
QR form (base45 of zlib, after the EU DCC ``HC1:`` scheme, or a short reference).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import re
import zlib
from collections.abc import Mapping, Sequence
from typing import Any, Generic, TypeVar

from chaincode.anchoring import BATCH_RECORD_TYPE, STATUS_RECORD_TYPE
from core import canonical
from core.base45 import b45decode, b45encode
from core.checkpoint import Checkpoint, Cosignature, parse_checkpoint
from core.codes import MAX_VERSION, LicenseId
from core.commitment import COMMITMENT_SIZE, LEAF_TYPE, commitment, leaf_data
from core.consortium import PROVINCE, MemberRecord, validate_member_name
from core.errors import DocumentError, FormatError
from core.hashing import sm3
from core.licenses import License, canonical_bytes, parse_document, parse_license_id, parse_signed_document
from core.merkle import leaf_hash
from core.native import NATIVE
from core.seal import Seal
from core.smt import SparseProof
from core.transactions import STATUSES

__all__ = [
    "FORMAT",
    "MAX_BUNDLE_BYTES",
    "MAX_NOTE_BYTES",
    "MAX_PROOF_HASHES",
    "OFFLINE_QR_PREFIX",
    "QR_ALPHANUMERIC_40L",
    "QR_BYTES_40L",
    "REFERENCE_QR_PREFIX",
    "BatchRecord",
    "InvalidBundleError",
    "LeafRecord",
    "ProofBundle",
    "QrReference",
    "StatusRecord",
    "assemble_bundle",
    "from_qr_payload",
    "public_view",
]

FORMAT = "licledger-proof/1"
MAX_BUNDLE_BYTES = 256 * 1024
MAX_PROOF_HASHES = 64
"""RFC 9162 trees of up to 2^64 leaves need at most 64 proof hashes."""
MAX_NOTE_BYTES = 16 * 1024
MAX_LICENSE_ID_LENGTH = 160
MAX_INTEGER = canonical.MAX_SAFE_INTEGER

QR_BYTES_40L = 2953
"""Capacity of the largest QR code (version 40, error correction L) in byte mode (ISO/IEC 18004 table 7)."""
QR_ALPHANUMERIC_40L = 4296
"""The same symbol's capacity in alphanumeric mode, the mode base45 text uses."""
OFFLINE_QR_PREFIX = "LLB1:"
REFERENCE_QR_PREFIX = "LLR1:"
MAX_NODE_URL_LENGTH = 512

_FIELDS = frozenset(
    (
        "batch",
        "checkpoint",
        "commitment",
        "disclosure",
        "format",
        "issuer",
        "leaf",
        "license_id",
        "member",
        "seal",
        "status",
    )
)
_BATCH_FIELDS = frozenset(("batch_seq", "issuer", "key_id", "leaf_count", "root", "timestamp_ms", "tx_id", "type"))
_STATUS_FIELDS = frozenset(
    (
        "batch_seq",
        "commitment",
        "effective_ms",
        "issuer",
        "leaf_index",
        "license_base_id",
        "license_id",
        "reason",
        "status",
        "status_seq",
        "timestamp_ms",
        "tx_id",
        "type",
    )
)
_LEAF_DATA_FIELDS = frozenset(("commitment", "license", "type", "version"))
_DISCLOSURE_FIELDS = frozenset(("document", "salt"))
_LEAF_FIELDS = frozenset(("data", "inclusion_proof", "leaf_index"))
_BATCH_SECTION_FIELDS = frozenset(("inclusion_proof", "log_index", "record"))
_PROVEN_FIELDS = frozenset(("proof", "record"))
_QR_FIELDS = frozenset(("commitment", "issuer", "license_id", "node"))
_LICENSE_BASE = re.compile(r"1\.2\.156\.3005\.2\.[0-9A-Z]{21}\.[0-9A-Z]{18}\.[0-9A-Z]{1,64}")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_REASON = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_NODE_URL = re.compile(r"https?://[\x21-\x7e]+")
T = TypeVar("T")


class InvalidBundleError(FormatError):
    """A proof bundle (or its QR payload) is malformed. ``path`` names the bad field (``$`` = the whole)."""

    def __init__(self, path: str, problem: str) -> None:
        self.path = path
        self.problem = problem
        super().__init__(f"{path}: {problem}")


# --- small strict parsers ------------------------------------------------------------------------------------


def _object(value: object, path: str, fields: frozenset[str]) -> dict[str, Any]:
    if type(value) is not dict:
        raise InvalidBundleError(path, f"must be an object, not {_type_name(value)}")
    if value.keys() != fields:
        missing = sorted(fields - value.keys())
        unknown = sorted(value.keys() - fields)
        raise InvalidBundleError(path, f"fields wrong: missing {missing}, unknown {unknown}")
    return value


def _type_name(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    return {dict: "object", list: "array", str: "string", int: "integer"}.get(type(value), type(value).__name__)


def _int(value: object, path: str, minimum: int = 0, maximum: int = MAX_INTEGER) -> int:
    if type(value) is not int:
        raise InvalidBundleError(path, f"must be an integer, not {_type_name(value)}")
    if not minimum <= value <= maximum:
        raise InvalidBundleError(path, f"must be in [{minimum}, {maximum}], got {value}")
    return value


def _str(value: object, path: str, max_length: int = 256) -> str:
    if type(value) is not str:
        raise InvalidBundleError(path, f"must be a string, not {_type_name(value)}")
    if not value or len(value) > max_length:
        raise InvalidBundleError(path, f"must be 1 to {max_length} characters")
    return value


def _hash(value: object, path: str) -> bytes:
    if NATIVE is not None and (parsed := NATIVE.hash_from_hex(value)) is not None:
        return parsed
    if type(value) is not str or not _HEX64.fullmatch(value):
        raise InvalidBundleError(path, "must be 64 lower-case hex digits (an SM3 hash)")
    return bytes.fromhex(value)


def _hex64(value: object, path: str) -> str:
    if type(value) is not str or not _HEX64.fullmatch(value):
        raise InvalidBundleError(path, "must be 64 lower-case hex digits")
    return value


def _proof(value: object, path: str) -> tuple[bytes, ...]:
    if NATIVE is not None and (hashes := NATIVE.hashes_from_hex(value)) is not None and len(hashes) <= MAX_PROOF_HASHES:
        return hashes
    if not isinstance(value, list):
        raise InvalidBundleError(path, f"must be an array of hashes, not {_type_name(value)}")
    if len(value) > MAX_PROOF_HASHES:
        raise InvalidBundleError(path, f"has {len(value)} hashes, more than {MAX_PROOF_HASHES}")
    for h in value:
        if type(h) is not str or not _HEX64.fullmatch(h):
            break
    else:
        return tuple(map(bytes.fromhex, value))
    return tuple(_hash(h, f"{path}[{i}]") for i, h in enumerate(value))  # raises, naming the first bad hash


def _sparse_proof(value: object, path: str) -> SparseProof:
    try:
        return SparseProof.from_dict(value)  # type: ignore[arg-type]
    except (FormatError, TypeError) as exc:
        raise InvalidBundleError(path, str(exc)) from None


def _issuer(value: object, path: str) -> str:
    name = _str(value, path, 64)
    try:
        return validate_member_name(name, PROVINCE)
    except FormatError as exc:
        raise InvalidBundleError(path, str(exc)) from None


def _license_base(value: object, path: str) -> str:
    text = _str(value, path, MAX_LICENSE_ID_LENGTH)
    if not _LICENSE_BASE.fullmatch(text):
        raise InvalidBundleError(path, "must be a license identifier base (without version and check character)")
    return text


def _license_id(value: object, path: str) -> LicenseId:
    text = _str(value, path, MAX_LICENSE_ID_LENGTH)
    try:
        return parse_license_id(text)  # the document and status record name it again: parsed once per bundle
    except DocumentError as exc:
        raise InvalidBundleError(path, str(exc)) from None


# --- embedded ledger records -----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class LeafRecord:
    """The leaf record as given (:func:`core.commitment.leaf_data`'s fields); step 4 compares it with the one
    expected for the bundle's license id, version and commitment."""

    license: str
    version: int
    commitment: bytes

    def to_dict(self) -> dict[str, Any]:
        return {
            "commitment": self.commitment.hex(),
            "license": self.license,
            "type": LEAF_TYPE,
            "version": self.version,
        }


@dataclasses.dataclass(frozen=True, slots=True)
class BatchRecord:
    """An anchor-log entry (docs/chaincode.md, "Anchor log"); ``data`` is its canonical bytes, the log leaf."""

    issuer: str
    batch_seq: int
    root: bytes
    leaf_count: int
    timestamp_ms: int
    key_id: str
    tx_id: str
    data: bytes
    _leaf_hash: bytes = dataclasses.field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # hashed once: parsed batch records are shared by the bundles of a batch (see _BATCHES)
        object.__setattr__(self, "_leaf_hash", leaf_hash(self.data))

    @property
    def leaf_hash(self) -> bytes:
        """``SM3(0x00 || data)``: the record's RFC 9162 leaf hash in the anchor log."""
        return self._leaf_hash

    @classmethod
    def from_dict(cls, value: object, path: str = "batch.record") -> BatchRecord:
        m = _object(value, path, _BATCH_FIELDS)
        if m["type"] != BATCH_RECORD_TYPE:
            raise InvalidBundleError(f"{path}.type", f"must be {BATCH_RECORD_TYPE!r}")
        return cls(
            issuer=_issuer(m["issuer"], f"{path}.issuer"),
            batch_seq=_int(m["batch_seq"], f"{path}.batch_seq"),
            root=_hash(m["root"], f"{path}.root"),
            leaf_count=_int(m["leaf_count"], f"{path}.leaf_count", 1),
            timestamp_ms=_int(m["timestamp_ms"], f"{path}.timestamp_ms"),
            key_id=_hex64(m["key_id"], f"{path}.key_id"),
            tx_id=_hex64(m["tx_id"], f"{path}.tx_id"),
            data=canonical.encode(m),
        )


@dataclasses.dataclass(frozen=True, slots=True)
class StatusRecord:
    """A status-map entry (docs/chaincode.md, "Status map"); ``value_hash`` = SM3 of its canonical bytes."""

    license_base_id: str
    license_id: str
    status: str
    reason: str
    effective_ms: int
    status_seq: int
    issuer: str
    batch_seq: int
    leaf_index: int
    commitment: bytes
    timestamp_ms: int
    tx_id: str
    value_hash: bytes

    @classmethod
    def from_dict(cls, value: object, path: str = "status.record") -> StatusRecord:
        m = _object(value, path, _STATUS_FIELDS)
        if m["type"] != STATUS_RECORD_TYPE:
            raise InvalidBundleError(f"{path}.type", f"must be {STATUS_RECORD_TYPE!r}")
        status = m["status"]
        if status not in STATUSES:
            raise InvalidBundleError(f"{path}.status", f"must be one of {list(STATUSES)}")
        reason = m["reason"]
        if type(reason) is not str or not _REASON.fullmatch(reason):
            raise InvalidBundleError(f"{path}.reason", "must match [A-Za-z0-9_.-]{1,64}")
        license_id = _license_id(m["license_id"], f"{path}.license_id")
        base = _str(m["license_base_id"], f"{path}.license_base_id", MAX_LICENSE_ID_LENGTH)
        if base != license_id.base:
            raise InvalidBundleError(f"{path}.license_base_id", "is not the base of license_id")
        return cls(
            license_base_id=base,
            license_id=str(license_id),
            status=status,
            reason=reason,
            effective_ms=_int(m["effective_ms"], f"{path}.effective_ms"),
            status_seq=_int(m["status_seq"], f"{path}.status_seq"),
            issuer=_issuer(m["issuer"], f"{path}.issuer"),
            batch_seq=_int(m["batch_seq"], f"{path}.batch_seq"),
            leaf_index=_int(m["leaf_index"], f"{path}.leaf_index"),
            commitment=_hash(m["commitment"], f"{path}.commitment"),
            timestamp_ms=_int(m["timestamp_ms"], f"{path}.timestamp_ms"),
            tx_id=_hex64(m["tx_id"], f"{path}.tx_id"),
            value_hash=sm3(canonical.encode(m)),
        )


# Bundles verified together share their checkpoint note, the issuer's member section and often a batch. Parsing
# is a pure function of the JSON value and the parsed objects are immutable, so they are memoised (bounded), keyed
# by the value's canonical bytes, or its JSON text where the native encoder declines (both are injective on the
# values ``canonical.decode`` yields, and a bytes key never equals a str key).
_CACHE_LIMIT = 256


class _Memo(Generic[T]):
    __slots__ = ("_items",)

    def __init__(self) -> None:
        self._items: dict[str | bytes, T] = {}

    def get(self, key: str | bytes) -> T | None:
        return self._items.get(key)

    def put(self, key: str | bytes, value: T) -> T:
        if len(self._items) >= _CACHE_LIMIT:
            self._items.clear()
        self._items[key] = value
        return value


_NOTES: _Memo[tuple[Checkpoint, tuple[Cosignature, ...]]] = _Memo()
_MEMBERS: _Memo[tuple[MemberRecord | None, SparseProof]] = _Memo()
_BATCHES: _Memo[BatchRecord] = _Memo()
_KEY_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"))


def _json_key(value: object) -> str | bytes:
    if NATIVE is not None and (key := NATIVE.encode(value)) is not None:
        return key
    return _KEY_ENCODER.encode(value)


def _note(value: object, path: str) -> tuple[bytes, Checkpoint, tuple[Cosignature, ...]]:
    if type(value) is not str:
        raise InvalidBundleError(path, f"must be the signed note as a string, not {_type_name(value)}")
    note = value.encode("utf-8", errors="surrogatepass")
    cached = _NOTES.get(value)
    if cached is None:
        if len(note) > MAX_NOTE_BYTES:
            raise InvalidBundleError(path, f"is {len(note)} bytes, more than {MAX_NOTE_BYTES}")
        try:
            checkpoint, cosigs = parse_checkpoint(note)
        except FormatError as exc:
            raise InvalidBundleError(path, str(exc)) from None
        cached = _NOTES.put(value, (checkpoint, tuple(cosigs)))
    return note, cached[0], cached[1]


def _member_section(value: object, path: str) -> tuple[MemberRecord | None, SparseProof]:
    m = _object(value, path, _PROVEN_FIELDS)
    key = _json_key(m)
    cached = _MEMBERS.get(key)
    if cached is None:
        record = None
        if m["record"] is not None:
            try:
                record = MemberRecord.from_dict(m["record"], f"{path}.record")
            except FormatError as exc:
                raise InvalidBundleError(f"{path}.record", str(exc)) from None
        cached = _MEMBERS.put(key, (record, _sparse_proof(m["proof"], f"{path}.proof")))
    return cached


def _batch_record(value: object, path: str) -> BatchRecord:
    key = _json_key(value)
    cached = _BATCHES.get(key)
    return cached if cached is not None else _BATCHES.put(key, BatchRecord.from_dict(value, path))


def _document(value: object, path: str) -> License:
    try:
        return parse_signed_document(value)  # type: ignore[arg-type]
    except DocumentError as exc:
        field = next(iter(sorted(exc.errors)), "$")
        sub = path if field == "$" else f"{path}.{field}"
        raise InvalidBundleError(sub, str(exc)) from None


# --- the bundle --------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True, eq=False)
class ProofBundle:
    """A parsed, shape-validated proof bundle (rules 1-2). Build with :meth:`from_json`, :meth:`from_dict` or
    :func:`assemble_bundle`; nothing in it is verified until :func:`verifier.core.verify_bundle` says so."""

    license_id: LicenseId
    issuer: str
    commitment: bytes
    document: License | None
    salt: bytes | None
    seal: Seal | None
    leaf: LeafRecord
    leaf_index: int
    leaf_proof: tuple[bytes, ...]
    batch: BatchRecord
    log_index: int
    log_proof: tuple[bytes, ...]
    status: StatusRecord | None
    status_proof: SparseProof
    member: MemberRecord | None
    member_proof: SparseProof
    note: bytes
    checkpoint: Checkpoint
    cosignatures: tuple[Cosignature, ...]
    _value: dict[str, Any] = dataclasses.field(repr=False)

    @property
    def disclosed(self) -> bool:
        """Whether the document and salt are included (else only the commitment)."""
        return self.document is not None

    @classmethod
    def from_json(cls, data: bytes | str) -> ProofBundle:
        """Parse a bundle (rule 1); raises :class:`InvalidBundleError` naming the bad field."""
        if isinstance(data, str):
            data = data.encode("utf-8", errors="surrogatepass")
        if not isinstance(data, bytes | bytearray | memoryview):
            raise TypeError(f"from_json() takes bytes or str, not {type(data).__name__}")
        if len(data) > MAX_BUNDLE_BYTES:
            raise InvalidBundleError("$", f"bundle is {len(data)} bytes, more than {MAX_BUNDLE_BYTES}")
        try:
            value = canonical.decode(bytes(data))
        except FormatError as exc:
            raise InvalidBundleError("$", str(exc)) from None
        return cls.from_dict(value, _owned=True)

    @classmethod
    def from_dict(cls, value: object, *, _owned: bool = False) -> ProofBundle:
        """Parse an already-decoded bundle (rules 1-2). The value is copied, never kept by reference."""
        m = _object(value, "$", _FIELDS)
        if m["format"] != FORMAT:
            found = m["format"] if type(m["format"]) is str else _type_name(m["format"])
            raise InvalidBundleError("format", f"unsupported format {found!r}; this reader implements {FORMAT!r}")
        license_id = _license_id(m["license_id"], "license_id")
        issuer = _issuer(m["issuer"], "issuer")
        commitment_value = _hash(m["commitment"], "commitment")

        document: License | None = None
        salt: bytes | None = None
        if m["disclosure"] is not None:
            disclosure = _object(m["disclosure"], "disclosure", _DISCLOSURE_FIELDS)
            salt = _hash(disclosure["salt"], "disclosure.salt")
            document = _document(disclosure["document"], "disclosure.document")
            if str(document.license_id) != str(license_id):
                raise InvalidBundleError("disclosure.document.license_id", "differs from license_id")
            if document.issuer.province != issuer:
                raise InvalidBundleError("disclosure.document.issuer.province", f"differs from issuer {issuer}")
        seal: Seal | None = None
        if m["seal"] is not None:
            try:
                seal = Seal.from_dict(m["seal"])
            except FormatError as exc:
                raise InvalidBundleError("seal", str(exc)) from None
            if seal.issuer_province != issuer:
                raise InvalidBundleError("seal.issuer_province", f"differs from issuer {issuer}")
        if (seal is None) != (document is None):
            raise InvalidBundleError("seal", "must be present exactly when the document is disclosed")

        leaf = _object(m["leaf"], "leaf", _LEAF_FIELDS)
        data = _object(leaf["data"], "leaf.data", _LEAF_DATA_FIELDS)
        if data["type"] != LEAF_TYPE:
            raise InvalidBundleError("leaf.data.type", f"must be {LEAF_TYPE!r}")
        leaf_record = LeafRecord(
            license=_license_base(data["license"], "leaf.data.license"),
            version=_int(data["version"], "leaf.data.version", 1, MAX_VERSION),
            commitment=_hash(data["commitment"], "leaf.data.commitment"),
        )
        leaf_index = _int(leaf["leaf_index"], "leaf.leaf_index")
        leaf_proof = _proof(leaf["inclusion_proof"], "leaf.inclusion_proof")

        batch = _object(m["batch"], "batch", _BATCH_SECTION_FIELDS)
        batch_record = _batch_record(batch["record"], "batch.record")
        if batch_record.issuer != issuer:
            raise InvalidBundleError("batch.record.issuer", f"differs from issuer {issuer}")
        log_index = _int(batch["log_index"], "batch.log_index")
        log_proof = _proof(batch["inclusion_proof"], "batch.inclusion_proof")

        status = _object(m["status"], "status", _PROVEN_FIELDS)
        status_record = None
        if status["record"] is not None:
            status_record = StatusRecord.from_dict(status["record"], "status.record")
            if status_record.license_base_id != license_id.base:
                raise InvalidBundleError("status.record.license_base_id", "is another license's")
            if status_record.issuer != issuer:
                raise InvalidBundleError("status.record.issuer", f"differs from issuer {issuer}")
        status_proof = _sparse_proof(status["proof"], "status.proof")

        member_record, member_proof = _member_section(m["member"], "member")
        if member_record is not None and member_record.name != issuer:
            raise InvalidBundleError("member.record.name", f"differs from issuer {issuer}")

        note, checkpoint, cosignatures = _note(m["checkpoint"], "checkpoint")
        return cls(
            license_id=license_id,
            issuer=issuer,
            commitment=commitment_value,
            document=document,
            salt=salt,
            seal=seal,
            leaf=leaf_record,
            leaf_index=leaf_index,
            leaf_proof=leaf_proof,
            batch=batch_record,
            log_index=log_index,
            log_proof=log_proof,
            status=status_record,
            status_proof=status_proof,
            member=member_record,
            member_proof=member_proof,
            note=note,
            checkpoint=checkpoint,
            cosignatures=cosignatures,
            _value=m if _owned else copy.deepcopy(m),
        )

    def to_dict(self) -> dict[str, Any]:
        """The bundle as a JSON value (a fresh copy)."""
        return copy.deepcopy(self._value)

    def to_json(self) -> bytes:
        """The canonical bytes (RFC 8785 subset, :func:`core.canonical.encode`)."""
        return canonical.encode(self._value)

    # --- QR code ---

    def to_qr_payload(self, *, node_url: str | None = None, offline: bool | None = None) -> str:
        """Text for a voucher's QR code, all in the QR alphanumeric set.

        ``offline=True``: the whole bundle, ``LLB1:`` + base45(zlib(canonical JSON)); raises ``ValueError`` if that
        exceeds a version 40-L symbol. ``offline=False``: a :class:`QrReference` (license id, issuer, commitment,
        node URL). ``None``: the offline form if it fits, else the reference. The bundle is encoded as it is:
        call :func:`public_view` first for a QR that anyone may read.
        """
        if offline is not False:
            payload = OFFLINE_QR_PREFIX + b45encode(zlib.compress(self.to_json(), 9))
            if len(payload) <= QR_ALPHANUMERIC_40L:
                return payload
            if offline:
                raise ValueError(
                    f"the offline QR payload is {len(payload)} characters; a version 40-L QR code holds "
                    f"{QR_ALPHANUMERIC_40L} in alphanumeric mode"
                )
        return QrReference(str(self.license_id), self.issuer, self.commitment, node_url).to_qr_payload()


@dataclasses.dataclass(frozen=True, slots=True)
class QrReference:
    """What a voucher's QR code carries when the bundle does not fit: where and what to fetch."""

    license_id: str
    issuer: str
    commitment: bytes
    node_url: str | None = None

    def __post_init__(self) -> None:
        _license_id(self.license_id, "license_id")
        _issuer(self.issuer, "issuer")
        if not isinstance(self.commitment, bytes) or len(self.commitment) != COMMITMENT_SIZE:
            raise InvalidBundleError("commitment", f"must be {COMMITMENT_SIZE} bytes")
        if self.node_url is not None and (
            type(self.node_url) is not str
            or len(self.node_url) > MAX_NODE_URL_LENGTH
            or not _NODE_URL.fullmatch(self.node_url)
        ):
            raise InvalidBundleError("node", "must be an http(s) URL of printable ASCII without spaces")

    def to_qr_payload(self) -> str:
        """``LLR1:`` + base45 of the canonical JSON ``{"commitment","issuer","license_id","node"}``."""
        value = {
            "commitment": self.commitment.hex(),
            "issuer": self.issuer,
            "license_id": self.license_id,
            "node": self.node_url,
        }
        return REFERENCE_QR_PREFIX + b45encode(canonical.encode(value))


def from_qr_payload(text: str) -> ProofBundle | QrReference:
    """Parse a voucher's QR text (:meth:`ProofBundle.to_qr_payload`); :class:`InvalidBundleError` otherwise."""
    if not isinstance(text, str):
        raise TypeError(f"from_qr_payload() takes str, not {type(text).__name__}")
    if len(text) > QR_ALPHANUMERIC_40L:
        raise InvalidBundleError("qr", f"{len(text)} characters is more than any QR code holds")
    try:
        if text.startswith(OFFLINE_QR_PREFIX):
            compressed = b45decode(text[len(OFFLINE_QR_PREFIX) :])
            inflater = zlib.decompressobj()
            try:
                data = inflater.decompress(compressed, MAX_BUNDLE_BYTES + 1)
            except zlib.error as exc:
                raise InvalidBundleError("qr", f"not zlib data: {exc}") from None
            if len(data) > MAX_BUNDLE_BYTES or not inflater.eof or inflater.unused_data:
                raise InvalidBundleError("qr", "compressed bundle is truncated, too large or has trailing data")
            return ProofBundle.from_json(data)
        if text.startswith(REFERENCE_QR_PREFIX):
            value = canonical.decode(b45decode(text[len(REFERENCE_QR_PREFIX) :]))
            m = _object(value, "qr", _QR_FIELDS)
            return QrReference(
                license_id=_str(m["license_id"], "qr.license_id", MAX_LICENSE_ID_LENGTH),
                issuer=_str(m["issuer"], "qr.issuer", 64),
                commitment=_hash(m["commitment"], "qr.commitment"),
                node_url=None if m["node"] is None else _str(m["node"], "qr.node", MAX_NODE_URL_LENGTH),
            )
    except InvalidBundleError:
        raise
    except FormatError as exc:
        raise InvalidBundleError("qr", str(exc)) from None
    raise InvalidBundleError("qr", f"does not start with {OFFLINE_QR_PREFIX} or {REFERENCE_QR_PREFIX}")


# --- building bundles ------------------------------------------------------------------------------------------------


def public_view(bundle: ProofBundle) -> ProofBundle:
    """The bundle without the document, its salt and the seal: what anyone with the license id may see."""
    if not isinstance(bundle, ProofBundle):
        raise TypeError(f"public_view() takes a ProofBundle, not {type(bundle).__name__}")
    value = bundle.to_dict()
    value["disclosure"] = None
    value["seal"] = None
    return ProofBundle.from_dict(value, _owned=True)


def _answer(value: object, what: str, fields: Sequence[str]) -> Mapping[str, Any]:
    if not isinstance(value, Mapping) or any(f not in value for f in fields):
        raise ValueError(f"{what} must be the ledger's answer with the fields {list(fields)}")
    return value


def assemble_bundle(
    *,
    license_id: str | LicenseId,
    issuer: str,
    commitment_value: bytes,
    leaf_index: int,
    leaf_inclusion_proof: Sequence[bytes],
    batch: Mapping[str, Any],
    log_inclusion: Mapping[str, Any],
    status: Mapping[str, Any],
    member: Mapping[str, Any],
    checkpoint: Mapping[str, Any] | str | bytes,
    document: License | Mapping[str, Any] | None = None,
    salt: bytes | None = None,
    seal: Seal | Mapping[str, Any] | None = None,
) -> ProofBundle:
    """A bundle from a node's own records and the ledger's query answers (pure; no I/O).

    ``batch`` is ``GetBatch(issuer, batch_seq)``; ``log_inclusion`` is ``GetLogInclusionProof(log_index,
    checkpoint log_size)``; ``status`` is ``GetStatus(license_id, checkpoint_seq)``; ``member`` is
    ``GetMember(issuer, checkpoint_seq)``; ``checkpoint`` is ``GetCheckpoint(checkpoint_seq)`` (it must be final) or
    its note. ``document``, ``salt`` and ``seal`` come from the node's records, all three or none (public view).

    Raises ``ValueError`` (:class:`InvalidBundleError` is one) when the parts do not belong together: another
    checkpoint's proofs, another batch, a salt that does not open the commitment, ... so that a node never serves
    a bundle that it could have known would fail verification.
    """
    parts = (document is None, salt is None, seal is None)
    if len(set(parts)) != 1:
        raise ValueError("document, salt and seal go together: give all three or none")
    batch = _answer(batch, "batch", ("log_index", "record"))
    log_inclusion = _answer(log_inclusion, "log_inclusion", ("leaf_index", "tree_size", "inclusion_proof", "root_hash"))
    status = _answer(status, "status", ("record", "proof", "root", "checkpoint_seq"))
    member = _answer(member, "member", ("record", "proof", "root", "checkpoint_seq"))
    if isinstance(checkpoint, Mapping):
        if not checkpoint.get("final"):
            raise ValueError("the checkpoint is not final (fewer cosignatures than its quorum)")
        if status["checkpoint_seq"] != checkpoint.get("seq") or member["checkpoint_seq"] != checkpoint.get("seq"):
            raise ValueError("the status and member proofs must be taken at the bundle's checkpoint seq")
        note = checkpoint.get("note")
    else:
        note = checkpoint.decode("utf-8") if isinstance(checkpoint, bytes) else checkpoint
    if not isinstance(note, str):
        raise ValueError("checkpoint note missing")
    cp, _ = parse_checkpoint(note.encode("utf-8"))
    expected = {
        "log_inclusion.tree_size": (log_inclusion["tree_size"], cp.log_size),
        "log_inclusion.root_hash": (log_inclusion["root_hash"], cp.log_root.hex()),
        "log_inclusion.leaf_index": (log_inclusion["leaf_index"], batch["log_index"]),
        "status.root": (status["root"], cp.status_root.hex()),
        "member.root": (member["root"], cp.membership_root.hex()),
    }
    for what, (got, want) in expected.items():
        if got != want:
            raise ValueError(f"{what} is {got!r}, the checkpoint needs {want!r}")
    disclosure = None
    seal_value = None
    if document is not None and salt is not None and seal is not None:
        license = document if not isinstance(document, Mapping) else parse_document(document)
        if commitment(canonical_bytes(license), salt) != commitment_value:
            raise ValueError("the document and salt do not open the commitment")
        disclosure = {"document": license.to_canonical_dict(), "salt": bytes(salt).hex()}
        seal_value = seal.to_dict() if isinstance(seal, Seal) else dict(seal)
    lid = license_id if isinstance(license_id, LicenseId) else LicenseId.parse(license_id)
    value = {
        "format": FORMAT,
        "license_id": str(lid),
        "issuer": issuer,
        "commitment": bytes(commitment_value).hex(),
        "disclosure": disclosure,
        "seal": seal_value,
        "leaf": {
            "data": canonical.decode(leaf_data(lid, lid.version, commitment_value)),
            "leaf_index": leaf_index,
            "inclusion_proof": [bytes(h).hex() for h in leaf_inclusion_proof],
        },
        "batch": {
            "record": dict(batch["record"]),
            "log_index": batch["log_index"],
            "inclusion_proof": list(log_inclusion["inclusion_proof"]),
        },
        "status": {"record": status["record"], "proof": status["proof"]},
        "member": {"record": member["record"], "proof": member["proof"]},
        "checkpoint": note,
    }
    return ProofBundle.from_dict(value)
