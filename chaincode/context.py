"""What every transaction handler shares: the parsed envelope, the state view, and the authorship checks.

Authorship, in the order the checks run (each failure names its :class:`~chaincode.errors.Reason`):

1. the author is a member (``UNKNOWN_MEMBER``) with a role the transaction type allows (``ROLE_NOT_ALLOWED``);
2. ``tx.key_id`` is one of the author's keys (``UNKNOWN_KEY``) and valid at ``tx.timestamp_ms``:
   ``KEY_NOT_VALID_AT_TIME`` before its ``valid_from_ms``, ``KEY_RETIRED`` at or after its ``valid_until_ms``;
3. the envelope carries the author's signature with that key (``MISSING_SIGNATURE``) and it verifies over
   ``SIGNING_CONTEXT || canonical(tx)`` (``BAD_SIGNATURE``);
4. no signature other than the ones the type requires (``UNEXPECTED_SIGNATURE``).

After the type's own rules, the author's clock must not go back: ``tx.timestamp_ms`` is at least the timestamp
of the author's previous accepted transaction (``TIMESTAMP_REGRESSION``). Key validity is judged at the
envelope's timestamp, which the author chooses; without this rule a member whose key was retired (say, after a
compromise) could backdate a transaction to a time when the key was still valid. Checkpoint duties have their
own clock (``clock/<member>/duty``, :func:`check_and_advance_clock`); they cannot be backdated around a
retirement either, because a proposal may not be dated before the ledger time (which the retirement advanced)
and a cosignature needs its key valid at the checkpoint's time too (:mod:`chaincode.checkpoints`). Node
announcements (``AnnounceNode``) have theirs too (``clock/<member>/node``); their key must also be valid at the
ledger time (:mod:`chaincode.nodes`), so a retired key cannot announce whatever date it claims.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from chaincode.errors import Reason, TransactionRejected
from chaincode.state import (
    LEDGER_TIME,
    StateCorruptError,
    TxState,
    clock_key,
    duty_clock_key,
    member_state_key,
    node_clock_key,
)
from core.consortium import NATIONAL, KeyRecord, MemberRecord
from core.errors import FormatError, SignatureError, SignatureFormatError
from core.transactions import ANNOUNCE_NODE, COSIGN_CHECKPOINT, PROPOSE_CHECKPOINT, Envelope, Signature

__all__ = ["DUTY_TYPES", "TxContext", "load_member", "require_member"]

DUTY_TYPES = frozenset({PROPOSE_CHECKPOINT, COSIGN_CHECKPOINT})


@dataclass
class TxContext:
    """One transaction being executed."""

    state: TxState
    envelope: Envelope
    tx_id: str
    timestamp_ms: int
    event: dict[str, Any] = field(default_factory=dict)

    @property
    def tx(self) -> Any:
        return self.envelope.tx


_MEMBER_CACHE: dict[bytes, MemberRecord] = {}


async def load_member(state: TxState, name: str) -> MemberRecord | None:
    """The member's current record (parsed records are memoised by their bytes: parsing is pure)."""
    raw = await state.get(member_state_key(name))
    if raw is None:
        return None
    record = _MEMBER_CACHE.get(raw)
    if record is None:
        try:
            record = MemberRecord.from_bytes(raw)
        except FormatError as exc:
            raise StateCorruptError(f"member/{name}: {exc}") from None
        if len(_MEMBER_CACHE) >= 4096:
            _MEMBER_CACHE.clear()
        _MEMBER_CACHE[raw] = record
    if record.name != name:
        raise StateCorruptError(f"member/{name} holds the record of {record.name}")
    return record


async def require_member(state: TxState, name: str, roles: Iterable[str] | None = None) -> MemberRecord:
    """Step 1."""
    member = await load_member(state, name)
    if member is None:
        raise TransactionRejected(
            Reason.UNKNOWN_MEMBER, f"{name!r} is not a member of the consortium", {"member": name}
        )
    allowed = tuple(roles) if roles is not None else None
    if allowed is not None and member.role not in allowed:
        raise TransactionRejected(
            Reason.ROLE_NOT_ALLOWED,
            f"{name} is a {member.role}; this transaction needs one of {list(allowed)}",
            {"member": name, "role": member.role, "allowed": list(allowed)},
        )
    return member


def key_valid_at(member: MemberRecord, key_id: str, timestamp_ms: int, *, what: str = "key") -> KeyRecord:
    """Step 2 for any signer: the key record, or the reason it cannot sign at ``timestamp_ms``."""
    key = member.key(key_id)
    if key is None:
        raise TransactionRejected(
            Reason.UNKNOWN_KEY,
            f"{what} {key_id} is not a key of {member.name}",
            {"member": member.name, "key_id": key_id, "known": [k.key_id for k in member.keys]},
        )
    evidence = {
        "member": member.name,
        "key_id": key_id,
        "timestamp_ms": timestamp_ms,
        "valid_from_ms": key.valid_from_ms,
        "valid_until_ms": key.valid_until_ms,
    }
    if timestamp_ms < key.valid_from_ms:
        raise TransactionRejected(
            Reason.KEY_NOT_VALID_AT_TIME,
            f"{what} {key_id[:16]}… of {member.name} is valid from {key.valid_from_ms}, not at {timestamp_ms}",
            evidence,
        )
    if key.valid_until_ms is not None and timestamp_ms >= key.valid_until_ms:
        raise TransactionRejected(
            Reason.KEY_RETIRED,
            f"{what} {key_id[:16]}… of {member.name} was retired at {key.valid_until_ms}; "
            f"the transaction is dated {timestamp_ms}",
            evidence,
        )
    return key


def verify_signature(
    ctx: TxContext, signer: str, key: KeyRecord, *, missing: Reason, bad: Reason, what: str
) -> Signature:
    """Step 3 for any signer: the signature by ``signer`` with ``key`` exists and verifies."""
    sig = ctx.envelope.signature_by(signer, key.key_id)
    if sig is None:
        raise TransactionRejected(
            missing,
            f"no {what} by {signer} with key {key.key_id[:16]}…",
            {"signer": signer, "key_id": key.key_id},
        )
    try:
        sig.verify(ctx.envelope.tx, key.public_key)
    except (SignatureError, SignatureFormatError) as exc:
        raise TransactionRejected(
            bad, f"{what} by {signer} does not verify: {exc}", {"signer": signer, "key_id": key.key_id}
        ) from None
    return sig


def authenticate_author(ctx: TxContext, member: MemberRecord) -> KeyRecord:
    """Steps 2 and 3 for the author."""
    key = key_valid_at(member, ctx.tx.key_id, ctx.timestamp_ms, what="signing key")
    verify_signature(
        ctx, member.name, key, missing=Reason.MISSING_SIGNATURE, bad=Reason.BAD_SIGNATURE, what="signature"
    )
    return key


async def require_endorsement(ctx: TxContext) -> None:
    """The national authority's endorsement: a signature by ``national`` with a key valid at the tx time.

    Reasons: ``MISSING_ENDORSEMENT`` (no signature by ``national``), ``BAD_ENDORSEMENT`` (its key is unknown,
    not valid at the transaction time, or the signature does not verify).
    """
    endorsements = [s for s in ctx.envelope.signatures if s.signer == NATIONAL]
    if not endorsements:
        raise TransactionRejected(
            Reason.MISSING_ENDORSEMENT, f"{ctx.tx.type} needs the national authority's endorsement signature"
        )
    national = await require_member(ctx.state, NATIONAL)
    errors = []
    for sig in endorsements:
        try:
            key = key_valid_at(national, sig.key_id, ctx.timestamp_ms, what="endorsement key")
            verify_signature(
                ctx,
                NATIONAL,
                key,
                missing=Reason.MISSING_ENDORSEMENT,
                bad=Reason.BAD_ENDORSEMENT,
                what="endorsement",
            )
            return
        except TransactionRejected as exc:
            errors.append(exc.message)
    raise TransactionRejected(Reason.BAD_ENDORSEMENT, "; ".join(errors), {"signer": NATIONAL})


def only_signatures(ctx: TxContext, allowed: Iterable[tuple[str, str | None]]) -> None:
    """Step 4: every signature is by an allowed ``(signer, key_id)``; ``key_id`` None allows any key."""
    allowed_set = list(allowed)
    for sig in ctx.envelope.signatures:
        if not any(sig.signer == s and (k is None or sig.key_id == k) for s, k in allowed_set):
            raise TransactionRejected(
                Reason.UNEXPECTED_SIGNATURE,
                f"{ctx.tx.type} does not take a signature by {sig.signer} with key {sig.key_id[:16]}…",
                {"signer": sig.signer, "key_id": sig.key_id},
            )


_CLOCKS: dict[str, tuple[Callable[[str], str], str]] = {
    "own": (clock_key, "transaction"),
    "duty": (duty_clock_key, "checkpoint duty"),
    "node": (node_clock_key, "node announcement"),
}
"""A member's clock domains (:func:`check_and_advance_clock`): the state key of each and what it dates."""


async def check_and_advance_clock(ctx: TxContext) -> None:
    """The author's clock never goes back; record this transaction's timestamp, and the ledger time.

    Checkpoint duties (``ProposeCheckpoint``, ``CosignCheckpoint``) are checked against and advance only the
    author's duty clock (``clock/<member>/duty``); every other transaction only its own clock
    (``clock/<member>``); ``AnnounceNode`` only its node clock (``clock/<member>/node``). They are separate
    monotonic domains, so a peer can date its duties at its wall clock (and an operator announce the node)
    without ever making the member's own (earlier-dated, concurrently signed) transactions fail.
    ``ledger/time`` becomes the largest timestamp of any accepted transaction.
    """
    clock = "duty" if ctx.tx.type in DUTY_TYPES else "node" if ctx.tx.type == ANNOUNCE_NODE else "own"
    key_of, what = _CLOCKS[clock]
    key = key_of(ctx.tx.author)
    last = await ctx.state.get_int(key, -1)
    if ctx.timestamp_ms < last:
        raise TransactionRejected(
            Reason.TIMESTAMP_REGRESSION,
            f"{ctx.tx.author}'s previous {what} is dated {last}, this one {ctx.timestamp_ms}",
            {
                "member": ctx.tx.author,
                "clock": clock,
                "previous_ms": last,
                "timestamp_ms": ctx.timestamp_ms,
            },
        )
    ctx.state.put_json(key, ctx.timestamp_ms)
    if ctx.timestamp_ms > await ctx.state.get_int(LEDGER_TIME, -1):
        ctx.state.put_json(LEDGER_TIME, ctx.timestamp_ms)
