"""The one place where licledger errors become HTTP answers.

==============================================  ======  ================================================
error                                               status  body
==============================================  ======  ================================================
``DocumentError``                                    422    ``detail`` and ``errors`` {field path: message}
other ``FormatError``; request validation            422    ``detail`` and ``errors``
``NotFoundError``                                    404    ``detail``
``AuthenticationError``                              401    ``detail``, ``WWW-Authenticate: Bearer``
``PermissionDeniedError``                            403    ``detail``
``ConflictError``; a unique constraint hit            409    ``detail``, ``current``, ``requested``
other ``VerificationError``                          400    ``detail``
``RateLimitedError``                                 429    ``detail``, ``Retry-After``
``ProofNotReadyError`` (not anchored / no final       425    ``detail``, ``reason``, ``Retry-After``
checkpoint yet)
``LedgerRequestError`` (a peer answered oddly)       502    ``detail``
``LedgerUnavailableError``                           503    ``detail``
``RotationPendingError`` (a key rotation pending)    503    ``detail``, ``Retry-After``
``NoLedgerError`` (the node joined no ledger)         404    ``detail``
anything else                                        500    ``detail``, ``request_id`` (logged, redacted)
==============================================  ======  ================================================

No answer echoes input values: field errors name the field and what is wrong with it.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import IntegrityError
from starlette.exceptions import HTTPException as StarletteHTTPException

from core.errors import DocumentError, FormatError, VerificationError
from node.db.models import EVENT_TYPES
from node.errors import (
    AuthenticationError,
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitedError,
    RotationPendingError,
)
from node.ledger import LedgerRequestError, LedgerUnavailableError
from node.proofs import NoLedgerError, ProofNotReadyError

log = logging.getLogger("node.api")


def _answer(request: Request, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> JSONResponse:
    body.setdefault("request_id", getattr(request.state, "request_id", None))
    return JSONResponse(body, status_code=status, headers=headers)


def _loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "$"


async def _document(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DocumentError)
    return _answer(request, 422, {"detail": str(exc).split(":", 1)[0], "errors": exc.errors or {"$": str(exc)}})


async def _format(request: Request, exc: Exception) -> JSONResponse:
    return _answer(request, 422, {"detail": str(exc), "errors": {"$": str(exc)}})


async def _validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors: dict[str, str] = {}
    for err in exc.errors():
        loc = tuple(err.get("loc", ()))
        # A discriminated union puts its tag into the path: body.filing.filed_on -> body.filed_on
        if len(loc) > 2 and loc[0] == "body" and loc[1] in EVENT_TYPES:
            loc = loc[:1] + loc[2:]
        if err.get("type") in ("union_tag_invalid", "union_tag_not_found"):
            loc = (*loc, "type")
        errors.setdefault(_loc(loc), str(err.get("msg", "is invalid")))
    return _answer(request, 422, {"detail": "request does not match the API", "errors": errors})


async def _not_found(request: Request, exc: Exception) -> JSONResponse:
    return _answer(request, 404, {"detail": str(exc)})


async def _unauthenticated(request: Request, exc: Exception) -> JSONResponse:
    return _answer(request, 401, {"detail": str(exc)}, {"WWW-Authenticate": "Bearer"})


async def _forbidden(request: Request, exc: Exception) -> JSONResponse:
    return _answer(request, 403, {"detail": str(exc)})


async def _conflict(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ConflictError)
    return _answer(request, 409, {"detail": str(exc), "current": exc.current, "requested": exc.requested})


async def _integrity(request: Request, exc: Exception) -> JSONResponse:
    # Two requests raced for the same unique fact (a license id, a version); the loser is told, not crashed.
    return _answer(request, 409, {"detail": "conflicts with a record stored concurrently; retry"})


async def _verification(request: Request, exc: Exception) -> JSONResponse:
    return _answer(request, 400, {"detail": str(exc)})


async def _rate_limited(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RateLimitedError)
    return _answer(request, 429, {"detail": str(exc)}, {"Retry-After": str(exc.retry_after)})


async def _not_ready(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ProofNotReadyError)
    body = {"detail": str(exc), "reason": exc.reason}
    return _answer(request, 425, body, {"Retry-After": str(exc.retry_after)})


async def _bad_gateway(request: Request, exc: Exception) -> JSONResponse:
    log.warning("ledger answered unexpectedly: %s", exc)
    return _answer(request, 502, {"detail": "the ledger answered unexpectedly"})


async def _ledger_down(request: Request, exc: Exception) -> JSONResponse:
    return _answer(
        request, 503, {"detail": str(exc) if isinstance(exc, NoLedgerError) else "the ledger is unreachable"}
    )


async def _rotation_pending(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RotationPendingError)
    return _answer(request, 503, {"detail": str(exc)}, {"Retry-After": str(exc.retry_after)})


async def _http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    return _answer(request, exc.status_code, {"detail": str(exc.detail)}, dict(exc.headers or {}))


async def _internal(request: Request, exc: Exception) -> JSONResponse:
    log.error("unhandled %s in %s %s", type(exc).__name__, request.method, request.url.path, exc_info=exc)
    return _answer(request, 500, {"detail": "internal error"})


def install(app: FastAPI) -> None:
    """Register the handlers of the table above on ``app``."""
    app.add_exception_handler(DocumentError, _document)
    app.add_exception_handler(FormatError, _format)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(NotFoundError, _not_found)
    app.add_exception_handler(AuthenticationError, _unauthenticated)
    app.add_exception_handler(PermissionDeniedError, _forbidden)
    app.add_exception_handler(ConflictError, _conflict)
    app.add_exception_handler(IntegrityError, _integrity)
    app.add_exception_handler(VerificationError, _verification)
    app.add_exception_handler(RateLimitedError, _rate_limited)
    app.add_exception_handler(ProofNotReadyError, _not_ready)
    app.add_exception_handler(LedgerRequestError, _bad_gateway)
    app.add_exception_handler(LedgerUnavailableError, _ledger_down)
    app.add_exception_handler(NoLedgerError, _not_found)
    app.add_exception_handler(RotationPendingError, _rotation_pending)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(Exception, _internal)
