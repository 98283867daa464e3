"""The contract's view of world state within one transaction, and the state key layout.

Fabric's ``GetState`` does not see the transaction's own ``PutState`` (no read-your-writes), and range queries
do not either. :class:`TxState` therefore keeps the transaction's writes itself and serves later reads from
them, so the contract behaves the same on a Fabric peer and on the embedded peer. Writes reach the stub only
in :meth:`TxState.flush`, in sorted key order, after every rule has passed: a rejected transaction writes
nothing.

Key layout (every key is ASCII; docs/chaincode.md has the table with value formats):

``config/genesis``, ``config/network_id``, ``config/member_count``; ``ledger/head``; ``ledger/time``;
``clock/<member>``; ``clock/<member>/duty``; ``member/<name>``; ``keyowner/<key_id>``; ``issuer/<uscc>``;
``rec/<sm3 hex>``; ``smt/<tree>/head``;
``smt/<tree>/n/<node id>/<inverted version>``; ``log/range``; ``log/node/<level>/<index>``;
``log/entry/<index>``; ``batch/<issuer>/<batch_seq>``; ``batchenv/<issuer>/<batch_seq>``;
``batchnext/<issuer>``; ``status/<license base id>``; ``checkpoint/<seq>``; ``checkpoint/next``;
``checkpoint/latest_final``.
"""

from __future__ import annotations

from typing import Any

from core.canonical import decode, encode
from core.errors import EncodingError
from core.hashing import sm3

__all__ = ["TxState", "counter_key", "index_key"]

# Keys ----------------------------------------------------------------------------------------------------

GENESIS = "config/genesis"
NETWORK_ID = "config/network_id"
LEDGER_HEAD = "ledger/head"
LEDGER_TIME = "ledger/time"  # the largest timestamp of any accepted transaction (the "ledger time")
MEMBER_COUNT = "config/member_count"
CHECKPOINT_NEXT = "checkpoint/next"
CHECKPOINT_LATEST_FINAL = "checkpoint/latest_final"
LOG_RANGE = "log/range"
NODES = "config/nodes"  # {member: its latest AnnounceNode record}: where each member's node API is


def index_key(prefix: str, index: int) -> str:
    """``<prefix>/<index>`` with the index zero-padded to 16 digits, so keys sort by index."""
    return f"{prefix}/{index:016d}"


def counter_key(prefix: str, name: str) -> str:
    return f"{prefix}/{name}"


def clock_key(member: str) -> str:
    """The member's own clock: the timestamp of its last accepted transaction other than a checkpoint duty."""
    return f"clock/{member}"


def node_clock_key(member: str) -> str:
    """The member's node-announcement clock (``AnnounceNode``): its own domain, like the duty clock, so that an
    announcement made beside the anchoring worker never makes the member's own transactions regress."""
    return f"clock/{member}/node"


def duty_clock_key(member: str) -> str:
    """The member's checkpoint-duty clock (``ProposeCheckpoint``, ``CosignCheckpoint``): its own domain, so a
    duty dated at the peer's wall clock never makes the member's own transactions regress. Member names
    never contain ``/``, so this key cannot be another member's clock."""
    return f"clock/{member}/duty"


def member_state_key(name: str) -> str:
    return f"member/{name}"


def key_owner_key(key_id: str) -> str:
    return f"keyowner/{key_id}"


def issuer_key(uscc: str) -> str:
    return f"issuer/{uscc}"


def record_key(digest_hex: str) -> str:
    return f"rec/{digest_hex}"


def batch_key(issuer: str, batch_seq: int) -> str:
    return index_key(f"batch/{issuer}", batch_seq)


def batch_envelope_key(issuer: str, batch_seq: int) -> str:
    return index_key(f"batchenv/{issuer}", batch_seq)


def batch_next_key(issuer: str) -> str:
    return f"batchnext/{issuer}"


def status_key(license_base_id: str) -> str:
    return f"status/{license_base_id}"


def checkpoint_key(seq: int) -> str:
    return index_key("checkpoint", seq)


class StateCorruptError(Exception):
    """A stored value does not parse: the world state was altered outside the contract."""


GENESIS_HEAD = bytes(32)
_HEAD_CONTEXT = b"licledger/ledger-head/v1\x00"


def next_head(head: bytes, tx_id: str) -> bytes:
    """The ledger head after accepting ``tx_id``: ``SM3(context || head || tx_id bytes)``.

    The head chains every accepted transaction in order (starting from 32 zero bytes), so equal heads mean
    equal histories of accepted transactions, not only equal roots. Checkpoints carry it.
    """
    return sm3(_HEAD_CONTEXT + head + bytes.fromhex(tx_id))


# The transaction view ------------------------------------------------------------------------------------


class TxState:
    """Reads through ``stub`` with a cache, writes into an overlay, flushes on success.

    ``stub`` is a Fabric ``ChaincodeStub`` (or :class:`network.executor.EmbeddedStub`): ``get_state`` and
    ``put_state``/``delete_state`` are coroutines, ``get_state_by_range`` returns an async iterator of records
    with ``key`` and ``value``. Missing keys read as ``None`` (Fabric returns empty bytes for them).
    """

    def __init__(self, stub: Any) -> None:
        self._stub = stub
        self._cache: dict[str, bytes | None] = {}
        self._writes: dict[str, bytes | None] = {}

    @property
    def stub(self) -> Any:
        return self._stub

    async def get(self, key: str) -> bytes | None:
        if key in self._writes:
            return self._writes[key]
        if key not in self._cache:
            raw = await self._stub.get_state(key)
            self._cache[key] = bytes(raw) if raw else None
        return self._cache[key]

    async def first_in_range(self, start: str, end: str) -> tuple[str, bytes] | None:
        """The smallest key in ``[start, end)`` and its value, counting this transaction's own writes."""
        found: tuple[str, bytes] | None = None
        iterator = await self._stub.get_state_by_range(start, end)
        try:
            async for record in iterator:
                if record.key in self._writes:
                    continue  # decided by this transaction's own writes, below
                if record.value:
                    found = (record.key, bytes(record.value))
                    break
        finally:
            await iterator.aclose()
        own = [k for k, v in self._writes.items() if v is not None and start <= k < end]
        if own:
            first = min(own)
            if found is None or first < found[0]:
                value = self._writes[first]
                assert value is not None
                found = (first, value)
        return found

    def put(self, key: str, value: bytes) -> None:
        if not isinstance(value, bytes) or not value:
            raise ValueError(f"state value for {key!r} must be non-empty bytes")
        self._writes[key] = value

    def delete(self, key: str) -> None:
        self._writes[key] = None

    async def get_json(self, key: str) -> Any:
        """The canonical JSON value stored under ``key``, or ``None`` when absent."""
        raw = await self.get(key)
        if raw is None:
            return None
        try:
            return decode(raw)  # written canonical by the contract; the peer guards state integrity
        except EncodingError as exc:
            raise StateCorruptError(f"state key {key!r} does not hold canonical JSON: {exc}") from None

    def put_json(self, key: str, value: Any) -> None:
        self.put(key, encode(value))

    async def ledger_head(self) -> tuple[int, bytes]:
        """``(tx_count, head)``: accepted transactions so far and the chain of their ids
        (:func:`next_head`)."""
        value = await self.get_json(LEDGER_HEAD)
        if value is None:
            return 0, GENESIS_HEAD
        try:
            return int(value["tx_count"]), bytes.fromhex(value["head"])
        except (TypeError, KeyError, ValueError):
            raise StateCorruptError(f"{LEDGER_HEAD} is not {{tx_count, head}}") from None

    def put_ledger_head(self, tx_count: int, head: bytes) -> None:
        self.put_json(LEDGER_HEAD, {"tx_count": tx_count, "head": head.hex()})

    async def get_int(self, key: str, default: int = 0) -> int:
        value = await self.get_json(key)
        if value is None:
            return default
        if not isinstance(value, int) or isinstance(value, bool):
            raise StateCorruptError(f"state key {key!r} does not hold an integer")
        return value

    @property
    def writes(self) -> dict[str, bytes | None]:
        return {k: self._writes[k] for k in sorted(self._writes)}

    async def flush(self) -> None:
        """Send the writes to the stub in sorted key order."""
        for key in sorted(self._writes):
            value = self._writes[key]
            if value is None:
                await self._stub.delete_state(key)
            else:
                await self._stub.put_state(key, value)
