"""Systematic tampering with a valid bundle: a bit flip in every leaf of its JSON (several positions per string), and
swapped, truncated, extended and transplanted proofs. Every change must give INVALID at the step that owns the
changed field; none may crash the verifier."""

from __future__ import annotations

import json
from typing import Any

import pytest
from verifykit import Path, dotted, flip_bit, leaves, replaced, scenario

from core.bundle import public_view
from verifier.core import Result, TrustRoot, Verdict, verify_bundle

DAY = 86_400_000

# The steps allowed to catch a change under each path prefix (longest prefix wins). Step 1 catches whatever no
# longer parses; the others catch well-formed lies. The note is checked first (step 6) because every other proof
# is relative to its roots.
OWNER: dict[str, set[int]] = {
    "format": {1},
    "license_id": {1},
    "issuer": {1},
    "commitment": {1, 3},
    "disclosure": {1, 3},
    "seal": {1, 3},
    "seal.key_id": {1, 2},
    "seal.signing_time": {2, 3},
    "seal.issuer_province": {1},
    "leaf": {1, 4},
    "batch": {1, 5},
    "batch.record.key_id": {1, 2},
    "batch.record.timestamp_ms": {2, 5},
    "batch.record.root": {1, 4},
    "batch.record.leaf_count": {1, 4, 5},  # an RFC 9162 path may fit a tree of another size; the log binds it
    "batch.record.issuer": {1},
    "status": {1, 7},
    "member": {1, 2},
    "checkpoint": {1, 6},
}
PUBLIC_OWNER = {**OWNER, "commitment": {1, 4}}


def owner(path: Path, table: dict[str, set[int]]) -> set[int]:
    text = dotted(path)
    best = max((p for p in table if text == p or text.startswith(p + ".") or text.startswith(p + "[")), key=len)
    return table[best]


def mutations(value: Any) -> list[tuple[Path, Any]]:
    out: list[tuple[Path, Any]] = []
    for path, leaf in leaves(value):
        if isinstance(leaf, str):
            step = 7 if path == ("checkpoint",) else max(1, len(leaf) // 3)
            positions = sorted({0, len(leaf) - 1, *range(0, len(leaf), step)})
            out += [(path, flip_bit(leaf, p, bit)) for p in positions for bit in (0, 5)]
        elif isinstance(leaf, bool) or leaf is None:
            out.append((path, flip_bit(leaf)))
        else:
            out += [(path, flip_bit(leaf, bit=b)) for b in (0, 3, 40)]
    return out


def run(value: Any, root: TrustRoot, now_ms: int) -> Verdict:
    data = json.dumps(value, ensure_ascii=False).encode("utf-8", errors="surrogatepass")
    return verify_bundle(data, root, now_ms=now_ms, max_checkpoint_age_ms=DAY)


@pytest.mark.parametrize("disclosed", [True, False], ids=["disclosed", "public"])
def test_any_bit_flip_in_any_field_is_rejected_by_the_step_that_owns_it(disclosed: bool) -> None:
    s = scenario()
    bundle = s.world.bundle(s.active, s.seq)
    value = (bundle if disclosed else public_view(bundle)).to_dict()
    table = OWNER if disclosed else PUBLIC_OWNER
    root = s.world.trust_root()
    now = s.checkpoint_ms + 1_000
    assert run(value, root, now).result is Result.VALID
    wrong: list[str] = []
    cases = mutations(value)
    for path, new in cases:
        v = run(replaced(value, path, new), root, now)
        failed = v.failed_step
        if v.result is not Result.INVALID or failed is None or failed.number not in owner(path, table):
            wrong.append(f"{dotted(path)} -> {new!r:.40}: {v.result} at {failed and (failed.number, failed.reason)}")
    assert len(cases) > (600 if disclosed else 350)
    assert not wrong, "\n".join(wrong[:40])


PROOFS = [("leaf", "inclusion_proof", 4), ("batch", "inclusion_proof", 5)]


@pytest.mark.parametrize(("section", "field", "step"), PROOFS)
def test_swapped_truncated_extended_and_reversed_merkle_proofs_are_rejected(
    section: str, field: str, step: int
) -> None:
    s = scenario()
    value = s.world.bundle(s.active, s.seq).to_dict()
    proof = value[section][field]
    assert len(proof) >= 2, "the scenario must give proofs of at least two hashes"
    variants = {
        "swapped": [proof[1], proof[0], *proof[2:]],
        "reversed": proof[::-1],
        "truncated": proof[:-1],
        "extended": [*proof, proof[-1]],
        "empty": [],
        "duplicated": [proof[0]] * len(proof),
    }
    root = s.world.trust_root()
    for name, variant in variants.items():
        tampered = replaced(value, (section, field), variant)
        v = run(tampered, root, s.checkpoint_ms)
        assert v.result is Result.INVALID and v.failed_step is not None, name
        assert v.failed_step.number == step, (name, v.failed_step)
        malformed = "LEAF_PROOF_MALFORMED" if step == 4 else "BATCH_PROOF_MALFORMED"
        mismatch = "LEAF_NOT_IN_BATCH" if step == 4 else "BATCH_NOT_IN_LOG"
        expected = malformed if len(variant) != len(proof) else mismatch
        assert v.failed_step.reason == expected, (name, v.failed_step)


def test_leaf_index_moved_to_a_neighbour_is_rejected() -> None:
    s = scenario()
    value = s.world.bundle(s.active, s.seq).to_dict()
    root = s.world.trust_root()
    for index in (1, 2, 5, 6, 2**40):
        v = run(replaced(value, ("leaf", "leaf_index"), index), root, s.checkpoint_ms)
        assert v.failed_step is not None and v.failed_step.number == 4, (index, v.failed_step)


@pytest.mark.parametrize(
    ("source", "target", "step", "reason"),
    [
        (("status", "proof"), ("member", "proof"), 2, "MEMBER_PROOF_INVALID"),
        (("member", "proof"), ("status", "proof"), 7, "STATUS_PROOF_INVALID"),
        (("leaf", "inclusion_proof"), ("batch", "inclusion_proof"), 5, "BATCH_PROOF_MALFORMED"),
    ],
)
def test_proof_moved_to_another_section_is_rejected(source: Path, target: Path, step: int, reason: str) -> None:
    s = scenario()
    value = s.world.bundle(s.active, s.seq).to_dict()
    moved = value[str(source[0])][str(source[1])]
    v = run(replaced(value, target, moved), s.world.trust_root(), s.checkpoint_ms)
    assert v.failed_step is not None and (v.failed_step.number, v.failed_step.reason) == (step, reason)


def test_sparse_proof_with_a_default_sibling_listed_is_malformed() -> None:
    from core.smt import default_hashes

    s = scenario()
    value = s.world.bundle(s.revoked, s.seq).to_dict()
    proof = value["status"]["proof"]
    bitmap = int(proof["bitmap"], 16)
    free = next(d for d in range(1, 257) if not (bitmap >> (256 - d)) & 1)
    depths = sorted([d for d in range(1, 257) if (bitmap >> (256 - d)) & 1] + [free])
    siblings = dict(zip([d for d in depths if d != free], proof["siblings"], strict=True))
    siblings[free] = default_hashes()[free].hex()
    tampered = {
        "hash": "sm3",
        "bitmap": f"{bitmap | (1 << (256 - free)):064x}",
        "siblings": [siblings[d] for d in depths],
    }
    v = run(replaced(value, ("status", "proof"), tampered), s.world.trust_root(), s.checkpoint_ms)
    assert v.failed_step is not None and v.failed_step.number == 1
    assert v.failed_step.evidence["path"] == "status.proof"
