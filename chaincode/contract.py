"""The license-registry contract (Hyperledger Fabric contract API, ``fabric-chaincode-python`` 2.5.4).

One submit transaction, ``Submit(envelope)``, takes an SM2-signed envelope (:mod:`core.transactions`) and runs
the checks below in order; the first that fails rejects the transaction with a reason code
(:class:`~chaincode.errors.TransactionRejected`) and nothing is written:

1. the envelope parses strictly (canonical JSON, exact fields per type) - ``MALFORMED_PAYLOAD``;
2. the stub's transaction timestamp exists (``MISSING_TX_TIMESTAMP``) and is within
   :data:`MAX_TIMESTAMP_SKEW_MS` of ``tx.timestamp_ms`` (``TIMESTAMP_MISMATCH``). On the embedded peer the
   stub's timestamp *is* the envelope's; on Fabric it is the client's proposal time. Every rule uses the
   signed envelope timestamp;
3. the network: InitConsortium only once (``ALREADY_INITIALISED``), everything else only after it
   (``NOT_INITIALISED``) and for this network (``WRONG_NETWORK``);
4. the type's own rules (:mod:`chaincode.membership`, :mod:`chaincode.anchoring`,
   :mod:`chaincode.checkpoints`, :mod:`chaincode.nodes`), which start with the authorship checks of
   :mod:`chaincode.context`;
5. the author's clock does not go back (``TIMESTAMP_REGRESSION``): its own clock for its own transactions, its
   duty clock for checkpoint duties (:func:`chaincode.context.check_and_advance_clock`); the ledger time
   (``ledger/time``, the largest accepted timestamp) follows;
6. the ledger head (``ledger/head``: the transaction count and the SM3 chain of accepted tx ids) advances, one
   chaincode event named after the type is set, the writes are flushed.

Nothing here uses the Fabric MSP identity, private or transient data, state-based endorsement or certificate
attributes: trust rests on the SM2 signatures and the membership state alone. The logic is deterministic:
canonical encoding, sorted iteration, the envelope's timestamp as the only clock, no randomness.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fabric_chaincode_python.fabric_contract_api import (  # type: ignore[import-untyped]
    Contract,
    TransactionContext,
)

from chaincode import anchoring, checkpoints, membership, nodes, queries
from chaincode.context import TxContext, check_and_advance_clock
from chaincode.errors import QueryError, Reason, TransactionRejected
from chaincode.state import NETWORK_ID, StateCorruptError, TxState, next_head
from core.canonical import encode
from core.errors import FormatError
from core.transactions import (
    ADD_MEMBER,
    ANCHOR_BATCH,
    ANNOUNCE_NODE,
    CHANGE_STATUS,
    COSIGN_CHECKPOINT,
    INIT_CONSORTIUM,
    PROPOSE_CHECKPOINT,
    RETIRE_KEY,
    ROTATE_KEY,
    Envelope,
)

__all__ = ["CONTRACT_NAME", "MAX_TIMESTAMP_SKEW_MS", "QUERIES", "LicenseRegistry", "stub_timestamp_ms"]

CONTRACT_NAME = "LicenseRegistry"
MAX_TIMESTAMP_SKEW_MS = 5 * 60 * 1000

_HANDLERS: dict[str, Callable[[TxContext], Awaitable[None]]] = {
    INIT_CONSORTIUM: membership.init_consortium,
    ADD_MEMBER: membership.add_member,
    ROTATE_KEY: membership.rotate_key,
    RETIRE_KEY: membership.retire_key,
    ANCHOR_BATCH: anchoring.anchor_batch,
    CHANGE_STATUS: anchoring.change_status,
    PROPOSE_CHECKPOINT: checkpoints.propose_checkpoint,
    COSIGN_CHECKPOINT: checkpoints.cosign_checkpoint,
    ANNOUNCE_NODE: nodes.announce_node,
}

QUERIES = (
    "GetLedgerInfo",
    "GetGenesis",
    "GetMember",
    "GetBatch",
    "GetLogEntry",
    "GetLogInclusionProof",
    "GetLogConsistencyProof",
    "GetStatus",
    "GetCheckpoint",
    "GetLatestFinalCheckpoint",
    "GetNodes",
)


def stub_timestamp_ms(stub: Any) -> int | None:
    """The stub's transaction timestamp (a protobuf ``Timestamp``) in milliseconds, or ``None``."""
    ts = stub.get_tx_timestamp()
    if ts is None:
        return None
    return int(ts.seconds) * 1000 + int(ts.nanos) // 1_000_000


async def _submit(stub: Any, envelope_text: str) -> dict[str, Any]:
    # 1. parse
    try:
        raw = envelope_text.encode("utf-8", "surrogateescape")
        envelope = Envelope.from_bytes(raw)
    except (FormatError, UnicodeEncodeError) as exc:
        raise TransactionRejected(Reason.MALFORMED_PAYLOAD, str(exc)) from None
    tx = envelope.tx
    # 2. timestamp
    stub_ms = stub_timestamp_ms(stub)
    if stub_ms is None:
        raise TransactionRejected(Reason.MISSING_TX_TIMESTAMP, "the stub has no transaction timestamp")
    if abs(stub_ms - tx.timestamp_ms) > MAX_TIMESTAMP_SKEW_MS:
        raise TransactionRejected(
            Reason.TIMESTAMP_MISMATCH,
            f"envelope is dated {tx.timestamp_ms}, the transaction {stub_ms} "
            f"(more than {MAX_TIMESTAMP_SKEW_MS} ms apart)",
            {"envelope_ms": tx.timestamp_ms, "stub_ms": stub_ms},
        )
    state = TxState(stub)
    # 3. network
    if tx.type != INIT_CONSORTIUM:
        stored = await state.get(NETWORK_ID)
        if stored is None:
            raise TransactionRejected(Reason.NOT_INITIALISED, "the ledger has no genesis yet; run InitConsortium")
        if stored.decode() != tx.network_id:
            raise TransactionRejected(
                Reason.WRONG_NETWORK,
                f"transaction is for network {tx.network_id[:16]}…, this ledger is {stored.decode()[:16]}…",
                {"expected": stored.decode(), "got": tx.network_id},
            )
    # 4. the type's rules
    ctx = TxContext(state, envelope, envelope.tx_id, tx.timestamp_ms)
    await _HANDLERS[tx.type](ctx)
    # 5. clock, 6. effects
    await check_and_advance_clock(ctx)
    tx_count, head = await state.ledger_head()
    state.put_ledger_head(tx_count + 1, next_head(head, ctx.tx_id))
    event = {
        "type": tx.type,
        "tx_id": ctx.tx_id,
        "author": tx.author,
        "timestamp_ms": tx.timestamp_ms,
        **ctx.event,
    }
    await state.flush()
    stub.set_event(tx.type, encode(event))
    return event


async def _query(stub: Any, fn: Callable[..., Awaitable[dict[str, Any]]], *args: str) -> str:
    try:
        result = await fn(TxState(stub), *args)
    except QueryError:
        raise
    except StateCorruptError as exc:
        raise QueryError(Reason.INTERNAL_ERROR, f"world state is corrupt: {exc}") from None
    return encode(result).decode("utf-8")


class LicenseRegistry(Contract):  # type: ignore[misc]
    """The Fabric contract: ``Submit`` plus the queries of :mod:`chaincode.queries`."""

    Name = CONTRACT_NAME

    def get_evaluate_transactions(self) -> list[str]:
        return list(QUERIES)

    async def Submit(self, ctx: TransactionContext, envelope: str) -> str:
        """Validate and apply one SM2-signed envelope; returns its event as canonical JSON."""
        stub = ctx.get_stub()
        try:
            event = await _submit(stub, envelope)
        except TransactionRejected:
            raise
        except StateCorruptError as exc:
            raise TransactionRejected(Reason.INTERNAL_ERROR, f"world state is corrupt: {exc}") from None
        except Exception as exc:  # a bug: still a deterministic rejection, never a half-applied transaction
            raise TransactionRejected(Reason.INTERNAL_ERROR, f"{type(exc).__name__}: {exc}") from None
        return encode(event).decode("utf-8")

    async def GetLedgerInfo(self, ctx: TransactionContext) -> str:
        """Network id, tx count, the anchor log's size and root, both trees' versions and roots."""
        return await _query(ctx.get_stub(), queries.get_ledger_info)

    async def GetGenesis(self, ctx: TransactionContext) -> str:
        """The genesis document."""
        return await _query(ctx.get_stub(), queries.get_genesis)

    async def GetMember(self, ctx: TransactionContext, name: str, checkpoint_seq: str) -> str:
        """A member record with its membership proof, now (``""``) or as of a checkpoint."""
        return await _query(ctx.get_stub(), queries.get_member, name, checkpoint_seq)

    async def GetBatch(self, ctx: TransactionContext, issuer: str, batch_seq: str) -> str:
        """An anchored batch with its log index and signed envelope."""
        return await _query(ctx.get_stub(), queries.get_batch, issuer, batch_seq)

    async def GetLogEntry(self, ctx: TransactionContext, index: str) -> str:
        """An anchor log entry."""
        return await _query(ctx.get_stub(), queries.get_log_entry, index)

    async def GetLogInclusionProof(self, ctx: TransactionContext, index: str, size: str) -> str:
        """RFC 9162 inclusion proof of entry ``index`` in the log of ``size``."""
        return await _query(ctx.get_stub(), queries.get_log_inclusion_proof, index, size)

    async def GetLogConsistencyProof(self, ctx: TransactionContext, size1: str, size2: str) -> str:
        """RFC 9162 consistency proof between two log sizes."""
        return await _query(ctx.get_stub(), queries.get_log_consistency_proof, size1, size2)

    async def GetStatus(self, ctx: TransactionContext, license_id: str, checkpoint_seq: str) -> str:
        """A license's status with its (non-)membership proof, now (``""``) or as of a checkpoint."""
        return await _query(ctx.get_stub(), queries.get_status, license_id, checkpoint_seq)

    async def GetCheckpoint(self, ctx: TransactionContext, seq: str) -> str:
        """Checkpoint ``seq`` with its cosignatures."""
        return await _query(ctx.get_stub(), queries.get_checkpoint, seq)

    async def GetLatestFinalCheckpoint(self, ctx: TransactionContext) -> str:
        """The newest checkpoint cosigned by a quorum."""
        return await _query(ctx.get_stub(), queries.get_latest_final_checkpoint)

    async def GetNodes(self, ctx: TransactionContext) -> str:
        """Every member's latest node announcement (where its node API is)."""
        return await _query(ctx.get_stub(), queries.get_nodes)
