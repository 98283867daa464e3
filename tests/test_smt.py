"""core.smt: the sparse Merkle status map against a literal recursive reference, proofs, storage, attacks."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core import canonical
from core.errors import FormatError, ProofFormatError, RootMismatchError
from core.hashing import SHA256, SM3, HashFunction
from core.smt import (
    DEPTH,
    MissingNodeError,
    NodeId,
    SparseMerkleTree,
    SparseProof,
    default_hashes,
    missing_node_ids,
    node_ids_for,
    verify_sparse_proof,
)


def key(i: int) -> bytes:
    return SM3(b"license-%d" % i)


def value(i: int) -> bytes:
    return SM3(b"status-%d" % i)


def bit(k: bytes, depth: int) -> int:
    return (k[depth // 8] >> (7 - depth % 8)) & 1


def reference_root(items: dict[bytes, bytes], h: HashFunction = SM3) -> bytes:
    """The definition, recursively over all 256 levels (Dahlberg et al. 2016, §3)."""
    defaults = [b"\x00" * h.digest_size]
    for _ in range(DEPTH):
        defaults.insert(0, h.digest(b"\x01" + defaults[0] + defaults[0]))

    def rec(keys: list[bytes], depth: int) -> bytes:
        if not keys:
            return defaults[depth]
        if depth == DEPTH:
            (only,) = keys
            return h.digest(b"\x00" + only + items[only])
        left = rec([k for k in keys if not bit(k, depth)], depth + 1)
        right = rec([k for k in keys if bit(k, depth)], depth + 1)
        return h.digest(b"\x01" + left + right)

    return rec(sorted(items), 0)


def test_empty_tree() -> None:
    tree = SparseMerkleTree()
    assert tree.root_hash() == default_hashes()[0] == reference_root({})
    assert default_hashes()[DEPTH] == b"\x00" * 32
    proof = tree.prove(key(1))
    assert proof.siblings == ()
    verify_sparse_proof(tree.root_hash(), key(1), None, proof)
    with pytest.raises(RootMismatchError):
        verify_sparse_proof(tree.root_hash(), key(1), value(1), proof)


@pytest.mark.parametrize("h", [SM3, SHA256])
def test_matches_reference_and_proves_membership_and_absence(h: HashFunction) -> None:
    items = {key(i): h.digest(b"v%d" % i) for i in range(40)}
    tree = SparseMerkleTree(h=h)
    for k, v in items.items():
        tree.update(k, v)
    root = tree.root_hash()
    assert root == reference_root(items, h)
    for i in range(60):
        k = key(i)
        assert tree.get(k) == items.get(k)
        proof = tree.prove(k)
        verify_sparse_proof(root, k, items.get(k), proof, h)
        wrong = None if k in items else h.digest(b"forged")
        with pytest.raises(RootMismatchError):  # present proved absent, or absent proved present
            verify_sparse_proof(root, k, wrong, proof, h)


def test_wrong_value_or_key_fails() -> None:
    tree = SparseMerkleTree()
    for i in range(10):
        tree.update(key(i), value(i))
    proof = tree.prove(key(3))
    with pytest.raises(RootMismatchError) as exc:
        verify_sparse_proof(tree.root_hash(), key(3), value(4), proof)
    assert exc.value.expected_root == tree.root_hash()
    with pytest.raises(RootMismatchError):
        verify_sparse_proof(tree.root_hash(), key(4), value(3), proof)


def test_updates_and_deletes_return_to_empty() -> None:
    tree = SparseMerkleTree()
    for i in range(30):
        tree.update(key(i), value(i))
    tree.update(key(5), value(99))
    assert tree.get(key(5)) == value(99)
    for i in range(30):
        writes = tree.update(key(i), None)
        assert writes.root_hash == tree.root_hash()
    assert tree.root_hash() == default_hashes()[0]
    assert tree.nodes() == {}


def test_deleting_an_absent_key_changes_nothing() -> None:
    tree = SparseMerkleTree()
    tree.update(key(1), value(1))
    before = tree.root_hash()
    assert dict(tree.update(key(2), None)) == {}
    assert tree.root_hash() == before


def test_keys_differing_in_the_last_bit() -> None:
    a = bytes(31) + b"\x00"
    b = bytes(31) + b"\x01"
    c = bytes(31) + b"\x02"
    tree = SparseMerkleTree()
    for k in (a, b, c):
        tree.update(k, value(k[-1]))
    items = {k: value(k[-1]) for k in (a, b, c)}
    assert tree.root_hash() == reference_root(items)
    assert NodeId(DEPTH, a) in tree.nodes()  # split all the way down to the leaves
    for k in (a, b, c, bytes(31) + b"\x03"):
        verify_sparse_proof(tree.root_hash(), k, items.get(k), tree.prove(k))
    tree.update(b, None)
    del items[b]
    assert tree.root_hash() == reference_root(items)


@settings(max_examples=40)
@given(
    ops=st.lists(
        st.tuples(st.integers(0, 24), st.one_of(st.none(), st.integers(0, 3))),
        max_size=40,
    ),
    seed=st.integers(0, 2**32 - 1),
)
def test_random_updates_match_reference_and_order_does_not_matter(ops: list[tuple[int, int | None]], seed: int) -> None:
    tree = SparseMerkleTree()
    state: dict[bytes, bytes] = {}
    for i, v in ops:
        vh = None if v is None else value(v)
        tree.update(key(i), vh)
        if vh is None:
            state.pop(key(i), None)
        else:
            state[key(i)] = vh
    assert tree.root_hash() == reference_root(state)
    shuffled = list(state.items())
    random.Random(seed).shuffle(shuffled)
    other = SparseMerkleTree()
    other.update_many(shuffled)
    assert other.root_hash() == tree.root_hash()
    for i in range(25):
        verify_sparse_proof(tree.root_hash(), key(i), state.get(key(i)), tree.prove(key(i)))


# --- storage for an asynchronous caller ---


def populated(n: int = 200) -> SparseMerkleTree:
    tree = SparseMerkleTree()
    for i in range(n):
        tree.update(key(i), value(i))
    return tree


def test_store_backed_tree_matches_in_memory_tree() -> None:
    memory = populated()
    store = dict(memory.nodes())  # what the ledger's state holds
    keys = [key(i) for i in range(150, 260)]
    fetched: dict[NodeId, bytes | None] = {}
    rounds = 0
    while need := missing_node_ids(keys, fetched):
        rounds += 1
        fetched.update({node_id: store.get(node_id) for node_id in need})
    assert rounds < 40 and len(fetched) < 20 * len(keys)
    backed = SparseMerkleTree(fetched, strict=True)
    assert backed.root_hash() == memory.root_hash()
    for k in keys:
        assert backed.get(k) == memory.get(k)
        assert backed.prove(k) == memory.prove(k)
    for i, k in enumerate(keys):
        new = None if i % 3 == 0 else value(1000 + i)
        assert backed.update(k, new).root_hash == memory.update(k, new).root_hash
    for node_id, raw in backed.writes.items():
        if raw is None:
            store.pop(node_id, None)
        else:
            store[node_id] = raw
    assert store == memory.nodes()
    assert SparseMerkleTree(store).root_hash() == memory.root_hash()


def test_full_path_prefetch_is_enough() -> None:
    memory = populated(50)
    store = memory.nodes()
    keys = [key(3), key(77)]
    ids = node_ids_for(keys)
    assert len(ids) == 2 * (DEPTH + 1) - 1  # the root is shared
    fetched = {node_id: store.get(node_id) for node_id in ids}
    backed = SparseMerkleTree(fetched, strict=True)
    backed.update(key(77), value(77))
    memory.update(key(77), value(77))
    assert backed.root_hash() == memory.root_hash()
    assert backed.prove(key(3)) == memory.prove(key(3))


def test_strict_tree_refuses_to_guess_a_missing_node() -> None:
    store = populated(20).nodes()
    with pytest.raises(MissingNodeError) as exc:
        SparseMerkleTree({}, strict=True).get(key(1))
    assert exc.value.node_id == NodeId(0, b"")
    # Non-strict over an incomplete store would silently see an empty tree: strict is for prefetched dicts.
    assert SparseMerkleTree({}).root_hash() == default_hashes()[0] != SparseMerkleTree(store).root_hash()


def test_fabric_empty_bytes_means_absent() -> None:
    fetched: dict[NodeId, bytes | None] = {node_id: b"" for node_id in node_ids_for([key(1)])}
    tree = SparseMerkleTree(fetched, strict=True)
    writes = tree.update(key(1), value(1))
    assert writes == {NodeId(0, b""): b"\x00" + key(1) + value(1)}


def test_corrupt_store_record_is_a_format_error() -> None:
    k = key(2)
    flipped = bytes([k[0] ^ 0x80]) + k[1:]  # leaves the root on the other side than k
    root = NodeId(0, b"")
    children = (k, bytes(32)) if not flipped[0] & 0x80 else (bytes(32), k)  # flipped's side non-empty
    cases = [
        ({root: b"\x02" + bytes(64)}, k),  # unknown kind
        ({root: b"\x01" + bytes(10)}, k),  # short record
        ({root: b"\x01" + b"".join(children), NodeId.of(flipped, 1): b"\x00" + k + value(2)}, flipped),
        ({NodeId.of(k, d): b"\x01" + k + k for d in range(DEPTH + 1)}, k),  # internal node at leaf depth
    ]
    for store, looked_up in cases:
        with pytest.raises(FormatError, match="corrupt sparse Merkle tree node"):
            SparseMerkleTree(store).get(looked_up)


# --- node ids ---


def test_node_id_string_round_trip() -> None:
    for depth in (0, 1, 7, 8, 9, 255, 256):
        node_id = NodeId.of(key(5), depth)
        assert NodeId.parse(str(node_id)) == node_id
    assert str(NodeId(0, b"")) == "0:"
    assert str(NodeId.of(b"\xff" * 32, 3)) == "3:e0"


@pytest.mark.parametrize("text", ["", "0", "01:", "3:ff", "3:E0", "3:e", "257:" + "00" * 33, "x:00", "-1:", 5])
def test_node_id_parse_is_strict(text: object) -> None:
    with pytest.raises(FormatError):
        NodeId.parse(text)  # type: ignore[arg-type]


# --- proof encoding and mutations ---


def test_proof_dict_round_trip_is_canonical_json() -> None:
    tree = populated(64)
    for i in (1, 500):
        proof = tree.prove(key(i))
        data = canonical.encode(proof.to_dict())
        assert SparseProof.from_dict(canonical.decode(data)) == proof
        assert proof.sibling_depths() == sorted(proof.sibling_depths())


TREE = populated(64)
ROOT = TREE.root_hash()


@pytest.mark.parametrize("i", [3, 9, 100])  # members and non-members
def test_mutated_sparse_proofs_never_verify(i: int) -> None:
    k = key(i)
    v = TREE.get(k)
    proof = TREE.prove(k)
    assert proof.siblings, "a 64-key tree always has non-default siblings"
    depths = proof.sibling_depths()
    for j, sibling in enumerate(proof.siblings):
        for flip in (0, 131, 255):
            bad = bytearray(sibling)
            bad[flip // 8] ^= 0x80 >> (flip % 8)
            siblings = (*proof.siblings[:j], bytes(bad), *proof.siblings[j + 1 :])
            with pytest.raises(RootMismatchError):
                verify_sparse_proof(ROOT, k, v, SparseProof(proof.bitmap, siblings))
    bits = int.from_bytes(proof.bitmap, "big")
    moved = (bits ^ (1 << (DEPTH - depths[0]))) | (1 << (DEPTH - depths[0] - 1))
    if moved.bit_count() == len(proof.siblings):  # same count, sibling claimed one level lower
        with pytest.raises(RootMismatchError):
            verify_sparse_proof(ROOT, k, v, SparseProof(moved.to_bytes(32, "big"), proof.siblings))
    with pytest.raises(ProofFormatError):  # truncated
        SparseProof(proof.bitmap, proof.siblings[:-1])
    with pytest.raises(ProofFormatError):  # default sibling listed explicitly
        extra = next(d for d in range(1, DEPTH + 1) if d not in depths)
        full = bits | (1 << (DEPTH - extra))
        listed = dict(zip(depths, proof.siblings, strict=True)) | {extra: default_hashes()[extra]}
        padded = SparseProof(full.to_bytes(32, "big"), tuple(listed[d] for d in sorted(listed)))
        verify_sparse_proof(ROOT, k, v, padded)
    flipped_root = bytes([ROOT[0] ^ 1]) + ROOT[1:]
    with pytest.raises(RootMismatchError):
        verify_sparse_proof(flipped_root, k, v, proof)


def test_proof_of_another_tree_state_fails() -> None:
    """A revoked license cannot be shown as never changed with a proof from before the revocation."""
    tree = populated(10)
    before = tree.prove(key(42))
    tree.update(key(42), value(42))
    with pytest.raises(RootMismatchError):
        verify_sparse_proof(tree.root_hash(), key(42), None, before)
    verify_sparse_proof(tree.root_hash(), key(42), value(42), tree.prove(key(42)))


GOOD = TREE.prove(key(3)).to_dict()


@pytest.mark.parametrize(
    "bad",
    [
        "proof",
        {**GOOD, "x": 1},
        {**GOOD, "hash": "sha256"},
        {**GOOD, "bitmap": GOOD["bitmap"][:-2]},
        {**GOOD, "bitmap": GOOD["bitmap"].upper() if GOOD["bitmap"].upper() != GOOD["bitmap"] else "G" * 64},
        {**GOOD, "bitmap": "ff" * 32},
        {**GOOD, "siblings": GOOD["siblings"][:-1]},
        {**GOOD, "siblings": [*GOOD["siblings"][:-1], GOOD["siblings"][-1][:-2]]},
        {**GOOD, "siblings": "00"},
    ],
)
def test_sparse_proof_from_dict_is_strict(bad: object) -> None:
    with pytest.raises(ProofFormatError):
        SparseProof.from_dict(bad)  # type: ignore[arg-type]


def test_misuse() -> None:
    tree = SparseMerkleTree()
    with pytest.raises(ValueError):
        tree.update(b"short", value(1))
    with pytest.raises(ValueError):
        tree.update(key(1), b"short")
    with pytest.raises(ValueError):
        verify_sparse_proof(ROOT, b"short", None, TREE.prove(key(1)))
    with pytest.raises(ProofFormatError):
        verify_sparse_proof(ROOT[:5], key(1), None, TREE.prove(key(1)))
    with pytest.raises(ProofFormatError):
        verify_sparse_proof(ROOT, key(3), b"short", TREE.prove(key(3)))
    with pytest.raises(ValueError):
        NodeId(3, b"\xff")
    with pytest.raises(ValueError):
        SparseMerkleTree({}).nodes()


# --- the verifier's shortcuts against the plain 256-level walk ---


def reference_proof_root(key_: bytes, value_hash: bytes | None, proof: SparseProof, h: HashFunction = SM3) -> bytes:
    """Every level hashed (no skipped runs), the depths read bit by bit: what the proof's root must be."""
    defaults = default_hashes(h)
    bits = int.from_bytes(proof.bitmap, "big")
    depths = [i + 1 for i in range(DEPTH) if (bits >> (DEPTH - 1 - i)) & 1]
    listed = dict(zip(depths, proof.siblings, strict=True))
    x = defaults[DEPTH] if value_hash is None else h.digest(b"\x00" + key_ + value_hash)
    for depth in range(DEPTH, 0, -1):
        sibling = listed.get(depth, defaults[depth])
        x = h.digest(b"\x01" + sibling + x) if bit(key_, depth - 1) else h.digest(b"\x01" + x + sibling)
    return x


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**256 - 1), st.integers(0, 40))
def test_sibling_depths_are_the_set_bits_root_side_first(bits: int, extra: int) -> None:
    count = bits.bit_count()
    proof = SparseProof(bits.to_bytes(32, "big"), tuple(bytes([extra]) * 32 for _ in range(count)))
    assert proof.sibling_depths() == [i + 1 for i in range(DEPTH) if (bits >> (DEPTH - 1 - i)) & 1]


@pytest.mark.parametrize("h", [SM3, SHA256])
def test_verification_agrees_with_hashing_every_level(h: HashFunction) -> None:
    """Members, non-members, leaves deep and shallow, and proofs with a sibling moved, dropped or altered: the
    shortcut verification accepts exactly when the every-level root equals the tree's root."""
    rng = random.Random(7)
    tree = SparseMerkleTree(h=h)
    tree.update_many((key(i), value(i)) for i in range(0, 200, 3))
    tree.update(b"\x00" * 31 + b"\x01", value(1))  # two keys that share 255 bits: siblings at the bottom
    tree.update(b"\x00" * 32, value(2))
    root = tree.root_hash()
    keys = [key(i) for i in range(40)] + [b"\x00" * 32, b"\x00" * 31 + b"\x01", b"\x00" * 31 + b"\x02"]
    for k in keys:
        v = tree.get(k)
        proof = tree.prove(k)
        assert reference_proof_root(k, v, proof, h) == root
        verify_sparse_proof(root, k, v, proof, h)
        bits = int.from_bytes(proof.bitmap, "big")
        variants = [(v, proof), (None if v is not None else value(99), proof)]
        if proof.siblings:
            moved = bits ^ (1 << (DEPTH - proof.sibling_depths()[-1])) | (1 << rng.randrange(DEPTH))
            if moved.bit_count() == len(proof.siblings):
                variants.append((v, SparseProof(moved.to_bytes(32, "big"), proof.siblings)))
            j = rng.randrange(len(proof.siblings))
            bad = bytearray(proof.siblings[j])
            bad[rng.randrange(len(bad))] ^= 1 << rng.randrange(8)
            variants.append((v, SparseProof(proof.bitmap, (*proof.siblings[:j], bytes(bad), *proof.siblings[j + 1 :]))))
        for value_hash, candidate in variants:
            expected = reference_proof_root(k, value_hash, candidate, h)
            if expected == root:
                verify_sparse_proof(root, k, value_hash, candidate, h)
            else:
                with pytest.raises(RootMismatchError) as info:
                    verify_sparse_proof(root, k, value_hash, candidate, h)
                assert info.value.calculated_root == expected
