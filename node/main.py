"""The node's web app: built here, nothing more (routes: ``node.api.routes``, errors: ``node.api.errors``)."""

from __future__ import annotations

import re
import secrets

from fastapi import FastAPI
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from node.api import errors
from node.api.ratelimit import TokenBucket
from node.api.routes import holder, institutions, licenses, oversight, proofs, public, verify
from node.context import NodeContext

_REQUEST_ID = re.compile(r"[0-9A-Za-z_.-]{8,64}")


class RequestLimits:
    """Pure ASGI middleware: a request id for every request, and a cap on request body size (413)."""

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope.get("headers") or []).get(b"x-request-id", b"").decode("latin-1")
        rid = given if _REQUEST_ID.fullmatch(given) else secrets.token_hex(12)
        scope.setdefault("state", {})["request_id"] = rid
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_body_bytes):
            await _too_large(send, rid, self.max_body_bytes)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise _BodyTooLarge()
            return message

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"x-request-id", rid.encode("ascii"))]
            await send(message)

        try:
            await self.app(scope, limited_receive, send_with_id)
        except _BodyTooLarge:
            await _too_large(send, rid, self.max_body_bytes)


class _BodyTooLarge(StarletteHTTPException):
    def __init__(self) -> None:
        super().__init__(413, "request body too large")


async def _too_large(send: Send, rid: str, limit: int) -> None:
    body = f'{{"detail":"request body larger than {limit} bytes","request_id":"{rid}"}}'.encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [(b"content-type", b"application/json"), (b"x-request-id", rid.encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


def create_app(node: NodeContext) -> FastAPI:
    """The FastAPI app of ``node`` (from :func:`~node.context.open_node`)."""
    app = FastAPI(
        title="licledger provincial node",
        version="1",
        description="Issue, change, revoke and query health e-licenses under access control (docs/node.md).",
    )
    app.state.node = node
    app.state.public_bucket = TokenBucket(node.settings.public_rate_per_second, node.settings.public_rate_burst)
    errors.install(app)
    for module in (licenses, holder, institutions, oversight, public, proofs, verify):
        app.include_router(module.router)
    app.add_middleware(RequestLimits, max_body_bytes=node.settings.max_body_bytes)
    return app
