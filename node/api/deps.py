"""Request dependencies as ``Annotated`` aliases (the full-stack-fastapi-template pattern).

* :data:`NodeDep` the running node; :data:`SessionDep` one database session per request (the route commits
  once; anything raised rolls everything back, audit entries included); :data:`ReadSessionDep` one for a route
  that only reads (SQLite: a DEFERRED transaction, so a route that waits on the ledger while it reads never
  holds the write lock meanwhile); such a route writes its audit entry in a unit of work of its own;
* :data:`CurrentPrincipal` who is calling: an API key or holder token from ``Authorization: Bearer ...``, or
  the public;
* one alias per role set, checked on every route: :data:`Operator`, :data:`Reader`, :data:`StatusReader`,
  :data:`HistoryReader`, :data:`StaffReader`, :data:`StatisticsReader`, :data:`AuditReader`, :data:`Holder`;
  no credential -> 401, a credential whose role is not in the set -> 403;
* :data:`PublicRateLimit` the per-IP token bucket of the public routes;
* :data:`Ctx` who/which request/when, for records and audit entries.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from node.access import (
    AUDIT_READERS,
    HISTORY_READERS,
    HOLDERS,
    PUBLIC,
    READERS,
    STAFF_READERS,
    STATISTICS_READERS,
    STATUS_READERS,
    WRITERS,
    Principal,
    Role,
)
from node.api.ratelimit import TokenBucket
from node.apikeys import authenticate
from node.context import NodeContext
from node.errors import AuthenticationError, PermissionDeniedError, RateLimitedError
from node.records import Request as Ctx_

_bearer = HTTPBearer(auto_error=False, description="An API key (llk_...) or a holder token (llh_...).")


def get_node(request: Request) -> NodeContext:
    node: NodeContext = request.app.state.node
    return node


NodeDep = Annotated[NodeContext, Depends(get_node)]


def get_session(node: NodeDep) -> Iterator[Session]:
    with node.sessions() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


def get_read_session(node: NodeDep) -> Iterator[Session]:
    with node.read_sessions() as session:
        yield session


ReadSessionDep = Annotated[Session, Depends(get_read_session)]


def get_principal(
    node: NodeDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The request's principal, looked up in a short read-only transaction of its own, so authenticating never
    takes (or queues for) SQLite's write lock; the route's own unit of work begins separately."""
    if credentials is None:
        return PUBLIC
    with node.read_sessions() as session, session.begin():
        return authenticate(session, node.secrets, credentials.credentials)


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]


def require(roles: frozenset[Role]) -> Callable[[Principal], Principal]:
    """A dependency admitting only principals whose role is in ``roles``."""
    allowed = ", ".join(sorted(roles))

    def check(principal: CurrentPrincipal) -> Principal:
        if principal.role == "public":
            raise AuthenticationError(f"this route needs a credential of role {allowed}")
        if principal.role not in roles:
            raise PermissionDeniedError(
                f"role {principal.role} may not use this route ({allowed} may)", role=principal.role
            )
        return principal

    return check


Operator = Annotated[Principal, Depends(require(WRITERS))]
Reader = Annotated[Principal, Depends(require(READERS))]
StatusReader = Annotated[Principal, Depends(require(STATUS_READERS))]
HistoryReader = Annotated[Principal, Depends(require(HISTORY_READERS))]
StaffReader = Annotated[Principal, Depends(require(STAFF_READERS))]
StatisticsReader = Annotated[Principal, Depends(require(STATISTICS_READERS))]
AuditReader = Annotated[Principal, Depends(require(AUDIT_READERS))]
Holder = Annotated[Principal, Depends(require(HOLDERS))]


def rate_limit(request: Request) -> None:
    bucket: TokenBucket = request.app.state.public_bucket
    client = request.client.host if request.client else "unknown"
    wait = bucket.take(client)
    if wait is not None:
        raise RateLimitedError(wait)


PublicRateLimit = Annotated[None, Depends(rate_limit)]


def request_id(request: Request) -> str:
    rid: str = request.state.request_id
    return rid


RequestId = Annotated[str, Depends(request_id)]


def get_ctx(principal: CurrentPrincipal, node: NodeDep, rid: RequestId) -> Ctx_:
    return Ctx_(principal, rid, node.clock())


Ctx = Annotated[Ctx_, Depends(get_ctx)]
