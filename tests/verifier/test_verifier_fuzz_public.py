"""Fuzzing the verifier with 50,000 mutated public (commitment-only) bundles: no crash (only a Verdict), no false
accept. With test_verifier_fuzz_bytes.py (30,000) and test_verifier_fuzz_disclosed.py (20,000 and a Hypothesis
property) the suite verifies over 10^5 mutated bundles; bench/bench_verifier.py --fuzz 1000000 runs 10^6."""

from __future__ import annotations

import json
from collections import Counter

from verifykit import Mutator, check_no_false_accept, scenario

from core.bundle import public_view


def test_structured_mutations_of_a_public_bundle_are_rejected_without_crashing() -> None:
    s = scenario()
    bundle = public_view(s.world.bundle(s.active, s.seq))
    original = bundle.to_json()
    root, now = s.world.trust_root(), s.checkpoint_ms + 1_000
    mutator = Mutator(bundle.to_dict(), seed=20240501)
    outcomes: Counter[str] = Counter()
    for _ in range(50_000):
        data = json.dumps(mutator(), ensure_ascii=False).encode("utf-8", errors="surrogatepass")
        outcomes[check_no_false_accept(data, original, root, now)] += 1
    assert outcomes["rejected"] > 45_000, outcomes
