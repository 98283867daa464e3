"""``/v1/licenses``: issue, read, history, status and lifecycle events of the province's licenses."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path, Request

from core.errors import DocumentError
from node import audit, queries, records, sealworkers
from node.access import Principal, in_scope, sees_personal_data
from node.api.deps import Ctx, HistoryReader, NodeDep, Operator, Reader, SessionDep, StatusReader
from node.api.schemas import (
    BATCH_BODY,
    LICENSE_BODY,
    ErrorBody,
    EventDone,
    HistoryOut,
    Issued,
    IssuedBatch,
    LicenseOut,
    StatusOut,
)
from node.errors import PermissionDeniedError
from node.lifecycle import Event

router = APIRouter(prefix="/v1/licenses", tags=["licenses"])
ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorBody} for code in (400, 401, 403, 404, 409, 422, 429)}
LicenseIdPath = Annotated[
    str,
    Path(
        min_length=1,
        max_length=160,
        description="GB/T 36904 identifier (1.2.156.3005.2.<type>.<issuer>.<serial>[.<version>.<check>]).",
    ),
]


async def _raw_body(request: Request) -> bytes:
    body = await request.body()
    if not body.strip():
        raise DocumentError("no license document", {"$": "the body must be a license document (a JSON object)"})
    return body


RawBody = Annotated[bytes, Depends(_raw_body)]


def _loaded_in_scope(session: Any, principal: Principal, license_id: str) -> queries.Loaded:
    loaded = queries.load(session, queries.parse_license_ref(license_id))
    if not in_scope(principal, loaded.row.holder_hash, loaded.institutions):
        raise PermissionDeniedError("this license is outside the caller's scope", role=principal.role)
    return loaded


@router.post("", status_code=201, response_model=Issued, responses=ERRORS, openapi_extra=LICENSE_BODY)
def issue_license(body: RawBody, _: Operator, session: SessionDep, node: NodeDep, ctx: Ctx) -> Issued:
    """Validate, seal and store a new license with its outbox entry and audit event, in one transaction."""
    stored = records.issue(session, node, body, ctx)
    session.commit()
    return _issued(stored)


def _issued(stored: records.Stored) -> Issued:
    return Issued(
        license_id=stored.full_id,
        base_id=stored.base_id,
        version=stored.version,
        status="pending",
        license_status="active",
        commitment=stored.commitment.hex(),
        seal_key_id=stored.seal_key_id,
        holder_token=stored.holder_token,
    )


@router.post("/batch", status_code=201, response_model=IssuedBatch, responses=ERRORS, openapi_extra=BATCH_BODY)
def issue_licenses(body: RawBody, _: Operator, session: SessionDep, node: NodeDep, ctx: Ctx) -> IssuedBatch:
    """Issue up to 500 licenses in one transaction, all or nothing: 422 naming ``documents[i].<field>`` of every
    bad document, 409 naming those already registered. Each is audited (``license.issue``) as if issued alone."""
    documents = records.batch_documents(body)
    with sealworkers.lease(node) as pool:  # held while sealing and storing: a replaced pool drains first
        stored = records.issue_batch(session, node, documents, ctx, pool=pool)
    session.commit()
    return IssuedBatch(count=len(stored), licenses=[_issued(s) for s in stored])


@router.post("/{license_id}/events", status_code=201, response_model=EventDone, responses=ERRORS)
def post_event(
    license_id: LicenseIdPath,
    event: Annotated[Event, Body()],
    _: Operator,
    session: SessionDep,
    node: NodeDep,
    ctx: Ctx,
) -> EventDone:
    """Change, file, cancel a filing, renew (a new version); suspend, revoke, reinstate (a status change)."""
    ref = queries.parse_license_ref(license_id)
    written = records.apply_event(session, node, ref.base_id, event, ctx)
    session.commit()
    return EventDone(
        base_id=written.license.base_id,
        license_id=written.version.full_id,
        event=event.type,
        version=written.license.current_version,
        new_version=written.version.event_id == written.event.id,
        license_status=written.license.status,
        status="pending",
    )


@router.get("/{license_id}", response_model=LicenseOut, responses=ERRORS)
def get_license(license_id: LicenseIdPath, principal: Reader, session: SessionDep, ctx: Ctx) -> dict[str, Any]:
    """A license version (the current one for a base identifier). Personal data only to entitled roles."""
    loaded = _loaded_in_scope(session, principal, license_id)
    personal = sees_personal_data(principal, loaded.row.holder_hash, loaded.institutions)
    view = queries.license_view(session, loaded, personal=personal)
    if personal:
        audit.record(
            session,
            principal,
            "license.read",
            now_ms=ctx.now_ms,
            request_id=ctx.request_id,
            object=loaded.version.full_id,
            personal_data=True,
        )
    session.commit()
    return view


@router.get("/{license_id}/history", response_model=HistoryOut, responses=ERRORS)
def get_history(license_id: LicenseIdPath, principal: HistoryReader, session: SessionDep, ctx: Ctx) -> dict[str, Any]:
    """Every version and event of a license, with its ledger reference once anchored."""
    loaded = _loaded_in_scope(session, principal, license_id)
    view = queries.history(session, loaded.row, show_actor=principal.role in ("operator", "auditor"))
    audit.record(
        session,
        principal,
        "license.history",
        now_ms=ctx.now_ms,
        request_id=ctx.request_id,
        object=loaded.row.base_id,
    )
    session.commit()
    return view


@router.get("/{license_id}/status", response_model=StatusOut, responses=ERRORS)
def get_status(license_id: LicenseIdPath, principal: StatusReader, session: SessionDep) -> dict[str, Any]:
    """Status, current version, commitment, seal key and anchoring of a license: no personal data."""
    loaded = _loaded_in_scope(session, principal, license_id)
    return queries.status_view(session, loaded)
