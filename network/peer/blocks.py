"""The block format of the embedded ledger and its SM3 hash chain (pure functions, no I/O).

Rules (every honest peer applies them to the same ordered stream and so forms byte-identical blocks):

1. **One ordered payload is one block.** Block 0 holds the genesis transaction from the network configuration;
   the payload at ordering position ``p`` (0-based) becomes block ``p + 1``. A payload is the canonical
   encoding (RFC 8785 subset, :mod:`core.canonical`) of ``{"kind": "licledger.batch/1", "txs": [base64
   envelope, ...]}``: the envelopes one peer submitted together. A payload that does not parse as such is kept
   whole as a single envelope, which the executor then rejects as malformed: a bad payload never stops the
   chain.
2. **Every transaction is recorded, valid or not** (Hyperledger Fabric's validation flags): its ``tx_id``, a
   validity flag, a reason code and message when invalid, and, when valid, the state writes and events it
   produced. An invalid transaction's writes are discarded.
3. **The header** is ``{number, prev_hash, data_hash, state_writes_hash, timestamp, version}`` where
   ``data_hash = SM3(payload)`` (GM/T 0004-2012), ``state_writes_hash = SM3(canonical(tx records))`` with each
   written value replaced by its SM3 digest, and ``timestamp`` is the largest signed timestamp among the
   block's valid transactions, never below the previous block's (a block with no valid transaction keeps the
   previous timestamp). A peer's clock never enters a block.
4. ``block_hash = SM3(canonical(header))``; ``prev_hash`` of block 0 is 32 zero bytes.
5. **The commit hash** (Fabric's state "commit hash") chains the state changes alone: ``commit_hash(n) =
   SM3(canonical({number, prev_commit_hash, state_writes_hash}))``. Two peers with the same commit hash at
   height ``n`` applied the same writes in the same order, hence hold the same world state.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from core.canonical import decode, encode
from core.errors import EncodingError
from core.hashing import sm3
from network.peer.errors import BlockFormatError, BlockIntegrityError

PAYLOAD_KIND = "licledger.batch/1"
HEADER_VERSION = 1
ZERO_HASH = bytes(32)
MAX_TXS_PER_PAYLOAD = 10_000


# --- ordered payloads
# ----------------------------------------------------------------------------------------


def encode_payload(envelopes: Sequence[bytes]) -> bytes:
    """The ordered payload carrying ``envelopes`` (submitted together, kept in this order)."""
    if not envelopes:
        raise ValueError("a payload carries at least one envelope")
    if len(envelopes) > MAX_TXS_PER_PAYLOAD:
        raise ValueError(f"a payload carries at most {MAX_TXS_PER_PAYLOAD} envelopes, not {len(envelopes)}")
    for env in envelopes:
        if not isinstance(env, bytes | bytearray):
            raise TypeError(f"envelopes are bytes, not {type(env).__name__}")
    return encode({"kind": PAYLOAD_KIND, "txs": [base64.b64encode(bytes(e)).decode("ascii") for e in envelopes]})


def decode_payload(payload: bytes) -> list[bytes]:
    """The envelopes of an ordered payload; a malformed payload is returned whole as one (malformed) envelope.

    Never raises: the orderer does not interpret payloads, so anything it ordered must still form a block.
    """
    try:
        value = decode(payload)
        if encode(value) != payload:
            raise EncodingError("payload is not canonical")
    except EncodingError:
        return [bytes(payload)]
    if not isinstance(value, dict) or set(value) != {"kind", "txs"} or value["kind"] != PAYLOAD_KIND:
        return [bytes(payload)]
    txs = value["txs"]
    if not isinstance(txs, list) or not 1 <= len(txs) <= MAX_TXS_PER_PAYLOAD:
        return [bytes(payload)]
    envelopes: list[bytes] = []
    for item in txs:
        if not isinstance(item, str):
            return [bytes(payload)]
        try:
            envelopes.append(base64.b64decode(item, validate=True))
        except (binascii.Error, ValueError):
            return [bytes(payload)]
    return envelopes


# --- transaction records
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TxRecord:
    """What a block records about one transaction (rule 2)."""

    tx_id: str
    valid: bool
    reason: str | None = None
    message: str | None = None
    writes: Mapping[str, bytes | None] = field(default_factory=dict)
    events: Sequence[Mapping[str, Any]] = ()

    def __post_init__(self) -> None:
        if self.valid and self.reason is not None:
            raise ValueError("a valid transaction has no rejection reason")
        if not self.valid and (self.writes or self.events):
            raise ValueError("an invalid transaction's writes and events are discarded")

    def hashed_json(self) -> dict[str, Any]:
        """The record as hashed into ``state_writes_hash``: written values replaced by their SM3 digests."""
        return {
            "tx_id": self.tx_id,
            "valid": self.valid,
            "reason": self.reason,
            "message": self.message,
            "writes": {k: (None if v is None else sm3(v).hex()) for k, v in self.writes.items()},
            "events": [dict(e) for e in self.events],
        }

    def to_json(self) -> dict[str, Any]:
        """The record as served over HTTP: written values in base64."""
        return {
            "tx_id": self.tx_id,
            "valid": self.valid,
            "reason": self.reason,
            "message": self.message,
            "writes": {k: (None if v is None else base64.b64encode(v).decode("ascii")) for k, v in self.writes.items()},
            "events": [dict(e) for e in self.events],
        }

    @classmethod
    def from_json(cls, value: Any) -> TxRecord:
        """Parse a served record; raises :class:`BlockFormatError` if it is malformed."""
        if not isinstance(value, dict):
            raise BlockFormatError("transaction record is not an object")
        try:
            tx_id, valid = value["tx_id"], value["valid"]
            reason, message = value.get("reason"), value.get("message")
            raw_writes, events = value.get("writes", {}), value.get("events", [])
        except KeyError as exc:
            raise BlockFormatError(f"transaction record lacks {exc.args[0]!r}") from None
        if not isinstance(tx_id, str) or not isinstance(valid, bool):
            raise BlockFormatError("transaction record: tx_id must be a string and valid a boolean")
        if not (reason is None or isinstance(reason, str)) or not (message is None or isinstance(message, str)):
            raise BlockFormatError("transaction record: reason and message must be strings or null")
        if not isinstance(raw_writes, dict) or not isinstance(events, list):
            raise BlockFormatError("transaction record: writes must be an object and events a list")
        writes: dict[str, bytes | None] = {}
        for k, v in raw_writes.items():
            if v is None:
                writes[k] = None
            elif isinstance(v, str):
                try:
                    writes[k] = base64.b64decode(v, validate=True)
                except (binascii.Error, ValueError):
                    raise BlockFormatError(f"transaction record: write {k!r} is not base64") from None
            else:
                raise BlockFormatError(f"transaction record: write {k!r} must be base64 or null")
        if not all(isinstance(e, dict) for e in events):
            raise BlockFormatError("transaction record: events must be objects")
        try:
            return cls(tx_id, valid, reason, message, writes, tuple(events))
        except ValueError as exc:
            raise BlockFormatError(f"transaction record: {exc}") from None


def state_writes_hash(records: Sequence[TxRecord]) -> bytes:
    """``SM3(canonical(records))`` (rule 3): commits to validity flags, reasons, writes and events."""
    return sm3(encode([r.hashed_json() for r in records]))


def block_timestamp(prev_timestamp: int, valid_tx_times: Sequence[int]) -> int:
    """Rule 3: the latest signed time among the valid transactions, never earlier than the previous block."""
    return max([prev_timestamp, *valid_tx_times])


# --- headers and blocks
# ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BlockHeader:
    """The hashed part of a block (rule 3)."""

    number: int
    prev_hash: bytes
    data_hash: bytes
    state_writes_hash: bytes
    timestamp: int

    def encode(self) -> bytes:
        return encode(
            {
                "version": HEADER_VERSION,
                "number": self.number,
                "prev_hash": self.prev_hash.hex(),
                "data_hash": self.data_hash.hex(),
                "state_writes_hash": self.state_writes_hash.hex(),
                "timestamp": self.timestamp,
            }
        )

    def hash(self) -> bytes:
        """``block_hash = SM3(canonical(header))`` (rule 4)."""
        return sm3(self.encode())


def commit_hash(number: int, prev_commit_hash: bytes, writes_hash: bytes) -> bytes:
    """Rule 5: the chained digest of every state change up to and including block ``number``."""
    return sm3(
        encode(
            {
                "number": number,
                "prev_commit_hash": prev_commit_hash.hex(),
                "state_writes_hash": writes_hash.hex(),
            }
        )
    )


@dataclass(frozen=True, slots=True)
class Block:
    """A committed block: header, the ordered payload it was formed from, and one record per transaction."""

    header: BlockHeader
    payload: bytes
    records: tuple[TxRecord, ...]
    block_hash: bytes
    commit_hash: bytes

    @property
    def number(self) -> int:
        return self.header.number

    @classmethod
    def build(
        cls,
        *,
        number: int,
        prev_hash: bytes,
        prev_commit_hash: bytes,
        prev_timestamp: int,
        payload: bytes,
        records: Sequence[TxRecord],
        valid_tx_times: Sequence[int],
    ) -> Block:
        """Form block ``number`` from an ordered payload and the outcome of executing its transactions."""
        if number < 0:
            raise ValueError("block numbers start at 0")
        swh = state_writes_hash(records)
        header = BlockHeader(number, prev_hash, sm3(payload), swh, block_timestamp(prev_timestamp, valid_tx_times))
        return cls(header, bytes(payload), tuple(records), header.hash(), commit_hash(number, prev_commit_hash, swh))

    def verify(self, *, prev_hash: bytes, prev_commit_hash: bytes) -> None:
        """Recompute every hash of this block and check its links; raise :class:`BlockIntegrityError` if any
        differs.

        Steps: (1) data_hash against the payload, (2) state_writes_hash against the records, (3) block_hash
        against the header, (4) prev_hash against the previous block's hash, (5) commit_hash against the
        chain.
        """
        h = self.header
        # (1) the payload is the one the header names
        calculated = sm3(self.payload)
        if calculated != h.data_hash:
            raise BlockIntegrityError(h.number, "data_hash", h.data_hash, calculated)
        # (2) the validity flags, reasons and writes are the ones the header names
        calculated = state_writes_hash(self.records)
        if calculated != h.state_writes_hash:
            raise BlockIntegrityError(h.number, "state_writes_hash", h.state_writes_hash, calculated)
        # (3) the header is the one the block hash names
        calculated = h.hash()
        if calculated != self.block_hash:
            raise BlockIntegrityError(h.number, "block_hash", self.block_hash, calculated)
        # (4) the chain link
        if h.prev_hash != prev_hash:
            raise BlockIntegrityError(h.number, "prev_hash", prev_hash, h.prev_hash)
        # (5) the state chain
        calculated = commit_hash(h.number, prev_commit_hash, h.state_writes_hash)
        if calculated != self.commit_hash:
            raise BlockIntegrityError(h.number, "commit_hash", self.commit_hash, calculated)

    def to_json(self) -> dict[str, Any]:
        h = self.header
        return {
            "number": h.number,
            "prev_hash": h.prev_hash.hex(),
            "data_hash": h.data_hash.hex(),
            "state_writes_hash": h.state_writes_hash.hex(),
            "timestamp": h.timestamp,
            "block_hash": self.block_hash.hex(),
            "commit_hash": self.commit_hash.hex(),
            "payload": base64.b64encode(self.payload).decode("ascii"),
            "txs": [r.to_json() for r in self.records],
        }

    @classmethod
    def from_json(cls, value: Any) -> Block:
        """Parse a served block (no hash is checked here: see :meth:`verify`)."""
        if not isinstance(value, dict):
            raise BlockFormatError("block is not an object")
        try:
            number, timestamp, txs = value["number"], value["timestamp"], value["txs"]
            hashes = {
                k: _hash_field(value[k], k)
                for k in ("prev_hash", "data_hash", "state_writes_hash", "block_hash", "commit_hash")
            }
            payload = base64.b64decode(value["payload"], validate=True)
        except KeyError as exc:
            raise BlockFormatError(f"block lacks {exc.args[0]!r}") from None
        except (binascii.Error, ValueError, TypeError):
            raise BlockFormatError("block payload is not base64") from None
        if type(number) is not int or number < 0 or type(timestamp) is not int:
            raise BlockFormatError("block number and timestamp must be non-negative integers")
        if not isinstance(txs, list):
            raise BlockFormatError("block txs must be a list")
        header = BlockHeader(number, hashes["prev_hash"], hashes["data_hash"], hashes["state_writes_hash"], timestamp)
        records = tuple(TxRecord.from_json(t) for t in txs)
        return cls(header, payload, records, hashes["block_hash"], hashes["commit_hash"])


def _hash_field(value: Any, name: str) -> bytes:
    if not isinstance(value, str) or len(value) != 64:
        raise BlockFormatError(f"{name} must be 64 hex digits")
    try:
        return bytes.fromhex(value)
    except ValueError:
        raise BlockFormatError(f"{name} must be 64 hex digits") from None
