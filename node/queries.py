"""Read models: what each route shows, built from the node's tables. Access decisions are the caller's
(:mod:`node.access`); this module decides *shape*: full document or masked, salt or not, ledger references.

The policy queries (DOMAIN.md): an applicant's own applications and licenses (:func:`holder_licenses`), an
institution's physicians and nurses (:func:`institution_staff`), the authority's statistics
(:func:`statistics`), and public basic registration facts with personal data masked (:func:`public_view`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from core import canonical
from core.codes import LICENSE_OID, LicenseId
from core.divisions import name_of
from core.errors import DocumentError
from core.licenses import License, PhysicianLicense, parse_document
from node.db.models import (
    AnchorBatch,
    AnchorReceipt,
    AuditEntry,
    LicenseEvent,
    LicenseInstitution,
    LicenseVersion,
    Outbox,
)
from node.db.models import License as LicenseRow
from node.errors import ConflictError, NotFoundError


@dataclass(frozen=True, slots=True)
class LicenseRef:
    """A license named by its identifier base, optionally at one version."""

    base_id: str
    version: int | None


def parse_license_ref(text: str) -> LicenseRef:
    """``1.2.156.3005.2.<type>.<issuer>.<serial>`` (base) or the full GB/T 36904 identifier with version."""
    parts = text.split(".")
    try:
        if len(parts) == 10:
            full = LicenseId.parse(text)
            return LicenseRef(full.base, full.version)
        if len(parts) == 8 and ".".join(parts[:5]) == LICENSE_OID:
            return LicenseRef(LicenseId.build(parts[5], parts[6], parts[7], 1).base, None)
        raise DocumentError("license identifier must be a GB/T 36904 identifier or its base (without version)")
    except DocumentError as exc:
        raise DocumentError("bad license identifier", {"id": str(exc)}) from None


def ref_by_commitment(session: Session, commitment: bytes) -> LicenseRef:
    """The license version that committed to ``commitment`` (``SM3(salt || canonical document)``, docs/formats.md),
    by the ``license_versions.commitment`` index; :class:`NotFoundError` if this node holds none. Salts are 32
    random bytes, so two versions sharing a commitment mean a damaged database: :class:`ConflictError`, never a
    guess between them."""
    rows = session.execute(
        sa.select(LicenseRow.base_id, LicenseVersion.version)
        .join(LicenseRow, LicenseRow.id == LicenseVersion.license_id)
        .where(LicenseVersion.commitment == commitment)
        .limit(2)
    ).all()
    if not rows:
        raise NotFoundError("license version with commitment", commitment.hex())
    if len(rows) > 1:
        raise ConflictError(
            "more than one license version has this commitment",
            current=", ".join(f"{base} version {version}" for base, version in rows),
            requested=commitment.hex(),
        )
    [(base_id, version)] = rows
    return LicenseRef(base_id, version)


@dataclass(frozen=True, slots=True)
class Loaded:
    """A license row with one of its versions and the institutions its current version names."""

    row: LicenseRow
    version: LicenseVersion
    institutions: tuple[str, ...]

    def document(self) -> License:
        return parse_document(self.version.document)


def load(session: Session, ref: LicenseRef) -> Loaded:
    """The license and the version ``ref`` names (its current version by default); :class:`NotFoundError`."""
    row = session.scalar(sa.select(LicenseRow).where(LicenseRow.base_id == ref.base_id))
    if row is None:
        raise NotFoundError("license", ref.base_id)
    wanted = row.current_version if ref.version is None else ref.version
    version = session.scalar(
        sa.select(LicenseVersion).where(LicenseVersion.license_id == row.id, LicenseVersion.version == wanted)
    )
    if version is None:
        raise NotFoundError("license version", f"{ref.base_id} version {wanted}")
    usccs = session.scalars(sa.select(LicenseInstitution.uscc).where(LicenseInstitution.license_id == row.id))
    return Loaded(row, version, tuple(usccs))


def _receipt(session: Session, version_id: int) -> dict[str, Any] | None:
    r = session.scalar(sa.select(AnchorReceipt).where(AnchorReceipt.version_id == version_id))
    if r is None:
        return None
    return {
        "batch_seq": r.batch_seq,
        "leaf_index": r.leaf_index,
        "batch_root": r.batch_root.hex(),
        "tx_id": r.tx_id,
        "block_number": r.block_number,
        "log_index": r.log_index,
        "anchored_ms": r.anchored_ms,
    }


def license_view(session: Session, loaded: Loaded, *, personal: bool) -> dict[str, Any]:
    """A license version: full document and salt if ``personal``, else the masked document without salt."""
    doc = loaded.document()
    version = loaded.version
    receipt = _receipt(session, version.id)
    view: dict[str, Any] = {
        "license_id": version.full_id,
        "base_id": loaded.row.base_id,
        "kind": loaded.row.kind,
        "version": version.version,
        "current_version": loaded.row.current_version,
        "status": "anchored" if receipt else "pending",
        "license_status": loaded.row.status,
        "commitment": version.commitment.hex(),
        "seal": canonical.decode(version.seal),
        "document": doc.to_canonical_dict() if personal else doc.masked(),
        "masked": not personal,
        "anchor": receipt,
    }
    if personal:
        view["salt"] = version.salt.hex()
    return view


def status_view(session: Session, loaded: Loaded) -> dict[str, Any]:
    """What an agency checks: status, version, commitment, seal key, anchoring. No personal data."""
    receipt = _receipt(session, loaded.version.id)
    return {
        "license_id": loaded.version.full_id,
        "base_id": loaded.row.base_id,
        "kind": loaded.row.kind,
        "current_version": loaded.row.current_version,
        "license_status": loaded.row.status,
        "status": "anchored" if receipt else "pending",
        "commitment": loaded.version.commitment.hex(),
        "seal_key_id": loaded.version.seal_key_id,
        "anchor": receipt,
    }


def public_view(session: Session, loaded: Loaded) -> dict[str, Any]:
    """Basic registration facts for anyone: the masked document, status and commitment."""
    return {**status_view(session, loaded), "document": loaded.document().masked()}


def history(session: Session, row: LicenseRow, *, show_actor: bool) -> dict[str, Any]:
    """Every version and event of a license, each with its ledger reference once anchored."""
    versions = session.scalars(
        sa.select(LicenseVersion).where(LicenseVersion.license_id == row.id).order_by(LicenseVersion.version)
    ).all()
    events = session.scalars(
        sa.select(LicenseEvent).where(LicenseEvent.license_id == row.id).order_by(LicenseEvent.id)
    ).all()
    entries: dict[int, Outbox] = {}
    for entry in session.scalars(sa.select(Outbox).where(Outbox.license_id == row.id).order_by(Outbox.id)):
        entries.setdefault(entry.event_id, entry)  # a version event's leaf, not its version update
    seqs = {e.batch_seq for e in entries.values() if e.kind == "leaf" and e.batch_seq is not None}
    batches = {b.batch_seq: b for b in session.scalars(sa.select(AnchorBatch).where(AnchorBatch.batch_seq.in_(seqs)))}
    version_of_event = {v.event_id: v.version for v in versions}
    out_events = []
    for e in events:
        item: dict[str, Any] = {
            "type": e.type,
            "reason": e.reason,
            "occurred_ms": e.occurred_ms,
            "version": e.version,
            "license_status": e.status,
            "new_version": e.id in version_of_event,
            "actor_role": e.actor_role,
            "ledger": _ledger_ref(entries.get(e.id), batches),
        }
        if show_actor:
            item["actor"] = e.actor
        out_events.append(item)
    return {
        "base_id": row.base_id,
        "kind": row.kind,
        "current_version": row.current_version,
        "license_status": row.status,
        "versions": [
            {
                "version": v.version,
                "license_id": v.full_id,
                "commitment": v.commitment.hex(),
                "leaf_hash": v.leaf_hash.hex(),
                "seal_key_id": v.seal_key_id,
                "created_ms": v.created_ms,
                "status": "anchored" if (receipt := _receipt(session, v.id)) else "pending",
                "anchor": receipt,
            }
            for v in versions
        ],
        "events": out_events,
    }


def _ledger_ref(entry: Outbox | None, batches: dict[int, AnchorBatch]) -> dict[str, Any] | None:
    """An event's outbox entry as the API shows it; a leaf is ``anchored`` in its batch's block once its batch
    is (:mod:`node.outbox`: the entry itself stays ``batched``)."""
    if entry is None:
        return None
    state, block = entry.state, entry.block_number
    batch = batches.get(entry.batch_seq) if entry.kind == "leaf" and entry.batch_seq is not None else None
    if batch is not None and batch.state == "anchored":
        state, block = "anchored", batch.block_number
    return {
        "kind": entry.kind,
        "state": state,
        "tx_id": entry.tx_id,
        "block_number": block,
        "batch_seq": entry.batch_seq,
        "leaf_index": entry.leaf_index,
        "status_seq": entry.status_seq,
    }


def holder_licenses(session: Session, holder_hash: bytes) -> list[dict[str, Any]]:
    """An applicant's own licenses: full documents, progress (anchoring) and every event."""
    rows = session.scalars(
        sa.select(LicenseRow).where(LicenseRow.holder_hash == holder_hash).order_by(LicenseRow.id)
    ).all()
    out = []
    for row in rows:
        loaded = load(session, LicenseRef(row.base_id, None))
        view = license_view(session, loaded, personal=True)
        view["events"] = history(session, row, show_actor=False)["events"]
        out.append(view)
    return out


def institution_staff(
    session: Session, uscc: str, *, kind: str | None, limit: int, offset: int
) -> tuple[int, list[dict[str, Any]]]:
    """Physicians and nurses registered at institution ``uscc`` (primary or filed): total and one page."""
    query = (
        sa.select(LicenseRow, LicenseInstitution.relation)
        .join(LicenseInstitution, LicenseInstitution.license_id == LicenseRow.id)
        .where(LicenseInstitution.uscc == uscc, LicenseRow.kind.in_(("physician", "nurse")))
    )
    if kind is not None:
        query = query.where(LicenseRow.kind == kind)
    total = session.scalar(sa.select(sa.func.count()).select_from(query.subquery())) or 0
    page = session.execute(query.order_by(LicenseRow.id).limit(limit).offset(offset)).all()
    items = []
    for row, relation in page:
        doc = load(session, LicenseRef(row.base_id, None)).document()
        item: dict[str, Any] = {
            "license_id": str(doc.license_id),
            "kind": row.kind,
            "relation": relation,
            "license_status": row.status,
            "name": doc.holder.name,
        }
        if isinstance(doc, PhysicianLicense):
            item["practice_category"] = doc.practice.category
            item["practice_scope"] = list(doc.practice.scope)
        else:
            item["valid_to"] = doc.to_canonical_dict()["valid_to"]
        items.append(item)
    return total, items


def _counts(session: Session, *columns: Any, where: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    query = sa.select(*columns, sa.func.count()).where(*where).group_by(*columns).order_by(*columns)
    return [tuple(r) for r in session.execute(query).all()]


def statistics(session: Session, *, top_institutions: int = 50) -> dict[str, Any]:
    """Counts by kind, status, practice category, institution and city, and changes per month and type."""
    by_category: dict[str, dict[str, int]] = {}
    for kind, category, count in _counts(
        session,
        LicenseRow.kind,
        LicenseRow.practice_category,
        where=[LicenseRow.practice_category.is_not(None)],
    ):
        by_category.setdefault(kind, {})[category] = count
    staff = sa.func.count().label("n")
    institutions = session.execute(
        sa.select(LicenseRow.institution_uscc, staff)
        .where(LicenseRow.kind.in_(("physician", "nurse")))
        .group_by(LicenseRow.institution_uscc)
        .order_by(staff.desc(), LicenseRow.institution_uscc)
        .limit(top_institutions)
    ).all()
    return {
        "total": session.scalar(sa.select(sa.func.count()).select_from(LicenseRow)) or 0,
        "by_kind": {k: n for k, n in _counts(session, LicenseRow.kind)},
        "by_status": {s: n for s, n in _counts(session, LicenseRow.status)},
        "by_practice_category": by_category,
        "by_city": [
            {"city_code": c, "name": name_of(c), "kind": k, "count": n}
            for c, k, n in _counts(session, LicenseRow.city_code, LicenseRow.kind)
        ],
        "top_institutions_by_staff": [{"uscc": u, "staff": n} for u, n in institutions],
        "changes_by_month": [
            {"month": m, "type": t, "count": n} for m, t, n in _counts(session, LicenseEvent.month, LicenseEvent.type)
        ],
    }


def audit_entries(
    session: Session, *, object: str | None, actor: str | None, after_id: int, limit: int
) -> list[dict[str, Any]]:
    """Audit log entries in order, filtered by object and actor, from ``after_id`` on."""
    query = sa.select(AuditEntry).where(AuditEntry.id > after_id)
    if object is not None:
        query = query.where(AuditEntry.object == object)
    if actor is not None:
        query = query.where(AuditEntry.actor == actor)
    return [
        {
            "id": e.id,
            "occurred_ms": e.occurred_ms,
            "actor": e.actor,
            "role": e.role,
            "action": e.action,
            "object": e.object,
            "personal_data": e.personal_data,
            "detail": canonical.decode(e.detail),
            "request_id": e.request_id,
        }
        for e in session.scalars(query.order_by(AuditEntry.id).limit(limit))
    ]
