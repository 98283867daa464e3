"""The outbox: what this node still has to put on the ledger, and the receipts of what it put there.

The outbox is the source of truth for anchoring. An entry is written in the same database transaction as the
license version or status change it announces (:mod:`node.records`), so nothing issued can be forgotten, and
the anchoring worker only ever moves entries forward:

``leaf`` entries (one per license version, ``dedup_key = leaf:<base id>:<version>``)::

    pending --record_batch()--> batched (batch_seq, leaf_index, tx_id)

and the batch they are in::

    built --record_batch_anchored()--> anchored (block_number, log_index, anchored_ms)

A leaf is anchored when its batch is; nothing is written per leaf then. Its receipt (batch, leaf index, root,
transaction, block, log index) is its row of the ``anchor_receipts`` view, which joins the entry and its
anchored batch (migration 0003; before it, a receipt row was written and the entry moved to ``anchored``).

``status`` entries (one per status change, ``dedup_key = status:<base id>:<status_seq>``; a new version's event
also writes one, the *version update*: reason ``NEW_VERSION``, the license's current status, citing the new
version, so that once that version is anchored the ledger's status record names it and older versions'
bundles verify as SUPERSEDED)::

    pending --record_status_submitted()--> batched (tx_id, envelope) --record_status_anchored()--> anchored

Crash safety, for the worker (each step is one database transaction):

1. Pick pending leaves in ``id`` order (:func:`pending_leaves`), take ``batch_seq = next_batch_seq()``, build
   the RFC 9162 tree over their leaf hashes, sign ``AnchorBatch`` (:func:`core.transactions.anchor_batch`),
   then :func:`record_batch` *before* submitting. The envelope is stored; ``anchor_batches.batch_seq`` is the
   primary key and ``(batch_seq, leaf_index)`` is unique, so a retry can neither reuse a number for other
   leaves nor put a leaf in two batches. Calling it again with the same transaction is a no-op.
2. Submit the stored envelope of every batch still ``built`` (:func:`unfinished_batches`); after a crash the
   same bytes go out again, which the ledger answers as a replay of the same ``tx_id`` (``BATCH_SEQ_REPLAY``),
   never as a second batch.
3. On commit, :func:`record_batch_anchored` marks the batch anchored (its block and log index): one row,
   whatever the batch's size; calling it again changes nothing.
4. Status changes wait until the version they cite is anchored and every lower ``status_seq`` of the license
   is anchored (:func:`pending_status_changes`); the ledger wants them contiguous. Build ``ChangeStatus`` with
   the receipt's batch and leaf index and an inclusion proof, :func:`record_status_submitted`, submit,
   :func:`record_status_anchored`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.orm import Session, aliased

from core import merkle
from node import bulk
from node.db.models import (
    AnchorBatch,
    AnchorReceipt,
    License,
    LicenseEvent,
    LicenseVersion,
    Outbox,
)
from node.errors import ConflictError, NotFoundError

_OUTBOX = cast(sa.Table, Outbox.__table__)


def _expire_outbox(session: Session) -> None:
    """Core statements bypass the identity map: expire any outbox entry loaded in ``session``."""
    for obj in list(session.identity_map.values()):
        if isinstance(obj, Outbox):
            session.expire(obj)


# --- enqueue (called by node.records inside the unit of work) ---------------------------------------------


def leaf_values(
    base_id: str, version: int, license_pk: int, version_pk: int, event_pk: int, now_ms: int
) -> dict[str, Any]:
    """The outbox row announcing the leaf of version ``version`` of license ``base_id``."""
    return {
        "dedup_key": f"leaf:{base_id}:{version}",
        "kind": "leaf",
        "license_id": license_pk,
        "version_id": version_pk,
        "event_id": event_pk,
        "state": "pending",
        "created_ms": now_ms,
    }


def enqueue_leaf(
    session: Session, license: License, version: LicenseVersion, event: LicenseEvent, now_ms: int
) -> Outbox:
    """Announce a new license version's leaf."""
    entry = Outbox(**leaf_values(license.base_id, version.version, license.id, version.id, event.id, now_ms))
    session.add(entry)
    return entry


def enqueue_status(
    session: Session,
    license: License,
    version: LicenseVersion,
    event: LicenseEvent,
    *,
    status: str,
    reason: str,
    effective_ms: int,
    now_ms: int,
) -> Outbox:
    """Announce a status change of ``license`` citing ``version``; takes the license's next ``status_seq``."""
    seq = license.status_seq
    entry = Outbox(
        dedup_key=f"status:{license.base_id}:{seq}",
        kind="status",
        license_id=license.id,
        version_id=version.id,
        event_id=event.id,
        status=status,
        reason=reason,
        effective_ms=effective_ms,
        status_seq=seq,
        state="pending",
        created_ms=now_ms,
    )
    license.status_seq = seq + 1
    session.add(entry)
    return entry


def last_effective_ms(session: Session, license_id: int) -> int | None:
    """The ``effective_ms`` of the license's latest status change (the ledger refuses a regression)."""
    return session.scalar(
        sa.select(sa.func.max(Outbox.effective_ms)).where(Outbox.license_id == license_id, Outbox.kind == "status")
    )


# --- the anchoring worker's side ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PendingLeaf:
    """A leaf waiting for a batch: what the worker needs to build the tree."""

    outbox_id: int
    license_base_id: str
    version: int
    commitment: bytes
    leaf_hash: bytes
    created_ms: int


@dataclass(frozen=True, slots=True)
class PendingStatus:
    """A status change whose cited version is anchored: what ``ChangeStatus`` needs."""

    outbox_id: int
    license_full_id: str
    status: str
    reason: str
    effective_ms: int
    status_seq: int
    commitment: bytes
    batch_seq: int
    leaf_index: int


_PENDING_LEAF = sa.and_(Outbox.state == "pending", Outbox.kind == "leaf")
"""The anchoring worker's queue: the condition of its partial index (migration 0005), which every statement that
reads the queue in ``id`` order states whole, so that the index serves it whatever the statistics say."""


def pending_leaves(session: Session, limit: int) -> list[PendingLeaf]:
    """Up to ``limit`` pending leaves, oldest first.

    The first ``limit`` entries are taken from the queue in a subquery of their own, then joined with their
    versions and licenses: as one join, PostgreSQL's planner could scan the whole outbox and sort it, or hash-join
    every pending entry, when its statistics said most entries were pending."""
    first = (
        sa.select(Outbox.id, Outbox.version_id, Outbox.license_id, Outbox.created_ms)
        .where(_PENDING_LEAF)
        .order_by(Outbox.id)
        .limit(limit)
        .subquery()
    )
    rows = session.execute(
        sa.select(
            first.c.id,
            License.base_id,
            LicenseVersion.version,
            LicenseVersion.commitment,
            LicenseVersion.leaf_hash,
            first.c.created_ms,
        )
        .select_from(first)
        .join(LicenseVersion, LicenseVersion.id == first.c.version_id)
        .join(License, License.id == first.c.license_id)
        .order_by(first.c.id)
    ).all()
    return [PendingLeaf(*row) for row in rows]


def _leaf_batches(session: Session, states: Sequence[str]) -> dict[str, int]:
    """Leaves in batches of each of ``states``: the batches' ``leaf_count`` (a leaf entry stays ``batched`` once
    its batch is anchored, so the batches tell how many are anchored)."""
    rows = session.execute(
        sa.select(AnchorBatch.state, sa.func.sum(AnchorBatch.leaf_count))
        .where(AnchorBatch.state.in_(states))
        .group_by(AnchorBatch.state)
    ).all()
    return {f"leaf:{'batched' if state == 'built' else state}": int(total) for state, total in rows if total}


def pending_counts(session: Session) -> dict[str, int]:
    """Outbox entries per ``kind:state`` (for monitoring and the worker's thresholds): status entries by their
    state; leaves ``pending``, ``batched`` (in a batch not yet known to be on the ledger) and ``anchored``."""
    rows = session.execute(
        sa.select(Outbox.kind, Outbox.state, sa.func.count())
        .where(sa.or_(Outbox.kind == "status", Outbox.state == "pending"))
        .group_by(Outbox.kind, Outbox.state)
    ).all()
    counts = {f"{kind}:{state}": count for kind, state, count in rows}
    return counts | _leaf_batches(session, ("built", "anchored"))


def open_counts(session: Session) -> dict[str, int]:
    """:func:`pending_counts` of what is not yet anchored (``pending``, ``batched``) only: ranges of the
    ``(state, kind, id)`` index and the batches still ``built``, however many anchored entries the outbox keeps
    (what an anchoring pass that did something reports afterwards; the check before a pass is :func:`backlog`)."""
    rows = session.execute(
        sa.select(Outbox.kind, Outbox.state, sa.func.count())
        .where(sa.or_(Outbox.state == "pending", sa.and_(Outbox.state == "batched", Outbox.kind == "status")))
        .group_by(Outbox.kind, Outbox.state)
    ).all()
    counts = {f"{kind}:{state}": count for kind, state, count in rows}
    return counts | _leaf_batches(session, ("built",))


@dataclass(frozen=True, slots=True)
class Backlog:
    """What the anchoring worker's check before each pass needs (:func:`backlog`), read without counting."""

    unfinished: bool
    """A batch recorded but not known to be on the ledger (``built``), or a status change pending or submitted."""
    first_leaf_ms: int | None
    """When the pending leaf with the lowest id was enqueued (``None``: no pending leaf)."""
    leaf_span: int
    """Last minus first pending leaf id, plus one (0: none): at least the number of pending leaves."""


def backlog(session: Session) -> Backlog:
    """:class:`Backlog` from index probes of the pending-leaf and ``(state, kind, id)`` indexes and the batches,
    in one statement: its cost does not grow with the number of pending entries, where counting them did (every
    pass, however large a backlog the ledger being down had left)."""
    leaves = sa.select(Outbox.id).where(_PENDING_LEAF).limit(1)
    first = leaves.order_by(Outbox.id)
    unfinished = sa.or_(
        sa.exists().where(AnchorBatch.state == "built"),
        sa.exists().where(Outbox.state.in_(("pending", "batched")), Outbox.kind == "status"),
    )
    row = session.execute(
        sa.select(  # scalar subqueries only: one row, NULLs where there is no pending leaf
            unfinished,
            first.with_only_columns(Outbox.created_ms).scalar_subquery(),
            leaves.order_by(Outbox.id.desc()).scalar_subquery() - first.scalar_subquery() + 1,
        )
    ).one()
    return Backlog(bool(row[0]), row[1], int(row[2] or 0))


def pending_leaves_reach(session: Session, count: int) -> bool:
    """Whether at least ``count`` leaves are pending: a walk of at most ``count`` entries of the index."""
    nth = sa.select(Outbox.id).where(_PENDING_LEAF).order_by(Outbox.id).offset(count - 1).limit(1)
    return count <= 0 or session.scalar(nth) is not None


def next_batch_seq(session: Session) -> int:
    """The batch sequence number the next batch must use (contiguous from 0, like the ledger's)."""
    last = session.scalar(sa.select(sa.func.max(AnchorBatch.batch_seq)))
    return 0 if last is None else last + 1


def record_batch(
    session: Session,
    *,
    batch_seq: int,
    outbox_ids: Sequence[int],
    root_hash: bytes,
    tx_id: str,
    envelope: bytes,
    now_ms: int,
) -> AnchorBatch:
    """Put pending leaves ``outbox_ids`` (in leaf order) into batch ``batch_seq`` signed as ``envelope``.

    Idempotent for the same ``tx_id``; :class:`ConflictError` if ``batch_seq`` is not the next one or is
    taken by another transaction, if an entry is not a pending leaf (or is listed twice), or if ``root_hash``
    is not the RFC 9162 root of the entries' leaf hashes.

    Set-based: the entries and their leaf hashes come from one ``SELECT`` (:func:`node.bulk.one_of`), and the
    entries move to ``batched`` in one ``UPDATE ... FROM unnest(...)`` on PostgreSQL (the driver's executemany
    on SQLite, :func:`node.bulk.update_by_id`) that only touches rows still ``pending``. That update is the
    lock: on PostgreSQL an entry another worker batched since the ``SELECT`` is not updated, its row count
    falls short and :class:`ConflictError` rolls this batch back (a ``SELECT ... FOR UPDATE`` before it cost
    a tuple lock per entry); a SQLite transaction holds the write lock from its start (``BEGIN IMMEDIATE``).
    """
    existing = session.get(AnchorBatch, batch_seq)
    if existing is not None:
        if existing.tx_id != tx_id:
            raise ConflictError(f"batch {batch_seq} already recorded", current=existing.tx_id, requested=tx_id)
        return existing
    expected_seq = next_batch_seq(session)
    if batch_seq != expected_seq:
        raise ConflictError("batch_seq is not the next one", current=str(expected_seq), requested=str(batch_seq))
    if not outbox_ids:
        raise ValueError("a batch needs at least one leaf")
    if len(set(outbox_ids)) != len(outbox_ids):
        raise ConflictError("an outbox entry is listed twice", current=None, requested=str(len(outbox_ids)))
    rows = session.execute(
        sa.select(Outbox.id, Outbox.kind, Outbox.state, LicenseVersion.leaf_hash)
        .join(LicenseVersion, LicenseVersion.id == Outbox.version_id)
        .where(bulk.one_of(session, Outbox.id, outbox_ids))
    ).all()
    found = {oid: (kind, state, leaf) for oid, kind, state, leaf in rows}
    leaves: list[bytes] = []
    for oid in outbox_ids:
        row = found.get(oid)
        if row is None or row[0] != "leaf" or row[1] != "pending":
            raise ConflictError(f"outbox entry {oid} is not a pending leaf", current=row[1] if row else None)
        leaves.append(row[2])
    calculated = merkle.root_hash(leaves)
    if calculated != root_hash:
        raise ConflictError(
            "root_hash is not the root of these leaves", current=calculated.hex(), requested=root_hash.hex()
        )
    batch = AnchorBatch(
        batch_seq=batch_seq,
        root_hash=root_hash,
        leaf_count=len(outbox_ids),
        tx_id=tx_id,
        envelope=envelope,
        state="built",
        created_ms=now_ms,
    )
    session.add(batch)
    session.flush()
    moved = bulk.update_by_id(
        session,
        _OUTBOX,
        {"state": "batched", "batch_seq": batch_seq, "tx_id": tx_id, "batched_ms": now_ms},
        {"leaf_index": range(len(outbox_ids))},
        outbox_ids,
        where={"state": "pending", "kind": "leaf"},  # the pending-leaf index's condition (migration 0005)
    )
    if moved not in (-1, len(outbox_ids)):
        raise ConflictError(
            "outbox entries were batched by another worker meanwhile", current=str(moved), requested=str(batch_seq)
        )
    _expire_outbox(session)
    return batch


def unfinished_batches(session: Session) -> list[AnchorBatch]:
    """Batches recorded but not yet known to be on the ledger, in order: submit (again) their envelopes."""
    return list(
        session.scalars(sa.select(AnchorBatch).where(AnchorBatch.state == "built").order_by(AnchorBatch.batch_seq))
    )


def record_batch_anchored(
    session: Session, *, batch_seq: int, block_number: int, log_index: int | None, now_ms: int
) -> int:
    """Mark batch ``batch_seq`` committed in ``block_number``; returns the leaves it anchored (0 if it was
    anchored already: calling it again changes nothing).

    One row changes, the batch's, under its lock: its leaves' receipts are the ``anchor_receipts`` view of their
    outbox entries and this row (migration 0003). The batch's entries are counted first, a range of the
    ``(batch_seq, leaf_index)`` index: :class:`ConflictError` unless they are ``leaf_count`` leaves in state
    ``batched``. Kind and state are tested in the count, not in the ``WHERE``: given them there, PostgreSQL's
    planner, whose statistics still saw every leaf ``pending``, walked the ``(state, kind, id)`` index over every
    batched leaf the node ever had (measured after 150,000 leaves: 12 µs of server CPU per leaf anchored, against
    0.8 on an empty node, and growing with the outbox).
    """
    batch = session.get(AnchorBatch, batch_seq, with_for_update=True)
    if batch is None:
        raise NotFoundError("batch", str(batch_seq))
    if batch.state == "anchored":
        return 0
    batched_leaf = sa.and_(Outbox.kind == "leaf", Outbox.state == "batched")
    entries, count = session.execute(
        sa.select(sa.func.count(), sa.func.coalesce(sa.func.sum(sa.case((batched_leaf, 1), else_=0)), 0)).where(
            Outbox.batch_seq == batch_seq
        )
    ).one()
    if entries != batch.leaf_count or count != batch.leaf_count:
        raise ConflictError(
            f"batch {batch_seq} has {batch.leaf_count} leaves", current=f"{count} of {entries}", requested=None
        )
    batch.state, batch.block_number, batch.log_index, batch.anchored_ms = (
        "anchored",
        block_number,
        log_index,
        now_ms,
    )
    session.flush()
    return int(count)


def pending_status_changes(session: Session, limit: int) -> list[PendingStatus]:
    """Pending status changes ready to submit: cited version anchored, all lower ``status_seq`` anchored."""
    earlier = aliased(Outbox)
    blocked = (
        sa.select(earlier.id)
        .where(
            earlier.license_id == Outbox.license_id,
            earlier.kind == "status",
            earlier.status_seq < Outbox.status_seq,
            earlier.state != "anchored",
        )
        .exists()
    )
    rows = session.execute(
        sa.select(
            Outbox.id,
            LicenseVersion.full_id,
            Outbox.status,
            Outbox.reason,
            Outbox.effective_ms,
            Outbox.status_seq,
            LicenseVersion.commitment,
            AnchorReceipt.batch_seq,
            AnchorReceipt.leaf_index,
        )
        .join(LicenseVersion, LicenseVersion.id == Outbox.version_id)
        .join(AnchorReceipt, AnchorReceipt.version_id == Outbox.version_id)
        .where(Outbox.kind == "status", Outbox.state == "pending", ~blocked)
        .order_by(Outbox.id)
        .limit(limit)
    ).all()
    out = []
    for oid, full_id, status, reason, effective, seq, value, batch_seq, leaf_index in rows:
        assert status is not None and reason is not None and effective is not None and seq is not None
        out.append(PendingStatus(oid, full_id, status, reason, effective, seq, value, batch_seq, leaf_index))
    return out


def record_status_submitted(session: Session, outbox_id: int, *, tx_id: str, envelope: bytes, now_ms: int) -> None:
    """Store the signed ``ChangeStatus`` envelope of a pending status entry before submitting it."""
    entry = session.get(Outbox, outbox_id, with_for_update=True)
    if entry is None or entry.kind != "status":
        raise NotFoundError("status outbox entry", str(outbox_id))
    if entry.state != "pending":
        if entry.tx_id == tx_id:
            return
        raise ConflictError("status entry already submitted", current=entry.tx_id, requested=tx_id)
    entry.state, entry.tx_id, entry.envelope, entry.batched_ms = "batched", tx_id, envelope, now_ms
    session.flush()


def record_status_anchored(session: Session, outbox_id: int, *, block_number: int, now_ms: int) -> None:
    """Mark a submitted status change committed in ``block_number`` (idempotent)."""
    entry = session.get(Outbox, outbox_id, with_for_update=True)
    if entry is None or entry.kind != "status":
        raise NotFoundError("status outbox entry", str(outbox_id))
    if entry.state == "anchored":
        return
    if entry.state != "batched":
        raise ConflictError("status entry was never submitted", current=entry.state, requested="anchored")
    entry.state, entry.block_number, entry.anchored_ms = "anchored", block_number, now_ms
    session.flush()
