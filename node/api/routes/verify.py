"""Verification on the node (docs/verifier.md, "Verification API" and "The web page").

* ``POST /v1/verify`` (agency, operator, auditor; rate-limited per credential): a proof bundle, ``{"bundles":
  [...]}`` (at most :data:`MAX_BATCH`), or ``{"license_id": ...}`` (the node builds the public-view bundle of one of
  its own licenses and verifies it). The answer is :meth:`verifier.core.Verdict.to_dict` (every step, reason codes
  and evidence), a ``summary`` of the proven facts for display, and the checkpoint the node's trust root holds.
  Personal data of a submitted disclosed bundle is returned only to operators and auditors; agencies get it
  masked, like everywhere on the node (:mod:`node.access`).
* ``POST /v1/verify/qr``: the same for a photo of a voucher's QR code (the image bytes as the body).
* ``POST /v1/public/verify`` and ``POST /v1/public/verify/qr``: no credential, rate-limited per client address
  like the other public routes, for the web page; the same checks, personal data always masked.
* ``GET /verify``: the web page (static HTML, JS and CSS from ``verifier/web``, no third-party code).

``{"license_id"}`` (and a QR reference) for a license of **another province** is fetched from that province's node
as the node's directory names it (``LICLEDGER_NODE_DIRECTORY``; never a URL taken from the request or the QR
code), public view, and verified here like any submitted bundle: nothing is trusted because that node sent it.

The request and answer formats are :mod:`verifier.service`'s (shared with ``licledger verifier serve``).
A malformed bundle is 422 naming the bad field (``errors`` {path: problem}; ``bundles[3].batch.record.root`` in a
batch), never a verdict; a well-formed bundle that fails a check is 200 with an INVALID verdict. The node's trust
root is :class:`verifier.service.NodeVerifier`'s (its network's genesis and its latest final checkpoint).
"""

from __future__ import annotations

import os
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import JSONResponse, Response

from core.bundle import ProofBundle, QrReference
from node import queries
from node.access import Principal
from node.api.deps import CurrentPrincipal, NodeDep, PublicRateLimit, ReadSessionDep
from node.api.ratelimit import TokenBucket
from node.api.routes.licenses import ERRORS
from node.api.routes.proofs import PROOF_ERRORS, ProofsDep
from node.context import NodeContext
from node.errors import AuthenticationError, NotFoundError, PermissionDeniedError, RateLimitedError
from node.proofs import NoLedgerError, ProofService, issuer_nodes
from verifier.core import Verdict
from verifier.online import Source, SourceError
from verifier.service import (
    DEFAULT_MAX_AGE_MS,
    PAGE_HEADERS,
    WEB_FILES,
    NodeVerifier,
    TrustedCheckpoint,
    verify_image,
    verify_request,
    web_file,
)

router = APIRouter(tags=["verify"])
VERIFIERS = frozenset({"agency", "operator", "auditor"})
PERSONAL = frozenset({"operator", "auditor"})
RATE_PER_SECOND = float(os.environ.get("LICLEDGER_VERIFY_RATE_PER_SECOND", "50"))
RATE_BURST = int(os.environ.get("LICLEDGER_VERIFY_RATE_BURST", "100"))
FORWARD_TIMEOUT_S = 10.0
VERIFY_ERRORS: dict[int | str, dict[str, Any]] = {**PROOF_ERRORS, 413: ERRORS[422]}
BUNDLE_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"type": "object", "description": "bundle, batch or license_id"}}},
    }
}
IMAGE_BODY = {
    "requestBody": {"required": True, "content": {"image/*": {"schema": {"type": "string", "format": "binary"}}}}
}


# --- dependencies ---------------------------------------------------------------------------------------------


def get_verifier(request: Request, node: NodeDep) -> NodeVerifier:
    service: NodeVerifier | None = getattr(request.app.state, "verifier", None)
    if service is None:
        if node.ledger is None:
            raise NoLedgerError("this node has not joined a ledger: it has no trust root to verify against")
        refresh = max(node.settings.checkpoint_cache_ms, 1000)
        service = request.app.state.verifier = NodeVerifier(node.ledger, refresh_ms=refresh)
    return service


VerifierDep = Annotated[NodeVerifier, Depends(get_verifier)]


def verifier_caller(request: Request, principal: CurrentPrincipal) -> Principal:
    """Agency, operator or auditor (401/403 otherwise), rate-limited per credential."""
    if principal.role == "public":
        raise AuthenticationError("this route needs a credential of role agency, auditor or operator")
    if principal.role not in VERIFIERS:
        raise PermissionDeniedError(f"role {principal.role} may not use this route", role=principal.role)
    bucket: TokenBucket | None = getattr(request.app.state, "verify_bucket", None)
    if bucket is None:
        bucket = request.app.state.verify_bucket = TokenBucket(RATE_PER_SECOND, RATE_BURST)
    wait = bucket.take(principal.id)
    if wait is not None:
        raise RateLimitedError(wait)
    return principal


VerifierCaller = Annotated[Principal, Depends(verifier_caller)]


async def _body(request: Request) -> bytes:
    return await request.body()


Body = Annotated[bytes, Depends(_body)]
MaxAge = Annotated[
    int | None,
    Query(ge=0, le=10 * 365 * 86_400_000, description="Freshness policy in ms (default one day)."),
]


# --- the work ---------------------------------------------------------------------------------------------------


def _release(session: Any) -> None:
    """End the session's read transaction before the CPU work. The routes read in a read-only session (on SQLite
    a DEFERRED transaction, node/db/engine.py), so they never hold the write lock, not even while the ledger
    answers a license's status proof; ending the transaction early also lets SQLite checkpoint its WAL past it."""
    session.rollback()


class _Work:
    """One request's verification: the node's trust root and policy, and where a license's bundle comes from."""

    def __init__(
        self, verifier: NodeVerifier, session: Any, proofs: ProofService, node: NodeContext, max_age: int | None
    ) -> None:
        self.verifier, self.session, self.proofs, self.node = verifier, session, proofs, node
        self.now_ms = node.clock()
        self.age = DEFAULT_MAX_AGE_MS if max_age is None else max_age
        _release(session)  # the credential was checked; nothing below needs the database but a license lookup

    def verify(self, bundle: ProofBundle | bytes, expected: str | None) -> tuple[Verdict, TrustedCheckpoint]:
        return self.verifier.verify(bundle, now_ms=self.now_ms, max_age_ms=self.age, expected_license_id=expected)

    def resolve(self, license_id: str) -> ProofBundle | bytes:
        """The public-view bundle: this node's own license, or the issuing province's node's (its directory)."""
        ref = queries.parse_license_ref(license_id)
        try:
            loaded = queries.load(self.session, ref)
        except NotFoundError:
            found = issuer_nodes(self.node.settings, self.node.ledger, ref, self.node.directory.current())
            if len(found) != 1:
                raise
            [(province, url)] = found.items()
            _release(self.session)
            try:
                return Source(url, "node", FORWARD_TIMEOUT_S).bundle(license_id)
            except SourceError as exc:
                if exc.status == 404:
                    raise NotFoundError("license", f"{license_id} (not at province {province}'s node)") from None
                raise HTTPException(502, f"province {province}'s node did not give the bundle: {exc.detail}") from None
        bundle = self.proofs.bundle(self.session, loaded, disclose=False)
        _release(self.session)
        return bundle

    def resolve_commitment(self, commitment: bytes) -> ProofBundle | bytes:
        """The public-view bundle of this node's license version with ``commitment`` (a commitment names no issuer,
        so there is no forwarding: 404 when this node holds none)."""
        loaded = queries.load(self.session, queries.ref_by_commitment(self.session, commitment))
        bundle = self.proofs.bundle(self.session, loaded, disclose=False)
        _release(self.session)
        return bundle

    def request(self, body: bytes, *, personal: bool) -> dict[str, Any]:
        """``POST /v1/verify``'s answer to ``body`` (:func:`verifier.service.verify_request`) with this node's ways
        of verifying and of finding bundles."""
        return verify_request(
            body, self.verify, self.resolve, personal=personal, resolve_commitment=self.resolve_commitment
        )

    def resolve_reference(self, ref: QrReference) -> ProofBundle | bytes:
        try:
            return self.resolve(ref.license_id)
        except NotFoundError:
            where = f" (the voucher names {ref.node_url}: verify there)" if ref.node_url else ""
            raise NotFoundError("license on this node", ref.license_id + where) from None


# --- routes -----------------------------------------------------------------------------------------------------


@router.post("/v1/verify", responses=VERIFY_ERRORS, openapi_extra=BUNDLE_BODY)
def verify(
    body: Body,
    principal: VerifierCaller,
    verifier: VerifierDep,
    session: ReadSessionDep,
    proofs: ProofsDep,
    node: NodeDep,
    max_age_ms: MaxAge = None,
) -> JSONResponse:
    """Verify a proof bundle, a batch ``{"bundles": [...]}``, a license ``{"license_id"}`` (this node's, or fetched
    from the issuer's node) or one of this node's license versions by its commitment ``{"commitment"}``."""
    work = _Work(verifier, session, proofs, node, max_age_ms)
    return JSONResponse(work.request(body, personal=principal.role in PERSONAL))


@router.post("/v1/verify/qr", responses=VERIFY_ERRORS, openapi_extra=IMAGE_BODY)
def verify_qr(
    body: Body,
    principal: VerifierCaller,
    verifier: VerifierDep,
    session: ReadSessionDep,
    proofs: ProofsDep,
    node: NodeDep,
    max_age_ms: MaxAge = None,
) -> JSONResponse:
    """Verify the voucher QR code in a photo (PNG, JPEG, WebP, GIF or BMP bytes as the body)."""
    work = _Work(verifier, session, proofs, node, max_age_ms)
    return JSONResponse(verify_image(body, work.verify, work.resolve_reference, personal=principal.role in PERSONAL))


@router.post("/v1/public/verify", responses=VERIFY_ERRORS, openapi_extra=BUNDLE_BODY)
def public_verify(
    body: Body,
    _: PublicRateLimit,
    verifier: VerifierDep,
    session: ReadSessionDep,
    proofs: ProofsDep,
    node: NodeDep,
) -> JSONResponse:
    """The web page's check: a bundle, ``{"license_id"}`` or ``{"commitment"}``, no credential; personal data
    masked."""
    work = _Work(verifier, session, proofs, node, None)
    return JSONResponse(work.request(body, personal=False))


@router.post("/v1/public/verify/qr", responses=VERIFY_ERRORS, openapi_extra=IMAGE_BODY)
def public_verify_qr(
    body: Body,
    _: PublicRateLimit,
    verifier: VerifierDep,
    session: ReadSessionDep,
    proofs: ProofsDep,
    node: NodeDep,
) -> JSONResponse:
    """The web page's check of a voucher photo, no credential; personal data masked."""
    work = _Work(verifier, session, proofs, node, None)
    return JSONResponse(verify_image(body, work.verify, work.resolve_reference, personal=False))


@router.get("/verify", response_class=Response, include_in_schema=False)
def page() -> Response:
    """The verification page (docs/verifier.md, "The web page")."""
    return Response(web_file("index.html"), media_type="text/html; charset=utf-8", headers=PAGE_HEADERS)


@router.get("/verify/assets/{name}", response_class=Response, include_in_schema=False)
def asset(name: str) -> Response:
    if name not in WEB_FILES:
        raise NotFoundError("file", name)
    return Response(web_file(name), media_type=WEB_FILES[name], headers=PAGE_HEADERS)
