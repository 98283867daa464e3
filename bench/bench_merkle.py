"""Benchmark core.merkle (RFC 9162 log) and core.smt (sparse Merkle status map), SM3, in one process.

Usage: ``python3 bench/bench_merkle.py [--leaves N]``. ``run()`` returns the figures for ``bench/bench_core.py``.
Every figure is measured in this run; ``*_vs_raw_sm3`` ratios divide by the raw ``sm3_hash`` rate measured
moments before on the same 65-byte inputs, so they show the Python overhead on top of the hash itself.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.hashing import SM3
from core.merkle import (
    CompactRange,
    MerkleTree,
    leaf_hash,
    verify_consistency,
    verify_inclusion,
)
from core.smt import SparseMerkleTree, verify_sparse_proof


def _rate(fn: Callable[[], object], count: int) -> float:
    start = time.perf_counter()
    for _ in range(count):
        fn()
    return count / (time.perf_counter() - start)


def _bench_log(results: dict[str, float], leaves: int, raw: float, rng: random.Random) -> None:
    start = time.perf_counter()
    hashes = [leaf_hash(b"license-event-%d" % i) for i in range(leaves)]
    results[f"leaf hashes for {leaves:,} leaves (s)"] = time.perf_counter() - start

    start = time.perf_counter()
    tree = MerkleTree(hashes)
    build = time.perf_counter() - start
    results[f"MerkleTree build, {leaves:,} leaves (s)"] = build
    results["MerkleTree build: interior hashes/s vs raw sm3"] = (leaves - 1) / build / raw

    n = tree.size
    sizes = [rng.randrange(1, n + 1) for _ in range(20_000)]
    queries = iter([(rng.randrange(size), size) for size in sizes])
    results["inclusion proofs generated/s (random past sizes)"] = _rate(
        lambda: tree.inclusion_proof(*next(queries)), len(sizes)
    )
    samples = []
    for size in sizes[:5_000]:
        index = rng.randrange(size)
        samples.append((index, size, hashes[index], tree.inclusion_proof(index, size), tree.root_hash(size)))
    it = iter(samples)
    results["inclusion proofs verified/s"] = _rate(lambda: verify_inclusion(*next(it)), len(samples))

    pairs = [tuple(sorted((rng.randrange(1, n + 1), rng.randrange(1, n + 1)))) for _ in range(5_000)]
    it2 = iter(pairs)
    results["consistency proofs generated/s"] = _rate(lambda: tree.consistency_proof(*next(it2)), len(pairs))
    checks = [(a, b, tree.consistency_proof(a, b), tree.root_hash(a), tree.root_hash(b)) for a, b in pairs]
    it3 = iter(checks)
    results["consistency proofs verified/s"] = _rate(lambda: verify_consistency(*next(it3)), len(checks))
    results["root_hash at a random past size/s"] = _rate(lambda: tree.root_hash(rng.randrange(n + 1)), 20_000)

    cr = CompactRange()
    it4 = iter(hashes)
    results["CompactRange appends/s"] = _rate(lambda: cr.append(next(it4)), min(leaves, 300_000))


def _bench_smt(results: dict[str, float], count: int) -> None:
    smt = SparseMerkleTree()
    keys = [SM3.digest(b"LIC-%d" % i) for i in range(count)]
    values = [SM3.digest(b"revoked-%d" % i) for i in range(count)]
    it = iter(zip(keys, values, strict=True))
    results[f"SMT updates/s (insert {count:,} keys)"] = _rate(lambda: smt.update(*next(it)), count)
    it2 = iter(keys)
    overwrite = SM3.digest(b"reinstated")
    results["SMT updates/s (overwrite)"] = _rate(lambda: smt.update(next(it2), overwrite), min(count, 5_000))
    sample = keys[: min(count, 2_000)]
    absent = [SM3.digest(b"never-%d" % i) for i in range(len(sample))]
    it3 = iter(sample + absent)
    results["SMT proofs generated/s (half absent)"] = _rate(lambda: smt.prove(next(it3)), 2 * len(sample))
    root = smt.root_hash()
    proofs = [(k, smt.get(k), smt.prove(k)) for k in sample + absent]
    it4 = iter(proofs)
    results["SMT proofs verified/s (half absent)"] = _rate(lambda: verify_sparse_proof(root, *next(it4)), len(proofs))
    results["SMT stored nodes per key"] = len(smt.nodes()) / count


def run(leaves: int = 1_000_000, smt_keys: int = 20_000) -> dict[str, float]:
    """Measure everything once; keys are figure names, values seconds, rates per second or ratios."""
    block = b"\x01" + bytes(64)
    results: dict[str, float] = {}
    results["raw sm3 hashes/s (65-byte input)"] = raw = _rate(lambda: SM3.digest(block), 200_000)
    _bench_log(results, leaves, raw, random.Random(1))
    _bench_smt(results, smt_keys)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leaves", type=int, default=1_000_000)
    parser.add_argument("--smt-keys", type=int, default=20_000)
    args = parser.parse_args()
    for name, value in run(args.leaves, args.smt_keys).items():
        print(f"{name:<52} {value:>14,.3f}")


if __name__ == "__main__":
    main()
