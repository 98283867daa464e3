"""The ledger-wide anchor log in world state: an RFC 9162 Merkle log (SM3) that serves proofs for every size.

Layout (transparency-dev ``compact`` style):

* ``log/range``: the :class:`~core.merkle.CompactRange` ``[0, size)`` (``to_dict``), enough to append and to
  compute the current root in ``O(log n)``;
* ``log/node/<level>/<index>``: the 32-byte hash of every *perfect* subtree, i.e. leaves ``[index * 2^level,
  (index + 1) * 2^level)``, written once when it completes and never changed. Appending a leaf writes about
  two;
* ``log/entry/<index>``: the leaf data (the canonical batch record).

Any ``MTH(D[start:end])`` the RFC 9162 §2.1.3.1 / §2.1.4.1 proof algorithms need for a past or present size is
the fold of at most ``log2(n)`` perfect subtrees, so inclusion proofs cost ``O(log n)`` reads and consistency
proofs ``O(log^2 n)``, for any ``tree_size`` the log has had.
"""

from __future__ import annotations

from chaincode.state import LOG_RANGE, StateCorruptError, TxState, index_key
from core.errors import FormatError
from core.merkle import CompactRange, empty_root, leaf_hash, node_hash

__all__ = [
    "append",
    "consistency_proof",
    "entry",
    "inclusion_proof",
    "load_range",
    "root_hash",
]


def _node_key(level: int, index: int) -> str:
    return index_key(f"log/node/{level:02d}", index)


def _entry_key(index: int) -> str:
    return index_key("log/entry", index)


async def load_range(state: TxState) -> CompactRange:
    """The current compact range (empty before the first batch)."""
    raw = await state.get_json(LOG_RANGE)
    if raw is None:
        return CompactRange()
    try:
        return CompactRange.from_dict(raw)
    except FormatError as exc:
        raise StateCorruptError(f"{LOG_RANGE}: {exc}") from None


async def append(state: TxState, leaf_data: bytes) -> tuple[int, bytes, CompactRange]:
    """Append one entry; return its ``leaf_index``, its leaf hash and the new compact range."""
    cr = await load_range(state)
    index = cr.size
    lh = leaf_hash(leaf_data)
    # The perfect subtrees this leaf completes: itself, then one per trailing zero bit of the new size.
    pending = list(cr.hashes)
    state.put(_node_key(0, index), lh)
    value, level, size = lh, 0, index + 1
    while size & 1 == 0:
        value = node_hash(pending.pop(), value)
        level += 1
        size >>= 1
        state.put(_node_key(level, size - 1), value)
    cr.append(lh)
    state.put(_entry_key(index), leaf_data)
    state.put_json(LOG_RANGE, cr.to_dict())
    return index, lh, cr


async def entry(state: TxState, index: int) -> bytes | None:
    """The leaf data at ``index``, or ``None`` past the end."""
    return await state.get(_entry_key(index))


async def _node(state: TxState, level: int, index: int) -> bytes:
    raw = await state.get(_node_key(level, index))
    if raw is None or len(raw) != 32:
        raise StateCorruptError(f"anchor log node {level}/{index} is missing or not 32 bytes")
    return raw


async def _range_hash(state: TxState, start: int, end: int) -> bytes:
    """``MTH(D[start:end])`` for a node of some tree of this log (``start`` aligned to its width)."""
    nodes = []
    pos, width = start, end - start
    for level in range(width.bit_length() - 1, -1, -1):
        if (width >> level) & 1:
            nodes.append(await _node(state, level, pos >> level))
            pos += 1 << level
    res = nodes[-1]
    for left in reversed(nodes[:-1]):
        res = node_hash(left, res)
    return res


async def root_hash(state: TxState, tree_size: int) -> bytes:
    """``MTH(D[tree_size])`` (RFC 9162 §2.1.1); the caller checks ``tree_size`` against the log's size."""
    return await _range_hash(state, 0, tree_size) if tree_size else empty_root()


async def inclusion_proof(state: TxState, leaf_index: int, tree_size: int) -> list[bytes]:
    """``PATH(leaf_index, D[tree_size])`` (RFC 9162 §2.1.3.1), hashes from the leaf upwards."""
    proof = []
    for level in range((tree_size - 1).bit_length()):
        start = ((leaf_index >> level) ^ 1) << level
        if start < tree_size:
            proof.append(await _range_hash(state, start, min(start + (1 << level), tree_size)))
    return proof


async def consistency_proof(state: TxState, size1: int, size2: int) -> list[bytes]:
    """``PROOF(size1, D[size2])`` (RFC 9162 §2.1.4.1) for ``0 < size1 <= size2``."""
    m, n, offset, complete = size1, size2, 0, True
    tail: list[bytes] = []
    while m != n:
        k = 1 << ((n - 1).bit_length() - 1)
        if m <= k:
            tail.append(await _range_hash(state, offset + k, offset + n))
            n = k
        else:
            tail.append(await _range_hash(state, offset, offset + k))
            offset, m, n, complete = offset + k, m - k, n - k, False
    head = [] if complete else [await _range_hash(state, offset, offset + m)]
    return head + tail[::-1]
