"""The authority's statistics (``/v1/stats``), the audit log (``/v1/audit``) and the sealing workers' state
(``/v1/sealing``)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from node import audit, queries, sealworkers
from node.api.deps import AuditReader, Ctx, SessionDep, StatisticsReader
from node.api.routes.licenses import ERRORS
from node.api.schemas import AuditPage

router = APIRouter(tags=["oversight"])


@router.get("/v1/stats", responses=ERRORS)
def stats(
    principal: StatisticsReader,
    session: SessionDep,
    ctx: Ctx,
    top: Annotated[int, Query(ge=1, le=1000, description="How many institutions to rank by staff.")] = 50,
) -> dict[str, Any]:
    """Counts by kind, status, practice category, city and institution; changes per month and event type."""
    result = queries.statistics(session, top_institutions=top)
    audit.record(session, principal, "stats.read", now_ms=ctx.now_ms, request_id=ctx.request_id)
    session.commit()
    return result


@router.get("/v1/audit", response_model=AuditPage, responses=ERRORS)
def audit_log(
    principal: AuditReader,
    session: SessionDep,
    ctx: Ctx,
    object: Annotated[str | None, Query(max_length=160, description="A license id, base id or USCC.")] = None,
    actor: Annotated[str | None, Query(max_length=64, description="role:key_id")] = None,
    after_id: Annotated[int, Query(ge=0, le=2**62)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """Audit entries in order (page with ``after_id`` = the last id seen)."""
    entries = queries.audit_entries(session, object=object, actor=actor, after_id=after_id, limit=limit)
    audit.record(
        session,
        principal,
        "audit.read",
        now_ms=ctx.now_ms,
        request_id=ctx.request_id,
        detail={"count": len(entries)},
    )
    session.commit()
    return {"entries": entries}


@router.get("/v1/sealing", responses=ERRORS)
def sealing_workers(_: StatisticsReader) -> dict[str, Any]:
    """The batch route's sealing workers (``node serve --seal-workers N``): the key id their pool seals with,
    their process ids, processes of a replaced pool still draining, pools started (one more per key rotation),
    batches sealed by the workers and in the request's thread. Identifiers and counts only."""
    return sealworkers.status()
