"""The holder's own records (``/v1/holder``) and the operator's holder-token desk (``/v1/holder-tokens``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from core.codes import validate_citizen_id
from core.errors import DocumentError
from node import audit, queries, records
from node.api.deps import Ctx, Holder, NodeDep, Operator, SessionDep
from node.api.routes.licenses import ERRORS
from node.api.schemas import HolderLicenses, HolderTokenIn, HolderTokenOut

router = APIRouter(tags=["holder"])


@router.get("/v1/holder/licenses", response_model=HolderLicenses, responses=ERRORS)
def my_licenses(principal: Holder, session: SessionDep, ctx: Ctx) -> dict[str, Any]:
    """The caller's own licenses (holder token): documents, anchoring progress, every event."""
    assert principal.holder_hash is not None
    items = queries.holder_licenses(session, principal.holder_hash)
    audit.record(
        session,
        principal,
        "holder.licenses",
        now_ms=ctx.now_ms,
        request_id=ctx.request_id,
        personal_data=True,
        detail={"count": len(items)},
    )
    session.commit()
    return {"licenses": items}


@router.post("/v1/holder-tokens", status_code=201, response_model=HolderTokenOut, responses=ERRORS)
def new_holder_token(body: HolderTokenIn, _: Operator, session: SessionDep, node: NodeDep, ctx: Ctx) -> HolderTokenOut:
    """Issue another holder token for a holder with a license here (the first comes with issuance)."""
    try:
        validate_citizen_id(body.citizen_id)
    except DocumentError as exc:
        raise DocumentError("bad citizen ID", {"citizen_id": str(exc)}) from None
    token = records.issue_holder_token(session, node, body.citizen_id, ctx)
    session.commit()
    return HolderTokenOut(holder_token=token)
