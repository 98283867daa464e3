"""Fuzzing the verifier with 20,000 mutated disclosed bundles (document, salt and seal present) and a Hypothesis
property over the same mutations, several at a time. No crash, no false accept."""

from __future__ import annotations

import json
from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st
from verifykit import Mutator, check_no_false_accept, scenario


def test_structured_mutations_of_a_disclosed_bundle_are_rejected_without_crashing() -> None:
    s = scenario()
    bundle = s.world.bundle(s.active, s.seq)
    original = bundle.to_json()
    root, now = s.world.trust_root(), s.checkpoint_ms + 1_000
    mutator = Mutator(bundle.to_dict(), seed=99)
    outcomes: Counter[str] = Counter()
    for _ in range(20_000):
        data = json.dumps(mutator(), ensure_ascii=False).encode("utf-8", errors="surrogatepass")
        outcomes[check_no_false_accept(data, original, root, now)] += 1
    assert outcomes["rejected"] > 18_000, outcomes


@settings(max_examples=300)
@given(seed=st.integers(min_value=0, max_value=2**64 - 1), rounds=st.integers(min_value=1, max_value=4))
def test_property_mutated_disclosed_bundles_are_never_accepted(seed: int, rounds: int) -> None:
    s = scenario()
    bundle = s.world.bundle(s.reinstated, s.seq)
    value = Mutator(bundle.to_dict(), seed).mutated(rounds)
    data = json.dumps(value, ensure_ascii=False).encode("utf-8", errors="surrogatepass")
    check_no_false_accept(data, bundle.to_json(), s.world.trust_root(), s.checkpoint_ms + 1_000)
