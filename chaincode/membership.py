"""Membership transactions: InitConsortium, AddMember, RotateKey, RetireKey.

Rules (docs/chaincode.md has them with every reason code):

* **InitConsortium** runs once (``ALREADY_INITIALISED``); ``tx.network_id`` is the SM3 of the genesis carried
in ``args`` (``WRONG_NETWORK``); the author is ``national`` signing with a national key listed in the genesis
and valid at the transaction time; ``seq`` is 0.
* **AddMember** adds a province or an auditor. The author is the new member, signing with the key being added
  (proof of possession), plus the national endorsement. The name is new (``MEMBER_EXISTS``), the key is not
  used by anyone (``KEY_EXISTS``), no issuer already belongs to another province (``ISSUER_CONFLICT``),
  ``seq`` is 0 (``MEMBER_SEQ_GAP``). The key is valid from the transaction time.
* **RotateKey**: the author signs with its current key, which is retired at the transaction time; ``new_spki``
  becomes valid at the same instant and must sign too (``MISSING_PROOF_OF_POSSESSION``). National endorses
  (for the national authority itself, its author signature is the endorsement).
* **RetireKey**: the author (any valid key) ends the validity of one of its keys at the transaction time.
  National endorses as above. A member that retires its last valid key can sign nothing afterwards (it leaves
  the consortium; its history stays verifiable); the national authority may not (``LAST_VALID_KEY``), since no
  membership change could be endorsed again.
* For RotateKey and RetireKey ``seq`` is the member record's next ``seq`` (``MEMBER_SEQ_REPLAY`` /
  ``MEMBER_SEQ_GAP``).

A retired key is never removed: it stays in the record with ``valid_until_ms`` set, so the membership tree
still proves that it was valid when it signed earlier transactions.
"""

from __future__ import annotations

from chaincode import versioned_smt
from chaincode.context import (
    TxContext,
    authenticate_author,
    key_valid_at,
    only_signatures,
    require_endorsement,
    require_member,
    verify_signature,
)
from chaincode.errors import Reason, TransactionRejected, require_next_seq
from chaincode.state import (
    GENESIS,
    MEMBER_COUNT,
    NETWORK_ID,
    TxState,
    issuer_key,
    key_owner_key,
    member_state_key,
    record_key,
)
from core.consortium import (
    MAX_KEYS,
    NATIONAL,
    Genesis,
    KeyRecord,
    MemberRecord,
    member_key,
    public_key_from_spki,
)
from core.hashing import sm3

__all__ = ["add_member", "init_consortium", "retire_key", "rotate_key", "store_member"]


def store_member(state: TxState, record: MemberRecord) -> tuple[bytes, bytes]:
    """Write ``member/<name>`` and the content-addressed ``rec/<hash>``; return the tree key and value
    hash."""
    canonical = record.canonical()
    digest = sm3(canonical)
    state.put(member_state_key(record.name), canonical)
    state.put(record_key(digest.hex()), canonical)
    return member_key(record.name), digest


async def _check_new_key(state: TxState, key_id: str) -> None:
    owner = await state.get(key_owner_key(key_id))
    if owner is not None:
        raise TransactionRejected(
            Reason.KEY_EXISTS, f"key {key_id[:16]}… already belongs to {owner.decode()}", {"key_id": key_id}
        )


def _check_seq(ctx: TxContext, member: MemberRecord) -> None:
    require_next_seq(
        ctx.tx.seq,
        member.seq + 1,
        replay=Reason.MEMBER_SEQ_REPLAY,
        gap=Reason.MEMBER_SEQ_GAP,
        what=f"{member.name}'s member record seq",
    )


async def _endorsed(ctx: TxContext) -> None:
    if ctx.tx.author != NATIONAL:
        await require_endorsement(ctx)


async def init_consortium(ctx: TxContext) -> None:
    state, tx = ctx.state, ctx.tx
    if await state.get(GENESIS) is not None:
        raise TransactionRejected(Reason.ALREADY_INITIALISED, "the consortium already has a genesis")
    genesis = Genesis.from_dict(tx.args["genesis"])
    if genesis.network_id != tx.network_id:
        raise TransactionRejected(
            Reason.WRONG_NETWORK,
            "tx.network_id is not the SM3 of the genesis it carries",
            {"expected": genesis.network_id, "got": tx.network_id},
        )
    if tx.author != NATIONAL:
        raise TransactionRejected(Reason.ROLE_NOT_ALLOWED, f"InitConsortium is signed by {NATIONAL}, not {tx.author}")
    if tx.seq != 0:
        raise TransactionRejected(Reason.MALFORMED_PAYLOAD, f"InitConsortium has seq 0, not {tx.seq}")
    national = genesis.member(NATIONAL)
    assert national is not None  # Genesis.from_dict requires it
    authenticate_author(ctx, national)
    only_signatures(ctx, [(NATIONAL, tx.key_id)])
    state.put(GENESIS, genesis.canonical())
    state.put(NETWORK_ID, genesis.network_id.encode())
    state.put_json(MEMBER_COUNT, len(genesis.members))
    items = []
    for member in genesis.members:
        items.append(store_member(state, member))
        for key in member.keys:
            state.put(key_owner_key(key.key_id), member.name.encode())
        for uscc in member.issuers:
            state.put(issuer_key(uscc), member.name.encode())
    head = await versioned_smt.update(state, versioned_smt.MEMBERS, items)
    ctx.event = {
        "network_id": genesis.network_id,
        "members": [m.name for m in genesis.members],
        "membership_root": head.root.hex(),
    }


async def add_member(ctx: TxContext) -> None:
    state, tx = ctx.state, ctx.tx
    args = tx.args
    name = args["name"]
    if tx.author != name:
        raise TransactionRejected(
            Reason.MALFORMED_PAYLOAD, f"AddMember is authored by the new member {name!r}, not {tx.author!r}"
        )
    if await state.get(member_state_key(name)) is not None:
        raise TransactionRejected(Reason.MEMBER_EXISTS, f"{name} is already a member", {"member": name})
    spki = bytes.fromhex(args["spki"])
    public_key = public_key_from_spki(spki)
    if public_key.key_id != tx.key_id:
        raise TransactionRejected(
            Reason.MALFORMED_PAYLOAD,
            "AddMember must be signed with the key it adds (tx.key_id is not the SM3 of args.spki)",
            {"expected": public_key.key_id, "got": tx.key_id},
        )
    key = KeyRecord(public_key.key_id, spki, ctx.timestamp_ms, None)
    record = MemberRecord(name, args["role"], tuple(args["issuers"]), (key,), 0)
    verify_signature(ctx, name, key, missing=Reason.MISSING_SIGNATURE, bad=Reason.BAD_SIGNATURE, what="signature")
    await require_endorsement(ctx)
    only_signatures(ctx, [(name, key.key_id), (NATIONAL, None)])
    if tx.seq != 0:
        raise TransactionRejected(
            Reason.MEMBER_SEQ_GAP,
            f"a new member record starts at seq 0, not {tx.seq}",
            {"expected": 0, "got": tx.seq},
        )
    await _check_new_key(state, key.key_id)
    for uscc in record.issuers:
        owner = await state.get(issuer_key(uscc))
        if owner is not None:
            raise TransactionRejected(
                Reason.ISSUER_CONFLICT,
                f"issuer {uscc} already belongs to {owner.decode()}",
                {"issuer": uscc, "owner": owner.decode()},
            )
        state.put(issuer_key(uscc), name.encode())
    state.put(key_owner_key(key.key_id), name.encode())
    state.put_json(MEMBER_COUNT, await state.get_int(MEMBER_COUNT) + 1)
    head = await versioned_smt.update(state, versioned_smt.MEMBERS, [store_member(state, record)])
    ctx.event = {
        "member": name,
        "role": record.role,
        "key_id": key.key_id,
        "membership_root": head.root.hex(),
    }


async def rotate_key(ctx: TxContext) -> None:
    state, tx = ctx.state, ctx.tx
    member = await require_member(state, tx.author)
    old = authenticate_author(ctx, member)
    spki = bytes.fromhex(tx.args["new_spki"])
    public_key = public_key_from_spki(spki)
    new = KeyRecord(public_key.key_id, spki, ctx.timestamp_ms, None)
    verify_signature(
        ctx,
        member.name,
        new,
        missing=Reason.MISSING_PROOF_OF_POSSESSION,
        bad=Reason.BAD_SIGNATURE,
        what="proof-of-possession signature by the new key",
    )
    await _endorsed(ctx)
    only_signatures(ctx, [(member.name, old.key_id), (member.name, new.key_id), (NATIONAL, None)])
    _check_seq(ctx, member)
    await _check_new_key(state, new.key_id)
    if len(member.keys) >= MAX_KEYS:
        raise TransactionRejected(Reason.MALFORMED_PAYLOAD, f"{member.name} already has {MAX_KEYS} keys")
    retired = KeyRecord(old.key_id, old.spki, old.valid_from_ms, ctx.timestamp_ms)
    keys = (*(retired if k.key_id == old.key_id else k for k in member.keys), new)
    record = MemberRecord(member.name, member.role, member.issuers, keys, member.seq + 1)
    state.put(key_owner_key(new.key_id), member.name.encode())
    head = await versioned_smt.update(state, versioned_smt.MEMBERS, [store_member(state, record)])
    ctx.event = {
        "member": member.name,
        "retired_key_id": old.key_id,
        "key_id": new.key_id,
        "membership_root": head.root.hex(),
    }


async def retire_key(ctx: TxContext) -> None:
    state, tx = ctx.state, ctx.tx
    member = await require_member(state, tx.author)
    signing = authenticate_author(ctx, member)
    await _endorsed(ctx)
    only_signatures(ctx, [(member.name, signing.key_id), (NATIONAL, None)])
    _check_seq(ctx, member)
    target_id = tx.args["key_id"]
    key_valid_at(member, target_id, ctx.timestamp_ms, what="key to retire")
    remaining = [k for k in member.valid_keys_at(ctx.timestamp_ms) if k.key_id != target_id]
    if not remaining and member.name == NATIONAL:
        raise TransactionRejected(
            Reason.LAST_VALID_KEY,
            f"{target_id[:16]}… is the national authority's last valid key: without it no membership change "
            "could ever be endorsed again; rotate it instead",
            {"member": member.name, "key_id": target_id},
        )
    keys = tuple(
        KeyRecord(k.key_id, k.spki, k.valid_from_ms, ctx.timestamp_ms) if k.key_id == target_id else k
        for k in member.keys
    )
    record = MemberRecord(member.name, member.role, member.issuers, keys, member.seq + 1)
    head = await versioned_smt.update(state, versioned_smt.MEMBERS, [store_member(state, record)])
    ctx.event = {"member": member.name, "retired_key_id": target_id, "membership_root": head.root.hex()}
