"""core.merkle: RFC 6962 / 9162 known answers, a literal reference, properties, misuse and attacks."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core import canonical
from core.errors import FormatError, ProofError, ProofFormatError, RootMismatchError
from core.hashing import SHA256, SM3, HashFunction
from core.merkle import (
    CompactRange,
    MerkleTree,
    consistency_proof,
    empty_root,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root_from_consistency_proof,
    root_from_inclusion_proof,
    root_hash,
    verify_consistency,
    verify_inclusion,
)

# --- Certificate Transparency / transparency-dev/merkle data (testonly/constants.go, cmd/proofgen) ---

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
CT_ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
CT_NODES = [  # [level][index] for every complete subtree of the 8-leaf tree
    [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
        "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        "4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658",
        "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
        "46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1",
    ],
    [
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
    ],
    [
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    ],
    ["5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"],
]
# (leaf_index, tree_size, proof); cmd/proofgen lists 1-based indices, these are 0-based.
CT_INCLUSION = [
    (0, 1, []),
    (0, 8, [CT_NODES[0][1], CT_NODES[1][1], CT_NODES[2][1]]),
    (5, 8, [CT_NODES[0][4], CT_NODES[1][3], CT_NODES[2][0]]),
    (2, 3, [CT_NODES[1][0]]),
    (1, 5, [CT_NODES[0][0], CT_NODES[1][1], CT_NODES[0][4]]),
]
CT_CONSISTENCY = [
    (1, 1, []),
    (1, 8, [CT_NODES[0][1], CT_NODES[1][1], CT_NODES[2][1]]),
    (6, 8, [CT_NODES[1][2], CT_NODES[1][3], CT_NODES[2][0]]),
    (2, 5, [CT_NODES[1][1], CT_NODES[0][4]]),
    (6, 7, [CT_NODES[1][2], CT_NODES[0][6], CT_NODES[2][0]]),
]
CT_COMPACT = [[], [(0, 0)], [(1, 0)], [(1, 0), (0, 2)], [(2, 0)], [(2, 0), (0, 4)], [(2, 0), (1, 2)]]
CT_COMPACT += [[(2, 0), (1, 2), (0, 6)], [(3, 0)]]


def hx(values: list[str]) -> list[bytes]:
    return [bytes.fromhex(v) for v in values]


CT_LEAF_HASHES = [leaf_hash(x, SHA256) for x in CT_LEAVES]
CT_TREE = MerkleTree(CT_LEAF_HASHES, SHA256)


def test_ct_leaf_hashes_and_empty_root() -> None:
    assert [x.hex() for x in CT_LEAF_HASHES] == CT_NODES[0]
    assert empty_root(SHA256).hex() == CT_ROOTS[0]


@pytest.mark.parametrize("size", range(9))
def test_ct_roots(size: int) -> None:
    assert root_hash(CT_LEAF_HASHES[:size], SHA256).hex() == CT_ROOTS[size]
    assert CT_TREE.root_hash(size).hex() == CT_ROOTS[size]
    cr = CompactRange(SHA256)
    cr.extend(CT_LEAF_HASHES[:size])
    assert cr.root_hash().hex() == CT_ROOTS[size]
    assert [x.hex() for x in cr.hashes] == [CT_NODES[lvl][i] for lvl, i in CT_COMPACT[size]]


@pytest.mark.parametrize(("index", "size", "proof"), CT_INCLUSION)
def test_ct_inclusion(index: int, size: int, proof: list[str]) -> None:
    assert CT_TREE.inclusion_proof(index, size) == hx(proof)
    assert inclusion_proof(CT_LEAF_HASHES, index, size, SHA256) == hx(proof)
    root = bytes.fromhex(CT_ROOTS[size])
    verify_inclusion(index, size, CT_LEAF_HASHES[index], hx(proof), root, SHA256)


@pytest.mark.parametrize(("size1", "size2", "proof"), CT_CONSISTENCY)
def test_ct_consistency(size1: int, size2: int, proof: list[str]) -> None:
    assert CT_TREE.consistency_proof(size1, size2) == hx(proof)
    assert consistency_proof(CT_LEAF_HASHES, size1, size2, SHA256) == hx(proof)
    r1, r2 = bytes.fromhex(CT_ROOTS[size1]), bytes.fromhex(CT_ROOTS[size2])
    verify_consistency(size1, size2, hx(proof), r1, r2, SHA256)


# --- a literal RFC 9162 §2.1 reference (recursive, slow, obviously right) ---


def ref_mth(d: list[bytes], h: HashFunction) -> bytes:
    if not d:
        return h.digest(b"")
    if len(d) == 1:
        return d[0]
    k = 1 << ((len(d) - 1).bit_length() - 1)
    return node_hash(ref_mth(d[:k], h), ref_mth(d[k:], h), h)


def ref_path(m: int, d: list[bytes], h: HashFunction) -> list[bytes]:
    if len(d) == 1:
        return []
    k = 1 << ((len(d) - 1).bit_length() - 1)
    if m < k:
        return [*ref_path(m, d[:k], h), ref_mth(d[k:], h)]
    return [*ref_path(m - k, d[k:], h), ref_mth(d[:k], h)]


def ref_subproof(m: int, d: list[bytes], b: bool, h: HashFunction) -> list[bytes]:
    if m == len(d):
        return [] if b else [ref_mth(d, h)]
    k = 1 << ((len(d) - 1).bit_length() - 1)
    if m <= k:
        return [*ref_subproof(m, d[:k], b, h), ref_mth(d[k:], h)]
    return [*ref_subproof(m - k, d[k:], False, h), ref_mth(d[:k], h)]


LEAVES = [leaf_hash(b"leaf %d" % i) for i in range(1100)]
TREE = MerkleTree(LEAVES)


def test_matches_literal_reference_for_all_small_trees() -> None:
    for n in range(1, 40):
        d = LEAVES[:n]
        assert TREE.root_hash(n) == ref_mth(d, SM3) == root_hash(d)
        for m in range(n):
            assert TREE.inclusion_proof(m, n) == ref_path(m, d, SM3)
        for m in range(1, n + 1):
            assert TREE.consistency_proof(m, n) == ref_subproof(m, d, True, SM3)


def test_all_proofs_of_small_trees_verify() -> None:
    for n in range(1, 65):
        root = TREE.root_hash(n)
        for m in range(n):
            verify_inclusion(m, n, LEAVES[m], TREE.inclusion_proof(m, n), root)
        for m in range(1, n + 1):
            verify_consistency(m, n, TREE.consistency_proof(m, n), TREE.root_hash(m), root)


@pytest.mark.parametrize("n", [255, 256, 257, 511, 512, 513, 1023, 1024, 1025, 1100])
def test_boundary_sizes(n: int) -> None:
    assert TREE.root_hash(n) == root_hash(LEAVES[:n])
    for m in (0, 1, n // 2, n - 2, n - 1):
        assert TREE.inclusion_proof(m, n) == ref_path(m, LEAVES[:n], SM3)
    for m in (1, n // 3, n - 1, n):
        verify_consistency(m, n, TREE.consistency_proof(m, n), TREE.root_hash(m), TREE.root_hash(n))


# --- properties ---

sizes = st.integers(min_value=1, max_value=len(LEAVES))


@given(data=st.data(), n=sizes)
def test_every_inclusion_proof_verifies(data: st.DataObject, n: int) -> None:
    m = data.draw(st.integers(min_value=0, max_value=n - 1))
    proof = TREE.inclusion_proof(m, n)
    assert root_from_inclusion_proof(m, n, LEAVES[m], proof) == TREE.root_hash(n)
    verify_inclusion(m, n, LEAVES[m], proof, TREE.root_hash(n))


@given(data=st.data(), n=sizes)
def test_every_consistency_proof_verifies(data: st.DataObject, n: int) -> None:
    m = data.draw(st.integers(min_value=1, max_value=n))
    proof = TREE.consistency_proof(m, n)
    assert root_from_consistency_proof(m, n, proof, TREE.root_hash(m)) == TREE.root_hash(n)
    verify_consistency(m, n, proof, TREE.root_hash(m), TREE.root_hash(n))


def _mutate(data: st.DataObject, proof: list[bytes], hashes: list[bytes]) -> tuple[list[bytes], list[bytes]]:
    """One content mutation of a proof or of the other hashes given to the verifier."""
    kinds = ["flip-hash", "append", "prepend"]
    if proof:
        kinds += ["flip-proof", "drop", "replace"]
    if len(set(proof)) > 1:
        kinds.append("swap")
    kind = data.draw(st.sampled_from(kinds))
    proof, hashes = list(proof), list(hashes)
    bit = data.draw(st.integers(min_value=0, max_value=255))

    def flip(x: bytes) -> bytes:
        return bytes(b ^ (0x80 >> (bit % 8)) if i == bit // 8 else b for i, b in enumerate(x))

    if kind == "flip-hash":
        j = data.draw(st.integers(min_value=0, max_value=len(hashes) - 1))
        hashes[j] = flip(hashes[j])
    elif kind == "append":
        proof.append(data.draw(st.sampled_from(LEAVES[:50])))
    elif kind == "prepend":
        proof.insert(0, data.draw(st.sampled_from(LEAVES[:50])))
    elif kind == "flip-proof":
        j = data.draw(st.integers(min_value=0, max_value=len(proof) - 1))
        proof[j] = flip(proof[j])
    elif kind == "drop":
        del proof[data.draw(st.integers(min_value=0, max_value=len(proof) - 1))]
    elif kind == "replace":
        j = data.draw(st.integers(min_value=0, max_value=len(proof) - 1))
        proof[j] = data.draw(st.sampled_from([x for x in LEAVES[1050:] if x != proof[j]]))
    else:
        i, j = data.draw(
            st.tuples(st.integers(0, len(proof) - 1), st.integers(0, len(proof) - 1)).filter(
                lambda t: proof[t[0]] != proof[t[1]]
            )
        )
        proof[i], proof[j] = proof[j], proof[i]
    return proof, hashes


@given(data=st.data(), n=st.integers(min_value=1, max_value=1000))
def test_mutated_inclusion_proof_never_verifies(data: st.DataObject, n: int) -> None:
    m = data.draw(st.integers(min_value=0, max_value=n - 1))
    proof, (leaf, root) = _mutate(data, TREE.inclusion_proof(m, n), [LEAVES[m], TREE.root_hash(n)])
    with pytest.raises((ProofError, ProofFormatError)):
        verify_inclusion(m, n, leaf, proof, root)


@given(data=st.data(), n=st.integers(min_value=1, max_value=1000))
def test_mutated_consistency_proof_never_verifies(data: st.DataObject, n: int) -> None:
    m = data.draw(st.integers(min_value=1, max_value=n))
    proof, (r1, r2) = _mutate(data, TREE.consistency_proof(m, n), [TREE.root_hash(m), TREE.root_hash(n)])
    with pytest.raises((ProofError, ProofFormatError)):
        verify_consistency(m, n, proof, r1, r2)


@given(st.lists(st.binary(min_size=0, max_size=8), max_size=70), st.sampled_from([SM3, SHA256]))
def test_tree_root_hash_and_compact_range_agree(data: list[bytes], h: HashFunction) -> None:
    hashes = [leaf_hash(x, h) for x in data]
    tree, incremental, cr = MerkleTree(hashes, h), MerkleTree(h=h), CompactRange(h)
    for i, x in enumerate(hashes):
        assert incremental.append(x) == i
        cr.append(x)
        assert incremental.root_hash() == cr.root_hash() == tree.root_hash(i + 1) == root_hash(hashes[: i + 1], h)
        assert tree.compact_range(i + 1) == cr
    assert tree.root_hash() == root_hash(hashes, h) == cr.root_hash() == incremental.root_hash()
    assert CompactRange.from_dict(canonical.decode(canonical.encode(cr.to_dict())), h) == cr


# --- the log's own guarantees ---


def test_second_preimage_forgery_fails_thanks_to_domain_separation() -> None:
    """The classic attack on unprefixed Merkle trees: pass interior nodes off as leaf data."""
    a, b, c, d = (SM3.digest(x) for x in (b"d0", b"d1", b"d2", b"d3"))

    def unprefixed(x: bytes, y: bytes) -> bytes:
        return SM3.digest(x + y)

    # Without prefixes a 2-leaf tree of the concatenated hashes has the same root as the 4-leaf tree.
    assert unprefixed(SM3.digest(a + b), SM3.digest(c + d)) == unprefixed(unprefixed(a, b), unprefixed(c, d))
    hl = [leaf_hash(x) for x in (b"d0", b"d1", b"d2", b"d3")]
    forged = root_hash([leaf_hash(hl[0] + hl[1]), leaf_hash(hl[2] + hl[3])])
    assert forged != root_hash(hl)
    assert leaf_hash(a + b) != node_hash(a, b)


def test_past_roots_stay_fixed_while_the_log_grows() -> None:
    tree = MerkleTree(LEAVES[:10])
    before = [tree.root_hash(n) for n in range(11)]
    tree.extend(LEAVES[10:100])
    assert [tree.root_hash(n) for n in range(11)] == before
    assert tree.size == len(tree) == 100
    assert tree.leaf_hash(57) == LEAVES[57]


def test_root_mismatch_carries_evidence() -> None:
    proof = TREE.inclusion_proof(3, 10)
    wrong = TREE.root_hash(11)
    with pytest.raises(RootMismatchError) as exc:
        verify_inclusion(3, 10, LEAVES[3], proof, wrong)
    assert exc.value.expected_root == wrong
    assert exc.value.calculated_root == TREE.root_hash(10)
    assert wrong.hex() in str(exc.value)


def test_consistency_root1_check_names_root1() -> None:
    proof = TREE.consistency_proof(3, 10)
    with pytest.raises(RootMismatchError, match="root1") as exc:
        verify_consistency(3, 10, proof, TREE.root_hash(4), TREE.root_hash(10))
    assert exc.value.calculated_root == TREE.root_hash(3)


def test_fork_is_detected_by_consistency() -> None:
    """A log that rewrote leaf 5 after publishing size 8 cannot prove consistency to its new root."""
    forked = MerkleTree([*LEAVES[:5], leaf_hash(b"rewritten"), *LEAVES[6:20]])
    proof = forked.consistency_proof(8, 20)
    with pytest.raises(RootMismatchError):
        verify_consistency(8, 20, proof, TREE.root_hash(8), forked.root_hash(20))


# --- malformed proofs and misuse ---


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((5, 5, LEAVES[0], [], LEAVES[0]), "leaf_index 5 is beyond tree_size 5"),
        ((0, 0, LEAVES[0], [], LEAVES[0]), "beyond tree_size 0"),
        ((-1, 5, LEAVES[0], [], LEAVES[0]), "leaf_index must not be negative"),
        ((0, 1, LEAVES[0][:31], [], LEAVES[0]), "leaf hash is 31 bytes"),
        ((0, 1, LEAVES[0], [], LEAVES[0] + b"x"), "root hash is 33 bytes"),
        ((0, 2, LEAVES[0], [LEAVES[1][:5]], LEAVES[0]), r"proof\[0\] is 5 bytes"),
        ((0, 2, LEAVES[0], [], LEAVES[0]), "must have 1 hashes, got 0"),
        ((0, 1, LEAVES[0], [LEAVES[1]], LEAVES[0]), "must have 0 hashes, got 1"),
    ],
)
def test_inclusion_format_errors(args: tuple[int, int, bytes, list[bytes], bytes], message: str) -> None:
    with pytest.raises(ProofFormatError, match=message):
        verify_inclusion(*args)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((5, 4, [], LEAVES[0], LEAVES[0]), "size1 5 is larger than size2 4"),
        ((0, 4, [], LEAVES[0], LEAVES[0]), r"empty tree \(size1 = 0\)"),
        ((0, 0, [], empty_root(), empty_root()), r"empty tree \(size1 = 0\)"),
        ((3, 3, [LEAVES[0]], LEAVES[0], LEAVES[0]), "proof must be empty"),
        ((3, 4, [], LEAVES[0], LEAVES[0]), "empty consistency proof"),
        ((3, 4, [LEAVES[0]], LEAVES[0], LEAVES[0]), "must have 3 hashes, got 1"),
        ((3, 4, [LEAVES[0]], LEAVES[0][:1], LEAVES[0]), "root1 is 1 bytes"),
        ((3, 4, [LEAVES[0]], LEAVES[0], b""), "root2 is 0 bytes"),
    ],
)
def test_consistency_format_errors(args: tuple[int, int, list[bytes], bytes, bytes], message: str) -> None:
    with pytest.raises(ProofFormatError, match=message):
        verify_consistency(*args)


def test_equal_sizes_compare_roots() -> None:
    verify_consistency(7, 7, [], TREE.root_hash(7), TREE.root_hash(7))
    with pytest.raises(RootMismatchError):
        verify_consistency(7, 7, [], TREE.root_hash(7), TREE.root_hash(8))


def test_wrong_types_are_type_errors() -> None:
    with pytest.raises(TypeError):
        verify_inclusion(0, 1, "00" * 32, [], LEAVES[0])  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        verify_inclusion(True, 2, LEAVES[0], [LEAVES[1]], LEAVES[0])
    with pytest.raises(TypeError):
        verify_consistency(1, 2, LEAVES[0], LEAVES[0], LEAVES[0])  # type: ignore[arg-type]


def test_generator_misuse_is_value_error() -> None:
    for call in (
        lambda: inclusion_proof(LEAVES[:4], 4, 4),
        lambda: inclusion_proof(LEAVES[:4], 0, 5),
        lambda: consistency_proof(LEAVES[:4], 0, 4),
        lambda: consistency_proof(LEAVES[:4], 3, 2),
        lambda: consistency_proof(LEAVES[:4], 1, 5),
        lambda: TREE.inclusion_proof(0, len(LEAVES) + 1),
        lambda: TREE.root_hash(-1),
        lambda: MerkleTree([b"short"]),
        lambda: CompactRange().append(b"\x00" * 31),
    ):
        with pytest.raises(ValueError):
            call()
    with pytest.raises(TypeError):
        MerkleTree(["00" * 32])  # type: ignore[list-item]


def test_failed_extend_leaves_tree_unchanged() -> None:
    tree = MerkleTree(LEAVES[:3])
    with pytest.raises(ValueError):
        tree.extend([LEAVES[3], b"bad"])
    assert tree.size == 3 and tree.root_hash() == TREE.root_hash(3)


# --- compact range serialisation ---


def test_compact_range_round_trip_and_copy() -> None:
    cr = TREE.compact_range(1023)
    d = cr.to_dict()
    assert d["size"] == 1023 and len(d["hashes"]) == 10 and d["hash"] == "sm3"
    again = CompactRange.from_dict(d)
    assert again == cr and again.root_hash() == TREE.root_hash(1023)
    copy = cr.copy()
    copy.append(LEAVES[1023])
    assert copy.root_hash() == TREE.root_hash(1024) and cr.size == 1023


GOOD = TREE.compact_range(5).to_dict()


@pytest.mark.parametrize(
    "bad",
    [
        [],
        {**GOOD, "extra": 1},
        {k: v for k, v in GOOD.items() if k != "hash"},
        {**GOOD, "hash": "sha256"},
        {**GOOD, "size": True},
        {**GOOD, "size": -1},
        {**GOOD, "size": 2**53},
        {**GOOD, "size": "5"},
        {**GOOD, "size": 7},
        {**GOOD, "hashes": "00"},
        {**GOOD, "hashes": [GOOD["hashes"][0]]},
        {**GOOD, "hashes": [GOOD["hashes"][0].upper(), GOOD["hashes"][1]]},
        {**GOOD, "hashes": [GOOD["hashes"][0][:-2], GOOD["hashes"][1]]},
        {**GOOD, "hashes": [GOOD["hashes"][0], 5]},
        {**GOOD, "hashes": [GOOD["hashes"][0], "zz" * 32]},
    ],
)
def test_compact_range_from_dict_is_strict(bad: object) -> None:
    with pytest.raises(FormatError):
        CompactRange.from_dict(bad)  # type: ignore[arg-type]


def test_compact_range_of_empty_log() -> None:
    cr = CompactRange()
    assert cr.root_hash() == empty_root() == MerkleTree().root_hash()
    assert CompactRange.from_dict(cr.to_dict()) == cr
    assert list(itertools.islice(cr.hashes, 1)) == []
