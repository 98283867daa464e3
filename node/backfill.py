"""Backfilling version updates: the ``NEW_VERSION`` status changes that a node created before them never wrote.

Since migration 0002 a version event writes, with its new version's ``leaf``, a *version update*: a ``status``
outbox entry with reason ``NEW_VERSION`` citing the new version (:func:`node.records.apply_event`,
docs/node.md "The outbox"), so that once the version is anchored the ledger's status record names it and
bundles of older versions verify as SUPERSEDED. A database whose versions were made before that holds new
versions without their update: the ledger's status map still cites an older leaf (or nothing).

Rules (``licledger node backfill-version-updates``, docs/node.md):

1. **Which licenses.** Those whose current version was made by a version event (:data:`node.lifecycle.VERSION_EVENTS`)
   and is cited by no ``status`` entry. A ``NEW_VERSION`` entry citing it means there is nothing to do; so does
   any other status change citing it (a suspension after the new version): the ledger's record will name the
   current version through that change, and a version update after it would be refused by the contract
   (``VERSION_REGRESSION``: an update must cite a newer version than the record's). Those are counted, not
   changed.
2. **Exactly what the event would have written.** :func:`node.outbox.enqueue_status` with the version's event,
   the license's status (unchanged since that event, by rule 1), reason ``NEW_VERSION``, the license's next
   ``status_seq`` and ``effective_ms`` = the event's time, or the latest status change's if that is later (the
   ledger refuses a regression). The anchoring worker submits it once the version is anchored, like any other.
3. **One transaction per license**, with the license row locked (``FOR UPDATE``; ``BEGIN IMMEDIATE`` on SQLite)
   and rule 1 checked again under the lock, so a node serving meanwhile is safe and running it twice (or
   concurrently) enqueues nothing twice. Each entry comes with a ``license.version_update`` audit entry.
4. A dry run (the default) reads only: it runs no migration and writes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.orm import Session, aliased

from core.transactions import NEW_VERSION
from node import audit, outbox
from node.access import Principal
from node.context import NodeContext
from node.db.models import License, LicenseEvent, LicenseVersion, Outbox
from node.lifecycle import VERSION_EVENTS

BACKFILL = Principal("operator", "cli-backfill")
"""Who the audit log names for backfilled entries."""


@dataclass(frozen=True, slots=True)
class VersionUpdate:
    """A version update to enqueue (dry run) or enqueued (apply); identifiers and codes only."""

    base_id: str
    full_id: str
    version: int
    event: str
    """The version event that made the version (``change``, ``filing``, ``cancel-filing``, ``renew``)."""
    status: str
    status_seq: int
    effective_ms: int

    def describe(self) -> str:
        return (
            f"{self.base_id}: version {self.version} ({self.event}), status {self.status}, "
            f"status_seq {self.status_seq}, effective {self.effective_ms}"
        )


@dataclass
class BackfillResult:
    """What :func:`backfill` found and, when applied, did."""

    applied: bool
    updates: list[VersionUpdate] = field(default_factory=list)
    """Enqueued (applied) or to enqueue (dry run), in license order."""
    cited: int = 0
    """Licenses whose current version (made by a version event) a later status change already cites (rule 1)."""


def _missing(cited_only: bool = False) -> sa.Select[int, str, str, int, str, int, int, str, int, int | None]:
    """Licenses of rule 1: current version made by a version event, cited by no status entry (``cited_only``:
    cited by a status entry other than a version update, instead)."""
    citing = aliased(Outbox)
    last = aliased(Outbox)
    cited = sa.select(citing.id).where(citing.kind == "status", citing.version_id == LicenseVersion.id)
    if cited_only:
        update = aliased(Outbox)
        cited_by_update = sa.select(update.id).where(
            update.kind == "status", update.version_id == LicenseVersion.id, update.reason == NEW_VERSION
        )
        condition = sa.and_(cited.exists(), ~cited_by_update.exists())
    else:
        condition = ~cited.exists()
    last_effective = (
        sa.select(sa.func.max(last.effective_ms))
        .where(last.license_id == License.id, last.kind == "status")
        .scalar_subquery()
    )
    return (
        sa.select(
            License.id,
            License.base_id,
            LicenseVersion.full_id,
            LicenseVersion.version,
            License.status,
            License.status_seq,
            LicenseEvent.id,
            LicenseEvent.type,
            LicenseEvent.occurred_ms,
            last_effective,
        )
        .join(
            LicenseVersion,
            sa.and_(LicenseVersion.license_id == License.id, LicenseVersion.version == License.current_version),
        )
        .join(LicenseEvent, LicenseEvent.id == LicenseVersion.event_id)
        .where(LicenseEvent.type.in_(VERSION_EVENTS), condition)
        .order_by(License.id)
    )


_Row = sa.Row[int, str, str, int, str, int, int, str, int, int | None]


def _update(row: _Row) -> VersionUpdate:
    _, base_id, full_id, version, status, seq, _, event, occurred, last = row
    effective = occurred if last is None else max(occurred, last)
    return VersionUpdate(base_id, full_id, version, event, status, seq, effective)


def plan(session: Session) -> BackfillResult:
    """Rule 1, read only: the version updates a run would enqueue now, and the count of licenses already cited."""
    updates = [_update(row) for row in session.execute(_missing())]
    cited = len(session.execute(_missing(cited_only=True)).all())
    return BackfillResult(applied=False, updates=updates, cited=cited)


def _apply_one(node: NodeContext, base_id: str, now_ms: int) -> VersionUpdate | None:
    """Rules 2-3 for one license, in its own transaction; ``None`` if it no longer needs one."""
    with node.sessions() as session, session.begin():
        row = session.scalar(sa.select(License).where(License.base_id == base_id).with_for_update())
        if row is None:
            return None
        found = session.execute(_missing().where(License.id == row.id)).one_or_none()
        if found is None:  # done meanwhile (another run, or a status change now cites the version)
            return None
        update = _update(found)
        event_pk = found[6]
        version = session.scalar(
            sa.select(LicenseVersion).where(LicenseVersion.license_id == row.id, LicenseVersion.event_id == event_pk)
        )
        event = session.get(LicenseEvent, event_pk)
        assert version is not None and event is not None
        outbox.enqueue_status(
            session,
            row,
            version,
            event,
            status=update.status,
            reason=NEW_VERSION,
            effective_ms=update.effective_ms,
            now_ms=now_ms,
        )
        audit.record(
            session,
            BACKFILL,
            "license.version_update",
            now_ms=now_ms,
            request_id=f"backfill-{now_ms}",
            object=row.base_id,
            detail={"version": update.version, "status": update.status, "status_seq": update.status_seq},
        )
        return update


def backfill(
    node: NodeContext, *, apply: bool, report: Callable[[VersionUpdate], None] | None = None
) -> BackfillResult:
    """Rules 1-4: the plan (dry run), or the plan carried out one license per transaction (``apply``), calling
    ``report`` for each update as it is enqueued. The database must be at the newest schema to ``apply``."""
    with node.read_sessions() as session:
        planned = plan(session)
    if not apply:
        return planned
    done = BackfillResult(applied=True, cited=planned.cited)
    for candidate in planned.updates:
        update = _apply_one(node, candidate.base_id, node.clock())
        if update is not None:
            done.updates.append(update)
            if report is not None:
                report(update)
    return done
