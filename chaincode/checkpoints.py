"""ProposeCheckpoint and CosignCheckpoint: quorum-cosigned commitments to the whole ledger state.

The checkpoint format is :mod:`core.checkpoint` (docs/checkpoint.md: a C2SP tlog-checkpoint body with
extension lines, cosigned as a signed note with SM2). The contract fills it from state, as of the transaction
that proposes it, so every peer computes the same body:

* ``origin`` = ``licledger/<network id>``;
* ``log_size``, ``log_root``: the anchor log (RFC 9162, SM3);
* ``status_root``, ``membership_root``: the two sparse Merkle trees (SM3);
* ``height``: the number of transactions the ledger accepted before the proposal, and ``block_hash``: the
  *ledger head*, the SM3 chain of their ids (:func:`chaincode.state.next_head`). The contract sees
  transactions, not blocks, so "height" counts accepted transactions and the head commits to their order: two
  peers with equal checkpoints hold equal histories, not just equal roots;
* ``timestamp_ms``: the proposing transaction's time.

The ledger also numbers checkpoints (``seq``, contiguous from 0), which is not part of the body.

**ProposeCheckpoint** (any member, ``seq`` = the next checkpoint number): ``CHECKPOINT_SEQ_REPLAY`` /
``CHECKPOINT_SEQ_GAP``; its timestamp is not before the previous checkpoint's nor before the *ledger time*
(``ledger/time``: the largest timestamp of any accepted transaction), both ``TIMESTAMP_REGRESSION``, so a
checkpoint is never dated before a transaction it covers, and a retired key cannot propose backdated into its
validity (the retirement advanced the ledger time). The quorum is fixed at proposal: the genesis ``quorum`` if
set (at most the member count), else a majority of the members at that moment.

**Time.** Duties are checked against the author's duty clock, not its own clock
(:func:`chaincode.context.check_and_advance_clock`), so a peer dates them at its wall clock. The contract has no
clock: it cannot tell a checkpoint dated in the future from a fresh one. A checkpoint's time is attested by
its cosigners: an honest peer cosigns only a checkpoint dated within a tolerance of its own clock
(:mod:`network.peer.checkpoints`), so a final checkpoint's time is right to within that tolerance as long as
the quorum includes one honest member with a correct clock.

**CosignCheckpoint** (any member, ``seq`` = the checkpoint cosigned, ``args.signature`` = an SM2 signature
over the body as :func:`core.checkpoint.cosign` makes it): the checkpoint exists (``UNKNOWN_CHECKPOINT``); the
member has not cosigned it yet (``DUPLICATE_COSIGNATURE``); the cosignature is not dated before the checkpoint
(``TIMESTAMP_REGRESSION``); the cosigning key is the transaction's key and was
also valid at the checkpoint's own timestamp (``KEY_NOT_VALID_AT_TIME`` / ``KEY_RETIRED``), so the
checkpoint's own membership root proves it; the signature verifies (``BAD_COSIGNATURE``). Once ``quorum``
distinct members have cosigned, the checkpoint is final; ``checkpoint/latest_final`` follows the highest final
``seq``. A checkpoint's note (:func:`core.checkpoint.render`) is what verifiers check with
:func:`core.checkpoint.verify_cosignatures`.
"""

from __future__ import annotations

import base64
from typing import Any

from chaincode import anchor_log, versioned_smt
from chaincode.context import TxContext, authenticate_author, key_valid_at, only_signatures, require_member
from chaincode.errors import Reason, TransactionRejected, require_next_seq
from chaincode.state import (
    CHECKPOINT_LATEST_FINAL,
    CHECKPOINT_NEXT,
    GENESIS,
    LEDGER_TIME,
    MEMBER_COUNT,
    StateCorruptError,
    TxState,
    checkpoint_key,
)
from core import checkpoint as cp
from core.canonical import decode_canonical
from core.consortium import Genesis, default_quorum
from core.errors import FormatError, SignatureError, SignatureFormatError
from core.sm2 import PrivateKey, PublicKey

__all__ = [
    "checkpoint_body",
    "checkpoint_of",
    "cosign",
    "cosign_checkpoint",
    "load_checkpoint",
    "note_of",
    "origin_of",
    "propose_checkpoint",
    "verify_cosignature",
]


def origin_of(network_id: str) -> str:
    """The checkpoint origin line of a network."""
    return f"licledger/{network_id}"


def checkpoint_of(network_id: str, fields: dict[str, Any]) -> cp.Checkpoint:
    """The :class:`core.checkpoint.Checkpoint` of a stored checkpoint's ``fields`` (hashes in hex)."""
    return cp.Checkpoint(
        origin=origin_of(network_id),
        height=fields["height"],
        log_size=fields["log_size"],
        log_root=bytes.fromhex(fields["log_root"]),
        status_root=bytes.fromhex(fields["status_root"]),
        membership_root=bytes.fromhex(fields["membership_root"]),
        block_hash=bytes.fromhex(fields["block_hash"]),
        timestamp_ms=fields["timestamp_ms"],
    )


def checkpoint_body(network_id: str, fields: dict[str, Any]) -> bytes:
    """The body every cosignature covers (:meth:`core.checkpoint.Checkpoint.body`)."""
    return checkpoint_of(network_id, fields).body()


def cosign(body: bytes, key: PrivateKey) -> bytes:
    """A member's DER SM2 cosignature on a checkpoint body (the signature of
    :func:`core.checkpoint.cosign`)."""
    return key.sign(body)


def verify_cosignature(body: bytes, signature: bytes, public_key: PublicKey) -> None:
    """Raise :class:`~core.errors.SignatureError` / ``SignatureFormatError`` unless it verifies."""
    public_key.verify(body, signature)


def note_of(record: dict[str, Any]) -> str | None:
    """The signed note (body, empty line, one line per cosignature) of a stored checkpoint, if cosigned."""
    cosigs = [
        cp.Cosignature(c["member"], bytes.fromhex(c["key_hint"]), base64.b64decode(c["signature"]))
        for c in record["cosignatures"]
    ]
    if not cosigs:
        return None
    return cp.render(checkpoint_of(record["network_id"], record["fields"]), cosigs).decode("utf-8")


async def load_checkpoint(state: TxState, seq: int) -> dict[str, Any] | None:
    return await state.get_json(checkpoint_key(seq))  # type: ignore[no-any-return]


async def _genesis(state: TxState) -> Genesis:
    raw = await state.get(GENESIS)
    if raw is None:
        raise StateCorruptError("no genesis")
    try:
        return Genesis.from_dict(decode_canonical(raw))
    except FormatError as exc:
        raise StateCorruptError(f"{GENESIS}: {exc}") from None


async def propose_checkpoint(ctx: TxContext) -> None:
    state, tx = ctx.state, ctx.tx
    member = await require_member(state, tx.author)
    authenticate_author(ctx, member)
    only_signatures(ctx, [(member.name, tx.key_id)])
    expected = await state.get_int(CHECKPOINT_NEXT)
    require_next_seq(
        tx.seq, expected, replay=Reason.CHECKPOINT_SEQ_REPLAY, gap=Reason.CHECKPOINT_SEQ_GAP, what="checkpoint seq"
    )
    if expected:
        previous = await load_checkpoint(state, expected - 1)
        assert previous is not None
        if ctx.timestamp_ms < previous["fields"]["timestamp_ms"]:
            raise TransactionRejected(
                Reason.TIMESTAMP_REGRESSION,
                f"checkpoint {expected - 1} is dated {previous['fields']['timestamp_ms']}, this one {ctx.timestamp_ms}",
                {"previous_ms": previous["fields"]["timestamp_ms"], "timestamp_ms": ctx.timestamp_ms},
            )
    ledger_time = await state.get_int(LEDGER_TIME, -1)
    if ctx.timestamp_ms < ledger_time:
        raise TransactionRejected(
            Reason.TIMESTAMP_REGRESSION,
            f"the ledger holds a transaction dated {ledger_time}; a checkpoint dated {ctx.timestamp_ms} "
            "would be older than what it covers",
            {"ledger_time_ms": ledger_time, "timestamp_ms": ctx.timestamp_ms},
        )
    genesis = await _genesis(state)
    log_range = await anchor_log.load_range(state)
    status = await versioned_smt.read_head(state, versioned_smt.STATUS)
    members = await versioned_smt.read_head(state, versioned_smt.MEMBERS)
    member_count = await state.get_int(MEMBER_COUNT)
    quorum = min(genesis.quorum, member_count) if genesis.quorum is not None else default_quorum(member_count)
    height, head = await state.ledger_head()
    fields = {
        "seq": tx.seq,
        "timestamp_ms": ctx.timestamp_ms,
        "height": height,
        "block_hash": head.hex(),
        "log_size": log_range.size,
        "log_root": log_range.root_hash().hex(),
        "status_root": status.root.hex(),
        "membership_root": members.root.hex(),
    }
    body = checkpoint_body(genesis.network_id, fields)
    record = {
        "seq": tx.seq,
        "fields": fields,
        "body": body.decode("utf-8"),
        "network_id": genesis.network_id,
        "origin": origin_of(genesis.network_id),
        "quorum": quorum,
        "member_count": member_count,
        "status_version": status.version,
        "membership_version": members.version,
        "proposer": member.name,
        "proposal_tx_id": ctx.tx_id,
        "cosignatures": [],
        "final": False,
    }
    state.put_json(checkpoint_key(tx.seq), record)
    state.put_json(CHECKPOINT_NEXT, tx.seq + 1)
    ctx.event = {"seq": tx.seq, "quorum": quorum, **fields}


async def cosign_checkpoint(ctx: TxContext) -> None:
    state, tx = ctx.state, ctx.tx
    member = await require_member(state, tx.author)
    key = authenticate_author(ctx, member)
    only_signatures(ctx, [(member.name, tx.key_id)])
    record = await load_checkpoint(state, tx.seq)
    if record is None:
        raise TransactionRejected(Reason.UNKNOWN_CHECKPOINT, f"there is no checkpoint {tx.seq}", {"seq": tx.seq})
    if any(c["member"] == member.name for c in record["cosignatures"]):
        raise TransactionRejected(
            Reason.DUPLICATE_COSIGNATURE,
            f"{member.name} already cosigned checkpoint {tx.seq}",
            {"seq": tx.seq, "member": member.name},
        )
    if ctx.timestamp_ms < record["fields"]["timestamp_ms"]:
        raise TransactionRejected(
            Reason.TIMESTAMP_REGRESSION,
            f"checkpoint {tx.seq} is dated {record['fields']['timestamp_ms']}; "
            f"a cosignature cannot be dated before it ({ctx.timestamp_ms})",
            {"checkpoint_ms": record["fields"]["timestamp_ms"], "timestamp_ms": ctx.timestamp_ms},
        )
    key_valid_at(member, key.key_id, record["fields"]["timestamp_ms"], what="cosigning key (at checkpoint time)")
    signature = base64.b64decode(tx.args["signature"])
    try:
        verify_cosignature(record["body"].encode("utf-8"), signature, key.public_key)
    except (SignatureError, SignatureFormatError) as exc:
        raise TransactionRejected(
            Reason.BAD_COSIGNATURE,
            f"{member.name}'s cosignature on checkpoint {tx.seq} does not verify: {exc}",
            {"seq": tx.seq, "member": member.name, "key_id": key.key_id},
        ) from None
    record["cosignatures"].append(
        {
            "member": member.name,
            "key_id": key.key_id,
            "key_hint": cp.key_hint(member.name, key.public_key).hex(),
            "signature": tx.args["signature"],
            "timestamp_ms": ctx.timestamp_ms,
        }
    )
    became_final = not record["final"] and len(record["cosignatures"]) >= record["quorum"]
    if became_final:
        record["final"] = True
        latest = await state.get_int(CHECKPOINT_LATEST_FINAL, -1)
        if tx.seq > latest:
            state.put_json(CHECKPOINT_LATEST_FINAL, tx.seq)
    state.put_json(checkpoint_key(tx.seq), record)
    ctx.event = {
        "seq": tx.seq,
        "member": member.name,
        "cosignatures": len(record["cosignatures"]),
        "quorum": record["quorum"],
        "final": record["final"],
    }
