"""The license-registry contract run by the embedded executor over an in-memory world state.

Tests are named after the attack or failure they cover; every rejection asserts its exact reason code and that
the rejected transaction wrote nothing.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chaincode.checkpoints import checkpoint_body, cosign
from chaincode.errors import QueryError, Reason, TransactionRejected, require_next_seq
from chaincode.server import build_chaincode
from core.canonical import decode_canonical, encode
from core.checkpoint import parse_checkpoint, verify_cosignatures
from core.codes import TYPE_CODE_OF, LicenseId, LicenseKind
from core.commitment import leaf_data
from core.consortium import Consortium, MemberRecord, build_consortium, derive_key, member_key
from core.errors import FormatError
from core.hashing import sm3
from core.merkle import MerkleTree, leaf_hash, verify_consistency, verify_inclusion
from core.sm2 import PrivateKey
from core.smt import SparseProof, verify_sparse_proof
from core.transactions import (
    ANCHOR_BATCH,
    ANNOUNCE_NODE,
    INIT_CONSORTIUM,
    NEW_VERSION,
    Envelope,
    Signature,
    Tx,
    add_member,
    anchor_batch,
    announce_node,
    change_status,
    cosign_checkpoint,
    init_consortium,
    propose_checkpoint,
    retire_key,
    sign_envelope,
)
from network.executor import EmbeddedStub, MemoryWorldState, TxResult, evaluate, execute

T0 = 1_700_000_000_000
PROVINCES = ("110000", "310000", "440000")
REASONS = {r.value for r in Reason}


@dataclass
class Batch:
    issuer: str
    batch_seq: int
    licenses: list[LicenseId]
    commitments: list[bytes]
    tree: MerkleTree


class Ledger:
    """A consortium, an in-memory world state and helpers that build, submit and check transactions."""

    def __init__(self, *, init: bool = True, auditors: Sequence[str] = ("auditor-1",), quorum: int | None = None):
        self.c: Consortium = build_consortium(list(PROVINCES), "test-seed", auditors=list(auditors), quorum=quorum)
        self.nid = self.c.network_id
        self.state = MemoryWorldState()
        self.now = T0 + 1_000
        self.keys: dict[str, PrivateKey] = dict(self.c.keys)
        self.batch_next: dict[str, int] = {}
        self.member_seq: dict[str, int] = {}
        if init:
            self.ok(init_consortium(self.c.genesis, self.c.key("national"), timestamp_ms=self.tick()))

    def tick(self) -> int:
        self.now += 1_000
        return self.now

    def submit(self, envelope: bytes) -> TxResult:
        result = execute(self.state, envelope)
        if result.valid:
            self.state.apply(result.writes)
        return result

    def ok(self, envelope: bytes) -> TxResult:
        result = self.submit(envelope)
        assert result.valid, (result.reason, result.message)
        assert result.reason is None and result.writes
        return result

    def rejected(self, envelope: bytes, reason: Reason) -> TxResult:
        before = self.state.snapshot()
        result = self.submit(envelope)
        assert not result.valid, "expected a rejection"
        assert result.reason == reason.value, (result.reason, result.message)
        assert result.writes == {} and result.events == []
        assert self.state.snapshot() == before
        return result

    def query(self, function: str, *args: str) -> dict[str, Any]:
        answer: dict[str, Any] = json.loads(evaluate(self.state, function, list(args)))
        return answer

    def issuer_of(self, province: str, index: int = 0) -> str:
        member = self.c.genesis.member(province)
        assert member is not None
        return member.issuers[index]

    def make_batch(self, province: str, count: int = 4, *, tag: str = "", index: int = 0) -> Batch:
        seq = self.batch_next.get(province, 0)
        licenses = [
            LicenseId.build(
                TYPE_CODE_OF[LicenseKind.PHYSICIAN],
                self.issuer_of(province, index),
                f"P{tag}{seq:03d}{i:04d}",
            )
            for i in range(count)
        ]
        commitments = [sm3(f"doc/{lic}".encode()) for lic in licenses]
        tree = MerkleTree(
            [leaf_hash(leaf_data(lic, lic.version, cm)) for lic, cm in zip(licenses, commitments, strict=True)]
        )
        return Batch(province, seq, licenses, commitments, tree)

    def anchor_env(self, batch: Batch, *, key: PrivateKey | None = None, ts: int | None = None) -> bytes:
        return anchor_batch(
            self.nid,
            issuer=batch.issuer,
            batch_seq=batch.batch_seq,
            root=batch.tree.root_hash(),
            leaf_count=batch.tree.size,
            key=key or self.keys[batch.issuer],
            timestamp_ms=ts or self.tick(),
        )

    def anchor(self, province: str, count: int = 4, **kw: object) -> Batch:
        batch = self.make_batch(province, count, **kw)  # type: ignore[arg-type]
        self.ok(self.anchor_env(batch))
        self.batch_next[province] = batch.batch_seq + 1
        return batch

    def anchor_next_versions(self, batch: Batch) -> Batch:
        """A new batch holding the next version of every license of ``batch``."""
        licenses = [lic.next_version() for lic in batch.licenses]
        commitments = [sm3(f"doc/{lic}".encode()) for lic in licenses]
        tree = MerkleTree(
            [leaf_hash(leaf_data(lic, lic.version, cm)) for lic, cm in zip(licenses, commitments, strict=True)]
        )
        seq = self.batch_next.get(batch.issuer, 0)
        newer = Batch(batch.issuer, seq, licenses, commitments, tree)
        self.ok(self.anchor_env(newer))
        self.batch_next[batch.issuer] = seq + 1
        return newer

    def status_env(
        self,
        batch: Batch,
        i: int,
        status: str,
        status_seq: int,
        *,
        author: str | None = None,
        effective_ms: int | None = None,
        ts: int | None = None,
        reason: str = "R01",
    ) -> bytes:
        author = author or batch.issuer
        return change_status(
            self.nid,
            issuer=author,
            license_id=str(batch.licenses[i]),
            status=status,
            reason=reason,
            effective_ms=effective_ms if effective_ms is not None else self.now,
            status_seq=status_seq,
            commitment=batch.commitments[i],
            batch_seq=batch.batch_seq,
            leaf_index=i,
            inclusion_proof=batch.tree.inclusion_proof(i),
            key=self.keys[author],
            timestamp_ms=ts or self.tick(),
        )

    def checkpoint(self, cosigners: Sequence[str], *, proposer: str = "national") -> dict[str, Any]:
        seq = self.query("GetLedgerInfo")["checkpoint_next"]
        self.ok(
            propose_checkpoint(self.nid, member=proposer, seq=seq, key=self.keys[proposer], timestamp_ms=self.tick())
        )
        record = self.query("GetCheckpoint", str(seq))
        for member in cosigners:
            self.ok(self.cosign_env(seq, record["body"], member))
        return self.query("GetCheckpoint", str(seq))

    def cosign_env(self, seq: int, body: str, member: str, *, key: PrivateKey | None = None) -> bytes:
        key = key or self.keys[member]
        return cosign_checkpoint(
            self.nid,
            member=member,
            seq=seq,
            signature=cosign(body.encode(), key),
            key=key,
            timestamp_ms=self.tick(),
        )

    def rotate(self, member: str, *, endorse: bool = True, pop: bool = True) -> tuple[PrivateKey, bytes]:
        seq = self.member_seq.get(member, 0) + 1
        new = derive_key(self.c.seed, member, seq)
        old = self.keys[member]
        tx = Tx(
            "RotateKey",
            self.nid,
            member,
            old.key_id,
            self.tick(),
            seq,
            {"new_spki": new.public_key.to_der().hex()},
        )
        signers = [(member, old)]
        if pop:
            signers.append((member, new))
        if endorse and member != "national":
            signers.append(("national", self.keys["national"]))
        return new, sign_envelope(tx, signers)


def raw_tx(
    ledger: Ledger, tx_type: str, author: str, key: PrivateKey, seq: int, args: dict[str, Any], **kw: object
) -> Tx:
    return Tx(tx_type, kw.get("network_id", ledger.nid), author, key.key_id, ledger.tick(), seq, args)  # type: ignore[arg-type]


# --- genesis ------------------------------------------------------------------------------------------------


def test_genesis_creates_members_and_commits_them_in_the_membership_root() -> None:
    ledger = Ledger()
    info = ledger.query("GetLedgerInfo")
    assert info["network_id"] == ledger.nid and info["member_count"] == 5 and info["tx_count"] == 1
    assert info["log"]["size"] == 0 and info["status"]["version"] == 0 and info["members"]["version"] == 1
    assert ledger.query("GetGenesis")["genesis"] == ledger.c.genesis.to_dict()
    for member in ledger.c.genesis.members:
        answer = ledger.query("GetMember", member.name, "")
        record = MemberRecord.from_dict(answer["record"])
        assert record == member
        verify_sparse_proof(
            bytes.fromhex(info["members"]["root"]),
            member_key(member.name),
            record.record_hash(),
            SparseProof.from_dict(answer["proof"]),
        )


def test_second_genesis_is_refused() -> None:
    ledger = Ledger()
    ledger.rejected(
        init_consortium(ledger.c.genesis, ledger.c.key("national"), timestamp_ms=ledger.tick()),
        Reason.ALREADY_INITIALISED,
    )


def test_transaction_before_genesis_is_refused() -> None:
    ledger = Ledger(init=False)
    ledger.rejected(ledger.anchor_env(ledger.make_batch("110000")), Reason.NOT_INITIALISED)


def test_transaction_for_another_network_is_refused() -> None:
    ledger = Ledger()
    other = build_consortium(list(PROVINCES), "other-seed")
    batch = ledger.make_batch("110000")
    env = anchor_batch(
        other.network_id,
        issuer="110000",
        batch_seq=0,
        root=batch.tree.root_hash(),
        leaf_count=batch.tree.size,
        key=ledger.keys["110000"],
        timestamp_ms=ledger.tick(),
    )
    ledger.rejected(env, Reason.WRONG_NETWORK)


def test_genesis_whose_network_id_is_not_its_hash_is_refused() -> None:
    ledger = Ledger(init=False)
    key = ledger.c.key("national")
    tx = raw_tx(
        ledger,
        INIT_CONSORTIUM,
        "national",
        key,
        0,
        {"genesis": ledger.c.genesis.to_dict()},
        network_id="ab" * 32,
    )
    ledger.rejected(sign_envelope(tx, [("national", key)]), Reason.WRONG_NETWORK)


def test_genesis_signed_by_a_province_is_refused() -> None:
    ledger = Ledger(init=False)
    key = ledger.c.key("110000")
    tx = raw_tx(ledger, INIT_CONSORTIUM, "110000", key, 0, {"genesis": ledger.c.genesis.to_dict()})
    ledger.rejected(sign_envelope(tx, [("110000", key)]), Reason.ROLE_NOT_ALLOWED)


# --- anchor log ---------------------------------------------------------------------------------------------


def test_batches_are_anchored_with_contiguous_seq_into_one_log() -> None:
    ledger = Ledger()
    b0 = ledger.anchor("110000")
    ledger.anchor("310000")
    b1 = ledger.anchor("110000")
    assert (b0.batch_seq, b1.batch_seq) == (0, 1)
    info = ledger.query("GetLedgerInfo")
    assert info["log"]["size"] == 3
    got = ledger.query("GetBatch", "110000", "1")
    assert got["log_index"] == 2 and got["record"]["root"] == b1.tree.root_hash().hex()
    assert got["record"]["leaf_count"] == 4 and got["record"]["issuer"] == "110000"
    assert got["leaf_hash"] == leaf_hash(encode(got["record"])).hex()
    assert Envelope.from_bytes(base64.b64decode(got["envelope"])).tx_id == got["record"]["tx_id"]


def test_replayed_batch_is_refused_as_replay() -> None:
    ledger = Ledger()
    batch = ledger.make_batch("110000")
    env = ledger.anchor_env(batch)
    ledger.ok(env)
    ledger.rejected(env, Reason.BATCH_SEQ_REPLAY)


def test_gapped_batch_seq_is_refused() -> None:
    ledger = Ledger()
    ledger.anchor("110000")
    batch = ledger.make_batch("110000")
    batch.batch_seq = 2
    ledger.rejected(ledger.anchor_env(batch), Reason.BATCH_SEQ_GAP)


def test_gapped_batch_seq_message_names_both_numbers() -> None:
    ledger = Ledger()
    batch = ledger.make_batch("110000")
    batch.batch_seq = 3
    result = ledger.rejected(ledger.anchor_env(batch), Reason.BATCH_SEQ_GAP)
    assert result.message == "110000's batch_seq 3 skips a number; the next is 0"


@pytest.mark.parametrize(
    ("got", "expected", "reason", "verb"),
    [(2, 3, Reason.STATUS_SEQ_REPLAY, "was already used"), (4, 3, Reason.STATUS_SEQ_GAP, "skips a number")],
)
def test_require_next_seq_tells_replay_from_gap_with_evidence(
    got: int, expected: int, reason: Reason, verb: str
) -> None:
    require_next_seq(3, 3, replay=Reason.STATUS_SEQ_REPLAY, gap=Reason.STATUS_SEQ_GAP, what="x")
    with pytest.raises(TransactionRejected) as caught:
        require_next_seq(
            got,
            expected,
            replay=Reason.STATUS_SEQ_REPLAY,
            gap=Reason.STATUS_SEQ_GAP,
            what="L1's status_seq",
            evidence={"license_base_id": "L1"},
        )
    assert caught.value.reason is reason
    assert caught.value.message == f"L1's status_seq {got} {verb}; the next is {expected}"
    assert caught.value.evidence == {"license_base_id": "L1", "expected": expected, "got": got}


def test_require_next_seq_leaves_a_lower_number_to_the_caller_without_a_replay_reason() -> None:
    require_next_seq(0, 5, replay=None, gap=Reason.BATCH_SEQ_GAP, what="batch_seq")  # the caller's replay check
    with pytest.raises(TransactionRejected, match="BATCH_SEQ_GAP: batch_seq 6 skips a number; the next is 5"):
        require_next_seq(6, 5, replay=None, gap=Reason.BATCH_SEQ_GAP, what="batch_seq")


def test_second_batch_with_a_used_seq_is_refused_as_duplicate_with_both_roots() -> None:
    ledger = Ledger()
    first = ledger.anchor("110000")
    other = ledger.make_batch("110000", tag="X")
    other.batch_seq = 0
    result = ledger.rejected(ledger.anchor_env(other), Reason.BATCH_SEQ_DUPLICATE)
    assert first.tree.root_hash().hex() in (result.message or "")
    assert other.tree.root_hash().hex() in (result.message or "")


def test_anchor_by_unknown_member_is_refused() -> None:
    ledger = Ledger()
    stranger = PrivateKey.from_bytes(sm3(b"stranger"))
    tx = raw_tx(ledger, ANCHOR_BATCH, "120000", stranger, 0, {"root": "00" * 32, "leaf_count": 1})
    ledger.rejected(sign_envelope(tx, [("120000", stranger)]), Reason.UNKNOWN_MEMBER)


@pytest.mark.parametrize("member", ["national", "auditor-1"])
def test_anchor_by_a_non_province_is_refused(member: str) -> None:
    ledger = Ledger()
    key = ledger.keys[member]
    tx = raw_tx(ledger, ANCHOR_BATCH, member, key, 0, {"root": "00" * 32, "leaf_count": 1})
    ledger.rejected(sign_envelope(tx, [(member, key)]), Reason.ROLE_NOT_ALLOWED)


def test_forged_signature_is_refused() -> None:
    ledger = Ledger()
    attacker = PrivateKey.from_bytes(sm3(b"attacker"))
    real = ledger.keys["110000"]
    tx = raw_tx(ledger, ANCHOR_BATCH, "110000", real, 0, {"root": "11" * 32, "leaf_count": 3})
    forged = Signature("110000", real.key_id, attacker.sign(tx.signing_message()))
    ledger.rejected(Envelope(tx, (forged,)).to_bytes(), Reason.BAD_SIGNATURE)


def test_transaction_altered_after_signing_is_refused() -> None:
    ledger = Ledger()
    env = decode_canonical(ledger.anchor_env(ledger.make_batch("110000")))
    env["tx"]["args"]["leaf_count"] += 1
    ledger.rejected(encode(env), Reason.BAD_SIGNATURE)


def test_signature_by_another_members_key_is_refused() -> None:
    ledger = Ledger()
    ledger.rejected(ledger.anchor_env(ledger.make_batch("110000"), key=ledger.keys["310000"]), Reason.UNKNOWN_KEY)


def test_envelope_without_the_authors_signature_is_refused() -> None:
    ledger = Ledger()
    key = ledger.keys["110000"]
    tx = raw_tx(ledger, ANCHOR_BATCH, "110000", key, 0, {"root": "11" * 32, "leaf_count": 3})
    ledger.rejected(sign_envelope(tx, [("national", ledger.keys["national"])]), Reason.MISSING_SIGNATURE)


def test_extra_signature_is_refused() -> None:
    ledger = Ledger()
    key = ledger.keys["110000"]
    tx = raw_tx(ledger, ANCHOR_BATCH, "110000", key, 0, {"root": "11" * 32, "leaf_count": 3})
    env = sign_envelope(tx, [("110000", key), ("310000", ledger.keys["310000"])])
    ledger.rejected(env, Reason.UNEXPECTED_SIGNATURE)


def test_key_used_before_its_validity_is_refused() -> None:
    ledger = Ledger()
    batch = ledger.make_batch("110000")
    ledger.rejected(ledger.anchor_env(batch, ts=T0 - 1), Reason.KEY_NOT_VALID_AT_TIME)


def test_retired_key_is_refused_and_backdating_around_it_too_but_its_past_signatures_still_verify() -> None:
    ledger = Ledger()
    old_key = ledger.keys["110000"]
    early = ledger.anchor("110000")
    before_rotation = ledger.now
    new_key, env = ledger.rotate("110000")
    ledger.ok(env)
    rotated_at = ledger.now
    ledger.member_seq["110000"] = 1
    # 1. the old key no longer signs
    late = ledger.make_batch("110000")
    ledger.rejected(ledger.anchor_env(late, key=old_key), Reason.KEY_RETIRED)
    # 2. nor can it sign a transaction backdated to when it was valid: the author's clock does not go back
    ledger.rejected(ledger.anchor_env(late, key=old_key, ts=before_rotation + 1), Reason.TIMESTAMP_REGRESSION)
    # 3. the new key signs
    ledger.keys["110000"] = new_key
    ledger.ok(ledger.anchor_env(late))
    # 4. the batch signed with the old key before the rotation still verifies, against a final checkpoint
    cp = ledger.checkpoint(["national", "110000", "310000"])
    assert cp["final"]
    answer = ledger.query("GetMember", "110000", str(cp["seq"]))
    record = MemberRecord.from_dict(answer["record"])
    verify_sparse_proof(
        bytes.fromhex(cp["fields"]["membership_root"]),
        member_key("110000"),
        record.record_hash(),
        SparseProof.from_dict(answer["proof"]),
    )
    old = record.key(old_key.key_id)
    assert old is not None and old.valid_until_ms == rotated_at
    got = ledger.query("GetBatch", "110000", str(early.batch_seq))
    envelope = Envelope.from_bytes(base64.b64decode(got["envelope"]))
    assert envelope.tx.key_id == old.key_id and old.valid_at(envelope.tx.timestamp_ms)
    envelope.signatures[0].verify(envelope.tx, old.public_key)


# --- membership ---------------------------------------------------------------------------------------------


def _new_province(ledger: Ledger, name: str = "120000") -> tuple[PrivateKey, list[str]]:
    from core.consortium import synthetic_uscc

    return derive_key(b"new", name), [synthetic_uscc(name, 0)]


def test_add_member_then_it_anchors() -> None:
    ledger = Ledger()
    key, issuers = _new_province(ledger)
    ledger.ok(
        add_member(
            ledger.nid,
            name="120000",
            role="province",
            issuers=issuers,
            key=key,
            national_key=ledger.keys["national"],
            timestamp_ms=ledger.tick(),
        )
    )
    assert ledger.query("GetLedgerInfo")["member_count"] == 6
    ledger.keys["120000"] = key
    batch = Batch("120000", 0, [], [], MerkleTree([leaf_hash(b"x")]))
    ledger.ok(ledger.anchor_env(batch))


def test_add_member_without_national_endorsement_is_refused() -> None:
    ledger = Ledger()
    key, issuers = _new_province(ledger)
    tx = Tx(
        "AddMember",
        ledger.nid,
        "120000",
        key.key_id,
        ledger.tick(),
        0,
        {"name": "120000", "role": "province", "issuers": issuers, "spki": key.public_key.to_der().hex()},
    )
    ledger.rejected(sign_envelope(tx, [("120000", key)]), Reason.MISSING_ENDORSEMENT)
    # a province cannot endorse in the national authority's name
    ledger.rejected(sign_envelope(tx, [("120000", key), ("national", ledger.keys["310000"])]), Reason.BAD_ENDORSEMENT)


def test_add_member_conflicts_are_refused() -> None:
    ledger = Ledger()
    key, _ = _new_province(ledger)

    def env(name: str, issuers: list[str], k: PrivateKey) -> bytes:
        return add_member(
            ledger.nid,
            name=name,
            role="province",
            issuers=issuers,
            key=k,
            national_key=ledger.keys["national"],
            timestamp_ms=ledger.tick(),
        )

    ledger.rejected(env("110000", [], key), Reason.MEMBER_EXISTS)
    ledger.rejected(env("120000", [ledger.issuer_of("310000")], key), Reason.ISSUER_CONFLICT)
    ledger.rejected(env("120000", [], ledger.keys["310000"]), Reason.KEY_EXISTS)


def test_new_members_key_is_not_valid_before_it_was_added() -> None:
    ledger = Ledger()
    key, issuers = _new_province(ledger)
    added = ledger.tick()
    ledger.ok(
        add_member(
            ledger.nid,
            name="120000",
            role="province",
            issuers=issuers,
            key=key,
            national_key=ledger.keys["national"],
            timestamp_ms=added,
        )
    )
    ledger.keys["120000"] = key
    batch = Batch("120000", 0, [], [], MerkleTree([leaf_hash(b"x")]))
    ledger.rejected(ledger.anchor_env(batch, ts=added - 1), Reason.KEY_NOT_VALID_AT_TIME)


def test_rotate_key_without_endorsement_or_proof_of_possession_is_refused() -> None:
    ledger = Ledger()
    _, env = ledger.rotate("110000", endorse=False)
    ledger.rejected(env, Reason.MISSING_ENDORSEMENT)
    _, env = ledger.rotate("110000", pop=False)
    ledger.rejected(env, Reason.MISSING_PROOF_OF_POSSESSION)


def test_replayed_rotation_is_refused() -> None:
    ledger = Ledger()
    new, env = ledger.rotate("310000")
    ledger.ok(env)
    ledger.keys["310000"] = new
    # the same member seq again, now signed with the current key
    tx = Tx(
        "RotateKey",
        ledger.nid,
        "310000",
        new.key_id,
        ledger.tick(),
        1,
        {"new_spki": derive_key(b"z", "z").public_key.to_der().hex()},
    )
    env = sign_envelope(tx, [("310000", new), ("310000", derive_key(b"z", "z")), ("national", ledger.keys["national"])])
    ledger.rejected(env, Reason.MEMBER_SEQ_REPLAY)


def test_national_rotates_its_own_key_and_keeps_endorsing() -> None:
    ledger = Ledger()
    new, env = ledger.rotate("national")
    ledger.ok(env)
    ledger.keys["national"] = new
    key, issuers = _new_province(ledger)
    ledger.ok(
        add_member(
            ledger.nid,
            name="120000",
            role="province",
            issuers=issuers,
            key=key,
            national_key=new,
            timestamp_ms=ledger.tick(),
        )
    )


def test_retire_key_rules() -> None:
    ledger = Ledger()
    key = ledger.keys["310000"]
    env = retire_key(
        ledger.nid,
        member="310000",
        seq=1,
        signing_key=key,
        key_id=key.key_id,
        national_key=None,
        timestamp_ms=ledger.tick(),
    )
    ledger.rejected(env, Reason.MISSING_ENDORSEMENT)
    nkey = ledger.keys["national"]
    env = retire_key(
        ledger.nid,
        member="national",
        seq=1,
        signing_key=nkey,
        key_id=nkey.key_id,
        national_key=None,
        timestamp_ms=ledger.tick(),
    )
    ledger.rejected(env, Reason.LAST_VALID_KEY)
    env = retire_key(
        ledger.nid,
        member="310000",
        seq=1,
        signing_key=key,
        key_id=key.key_id,
        national_key=nkey,
        timestamp_ms=ledger.tick(),
    )
    ledger.ok(env)  # a province may retire its last key: it can sign nothing from now on
    ledger.rejected(ledger.anchor_env(ledger.make_batch("310000")), Reason.KEY_RETIRED)


# --- status map ---------------------------------------------------------------------------------------------


def test_status_lifecycle_and_contiguous_status_seq() -> None:
    ledger = Ledger()
    batch = ledger.anchor("110000")
    ledger.ok(ledger.status_env(batch, 1, "suspended", 0))
    assert ledger.query("GetStatus", str(batch.licenses[1]), "")["status"] == "suspended"
    ledger.ok(ledger.status_env(batch, 1, "reinstated", 1))
    ledger.ok(ledger.status_env(batch, 1, "revoked", 2))
    answer = ledger.query("GetStatus", batch.licenses[1].base, "")
    assert answer["status"] == "revoked" and answer["record"]["status_seq"] == 2
    assert ledger.query("GetStatus", str(batch.licenses[0]), "")["status"] == "active"


def test_replayed_status_change_is_refused() -> None:
    ledger = Ledger()
    batch = ledger.anchor("110000")
    env = ledger.status_env(batch, 0, "suspended", 0)
    ledger.ok(env)
    ledger.ok(ledger.status_env(batch, 0, "reinstated", 1))
    ledger.rejected(env, Reason.STATUS_SEQ_REPLAY)  # would re-suspend the license


def test_gapped_status_seq_is_refused() -> None:
    ledger = Ledger()
    batch = ledger.anchor("110000")
    ledger.rejected(ledger.status_env(batch, 0, "suspended", 1), Reason.STATUS_SEQ_GAP)


def test_status_change_for_another_provinces_license_is_refused() -> None:
    ledger = Ledger()
    batch = ledger.anchor("110000")
    result = ledger.rejected(ledger.status_env(batch, 0, "revoked", 0, author="310000"), Reason.WRONG_ISSUER)
    assert "110000" in (result.message or "")


def test_status_change_for_a_never_anchored_license_is_refused() -> None:
    ledger = Ledger()
    anchored = ledger.anchor("110000")
    never = ledger.make_batch("110000", tag="N")  # built but never anchored
    never.batch_seq = anchored.batch_seq  # claims to be in the anchored batch
    ledger.rejected(ledger.status_env(never, 2, "revoked", 0), Reason.NOT_ANCHORED)
    never.batch_seq = 7
    ledger.rejected(ledger.status_env(never, 2, "revoked", 0), Reason.UNKNOWN_BATCH)


def test_invalid_transitions_and_effective_time_regression_are_refused() -> None:
    ledger = Ledger()
    batch = ledger.anchor("110000")
    ledger.rejected(ledger.status_env(batch, 0, "reinstated", 0), Reason.INVALID_TRANSITION)
    ledger.ok(ledger.status_env(batch, 0, "revoked", 0))
    ledger.rejected(ledger.status_env(batch, 0, "reinstated", 1), Reason.INVALID_TRANSITION)
    ledger.ok(ledger.status_env(batch, 1, "suspended", 0, effective_ms=ledger.now))
    ledger.rejected(
        ledger.status_env(batch, 1, "reinstated", 1, effective_ms=ledger.now - 10_000),
        Reason.EFFECTIVE_TIME_REGRESSION,
    )


def test_version_update_names_the_newer_version_and_keeps_the_status() -> None:
    ledger = Ledger()
    v1 = ledger.anchor("110000")
    v2 = ledger.anchor_next_versions(v1)
    ledger.ok(ledger.status_env(v2, 0, "active", 0, reason=NEW_VERSION))
    answer = ledger.query("GetStatus", v1.licenses[0].base, "")
    assert answer["status"] == "active" and answer["record"]["license_id"] == str(v2.licenses[0])
    assert answer["record"]["commitment"] == v2.commitments[0].hex() and answer["record"]["batch_seq"] == 1
    ledger.ok(ledger.status_env(v2, 1, "suspended", 0))
    v3 = ledger.anchor_next_versions(v2)
    ledger.ok(ledger.status_env(v3, 1, "suspended", 1, reason=NEW_VERSION))
    ledger.ok(ledger.status_env(v3, 1, "reinstated", 2))  # a later change cites the current version
    assert ledger.query("GetStatus", v1.licenses[1].base, "")["record"]["license_id"] == str(v3.licenses[1])


def test_version_update_that_changes_the_status_is_refused() -> None:
    ledger = Ledger()
    v2 = ledger.anchor_next_versions(ledger.anchor("110000"))
    ledger.rejected(ledger.status_env(v2, 0, "suspended", 0, reason=NEW_VERSION), Reason.INVALID_TRANSITION)
    ledger.ok(ledger.status_env(v2, 1, "suspended", 0))
    v3 = ledger.anchor_next_versions(v2)
    ledger.rejected(ledger.status_env(v3, 1, "active", 1, reason=NEW_VERSION), Reason.INVALID_TRANSITION)


def test_status_change_citing_an_older_version_is_refused() -> None:
    ledger = Ledger()
    v1 = ledger.anchor("110000")
    v2 = ledger.anchor_next_versions(v1)
    ledger.ok(ledger.status_env(v2, 0, "active", 0, reason=NEW_VERSION))
    # an old version's leaf must not take the record back: neither a status change nor a "version update"
    result = ledger.rejected(ledger.status_env(v1, 0, "suspended", 1), Reason.VERSION_REGRESSION)
    assert "version 2" in (result.message or "")
    ledger.rejected(ledger.status_env(v1, 0, "active", 1, reason=NEW_VERSION), Reason.VERSION_REGRESSION)
    # a version update must name a strictly newer version; a change citing the same one is fine
    ledger.rejected(ledger.status_env(v2, 0, "active", 1, reason=NEW_VERSION), Reason.VERSION_REGRESSION)
    ledger.ok(ledger.status_env(v2, 0, "revoked", 1))


# --- checkpoints and proofs ---------------------------------------------------------------------------------


def test_checkpoint_is_final_only_with_a_quorum_of_distinct_members() -> None:
    ledger = Ledger()  # 5 members: quorum 3
    ledger.anchor("110000")
    cp = ledger.checkpoint(["110000", "310000"])
    assert cp["quorum"] == 3 and not cp["final"]
    with pytest.raises(QueryError) as exc:
        evaluate(ledger.state, "GetLatestFinalCheckpoint", [])
    assert exc.value.reason == Reason.NOT_FOUND
    ledger.rejected(ledger.cosign_env(0, cp["body"], "110000"), Reason.DUPLICATE_COSIGNATURE)
    ledger.rejected(ledger.cosign_env(0, cp["body"] + "x", "440000"), Reason.BAD_COSIGNATURE)
    ledger.rejected(ledger.cosign_env(5, cp["body"], "440000"), Reason.UNKNOWN_CHECKPOINT)
    ledger.ok(ledger.cosign_env(0, cp["body"], "auditor-1"))
    final = ledger.query("GetLatestFinalCheckpoint")
    assert final["final"] and final["seq"] == 0 and len(final["cosignatures"]) == 3
    # a verifier checks the note with core.checkpoint, with keys proven against the checkpoint's own root
    checkpoint, cosignatures = parse_checkpoint(final["note"].encode())
    assert checkpoint.body() == final["body"].encode()
    keys = {}
    for name in ("110000", "310000", "440000", "auditor-1", "national"):
        member = ledger.query("GetMember", name, "0")
        verify_sparse_proof(
            checkpoint.membership_root,
            member_key(name),
            sm3(encode(member["record"])),
            SparseProof.from_dict(member["proof"]),
        )
        record = MemberRecord.from_dict(member["record"])
        keys[name] = [k.public_key for k in record.valid_keys_at(checkpoint.timestamp_ms)]
    assert verify_cosignatures(checkpoint, cosignatures, keys, final["quorum"]) == [
        "110000",
        "310000",
        "auditor-1",
    ]
    assert final["body"].encode() == checkpoint_body(ledger.nid, final["fields"])


def test_checkpoint_seq_replay_and_gap_are_refused() -> None:
    ledger = Ledger()
    env = propose_checkpoint(ledger.nid, member="440000", seq=0, key=ledger.keys["440000"], timestamp_ms=ledger.tick())
    ledger.ok(env)
    ledger.rejected(env, Reason.CHECKPOINT_SEQ_REPLAY)
    gap = propose_checkpoint(ledger.nid, member="440000", seq=2, key=ledger.keys["440000"], timestamp_ms=ledger.tick())
    ledger.rejected(gap, Reason.CHECKPOINT_SEQ_GAP)


def _propose(ledger: Ledger, member: str, seq: int, ts: int) -> bytes:
    return propose_checkpoint(ledger.nid, member=member, seq=seq, key=ledger.keys[member], timestamp_ms=ts)


def _cosign(ledger: Ledger, member: str, seq: int, ts: int) -> bytes:
    body = ledger.query("GetCheckpoint", str(seq))["body"].encode()
    key = ledger.keys[member]
    return cosign_checkpoint(ledger.nid, member=member, seq=seq, signature=cosign(body, key), key=key, timestamp_ms=ts)


def test_checkpoint_duties_have_their_own_clock_so_a_later_dated_duty_never_fails_the_members_own_tx() -> None:
    ledger = Ledger()
    first = ledger.anchor("110000")
    a = ledger.now
    p = a + 3_600_000  # the peer dates duties at its wall clock, maybe far later than the member's own txs
    ledger.ok(_propose(ledger, "110000", 0, p))
    ledger.ok(_propose(ledger, "national", 1, p + 100))  # the contract does not require checkpoint 0 final
    ledger.ok(_cosign(ledger, "110000", 1, p + 200))
    # the member's own transactions, signed concurrently with an earlier (but own-clock-valid) time, still pass
    second = ledger.make_batch("110000")
    assert second.batch_seq == first.batch_seq + 1
    ledger.ok(ledger.anchor_env(second, ts=a + 2_000))
    ledger.batch_next["110000"] = second.batch_seq + 1
    # ... and the member's own clock is still enforced on its own transactions
    third = ledger.make_batch("110000")
    low = ledger.rejected(ledger.anchor_env(third, ts=a + 1_000), Reason.TIMESTAMP_REGRESSION)
    assert "previous transaction is dated" in (low.message or "")
    # the duty clock does not go back either: cosigning checkpoint 0 dated before its cosignature of 1
    back = ledger.rejected(_cosign(ledger, "110000", 0, p + 150), Reason.TIMESTAMP_REGRESSION)
    assert "previous checkpoint duty is dated" in (back.message or "")
    ledger.ok(_cosign(ledger, "110000", 0, p + 250))
    # a cosignature is never dated before the checkpoint it cosigns
    early = ledger.rejected(_cosign(ledger, "310000", 1, p + 99), Reason.TIMESTAMP_REGRESSION)
    assert "cannot be dated before it" in (early.message or "")
    assert ledger.query("GetLedgerInfo")["time_ms"] == p + 250


def test_checkpoint_is_never_dated_before_the_ledger_time_it_covers() -> None:
    ledger = Ledger()
    ledger.anchor("110000")
    ledger.ok(_propose(ledger, "national", 0, ledger.now + 10))
    late = ledger.now + 60_000
    batch = ledger.make_batch("310000")
    ledger.ok(ledger.anchor_env(batch, ts=late))  # a province's own transaction dated a minute later
    # after the previous checkpoint, but before a transaction it would cover
    env = _propose(ledger, "national", 1, late - 1)
    result = ledger.rejected(env, Reason.TIMESTAMP_REGRESSION)
    assert "older than what it covers" in (result.message or "")
    before_previous = _propose(ledger, "national", 1, ledger.now + 5)
    previous = ledger.rejected(before_previous, Reason.TIMESTAMP_REGRESSION)
    assert "checkpoint 0 is dated" in (previous.message or "")
    ledger.ok(_propose(ledger, "national", 1, late))
    assert ledger.query("GetCheckpoint", "1")["fields"]["timestamp_ms"] == late


def test_retired_key_cannot_propose_a_checkpoint_backdated_into_its_validity() -> None:
    ledger = Ledger()
    old_key = ledger.keys["110000"]
    before_rotation = ledger.now
    new_key, env = ledger.rotate("110000")
    ledger.ok(env)
    # the duty clock of 110000 is fresh, but the rotation advanced the ledger time past the old key's validity
    backdated = propose_checkpoint(ledger.nid, member="110000", seq=0, key=old_key, timestamp_ms=before_rotation + 1)
    ledger.rejected(backdated, Reason.TIMESTAMP_REGRESSION)
    ledger.rejected(
        propose_checkpoint(ledger.nid, member="110000", seq=0, key=old_key, timestamp_ms=ledger.tick()),
        Reason.KEY_RETIRED,
    )
    ledger.ok(propose_checkpoint(ledger.nid, member="110000", seq=0, key=new_key, timestamp_ms=ledger.tick()))


def test_inclusion_consistency_and_status_proofs_verify_against_final_checkpoints() -> None:
    ledger = Ledger()
    batches = [ledger.anchor(p) for p in ("110000", "310000", "110000", "440000", "110000")]
    revoked = batches[0]
    ledger.ok(ledger.status_env(revoked, 2, "revoked", 0))
    cp1 = ledger.checkpoint(["110000", "310000", "440000"])
    assert cp1["final"]
    f1 = cp1["fields"]
    log_root1 = bytes.fromhex(f1["log_root"])
    # every batch is in the log the checkpoint names
    for batch in batches:
        entry = ledger.query("GetBatch", batch.issuer, str(batch.batch_seq))
        p = ledger.query("GetLogInclusionProof", str(entry["log_index"]), str(f1["log_size"]))
        assert p["root_hash"] == f1["log_root"]
        verify_inclusion(
            p["leaf_index"],
            p["tree_size"],
            leaf_hash(encode(entry["record"])),
            [bytes.fromhex(x) for x in p["inclusion_proof"]],
            log_root1,
        )
    # the revoked license: a membership proof of its status record
    status_root1 = bytes.fromhex(f1["status_root"])
    s = ledger.query("GetStatus", str(revoked.licenses[2]), "0")
    assert s["status"] == "revoked"
    verify_sparse_proof(
        status_root1,
        sm3(revoked.licenses[2].base.encode()),
        sm3(encode(s["record"])),
        SparseProof.from_dict(s["proof"]),
    )
    # never changed: a non-membership proof, i.e. not revoked
    s = ledger.query("GetStatus", str(revoked.licenses[1]), "0")
    assert s["status"] == "active" and s["record"] is None
    verify_sparse_proof(status_root1, sm3(revoked.licenses[1].base.encode()), None, SparseProof.from_dict(s["proof"]))
    # more activity, a second checkpoint, a consistency proof between the two
    more = ledger.anchor("310000")
    ledger.ok(ledger.status_env(revoked, 1, "suspended", 0))
    cp2 = ledger.checkpoint(["national", "auditor-1", "440000"])
    f2 = cp2["fields"]
    c = ledger.query("GetLogConsistencyProof", str(f1["log_size"]), str(f2["log_size"]))
    verify_consistency(
        f1["log_size"],
        f2["log_size"],
        [bytes.fromhex(x) for x in c["consistency_proof"]],
        log_root1,
        bytes.fromhex(f2["log_root"]),
    )
    assert more.batch_seq == 1
    # the status as of checkpoint 0 is still provable against checkpoint 0, though the status map moved on
    old = ledger.query("GetStatus", str(revoked.licenses[1]), "0")
    verify_sparse_proof(status_root1, sm3(revoked.licenses[1].base.encode()), None, SparseProof.from_dict(old["proof"]))
    new = ledger.query("GetStatus", str(revoked.licenses[1]), "1")
    assert new["status"] == "suspended"
    verify_sparse_proof(
        bytes.fromhex(f2["status_root"]),
        sm3(revoked.licenses[1].base.encode()),
        sm3(encode(new["record"])),
        SparseProof.from_dict(new["proof"]),
    )
    with pytest.raises(Exception):  # noqa: B017 - the old proof does not fit the new root
        verify_sparse_proof(
            bytes.fromhex(f2["status_root"]),
            sm3(revoked.licenses[1].base.encode()),
            None,
            SparseProof.from_dict(old["proof"]),
        )


def test_anchor_log_proofs_equal_core_merkle_for_every_size() -> None:
    ledger = Ledger()
    for i in range(11):
        ledger.anchor(PROVINCES[i % 3], count=1)
    leaves = [bytes.fromhex(ledger.query("GetLogEntry", str(i))["leaf_hash"]) for i in range(11)]
    tree = MerkleTree(leaves)
    for n in range(1, 12):
        for i in range(n):
            p = ledger.query("GetLogInclusionProof", str(i), str(n))
            assert [bytes.fromhex(x) for x in p["inclusion_proof"]] == tree.inclusion_proof(i, n)
            assert bytes.fromhex(p["root_hash"]) == tree.root_hash(n)
        for m in range(1, n + 1):
            c = ledger.query("GetLogConsistencyProof", str(m), str(n))
            assert [bytes.fromhex(x) for x in c["consistency_proof"]] == tree.consistency_proof(m, n)


@pytest.mark.parametrize(
    ("function", "args", "reason"),
    [
        ("GetLogInclusionProof", ["0", "1"], Reason.BAD_QUERY),
        ("GetLogInclusionProof", ["01", "2"], Reason.BAD_QUERY),
        ("GetLogConsistencyProof", ["0", "0"], Reason.BAD_QUERY),
        ("GetCheckpoint", ["3"], Reason.NOT_FOUND),
        ("GetStatus", ["not-a-license", ""], Reason.BAD_QUERY),
        ("GetStatus", ["1.2.156.3005.2.x.y.z", "9"], Reason.BAD_QUERY),
        ("GetBatch", ["110000", "0"], Reason.NOT_FOUND),
        ("GetBatch", ["110000", "-1"], Reason.BAD_QUERY),
        ("Submit", ["{}"], Reason.BAD_QUERY),
        ("NoSuchQuery", [], Reason.BAD_QUERY),
    ],
)
def test_bad_queries_raise_query_error_with_reason(function: str, args: list[str], reason: Reason) -> None:
    ledger = Ledger()
    with pytest.raises(QueryError) as exc:
        evaluate(ledger.state, function, args)
    assert exc.value.reason == reason


# --- malformed input ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def anchored_ledger() -> tuple[Ledger, bytes]:
    ledger = Ledger()
    ledger.anchor("110000")
    return ledger, ledger.anchor_env(ledger.make_batch("110000"))


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=600))
def test_random_bytes_never_raise_and_are_malformed(anchored_ledger: tuple[Ledger, bytes], data: bytes) -> None:
    ledger, _ = anchored_ledger
    result = execute(ledger.state, data)
    assert not result.valid and result.reason == Reason.MALFORMED_PAYLOAD.value and result.writes == {}
    assert len(result.tx_id) == 64


@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    position=st.integers(min_value=0, max_value=10_000),
    kind=st.sampled_from(["flip", "truncate", "insert", "delete"]),
    byte=st.integers(min_value=0, max_value=255),
)
def test_mutated_envelopes_are_never_valid(
    anchored_ledger: tuple[Ledger, bytes], position: int, kind: str, byte: int
) -> None:
    ledger, env = anchored_ledger
    assert execute(ledger.state, env).valid  # the unmutated envelope is valid here
    i = position % len(env)
    mutated = {
        "flip": env[:i] + bytes([env[i] ^ (byte or 1)]) + env[i + 1 :],
        "truncate": env[:i],
        "insert": env[:i] + bytes([byte]) + env[i:],
        "delete": env[:i] + env[i + 1 :],
    }[kind]
    result = execute(ledger.state, mutated)
    assert not result.valid and result.reason in REASONS and result.writes == {}


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=6,
)


@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=st.lists(st.integers(min_value=0, max_value=20), min_size=1, max_size=4), value=_json_values)
def test_envelopes_with_a_field_replaced_are_never_valid(
    anchored_ledger: tuple[Ledger, bytes], path: list[int], value: object
) -> None:
    ledger, env = anchored_ledger
    doc = decode_canonical(env)
    node = doc
    for depth, step in enumerate(path):  # walk into the document; replace what the walk ends on
        if not isinstance(node, dict | list) or not node:
            return
        slot: str | int = sorted(node)[step % len(node)] if isinstance(node, dict) else step % len(node)
        child = node[slot]  # type: ignore[index]
        if depth == len(path) - 1 or not isinstance(child, dict | list):
            if child == value:
                return
            node[slot] = value  # type: ignore[index]
            break
        node = child
    result = execute(ledger.state, encode(doc))
    assert not result.valid and result.reason in REASONS and result.writes == {}


# --- determinism --------------------------------------------------------------------------------------------


def _scenario() -> list[bytes]:
    ledger = Ledger()
    envs = [init_consortium(ledger.c.genesis, ledger.c.key("national"), timestamp_ms=T0 + 2_000)]
    b = ledger.make_batch("110000")
    envs.append(ledger.anchor_env(b))
    envs.append(ledger.anchor_env(b))  # replay: rejected
    envs.append(ledger.status_env(b, 1, "revoked", 0))
    c = ledger.make_batch("310000")
    envs.append(ledger.anchor_env(c))
    envs.append(ledger.status_env(c, 0, "suspended", 0))
    envs.append(
        propose_checkpoint(ledger.nid, member="440000", seq=0, key=ledger.keys["440000"], timestamp_ms=ledger.tick())
    )
    envs.append(b"not an envelope")
    return envs


def test_two_executors_given_the_same_envelopes_write_identical_bytes() -> None:
    envs = _scenario()
    runs = []
    for _ in range(2):
        state = MemoryWorldState()
        results = []
        for env in envs:
            r = execute(state, env)
            if r.valid:
                state.apply(r.writes)
            results.append(r)
        runs.append((results, state.snapshot()))
    (r1, s1), (r2, s2) = runs
    assert r1 == r2 and s1 == s2
    assert [r.valid for r in r1] == [True, True, False, True, True, True, True, False]
    for r in r1:
        assert list(r.writes) == sorted(r.writes)


_REPLAY = """
import hashlib, sys
from network.executor import MemoryWorldState, execute
from core.canonical import encode
state, digest = MemoryWorldState(), hashlib.sha256()
for line in open(sys.argv[1], "rb").read().split(b"\\n"):
    r = execute(state, bytes.fromhex(line.decode()))
    if r.valid:
        state.apply(r.writes)
    writes = [[k, v.hex() if v else None] for k, v in r.writes.items()]
    digest.update(encode([r.tx_id, r.valid, r.reason, writes]))
print(digest.hexdigest())
"""


def test_executors_in_processes_with_different_hash_seeds_agree(tmp_path: Path) -> None:
    envs = tmp_path / "envs.hex"
    envs.write_bytes(b"\n".join(e.hex().encode() for e in _scenario()))
    outs = set()
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run(
            [sys.executable, "-c", _REPLAY, str(envs)],
            capture_output=True,
            text=True,
            env=env,
            check=True,
            timeout=60,
        )
        outs.add(out.stdout.strip())
    assert len(outs) == 1


# --- the Fabric dispatcher path ---------------------------------------------------------------------------


def test_contract_runs_under_contract_chaincode_invoke_with_the_embedded_stub() -> None:
    ledger = Ledger()
    cc = build_chaincode()  # a fresh ContractChaincode, as `python -m chaincode` builds it
    batch = ledger.make_batch("110000")
    env = ledger.anchor_env(batch)
    tx = Envelope.from_bytes(env).tx
    stub = EmbeddedStub(
        ledger.state, "LicenseRegistry:Submit", [env.decode()], tx_id=tx.tx_id, timestamp_ms=tx.timestamp_ms
    )
    response = asyncio.run(cc.invoke(stub))
    assert response.status == 200
    event = json.loads(response.payload)
    assert event["type"] == "AnchorBatch" and event["log_index"] == 0
    assert stub.writes == execute(ledger.state, env).writes
    assert [name for name, _ in stub.get_events()] == ["AnchorBatch"]
    # a rejection is a shim error response whose message starts with the reason code
    ledger.state.apply(stub.writes)
    stub = EmbeddedStub(ledger.state, "Submit", [env.decode()], tx_id=tx.tx_id, timestamp_ms=tx.timestamp_ms)
    response = asyncio.run(cc.invoke(stub))
    assert response.status == 500 and response.message.startswith("BATCH_SEQ_REPLAY: ")
    # queries are registered as evaluate transactions in the chaincode metadata
    stub = EmbeddedStub(ledger.state, "org.hyperledger.fabric:get_metadata", [], tx_id="m", timestamp_ms=None)
    metadata = json.loads(asyncio.run(cc.invoke(stub)).payload)
    txs = {t["name"]: t["tag"] for t in metadata["contracts"]["LicenseRegistry"]["transactions"]}
    assert "SUBMIT" in txs["Submit"] and "EVALUATE" in txs["GetStatus"]


def test_stub_timestamp_must_match_the_envelope() -> None:
    ledger = Ledger()
    cc = build_chaincode()
    env = ledger.anchor_env(ledger.make_batch("110000"))
    tx = Envelope.from_bytes(env).tx
    for ts, reason in ((tx.timestamp_ms + 10 * 60_000, "TIMESTAMP_MISMATCH"), (None, "MISSING_TX_TIMESTAMP")):
        stub = EmbeddedStub(ledger.state, "Submit", [env.decode()], tx_id=tx.tx_id, timestamp_ms=ts)
        response = asyncio.run(cc.invoke(stub))
        assert response.status == 500 and response.message.startswith(reason + ": ")
        assert stub.writes == {}


def test_embedded_stub_reads_its_own_writes_and_merges_ranges() -> None:
    state = MemoryWorldState({"a": b"1", "b": b"2", "c": b"3"})

    async def run() -> list[tuple[str, bytes]]:
        stub = EmbeddedStub(state, "f", [], tx_id="t", timestamp_ms=0)
        await stub.put_state("bb", b"x")
        await stub.delete_state("b")
        assert await stub.get_state("bb") == b"x" and await stub.get_state("b") == b""
        it = await stub.get_state_by_range("a", "c")
        return [(kv.key, kv.value) async for kv in it]

    assert asyncio.run(run()) == [("a", b"1"), ("bb", b"x")]
    assert state.get("b") == b"2"  # the committed state is untouched


_keys = st.text(alphabet="abc", min_size=1, max_size=3)


@settings(max_examples=150)
@given(
    base=st.dictionaries(_keys, st.binary(min_size=1, max_size=2), max_size=8),
    writes=st.dictionaries(_keys, st.none() | st.binary(min_size=1, max_size=2), max_size=6),
    start=st.text(alphabet="abc", max_size=2),
    end=st.text(alphabet="abcd", max_size=2),
)
def test_embedded_stub_range_equals_the_committed_state_with_the_writes_applied(
    base: dict[str, bytes], writes: dict[str, bytes | None], start: str, end: str
) -> None:
    model = {**base, **writes}
    expected = sorted((k, v) for k, v in model.items() if v and k >= start and (end == "" or k < end))

    async def run() -> list[tuple[str, bytes]]:
        stub = EmbeddedStub(MemoryWorldState(base), "f", [], tx_id="t", timestamp_ms=0)
        for key, value in writes.items():
            if value is None:
                await stub.delete_state(key)
            else:
                await stub.put_state(key, value)
        it = await stub.get_state_by_range(start, end)
        return [(kv.key, kv.value) async for kv in it]

    assert asyncio.run(run()) == expected


@pytest.mark.integration
def test_chaincode_server_listens_for_a_fabric_peer() -> None:
    import socket
    import time

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "chaincode", "--id", "licledger:test", "--address", f"127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                assert proc.poll() is None, "the chaincode server exited"
                assert time.monotonic() < deadline, "the chaincode server did not listen"
                time.sleep(0.1)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


# --- node directory (AnnounceNode) --------------------------------------------------------------------------


def _announce(
    ledger: Ledger, member: str, seq: int, url: str, *, key: PrivateKey | None = None, ts: int | None = None
) -> bytes:
    return announce_node(
        ledger.nid, member=member, seq=seq, url=url, key=key or ledger.keys[member], timestamp_ms=ts or ledger.tick()
    )


def test_announce_node_records_replaces_and_withdraws() -> None:
    ledger = Ledger()
    assert ledger.query("GetNodes") == {"nodes": []}
    ledger.ok(_announce(ledger, "440000", 0, "https://gd.example/licledger"))
    ledger.ok(_announce(ledger, "110000", 0, "http://127.0.0.1:8401"))
    nodes = ledger.query("GetNodes")["nodes"]
    assert [(n["member"], n["url"], n["seq"]) for n in nodes] == [
        ("110000", "http://127.0.0.1:8401", 0),
        ("440000", "https://gd.example/licledger", 0),
    ]
    ledger.ok(_announce(ledger, "440000", 1, "https://gd2.example"))
    ledger.ok(_announce(ledger, "110000", 1, ""))  # withdrawn
    nodes = {n["member"]: n for n in ledger.query("GetNodes")["nodes"]}
    assert (nodes["440000"]["url"], nodes["440000"]["seq"]) == ("https://gd2.example", 1)
    assert (nodes["110000"]["url"], nodes["110000"]["seq"]) == ("", 1)


def test_announce_node_replay_and_gap_are_refused() -> None:
    ledger = Ledger()
    old = _announce(ledger, "310000", 0, "https://old.example")
    ledger.ok(old)
    ledger.ok(_announce(ledger, "310000", 1, "https://new.example"))
    ledger.rejected(old, Reason.MEMBER_SEQ_REPLAY)  # the old announcement cannot point the directory back
    ledger.rejected(_announce(ledger, "310000", 0, "https://old.example"), Reason.MEMBER_SEQ_REPLAY)
    ledger.rejected(_announce(ledger, "310000", 3, "https://gap.example"), Reason.MEMBER_SEQ_GAP)
    assert ledger.query("GetNodes")["nodes"][0]["url"] == "https://new.example"


def test_announce_node_for_another_member_is_refused() -> None:
    """Only the member's own key can move its directory entry: a province signing as another one fails the
    authorship check, and a second signature is not taken."""
    ledger = Ledger()

    def tx(key_owner: str) -> Tx:
        key_id = ledger.keys[key_owner].key_id
        return Tx(ANNOUNCE_NODE, ledger.nid, "440000", key_id, ledger.tick(), 0, {"url": "https://x.example"})

    ledger.rejected(sign_envelope(tx("110000"), [("440000", ledger.keys["110000"])]), Reason.UNKNOWN_KEY)
    ledger.rejected(
        sign_envelope(tx("440000"), [("440000", ledger.keys["440000"]), ("national", ledger.keys["national"])]),
        Reason.UNEXPECTED_SIGNATURE,
    )
    assert ledger.query("GetNodes") == {"nodes": []}


@pytest.mark.parametrize(
    "url",
    [
        "ftp://a.example",
        "https://",
        "https://user@a.example",
        "https://a.example/?q=1",
        "https://a.example/#top",
        "https://a.example/",
        "https://a example",
        "https://a.example," + "b",
        "https://" + "a" * 300,
    ],
)
def test_announce_node_with_a_bad_url_is_malformed(url: str) -> None:
    """The builder refuses such a URL; a client that signs one anyway is refused by the contract."""
    ledger = Ledger()
    with pytest.raises(FormatError, match=r"args\.url"):
        _announce(ledger, "440000", 0, url)
    good = _announce(ledger, "440000", 0, "https://placeholder.example")
    forged = good.replace(b'"https://placeholder.example"', encode(url))
    assert forged != good
    result = ledger.rejected(forged, Reason.MALFORMED_PAYLOAD)
    assert "args.url" in (result.message or "")


def test_announce_node_has_its_own_clock_and_a_retired_key_cannot_announce() -> None:
    """An announcement dated before the member's last anchor is accepted (its own clock domain, so announcing
    beside the anchoring worker never makes the worker's transactions regress), and the anchor after it is
    too; but a key retired since cannot announce by backdating to when it was valid."""
    ledger = Ledger()
    ledger.anchor("110000")
    first = ledger.now - 500
    ledger.ok(_announce(ledger, "110000", 0, "https://bj.example", ts=first))
    ledger.anchor("110000")
    ledger.rejected(_announce(ledger, "110000", 1, "https://bj2.example", ts=first - 10), Reason.TIMESTAMP_REGRESSION)
    key = ledger.keys["110000"]
    valid_then = ledger.tick()
    ledger.ok(
        retire_key(
            ledger.nid,
            member="110000",
            seq=1,
            signing_key=key,
            key_id=key.key_id,
            national_key=ledger.keys["national"],
            timestamp_ms=ledger.tick(),
        )
    )
    ledger.rejected(_announce(ledger, "110000", 1, "https://evil.example", key=key, ts=valid_then), Reason.KEY_RETIRED)
    assert ledger.query("GetNodes")["nodes"][0]["url"] == "https://bj.example"
