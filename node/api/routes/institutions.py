"""``/v1/institutions/{uscc}/staff``: an institution's registered physicians and nurses (its own only)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query

from core.codes import validate_uscc
from core.errors import DocumentError
from node import audit, queries
from node.api.deps import Ctx, SessionDep, StaffReader
from node.api.routes.licenses import ERRORS
from node.api.schemas import StaffPage
from node.errors import PermissionDeniedError

router = APIRouter(tags=["institutions"])


@router.get("/v1/institutions/{uscc}/staff", response_model=StaffPage, responses=ERRORS)
def staff(
    uscc: Annotated[str, Path(min_length=1, max_length=32, description="The institution's USCC (GB 32100).")],
    principal: StaffReader,
    session: SessionDep,
    ctx: Ctx,
    kind: Annotated[Literal["physician", "nurse"] | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> dict[str, Any]:
    """Physicians and nurses whose current license names the institution (primary or filed)."""
    try:
        validate_uscc(uscc)
    except DocumentError as exc:
        raise DocumentError("bad institution code", {"uscc": str(exc)}) from None
    if principal.role == "institution" and principal.institution_uscc != uscc:
        raise PermissionDeniedError("an institution sees only its own staff", role=principal.role)
    total, items = queries.institution_staff(session, uscc, kind=kind, limit=limit, offset=offset)
    audit.record(
        session,
        principal,
        "institution.staff",
        now_ms=ctx.now_ms,
        request_id=ctx.request_id,
        object=uscc,
        personal_data=bool(items),
        detail={"count": len(items), "offset": offset},
    )
    session.commit()
    return {"uscc": uscc, "total": total, "limit": limit, "offset": offset, "items": items}
