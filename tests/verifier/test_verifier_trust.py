"""verifier.trust: trust roots, advancing the trusted checkpoint only through consistency proofs (Tessera style),
and split views (two ledgers with one genesis that diverged). Real ledgers from network.executor."""

from __future__ import annotations

import base64
import dataclasses
import json
from typing import Any

import pytest
from verifykit import Issued, World

from core.checkpoint import Checkpoint, QuorumError, parse_checkpoint
from core.consortium import MemberRecord
from core.errors import ProofFormatError, RootMismatchError
from core.smt import SparseProof
from core.transactions import init_consortium
from verifier.core import (
    ConsistencyError,
    Result,
    SplitViewError,
    TrustRoot,
    TrustRootError,
    WrongNetworkError,
    advance_checkpoint,
    compare_checkpoints,
    load_trust_root,
    verify_bundle,
)

DAY = 86_400_000


def checkpoint_of(w: World, seq: int) -> Checkpoint:
    return parse_checkpoint(w.note(seq))[0]


def consistency(w: World, size1: int, size2: int) -> list[bytes]:
    answer = w.query("GetLogConsistencyProof", str(size1), str(size2))
    return [bytes.fromhex(h) for h in answer["consistency_proof"]]


def member_proofs(w: World, seq: int) -> list[tuple[MemberRecord, SparseProof]]:
    out = []
    for member in w.c.genesis.members:
        answer = w.query("GetMember", member.name, str(seq))
        out.append((MemberRecord.from_dict(answer["record"]), SparseProof.from_dict(answer["proof"])))
    return out


@pytest.fixture(scope="module")
def forked() -> tuple[World, World, int, int, Issued]:
    """Two ledgers with one genesis (same seed) that diverged: each anchored a different first batch."""
    a, b = World(), World()
    b.serial = 500  # other documents, so other batch roots
    a.issue("110000", 3)
    issued = b.issue("110000", 3)
    return a, b, a.checkpoint(), b.checkpoint(), issued[0]


# --- advancing -----------------------------------------------------------------------------------------------


def test_trust_root_advances_through_a_verified_consistency_proof() -> None:
    w = World()
    w.issue("110000", 2)
    first = w.checkpoint()
    w.issue("310000", 2)
    w.issue("110000", 2)
    second = w.checkpoint()
    root = w.trust_root().advanced(w.note(first), [])
    assert root.checkpoint == checkpoint_of(w, first)
    proof = consistency(w, 1, 3)
    advanced = root.advanced(w.note(second), proof, member_proofs(w, second))
    assert advanced.checkpoint == checkpoint_of(w, second) and len(advanced.proven) == len(w.c.genesis.members)
    assert advance_checkpoint(root.checkpoint, w.note(second), proof, root) == checkpoint_of(w, second)


def test_tampered_consistency_proof_keeps_both_checkpoints_and_the_proof_as_evidence() -> None:
    w = World()
    w.issue("110000", 2)
    first = w.checkpoint()
    w.issue("310000", 2)
    w.issue("440000", 2)
    second = w.checkpoint()
    root = w.trust_root().advanced(w.note(first), [])
    proof = consistency(w, 1, 3)
    bad = [bytes([proof[0][0] ^ 1]) + proof[0][1:], *proof[1:]]
    with pytest.raises(ConsistencyError) as info:
        advance_checkpoint(root.checkpoint, w.note(second), bad, root)
    err = info.value
    assert err.trusted == checkpoint_of(w, first) and err.new == checkpoint_of(w, second)
    assert err.proof == tuple(bad) and isinstance(err.cause, RootMismatchError)
    with pytest.raises(ConsistencyError) as short:
        advance_checkpoint(root.checkpoint, w.note(second), proof[:-1], root)
    assert isinstance(short.value.cause, ProofFormatError)


def test_rollback_to_an_older_checkpoint_is_refused() -> None:
    w = World()
    w.issue("110000", 2)
    first = w.checkpoint()
    w.issue("310000", 2)
    second = w.checkpoint()
    root = w.trust_root().advanced(w.note(first), []).advanced(w.note(second), consistency(w, 1, 2))
    with pytest.raises(ConsistencyError, match="rollback"):
        advance_checkpoint(root.checkpoint, w.note(first), [], root)


def test_advancing_to_a_checkpoint_without_quorum_is_refused() -> None:
    w = World()
    w.issue("110000", 2)
    weak = w.checkpoint(["110000", "national"])
    with pytest.raises(QuorumError) as info:
        w.trust_root().advanced(w.note(weak), [])
    assert (info.value.needed, info.value.got) == (3, 2)


def test_checkpoint_of_another_network_cannot_become_trusted() -> None:
    other = World(seed="elsewhere")
    other.issue("110000", 2)
    seq = other.checkpoint()
    with pytest.raises(WrongNetworkError):
        World().trust_root().advanced(other.note(seq), [])


# --- split views --------------------------------------------------------------------------------------------------


def test_split_view_two_roots_for_one_tree_size_are_reported_with_both_checkpoints(forked: Any) -> None:
    a, b, seq_a, seq_b, _ = forked
    ca, cb = checkpoint_of(a, seq_a), checkpoint_of(b, seq_b)
    assert ca.log_size == cb.log_size and ca.log_root != cb.log_root
    with pytest.raises(SplitViewError) as info:
        compare_checkpoints(ca, cb)
    assert (info.value.trusted, info.value.new) == (ca, cb)
    root = a.trust_root().advanced(a.note(seq_a), [])
    with pytest.raises(SplitViewError) as advancing:
        advance_checkpoint(root.checkpoint, b.note(seq_b), [], root)
    assert advancing.value.notes == (a.note(seq_a), b.note(seq_b))


def test_split_view_bundle_from_the_other_fork_is_rejected_at_step_6(forked: Any) -> None:
    a, b, seq_a, seq_b, issued = forked
    root = a.trust_root().advanced(a.note(seq_a), [])
    bundle = b.bundle(issued, seq_b)
    v = verify_bundle(bundle.to_json(), root, now_ms=b.now, max_checkpoint_age_ms=DAY)
    assert v.result is Result.INVALID and v.failed_step is not None
    assert (v.failed_step.number, v.failed_step.reason) == (6, "SPLIT_VIEW")
    assert set(v.failed_step.evidence) == {"trusted", "bundle"}
    # Under a trust root that knows only the genesis, each fork verifies on its own: detection needs a
    # trusted checkpoint (or, online, checkpoints from two nodes).
    assert (
        verify_bundle(bundle.to_json(), b.trust_root(), now_ms=b.now, max_checkpoint_age_ms=DAY).result is Result.VALID
    )


def _body(**changes: Any) -> Checkpoint:
    base = Checkpoint("licledger/x", 10, 5, b"\x01" * 32, b"\x02" * 32, b"\x03" * 32, b"\x04" * 32, 1_000)
    return dataclasses.replace(base, **changes)


@pytest.mark.parametrize(
    ("other", "conflict"),
    [
        (_body(), None),
        (_body(height=12, log_size=6, log_root=b"\x09" * 32, timestamp_ms=2_000), None),
        (_body(height=12, timestamp_ms=2_000, status_root=b"\x07" * 32), None),
        (_body(height=12, log_root=b"\x09" * 32, timestamp_ms=2_000), "two anchor-log roots"),
        (_body(status_root=b"\x07" * 32), "at height 10"),
        (_body(height=12, log_size=4, log_root=b"\x09" * 32, timestamp_ms=2_000), "the log shrank"),
        (_body(height=12, log_size=6, log_root=b"\x09" * 32, timestamp_ms=500), "dated before"),
    ],
)
def test_compare_checkpoints_reports_only_real_conflicts(other: Checkpoint, conflict: str | None) -> None:
    if conflict is None:
        compare_checkpoints(_body(), other)
        compare_checkpoints(other, _body())
    else:
        with pytest.raises(SplitViewError, match=conflict):
            compare_checkpoints(_body(), other)


def test_compare_checkpoints_of_different_logs_is_caller_misuse() -> None:
    with pytest.raises(ValueError, match="different logs"):
        compare_checkpoints(_body(), _body(origin="licledger/y"))


# --- trust root files ----------------------------------------------------------------------------------------------


def test_trust_root_file_round_trips_with_its_checkpoint_and_members() -> None:
    w = World()
    w.issue("110000", 2)
    w.rotate("110000")
    seq = w.checkpoint(["310000", "440000", "national"])
    root = w.trust_root().advanced(w.note(seq), [], member_proofs(w, seq))
    again = load_trust_root(root.to_json(), network_id=w.nid)
    assert again.to_json() == root.to_json() and again.checkpoint == root.checkpoint
    assert again.members["110000"].seq == 1  # the rotated record, not the genesis one


@pytest.mark.parametrize("shape", ["genesis", "GetGenesis", "network.json", "trust-root"])
def test_trust_root_loads_from_every_genesis_shape(shape: str) -> None:
    w = World()
    genesis = w.c.genesis.to_dict()
    value: dict[str, Any] = {
        "genesis": genesis,
        "GetGenesis": {"genesis": genesis},
        "network.json": {
            "version": 1,
            "network": "licledger-test",
            "genesis_envelope": base64.b64encode(
                init_consortium(w.c.genesis, w.keys["national"], timestamp_ms=w.c.genesis.created_ms)
            ).decode(),
        },
        "trust-root": json.loads(w.trust_root().to_json()),
    }[shape]
    data = json.dumps(value, indent=2).encode()
    assert load_trust_root(data).network_id == w.nid
    assert load_trust_root(data, network_id=w.nid).quorum == 3


def test_trust_root_with_another_network_id_pinned_is_refused() -> None:
    w = World()
    with pytest.raises(TrustRootError, match="pinned"):
        load_trust_root(w.trust_root().to_json(), network_id="00" * 32)


def test_trust_root_file_with_a_tampered_member_record_is_refused() -> None:
    w = World()
    w.issue("110000", 1)
    seq = w.checkpoint()
    value = json.loads(w.trust_root().advanced(w.note(seq), [], member_proofs(w, seq)).to_json())
    value["members"][0]["record"]["seq"] = 7
    with pytest.raises(TrustRootError, match="trust root member 110000"):
        load_trust_root(json.dumps(value).encode())


def test_trust_root_file_whose_checkpoint_lacks_quorum_is_refused() -> None:
    w = World()
    w.issue("110000", 1)
    seq = w.checkpoint()
    value = json.loads(w.trust_root().advanced(w.note(seq), []).to_json())
    lines = value["checkpoint"].split("\n")
    value["checkpoint"] = "\n".join([*lines[:-3], ""])  # drop two of the three cosignatures
    with pytest.raises(TrustRootError, match="does not verify"):
        load_trust_root(json.dumps(value).encode())


@pytest.mark.parametrize(
    "data", [b"", b"[]", b'{"v": 2}', b'{"genesis_envelope": "!!"}', b'{"format": "licledger-trust-root/1"}']
)
def test_malformed_trust_roots_raise_trust_root_error(data: bytes) -> None:
    with pytest.raises(TrustRootError):
        load_trust_root(data)


def test_trust_root_from_genesis_has_no_checkpoint_and_a_majority_quorum() -> None:
    w = World()
    root = TrustRoot.from_genesis(w.c.genesis)
    assert root.checkpoint is None and root.quorum == 3 and root.origin == f"licledger/{w.nid}"
    with pytest.raises(TrustRootError):
        TrustRoot(w.c.genesis, member_proofs=member_proofs(w, w.checkpoint()))
