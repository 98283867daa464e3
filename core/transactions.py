"""SM2-signed transaction envelopes for the license-registry ledger (I/O-free).

Trust never rests on the ordering service or on Fabric's MSP: every transaction is an envelope that its author
signs with an SM2 key (GB/T 32918.2) registered in the ledger's own membership state, and the contract checks
it.

Format, before any code:

1. **Envelope** = the canonical JSON (RFC 8785 subset, :mod:`core.canonical`) of ``{"tx": {...}, "signatures":
   [{"signer", "key_id", "signature"}, ...]}``, at most :data:`MAX_ENVELOPE_BYTES`. Non-canonical bytes are
   refused, so the bytes signed and the bytes parsed can never disagree.
2. **tx** = ``{"v": 1, "type", "network_id", "author", "key_id", "timestamp_ms", "seq", "args"}``: ``type``
   one of :data:`TX_TYPES`; ``network_id`` the hex SM3 of the genesis; ``author`` the member name; ``key_id``
   the author's signing key; ``timestamp_ms`` milliseconds since the Unix epoch (the transaction time against
   which key validity is judged); ``seq`` the sequence number of the object the transaction changes (see
   :data:`SEQ_MEANING`); ``args`` an object whose exact fields depend on ``type`` (:func:`parse_args`).
3. **Signatures** are SM2 (signer ID ``1234567812345678``, GM/T 0009) over ``SIGNING_CONTEXT ||
   canonical(tx)``; the domain-separation prefix keeps a transaction signature from ever being valid as a
   seal, a checkpoint cosignature or anything else licledger signs. ``signature`` is standard base64 of the
   DER ``SEQUENCE {r, s}``. The author's signature (``signer == author`` and ``key_id == tx.key_id``) is
   always required; membership changes also carry the national authority's endorsement and, when a key is
   added, a signature by the new key (proof of possession).
4. **Transaction id** = lower-case hex SM3 of ``canonical(tx)`` (signatures excluded: re-signing the same
   transaction does not make a new one). Bytes that do not parse get the SM3 of the raw bytes instead.

Parsing raises :class:`TransactionFormatError` (a :class:`~core.errors.FormatError`) naming the bad field. The
builders at the end are what nodes, the CLI and tests use to make envelopes.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from core.canonical import decode_canonical, encode
from core.consortium import (
    AUDITOR,
    NATIONAL,
    PROVINCE,
    Genesis,
    parse_int,
    parse_key_id,
    parse_spki_hex,
    validate_member_name,
    validate_uscc,
)
from core.errors import EncodingError, FormatError
from core.hashing import sm3
from core.sm2 import PrivateKey, PublicKey

__all__ = [
    "ADD_MEMBER",
    "ANCHOR_BATCH",
    "CHANGE_STATUS",
    "COSIGN_CHECKPOINT",
    "INIT_CONSORTIUM",
    "MAX_ENVELOPE_BYTES",
    "PROPOSE_CHECKPOINT",
    "RETIRE_KEY",
    "ROTATE_KEY",
    "SIGNING_CONTEXT",
    "STATUSES",
    "TX_TYPES",
    "Envelope",
    "Signature",
    "TransactionFormatError",
    "Tx",
    "add_member",
    "anchor_batch",
    "change_status",
    "cosign_checkpoint",
    "init_consortium",
    "parse_args",
    "propose_checkpoint",
    "retire_key",
    "rotate_key",
    "sign_envelope",
    "tx_id_of",
]

TX_VERSION = 1
SIGNING_CONTEXT = b"licledger/tx/v1\x00"
MAX_ENVELOPE_BYTES = 256 * 1024
MAX_SIGNATURES = 4
MAX_PROOF_HASHES = 64

INIT_CONSORTIUM = "InitConsortium"
ADD_MEMBER = "AddMember"
ROTATE_KEY = "RotateKey"
RETIRE_KEY = "RetireKey"
ANCHOR_BATCH = "AnchorBatch"
CHANGE_STATUS = "ChangeStatus"
PROPOSE_CHECKPOINT = "ProposeCheckpoint"
COSIGN_CHECKPOINT = "CosignCheckpoint"
ANNOUNCE_NODE = "AnnounceNode"
TX_TYPES = (
    INIT_CONSORTIUM,
    ADD_MEMBER,
    ROTATE_KEY,
    RETIRE_KEY,
    ANCHOR_BATCH,
    CHANGE_STATUS,
    PROPOSE_CHECKPOINT,
    COSIGN_CHECKPOINT,
    ANNOUNCE_NODE,
)

SEQ_MEANING = {
    INIT_CONSORTIUM: "always 0",
    ADD_MEMBER: "the new member record's seq: always 0",
    ROTATE_KEY: "the author's member record seq after the change (current seq + 1)",
    RETIRE_KEY: "the author's member record seq after the change (current seq + 1)",
    ANCHOR_BATCH: "the issuer's batch_seq, contiguous from 0",
    CHANGE_STATUS: "the license's status_seq, contiguous from 0",
    PROPOSE_CHECKPOINT: "the new checkpoint's sequence number, contiguous from 0",
    COSIGN_CHECKPOINT: "the sequence number of the checkpoint cosigned",
    ANNOUNCE_NODE: "the author's node record seq: contiguous from 0",
}

MAX_NODE_URL = 256
_NODE_URL = re.compile(r"https?://[\x21-\x7e]+")


def node_url_problem(url: str) -> str | None:
    """Why ``url`` cannot be a node's address (``None`` when it can): an ``http(s)`` URL of at most
    :data:`MAX_NODE_URL` printable ASCII characters, with a host, without user info, query, fragment, comma or
    trailing slash. The same rule holds for ``AnnounceNode`` and for ``LICLEDGER_NODE_DIRECTORY``."""
    if len(url) > MAX_NODE_URL:
        return f"longer than {MAX_NODE_URL} characters"
    if not _NODE_URL.fullmatch(url):
        return "not an http(s) URL of printable ASCII"
    rest = url.split("://", 1)[1]
    host = rest.split("/", 1)[0]
    if not host or host.startswith(":"):
        return "no host"
    if "@" in host:
        return "user info is not allowed"
    if any(c in url for c in "?#,"):
        return "a query, fragment or comma is not allowed"
    if url.endswith("/"):
        return "a trailing slash is not allowed"
    return None


SUSPENDED, REVOKED, REINSTATED, ACTIVE = "suspended", "revoked", "reinstated", "active"
STATUSES = (SUSPENDED, REVOKED, REINSTATED, ACTIVE)
NEW_VERSION = "NEW_VERSION"
"""The ``ChangeStatus`` reason of a version update: the status stays, the record now names a newer version."""

_HEX64 = re.compile(r"[0-9a-f]{64}")
_REASON_CODE = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_LICENSE_ID_SHAPE = re.compile(r"[0-9A-Za-z.]{1,128}")


class TransactionFormatError(FormatError):
    """An envelope or transaction is malformed (not canonical JSON, wrong fields, wrong types)."""


def _fail(message: str) -> TransactionFormatError:
    return TransactionFormatError(message)


def _str(value: object, what: str, *, max_len: int = 256) -> str:
    if not isinstance(value, str):
        raise _fail(f"{what} must be a string, got {type(value).__name__}")
    if len(value) > max_len:
        raise _fail(f"{what} is longer than {max_len} characters")
    return value


def _hash_hex(value: object, what: str) -> str:
    text = _str(value, what)
    if not _HEX64.fullmatch(text):
        raise _fail(f"{what} must be 64 lower-case hex digits (an SM3 hash), got {text!r}")
    return text


def _int(value: object, what: str, *, minimum: int = 0) -> int:
    try:
        return parse_int(value, what, minimum=minimum)
    except FormatError as exc:
        raise _fail(str(exc)) from None


def _fields(d: object, keys: Sequence[str], what: str) -> Mapping[str, Any]:
    if not isinstance(d, Mapping):
        raise _fail(f"{what} must be an object, got {type(d).__name__}")
    want = set(keys)
    if set(d) != want:
        missing, extra = sorted(want - set(d)), sorted(set(d) - want)
        raise _fail(f"{what} must have exactly the fields {sorted(want)} (missing {missing}, extra {extra})")
    return d


def _wrap(what: str, exc: FormatError) -> TransactionFormatError:
    return _fail(f"{what}: {exc}")


def b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def b64decode(value: object, what: str, *, max_bytes: int = 1024) -> bytes:
    """Strict standard base64 (with padding, no whitespace)."""
    text = _str(value, what, max_len=(max_bytes + 2) // 3 * 4)
    try:
        data = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise _fail(f"{what} is not strict base64") from None
    if b64encode(data) != text:
        raise _fail(f"{what} is not canonical base64")
    return data


# --- per-type arguments -----------------------------------------------------------------------------------


def _args_init(args: object) -> dict[str, Any]:
    m = _fields(args, ("genesis",), "args")
    try:
        genesis = Genesis.from_dict(m["genesis"])
    except FormatError as exc:
        raise _wrap("args.genesis", exc) from None
    return {"genesis": genesis.to_dict()}


def _args_add_member(args: object) -> dict[str, Any]:
    m = _fields(args, ("name", "role", "issuers", "spki"), "args")
    role = _str(m["role"], "args.role")
    if role not in (PROVINCE, AUDITOR):
        raise _fail(f"args.role must be {PROVINCE!r} or {AUDITOR!r}, got {role!r}")
    try:
        name = validate_member_name(m["name"], role)
        issuers_raw = m["issuers"]
        if not isinstance(issuers_raw, list) or len(issuers_raw) > 256:
            raise _fail("args.issuers must be a list of at most 256 codes")
        issuers = [validate_uscc(x, f"args.issuers[{i}]") for i, x in enumerate(issuers_raw)]
        parse_spki_hex(m["spki"], "args.spki")
    except TransactionFormatError:
        raise
    except FormatError as exc:
        raise _wrap("args", exc) from None
    if issuers != sorted(set(issuers)):
        raise _fail("args.issuers must be sorted and without duplicates")
    if role != PROVINCE and issuers:
        raise _fail("only provinces list issuers")
    return {"name": name, "role": role, "issuers": issuers, "spki": m["spki"]}


def _args_rotate(args: object) -> dict[str, Any]:
    m = _fields(args, ("new_spki",), "args")
    try:
        parse_spki_hex(m["new_spki"], "args.new_spki")
    except FormatError as exc:
        raise _wrap("args", exc) from None
    return dict(m)


def _args_retire(args: object) -> dict[str, Any]:
    m = _fields(args, ("key_id",), "args")
    try:
        parse_key_id(m["key_id"], "args.key_id")
    except FormatError as exc:
        raise _wrap("args", exc) from None
    return dict(m)


def _args_anchor(args: object) -> dict[str, Any]:
    m = _fields(args, ("root", "leaf_count"), "args")
    _hash_hex(m["root"], "args.root")
    _int(m["leaf_count"], "args.leaf_count", minimum=1)
    return dict(m)


def _args_status(args: object) -> dict[str, Any]:
    keys = (
        "license_id",
        "status",
        "reason",
        "effective_ms",
        "commitment",
        "batch_seq",
        "leaf_index",
        "inclusion_proof",
    )
    m = _fields(args, keys, "args")
    license_id = _str(m["license_id"], "args.license_id", max_len=128)
    if not _LICENSE_ID_SHAPE.fullmatch(license_id):
        raise _fail(f"args.license_id {license_id!r} has characters outside [0-9A-Za-z.]")
    status = _str(m["status"], "args.status")
    if status not in STATUSES:
        raise _fail(f"args.status must be one of {list(STATUSES)}, got {status!r}")
    reason = _str(m["reason"], "args.reason")
    if not _REASON_CODE.fullmatch(reason):
        raise _fail(f"args.reason must match [A-Za-z0-9_.-]{{1,64}}, got {reason!r}")
    _int(m["effective_ms"], "args.effective_ms")
    _hash_hex(m["commitment"], "args.commitment")
    _int(m["batch_seq"], "args.batch_seq")
    _int(m["leaf_index"], "args.leaf_index")
    proof = m["inclusion_proof"]
    if not isinstance(proof, list) or len(proof) > MAX_PROOF_HASHES:
        raise _fail(f"args.inclusion_proof must be a list of at most {MAX_PROOF_HASHES} hashes")
    for i, p in enumerate(proof):
        _hash_hex(p, f"args.inclusion_proof[{i}]")
    return dict(m)


def _args_propose(args: object) -> dict[str, Any]:
    return dict(_fields(args, (), "args"))


def _args_cosign(args: object) -> dict[str, Any]:
    m = _fields(args, ("signature",), "args")
    b64decode(m["signature"], "args.signature", max_bytes=128)
    return dict(m)


def _args_announce(args: object) -> dict[str, Any]:
    m = _fields(args, ("url",), "args")
    url = _str(m["url"], "args.url", max_len=MAX_NODE_URL)
    if url:
        problem = node_url_problem(url)
        if problem is not None:
            raise _fail(f"args.url {url!r}: {problem} (an empty url withdraws the announcement)")
    return dict(m)


_ARGS = {
    INIT_CONSORTIUM: _args_init,
    ADD_MEMBER: _args_add_member,
    ROTATE_KEY: _args_rotate,
    RETIRE_KEY: _args_retire,
    ANCHOR_BATCH: _args_anchor,
    CHANGE_STATUS: _args_status,
    PROPOSE_CHECKPOINT: _args_propose,
    COSIGN_CHECKPOINT: _args_cosign,
    ANNOUNCE_NODE: _args_announce,
}


def parse_args(tx_type: str, args: object) -> dict[str, Any]:
    """Check ``args`` against the exact schema of ``tx_type``; return it (as given) or raise."""
    try:
        parser = _ARGS[tx_type]
    except KeyError:
        raise _fail(f"unknown transaction type {tx_type!r}; expected one of {list(TX_TYPES)}") from None
    return parser(args)


# --- the transaction and its envelope ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Tx:
    """The signed part of an envelope (rule 2).

    Treat ``args`` as immutable: the canonical bytes are computed once and cached.
    """

    type: str
    network_id: str
    author: str
    key_id: str
    timestamp_ms: int
    seq: int
    args: dict[str, Any]
    _canonical: bytes | None = field(default=None, init=False, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "v": TX_VERSION,
            "type": self.type,
            "network_id": self.network_id,
            "author": self.author,
            "key_id": self.key_id,
            "timestamp_ms": self.timestamp_ms,
            "seq": self.seq,
            "args": self.args,
        }

    def canonical(self) -> bytes:
        if self._canonical is None:
            object.__setattr__(self, "_canonical", encode(self.to_dict()))
        assert self._canonical is not None
        return self._canonical

    def signing_message(self) -> bytes:
        """``SIGNING_CONTEXT || canonical(tx)``: the bytes every signature of the envelope covers (rule 3)."""
        return SIGNING_CONTEXT + self.canonical()

    @property
    def tx_id(self) -> str:
        """Lower-case hex SM3 of the canonical tx (rule 4)."""
        return sm3(self.canonical()).hex()

    @classmethod
    def from_dict(cls, d: object) -> Tx:
        m = _fields(d, ("v", "type", "network_id", "author", "key_id", "timestamp_ms", "seq", "args"), "tx")
        if m["v"] != TX_VERSION or isinstance(m["v"], bool):
            raise _fail(f"tx.v must be {TX_VERSION}, got {m['v']!r}")
        tx_type = _str(m["type"], "tx.type")
        if tx_type not in TX_TYPES:
            raise _fail(f"tx.type {tx_type!r} is not one of {list(TX_TYPES)}")
        network_id = _hash_hex(m["network_id"], "tx.network_id")
        author = _str(m["author"], "tx.author", max_len=64)
        if not author:
            raise _fail("tx.author is empty")
        key_id = _hash_hex(m["key_id"], "tx.key_id")
        timestamp = _int(m["timestamp_ms"], "tx.timestamp_ms")
        seq = _int(m["seq"], "tx.seq")
        args = parse_args(tx_type, m["args"])
        return cls(tx_type, network_id, author, key_id, timestamp, seq, args)


@dataclass(frozen=True, slots=True)
class Signature:
    """One SM2 signature over :meth:`Tx.signing_message` by ``signer``'s key ``key_id``."""

    signer: str
    key_id: str
    signature: bytes

    def to_dict(self) -> dict[str, Any]:
        return {"signer": self.signer, "key_id": self.key_id, "signature": b64encode(self.signature)}

    @classmethod
    def from_dict(cls, d: object, what: str) -> Signature:
        m = _fields(d, ("signer", "key_id", "signature"), what)
        signer = _str(m["signer"], f"{what}.signer", max_len=64)
        key_id = _hash_hex(m["key_id"], f"{what}.key_id")
        sig = b64decode(m["signature"], f"{what}.signature", max_bytes=128)
        return cls(signer, key_id, sig)

    def verify(self, tx: Tx, public_key: PublicKey) -> None:
        """Raise :class:`~core.errors.SignatureError` / ``SignatureFormatError`` unless it verifies."""
        public_key.verify(tx.signing_message(), self.signature)


@dataclass(frozen=True, slots=True)
class Envelope:
    """A transaction with its signatures (rule 1)."""

    tx: Tx
    signatures: tuple[Signature, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"tx": self.tx.to_dict(), "signatures": [s.to_dict() for s in self.signatures]}

    def to_bytes(self) -> bytes:
        return encode(self.to_dict())

    @property
    def tx_id(self) -> str:
        return self.tx.tx_id

    def signature_by(self, signer: str, key_id: str) -> Signature | None:
        for s in self.signatures:
            if s.signer == signer and s.key_id == key_id:
                return s
        return None

    @classmethod
    def from_bytes(cls, data: bytes) -> Envelope:
        """Parse strictly (rule 1); :class:`TransactionFormatError` naming the problem."""
        if not isinstance(data, bytes | bytearray):
            raise TypeError(f"envelope must be bytes, not {type(data).__name__}")
        if len(data) > MAX_ENVELOPE_BYTES:
            raise _fail(f"envelope is {len(data)} bytes, more than {MAX_ENVELOPE_BYTES}")
        try:
            value = decode_canonical(bytes(data))
        except EncodingError as exc:
            raise _fail(f"envelope is not canonical JSON: {exc}") from None
        m = _fields(value, ("tx", "signatures"), "envelope")
        tx = Tx.from_dict(m["tx"])
        sigs_raw = m["signatures"]
        if not isinstance(sigs_raw, list) or not 1 <= len(sigs_raw) <= MAX_SIGNATURES:
            raise _fail(f"envelope.signatures must be a list of 1 to {MAX_SIGNATURES} signatures")
        sigs = tuple(Signature.from_dict(s, f"signatures[{i}]") for i, s in enumerate(sigs_raw))
        if len({(s.signer, s.key_id) for s in sigs}) != len(sigs):
            raise _fail("envelope.signatures has two signatures by the same signer and key")
        return cls(tx, sigs)


def tx_id_of(data: bytes) -> str:
    """The transaction id of envelope bytes (rule 4), or the hex SM3 of ``data`` if they do not parse."""
    try:
        return Envelope.from_bytes(data).tx_id
    except FormatError:
        return sm3(bytes(data)).hex()


def sign_envelope(tx: Tx, signers: Sequence[tuple[str, PrivateKey]]) -> bytes:
    """Sign ``tx`` with each ``(signer name, key)`` in order and return the envelope bytes.

    The author's signature must be among them; the result is parsed back to make sure it is well-formed.
    """
    message = tx.signing_message()
    sigs = tuple(Signature(name, key.key_id, key.sign(message)) for name, key in signers)
    data = Envelope(tx, sigs).to_bytes()
    Envelope.from_bytes(data)
    return data


# --- builders ---------------------------------------------------------------------------------------------


def init_consortium(genesis: Genesis, national_key: PrivateKey, *, timestamp_ms: int) -> bytes:
    """``InitConsortium``: create the ledger from ``genesis``, signed by a national key listed in it."""
    tx = Tx(
        INIT_CONSORTIUM,
        genesis.network_id,
        NATIONAL,
        national_key.key_id,
        timestamp_ms,
        0,
        {"genesis": genesis.to_dict()},
    )
    return sign_envelope(tx, [(NATIONAL, national_key)])


def add_member(
    network_id: str,
    *,
    name: str,
    role: str,
    key: PrivateKey,
    national_key: PrivateKey,
    timestamp_ms: int,
    issuers: Sequence[str] = (),
) -> bytes:
    """``AddMember``: signed by the new member's key (author, proof of possession) and endorsed by
    national."""
    args = {"name": name, "role": role, "issuers": sorted(issuers), "spki": key.public_key.to_der().hex()}
    tx = Tx(ADD_MEMBER, network_id, name, key.key_id, timestamp_ms, 0, args)
    return sign_envelope(tx, [(name, key), (NATIONAL, national_key)])


def rotate_key(
    network_id: str,
    *,
    member: str,
    seq: int,
    old_key: PrivateKey,
    new_key: PrivateKey,
    national_key: PrivateKey | None,
    timestamp_ms: int,
) -> bytes:
    """``RotateKey``: retire ``old_key`` (the signing key) and add ``new_key`` at ``timestamp_ms``.

    Signed by the old key (author), the new key (proof of possession) and national (endorsement; ``None`` when
    ``member`` is the national authority itself, whose author signature is then the endorsement).
    """
    args = {"new_spki": new_key.public_key.to_der().hex()}
    tx = Tx(ROTATE_KEY, network_id, member, old_key.key_id, timestamp_ms, seq, args)
    signers = [(member, old_key), (member, new_key)]
    if national_key is not None and member != NATIONAL:
        signers.append((NATIONAL, national_key))
    return sign_envelope(tx, signers)


def retire_key(
    network_id: str,
    *,
    member: str,
    seq: int,
    signing_key: PrivateKey,
    key_id: str,
    national_key: PrivateKey | None,
    timestamp_ms: int,
) -> bytes:
    """``RetireKey``: end the validity of ``member``'s key ``key_id`` at ``timestamp_ms``."""
    tx = Tx(RETIRE_KEY, network_id, member, signing_key.key_id, timestamp_ms, seq, {"key_id": key_id})
    signers = [(member, signing_key)]
    if national_key is not None and member != NATIONAL:
        signers.append((NATIONAL, national_key))
    return sign_envelope(tx, signers)


def anchor_batch(
    network_id: str,
    *,
    issuer: str,
    batch_seq: int,
    root: bytes,
    leaf_count: int,
    key: PrivateKey,
    timestamp_ms: int,
) -> bytes:
    """``AnchorBatch``: province ``issuer`` anchors the RFC 9162 root of a batch of ``leaf_count`` leaves."""
    args = {"root": bytes(root).hex(), "leaf_count": leaf_count}
    tx = Tx(ANCHOR_BATCH, network_id, issuer, key.key_id, timestamp_ms, batch_seq, args)
    return sign_envelope(tx, [(issuer, key)])


def change_status(
    network_id: str,
    *,
    issuer: str,
    license_id: str,
    status: str,
    reason: str,
    effective_ms: int,
    status_seq: int,
    commitment: bytes,
    batch_seq: int,
    leaf_index: int,
    inclusion_proof: Sequence[bytes],
    key: PrivateKey,
    timestamp_ms: int,
) -> bytes:
    """``ChangeStatus``: set the status of ``license_id``, proving its leaf is in the issuer's batch."""
    args = {
        "license_id": license_id,
        "status": status,
        "reason": reason,
        "effective_ms": effective_ms,
        "commitment": bytes(commitment).hex(),
        "batch_seq": batch_seq,
        "leaf_index": leaf_index,
        "inclusion_proof": [bytes(p).hex() for p in inclusion_proof],
    }
    tx = Tx(CHANGE_STATUS, network_id, issuer, key.key_id, timestamp_ms, status_seq, args)
    return sign_envelope(tx, [(issuer, key)])


def propose_checkpoint(network_id: str, *, member: str, seq: int, key: PrivateKey, timestamp_ms: int) -> bytes:
    """``ProposeCheckpoint``: ask the contract to compute and store checkpoint ``seq`` from current state."""
    tx = Tx(PROPOSE_CHECKPOINT, network_id, member, key.key_id, timestamp_ms, seq, {})
    return sign_envelope(tx, [(member, key)])


def cosign_checkpoint(
    network_id: str,
    *,
    member: str,
    seq: int,
    signature: bytes,
    key: PrivateKey,
    timestamp_ms: int,
) -> bytes:
    """``CosignCheckpoint``: record ``member``'s cosignature (made with ``key``) on checkpoint ``seq``."""
    tx = Tx(
        COSIGN_CHECKPOINT,
        network_id,
        member,
        key.key_id,
        timestamp_ms,
        seq,
        {"signature": b64encode(signature)},
    )
    return sign_envelope(tx, [(member, key)])


def announce_node(network_id: str, *, member: str, seq: int, url: str, key: PrivateKey, timestamp_ms: int) -> bytes:
    """``AnnounceNode``: ``member`` says where its node's API is (``url``; ``""`` withdraws it), the ``seq``-th
    such record. A directory hint for referrals, signed so that nobody else can redirect a member's traffic."""
    tx = Tx(ANNOUNCE_NODE, network_id, member, key.key_id, timestamp_ms, seq, {"url": url})
    return sign_envelope(tx, [(member, key)])
