"""The embedded executor: runs the license-registry contract inside an embedded peer, without a Fabric peer.

The contract (:class:`chaincode.contract.LicenseRegistry`) runs through the real ``fabric_contract_api``
dispatcher (``ContractChaincode.invoke``), given an :class:`EmbeddedStub`: an implementation of the Fabric
``ChaincodeStub`` interface over a :class:`WorldState`, with a write overlay and read-your-writes. So the code
that validates a transaction on an embedded peer is the code a Fabric peer would run.

Semantics the peer relies on:

* :func:`execute` is deterministic: the same committed state and envelope give the same :class:`TxResult`,
byte for byte, on every machine. The stub's transaction timestamp and id come from the envelope, nothing from
the local clock. It never raises for bad input: malformed bytes give ``valid=False`` with
``MALFORMED_PAYLOAD``. Only a broken :class:`WorldState` (an exception from ``get``/``range``) propagates.
* A block is a sequence of envelopes executed in order: the peer applies the ``writes`` of each valid
  transaction to its block overlay before executing the next one (see :class:`network.peer.state`). Invalid
  transactions have empty ``writes``.
* The contract awaits nothing but the stub, whose coroutines complete at once, so :func:`execute` drives the
  coroutine synchronously (no event loop is created; it works inside a running loop too).
* ``state_root`` is not provided: the roots that matter (anchor log, status map, membership) are in the
  ``GetLedgerInfo`` query and in checkpoints.
"""

from __future__ import annotations

import bisect
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from fabric_chaincode_python.fabric_contract_api import ContractChaincode  # type: ignore[import-untyped]
from fabric_chaincode_python.fabric_shim.interfaces import (  # type: ignore[import-untyped]
    ChaincodeStubInterface,
)
from fabric_chaincode_python.fabric_shim.utils import (  # type: ignore[import-untyped]
    COMPOSITEKEY_NS,
    MIN_UNICODE_RUNE_VALUE,
    validate_composite_key_attribute,
)
from google.protobuf.timestamp_pb2 import Timestamp

from chaincode.contract import QUERIES, LicenseRegistry
from chaincode.errors import QueryError, Reason, split_reason
from core.canonical import decode_canonical
from core.errors import FormatError
from core.transactions import Envelope, tx_id_of

__all__ = [
    "EmbeddedStub",
    "MemoryWorldState",
    "QueryError",
    "TxResult",
    "WorldState",
    "evaluate",
    "execute",
]

CHANNEL_ID = "licledger"


class WorldState(Protocol):
    """The peer's committed state: string keys, non-empty byte values."""

    def get(self, key: str) -> bytes | None:
        """The value of ``key``, or ``None``."""
        ...

    def range(self, start: str, end: str) -> Iterator[tuple[str, bytes]]:
        """``(key, value)`` for ``start <= key < end`` in ascending key order (``end == ""``: no upper
        bound)."""
        ...


@dataclass
class TxResult:
    """The outcome of one envelope. ``writes`` maps keys (sorted) to new values, ``None`` = delete."""

    tx_id: str
    valid: bool
    reason: str | None
    message: str | None
    writes: dict[str, bytes | None] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)


class MemoryWorldState:
    """An in-memory :class:`WorldState` (a dict and a sorted key list), e.g. for tests and tools."""

    def __init__(self, items: dict[str, bytes] | None = None) -> None:
        self._data: dict[str, bytes] = dict(items or {})
        self._keys: list[str] = sorted(self._data)

    def get(self, key: str) -> bytes | None:
        return self._data.get(key)

    def range(self, start: str, end: str) -> Iterator[tuple[str, bytes]]:
        keys = self._keys
        i = bisect.bisect_left(keys, start)
        j = len(keys) if end == "" else bisect.bisect_left(keys, end)
        for index in range(i, j):  # lazily: callers often read only the first item
            key = keys[index]
            yield key, self._data[key]

    def apply(self, writes: dict[str, bytes | None]) -> None:
        """Apply a transaction's writes (as a peer commits a valid transaction)."""
        for key, value in writes.items():
            if value is None:
                if key in self._data:
                    del self._data[key]
                    self._keys.pop(bisect.bisect_left(self._keys, key))
            else:
                if key not in self._data:
                    bisect.insort(self._keys, key)
                self._data[key] = value

    def snapshot(self) -> dict[str, bytes]:
        return dict(self._data)

    def __len__(self) -> int:
        return len(self._data)


# --- the stub ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _KV:
    """A range query record, as ``fabric_protos`` ``KV`` (``key``, ``value``)."""

    key: str
    value: bytes
    namespace: str = ""


class _RangeIterator:
    """The async iterator ``get_state_by_range`` returns (like the shim's ``StateQueryIterator``).

    Merges the committed range (read lazily: the contract usually takes only the first record) with this
    transaction's writes in the range; a write shadows the committed value, a delete hides it.
    """

    _END = ("\U0010ffff" * 2, None)

    def __init__(self, base: Iterator[tuple[str, bytes]], overlay: list[tuple[str, bytes | None]]) -> None:
        self._base = base
        self._overlay = overlay
        self._o = 0
        self._b: tuple[str, bytes | None] | None = None
        self._closed = False

    def __aiter__(self) -> _RangeIterator:
        return self

    def _peek_base(self) -> tuple[str, bytes | None]:
        if self._b is None:
            self._b = next(self._base, self._END)
        return self._b

    async def __anext__(self) -> _KV:
        while not self._closed:
            base = self._peek_base()
            own = self._overlay[self._o] if self._o < len(self._overlay) else self._END
            if base is self._END and own is self._END:
                break
            if own is not self._END and (base is self._END or own[0] <= base[0]):
                self._o += 1
                if base[0] == own[0]:
                    self._b = None  # shadowed by this transaction's write
                key, value = own
            else:
                self._b = None
                key, value = base
            if value:
                return _KV(key, value)
        self._closed = True
        raise StopAsyncIteration

    async def aclose(self) -> None:
        self._closed = True


class EmbeddedStub(ChaincodeStubInterface):  # type: ignore[misc]
    """The Fabric ``ChaincodeStub`` API over a :class:`WorldState` with a write overlay.

    Reads see this transaction's own writes (read-your-writes; the contract does not rely on it, since Fabric
    does not offer it). ``get_state`` returns ``b""`` for a missing key, as the Fabric shim does. Private
    data, transient data, state-based endorsement and cross-chaincode calls are not offered: they raise
    ``NotImplementedError``.
    """

    def __init__(
        self,
        state: WorldState,
        function: str,
        args: list[str],
        *,
        tx_id: str,
        timestamp_ms: int | None,
        channel_id: str = CHANNEL_ID,
    ) -> None:
        self._state = state
        self._function = function
        self._args = list(args)
        self.tx_id = tx_id
        self.channel_id = channel_id
        self._timestamp: Timestamp | None = None
        if timestamp_ms is not None:
            self._timestamp = Timestamp(seconds=timestamp_ms // 1000, nanos=(timestamp_ms % 1000) * 1_000_000)
        self._writes: dict[str, bytes | None] = {}
        self._events: list[tuple[str, bytes]] = []

    # identity of the call
    def get_function_and_parameters(self) -> tuple[str, list[str]]:
        return self._function, list(self._args)

    def get_txid(self) -> str:
        return self.tx_id

    def get_channel_id(self) -> str:
        return self.channel_id

    def get_creator(self) -> dict[str, Any]:
        return {}  # no Fabric MSP identity: the contract trusts SM2 envelope signatures only

    def get_transient(self) -> dict[str, bytes]:
        return {}

    def get_tx_timestamp(self) -> Timestamp | None:
        return self._timestamp

    # state
    async def get_state(self, key: str) -> bytes:
        if key in self._writes:
            return self._writes[key] or b""
        return self._state.get(key) or b""

    async def put_state(self, key: str, value: bytes | str) -> None:
        data = value.encode() if isinstance(value, str) else bytes(value)
        if not key:
            raise ValueError("key must not be empty")
        self._writes[key] = data if data else None

    async def delete_state(self, key: str) -> None:
        self._writes[key] = None

    async def get_state_by_range(self, start_key: str, end_key: str) -> _RangeIterator:
        own = sorted((k, v) for k, v in self._writes.items() if k >= start_key and (end_key == "" or k < end_key))
        return _RangeIterator(iter(self._state.range(start_key, end_key)), own)

    # events
    def set_event(self, name: str, payload: bytes | str | None) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError("event name must be a non-empty string")
        data = payload.encode() if isinstance(payload, str) else bytes(payload or b"")
        self._events.append((name, data))

    def get_events(self) -> list[tuple[str, bytes]]:
        return list(self._events)

    # composite keys (same encoding as the shim)
    def create_composite_key(self, object_type: str, attributes: list[str]) -> str:
        validate_composite_key_attribute(object_type)
        separator = str(MIN_UNICODE_RUNE_VALUE)
        for attribute in attributes:
            validate_composite_key_attribute(attribute)
        return str(COMPOSITEKEY_NS) + "".join(part + separator for part in (object_type, *attributes))

    @property
    def writes(self) -> dict[str, bytes | None]:
        return {k: self._writes[k] for k in sorted(self._writes)}

    def _unsupported(self, *_: Any, **__: Any) -> Any:
        raise NotImplementedError("not offered by the embedded peer (and not used by the contract)")

    get_private_data = put_private_data = delete_private_data = _unsupported
    set_state_validation_parameter = get_state_validation_parameter = _unsupported
    invoke_chaincode = get_query_result = get_history_for_key = _unsupported


# --- execution --------------------------------------------------------------------------------------------

_CHAINCODE: ContractChaincode | None = None


def chaincode() -> ContractChaincode:
    """The process-wide ``ContractChaincode`` holding :class:`LicenseRegistry` (built once; it is
    stateless)."""
    global _CHAINCODE
    if _CHAINCODE is None:
        _CHAINCODE = ContractChaincode.new_chaincode(LicenseRegistry())
    return _CHAINCODE


def _run(coro: Coroutine[Any, Any, Any]) -> Any:
    """Drive a coroutine that never suspends (the embedded stub completes every await at once)."""
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value
    coro.close()
    raise RuntimeError("the contract awaited something other than the embedded stub")


def _identify(envelope: bytes) -> tuple[str, int | None]:
    """The transaction id and timestamp of an envelope (:func:`core.transactions.tx_id_of` rules)."""
    try:
        parsed = Envelope.from_bytes(envelope)
    except FormatError:
        return tx_id_of(envelope), None
    return parsed.tx_id, parsed.tx.timestamp_ms


def _events(stub: EmbeddedStub) -> list[dict[str, Any]]:
    out = []
    for name, payload in stub.get_events():
        out.append({"name": name, "payload": decode_canonical(payload)})
    return out


def execute(state: WorldState, envelope: bytes) -> TxResult:
    """Validate and run one envelope against ``state`` (not modified); see the module docstring."""
    if not isinstance(envelope, bytes | bytearray):
        return TxResult("", False, Reason.MALFORMED_PAYLOAD.value, "envelope must be bytes")
    envelope = bytes(envelope)
    tx_id, timestamp_ms = _identify(envelope)
    # The Fabric wire form of an argument is a string; bytes that are not UTF-8 survive as surrogate escapes
    # and the contract refuses them as MALFORMED_PAYLOAD.
    text = envelope.decode("utf-8", "surrogateescape")
    stub = EmbeddedStub(state, "Submit", [text], tx_id=tx_id, timestamp_ms=timestamp_ms)
    response = _run(chaincode().invoke(stub))
    if response.status < 400:
        return TxResult(tx_id, True, None, None, stub.writes, _events(stub))
    reason, message = split_reason(response.message)
    if reason is None:  # the dispatcher's own refusal (it never reached the contract's checks)
        reason = Reason.MALFORMED_PAYLOAD
    return TxResult(tx_id, False, reason.value, message)


def evaluate(state: WorldState, function: str, args: list[str]) -> bytes:
    """Run query ``function`` (one of :data:`chaincode.contract.QUERIES`) and return its canonical JSON.

    Raises :class:`QueryError` with a reason code (``BAD_QUERY``, ``NOT_FOUND``, ...).
    """
    if function not in QUERIES:
        raise QueryError(Reason.BAD_QUERY, f"{function!r} is not a query; expected one of {list(QUERIES)}")
    if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
        raise QueryError(Reason.BAD_QUERY, "query arguments must be a list of strings")
    stub = EmbeddedStub(state, function, args, tx_id="query", timestamp_ms=None)
    response = _run(chaincode().invoke(stub))
    if response.status < 400:
        return bytes(response.payload)
    reason, message = split_reason(response.message)
    raise QueryError(reason or Reason.BAD_QUERY, message)
