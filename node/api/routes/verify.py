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

A malformed bundle is 422 naming the bad field (``errors`` {path: problem}; ``bundles[3].batch.record.root`` in a
batch), never a verdict; a well-formed bundle that fails a check is 200 with an INVALID verdict. The node's trust
root is :class:`verifier.service.NodeVerifier`'s (its network's genesis and its latest final checkpoint).
"""

from __future__ import annotations

import os
from importlib import resources
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response

from core import canonical
from core.bundle import InvalidBundleError, ProofBundle, QrReference, from_qr_payload
from core.divisions import PROVINCES
from core.errors import DocumentError, FormatError
from node import queries
from node.access import Principal
from node.api.deps import CurrentPrincipal, NodeDep, PublicRateLimit, SessionDep
from node.api.ratelimit import TokenBucket
from node.api.routes.licenses import ERRORS
from node.api.routes.proofs import PROOF_ERRORS, ProofsDep
from node.errors import AuthenticationError, NotFoundError, PermissionDeniedError, RateLimitedError
from node.proofs import NoLedgerError
from verifier.core import Verdict
from verifier.online import reject_verdict
from verifier.qr import decode_qr_image
from verifier.service import DEFAULT_MAX_AGE_MS, NodeVerifier, TrustedCheckpoint

router = APIRouter(tags=["verify"])
VERIFIERS = frozenset({"agency", "operator", "auditor"})
PERSONAL = frozenset({"operator", "auditor"})
MAX_BATCH = 100
RATE_PER_SECOND = float(os.environ.get("LICLEDGER_VERIFY_RATE_PER_SECOND", "50"))
RATE_BURST = int(os.environ.get("LICLEDGER_VERIFY_RATE_BURST", "100"))
WEB_FILES = {"verify.js": "text/javascript; charset=utf-8", "verify.css": "text/css; charset=utf-8"}
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
    "connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
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
    body = await request.body()
    if not body.strip():
        raise DocumentError("empty request", {"$": "the body must be a proof bundle, a batch or a license_id"})
    return body


Body = Annotated[bytes, Depends(_body)]
MaxAge = Annotated[
    int | None,
    Query(ge=0, le=10 * 365 * 86_400_000, description="Freshness policy in ms (default one day)."),
]


# --- the work ---------------------------------------------------------------------------------------------------


def _malformed(exc: InvalidBundleError, prefix: str = "") -> DocumentError:
    path = f"{prefix}{'' if exc.path == '$' and prefix else ('.' if prefix else '') + exc.path}"
    return DocumentError("malformed proof bundle", {path or "$": exc.problem})


def _parse(value: object, prefix: str = "") -> ProofBundle:
    try:
        return ProofBundle.from_dict(value)
    except InvalidBundleError as exc:
        raise _malformed(exc, prefix) from None


def summary(verdict: Verdict) -> dict[str, Any]:
    """What a person reads first: who issued what to whom (as disclosed, masked) and its status."""
    f = verdict.facts
    division = PROVINCES.get(f.issuer or "")
    lid = f.license_id or ""
    parts = lid.split(".")
    doc = None if f.license is None else f.license.masked()
    return {
        "result": verdict.result.value,
        "proven": f.proven,
        "license_id": f.license_id,
        "kind": f.kind,
        "issuer": {
            "province": f.issuer,
            "province_zh": None if division is None else division.name_zh,
            "province_en": None if division is None else division.name_en,
            "authority": None if doc is None else doc["issuer"].get("authority"),
            "authority_uscc": parts[6] if len(parts) >= 7 else None,
        },
        "holder": f.holder_masked,
        "disclosed": f.disclosed,
        "status": f.status,
        "status_reason": f.status_reason,
        "status_effective_ms": f.status_effective_ms,
        "anchored_ms": f.anchored_ms,
        "checkpoint_timestamp_ms": f.checkpoint_timestamp_ms,
        "checkpoint_tree_size": f.checkpoint_log_size,
        "cosigners": list(f.cosigners),
        "failed_step": None if verdict.failed_step is None else verdict.failed_step.to_dict(),
    }


def _answer(verdict: Verdict, trusted: TrustedCheckpoint, personal: bool) -> dict[str, Any]:
    return {**verdict.to_dict(personal=personal), "summary": summary(verdict), "trusted_checkpoint": trusted.to_dict()}


def _release(session: Any) -> None:
    """End the session's read transaction before the CPU work. On SQLite every transaction is ``BEGIN IMMEDIATE``
    (node/db/engine.py), so an open one would hold the database's write lock through the verification and queue
    every other authenticated request behind SQLite's busy back-off (seconds of tail latency under load)."""
    session.rollback()


def _own_bundle(session: Any, proofs: Any, license_id: object) -> tuple[ProofBundle, str]:
    if not isinstance(license_id, str) or not 0 < len(license_id) <= 160:
        raise DocumentError("bad license_id", {"license_id": "must be a license identifier (string)"})
    loaded = queries.load(session, queries.parse_license_ref(license_id))
    bundle = proofs.bundle(session, loaded, disclose=False)
    _release(session)
    return bundle, license_id


def _verify_body(
    body: bytes, verifier: NodeVerifier, session: Any, proofs: Any, now_ms: int, max_age: int | None, personal: bool
) -> dict[str, Any]:
    _release(session)  # the credential was checked; nothing below needs the database but a license_id lookup
    try:
        value = canonical.decode(body)
    except FormatError as exc:
        raise DocumentError("the body is not strict JSON", {"$": str(exc)}) from None
    if not isinstance(value, dict):
        raise DocumentError("bad request", {"$": "must be a JSON object: a bundle, {bundles: [...]} or {license_id}"})
    age = DEFAULT_MAX_AGE_MS if max_age is None else max_age
    if set(value) == {"license_id"}:
        bundle, expected = _own_bundle(session, proofs, value["license_id"])
        verdict, trusted = verifier.verify(bundle, now_ms=now_ms, max_age_ms=age, expected_license_id=expected)
        return _answer(verdict, trusted, personal)
    if set(value) == {"bundles"}:
        items = value["bundles"]
        if not isinstance(items, list) or not 0 < len(items) <= MAX_BATCH:
            raise DocumentError("bad batch", {"bundles": f"must be a list of 1 to {MAX_BATCH} proof bundles"})
        bundles = [_parse(item, f"bundles[{i}]") for i, item in enumerate(items)]
        results = []
        last: TrustedCheckpoint | None = None
        for b in bundles:
            one, last = verifier.verify(b, now_ms=now_ms, max_age_ms=age)
            results.append(_answer(one, last, personal))
        counts: dict[str, int] = {}
        for r in results:
            counts[r["result"]] = counts.get(r["result"], 0) + 1
        assert last is not None
        return {"results": results, "counts": counts, "trusted_checkpoint": last.to_dict()}
    try:
        single = ProofBundle.from_json(body)  # parsed again from the bytes: owned, no deep copy
    except InvalidBundleError as exc:
        raise _malformed(exc) from None
    verdict, trusted = verifier.verify(single, now_ms=now_ms, max_age_ms=age)
    return _answer(verdict, trusted, personal)


def _verify_image(
    image: bytes, verifier: NodeVerifier, session: Any, proofs: Any, now_ms: int, max_age: int | None, personal: bool
) -> dict[str, Any]:
    _release(session)
    payload = decode_qr_image(image)  # QrImageError (a FormatError): 422
    try:
        found = from_qr_payload(payload)
    except InvalidBundleError as exc:
        raise _malformed(exc, "qr") from None
    age = DEFAULT_MAX_AGE_MS if max_age is None else max_age
    if isinstance(found, ProofBundle):
        verdict, trusted = verifier.verify(found, now_ms=now_ms, max_age_ms=age)
        return {**_answer(verdict, trusted, personal), "qr": {"form": "offline", "node": None}}
    ref: QrReference = found
    try:
        bundle, expected = _own_bundle(session, proofs, ref.license_id)
    except NotFoundError:
        where = f" (the voucher names {ref.node_url}: verify there)" if ref.node_url else ""
        raise NotFoundError("license on this node", ref.license_id + where) from None
    verdict, trusted = verifier.verify(bundle, now_ms=now_ms, max_age_ms=age, expected_license_id=expected)
    if bundle.commitment != ref.commitment and verdict.facts.proven:
        verdict = reject_verdict(
            verdict,
            "WRONG_COMMITMENT",
            "the license on the ledger has another commitment than the voucher: the voucher is not this license's",
            {"voucher": ref.commitment.hex(), "ledger": bundle.commitment.hex()},
        )
    return {**_answer(verdict, trusted, personal), "qr": {"form": "reference", "node": ref.node_url}}


# --- routes -----------------------------------------------------------------------------------------------------


@router.post("/v1/verify", responses=VERIFY_ERRORS, openapi_extra=BUNDLE_BODY)
def verify(
    body: Body,
    principal: VerifierCaller,
    verifier: VerifierDep,
    session: SessionDep,
    proofs: ProofsDep,
    node: NodeDep,
    max_age_ms: MaxAge = None,
) -> JSONResponse:
    """Verify a proof bundle, a batch ``{"bundles": [...]}`` or one of this node's licenses ``{"license_id"}``."""
    return JSONResponse(
        _verify_body(body, verifier, session, proofs, node.clock(), max_age_ms, principal.role in PERSONAL)
    )


@router.post("/v1/verify/qr", responses=VERIFY_ERRORS, openapi_extra=IMAGE_BODY)
def verify_qr(
    body: Body,
    principal: VerifierCaller,
    verifier: VerifierDep,
    session: SessionDep,
    proofs: ProofsDep,
    node: NodeDep,
    max_age_ms: MaxAge = None,
) -> JSONResponse:
    """Verify the voucher QR code in a photo (PNG, JPEG, WebP, GIF or BMP bytes as the body)."""
    return JSONResponse(
        _verify_image(body, verifier, session, proofs, node.clock(), max_age_ms, principal.role in PERSONAL)
    )


@router.post("/v1/public/verify", responses=VERIFY_ERRORS, openapi_extra=BUNDLE_BODY)
def public_verify(
    body: Body,
    _: PublicRateLimit,
    verifier: VerifierDep,
    session: SessionDep,
    proofs: ProofsDep,
    node: NodeDep,
) -> JSONResponse:
    """The web page's check: a bundle or ``{"license_id"}``, no credential; personal data masked."""
    return JSONResponse(_verify_body(body, verifier, session, proofs, node.clock(), None, False))


@router.post("/v1/public/verify/qr", responses=VERIFY_ERRORS, openapi_extra=IMAGE_BODY)
def public_verify_qr(
    body: Body,
    _: PublicRateLimit,
    verifier: VerifierDep,
    session: SessionDep,
    proofs: ProofsDep,
    node: NodeDep,
) -> JSONResponse:
    """The web page's check of a voucher photo, no credential; personal data masked."""
    return JSONResponse(_verify_image(body, verifier, session, proofs, node.clock(), None, False))


def _web(name: str) -> bytes:
    return resources.files("verifier").joinpath("web", name).read_bytes()


@router.get("/verify", response_class=Response, include_in_schema=False)
def page() -> Response:
    """The verification page (docs/verifier.md, "The web page")."""
    return Response(_web("index.html"), media_type="text/html; charset=utf-8", headers=PAGE_HEADERS)


@router.get("/verify/assets/{name}", response_class=Response, include_in_schema=False)
def asset(name: str) -> Response:
    if name not in WEB_FILES:
        raise NotFoundError("file", name)
    return Response(_web(name), media_type=WEB_FILES[name], headers=PAGE_HEADERS)
