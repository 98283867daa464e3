"""Sparse Merkle trees (:mod:`core.smt`, SM3) in world state, with every past version still provable.

The contract keeps two trees: ``members`` (key SM3(member name), value SM3(canonical member record)) and
``status`` (key SM3(license base id), value SM3(canonical status record)). Each transaction that changes a
tree makes a new *version* ``v`` (the empty tree is version 0) and writes the nodes it changed under
``smt/<tree>/n/<node id>/<2^64 - 1 - v as 16 hex digits>``; a deleted node gets the one-byte tombstone ``00``.
Nodes are never overwritten, so reading a node "as of version v" is the first key of the range
``[smt/<tree>/n/<node id>/<inv(v)>, smt/<tree>/n/<node id>/g)`` (the inverted version sorts newest first).
That lets a peer prove a license's status, or its absence, as of any checkpoint, not only against the newest
root.

``smt/<tree>/head`` holds ``{"version", "root"}`` of the newest version. Reads follow
:func:`core.smt.missing_node_ids` (one range read per level actually present on the path) and the tree runs
with ``strict=True``, so a node that was not fetched can never be mistaken for an empty one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from chaincode.state import StateCorruptError, TxState
from core.errors import FormatError
from core.hashing import SM3
from core.merkle import parse_hex_hash
from core.smt import MissingNodeError, NodeId, SparseMerkleTree, SparseProof, default_hashes, missing_node_ids

__all__ = ["MEMBERS", "STATUS", "TreeHead", "prove", "read_head", "update"]

MEMBERS = "members"
STATUS = "status"
_MAX_VERSION = 2**64 - 1
_TOMBSTONE = b"\x00"


@dataclass(frozen=True, slots=True)
class TreeHead:
    """A tree's newest ``version`` and its ``root``."""

    version: int
    root: bytes

    def to_dict(self) -> dict[str, object]:
        return {"version": self.version, "root": self.root.hex()}


def _head_key(tree: str) -> str:
    return f"smt/{tree}/head"


def _node_prefix(tree: str, node_id: NodeId) -> str:
    return f"smt/{tree}/n/{node_id}/"


def _node_key(tree: str, node_id: NodeId, version: int) -> str:
    return f"{_node_prefix(tree, node_id)}{_MAX_VERSION - version:016x}"


async def read_head(state: TxState, tree: str) -> TreeHead:
    raw = await state.get_json(_head_key(tree))
    if raw is None:
        return TreeHead(0, default_hashes(SM3)[0])
    try:
        if not isinstance(raw, dict) or set(raw) != {"version", "root"} or not isinstance(raw["version"], int):
            raise FormatError("expected {version, root}")
        return TreeHead(raw["version"], parse_hex_hash(raw["root"], SM3, "root"))
    except FormatError as exc:
        raise StateCorruptError(f"{_head_key(tree)}: {exc}") from None


async def _read_node(state: TxState, tree: str, node_id: NodeId, version: int) -> bytes | None:
    prefix = _node_prefix(tree, node_id)
    hit = await state.first_in_range(f"{prefix}{_MAX_VERSION - version:016x}", prefix + "g")
    if hit is None or hit[1] == _TOMBSTONE:
        return None
    return hit[1]


async def _prefetch(state: TxState, tree: str, keys: Sequence[bytes], version: int) -> dict[NodeId, bytes | None]:
    fetched: dict[NodeId, bytes | None] = {}
    while True:
        needed = missing_node_ids(keys, fetched)
        if not needed:
            return fetched
        for node_id in sorted(needed, key=lambda n: (n.depth, n.prefix)):
            fetched[node_id] = await _read_node(state, tree, node_id, version)


async def update(state: TxState, tree: str, items: Sequence[tuple[bytes, bytes | None]]) -> TreeHead:
    """Set each key to its value hash (``None`` deletes) as one new version; return the new head."""
    head = await read_head(state, tree)
    fetched = await _prefetch(state, tree, [k for k, _ in items], head.version)
    smt = SparseMerkleTree(fetched, strict=True)
    for key, value_hash in items:
        while True:
            try:
                smt.update(key, value_hash)
                break
            except MissingNodeError as exc:  # an earlier update of this batch moved the path: fetch and retry
                fetched[exc.node_id] = await _read_node(state, tree, exc.node_id, head.version)
    new = TreeHead(head.version + 1, smt.root_hash())
    writes = smt.writes
    for node_id in sorted(writes, key=lambda n: (n.depth, n.prefix)):
        raw = writes[node_id]
        state.put(_node_key(tree, node_id, new.version), _TOMBSTONE if raw is None else raw)
    state.put_json(_head_key(tree), new.to_dict())
    return new


async def prove(state: TxState, tree: str, key: bytes, version: int) -> tuple[bytes | None, SparseProof, bytes]:
    """``(value_hash or None, proof, root)`` for ``key`` in ``tree`` as of ``version`` (<= the head's)."""
    fetched = await _prefetch(state, tree, [key], version)
    smt = SparseMerkleTree(fetched, strict=True)
    return smt.get(key), smt.prove(key), smt.root_hash()
