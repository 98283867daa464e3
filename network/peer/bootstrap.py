"""Bootstrapping a peer from another peer's HTTP API, trusting nothing it serves.

Rules (the Tessera client rule: advance only after a proof verifies):

1. The served block 0 must be the genesis block this peer formed itself from the network configuration.
2. Each served block is parsed (:meth:`Block.from_json`) and then **re-executed**: this peer forms block ``n``
   from the served ordered payload on its own state (:meth:`Peer.form_block`), which checks every SM2
   signature, key validity, sequence number and checkpoint cosignature through the executor. The served block
   must equal the re-executed one field by field: number, links, timestamp, each transaction's verdict, the
   writes hash, the block hash and the commit hash. The first difference raises :class:`BlockMismatchError`
   naming the block and the field; nothing from that block on is committed.
3. The serving peer's state is never read. Only blocks that passed rule 2 are committed, and they are the
   blocks this peer computed, not the bytes it was served.
4. Optionally, the tip is cross-checked against other peers' blocks at the same height: a peer serving a
   consistent but different history (e.g. with extra rejected transactions) disagrees with them there.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from network.peer.blocks import Block
from network.peer.client import PeerClient, PeerRequestError
from network.peer.errors import BlockMismatchError
from network.peer.peer import Peer

log = logging.getLogger("licledger.peer.bootstrap")


def compare_blocks(served: Block, computed: Block) -> None:
    """Rule 2: raise :class:`BlockMismatchError` at the first field where ``served`` differs from
    ``computed``."""
    n = computed.number
    s, c = served.header, computed.header
    if s.number != c.number:
        raise BlockMismatchError(n, "number", str(s.number), str(c.number))
    if s.prev_hash != c.prev_hash:
        raise BlockMismatchError(n, "prev_hash", s.prev_hash.hex(), c.prev_hash.hex())
    if s.data_hash != c.data_hash:
        raise BlockMismatchError(n, "data_hash", s.data_hash.hex(), c.data_hash.hex())
    if len(served.records) != len(computed.records):
        raise BlockMismatchError(n, "transaction count", str(len(served.records)), str(len(computed.records)))
    for i, (sr, cr) in enumerate(zip(served.records, computed.records, strict=True)):
        if (sr.tx_id, sr.valid, sr.reason) != (cr.tx_id, cr.valid, cr.reason):
            raise BlockMismatchError(
                n,
                f"verdict of tx {i}",
                f"{sr.tx_id[:16]} {sr.valid} {sr.reason}",
                f"{cr.tx_id[:16]} {cr.valid} {cr.reason}",
            )
    if s.state_writes_hash != c.state_writes_hash:
        raise BlockMismatchError(n, "state_writes_hash", s.state_writes_hash.hex(), c.state_writes_hash.hex())
    if s.timestamp != c.timestamp:
        raise BlockMismatchError(n, "timestamp", str(s.timestamp), str(c.timestamp))
    if served.block_hash != computed.block_hash:
        raise BlockMismatchError(n, "block_hash", served.block_hash.hex(), computed.block_hash.hex())
    if served.commit_hash != computed.commit_hash:
        raise BlockMismatchError(n, "commit_hash", served.commit_hash.hex(), computed.commit_hash.hex())


def bootstrap(
    peer: Peer,
    source: PeerClient,
    *,
    cross_check: Sequence[PeerClient] = (),
    page: int = 100,
    until: int | None = None,
) -> int:
    """Fetch, re-execute, compare and commit every block ``source`` has beyond ``peer.height``; return the
    height.

    Raises :class:`BlockMismatchError` (a served block differs from its re-execution, or the cross-check
    fails), :class:`~network.peer.errors.BlockFormatError` (a served block does not parse) or
    :class:`~network.peer.client.PeerRequestError` (transport).
    """
    if peer.height == 0:
        raise ValueError("open() the peer first: it forms its own genesis block")
    # Rule 1: same network.
    genesis = Block.from_json(_one(source, 0))
    mine = peer.blocks(0, 1)[0]
    compare_blocks(genesis, mine)
    while until is None or peer.height < until:
        start = peer.height
        served = source.blocks(start, page if until is None else min(page, until - start))
        if not served:
            break
        for raw in served:
            block = Block.from_json(raw)
            if block.number != peer.height:
                raise BlockMismatchError(peer.height, "number", str(block.number), str(peer.height))
            computed = peer.form_block(block.number, block.payload)
            compare_blocks(block, computed)
            peer.commit_block(computed)
    height = peer.height
    for other in cross_check:
        _cross_check(peer, other, height)
    log.info("%s: bootstrapped to height %d from %s", peer.name, height, source.base_url)
    return height


def _one(client: PeerClient, number: int) -> dict[str, object]:
    blocks = client.blocks(number, 1)
    if not blocks:
        raise BlockMismatchError(number, "presence", "absent", "present")
    return blocks[0]


def _cross_check(peer: Peer, other: PeerClient, height: int) -> None:
    """Rule 4: the block at the highest height both have must be identical."""
    try:
        other_height = int(other.status()["height"])
    except (PeerRequestError, KeyError, TypeError, ValueError):
        log.warning("%s: cross-check peer %s unavailable", peer.name, other.base_url)
        return
    number = min(height, other_height) - 1
    if number < 0:
        return
    theirs = Block.from_json(_one(other, number))
    ours = peer.blocks(number, 1)[0]
    if theirs.block_hash != ours.block_hash:
        raise BlockMismatchError(
            number, f"block_hash at {other.base_url}", theirs.block_hash.hex(), ours.block_hash.hex()
        )
