"""A 256-level sparse Merkle tree: the ledger's status map, with membership and non-membership proofs.

Definitions (after Laurie & Kasper, "Revocation Transparency", 2012, and Dahlberg, Pulls & Peeters, "Efficient
Sparse Merkle Trees: Caching Strategies and Secure (Non-)Membership Proofs", NordSec 2016, IACR ePrint
2016/683), with the hash function ``H`` a parameter (SM3, GM/T 0004-2012, by default):

* A key is 32 bytes (callers pass ``SM3(license_id)``); its bits, most significant bit of byte 0 first, are
  the path from the root (depth 0) to its leaf (depth 256): bit ``d`` = 0 goes left at depth ``d``.
* A leaf holding ``value_hash`` (a ``digest_size`` hash of the value) is ``H(0x00 || key || value_hash)``.
  Binding the key into the leaf means a leaf hash can never be moved to another position.
* The empty leaf is ``digest_size`` zero bytes (``EMPTY_LEAF``): a constant that no leaf or interior hash can
  equal without an SM3 preimage of zero. Interior nodes are ``H(0x01 || left || right)`` (the RFC 9162
  prefixes, so leaves and interior nodes are domain-separated). ``default_hashes(h)[d]`` is the hash of an
  empty subtree at depth ``d``, precomputed once: ``D[256] = EMPTY_LEAF``, ``D[d] = H(0x01 || D[d+1] ||
  D[d+1])``.
* The root is a function of the key -> value_hash map alone, never of insertion order or storage layout.

Proofs (:class:`SparseProof`) are compressed: a 256-bit bitmap (bit ``i``, MSB-first, set iff the sibling at
depth ``i + 1`` is not the default hash) and the non-default siblings, root side first. A proof of absence is
the same proof for ``value_hash = None`` (the leaf is ``EMPTY_LEAF``): "this key never had a status change".
Verification is canonical: a sibling listed but equal to its default hash is refused.

Storage (only non-default subtrees are stored; an implementation choice that does not change any hash). Each
stored node is keyed by its :class:`NodeId` (depth, path prefix) and is one of

* ``0x01 || left || right`` (65 bytes): an *internal* node, with the hashes of its two child subtrees;
* ``0x00 || key || value_hash`` (65 bytes): a *shortcut*: the subtree at this node holds exactly this one key,
  so the ~256 - depth nodes below it (all default but one path) are not stored.

A lookup, proof or update of a key reads only nodes on that key's own path, root first, and stops at the first
shortcut or empty child (about ``log2(n) + 2`` reads for ``n`` random keys). Deleting leaves internal nodes
with one empty child in place (they are not collapsed, which would need reads off the path); storage shape may
thus depend on history while the root never does. Fabric chaincode reads state asynchronously, so reading is
separated from computing: :func:`node_ids_for` (every node id an operation on the keys *may* read, one round)
or :func:`missing_node_ids` (the next ids to fetch given what was fetched, a few rounds, far fewer reads)
tell the caller what to prefetch; :class:`SparseMerkleTree` then runs synchronously over a ``get``-able store
and returns the writes (``None`` = delete) for the caller to apply.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from core.errors import FormatError, ProofFormatError, RootMismatchError
from core.hashing import SM3, HashFunction
from core.merkle import LEAF_PREFIX, NODE_PREFIX, parse_hex_hash
from core.native import NATIVE

__all__ = [
    "DEPTH",
    "KEY_SIZE",
    "MissingNodeError",
    "NodeId",
    "NodeStore",
    "SparseMerkleTree",
    "SparseProof",
    "Writes",
    "default_hashes",
    "missing_node_ids",
    "node_ids_for",
    "verify_sparse_proof",
]

DEPTH = 256
KEY_SIZE = DEPTH // 8
_INTERNAL = 1
_SHORTCUT = 0
_RECORD_SIZE = 1 + 2 * 32


# --- node identifiers ---


@dataclass(frozen=True, slots=True)
class NodeId:
    """A node: its ``depth`` (0 = root, 256 = leaf) and the first ``depth`` bits of the path, as bytes.

    ``prefix`` has ``ceil(depth / 8)`` bytes with the bits past ``depth`` zero. ``str(node_id)`` is a short
    state key, ``"<depth>:<prefix hex>"`` (``"0:"`` is the root); :meth:`parse` reads it back strictly.
    """

    depth: int
    prefix: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.depth, int) or not 0 <= self.depth <= DEPTH:
            raise ValueError(f"node depth must be in [0, {DEPTH}], got {self.depth!r}")
        if not isinstance(self.prefix, bytes) or len(self.prefix) != (self.depth + 7) // 8:
            raise ValueError(f"node at depth {self.depth} needs a {(self.depth + 7) // 8}-byte prefix")
        if self.depth % 8 and self.prefix[-1] & (0xFF >> (self.depth % 8)):
            raise ValueError(f"prefix {self.prefix.hex()} has bits set past depth {self.depth}")

    @classmethod
    def of(cls, key: bytes, depth: int) -> NodeId:
        """The node at ``depth`` on the path of ``key``."""
        prefix = key[: (depth + 7) // 8]
        if depth % 8:
            prefix = prefix[:-1] + bytes([prefix[-1] & (0xFF << (8 - depth % 8)) & 0xFF])
        return cls(depth, prefix)

    def __str__(self) -> str:
        return f"{self.depth}:{self.prefix.hex()}"

    @classmethod
    def parse(cls, text: str) -> NodeId:
        """Parse ``str(node_id)``; raises :class:`FormatError` on anything else."""
        if not isinstance(text, str):
            raise FormatError(f"node id must be a string, not {type(text).__name__}")
        depth_text, sep, hex_text = text.partition(":")
        if not sep or not depth_text.isdigit() or (len(depth_text) > 1 and depth_text[0] == "0"):
            raise FormatError(f"node id {text!r} is not '<depth>:<hex>'")
        if hex_text.strip("0123456789abcdef") or len(hex_text) % 2:
            raise FormatError(f"node id {text!r} has a prefix that is not lowercase hex")
        try:
            node_id = cls(int(depth_text), bytes.fromhex(hex_text))
        except ValueError as exc:
            raise FormatError(f"node id {text!r}: {exc}") from None
        return node_id


ROOT_ID = NodeId(0, b"")


# --- hashing ---

_DEFAULTS: dict[HashFunction, tuple[bytes, ...]] = {}


def default_hashes(h: HashFunction = SM3) -> tuple[bytes, ...]:
    """``D[0..256]``: the hash of an empty subtree at each depth (``D[256]`` is the empty leaf)."""
    cached = _DEFAULTS.get(h)
    if cached is None:
        level = [b"\x00" * h.digest_size]
        for _ in range(DEPTH):
            level.append(h.digest(NODE_PREFIX + level[-1] + level[-1]))
        cached = _DEFAULTS[h] = tuple(reversed(level))
    return cached


def _bit(key: bytes, depth: int) -> int:
    return (key[depth >> 3] >> (7 - (depth & 7))) & 1


def _common_prefix_bits(a: bytes, b: bytes) -> int:
    x = int.from_bytes(a, "big") ^ int.from_bytes(b, "big")
    return DEPTH - x.bit_length()


def _shortcut_hash(h: HashFunction, key: bytes, value_hash: bytes, depth: int) -> bytes:
    """The hash of the subtree at ``depth`` on ``key``'s path that holds only ``key`` -> ``value_hash``."""
    digest, defaults = h.digest, default_hashes(h)
    x = digest(LEAF_PREFIX + key + value_hash)
    path = int.from_bytes(key, "big")  # bit d of the key is bit 255 - d of this integer
    for d in range(DEPTH - 1, depth - 1, -1):
        if (path >> (DEPTH - 1 - d)) & 1:
            x = digest(NODE_PREFIX + defaults[d + 1] + x)
        else:
            x = digest(NODE_PREFIX + x + defaults[d + 1])
    return x


def _set_bit_depths(bits: int) -> tuple[int, ...]:
    """The depths flagged in a bitmap integer, ascending: bit ``DEPTH - d`` (counting from the least significant
    bit) flags depth ``d``. Only the set bits are visited: the highest one is the shallowest depth."""
    depths = []
    while bits:
        top = bits.bit_length()  # the highest set bit is bit top - 1, i.e. depth DEPTH + 1 - top
        depths.append(DEPTH + 1 - top)
        bits ^= 1 << (top - 1)
    return tuple(depths)


# --- proofs ---


@dataclass(frozen=True, slots=True)
class SparseProof:
    """A compressed sparse Merkle proof: ``bitmap`` (32 bytes; bit ``i`` MSB-first set iff the sibling at
    depth ``i + 1`` is non-default) and the non-default ``siblings``, ordered root side first.

    The sibling depths are read off the bitmap once, when the proof is made (only its set bits are visited), and
    kept with it: parsing and verifying a proof both need them.
    """

    bitmap: bytes
    siblings: tuple[bytes, ...]
    _depths: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.bitmap, bytes) or len(self.bitmap) != KEY_SIZE:
            raise ProofFormatError(f"sparse proof bitmap must be {KEY_SIZE} bytes")
        if not isinstance(self.siblings, tuple) or not all(isinstance(s, bytes) for s in self.siblings):
            raise TypeError("sparse proof siblings must be a tuple of bytes")
        depths = _set_bit_depths(int.from_bytes(self.bitmap, "big"))
        if len(depths) != len(self.siblings):
            raise ProofFormatError(f"sparse proof bitmap flags {len(depths)} siblings but {len(self.siblings)} given")
        object.__setattr__(self, "_depths", depths)

    def sibling_depths(self) -> list[int]:
        """The depths (1..256) of the listed siblings, in order."""
        return list(self._depths)

    def to_dict(self, h: HashFunction = SM3) -> dict[str, Any]:
        """``{"hash": name, "bitmap": hex, "siblings": [hex, ...]}``, ready for ``core.canonical.encode``."""
        return {"hash": h.name, "bitmap": self.bitmap.hex(), "siblings": [s.hex() for s in self.siblings]}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], h: HashFunction = SM3) -> SparseProof:
        """Parse :meth:`to_dict` output strictly; raises :class:`ProofFormatError` naming the problem."""
        if NATIVE is not None and h is SM3 and type(d) is dict and d.keys() == _PROOF_KEYS and d["hash"] == SM3.name:
            bitmap_bytes = NATIVE.hash_from_hex(d["bitmap"])  # 64 lower-case hex digits, as for a hash
            sibling_hashes = NATIVE.hashes_from_hex(d["siblings"])
            if bitmap_bytes is not None and sibling_hashes is not None:
                fast = cls(bitmap_bytes, sibling_hashes)
                _check_siblings(fast, h)
                return fast
        if not isinstance(d, Mapping):
            raise ProofFormatError(f"sparse proof must be an object, not {type(d).__name__}")
        if set(d) != {"hash", "bitmap", "siblings"}:
            raise ProofFormatError(f"sparse proof must have exactly the keys bitmap, hash, siblings; got {sorted(d)}")
        if d["hash"] != h.name:
            raise ProofFormatError(f"sparse proof is for hash {d['hash']!r}, expected {h.name!r}")
        bitmap = d["bitmap"]
        if not isinstance(bitmap, str) or len(bitmap) != 2 * KEY_SIZE or bitmap.strip("0123456789abcdef"):
            raise ProofFormatError(f"sparse proof bitmap must be {2 * KEY_SIZE} lowercase hex digits")
        if not isinstance(d["siblings"], list):
            raise ProofFormatError("sparse proof siblings must be a list")
        try:
            siblings = tuple(parse_hex_hash(s, h, f"siblings[{i}]") for i, s in enumerate(d["siblings"]))
        except FormatError as exc:
            raise ProofFormatError(f"sparse proof {exc}") from None
        proof = cls(bytes.fromhex(bitmap), siblings)
        _check_siblings(proof, h)
        return proof


_PROOF_KEYS = frozenset(("hash", "bitmap", "siblings"))


def _check_siblings(proof: SparseProof, h: HashFunction) -> tuple[int, ...]:
    defaults = default_hashes(h)
    depths = proof._depths
    size = h.digest_size
    for depth, sibling in zip(depths, proof.siblings, strict=True):
        if len(sibling) != size:
            raise ProofFormatError(f"sibling at depth {depth} is {len(sibling)} bytes, not {size}")
        if sibling == defaults[depth]:
            raise ProofFormatError(f"sibling at depth {depth} is the default hash and must be omitted")
    return depths


def verify_sparse_proof(
    root_hash: bytes, key: bytes, value_hash: bytes | None, proof: SparseProof, h: HashFunction = SM3
) -> None:
    """Check that ``key`` maps to ``value_hash`` (``None``: to nothing) in the tree with ``root_hash``.

    Returns ``None`` on success; raises :class:`ProofFormatError` on wrong shapes (hash lengths, a listed
    default sibling) and :class:`RootMismatchError` if the proof leads to another root.

    From the leaf up, every level is ``H(0x01 || left || right)``, the sibling being the listed one or the
    default hash. One shortcut, exact rather than an assumption: where the running hash ``x`` is the default hash
    of its depth and the sibling is default too, the parent is by definition the default hash one level up
    (``D[d-1] = H(0x01 || D[d] || D[d])``), so a run of such levels is skipped to the next listed sibling. Where
    ``x`` is not default every level is hashed, default sibling or not.
    """
    _check_key(key)
    if not isinstance(proof, SparseProof):
        raise TypeError(f"proof must be a SparseProof, not {type(proof).__name__}")
    if not isinstance(root_hash, bytes) or len(root_hash) != h.digest_size:
        raise ProofFormatError(f"root hash must be {h.digest_size} bytes")
    if h is SM3 and NATIVE is not None:  # the same root, or None: then the code below decides (and says why)
        calculated = NATIVE.sparse_root(key, value_hash, proof._depths, proof.siblings)
        if calculated is not None:
            if calculated != root_hash:
                raise RootMismatchError(root_hash, calculated, what="sparse Merkle root")
            return
    defaults = default_hashes(h)
    if value_hash is None:
        x = defaults[DEPTH]
    else:
        if not isinstance(value_hash, bytes) or len(value_hash) != h.digest_size:
            raise ProofFormatError(f"value hash must be {h.digest_size} bytes")
        x = h.digest(LEAF_PREFIX + key + value_hash)
    depths = _check_siblings(proof, h)
    digest = h.digest
    path = int.from_bytes(key, "big")  # bit d of the key is bit 255 - d of this integer
    depth = DEPTH  # the depth of x
    for listed, sibling in zip(reversed(depths), reversed(proof.siblings), strict=True):
        x = _up_defaults(x, path, depth, listed, defaults, digest)
        x = digest(NODE_PREFIX + sibling + x) if (path >> (DEPTH - listed)) & 1 else digest(NODE_PREFIX + x + sibling)
        depth = listed - 1
    x = _up_defaults(x, path, depth, 0, defaults, digest)
    if x != root_hash:
        raise RootMismatchError(root_hash, x, what="sparse Merkle root")


def _up_defaults(
    x: bytes, path: int, depth: int, stop: int, defaults: tuple[bytes, ...], digest: Callable[[bytes], bytes]
) -> bytes:
    """From ``x`` at ``depth`` up to depth ``stop`` through levels whose siblings are all default."""
    while depth > stop:
        if x == defaults[depth]:  # both children empty from here up to stop: no hashing needed
            return defaults[stop]
        sibling = defaults[depth]
        x = digest(NODE_PREFIX + sibling + x) if (path >> (DEPTH - depth)) & 1 else digest(NODE_PREFIX + x + sibling)
        depth -= 1
    return x


def _check_key(key: object) -> None:
    if not isinstance(key, bytes) or len(key) != KEY_SIZE:
        raise ValueError(f"a sparse Merkle tree key must be {KEY_SIZE} bytes (SM3 of the license id)")


# --- storage ---


class NodeStore(Protocol):
    """Read access to stored nodes: ``get(node_id, default)`` like ``dict.get``. ``None`` or ``b""`` =
    absent."""

    def get(self, key: NodeId, default: Any = None, /) -> Any: ...


class MissingNodeError(KeyError):
    """A strict tree needed a node that was not prefetched into its store."""

    def __init__(self, node_id: NodeId) -> None:
        self.node_id = node_id
        super().__init__(f"sparse Merkle tree node {node_id} was not prefetched")


class Writes(dict[NodeId, bytes | None]):
    """The node writes of an update (``None`` = delete the state key), plus the new ``root_hash``."""

    root_hash: bytes


_MISSING = object()


def node_ids_for(keys: Iterable[bytes]) -> set[NodeId]:
    """Every node id that reading, proving or updating ``keys`` can touch: the 257 nodes on each key's path.

    One prefetch round; most of these are absent. :func:`missing_node_ids` needs far fewer reads.
    """
    ids: set[NodeId] = set()
    for key in keys:
        _check_key(key)
        ids.update(NodeId.of(key, d) for d in range(DEPTH + 1))
    return ids


def missing_node_ids(
    keys: Iterable[bytes], fetched: Mapping[NodeId, bytes | None], h: HashFunction = SM3
) -> set[NodeId]:
    """The node ids still needed for ``keys`` given the nodes ``fetched`` so far (absent ones as ``None``).

    Call repeatedly, fetching what it returns, until it returns an empty set; then
    ``SparseMerkleTree(fetched, strict=True)`` can get, prove and update those keys without further reads.
    """
    defaults = default_hashes(h)
    needed: set[NodeId] = set()
    for key in keys:
        _check_key(key)
        for depth in range(DEPTH + 1):
            node_id = NodeId.of(key, depth)
            if node_id not in fetched:
                needed.add(node_id)
                break
            record = _parse_record(node_id, fetched[node_id])
            if record is None or record[0] == _SHORTCUT:
                break
            child = record[2] if _bit(key, depth) else record[1]
            if child == defaults[depth + 1]:
                break
    return needed


def _parse_record(node_id: NodeId, raw: object) -> tuple[int, bytes, bytes] | None:
    """(kind, a, b) for a stored node: internal (left, right) or shortcut (key, value_hash)."""
    if raw is None or raw == b"":
        return None
    if not isinstance(raw, bytes | bytearray) or len(raw) != _RECORD_SIZE or raw[0] not in (0, 1):
        raise FormatError(f"corrupt sparse Merkle tree node {node_id}: not a 65-byte record")
    a, b = bytes(raw[1:33]), bytes(raw[33:65])
    if raw[0] == _SHORTCUT and NodeId.of(a, node_id.depth) != node_id:
        raise FormatError(f"corrupt sparse Merkle tree node {node_id}: holds a key off its path")
    if raw[0] == _INTERNAL and node_id.depth == DEPTH:
        raise FormatError(f"corrupt sparse Merkle tree node {node_id}: internal node at leaf depth")
    return raw[0], a, b


# --- the tree ---


class SparseMerkleTree:
    """A sparse Merkle tree over a node store (see the module docstring for hashes and layout).

    ``store`` is anything with ``get(node_id, default)`` (a ``dict`` of prefetched nodes, say); without one
    the tree keeps its own in-memory dict and applies its writes to it. With an external store the writes are
    held in an overlay (later reads see them) and accumulated in :attr:`writes` for the caller to persist.
    With ``strict=True`` a node absent from ``store`` (not even as ``None``) raises :class:`MissingNodeError`
    instead of being taken as empty: use it over prefetched dicts so a missed prefetch can never yield a wrong
    root.
    """

    def __init__(self, store: NodeStore | None = None, h: HashFunction = SM3, *, strict: bool = False) -> None:
        self._h = h
        self._defaults = default_hashes(h)
        self._own = store is None
        self._store: NodeStore = {} if store is None else store
        self._strict = strict
        self._overlay: dict[NodeId, bytes | None] = {}
        self._root: bytes | None = None

    @property
    def writes(self) -> dict[NodeId, bytes | None]:
        """Every write since construction, merged (empty when the tree owns its store)."""
        return dict(self._overlay)

    def _read(self, node_id: NodeId) -> tuple[int, bytes, bytes] | None:
        if node_id in self._overlay:
            return _parse_record(node_id, self._overlay[node_id])
        raw = self._store.get(node_id, _MISSING)
        if raw is _MISSING:
            if self._strict:
                raise MissingNodeError(node_id)
            raw = None
        return _parse_record(node_id, raw)

    def _walk(self, key: bytes) -> tuple[list[tuple[int, bytes, bytes]], int, tuple[bytes, bytes] | None]:
        """Internal nodes on ``key``'s path (depth, left, right), then the depth of the first shortcut or
        empty subtree and that shortcut's (key, value_hash) or ``None``."""
        path: list[tuple[int, bytes, bytes]] = []
        depth = 0
        while True:
            record = self._read(NodeId.of(key, depth))
            if record is None:
                return path, depth, None
            kind, a, b = record
            if kind == _SHORTCUT:
                return path, depth, (a, b)
            path.append((depth, a, b))
            if (b if _bit(key, depth) else a) == self._defaults[depth + 1]:
                return path, depth + 1, None
            depth += 1

    def root_hash(self) -> bytes:
        """The root hash (``default_hashes(h)[0]`` for the empty tree)."""
        if self._root is None:
            record = self._read(ROOT_ID)
            if record is None:
                self._root = self._defaults[0]
            elif record[0] == _INTERNAL:
                self._root = self._h.digest(NODE_PREFIX + record[1] + record[2])
            else:
                self._root = _shortcut_hash(self._h, record[1], record[2], 0)
        return self._root

    def get(self, key: bytes) -> bytes | None:
        """The value hash stored under ``key``, or ``None``."""
        _check_key(key)
        _, _, leaf = self._walk(key)
        return leaf[1] if leaf is not None and leaf[0] == key else None

    def prove(self, key: bytes) -> SparseProof:
        """A proof of ``key``'s value hash, or of its absence; check it with :func:`verify_sparse_proof`."""
        _check_key(key)
        path, _, leaf = self._walk(key)
        siblings: dict[int, bytes] = {}
        for d, left, right in path:
            sibling = left if _bit(key, d) else right
            if sibling != self._defaults[d + 1]:
                siblings[d + 1] = sibling
        if leaf is not None and leaf[0] != key:
            # Another key alone in this subtree: it is the sibling where the two paths diverge.
            fork = _common_prefix_bits(key, leaf[0])
            siblings[fork + 1] = _shortcut_hash(self._h, leaf[0], leaf[1], fork + 1)
        bits = 0
        for d in siblings:
            bits |= 1 << (DEPTH - d)
        return SparseProof(bits.to_bytes(KEY_SIZE, "big"), tuple(siblings[d] for d in sorted(siblings)))

    def update(self, key: bytes, value_hash: bytes | None) -> Writes:
        """Set ``key`` to ``value_hash`` (``None`` deletes it). Returns this update's writes and the new
        root."""
        _check_key(key)
        if value_hash is not None and (not isinstance(value_hash, bytes) or len(value_hash) != self._h.digest_size):
            raise ValueError(f"value_hash must be {self._h.digest_size} bytes or None")
        h, defaults = self._h, self._defaults
        path, depth, leaf = self._walk(key)
        writes = Writes()
        if leaf is not None and leaf[0] != key:
            if value_hash is None:  # deleting an absent key
                writes.root_hash = self.root_hash()
                return writes
            sub = self._split(key, value_hash, leaf, depth, writes)
        elif value_hash is None:
            if leaf is None:
                writes.root_hash = self.root_hash()
                return writes
            writes[NodeId.of(key, depth)] = None
            sub = defaults[depth]
        else:
            writes[NodeId.of(key, depth)] = bytes([_SHORTCUT]) + key + value_hash
            sub = _shortcut_hash(h, key, value_hash, depth)
        for d, left, right in reversed(path):
            if _bit(key, d):
                right = sub
            else:
                left = sub
            if left == right == defaults[d + 1]:
                writes[NodeId.of(key, d)] = None
                sub = defaults[d]
            else:
                writes[NodeId.of(key, d)] = bytes([_INTERNAL]) + left + right
                sub = h.digest(NODE_PREFIX + left + right)
        self._apply(writes)
        self._root = writes.root_hash = sub
        return writes

    def _split(self, key: bytes, value_hash: bytes, other: tuple[bytes, bytes], depth: int, writes: Writes) -> bytes:
        """Replace the shortcut of ``other`` at ``depth`` by internal nodes down to where the two keys
        diverge."""
        h, defaults = self._h, self._defaults
        fork = _common_prefix_bits(key, other[0])
        mine = _shortcut_hash(h, key, value_hash, fork + 1)
        theirs = _shortcut_hash(h, other[0], other[1], fork + 1)
        writes[NodeId.of(key, fork + 1)] = bytes([_SHORTCUT]) + key + value_hash
        writes[NodeId.of(other[0], fork + 1)] = bytes([_SHORTCUT]) + other[0] + other[1]
        left, right = (theirs, mine) if _bit(key, fork) else (mine, theirs)
        for d in range(fork, depth - 1, -1):
            writes[NodeId.of(key, d)] = bytes([_INTERNAL]) + left + right
            sub = h.digest(NODE_PREFIX + left + right)
            left, right = (defaults[d], sub) if d and _bit(key, d - 1) else (sub, defaults[d])
        return sub

    def _apply(self, writes: Writes) -> None:
        if self._own:
            store = self._store
            assert isinstance(store, dict)
            for node_id, raw in writes.items():
                if raw is None:
                    store.pop(node_id, None)
                else:
                    store[node_id] = raw
        else:
            self._overlay.update(writes)

    def update_many(self, items: Iterable[tuple[bytes, bytes | None]]) -> Writes:
        """Apply several updates; return their merged writes (the last write per node wins) and the root."""
        merged = Writes()
        for key, value_hash in items:
            merged.update(self.update(key, value_hash))
        merged.root_hash = self.root_hash()
        return merged

    def nodes(self) -> dict[NodeId, bytes]:
        """The stored non-default nodes of a tree that owns its store (for tests and snapshots)."""
        if not self._own:
            raise ValueError("nodes() is only available when the tree owns its store")
        store = self._store
        assert isinstance(store, dict)
        return dict(store)
