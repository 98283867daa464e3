"""Fuzzing the verifier with 30,000 byte-level corruptions (bit flips, truncation) of canonical bundles: no crash,
no false accept."""

from __future__ import annotations

import random
from collections import Counter

from verifykit import check_no_false_accept, scenario

from core.bundle import public_view


def test_byte_flips_and_truncations_of_canonical_bundles_are_rejected_without_crashing() -> None:
    s = scenario()
    root, now = s.world.trust_root(), s.checkpoint_ms + 1_000
    rng = random.Random(7)
    outcomes: Counter[str] = Counter()
    for bundle in (public_view(s.world.bundle(s.revoked, s.seq)), s.world.bundle(s.active, s.seq)):
        original = bundle.to_json()
        for _ in range(15_000):
            data = bytearray(original)
            for _ in range(rng.choice((1, 1, 1, 2, 8))):
                data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
            if rng.random() < 0.05:
                data = data[: rng.randrange(len(data))]
            outcomes[check_no_false_accept(bytes(data), original, root, now)] += 1
    assert outcomes["rejected"] > 29_000, outcomes
