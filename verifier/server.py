"""The standalone verification service (``licledger verifier serve``): the node's verification API for an agency
that runs no provincial node and no database.

Rules, before any code:

1. **Pinned trust root.** The genesis (or a ``licledger-trust-root/1`` file) given with ``--trust-root`` and,
   if present, the verifier state file (``licledger-verifier-state/1``, the one ``licledger verify`` keeps):
   the same files, the same rules (:mod:`verifier.trust`). Nothing the service is sent or fetches changes them
   except through :meth:`verifier.trust.TrustRoot.advanced` (quorum, no conflict, no rollback, consistency).
2. **Optionally online** (``--node URL``, repeatable). At most every ``refresh_s`` the trust root is advanced
   from the nodes (:func:`verifier.online.advance_online`: checkpoints from at least ``min_sources`` nodes,
   consistency proofs) and the state file is rewritten when it advanced. A split view or a failed advance is
   kept in :attr:`TrustState.alarm` (both checkpoints) and logged; verification goes on with the last trusted
   root. A submitted bundle whose checkpoint is too old for the policy is brought up to date through the nodes
   (:func:`verifier.online.verify_online`: re-proven at the newest checkpoint from any node); a
   ``{"license_id"}`` is fetched from the nodes (a node that does not hold it refers to the issuer's node).
   Without nodes the service is offline: bundles are judged against the pinned root as given.
3. **The same API as the node** (:mod:`verifier.service`): ``POST /v1/verify`` (a bundle, ``{"bundles":
   [...]}`` or ``{"license_id"}``) and ``POST /v1/verify/qr`` need an agency API key (:mod:`verifier.agency_keys`;
   401 without a valid one, 403 for a revoked one), rate-limited per key; ``auditor`` keys see personal data of
   submitted disclosed bundles, ``agency`` keys get it masked. With ``public`` on, ``POST /v1/public/verify[/qr]``
   (no key, per-address rate limit, personal data always masked) and the ``/verify`` web page; otherwise 404.
4. **Errors are mapped here, once**: a malformed request 422 with ``errors`` {path: problem}; a body above
   ``max_body_bytes`` 413; 429 with ``Retry-After``; a license no node gives 404; nodes unreachable 502. A
   well-formed bundle that fails a check is 200 with its verdict.
5. **No personal data in logs**: requests are logged by method, path and status (uvicorn, redacted by
   :mod:`node.logsafe`); bodies, verdicts and keys never.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response

from core.bundle import ProofBundle, QrReference
from core.errors import DocumentError, FormatError
from node.api.ratelimit import TokenBucket
from verifier.agency_keys import AgencyKey, KeyFile
from verifier.core import Result, Verdict, verify_bundle
from verifier.online import ReferralError, Source, SourceError, VerifierState, advance_online, verify_online
from verifier.service import (
    DEFAULT_MAX_AGE_MS,
    PAGE_HEADERS,
    WEB_FILES,
    TrustedCheckpoint,
    verify_image,
    verify_request,
    web_file,
)
from verifier.trust import TrustRoot

__all__ = ["ServerConfig", "TrustState", "create_app"]

log = logging.getLogger("licledger.verifier.server")


@dataclasses.dataclass(frozen=True)
class ServerConfig:
    """Everything ``licledger verifier serve`` is configured with (rules 1-3)."""

    trust_root: TrustRoot
    checkpoint_seq: int | None = None
    state_path: Path | None = None
    nodes: tuple[str, ...] = ()
    keys_path: Path | None = None
    public: bool = False
    max_age_ms: int | None = DEFAULT_MAX_AGE_MS
    min_sources: int = 2
    refresh_s: float = 10.0
    timeout_s: float = 10.0
    rate_per_second: float = 50.0
    rate_burst: int = 100
    public_rate_per_second: float = 5.0
    public_rate_burst: int = 20
    max_body_bytes: int = 1024 * 1024

    def __post_init__(self) -> None:
        if self.min_sources < 1 or self.refresh_s < 0 or self.max_body_bytes < 1024:
            raise ValueError("min_sources >= 1, refresh_s >= 0 and max_body_bytes >= 1024 are required")
        for url in self.nodes:
            Source(url)  # ValueError for anything but an http(s) URL


class TrustState:
    """The service's trust root (rules 1-2); thread-safe. One request thread refreshes at a time."""

    def __init__(self, config: ServerConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.sources = [Source(u, "node", config.timeout_s) for u in config.nodes]
        self._clock = clock
        self._lock = threading.Lock()
        self._root, self._seq = config.trust_root, config.checkpoint_seq
        self._checked_at: float | None = None
        self._refreshing = False
        self.alarm: dict[str, Any] | None = None
        """The last advance that failed (a split view, a bad consistency proof), with its evidence."""

    def current(self) -> tuple[TrustRoot, int | None]:
        with self._lock:
            return self._root, self._seq

    def info(self) -> TrustedCheckpoint:
        root, seq = self.current()
        cp = root.checkpoint
        return TrustedCheckpoint(
            None if cp is None else seq, None if cp is None else cp.log_size, None if cp is None else cp.timestamp_ms
        )

    def maybe_refresh(self) -> None:
        """Advance from the nodes if ``refresh_s`` has passed since the last try (others go on meanwhile)."""
        if not self.sources:
            return
        now = self._clock()
        with self._lock:
            due = self._checked_at is None or now - self._checked_at >= self.config.refresh_s
            if not due or self._refreshing:
                return
            self._refreshing, self._checked_at = True, now
            root, seq = self._root, self._seq
        try:
            report = advance_online(root, self.sources, checkpoint_seq=seq, min_sources=self.config.min_sources)
            if report.split_view is not None:
                self.alarm = report.split_view
                log.error("verifier: split view between nodes; the trusted checkpoint stays: %s", report.split_view)
            elif report.undecided is not None:
                log.warning("verifier: the trusted checkpoint was not advanced: %s", report.undecided)
            self.adopt(report.trust_root, report.trusted_after.seq if report.trusted_after else None, report.advanced)
        finally:
            with self._lock:
                self._refreshing = False

    def adopt(self, root: TrustRoot | None, seq: int | None, advanced: bool) -> None:
        """Take ``root`` (an online run's, already advanced by the trust core) if it is newer; persist it."""
        if not advanced or root is None or root.checkpoint is None:
            return
        with self._lock:
            old = self._root.checkpoint
            if old is not None and (old.log_size, old.height) >= (root.checkpoint.log_size, root.checkpoint.height):
                return
            self._root, self._seq = root, seq
        if self.config.state_path is not None:
            VerifierState(root, seq).save(self.config.state_path)


class _Verifying:
    """One request's verification under the service's trust root and policy (rule 2)."""

    def __init__(self, state: TrustState, max_age_ms: int | None) -> None:
        self.state = state
        self.age = max_age_ms
        self.now_ms = int(time.time() * 1000)

    def verify(self, bundle: ProofBundle | bytes, expected: str | None) -> tuple[Verdict, TrustedCheckpoint]:
        root, seq = self.state.current()
        verdict = verify_bundle(
            bundle, root, now_ms=self.now_ms, max_checkpoint_age_ms=self.age, expected_license_id=expected
        )
        if verdict.result is Result.UNDECIDED and self.state.sources:
            report = verify_online(
                root,
                self.state.sources,
                now_ms=self.now_ms,
                max_checkpoint_age_ms=self.age,
                bundle=bundle,
                expected_license_id=expected,
                checkpoint_seq=seq,
                min_sources=self.state.config.min_sources,
            )
            after = report.trusted_after
            self.state.adopt(report.trust_root, None if after is None else after.seq, report.advanced)
            if report.split_view is not None:
                self.state.alarm = report.split_view
            if report.verdict is not None:
                verdict = report.verdict
        return verdict, self.state.info()

    def resolve(self, license_id: str) -> ProofBundle | bytes:
        """The public-view bundle from the first node that gives one (one referral followed per node)."""
        if not self.state.sources:
            raise HTTPException(404, "this verification service is offline (no --node): submit the bundle itself")
        problems = []
        for source in self.state.sources:
            try:
                return source.bundle(license_id)
            except ReferralError as exc:
                try:
                    return Source(exc.node, "node", source.timeout).bundle(license_id)
                except SourceError as again:
                    problems.append(again)
            except SourceError as exc:
                problems.append(exc)
        if all(p.status == 404 for p in problems):
            raise HTTPException(404, f"no node holds license {license_id}")
        raise HTTPException(502, "no node gave the license's bundle: " + "; ".join(str(p) for p in problems))

    def resolve_reference(self, ref: QrReference) -> ProofBundle | bytes:
        return self.resolve(ref.license_id)  # the nodes configured, never the URL printed in the QR code


# --- the app ------------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class _Service:
    """What the app's routes share (``app.state.service``)."""

    config: ServerConfig
    trust: TrustState
    keys: KeyFile | None
    key_bucket: TokenBucket
    public_bucket: TokenBucket


def _service(request: Request) -> _Service:
    service: _Service = request.app.state.service
    return service


async def _body(request: Request) -> bytes:
    limit = _service(request).config.max_body_bytes
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise HTTPException(413, f"request body larger than {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, f"request body larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _agency(request: Request) -> AgencyKey:
    """The caller's API key: 401 without a valid one, 403 for a revoked one; rate-limited per key."""
    service = _service(request)
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    keys = service.keys
    record = keys.authenticate(token.strip()) if keys is not None and scheme.lower() == "bearer" else None
    if record is None:
        raise HTTPException(401, "this route needs an agency API key", {"WWW-Authenticate": "Bearer"})
    if record.revoked_ms is not None:
        raise HTTPException(403, f"API key {record.id} is revoked")
    _take(service.key_bucket, record.id)
    return record


def _public(request: Request) -> None:
    service = _service(request)
    if not service.config.public:
        raise HTTPException(404, "Not Found")
    _take(service.public_bucket, request.client.host if request.client else "unknown")


Body = Annotated[bytes, Depends(_body)]
Agency = Annotated[AgencyKey, Depends(_agency)]
Public = Annotated[None, Depends(_public)]
ServiceDep = Annotated[_Service, Depends(_service)]
MaxAge = Annotated[int | None, Query(ge=0, le=10 * 365 * 86_400_000, description="Freshness policy in ms.")]


def _work(service: _Service, max_age_ms: int | None) -> _Verifying:
    service.trust.maybe_refresh()
    return _Verifying(service.trust, service.config.max_age_ms if max_age_ms is None else max_age_ms)


router = APIRouter()


@router.post("/v1/verify")
def verify(data: Body, key: Agency, service: ServiceDep, max_age_ms: MaxAge = None) -> JSONResponse:
    """A proof bundle, ``{"bundles": [...]}`` (1-100) or ``{"license_id"}`` (fetched from the nodes)."""
    w = _work(service, max_age_ms)
    return JSONResponse(verify_request(data, w.verify, w.resolve, personal=key.role == "auditor"))


@router.post("/v1/verify/qr")
def verify_qr(data: Body, key: Agency, service: ServiceDep, max_age_ms: MaxAge = None) -> JSONResponse:
    """The voucher QR code in a photo (PNG, JPEG, WebP, GIF or BMP bytes)."""
    w = _work(service, max_age_ms)
    return JSONResponse(verify_image(data, w.verify, w.resolve_reference, personal=key.role == "auditor"))


@router.post("/v1/public/verify")
def public_verify(data: Body, _: Public, service: ServiceDep) -> JSONResponse:
    """The web page's check: no key, personal data masked (only with ``--public``)."""
    w = _work(service, None)
    return JSONResponse(verify_request(data, w.verify, w.resolve, personal=False))


@router.post("/v1/public/verify/qr")
def public_verify_qr(data: Body, _: Public, service: ServiceDep) -> JSONResponse:
    """The web page's check of a voucher photo (only with ``--public``)."""
    w = _work(service, None)
    return JSONResponse(verify_image(data, w.verify, w.resolve_reference, personal=False))


@router.get("/verify", include_in_schema=False)
def page(_: Public) -> Response:
    return Response(web_file("index.html"), media_type="text/html; charset=utf-8", headers=PAGE_HEADERS)


@router.get("/verify/assets/{name}", include_in_schema=False)
def asset(name: str, _: Public) -> Response:
    if name not in WEB_FILES:
        raise HTTPException(404, f"file {name} not found")
    return Response(web_file(name), media_type=WEB_FILES[name], headers=PAGE_HEADERS)


@router.get("/healthz")
def health(service: ServiceDep) -> dict[str, Any]:
    """Liveness and the trusted checkpoint (no key needed; nothing personal)."""
    root, _ = service.trust.current()
    return {
        "status": "ok",
        "network_id": root.network_id,
        "trusted_checkpoint": service.trust.info().to_dict(),
        "online": bool(service.trust.sources),
        "alarm": service.trust.alarm is not None,
    }


def create_app(config: ServerConfig) -> FastAPI:
    """The service's app (rules 3-5)."""
    app = FastAPI(
        title="licledger verification service",
        version="1",
        description="Verify licledger proof bundles and voucher QR codes against a pinned trust root "
        "(docs/verifier.md).",
    )
    app.state.service = _Service(
        config,
        TrustState(config),
        KeyFile(config.keys_path) if config.keys_path is not None else None,
        TokenBucket(config.rate_per_second, config.rate_burst),
        TokenBucket(config.public_rate_per_second, config.public_rate_burst),
    )
    app.include_router(router)
    _install_errors(app)
    return app


def _take(bucket: TokenBucket, client: str) -> None:
    wait = bucket.take(client)
    if wait is not None:
        raise HTTPException(429, "too many requests", {"Retry-After": str(wait)})


def _install_errors(app: FastAPI) -> None:
    """Rule 4: the one place where errors become HTTP answers (no answer echoes input values)."""

    async def document(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, DocumentError)
        return JSONResponse({"detail": str(exc).split(":", 1)[0], "errors": exc.errors or {"$": str(exc)}}, 422)

    async def other_format(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(exc), "errors": {"$": str(exc)}}, 422)

    async def validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = {".".join(str(p) for p in e.get("loc", ())) or "$": str(e.get("msg")) for e in exc.errors()}
        return JSONResponse({"detail": "request does not match the API", "errors": errors}, 422)

    async def internal(request: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled %s in %s %s", type(exc).__name__, request.method, request.url.path)
        return JSONResponse({"detail": "internal error"}, 500)

    app.add_exception_handler(DocumentError, document)
    app.add_exception_handler(FormatError, other_format)
    app.add_exception_handler(RequestValidationError, validation)
    app.add_exception_handler(Exception, internal)
