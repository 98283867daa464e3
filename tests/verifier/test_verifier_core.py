"""verifier.core.verify_bundle against bundles assembled from a real ledger (network.executor): each test is named
after the attack or situation it covers and asserts the verdict, the failing step and its reason code."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from verifykit import T0, World, scenario

from core.bundle import ProofBundle, public_view
from core.checkpoint import Cosignature, cosign, key_hint, parse_checkpoint, render
from core.consortium import derive_key
from core.sm2 import PrivateKey
from verifier.core import MAX_CLOCK_SKEW_MS, Result, TrustRoot, Verdict, verify_bundle

DAY = 86_400_000


def verify(bundle: ProofBundle | bytes, root: TrustRoot | None = None, **kw: Any) -> Verdict:
    s = scenario()
    kw.setdefault("now_ms", s.checkpoint_ms + 1_000)
    kw.setdefault("max_checkpoint_age_ms", DAY)
    data = bundle.to_json() if isinstance(bundle, ProofBundle) else bundle
    return verify_bundle(data, root or s.world.trust_root(), **kw)


def assert_fails(verdict: Verdict, step: int, reason: str, result: Result = Result.INVALID) -> None:
    failed = verdict.failed_step
    assert failed is not None, verdict
    assert (verdict.result, failed.number, failed.reason) == (result, step, reason), failed
    assert [s.number for s in verdict.steps] == list(range(1, 9))


def with_note(bundle: ProofBundle, note: bytes) -> bytes:
    value = bundle.to_dict()
    value["checkpoint"] = note.decode()
    return ProofBundle.from_dict(value).to_json()


# --- what should pass ------------------------------------------------------------------------------------------


def test_disclosed_bundle_passes_every_step_and_shows_the_holder() -> None:
    s = scenario()
    v = verify(s.world.bundle(s.active, s.seq))
    assert v.result is Result.VALID and v.exit_code == 0 and v.failed_step is None
    assert all(step.ok for step in v.steps)
    facts = v.facts
    assert facts.proven and facts.disclosed and facts.status == "active" and facts.issuer == "110000"
    assert facts.holder == s.active.license.to_canonical_dict()["holder"]
    assert facts.holder_masked is not None and facts.holder_masked["citizen_id"].count("*") == 10
    assert facts.cosigners == ("110000", "310000", "440000")


def test_public_view_passes_on_the_commitment_alone_and_discloses_nothing_personal() -> None:
    s = scenario()
    full = s.world.bundle(s.active, s.seq)
    public = public_view(full)
    text = public.to_json().decode()
    holder = s.active.license.to_canonical_dict()["holder"]
    assert holder["citizen_id"] not in text and holder["name"] not in text and s.active.salt.hex() not in text
    v = verify(public)
    assert v.result is Result.VALID
    assert not v.facts.disclosed and v.facts.holder is None and v.facts.document is None
    assert "only the commitment" in v.steps[2].detail


def test_reinstated_license_is_valid() -> None:
    s = scenario()
    v = verify(s.world.bundle(s.reinstated, s.seq))
    assert v.result is Result.VALID and v.facts.status == "reinstated"


def test_expected_license_id_accepts_the_full_id_and_the_base() -> None:
    s = scenario()
    data = s.world.bundle(s.active, s.seq).to_json()
    assert verify(data, expected_license_id=str(s.active.license_id)).result is Result.VALID
    assert verify(data, expected_license_id=s.active.license_id.base).result is Result.VALID


# --- status ------------------------------------------------------------------------------------------------------


def test_revoked_license_is_revoked_at_step_7_with_the_record_as_evidence() -> None:
    s = scenario()
    v = verify(s.world.bundle(s.revoked, s.seq))
    assert_fails(v, 7, "REVOKED", Result.REVOKED)
    assert v.exit_code == 1 and v.steps[7].ok is True
    assert v.failed_step is not None and v.failed_step.evidence["status"] == "revoked"
    assert v.facts.proven and v.facts.status == "revoked"


def test_suspended_license_is_suspended() -> None:
    s = scenario()
    v = verify(s.world.bundle(s.suspended, s.seq))
    assert_fails(v, 7, "SUSPENDED", Result.SUSPENDED)
    assert v.exit_code == 1


def test_revoked_license_stays_revoked_under_a_stale_checkpoint() -> None:
    s = scenario()
    v = verify(s.world.bundle(s.revoked, s.seq), now_ms=s.checkpoint_ms + 30 * DAY)
    assert v.result is Result.REVOKED and v.steps[7].reason == "STALE_CHECKPOINT"


def test_suspended_license_under_a_stale_checkpoint_is_undecided() -> None:
    s = scenario()
    v = verify(s.world.bundle(s.suspended, s.seq), now_ms=s.checkpoint_ms + 30 * DAY)
    assert v.result is Result.UNDECIDED and v.exit_code == 2


def test_status_proof_of_another_license_is_rejected() -> None:
    s = scenario()
    value = s.world.bundle(s.active, s.seq).to_dict()
    # The revoked license's status proof (a membership proof) as a non-membership proof for this license.
    value["status"]["proof"] = s.world.bundle(s.revoked, s.seq).to_dict()["status"]["proof"]
    assert_fails(verify(ProofBundle.from_dict(value)), 7, "STATUS_PROOF_INVALID")


def test_revocation_hidden_by_dropping_the_status_record_is_rejected() -> None:
    s = scenario()
    value = s.world.bundle(s.revoked, s.seq).to_dict()
    value["status"]["record"] = None  # claim "never changed" with the membership proof
    v = verify(ProofBundle.from_dict(value))
    assert_fails(v, 7, "STATUS_PROOF_INVALID")
    assert v.failed_step is not None and set(v.failed_step.evidence) == {"expected_root", "calculated_root"}


def test_revocation_hidden_by_an_older_checkpoints_status_proof_is_rejected() -> None:
    w = World()
    issued = w.issue("110000", 2)
    before = w.checkpoint()
    w.set_status(issued[0], "revoked")
    after = w.checkpoint()
    value = w.bundle(issued[0], after).to_dict()
    value["status"] = w.bundle(issued[0], before).to_dict()["status"]  # "active" as of the older checkpoint
    v = verify_bundle(ProofBundle.from_dict(value).to_json(), w.trust_root(), now_ms=w.now, max_checkpoint_age_ms=DAY)
    assert_fails(v, 7, "STATUS_PROOF_INVALID")
    # The older checkpoint's bundle itself is honest "as of" that checkpoint: freshness is the caller's policy.
    old = verify_bundle(w.bundle(issued[0], before).to_json(), w.trust_root(), now_ms=w.now, max_checkpoint_age_ms=DAY)
    assert old.result is Result.VALID and old.facts.checkpoint_timestamp_ms == w.checkpoint_ms(before)


# --- freshness ------------------------------------------------------------------------------------------------------


def test_stale_checkpoint_is_undecided_with_exit_code_2() -> None:
    s = scenario()
    v = verify(s.world.bundle(s.active, s.seq), now_ms=s.checkpoint_ms + DAY + 1)
    assert_fails(v, 8, "STALE_CHECKPOINT", Result.UNDECIDED)
    assert v.exit_code == 2 and all(step.ok for step in v.steps[:7])
    assert v.failed_step is not None and v.failed_step.evidence["max_age_ms"] == DAY


def test_checkpoint_dated_in_the_future_is_undecided() -> None:
    s = scenario()
    v = verify(s.world.bundle(s.active, s.seq), now_ms=s.checkpoint_ms - MAX_CLOCK_SKEW_MS - 1)
    assert_fails(v, 8, "CHECKPOINT_IN_FUTURE", Result.UNDECIDED)


def test_no_freshness_policy_decides_on_any_checkpoint_age() -> None:
    s = scenario()
    v = verify(s.world.bundle(s.active, s.seq), now_ms=s.checkpoint_ms + 365 * DAY, max_checkpoint_age_ms=None)
    assert v.result is Result.VALID and "no freshness policy" in v.steps[7].detail


# --- another license, another issuer -----------------------------------------------------------------------------


def test_bundle_for_another_license_is_rejected_at_step_1() -> None:
    s = scenario()
    v = verify(s.world.bundle(s.other, s.seq), expected_license_id=str(s.active.license_id))
    assert_fails(v, 1, "WRONG_LICENSE")


def test_another_licenses_document_spliced_in_is_rejected() -> None:
    s = scenario()
    value = s.world.bundle(s.active, s.seq).to_dict()
    value["disclosure"] = s.world.bundle(s.revoked, s.seq).to_dict()["disclosure"]
    v = verify(_json(value))
    assert_fails(v, 1, "MALFORMED_BUNDLE")
    assert v.failed_step is not None and v.failed_step.evidence["path"] == "disclosure.document.license_id"


def test_another_licenses_leaf_proof_is_rejected() -> None:
    s = scenario()
    value = s.world.bundle(s.active, s.seq).to_dict()
    other = s.world.bundle(s.revoked, s.seq).to_dict()["leaf"]
    value["leaf"]["inclusion_proof"] = other["inclusion_proof"]
    value["leaf"]["leaf_index"] = other["leaf_index"]
    v = verify(_json(value))
    assert_fails(v, 4, "LEAF_NOT_IN_BATCH")
    assert v.failed_step is not None and set(v.failed_step.evidence) >= {"expected_root", "calculated_root"}


def test_commitment_of_another_license_is_rejected() -> None:
    s = scenario()
    value = public_view(s.world.bundle(s.active, s.seq)).to_dict()
    value["commitment"] = s.revoked.commitment.hex()
    assert_fails(verify(_json(value)), 4, "LEAF_MISMATCH")


def test_document_changed_after_sealing_fails_the_commitment() -> None:
    s = scenario()
    value = s.world.bundle(s.active, s.seq).to_dict()
    value["disclosure"]["document"]["practice"]["scope"] = ["外科专业"]
    v = verify(_json(value))
    assert_fails(v, 3, "COMMITMENT_MISMATCH")


def test_document_and_commitment_both_changed_fail_the_seal_or_the_leaf() -> None:
    s = scenario()
    from core.commitment import commitment
    from core.licenses import canonical_bytes, parse_document

    value = s.world.bundle(s.active, s.seq).to_dict()
    doc = value["disclosure"]["document"]
    doc["practice"]["scope"] = ["外科专业"] if doc["practice"]["scope"] != ["外科专业"] else ["内科专业"]
    value["commitment"] = commitment(canonical_bytes(parse_document(doc)), s.active.salt).hex()
    assert_fails(verify(_json(value)), 3, "BAD_SEAL_SIGNATURE")


def test_seal_by_another_provinces_key_is_rejected() -> None:
    w = World()
    issued = w.issue("110000", 2, seal_key=w.keys["310000"])
    seq = w.checkpoint()
    v = verify_bundle(w.bundle(issued[0], seq).to_json(), w.trust_root(), now_ms=w.now, max_checkpoint_age_ms=DAY)
    assert_fails(v, 2, "SEAL_KEY_UNKNOWN")
    assert v.failed_step is not None and v.failed_step.evidence["key_id"] == w.keys["310000"].key_id


def test_license_under_an_authority_the_province_never_registered_is_rejected() -> None:
    w = World()
    docs = w.documents("110000", 2)
    # Re-issue under the synthetic generator's own authority code: in Beijing, but not one of 110000's issuers.
    from core import synth
    from core.licenses import parse_document

    raw = next(synth.generate("physician", 1, "110000", 7, start=1000))
    issued = w.issue("110000", documents=[parse_document(raw), docs[0]])
    seq = w.checkpoint()
    v = verify_bundle(w.bundle(issued[0], seq).to_json(), w.trust_root(), now_ms=w.now, max_checkpoint_age_ms=DAY)
    assert_fails(v, 2, "ISSUER_NOT_OF_MEMBER")


def test_issuer_that_is_not_a_member_is_rejected_by_its_non_membership_proof() -> None:
    s = scenario()
    value = public_view(s.world.bundle(s.active, s.seq)).to_dict()
    value["issuer"] = "320000"
    value["batch"]["record"]["issuer"] = "320000"
    answer = s.world.query("GetMember", "320000", str(s.seq))
    value["member"] = {"record": answer["record"], "proof": answer["proof"]}
    assert answer["record"] is None
    assert_fails(verify(_json(value)), 2, "NOT_A_MEMBER")


def test_member_record_with_a_key_added_is_rejected() -> None:
    s = scenario()
    value = s.world.bundle(s.active, s.seq).to_dict()
    stranger = PrivateKey.from_bytes(b"\x01" * 32).public_key
    value["member"]["record"]["keys"].append(
        {"key_id": stranger.key_id, "spki": stranger.to_der().hex(), "valid_from_ms": 0, "valid_until_ms": None}
    )
    v = verify(_json(value))
    assert_fails(v, 2, "MEMBER_PROOF_INVALID")


# --- key validity over time --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rotated() -> tuple[World, list[Any], int]:
    """110000 rotates its key; then licenses sealed with the new key, with the retired key after its retirement,
    and with the new key backdated before it was valid. Cosigned by members whose genesis keys still hold."""
    w = World()
    w.issue("110000", 2)
    old = w.keys["110000"]
    w.rotate("110000")
    rotated_at = w.now
    good = w.issue("110000", 2)
    retired = w.issue("110000", 2, seal_key=old)
    backdated = w.issue("110000", 2, signing_time=rotated_at - 5_000)
    late = w.issue("110000", 2, signing_time=w.now + 60_000)
    seq = w.checkpoint(["310000", "440000", "national"])
    return w, [good[0], retired[0], backdated[0], late[0]], seq


def _verify_in(w: World, issued: Any, seq: int, root: TrustRoot | None = None) -> Verdict:
    return verify_bundle(
        w.bundle(issued, seq).to_json(), root or w.trust_root(), now_ms=w.now, max_checkpoint_age_ms=DAY
    )


def test_seal_by_a_rotated_in_key_verifies_although_the_genesis_does_not_know_it(rotated: Any) -> None:
    w, (good, *_), seq = rotated
    member = w.c.genesis.member("110000")
    assert member is not None
    genesis_keys = {k.key_id for k in member.keys}
    assert good.seal.key_id not in genesis_keys
    assert _verify_in(w, good, seq).result is Result.VALID


def test_seal_by_a_retired_key_after_its_retirement_is_rejected(rotated: Any) -> None:
    w, (_, retired, _, _), seq = rotated
    v = _verify_in(w, retired, seq)
    assert_fails(v, 2, "SEAL_KEY_NOT_VALID_AT_SIGNING_TIME")
    assert v.failed_step is not None
    interval = next(k for k in v.failed_step.evidence["member_keys"] if k["key_id"] == retired.seal.key_id)
    assert interval["valid_until_ms"] is not None and interval["valid_until_ms"] <= retired.seal.signing_time


def test_seal_backdated_before_its_key_was_valid_is_rejected(rotated: Any) -> None:
    w, (_, _, backdated, _), seq = rotated
    assert_fails(_verify_in(w, backdated, seq), 2, "SEAL_KEY_NOT_VALID_AT_SIGNING_TIME")


def test_seal_dated_after_its_batch_was_anchored_is_rejected(rotated: Any) -> None:
    w, (_, _, _, late), seq = rotated
    assert_fails(_verify_in(w, late, seq), 2, "SEALED_AFTER_ANCHORING")


def test_checkpoint_cosigned_with_rotated_keys_needs_an_advanced_trust_root() -> None:
    w = World()
    issued = w.issue("110000", 2)
    w.rotate("110000")
    w.rotate("310000")
    seq_a = w.checkpoint(["110000", "310000", "440000"])
    v = _verify_in(w, issued[0], seq_a)
    assert_fails(v, 6, "NO_QUORUM")
    assert v.failed_step is not None
    assert {f["name"] for f in v.failed_step.evidence["failures"]} == {"110000", "310000"}
    # A later checkpoint that genesis keys can verify teaches the trust root the rotated keys.
    seq_b = w.checkpoint(["440000", "auditor-1", "national"])
    proofs = [_member_proof(w, m.name, seq_b) for m in w.c.genesis.members]
    root = w.trust_root().advanced(w.note(seq_b), [], proofs)
    assert _verify_in(w, issued[0], seq_a, root).result is Result.VALID


def _member_proof(w: World, name: str, seq: int) -> Any:
    from core.consortium import MemberRecord
    from core.smt import SparseProof

    answer = w.query("GetMember", name, str(seq))
    return MemberRecord.from_dict(answer["record"]), SparseProof.from_dict(answer["proof"])


# --- cosignatures -------------------------------------------------------------------------------------------------


def _cosigs(note: bytes) -> tuple[Any, list[Cosignature]]:
    checkpoint, cosigs = parse_checkpoint(note)
    return checkpoint, cosigs


def test_fewer_cosigners_than_the_quorum_are_rejected() -> None:
    w = World()
    issued = w.issue("110000", 2)
    weak = w.checkpoint(["110000", "310000"])
    with pytest.raises(ValueError, match="not final"):
        w.bundle(issued[0], weak)
    # Nothing changed between the two checkpoints but the height, so the final one's proofs fit the weak one.
    bundle = w.bundle(issued[0], w.checkpoint())
    v = verify_bundle(with_note(bundle, w.note(weak)), w.trust_root(), now_ms=w.now, max_checkpoint_age_ms=DAY)
    assert_fails(v, 6, "NO_QUORUM")
    assert v.failed_step is not None
    assert (v.failed_step.evidence["needed"], v.failed_step.evidence["got"]) == (3, 2)


def test_duplicated_cosignatures_do_not_make_a_quorum() -> None:
    s = scenario()
    bundle = s.world.bundle(s.active, s.seq)
    checkpoint, cosigs = _cosigs(bundle.note)
    v = verify(with_note(bundle, render(checkpoint, [cosigs[0], cosigs[1], cosigs[0]])))
    assert_fails(v, 6, "NO_QUORUM")
    assert v.failed_step is not None
    assert (v.failed_step.evidence["needed"], v.failed_step.evidence["got"]) == (3, 2)


def test_cosignatures_below_quorum_are_rejected_with_the_shortfall() -> None:
    s = scenario()
    bundle = s.world.bundle(s.active, s.seq)
    checkpoint, cosigs = _cosigs(bundle.note)
    v = verify(with_note(bundle, render(checkpoint, cosigs[:2])))
    assert_fails(v, 6, "NO_QUORUM")
    assert v.failed_step is not None and v.failed_step.evidence["verified"] == ["110000", "310000"]


def test_forged_cosignature_under_a_members_name_is_rejected() -> None:
    s = scenario()
    bundle = s.world.bundle(s.active, s.seq)
    checkpoint, cosigs = _cosigs(bundle.note)
    forger = PrivateKey.from_bytes(b"\x02" * 32)
    forged = Cosignature(cosigs[2].name, cosigs[2].key_hint, forger.sign(checkpoint.body()))
    v = verify(with_note(bundle, render(checkpoint, [*cosigs[:2], forged])))
    assert_fails(v, 6, "NO_QUORUM")
    assert v.failed_step is not None
    assert "does not verify" in v.failed_step.evidence["failures"][0]["reason"]


def test_cosignature_by_a_non_member_does_not_count() -> None:
    s = scenario()
    bundle = s.world.bundle(s.active, s.seq)
    checkpoint, cosigs = _cosigs(bundle.note)
    outsider = derive_key(b"other", "auditor-9")
    v = verify(with_note(bundle, render(checkpoint, [*cosigs[:2], cosign(checkpoint, "auditor-9", outsider)])))
    assert_fails(v, 6, "NO_QUORUM")
    assert v.failed_step is not None and v.failed_step.evidence["failures"][0]["reason"] == "not a member"


def test_cosignature_with_a_key_hint_of_another_key_does_not_count() -> None:
    s = scenario()
    bundle = s.world.bundle(s.active, s.seq)
    checkpoint, cosigs = _cosigs(bundle.note)
    wrong_hint = key_hint("440000", s.world.keys["310000"].public_key)
    bad = dataclasses.replace(cosigs[2], key_hint=wrong_hint)
    assert_fails(verify(with_note(bundle, render(checkpoint, [*cosigs[:2], bad]))), 6, "NO_QUORUM")


def test_extra_cosignature_lines_beyond_the_quorum_are_ignored() -> None:
    s = scenario()
    bundle = s.world.bundle(s.active, s.seq)
    checkpoint, cosigs = _cosigs(bundle.note)
    extra = cosign(checkpoint, "national", s.world.keys["national"])
    junk = Cosignature("auditor-1", b"\x00\x00\x00\x00", b"\x30\x00")
    assert verify(with_note(bundle, render(checkpoint, [junk, *cosigs, extra]))).result is Result.VALID


def test_checkpoint_of_another_network_is_rejected() -> None:
    s = scenario()
    other = World(seed="another-network")
    issued = other.issue("110000", 2)
    seq = other.checkpoint()
    v = verify(other.bundle(issued[0], seq), now_ms=other.now)
    assert_fails(v, 6, "WRONG_NETWORK")
    assert v.failed_step is not None and v.failed_step.evidence["expected"] == s.world.trust_root().origin


# --- caller misuse raises; untrusted input never does ---------------------------------------------------------------


def test_caller_misuse_raises_value_or_type_error() -> None:
    s = scenario()
    data = s.world.bundle(s.active, s.seq).to_json()
    root = s.world.trust_root()
    with pytest.raises(ValueError):
        verify_bundle(data, root, now_ms=-1, max_checkpoint_age_ms=None)
    with pytest.raises(ValueError):
        verify_bundle(data, root, now_ms=T0, max_checkpoint_age_ms=-5)
    with pytest.raises(ValueError):
        verify_bundle(data, root, now_ms=T0, max_checkpoint_age_ms=None, expected_license_id="not-an-id")
    with pytest.raises(TypeError):
        verify_bundle(data, "root", now_ms=T0, max_checkpoint_age_ms=None)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        verify_bundle(42, root, now_ms=T0, max_checkpoint_age_ms=None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "data",
    [b"", b"{", b"[]", b"null", b'{"format":1.5}', b"\xff\xfe", b'{"a":1,"a":2}', b"{}" * 10, b" " * 300_000],
)
def test_garbage_is_an_invalid_verdict_at_step_1(data: bytes) -> None:
    assert_fails(verify(data), 1, "MALFORMED_BUNDLE")


def test_integer_of_thousands_of_digits_is_an_invalid_verdict_not_a_crash() -> None:
    # int() raises ValueError beyond 4,300 digits; it used to escape verify_bundle.
    s = scenario()
    for field in (b'"leaf_index":', b'"log_index":'):
        data = s.world.bundle(s.active, s.seq).to_json()
        head, tail = data.split(field, 1)
        digits = tail[: len(tail) - len(tail.lstrip(b"0123456789"))]
        mutated = head + field + b"9" * 5_000 + tail[len(digits) :]
        assert_fails(verify(mutated), 1, "MALFORMED_BUNDLE")


def test_cosignature_check_is_cached_per_note() -> None:
    s = scenario()
    root = s.world.trust_root()
    for issued in (s.active, s.reinstated, s.other):
        assert verify(s.world.bundle(issued, s.seq), root).result is Result.VALID
    assert len(root._checks) == 1


def _json(value: dict[str, Any]) -> bytes:
    """Encode a mutated bundle value the way an attacker would hand it over (any strict JSON)."""
    import json

    return json.dumps(value, ensure_ascii=False).encode()
