"""Generate the RFC 9162 Merkle proof golden vectors: ``tests/vectors/merkle/<hash>/<case>.json``.

Deterministic (fixed leaves, no randomness but a seeded ``random.Random``), so running it again reproduces the
committed files byte for byte (checked by ``tests/test_merkle_vectors.py``). Usage:

    python3 tests/vectors/generate_merkle.py [--out DIR]

The log's first 8 leaves are the Certificate Transparency / transparency-dev test inputs ("", 00, 10, 2021,
...), then ``b"licledger merkle vector leaf <i>"``. One case per file: ``description``, ``hash``, ``kind``
(``inclusion`` / ``consistency``), the inputs in lowercase hex, and ``expected``: ``"ok"`` or the name of the
error class that ``core.merkle.verify_inclusion`` / ``verify_consistency`` must raise.

Mutations follow transparency-dev/merkle ``cmd/proofgen``: a bit flip in each proof node, in the leaf hash and
in each root; truncated, extended (trailing extra node) and preceded (leading extra node) proofs; wrong sizes
(+1/-1), wrong leaf index, swapped roots, size1 > size2, an empty proof where one is needed, and wrong hash
lengths. A wrong-size case expects ``ProofFormatError`` when the proof's length differs from the length of a
genuine proof for the altered sizes; otherwise its outcome comes from the verification algorithms exactly as
RFC 9162 §2.1.3.2 and §2.1.4.2 write them (below, independent of core.merkle's transparency-dev style code).
Some such cases verify ("ok"): a proof whose left/right shape is the same for both sizes cannot tell them
apart, because the verifier cannot distinguish a leaf hash from an interior hash. The tree size is
authenticated by the signed checkpoint, never by the proof alone; those vectors pin that property down.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from core.hashing import SHA256, SM3, HashFunction
from core.merkle import MerkleTree, leaf_hash

OUT = Path(__file__).resolve().parent / "merkle"
CT_LEAVES = [
    bytes.fromhex(x)
    for x in (
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    )
]
LOG_SIZE = 1040
SMALL_SIZES = range(1, 71)
LARGE_SIZES = (100, 257, 1000, 1025)
OK = "ok"
MISMATCH = "RootMismatchError"
FORMAT = "ProofFormatError"

# Cases that get the full set of mutations: (leaf_index, tree_size) and (size1, size2).
MUTATED_INCLUSION = [
    (0, 1),
    (0, 2),
    (1, 2),
    (2, 3),
    (1, 5),
    (5, 8),
    (6, 7),
    (8, 9),
    (10, 15),
    (16, 17),
    (30, 31),
    (32, 33),
    (63, 64),
    (42, 70),
    (777, 1025),
]
MUTATED_CONSISTENCY = [
    (1, 2),
    (1, 8),
    (2, 5),
    (3, 7),
    (4, 8),
    (6, 7),
    (6, 8),
    (7, 70),
    (16, 33),
    (31, 64),
    (64, 70),
    (13, 13),
    (1000, 1025),
]


def rfc_verify_inclusion(
    h: HashFunction, leaf_index: int, tree_size: int, leaf: bytes, proof: list[bytes], root: bytes
) -> bool:
    """RFC 9162 §2.1.3.2, step by step."""
    if leaf_index >= tree_size:
        return False
    fn, sn, r = leaf_index, tree_size - 1, leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = h.digest(b"\x01" + p + r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn, sn = fn >> 1, sn >> 1
        else:
            r = h.digest(b"\x01" + r + p)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and r == root


def rfc_verify_consistency(
    h: HashFunction, first: int, second: int, proof: list[bytes], first_hash: bytes, second_hash: bytes
) -> bool:
    """RFC 9162 §2.1.4.2, step by step (``first = second`` needs an empty proof and equal roots)."""
    if first == second:
        return not proof and first_hash == second_hash
    if not proof or not 0 < first < second:
        return False
    path = [first_hash, *proof] if first & (first - 1) == 0 else list(proof)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = h.digest(b"\x01" + c + fr)
            sr = h.digest(b"\x01" + c + sr)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn, sn = fn >> 1, sn >> 1
        else:
            sr = h.digest(b"\x01" + sr + c)
        fn, sn = fn >> 1, sn >> 1
    return fr == first_hash and sr == second_hash and sn == 0


def same_shape(tag: str, kw: dict[str, Any]) -> str:
    if tag == "ok" or kw["want"] != OK:
        return ""
    return "; still verifies: same proof shape, and a proof alone does not authenticate the tree size"


def leaves() -> list[bytes]:
    return CT_LEAVES + [b"licledger merkle vector leaf %d" % i for i in range(len(CT_LEAVES), LOG_SIZE)]


def flip(data: bytes, bit: int) -> bytes:
    out = bytearray(data)
    out[(bit // 8) % len(out)] ^= 0x80 >> (bit % 8)
    return bytes(out)


class Writer:
    def __init__(self, out: Path, h: HashFunction) -> None:
        self.dir = out / h.name
        self.h = h
        self.names: set[str] = set()

    def write(self, name: str, case: dict[str, Any]) -> None:
        if name in self.names:
            raise AssertionError(f"duplicate case name {name}")
        self.names.add(name)
        self.dir.mkdir(parents=True, exist_ok=True)
        text = json.dumps({"hash": self.h.name, **case}, indent=2, sort_keys=True) + "\n"
        (self.dir / f"{name}.json").write_text(text, encoding="utf-8", newline="\n")


def inclusion_case(
    desc: str, i: int, n: int, leaf: bytes, proof: list[bytes], root: bytes, want: str
) -> dict[str, Any]:
    return {
        "description": desc,
        "kind": "inclusion",
        "leaf_index": i,
        "tree_size": n,
        "leaf_hash": leaf.hex(),
        "proof": [p.hex() for p in proof],
        "root_hash": root.hex(),
        "expected": want,
    }


def consistency_case(
    desc: str, m: int, n: int, proof: list[bytes], root1: bytes, root2: bytes, want: str
) -> dict[str, Any]:
    return {
        "description": desc,
        "kind": "consistency",
        "size1": m,
        "size2": n,
        "proof": [p.hex() for p in proof],
        "root1": root1.hex(),
        "root2": root2.hex(),
        "expected": want,
    }


def gen_inclusion(w: Writer, tree: MerkleTree, rng: random.Random) -> None:
    for n in [*SMALL_SIZES, *LARGE_SIZES]:
        for i in sorted({n - 1, rng.randrange(n)}):
            w.write(
                f"inclusion-n{n:04d}-i{i:04d}-ok",
                inclusion_case(
                    f"valid inclusion proof of leaf {i} in a tree of {n}",
                    i,
                    n,
                    tree.leaf_hash(i),
                    tree.inclusion_proof(i, n),
                    tree.root_hash(n),
                    OK,
                ),
            )
    for i, n in MUTATED_INCLUSION if w.h is SM3 else MUTATED_INCLUSION[::2]:
        mutate_inclusion(w, tree, i, n)


def mutate_inclusion(w: Writer, tree: MerkleTree, i: int, n: int) -> None:
    leaf, proof, root = tree.leaf_hash(i), tree.inclusion_proof(i, n), tree.root_hash(n)
    extra = tree.leaf_hash((i + 1) % n)
    base = f"inclusion-n{n:04d}-i{i:04d}"

    def case(tag: str, desc: str, **kw: Any) -> None:
        args = {"i": i, "n": n, "leaf": leaf, "proof": proof, "root": root, **kw}
        w.write(
            f"{base}-{tag}",
            inclusion_case(
                f"{desc} (leaf {i}, tree_size {n}){same_shape(tag, kw)}",
                args["i"],
                args["n"],
                args["leaf"],
                args["proof"],
                args["root"],
                kw["want"],
            ),
        )

    def sized(i2: int, n2: int) -> str:
        if len(tree.inclusion_proof(i2, n2)) != len(proof):
            return FORMAT
        return OK if rfc_verify_inclusion(w.h, i2, n2, leaf, proof, root) else MISMATCH

    if f"{base}-ok" not in w.names:
        case("ok", "valid inclusion proof", want=OK)

    for j in range(len(proof)):
        bit = 8 * j + 3 * j + 1
        case(
            f"flip-proof{j}-bit{bit}",
            f"bit {bit} flipped in proof[{j}]",
            proof=[*proof[:j], flip(proof[j], bit), *proof[j + 1 :]],
            want=MISMATCH,
        )
    case("flip-leaf-bit0", "bit 0 flipped in the leaf hash", leaf=flip(leaf, 0), want=MISMATCH)
    case("flip-leaf-bit255", "bit 255 flipped in the leaf hash", leaf=flip(leaf, 255), want=MISMATCH)
    case("flip-root-bit7", "bit 7 flipped in the root hash", root=flip(root, 7), want=MISMATCH)
    case(
        "rehashed-leaf",
        "leaf hash hashed again as if it were leaf data",
        leaf=w.h.digest(b"\x00" + leaf),
        want=MISMATCH,
    )
    if proof:
        case("truncated", "last proof node dropped", proof=proof[:-1], want=FORMAT)
        case("empty-proof", "empty proof where one is needed", proof=[], want=FORMAT)
        case("short-node", "proof[0] is one byte short", proof=[proof[0][:-1], *proof[1:]], want=FORMAT)
    case("extended", "extra node appended to the proof", proof=[*proof, extra], want=FORMAT)
    case("preceded", "extra node prepended to the proof", proof=[extra, *proof], want=FORMAT)
    case("long-leaf", "leaf hash one byte too long", leaf=leaf + b"\x00", want=FORMAT)
    case("short-root", "root hash one byte short", root=root[:-1], want=FORMAT)
    case("index-equals-size", "leaf_index equal to tree_size", i=n, want=FORMAT)
    case("size-zero", "tree_size 0", n=0, want=FORMAT)
    if i < n - 1:
        case("size-minus-1", "tree_size decremented", n=n - 1, want=sized(i, n - 1))
    case("size-plus-1", "tree_size incremented", n=n + 1, want=sized(i, n + 1))
    if n > 1:
        j = (i + 1) % n
        case("wrong-index", f"leaf_index {j} instead of {i}", i=j, want=sized(j, n))
        case("other-leaf", "another leaf's hash at this index", leaf=extra, want=MISMATCH)


def gen_consistency(w: Writer, tree: MerkleTree, rng: random.Random) -> None:
    pairs = [(m, n) for n in SMALL_SIZES for m in {n - 1 or 1, rng.randrange(1, n + 1)}]
    pairs += [(n, n) for n in range(1, 9)] + [(1, n) for n in range(2, 17)]
    pairs += [(1, 1025), (257, 1000), (512, 1000), (999, 1000), (1024, 1025), (100, 257)]
    for m, n in sorted(set(pairs)):
        w.write(
            f"consistency-m{m:04d}-n{n:04d}-ok",
            consistency_case(
                f"valid consistency proof from size {m} to size {n}",
                m,
                n,
                tree.consistency_proof(m, n),
                tree.root_hash(m),
                tree.root_hash(n),
                OK,
            ),
        )
    for m, n in MUTATED_CONSISTENCY if w.h is SM3 else MUTATED_CONSISTENCY[::2]:
        mutate_consistency(w, tree, m, n)


def mutate_consistency(w: Writer, tree: MerkleTree, m: int, n: int) -> None:
    proof, root1, root2 = tree.consistency_proof(m, n), tree.root_hash(m), tree.root_hash(n)
    extra = tree.leaf_hash(0)
    base = f"consistency-m{m:04d}-n{n:04d}"

    def case(tag: str, desc: str, **kw: Any) -> None:
        args = {"m": m, "n": n, "proof": proof, "root1": root1, "root2": root2, **kw}
        w.write(
            f"{base}-{tag}",
            consistency_case(
                f"{desc} (size1 {m}, size2 {n}){same_shape(tag, kw)}",
                args["m"],
                args["n"],
                args["proof"],
                args["root1"],
                args["root2"],
                kw["want"],
            ),
        )

    def sized(m2: int, n2: int) -> str:
        if len(tree.consistency_proof(m2, n2)) != len(proof):
            return FORMAT
        return OK if rfc_verify_consistency(w.h, m2, n2, proof, root1, root2) else MISMATCH

    if f"{base}-ok" not in w.names:
        case("ok", "valid consistency proof", want=OK)

    for j in range(len(proof)):
        bit = 8 * j + 5 * j + 2
        case(
            f"flip-proof{j}-bit{bit}",
            f"bit {bit} flipped in proof[{j}]",
            proof=[*proof[:j], flip(proof[j], bit), *proof[j + 1 :]],
            want=MISMATCH,
        )
    case("flip-root1-bit0", "bit 0 flipped in root1", root1=flip(root1, 0), want=MISMATCH)
    case("flip-root2-bit255", "bit 255 flipped in root2", root2=flip(root2, 255), want=MISMATCH)
    case("short-root1", "root1 one byte short", root1=root1[:-1], want=FORMAT)
    case("long-root2", "root2 one byte too long", root2=root2 + b"\x00", want=FORMAT)
    case("extended", "extra node appended to the proof", proof=[*proof, extra], want=FORMAT)
    case("preceded", "extra node prepended to the proof", proof=[extra, *proof], want=FORMAT)
    case("size1-zero", "size1 0", m=0, want=FORMAT)
    case("size1-gt-size2", "size1 and size2 exchanged", m=n + 1 if m == n else n, n=m, want=FORMAT)
    if proof:
        case("truncated", "last proof node dropped", proof=proof[:-1], want=FORMAT)
        case("empty-proof", "empty proof where one is needed", proof=[], want=FORMAT)
        case("short-node", "proof[0] is one byte short", proof=[proof[0][:-1], *proof[1:]], want=FORMAT)
        case("swapped-roots", "root1 and root2 exchanged", root1=root2, root2=root1, want=MISMATCH)
        case("size1-plus-1", "size1 incremented", m=m + 1, want=sized(m + 1, n))
        case("size2-minus-1", "size2 decremented", n=n - 1, want=sized(m, n - 1))
    if m > 1:
        case("size1-minus-1", "size1 decremented", m=m - 1, want=sized(m - 1, n))
    case("size2-plus-1", "size2 incremented", n=n + 1, want=sized(m, n + 1))
    case(
        "root2-of-other-tree", "root2 of the tree one leaf larger", root2=tree.root_hash(n + 1), want=MISMATCH
    )


def generate(out: Path) -> int:
    count = 0
    for h in (SM3, SHA256):
        w = Writer(out, h)
        tree = MerkleTree((leaf_hash(x, h) for x in leaves()), h)
        rng = random.Random(f"licledger merkle vectors {h.name}")
        gen_inclusion(w, tree, rng)
        gen_consistency(w, tree, rng)
        count += len(w.names)
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT, help=f"output directory (default {OUT})")
    args = parser.parse_args()
    print(f"wrote {generate(args.out)} files under {args.out}")


if __name__ == "__main__":
    main()
