"""The province's license records: issuing and lifecycle events, each one unit of work.

Every function here only *adds to the caller's session*; the caller (a request, an import chunk) commits once,
so a license, its version, its event, its outbox entry and its audit entry commit together or not at all.

Issuing (``POST /v1/licenses``, ``licledger node import``), in order:

1. the document is parsed and validated (:func:`core.licenses.parse_document`; each bad field named);
2. its issuer is this node's province and authority (else :class:`DocumentError` on ``issuer.*``);
3. the license (identifier base, GB/T 36904) is not yet registered (else :class:`ConflictError`);
4. a fresh salt and the commitment ``SM3(salt || canonical bytes)`` (:mod:`core.commitment`), the RFC 9162
   leaf hash, and the seal: the province's SM2 signature (:func:`core.seal.seal_document`);
5. rows: license, ``issue`` event, version, institutions, outbox leaf (:mod:`node.outbox`), audit entry;
6. for a natural-person holder, a holder token (:mod:`node.tokens`), returned once.

Events (``POST /v1/licenses/{id}/events``): the license row is locked (``FOR UPDATE``), the transition checked
(:mod:`node.lifecycle`), then either a new version (steps 4-5 with the new document) or a status change
(an outbox status entry citing the current version).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from core import canonical
from core.commitment import commitment, license_leaf_hash, new_salt
from core.errors import DocumentError
from core.licenses import (
    InstitutionLicense,
    License,
    NurseLicense,
    PhysicianLicense,
    canonical_bytes,
    parse_document,
)
from core.seal import seal_document
from core.transactions import NEW_VERSION
from node import audit, lifecycle, outbox
from node.access import Principal
from node.context import NodeContext
from node.db.models import HolderToken, LicenseEvent, LicenseInstitution, LicenseVersion, Outbox
from node.db.models import License as LicenseRow
from node.errors import ConflictError, InvalidTransitionError, NotFoundError
from node.tokens import HOLDER_TOKEN_PREFIX, new_credential


@dataclass(frozen=True, slots=True)
class Request:
    """Who is acting, in which request, at what time: stamped on events and audit entries."""

    principal: Principal
    request_id: str
    now_ms: int


@dataclass(frozen=True, slots=True)
class Written:
    """What an event stored: the license row, its current version and the event."""

    license: LicenseRow
    version: LicenseVersion
    event: LicenseEvent


def _month(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m")


# --- derived columns ------------------------------------------------------------------------------------


def institutions_of(doc: License) -> dict[str, str]:
    """USCC -> relation (``primary``, ``filed``, ``holder``) of the institutions a license names."""
    if isinstance(doc, PhysicianLicense):
        out = {doc.practice.primary_institution.uscc: "primary"}
        out.update({f.uscc: "filed" for f in doc.practice.filed_institutions})
        return out
    if isinstance(doc, NurseLicense):
        return {doc.practice.institution.uscc: "primary"}
    return {doc.holder.uscc: "holder"}


def _facets(doc: License, node: NodeContext) -> dict[str, Any]:
    """The license row's lookup and statistics columns for document ``doc``."""
    category: str | None
    if isinstance(doc, InstitutionLicense):
        uscc, category, city = doc.holder.uscc, doc.practice.category, doc.holder.division[:4] + "00"
        holder = None
    else:
        uscc = (
            doc.practice.primary_institution.uscc
            if isinstance(doc, PhysicianLicense)
            else doc.practice.institution.uscc
        )
        category = doc.practice.category if isinstance(doc, PhysicianLicense) else None
        # The institution's registration division (USCC positions 3-8) at prefecture level.
        city = uscc[2:6] + "00"
        holder = node.secrets.holder_hash(doc.holder.citizen_id)
    return {"institution_uscc": uscc, "practice_category": category, "city_code": city, "holder_hash": holder}


def _check_issuer(doc: License, node: NodeContext) -> None:
    settings = node.settings
    errors: dict[str, str] = {}
    if doc.issuer.province != settings.province:
        errors["issuer.province"] = f"is not this node's province {settings.province}"
    if doc.issuer.authority_uscc != settings.authority_uscc:
        errors["issuer.authority_uscc"] = "is not this node's issuing authority"
    if doc.issuer.authority != settings.authority:
        errors["issuer.authority"] = "is not the name of this node's issuing authority"
    if errors:
        raise DocumentError("license not issued by this node's authority", errors)


# --- writing ----------------------------------------------------------------------------------------------


def _sealed(doc: License, node: NodeContext, now_ms: int) -> dict[str, Any]:
    """Step 4: the version columns of ``doc``: canonical bytes, fresh salt, commitment, leaf hash and seal."""
    data = canonical_bytes(doc)
    salt = new_salt()
    value = commitment(data, salt)
    seal = seal_document(doc, node.signing_key, now_ms)
    return {
        "version": doc.version,
        "full_id": str(doc.license_id),
        "document": data,
        "salt": salt,
        "commitment": value,
        "leaf_hash": license_leaf_hash(doc.license_id, doc.version, value),
        "seal": canonical.encode(seal.to_dict()),
        "seal_key_id": seal.key_id,
        "created_ms": now_ms,
    }


def _event_values(kind: str, reason: str, version: int, status: str, req: Request) -> dict[str, Any]:
    return {
        "type": kind,
        "reason": reason,
        "actor": req.principal.actor[:64],
        "actor_role": req.principal.role,
        "occurred_ms": req.now_ms,
        "month": _month(req.now_ms),
        "version": version,
        "status": status,
        "request_id": req.request_id[:64],
    }


def _store_version(
    session: Session, node: NodeContext, row: LicenseRow, doc: License, event: LicenseEvent, now_ms: int
) -> LicenseVersion:
    """A new version of an existing license (events), with its outbox leaf and institutions."""
    version = LicenseVersion(license_id=row.id, event_id=event.id, **_sealed(doc, node, now_ms))
    session.add(version)
    session.flush()
    outbox.enqueue_leaf(session, row, version, event, now_ms)
    session.execute(sa.delete(LicenseInstitution).where(LicenseInstitution.license_id == row.id))
    session.add_all(
        LicenseInstitution(license_id=row.id, uscc=uscc, relation=relation)
        for uscc, relation in institutions_of(doc).items()
    )
    return version


def validate(document: Mapping[str, Any] | bytes, node: NodeContext) -> License:
    """Steps 1-2: the parsed document, issued by this node's authority; :class:`DocumentError` otherwise."""
    doc = parse_document(document)
    _check_issuer(doc, node)
    return doc


@dataclass(frozen=True, slots=True)
class Stored:
    """A newly registered license, as the issuing answer reports it."""

    base_id: str
    full_id: str
    version: int
    commitment: bytes
    seal_key_id: str
    holder_token: str | None


def issue(
    session: Session,
    node: NodeContext,
    document: Mapping[str, Any] | bytes,
    req: Request,
) -> Stored:
    """Register a new license (steps 1-6 of the module docstring) in ``session``."""
    doc = validate(document, node)
    base = doc.license_id.base
    existing = session.scalar(sa.select(LicenseRow.current_version).where(LicenseRow.base_id == base))
    if existing is not None:
        raise ConflictError(
            f"license {base} is already registered",
            current=f"version {existing}",
            requested=f"version {doc.version}",
        )
    [stored] = store_many(session, node, [doc], req)
    return stored


def _insert_returning_ids(session: Session, model: Any, rows: list[dict[str, Any]]) -> list[int]:
    ids = session.scalars(sa.insert(model).returning(model.id, sort_by_parameter_order=True), rows).all()
    return list(ids)


def store_many(
    session: Session,
    node: NodeContext,
    docs: Sequence[License],
    req: Request,
    *,
    reason: str = "issue",
    with_holder_token: bool = True,
    audit_entry: bool = True,
) -> list[Stored]:
    """Steps 4-6 for validated documents whose licenses the caller checked are not yet registered (and are
    distinct): a handful of multi-row INSERTs, whatever the number of documents."""
    if not docs:
        return []
    now = req.now_ms
    facets = [_facets(doc, node) for doc in docs]
    license_ids = _insert_returning_ids(
        session,
        LicenseRow,
        [
            {
                "base_id": doc.license_id.base,
                "kind": doc.kind,
                "current_version": doc.version,
                "status": "active",
                "status_seq": 0,
                "created_ms": now,
                "updated_ms": now,
                **facet,
            }
            for doc, facet in zip(docs, facets, strict=True)
        ],
    )
    event_ids = _insert_returning_ids(
        session,
        LicenseEvent,
        [
            {"license_id": lid, **_event_values("issue", reason, doc.version, "active", req)}
            for doc, lid in zip(docs, license_ids, strict=True)
        ],
    )
    sealed = [_sealed(doc, node, now) for doc in docs]
    version_ids = _insert_returning_ids(
        session,
        LicenseVersion,
        [
            {"license_id": lid, "event_id": eid, **values}
            for lid, eid, values in zip(license_ids, event_ids, sealed, strict=True)
        ],
    )
    session.execute(
        sa.insert(Outbox),
        [
            outbox.leaf_values(doc.license_id.base, doc.version, lid, vid, eid, now)
            for doc, lid, vid, eid in zip(docs, license_ids, version_ids, event_ids, strict=True)
        ],
    )
    session.execute(
        sa.insert(LicenseInstitution),
        [
            {"license_id": lid, "uscc": uscc, "relation": relation}
            for doc, lid in zip(docs, license_ids, strict=True)
            for uscc, relation in institutions_of(doc).items()
        ],
    )
    out = []
    for doc, facet, values in zip(docs, facets, sealed, strict=True):
        holder = facet["holder_hash"]
        token = new_holder_token(session, node, holder, now) if with_holder_token and holder is not None else None
        if audit_entry:
            audit.record(
                session,
                req.principal,
                "license.issue",
                now_ms=now,
                request_id=req.request_id,
                object=doc.license_id.base,
                detail={"version": doc.version, "kind": doc.kind},
            )
        out.append(
            Stored(
                doc.license_id.base, values["full_id"], doc.version, values["commitment"], values["seal_key_id"], token
            )
        )
    session.flush()
    return out


def lock_license(session: Session, base_id: str) -> LicenseRow:
    """The license row, locked for update until the end of the transaction; :class:`NotFoundError`."""
    row = session.scalar(sa.select(LicenseRow).where(LicenseRow.base_id == base_id).with_for_update())
    if row is None:
        raise NotFoundError("license", base_id)
    return row


def current_version(session: Session, row: LicenseRow) -> LicenseVersion:
    version = session.scalar(
        sa.select(LicenseVersion).where(
            LicenseVersion.license_id == row.id, LicenseVersion.version == row.current_version
        )
    )
    assert version is not None, "a license row always has its current version"
    return version


def apply_event(session: Session, node: NodeContext, base_id: str, event: Any, req: Request) -> Written:
    """Apply lifecycle ``event`` (a :data:`node.lifecycle.Event`) to license ``base_id``."""
    row = lock_license(session, base_id)
    current = current_version(session, row)
    if isinstance(event, lifecycle.StatusEvent):
        if event.type not in lifecycle.TRANSITIONS[row.status]:
            raise InvalidTransitionError(event.type, row.status)
        row.status = lifecycle.status_after(row.status, event.type)
        row.updated_ms = req.now_ms
        record = LicenseEvent(
            license_id=row.id, **_event_values(event.type, event.reason, row.current_version, row.status, req)
        )
        session.add(record)
        session.flush()
        last = outbox.last_effective_ms(session, row.id)
        effective = req.now_ms if last is None else max(req.now_ms, last)
        outbox.enqueue_status(
            session,
            row,
            current,
            record,
            status=row.status,
            reason=event.reason,
            effective_ms=effective,
            now_ms=req.now_ms,
        )
        written = Written(row, current, record)
    else:
        if row.status not in lifecycle.WRITABLE_STATUSES:
            raise InvalidTransitionError(event.type, row.status)
        doc = parse_document(current.document)
        try:
            new_doc = lifecycle.next_document(doc, event, datetime.fromtimestamp(req.now_ms / 1000, UTC))
        except ValueError as exc:  # past version 999
            if isinstance(exc, DocumentError):
                raise
            raise ConflictError(str(exc), current=f"version {row.current_version}") from None
        row.current_version = new_doc.version
        row.updated_ms = req.now_ms
        for name, value in _facets(new_doc, node).items():
            setattr(row, name, value)
        record = LicenseEvent(
            license_id=row.id, **_event_values(event.type, event.reason, row.current_version, row.status, req)
        )
        session.add(record)
        session.flush()
        version = _store_version(session, node, row, new_doc, record, req.now_ms)
        session.flush()
        # the version update: once this version is anchored, the ledger's status record names it (same status),
        # so a verifier shown an older version's bundle learns it is superseded (docs/chaincode.md "Status map")
        last = outbox.last_effective_ms(session, row.id)
        outbox.enqueue_status(
            session,
            row,
            version,
            record,
            status=row.status,
            reason=NEW_VERSION,
            effective_ms=req.now_ms if last is None else max(req.now_ms, last),
            now_ms=req.now_ms,
        )
        written = Written(row, version, record)
    audit.record(
        session,
        req.principal,
        f"license.{event.type}",
        now_ms=req.now_ms,
        request_id=req.request_id,
        object=base_id,
        detail={"version": row.current_version, "status": row.status},
    )
    session.flush()
    return written


def new_holder_token(session: Session, node: NodeContext, holder_hash: bytes, now_ms: int) -> str:
    """A new holder token for the holder ``holder_hash``; the text is returned once and stored hashed."""
    credential = new_credential(HOLDER_TOKEN_PREFIX)
    session.add(
        HolderToken(
            token_id=credential.id,
            secret_hash=node.secrets.credential_hash(credential),
            holder_hash=holder_hash,
            created_ms=now_ms,
        )
    )
    return str(credential)


def issue_holder_token(session: Session, node: NodeContext, citizen_id: str, req: Request) -> str:
    """A fresh holder token for the holder of a citizen ID that has a license here (lost-token case)."""
    holder = node.secrets.holder_hash(citizen_id)
    if session.scalar(sa.select(LicenseRow.id).where(LicenseRow.holder_hash == holder).limit(1)) is None:
        raise NotFoundError("holder", "with this citizen ID")
    token = new_holder_token(session, node, holder, req.now_ms)
    audit.record(
        session,
        req.principal,
        "holder_token.issue",
        now_ms=req.now_ms,
        request_id=req.request_id,
        detail={"token_id": token.split("_")[1]},
    )
    return token
