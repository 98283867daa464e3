"""Merkle tree hashes, proofs and their verification for licledger's append-only log.

Implements RFC 9162 §2.1 (identical to RFC 6962 §2.1) with the hash function as a parameter (SM3, GM/T
0004-2012, by default; SHA-256 gives byte-for-byte RFC 6962 / Certificate Transparency results). I/O-free.

The rules, before any code (RFC 9162 §2.1.1):

* ``MTH({}) = HASH()``, ``MTH({d0}) = HASH(0x00 || d0)``, and for ``n > 1`` with ``k`` the largest power of
  two smaller than ``n``: ``MTH(D[n]) = HASH(0x01 || MTH(D[0:k]) || MTH(D[k:n]))``. The ``0x00`` / ``0x01``
  prefixes separate leaf from interior hashes, so an interior node can never be presented as a leaf (the
  second-preimage attack on unprefixed Merkle trees). This is why ``merkletools`` (no domain separation) is
  not used.
* Everything below works on *leaf hashes* (``leaf_hash(data)``), not on leaf data.
* An inclusion proof ``PATH(m, D[n])`` (§2.1.3.1) lists sibling hashes from the leaf upwards; a consistency
  proof ``PROOF(m, D[n])`` (§2.1.4.1) lists the hashes needed to rebuild both ``MTH(D[m])`` and ``MTH(D[n])``.
* Verification follows transparency-dev/merkle ``proof/verify.go``: a proof splits into an *inner* part, below
  the level where the paths to ``leaf_index`` and ``tree_size - 1`` diverge (siblings on either side), and a
  *border* part above it (left siblings along the tree's right border only). The expected proof length follows
  from the sizes alone, so a proof of the wrong length is refused before any hashing.
* A consistency proof from ``size1 = 0`` is not defined (RFC 9162 §2.1.4 requires ``0 < m``) and is refused,
  as in transparency-dev: a client with no trusted tree has nothing to be consistent with and simply trusts
  the new checkpoint's signature. ``size1 = size2`` needs an empty proof and ``root1 = root2``.

Errors: verifiers raise :class:`~core.errors.ProofFormatError` when the inputs have the wrong shape (hash
length, proof length for the sizes, ``leaf_index >= tree_size``, ``size1 > size2``, negative sizes) and
:class:`~core.errors.RootMismatchError` (expected and calculated roots as evidence) when a well-formed proof
does not lead to the expected root. Generators (``inclusion_proof`` ...) raise ``ValueError``/``TypeError`` on
caller misuse. Wrong Python types anywhere raise ``TypeError``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from core.canonical import MAX_SAFE_INTEGER
from core.errors import FormatError, ProofFormatError, RootMismatchError
from core.hashing import SM3, HashFunction
from core.native import NATIVE

__all__ = [
    "CompactRange",
    "MerkleTree",
    "consistency_proof",
    "empty_root",
    "inclusion_proof",
    "leaf_hash",
    "node_hash",
    "parse_hex_hash",
    "root_from_consistency_proof",
    "root_from_inclusion_proof",
    "root_hash",
    "verify_consistency",
    "verify_inclusion",
]

LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"


# --- hashing (RFC 9162 §2.1.1) ---


def leaf_hash(data: bytes, h: HashFunction = SM3) -> bytes:
    """``HASH(0x00 || data)``: the hash of one log entry (RFC 9162 §2.1.1)."""
    return h.digest(LEAF_PREFIX + bytes(data))


def node_hash(left: bytes, right: bytes, h: HashFunction = SM3) -> bytes:
    """``HASH(0x01 || left || right)``: an interior node (RFC 9162 §2.1.1). Lengths are not checked here."""
    return h.digest(NODE_PREFIX + left + right)


def empty_root(h: HashFunction = SM3) -> bytes:
    """``MTH({}) = HASH()``: the root of the empty tree (RFC 9162 §2.1.1)."""
    return h.digest(b"")


def root_hash(leaf_hashes: Sequence[bytes], h: HashFunction = SM3) -> bytes:
    """``MTH(D[n])`` over already-hashed leaves (RFC 9162 §2.1.1), computed level by level.

    Pairing neighbours and carrying an odd last node up unchanged builds exactly the RFC tree (the split at
    the largest power of two below ``n`` puts every incomplete subtree on the right border).
    """
    level = [_leaf_arg(x, h, i) for i, x in enumerate(leaf_hashes)]
    if not level:
        return empty_root(h)
    digest = h.digest
    while len(level) > 1:
        nxt = [digest(NODE_PREFIX + level[i] + level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0]


# --- proof generation ---


def inclusion_proof(
    leaf_hashes: Sequence[bytes], leaf_index: int, tree_size: int, h: HashFunction = SM3
) -> list[bytes]:
    """``PATH(leaf_index, D[tree_size])`` (RFC 9162 §2.1.3.1) over ``leaf_hashes[:tree_size]``.

    Builds the tree once (``O(tree_size)`` hashes); use :class:`MerkleTree` for many proofs.
    """
    _check_int(leaf_index, "leaf_index")
    _check_int(tree_size, "tree_size")
    if tree_size > len(leaf_hashes):
        raise ValueError(f"tree_size {tree_size} exceeds the {len(leaf_hashes)} leaf hashes given")
    if not 0 <= leaf_index < tree_size:
        raise ValueError(f"leaf_index {leaf_index} is not in [0, tree_size {tree_size})")
    return MerkleTree(leaf_hashes[:tree_size], h).inclusion_proof(leaf_index)


def consistency_proof(leaf_hashes: Sequence[bytes], size1: int, size2: int, h: HashFunction = SM3) -> list[bytes]:
    """``PROOF(size1, D[size2])`` (RFC 9162 §2.1.4.1) over ``leaf_hashes[:size2]``; needs ``0 < size1 <=
    size2``."""
    _check_int(size1, "size1")
    _check_int(size2, "size2")
    if size2 > len(leaf_hashes):
        raise ValueError(f"size2 {size2} exceeds the {len(leaf_hashes)} leaf hashes given")
    _check_consistency_sizes(size1, size2)
    return MerkleTree(leaf_hashes[:size2], h).consistency_proof(size1)


# --- verification (transparency-dev/merkle proof/verify.go; RFC 9162 §2.1.3.2, §2.1.4.2) ---


def root_from_inclusion_proof(
    leaf_index: int, tree_size: int, leaf_hash: bytes, proof: Sequence[bytes], h: HashFunction = SM3
) -> bytes:
    """The root that ``proof`` leads to from ``leaf_hash`` at ``leaf_index`` in a tree of ``tree_size``.

    Raises :class:`ProofFormatError` if ``leaf_index >= tree_size``, a hash has the wrong length, or the proof
    does not have exactly the number of hashes the sizes require.
    """
    if h is SM3 and NATIVE is not None:  # same root, or None: then the code below decides (and says why)
        root = NATIVE.inclusion_root(leaf_index, tree_size, leaf_hash, proof)
        if root is not None:
            return root
    _check_untrusted_int(leaf_index, "leaf_index")
    _check_untrusted_int(tree_size, "tree_size")
    if leaf_index >= tree_size:
        raise ProofFormatError(f"leaf_index {leaf_index} is beyond tree_size {tree_size}")
    _check_hash(leaf_hash, h, "leaf hash")
    _check_proof(proof, h)
    inner, border = _decomp_incl_proof(leaf_index, tree_size)
    if len(proof) != inner + border:
        raise ProofFormatError(
            f"inclusion proof for leaf_index {leaf_index} in tree_size {tree_size} must have "
            f"{inner + border} hashes, got {len(proof)}"
        )
    res = _chain_inner(h, bytes(leaf_hash), proof[:inner], leaf_index)
    return _chain_border_right(h, res, proof[inner:])


def verify_inclusion(
    leaf_index: int,
    tree_size: int,
    leaf_hash: bytes,
    proof: Sequence[bytes],
    root_hash: bytes,
    h: HashFunction = SM3,
) -> None:
    """Check that ``leaf_hash`` is at ``leaf_index`` in the tree of ``tree_size`` with ``root_hash``
    (§2.1.3.2).

    Returns ``None`` on success; raises :class:`ProofFormatError` or :class:`RootMismatchError`.
    """
    _check_hash(root_hash, h, "root hash")
    calculated = root_from_inclusion_proof(leaf_index, tree_size, leaf_hash, proof, h)
    if calculated != root_hash:
        raise RootMismatchError(bytes(root_hash), calculated)


def root_from_consistency_proof(
    size1: int, size2: int, proof: Sequence[bytes], root1: bytes, h: HashFunction = SM3
) -> bytes:
    """The ``size2`` root that ``proof`` leads to from the tree of ``size1`` with ``root1`` (RFC 9162
    §2.1.4.2).

    Also checks that the proof's nodes rebuild ``root1`` and raises :class:`RootMismatchError`
    (``what="root1"``) if they do not. Raises :class:`ProofFormatError` on wrong shapes.
    """
    _check_untrusted_int(size1, "size1")
    _check_untrusted_int(size2, "size2")
    if size1 > size2:
        raise ProofFormatError(f"size1 {size1} is larger than size2 {size2}")
    if size1 == 0:
        raise ProofFormatError("a consistency proof from an empty tree (size1 = 0) is not defined")
    _check_hash(root1, h, "root1")
    _check_proof(proof, h)
    if size1 == size2:
        if proof:
            raise ProofFormatError(f"size1 = size2 = {size1}, so the proof must be empty, got {len(proof)} hashes")
        return bytes(root1)
    if not proof:
        raise ProofFormatError(f"empty consistency proof for size1 {size1} < size2 {size2}")

    # Split where the paths to leaves size1 - 1 and size2 - 1 diverge (verify.go
    # rootFromSubtreeConsistencyProof with start = 0). The proof starts at level `shift`, the height of the
    # rightmost perfect subtree of [0, size1).
    fork_level, border = _decomp_incl_proof(size1 - 1, size2)
    shift = _trailing_zeros(size1)
    inner = fork_level - shift
    # If [0, size1) is itself perfect, its root is root1 and is not repeated in the proof.
    seed_is_root1 = size1 == 1 << shift
    start = 0 if seed_is_root1 else 1
    if len(proof) != start + inner + border:
        raise ProofFormatError(
            f"consistency proof from size1 {size1} to size2 {size2} must have {start + inner + border} "
            f"hashes, got {len(proof)}"
        )
    seed = bytes(root1) if seed_is_root1 else bytes(proof[0])
    rest = proof[start:]
    mask = (size1 - 1) >> shift
    if not seed_is_root1:
        # Only left siblings (mask bit 1) belong to the old tree: they must rebuild root1.
        hash1 = _chain_inner_right(h, seed, rest[:inner], mask)
        hash1 = _chain_border_right(h, hash1, rest[inner:])
        if hash1 != root1:
            raise RootMismatchError(bytes(root1), hash1, what="root1")
    hash2 = _chain_inner(h, seed, rest[:inner], mask)
    return _chain_border_right(h, hash2, rest[inner:])


def verify_consistency(
    size1: int, size2: int, proof: Sequence[bytes], root1: bytes, root2: bytes, h: HashFunction = SM3
) -> None:
    """Check that the tree of ``size2`` with ``root2`` extends the tree of ``size1`` with ``root1``
    (§2.1.4.2).

    Returns ``None`` on success; raises :class:`ProofFormatError` or :class:`RootMismatchError` (``what`` is
    ``"root1"`` if the proof does not rebuild the old root, ``"root2"`` for the new one).
    """
    _check_hash(root2, h, "root2")
    calculated = root_from_consistency_proof(size1, size2, proof, root1, h)
    if calculated != root2:
        raise RootMismatchError(bytes(root2), calculated, what="root2")


def _decomp_incl_proof(index: int, size: int) -> tuple[int, int]:
    """(inner, border) proof lengths for ``index`` in a tree of ``size`` (verify.go ``decompInclProof``)."""
    inner = (index ^ (size - 1)).bit_length()
    border = (index >> inner).bit_count()
    return inner, border


def _trailing_zeros(x: int) -> int:
    return (x & -x).bit_length() - 1


def _chain_inner(h: HashFunction, seed: bytes, proof: Sequence[bytes], index: int) -> bytes:
    digest = h.digest
    for i, p in enumerate(proof):
        seed = digest(NODE_PREFIX + seed + p) if (index >> i) & 1 == 0 else digest(NODE_PREFIX + p + seed)
    return seed


def _chain_inner_right(h: HashFunction, seed: bytes, proof: Sequence[bytes], index: int) -> bytes:
    digest = h.digest
    for i, p in enumerate(proof):
        if (index >> i) & 1:
            seed = digest(NODE_PREFIX + p + seed)
    return seed


def _chain_border_right(h: HashFunction, seed: bytes, proof: Sequence[bytes]) -> bytes:
    digest = h.digest
    for p in proof:
        seed = digest(NODE_PREFIX + p + seed)
    return seed


# --- argument checks ---


def _check_int(value: object, what: str) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{what} must be an int, not {type(value).__name__}")
    if value < 0:
        raise ValueError(f"{what} must not be negative, got {value}")


def _check_untrusted_int(value: object, what: str) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{what} must be an int, not {type(value).__name__}")
    if value < 0:
        raise ProofFormatError(f"{what} must not be negative, got {value}")


def _check_hash(value: object, h: HashFunction, what: str) -> None:
    if not isinstance(value, bytes | bytearray):
        raise TypeError(f"{what} must be bytes, not {type(value).__name__}")
    if len(value) != h.digest_size:
        raise ProofFormatError(f"{what} is {len(value)} bytes; {h.name} hashes are {h.digest_size} bytes")


def _check_proof(proof: Sequence[bytes], h: HashFunction) -> None:
    if isinstance(proof, bytes | bytearray | str):
        raise TypeError("proof must be a sequence of hashes, not a single bytes or str value")
    for i, p in enumerate(proof):
        _check_hash(p, h, f"proof[{i}]")


def _leaf_arg(value: object, h: HashFunction, index: int) -> bytes:
    """A leaf hash given by the caller (trusted): wrong type -> TypeError, wrong length -> ValueError."""
    if not isinstance(value, bytes | bytearray):
        raise TypeError(f"leaf hash {index} must be bytes, not {type(value).__name__}")
    if len(value) != h.digest_size:
        raise ValueError(f"leaf hash {index} is {len(value)} bytes; {h.name} hashes are {h.digest_size} bytes")
    return bytes(value)


def _check_consistency_sizes(size1: int, size2: int) -> None:
    if size1 == 0:
        raise ValueError("a consistency proof from an empty tree (size1 = 0) is not defined (RFC 9162 §2.1.4)")
    if size1 > size2:
        raise ValueError(f"size1 {size1} is larger than size2 {size2}")


# --- in-memory log ---


class MerkleTree:
    """An in-memory append-only log that serves roots and proofs for its current and every past size.

    Storage is one flat ``bytearray`` per level holding every *complete* (perfect) subtree hash, as in
    transparency-dev's ``compact`` node layout: level ``l`` holds ``size >> l`` hashes. A node on the right
    border of a past tree that is not complete (an "ephemeral" node) is rebuilt from at most ``log2(size)``
    complete ones, so a root or proof for any size costs ``O(log n)`` hashes (``O(log^2 n)`` for consistency
    proofs). Appending costs amortised two hashes per leaf.
    """

    __slots__ = ("_ds", "_h", "_levels")

    def __init__(self, leaf_hashes: Iterable[bytes] = (), h: HashFunction = SM3) -> None:
        self._h = h
        self._ds = h.digest_size
        self._levels: list[bytearray] = [bytearray()]
        self.extend(leaf_hashes)

    @property
    def hash_function(self) -> HashFunction:
        return self._h

    @property
    def size(self) -> int:
        """The number of leaves: the current ``tree_size``."""
        return len(self._levels[0]) // self._ds

    def __len__(self) -> int:
        return self.size

    def append(self, leaf_hash: bytes) -> int:
        """Append one leaf hash; return its ``leaf_index``."""
        index = self.size
        self.extend((leaf_hash,))
        return index

    def extend(self, leaf_hashes: Iterable[bytes]) -> None:
        """Append many leaf hashes, hashing the new interior nodes level by level."""
        level0 = self._levels[0]
        before = len(level0)
        try:
            for i, value in enumerate(leaf_hashes):
                level0 += _leaf_arg(value, self._h, before // self._ds + i)
        except BaseException:
            del level0[before:]
            raise
        self._hash_up()

    def _hash_up(self) -> None:
        digest, ds, levels = self._h.digest, self._ds, self._levels
        two = 2 * ds
        level = 0
        while True:
            child = levels[level]
            pairs = len(child) // two
            if pairs == 0:
                return
            if level + 1 == len(levels):
                levels.append(bytearray())
            parent = levels[level + 1]
            have = len(parent) // ds
            if have == pairs:
                return
            parent += b"".join([digest(NODE_PREFIX + child[i * two : (i + 1) * two]) for i in range(have, pairs)])
            level += 1

    def leaf_hash(self, leaf_index: int) -> bytes:
        """The leaf hash at ``leaf_index``."""
        _check_int(leaf_index, "leaf_index")
        if leaf_index >= self.size:
            raise ValueError(f"leaf_index {leaf_index} is not in [0, size {self.size})")
        return self._node(0, leaf_index)

    def _node(self, level: int, index: int) -> bytes:
        ds = self._ds
        return bytes(self._levels[level][index * ds : (index + 1) * ds])

    def _tree_size(self, tree_size: int | None) -> int:
        if tree_size is None:
            return self.size
        _check_int(tree_size, "tree_size")
        if tree_size > self.size:
            raise ValueError(f"tree_size {tree_size} exceeds the log's size {self.size}")
        return tree_size

    def _range_nodes(self, start: int, end: int) -> list[bytes]:
        """The complete subtrees covering ``[start, end)``, largest first; ``start`` must be aligned to
        them."""
        nodes = []
        pos, width = start, end - start
        for level in range(width.bit_length() - 1, -1, -1):
            if (width >> level) & 1:
                nodes.append(self._node(level, pos >> level))
                pos += 1 << level
        return nodes

    def _range_hash(self, start: int, end: int) -> bytes:
        """``MTH(D[start:end])`` for a node of some tree of this log (``start`` a multiple of its width)."""
        nodes = self._range_nodes(start, end)
        res = nodes[-1]
        for left in reversed(nodes[:-1]):
            res = node_hash(left, res, self._h)
        return res

    def root_hash(self, tree_size: int | None = None) -> bytes:
        """``MTH(D[tree_size])``; the current root if ``tree_size`` is None."""
        n = self._tree_size(tree_size)
        return self._range_hash(0, n) if n else empty_root(self._h)

    def inclusion_proof(self, leaf_index: int, tree_size: int | None = None) -> list[bytes]:
        """``PATH(leaf_index, D[tree_size])`` (RFC 9162 §2.1.3.1), hashes from the leaf upwards."""
        n = self._tree_size(tree_size)
        _check_int(leaf_index, "leaf_index")
        if leaf_index >= n:
            raise ValueError(f"leaf_index {leaf_index} is not in [0, tree_size {n})")
        proof = []
        for level in range((n - 1).bit_length()):
            start = ((leaf_index >> level) ^ 1) << level  # the sibling at this level
            if start < n:  # otherwise the node is carried up unchanged: no sibling
                proof.append(self._range_hash(start, min(start + (1 << level), n)))
        return proof

    def consistency_proof(self, size1: int, size2: int | None = None) -> list[bytes]:
        """``PROOF(size1, D[size2])`` (RFC 9162 §2.1.4.1); needs ``0 < size1 <= size2``."""
        n = self._tree_size(size2)
        _check_int(size1, "size1")
        _check_consistency_sizes(size1, n)
        # SUBPROOF(m, D[offset:offset+n], b), unrolled: each step appends one hash *after* the recursive part.
        m, offset, complete = size1, 0, True
        tail: list[bytes] = []
        while m != n:
            k = 1 << ((n - 1).bit_length() - 1)  # largest power of two < n
            if m <= k:
                tail.append(self._range_hash(offset + k, offset + n))
                n = k
            else:
                tail.append(self._range_hash(offset, offset + k))
                offset, m, n, complete = offset + k, m - k, n - k, False
        head = [] if complete else [self._range_hash(offset, offset + m)]
        return head + tail[::-1]

    def compact_range(self, tree_size: int | None = None) -> CompactRange:
        """The :class:`CompactRange` ``[0, tree_size)`` of this log."""
        n = self._tree_size(tree_size)
        return CompactRange._from_parts(n, self._range_nodes(0, n), self._h)


# --- compact range ---


class CompactRange:
    """The ``O(log n)`` state of a growing log: the compact range ``[0, size)`` (transparency-dev
    ``compact``).

    ``hashes`` are the roots of the perfect subtrees that ``[0, size)`` decomposes into, largest (leftmost)
    first, one per set bit of ``size``. Enough to append leaves and compute ``MTH(D[size])`` (RFC 9162 §2.1.1)
    without storing the log. ``to_dict``/``from_dict`` give a JSON-safe form for ledger state.
    """

    __slots__ = ("_h", "_hashes", "_size")

    def __init__(self, h: HashFunction = SM3) -> None:
        self._h = h
        self._size = 0
        self._hashes: list[bytes] = []

    @classmethod
    def _from_parts(cls, size: int, hashes: list[bytes], h: HashFunction) -> CompactRange:
        cr = cls(h)
        cr._size, cr._hashes = size, hashes
        return cr

    @property
    def size(self) -> int:
        return self._size

    @property
    def hashes(self) -> tuple[bytes, ...]:
        return tuple(self._hashes)

    def append(self, leaf_hash: bytes) -> None:
        """Add one leaf hash, merging equal-sized subtrees (one merge per trailing zero of the new size)."""
        hashes, digest = self._hashes, self._h.digest
        hashes.append(_leaf_arg(leaf_hash, self._h, self._size))
        self._size += 1
        s = self._size
        while s & 1 == 0:
            right = hashes.pop()
            hashes[-1] = digest(NODE_PREFIX + hashes[-1] + right)
            s >>= 1

    def extend(self, leaf_hashes: Iterable[bytes]) -> None:
        for value in leaf_hashes:
            self.append(value)

    def root_hash(self) -> bytes:
        """``MTH(D[size])``: fold the subtree roots right to left."""
        if not self._hashes:
            return empty_root(self._h)
        res = self._hashes[-1]
        for left in reversed(self._hashes[:-1]):
            res = node_hash(left, res, self._h)
        return res

    def copy(self) -> CompactRange:
        return CompactRange._from_parts(self._size, list(self._hashes), self._h)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CompactRange):
            return NotImplemented
        return (self._h.name, self._size, self._hashes) == (other._h.name, other._size, other._hashes)

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return f"CompactRange(hash={self._h.name!r}, size={self._size}, root={self.root_hash().hex()})"

    def to_dict(self) -> dict[str, Any]:
        """``{"hash": name, "size": n, "hashes": [lowercase hex, ...]}``, ready for
        ``core.canonical.encode``."""
        return {"hash": self._h.name, "size": self._size, "hashes": [x.hex() for x in self._hashes]}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], h: HashFunction = SM3) -> CompactRange:
        """Parse :meth:`to_dict` output strictly; raises :class:`~core.errors.FormatError` naming the
        problem."""
        if not isinstance(d, Mapping):
            raise FormatError(f"compact range must be an object, not {type(d).__name__}")
        if set(d) != {"hash", "size", "hashes"}:
            raise FormatError(f"compact range must have exactly the keys hash, hashes, size; got {sorted(d)}")
        if d["hash"] != h.name:
            raise FormatError(f"compact range is for hash {d['hash']!r}, expected {h.name!r}")
        size = d["size"]
        if not isinstance(size, int) or isinstance(size, bool) or not 0 <= size <= MAX_SAFE_INTEGER:
            raise FormatError(f"compact range size must be an integer in [0, 2^53 - 1], got {size!r}")
        hexes = d["hashes"]
        if not isinstance(hexes, list):
            raise FormatError("compact range hashes must be a list")
        if len(hexes) != size.bit_count():
            raise FormatError(f"compact range of size {size} needs {size.bit_count()} hashes, got {len(hexes)}")
        return cls._from_parts(size, [parse_hex_hash(x, h, f"hashes[{i}]") for i, x in enumerate(hexes)], h)


def parse_hex_hash(value: object, h: HashFunction, what: str) -> bytes:
    """Strictly parse a lowercase-hex hash of ``h.digest_size`` bytes; :class:`FormatError` otherwise."""
    if not isinstance(value, str):
        raise FormatError(f"{what} must be a hex string, not {type(value).__name__}")
    if len(value) != 2 * h.digest_size or value.strip("0123456789abcdef"):
        raise FormatError(f"{what} must be {2 * h.digest_size} lowercase hex digits, got {value!r}")
    return bytes.fromhex(value)
