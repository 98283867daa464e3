"""The peer's HTTP API (FastAPI). Built here, served by :mod:`network.peer.__main__` on 127.0.0.1 by default.

Routes (all JSON unless stated):

* ``GET /v1/status``: height, tip block hash, commit hash, health (and the altered block, if any), the latest
  final checkpoint, the ordering node's role and leader.
* ``GET  /v1/blocks?from=N&limit=M``: blocks as stored, each re-verified against the hashes the peer trusts.
* ``POST /v1/transactions?wait=false``: ``{"envelopes": [base64, ...]}``; each envelope's shape is checked,
  then the envelopes are ordered together. Returns the ordering position and block number; with ``wait=true``,
  also each transaction's validity and reason once the block is committed.
* ``GET  /v1/transactions/{tx_id}``: the block, index and verdict of a committed transaction.
* ``GET /v1/query/{function}?arg=...``: the executor's read-only queries (membership, batches, inclusion and
  consistency proofs, license status, checkpoints); the body is the executor's answer, unchanged, with the
  height it was computed at in the ``X-Ledger-Height`` header.
* ``GET  /v1/checkpoint``: the latest final (quorum-cosigned) checkpoint.
* ``GET  /v1/state/digest``: SM3 digest of the whole world state, for comparing peers.

Errors are mapped to HTTP statuses in one place (:func:`_install_error_handlers`): malformed input 400, a
check that failed 422, an unknown item 404, an unavailable orderer or an unhealthy peer 503 (naming the
altered block).
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any

from fastapi import Body, FastAPI, Query, Request
from fastapi.responses import JSONResponse, Response

from chaincode.errors import QueryError, Reason
from core.errors import FormatError, VerificationError
from network.errors import OrderingUnavailableError
from network.peer.errors import PeerUnhealthyError
from network.peer.peer import Peer

MAX_BLOCKS_PER_PAGE = 200
LATEST_FINAL_CHECKPOINT = "GetLatestFinalCheckpoint"


class NotFoundError(LookupError):
    """The requested item does not exist on this peer."""


def _install_error_handlers(app: FastAPI) -> None:
    def handler(status: int) -> Any:
        async def handle(_request: Request, exc: Exception) -> JSONResponse:
            body: dict[str, Any] = {"error": type(exc).__name__, "detail": str(exc)}
            if isinstance(exc, PeerUnhealthyError):
                body["block"] = exc.block
            if isinstance(exc, OrderingUnavailableError):
                body["reason"] = exc.reason
            return JSONResponse(body, status_code=status)

        return handle

    app.add_exception_handler(PeerUnhealthyError, handler(503))
    app.add_exception_handler(OrderingUnavailableError, handler(503))
    app.add_exception_handler(FormatError, handler(400))
    app.add_exception_handler(VerificationError, handler(422))
    app.add_exception_handler(NotFoundError, handler(404))
    app.add_exception_handler(ValueError, handler(400))

    async def query_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, QueryError)
        status = 404 if exc.reason == Reason.NOT_FOUND else 400
        return JSONResponse({"error": "QueryError", "reason": exc.reason.value, "detail": str(exc)}, status_code=status)

    app.add_exception_handler(QueryError, query_error)


def _decode_envelopes(body: Any) -> list[bytes]:
    if not isinstance(body, dict) or not isinstance(body.get("envelopes"), list) or not body["envelopes"]:
        raise FormatError('body must be {"envelopes": [base64, ...]} with at least one envelope')
    out = []
    for i, item in enumerate(body["envelopes"]):
        if not isinstance(item, str):
            raise FormatError(f"envelope {i} is not a base64 string")
        try:
            out.append(base64.b64decode(item, validate=True))
        except (binascii.Error, ValueError):
            raise FormatError(f"envelope {i} is not valid base64") from None
    return out


def create_app(peer: Peer, *, member: str = "", extra_status: Any = None) -> FastAPI:
    """The API of ``peer``. ``extra_status`` (a callable returning a dict) adds fields to ``/v1/status``."""
    app = FastAPI(title=f"licledger peer {member}".strip(), docs_url=None, redoc_url=None, openapi_url=None)
    _install_error_handlers(app)

    @app.get("/v1/status")
    def status() -> dict[str, Any]:
        out: dict[str, Any] = {
            "member": member,
            "height": peer.height,
            "block_hash": peer.tip_hash.hex(),
            "commit_hash": peer.commit_hash.hex(),
            "healthy": peer.healthy,
            "problem": peer.problem,
            "bad_block": peer.bad_block,
            "latest_final_checkpoint": None,
        }
        if peer.healthy:
            try:
                _, raw = peer.query(LATEST_FINAL_CHECKPOINT, [])
                out["latest_final_checkpoint"] = peer.chaincode.describe(raw)
            except (QueryError, FormatError, VerificationError):
                out["latest_final_checkpoint"] = None
        if peer.ordering is not None:
            st = peer.ordering.status()
            out["ordering"] = {
                k: st.get(k) for k in ("role", "leader", "committed_size", "has_quorum", "term") if k in st
            }
        if extra_status is not None:
            out.update(extra_status())
        return out

    @app.get("/v1/blocks")
    def get_blocks(
        start: Annotated[int, Query(alias="from", ge=0)] = 0,
        limit: Annotated[int, Query(ge=1, le=MAX_BLOCKS_PER_PAGE)] = 50,
    ) -> dict[str, Any]:
        blocks = peer.blocks(start, limit)
        return {"height": peer.height, "blocks": [b.to_json() for b in blocks]}

    @app.post("/v1/transactions")
    def submit(
        body: Annotated[Any, Body()],
        wait: bool = False,
        timeout: Annotated[float, Query(gt=0, le=120)] = 30.0,
    ) -> dict[str, Any]:
        envelopes = _decode_envelopes(body)
        for envelope in envelopes:
            peer.chaincode.precheck(envelope)
        return peer.submit(envelopes, wait=wait, timeout=timeout)

    @app.get("/v1/transactions/{tx_id}")
    def tx_status(tx_id: str) -> dict[str, Any]:
        found = peer.tx_status(tx_id)
        if found is None:
            raise NotFoundError(f"transaction {tx_id} is not committed on this peer")
        return found.to_json()

    @app.get("/v1/query/{function}")
    def query(function: str, arg: Annotated[list[str] | None, Query()] = None) -> Response:
        height, raw = peer.query(function, list(arg or []))
        return Response(raw, media_type="application/json", headers={"X-Ledger-Height": str(height)})

    @app.get("/v1/checkpoint")
    def checkpoint() -> Response:
        height, raw = peer.query(LATEST_FINAL_CHECKPOINT, [])
        return Response(raw, media_type="application/json", headers={"X-Ledger-Height": str(height)})

    @app.get("/v1/state/digest")
    def state_digest() -> dict[str, Any]:
        if not peer.healthy:
            raise PeerUnhealthyError(f"peer is unhealthy: {peer.problem}", block=peer.bad_block)
        height, digest, commit = peer.state_digest()
        return {"height": height, "state_digest": digest.hex(), "commit_hash": commit.hex()}

    return app
