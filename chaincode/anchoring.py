"""AnchorBatch and ChangeStatus: the anchor log and the status map.

**AnchorBatch** (author = the issuing province, ``seq`` = its ``batch_seq``):

1. the author is a province (``UNKNOWN_MEMBER``, ``ROLE_NOT_ALLOWED``) signing with a key valid at the
   transaction time (``UNKNOWN_KEY``, ``KEY_NOT_VALID_AT_TIME``, ``KEY_RETIRED``, ``MISSING_SIGNATURE``,
   ``BAD_SIGNATURE``);
2. ``batch_seq`` is the province's next one, contiguous from 0: a higher one is ``BATCH_SEQ_GAP``; a lower one
   is ``BATCH_SEQ_REPLAY`` when it is the same transaction (same tx id) as the batch already accepted with
   that number, and ``BATCH_SEQ_DUPLICATE`` when it differs (two signed batches with one number: evidence of
   equivocation, both roots reported);
3. the batch record (:func:`batch_record`) becomes the next entry of the ledger-wide RFC 9162 log.

**ChangeStatus** (author = the issuing province, ``seq`` = the license's ``status_seq``):

1. as step 1 above;
2. ``license_id`` is a valid GB/T 36904 identifier (``MALFORMED_PAYLOAD``) whose issuer code is one of the
   author's issuers (``WRONG_ISSUER``): nobody changes another province's license;
3. the batch ``(author, batch_seq)`` exists (``UNKNOWN_BATCH``) and the license's leaf
   (:func:`core.commitment.leaf_data` of ``license_id``, its version and ``commitment``) is at ``leaf_index``
   in that batch under the batch root, by an RFC 9162 inclusion proof (``NOT_ANCHORED``): nobody changes a
   license that was never anchored;
4. ``status_seq`` is the license's next one, contiguous from 0 (``STATUS_SEQ_REPLAY``, ``STATUS_SEQ_GAP``);
5. the transition is allowed (``INVALID_TRANSITION``): from active (no record) or reinstated or active to
   suspended or revoked; from suspended to reinstated, active or revoked; revoked is final. A *version update*
   (reason ``NEW_VERSION``) keeps the status: its ``status`` must be the current one;
6. ``effective_ms`` is not before the previous change's (``EFFECTIVE_TIME_REGRESSION``);
7. the cited version does not go backwards (``VERSION_REGRESSION``): not below the version the current record
   names, and strictly above it for a version update. The record then names the license's current version, so
   a verifier shown an older version's bundle learns that it is superseded.

The status record (:func:`status_record`) is stored under ``status/<license base id>`` and committed in the
status tree under SM3(license base id). A license without a record has never changed status: active as issued,
which a non-membership proof shows.
"""

from __future__ import annotations

from typing import Any

from chaincode import anchor_log, versioned_smt
from chaincode.context import TxContext, authenticate_author, only_signatures, require_member
from chaincode.errors import Reason, TransactionRejected, require_next_seq
from chaincode.state import (
    StateCorruptError,
    TxState,
    batch_envelope_key,
    batch_key,
    batch_next_key,
    issuer_key,
    record_key,
    status_key,
)
from core.codes import LicenseId
from core.commitment import leaf_data
from core.consortium import PROVINCE
from core.errors import FormatError, ProofFormatError, RootMismatchError
from core.hashing import sm3
from core.merkle import leaf_hash, verify_inclusion
from core.transactions import ACTIVE, NEW_VERSION, REINSTATED, REVOKED, SUSPENDED

__all__ = [
    "ALLOWED_TRANSITIONS",
    "anchor_batch",
    "batch_record",
    "change_status",
    "load_batch",
    "status_record",
]

BATCH_RECORD_TYPE = "licledger.batch"
STATUS_RECORD_TYPE = "licledger.status"

ALLOWED_TRANSITIONS: dict[str, tuple[str, ...]] = {
    ACTIVE: (SUSPENDED, REVOKED),
    REINSTATED: (SUSPENDED, REVOKED),
    SUSPENDED: (REINSTATED, ACTIVE, REVOKED),
    REVOKED: (),
}


def batch_record(
    *, issuer: str, batch_seq: int, root: str, leaf_count: int, timestamp_ms: int, key_id: str, tx_id: str
) -> dict[str, Any]:
    """The anchor log entry of a batch; its canonical bytes are the log leaf's data."""
    return {
        "type": BATCH_RECORD_TYPE,
        "issuer": issuer,
        "batch_seq": batch_seq,
        "root": root,
        "leaf_count": leaf_count,
        "timestamp_ms": timestamp_ms,
        "key_id": key_id,
        "tx_id": tx_id,
    }


async def load_batch(state: TxState, issuer: str, batch_seq: int) -> dict[str, Any] | None:
    """``{"log_index", "record"}`` of an accepted batch, or ``None``."""
    value = await state.get_json(batch_key(issuer, batch_seq))
    if value is None:
        return None
    if not isinstance(value, dict) or set(value) != {"log_index", "record"}:
        raise StateCorruptError(f"{batch_key(issuer, batch_seq)} is not a batch entry")
    return value


async def anchor_batch(ctx: TxContext) -> None:
    state, tx = ctx.state, ctx.tx
    member = await require_member(state, tx.author, (PROVINCE,))
    authenticate_author(ctx, member)
    only_signatures(ctx, [(member.name, tx.key_id)])
    expected = await state.get_int(batch_next_key(member.name))
    require_next_seq(
        tx.seq,
        expected,
        replay=None,  # below: a replay of this very transaction or a duplicate of another
        gap=Reason.BATCH_SEQ_GAP,
        what=f"{member.name}'s batch_seq",
        evidence={"issuer": member.name},
    )
    if tx.seq < expected:
        previous = await load_batch(state, member.name, tx.seq)
        if previous is None:
            raise StateCorruptError(f"batch {member.name}/{tx.seq} is below batchnext but not stored")
        if previous["record"]["tx_id"] == ctx.tx_id:
            raise TransactionRejected(
                Reason.BATCH_SEQ_REPLAY,
                f"batch {member.name}/{tx.seq} was already anchored by this very transaction "
                f"(log index {previous['log_index']})",
                {
                    "issuer": member.name,
                    "batch_seq": tx.seq,
                    "tx_id": ctx.tx_id,
                    "log_index": previous["log_index"],
                },
            )
        raise TransactionRejected(
            Reason.BATCH_SEQ_DUPLICATE,
            f"batch {member.name}/{tx.seq} is already anchored with root {previous['record']['root']}; "
            f"this transaction claims root {tx.args['root']}",
            {
                "issuer": member.name,
                "batch_seq": tx.seq,
                "anchored_root": previous["record"]["root"],
                "anchored_tx_id": previous["record"]["tx_id"],
                "conflicting_root": tx.args["root"],
                "conflicting_tx_id": ctx.tx_id,
            },
        )
    record = batch_record(
        issuer=member.name,
        batch_seq=tx.seq,
        root=tx.args["root"],
        leaf_count=tx.args["leaf_count"],
        timestamp_ms=ctx.timestamp_ms,
        key_id=tx.key_id,
        tx_id=ctx.tx_id,
    )
    index, lh, log_range = await anchor_log.append(state, _canonical(record))
    state.put_json(batch_key(member.name, tx.seq), {"log_index": index, "record": record})
    state.put(batch_envelope_key(member.name, tx.seq), ctx.envelope.to_bytes())
    state.put_json(batch_next_key(member.name), tx.seq + 1)
    ctx.event = {
        "issuer": member.name,
        "batch_seq": tx.seq,
        "root": record["root"],
        "leaf_count": record["leaf_count"],
        "log_index": index,
        "leaf_hash": lh.hex(),
        "log_size": log_range.size,
        "log_root": log_range.root_hash().hex(),
    }


def _canonical(value: Any) -> bytes:
    from core.canonical import encode

    return encode(value)


def status_record(
    *,
    license_id: LicenseId,
    status: str,
    reason: str,
    effective_ms: int,
    status_seq: int,
    issuer: str,
    batch_seq: int,
    leaf_index: int,
    commitment: str,
    timestamp_ms: int,
    tx_id: str,
) -> dict[str, Any]:
    """The status map entry of a license after a change; SM3 of its canonical bytes is the tree value."""
    return {
        "type": STATUS_RECORD_TYPE,
        "license_base_id": license_id.base,
        "license_id": str(license_id),
        "status": status,
        "reason": reason,
        "effective_ms": effective_ms,
        "status_seq": status_seq,
        "issuer": issuer,
        "batch_seq": batch_seq,
        "leaf_index": leaf_index,
        "commitment": commitment,
        "timestamp_ms": timestamp_ms,
        "tx_id": tx_id,
    }


def status_tree_key(license_base_id: str) -> bytes:
    """The status tree key of a license: SM3 of its base identifier (UTF-8)."""
    return sm3(license_base_id.encode("utf-8"))


async def change_status(ctx: TxContext) -> None:
    state, tx = ctx.state, ctx.tx
    args = tx.args
    member = await require_member(state, tx.author, (PROVINCE,))
    authenticate_author(ctx, member)
    only_signatures(ctx, [(member.name, tx.key_id)])
    # 2. the license is the author's
    try:
        license_id = LicenseId.parse(args["license_id"])
    except FormatError as exc:
        raise TransactionRejected(Reason.MALFORMED_PAYLOAD, f"args.license_id: {exc}") from None
    if license_id.issuer_uscc not in member.issuers:
        owner = await state.get(issuer_key(license_id.issuer_uscc))
        raise TransactionRejected(
            Reason.WRONG_ISSUER,
            f"license {license_id.base} was issued under {license_id.issuer_uscc}, which is not an issuer of "
            f"{member.name}" + (f" (it belongs to {owner.decode()})" if owner else ""),
            {
                "license_issuer": license_id.issuer_uscc,
                "author": member.name,
                "author_issuers": list(member.issuers),
                "owner": owner.decode() if owner else None,
            },
        )
    # 3. the license's leaf is in one of the author's anchored batches
    batch = await load_batch(state, member.name, args["batch_seq"])
    if batch is None:
        raise TransactionRejected(
            Reason.UNKNOWN_BATCH,
            f"{member.name} has no anchored batch {args['batch_seq']}",
            {"issuer": member.name, "batch_seq": args["batch_seq"]},
        )
    commitment = bytes.fromhex(args["commitment"])
    lh = leaf_hash(leaf_data(license_id, license_id.version, commitment))
    batch_root = bytes.fromhex(batch["record"]["root"])
    proof = [bytes.fromhex(p) for p in args["inclusion_proof"]]
    try:
        verify_inclusion(args["leaf_index"], batch["record"]["leaf_count"], lh, proof, batch_root)
    except (ProofFormatError, RootMismatchError) as exc:
        raise TransactionRejected(
            Reason.NOT_ANCHORED,
            f"license {license_id} (commitment {args['commitment'][:16]}…) is not leaf "
            f"{args['leaf_index']} of "
            f"batch {member.name}/{args['batch_seq']}: {exc}",
            {
                "license_id": str(license_id),
                "leaf_hash": lh.hex(),
                "batch_root": batch["record"]["root"],
                "calculated_root": exc.calculated_root.hex() if isinstance(exc, RootMismatchError) else None,
            },
        ) from None
    # 4. contiguous status_seq
    current = await state.get_json(status_key(license_id.base))
    expected = 0 if current is None else current["status_seq"] + 1
    require_next_seq(
        tx.seq,
        expected,
        replay=Reason.STATUS_SEQ_REPLAY,
        gap=Reason.STATUS_SEQ_GAP,
        what=f"{license_id.base}'s status_seq",
        evidence={"license_base_id": license_id.base},
    )
    # 5. transition, 6. effective time
    before = ACTIVE if current is None else current["status"]
    update = args["reason"] == NEW_VERSION
    if update and args["status"] != before:
        raise TransactionRejected(
            Reason.INVALID_TRANSITION,
            f"{license_id.base} is {before}; a version update keeps the status, got {args['status']}",
            {"from": before, "to": args["status"], "allowed": [before]},
        )
    if not update and args["status"] not in ALLOWED_TRANSITIONS[before]:
        raise TransactionRejected(
            Reason.INVALID_TRANSITION,
            f"{license_id.base} is {before}; it cannot become {args['status']}",
            {"from": before, "to": args["status"], "allowed": list(ALLOWED_TRANSITIONS[before])},
        )
    if current is not None and args["effective_ms"] < current["effective_ms"]:
        raise TransactionRejected(
            Reason.EFFECTIVE_TIME_REGRESSION,
            f"the previous change of {license_id.base} took effect at {current['effective_ms']}, "
            f"this one at {args['effective_ms']}",
            {"previous_ms": current["effective_ms"], "effective_ms": args["effective_ms"]},
        )
    # 7. the cited version never goes backwards (strictly forwards for a version update)
    if current is not None:
        previous = LicenseId.parse(current["license_id"]).version
        if license_id.version < previous or (update and license_id.version == previous):
            raise TransactionRejected(
                Reason.VERSION_REGRESSION,
                f"the status record of {license_id.base} names version {previous}; this change cites version "
                f"{license_id.version}" + (", a version update must cite a newer one" if update else ""),
                {"previous_version": previous, "version": license_id.version, "update": update},
            )
    record = status_record(
        license_id=license_id,
        status=args["status"],
        reason=args["reason"],
        effective_ms=args["effective_ms"],
        status_seq=tx.seq,
        issuer=member.name,
        batch_seq=args["batch_seq"],
        leaf_index=args["leaf_index"],
        commitment=args["commitment"],
        timestamp_ms=ctx.timestamp_ms,
        tx_id=ctx.tx_id,
    )
    canonical = _canonical(record)
    digest = sm3(canonical)
    state.put(status_key(license_id.base), canonical)
    state.put(record_key(digest.hex()), canonical)
    head = await versioned_smt.update(state, versioned_smt.STATUS, [(status_tree_key(license_id.base), digest)])
    ctx.event = {
        "issuer": member.name,
        "license_base_id": license_id.base,
        "status": args["status"],
        "status_seq": tx.seq,
        "status_root": head.root.hex(),
    }
