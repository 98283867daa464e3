"""A superseded license version never verifies VALID: after a new version is anchored, the issuer's version update
(``ChangeStatus`` with reason ``NEW_VERSION``, executed by the real contract over network.executor) makes the status
record name the current version, and verifier step 7 answers SUPERSEDED for any older version's bundle, through
``verify_bundle`` and ``licledger verify``. Revocation and suspension apply to the license, whatever the version."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from click.testing import CliRunner
from verifykit import Issued, World

from core.codes import LicenseId
from core.licenses import License, parse_document
from core.transactions import NEW_VERSION
from node.cli import cli
from verifier.cli import render
from verifier.core import Result, Verdict, verify_bundle

DAY = 86_400_000


def next_version(world: World, old: Issued, **changes: Any) -> Issued:
    """Anchor the next version of ``old``'s license (a change of scope) in a batch of its own."""
    doc = old.license.to_canonical_dict()
    new_id: LicenseId = old.license_id.next_version()
    doc.update(license_id=str(new_id), version=new_id.version, **changes)
    new: License = parse_document(doc)
    [issued] = world.issue(old.province, documents=[new])
    return issued


def verify(world: World, issued: Issued, seq: int, **kw: Any) -> Verdict:
    kw.setdefault("now_ms", world.checkpoint_ms(seq) + 1_000)
    kw.setdefault("max_checkpoint_age_ms", DAY)
    return verify_bundle(
        world.bundle(issued, seq).to_json(), world.trust_root(), expected_license_id=str(issued.license_id), **kw
    )


def superseded_world() -> tuple[World, Issued, Issued, int, int]:
    """v1 anchored and checkpointed; then v2 anchored with its version update, and another checkpoint."""
    w = World()
    [v1, _] = w.issue("110000", 2)
    before = w.checkpoint()
    v2 = next_version(w, v1)
    w.set_status(v2, "active", reason=NEW_VERSION)
    return w, v1, v2, before, w.checkpoint()


def test_old_version_after_a_new_version_is_superseded_naming_the_newer_one() -> None:
    w, v1, v2, _, seq = superseded_world()
    v = verify(w, v1, seq)
    assert v.result is Result.SUPERSEDED and v.exit_code == 1
    failed = v.failed_step
    assert failed is not None and (failed.number, failed.reason) == (7, "SUPERSEDED")
    assert str(v2.license_id) in failed.detail and failed.evidence["license_id"] == str(v2.license_id)
    assert failed.evidence["commitment"] == v2.commitment.hex()
    assert v.facts.proven and v.facts.superseded_by == str(v2.license_id) and v.to_dict()["result"] == "SUPERSEDED"


def test_current_version_is_valid() -> None:
    w, _, v2, _, seq = superseded_world()
    v = verify(w, v2, seq)
    assert v.result is Result.VALID and v.failed_step is None and v.facts.superseded_by is None


def test_old_version_was_valid_at_a_checkpoint_before_the_new_version() -> None:
    w, v1, _, before, _ = superseded_world()
    assert verify(w, v1, before).result is Result.VALID


def test_superseded_stays_superseded_under_a_stale_checkpoint() -> None:
    w, v1, v2, _, seq = superseded_world()
    v = verify(w, v1, seq, now_ms=w.checkpoint_ms(seq) + 30 * DAY)
    assert v.result is Result.SUPERSEDED  # versions only go forwards: a newer checkpoint cannot make v1 current
    assert verify(w, v2, seq, now_ms=w.checkpoint_ms(seq) + 30 * DAY).result is Result.UNDECIDED


def test_revocation_applies_to_every_version() -> None:
    w, v1, v2, _, _ = superseded_world()
    w.set_status(v2, "revoked")
    seq = w.checkpoint()
    assert verify(w, v1, seq).result is Result.REVOKED
    assert verify(w, v2, seq).result is Result.REVOKED


def test_suspension_of_the_license_wins_over_superseded() -> None:
    w, v1, v2, _, _ = superseded_world()
    w.set_status(v2, "suspended")
    seq = w.checkpoint()
    assert verify(w, v1, seq).result is Result.SUSPENDED
    assert verify(w, v2, seq).result is Result.SUSPENDED


def test_version_update_of_a_suspended_license_keeps_it_suspended() -> None:
    w = World()
    [v1] = w.issue("110000", 1)
    w.set_status(v1, "suspended")
    v2 = next_version(w, v1)
    w.set_status(v2, "suspended", reason=NEW_VERSION)
    seq = w.checkpoint()
    assert verify(w, v1, seq).result is Result.SUSPENDED and verify(w, v2, seq).result is Result.SUSPENDED
    w.set_status(v2, "reinstated")
    seq = w.checkpoint()
    assert verify(w, v1, seq).result is Result.SUPERSEDED and verify(w, v2, seq).result is Result.VALID


def test_status_record_naming_another_leaf_of_the_same_version_is_invalid() -> None:
    # an issuer that anchored two different leaves for one version: the status record names the other one
    w = World()
    [v1] = w.issue("110000", 1)
    doc = v1.license.to_canonical_dict()
    doc["issued_at"] = "2004-05-28T07:32:11Z"
    [twin] = w.issue("110000", documents=[parse_document(doc)])
    assert twin.license_id == v1.license_id and twin.commitment != v1.commitment
    w.set_status(twin, "active", reason=NEW_VERSION)
    v = verify(w, v1, w.checkpoint())
    failed = v.failed_step
    assert (
        v.result is Result.INVALID and failed is not None and (failed.number, failed.reason) == (7, "STATUS_OTHER_LEAF")
    )
    assert failed.evidence["record_commitment"] == twin.commitment.hex()


def test_licledger_verify_prints_superseded_and_exits_1(tmp_path: Path) -> None:
    w, v1, v2, _, seq = superseded_world()
    bundle, trust = tmp_path / "v1.json", tmp_path / "trust-root.json"
    bundle.write_bytes(w.bundle(v1, seq).to_json())
    trust.write_bytes(w.trust_root().to_json())
    at = str(w.checkpoint_ms(seq) + 60_000)
    result = CliRunner().invoke(cli, ["verify", str(bundle), "--trust-root", str(trust), "--at", at])
    assert result.exit_code == 1, result.output
    assert result.output.startswith(f"SUPERSEDED: physician {v1.license_id}")
    assert f"superseded by the newer version {v2.license_id}" in result.output
    assert "[SUPERSEDED]" in result.output
    assert render(verify(w, v2, seq)).startswith("VALID")
