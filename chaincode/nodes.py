"""``AnnounceNode``: where a member's node API is, signed by the member (docs/chaincode.md, "Node directory").

Rules, in order (the first that fails rejects the transaction, nothing written):

* the author is a member (``UNKNOWN_MEMBER``) signing alone with one of its keys valid at the transaction time
  (``KEY_NOT_VALID`` and the other authorship reasons of :mod:`chaincode.context`), and *also valid at the
  ledger time* (the largest timestamp accepted so far), so a retired key cannot announce by backdating;
* ``seq`` is the member's next node record seq, contiguous from 0 (``MEMBER_SEQ_REPLAY`` /
  ``MEMBER_SEQ_GAP``): an old announcement cannot be replayed to point the directory back;
* ``args.url`` is an http(s) URL (:func:`core.transactions.node_url_problem`) or ``""``, which withdraws it
  (checked when the envelope parses: ``MALFORMED_PAYLOAD``).

The record (``member``, ``url``, ``seq``, ``timestamp_ms``, ``tx_id``) replaces the member's entry in
``config/nodes``. The URL is a hint for referrals and cross-node resolution, never trusted for content: what a
node serves is verified like anything else. One key for all members keeps the query to one read; on Fabric two
announcements in one block conflict (MVCC) and the second is resubmitted, which is rare enough here.
"""

from __future__ import annotations

from typing import Any

from chaincode.context import TxContext, authenticate_author, key_valid_at, only_signatures, require_member
from chaincode.errors import Reason, require_next_seq
from chaincode.state import LEDGER_TIME, NODES, StateCorruptError, TxState

__all__ = ["announce_node", "load_nodes"]


async def load_nodes(state: TxState) -> dict[str, dict[str, Any]]:
    """``config/nodes``: member name -> its latest node record (empty before the first announcement)."""
    value = await state.get_json(NODES)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise StateCorruptError(f"{NODES} is not an object")
    return value


async def announce_node(ctx: TxContext) -> None:
    state, tx = ctx.state, ctx.tx
    member = await require_member(state, tx.author)
    key = authenticate_author(ctx, member)
    ledger_time = await state.get_int(LEDGER_TIME, -1)
    if ledger_time > ctx.timestamp_ms:
        key_valid_at(member, key.key_id, ledger_time, what="signing key (at the ledger time)")
    only_signatures(ctx, [(member.name, key.key_id)])
    nodes = await load_nodes(state)
    previous = nodes.get(member.name)
    expected = 0 if previous is None else int(previous["seq"]) + 1
    require_next_seq(
        tx.seq,
        expected,
        replay=Reason.MEMBER_SEQ_REPLAY,
        gap=Reason.MEMBER_SEQ_GAP,
        what=f"{member.name}'s node announcement seq",
    )
    record = {
        "member": member.name,
        "url": tx.args["url"],
        "seq": tx.seq,
        "timestamp_ms": ctx.timestamp_ms,
        "tx_id": ctx.tx_id,
    }
    state.put_json(NODES, {**nodes, member.name: record})
    ctx.event = {"member": member.name, "url": record["url"], "seq": tx.seq}
