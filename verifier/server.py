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
   (re-proven at the newest checkpoint from any node); a ``{"license_id"}`` is fetched from the nodes (a node
   that does not hold it refers to the issuer's node). Without nodes the service is offline: bundles are judged
   against the pinned root as given.
3. **A request refreshes online at most once** (:class:`verifier.online.OnlineSession`): the nodes' checkpoints
   are fetched and verified once, each consistency proof once, and every stale bundle of a batch is re-proven
   at that one newest checkpoint (the periodic refresh of rule 2, when it falls in the request, is that run).
   Batches of at least ``parallel_min_batch`` bundles are verified offline over ``workers`` processes
   (:func:`verifier.batch.verify_many` with a :class:`verifier.batch.VerifierPool` started once) when
   ``workers`` > 1. Verdicts are the same as one by one, in the same order.
4. **The same API as the node** (:mod:`verifier.service`): ``POST /v1/verify`` (a bundle, ``{"bundles":
   [...]}`` or ``{"license_id"}``) and ``POST /v1/verify/qr`` need an agency API key (:mod:`verifier.agency_keys`;
   401 without a valid one, 403 for a revoked one), rate-limited per key; ``auditor`` keys see personal data of
   submitted disclosed bundles, ``agency`` keys get it masked. With ``public`` on, ``POST /v1/public/verify[/qr]``
   (no key, per-address rate limit, personal data always masked) and the ``/verify`` web page; otherwise 404.
5. **Errors are mapped here, once**: a malformed request 422 with ``errors`` {path: problem}; a body above
   ``max_body_bytes`` 413; 429 with ``Retry-After``; a license no node gives 404; nodes unreachable 502. A
   well-formed bundle that fails a check is 200 with its verdict.
6. **No personal data in logs**: requests are logged by method, path and status (uvicorn, redacted by
   :mod:`node.logsafe`); bodies, verdicts and keys never.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response

from core.bundle import MAX_BUNDLE_BYTES, ProofBundle, QrReference
from core.errors import DocumentError, FormatError
from node.api.ratelimit import TokenBucket
from verifier.agency_keys import AgencyKey, KeyFile
from verifier.batch import VerifierPool, verify_many
from verifier.core import Result, Verdict, verify_bundle
from verifier.online import OnlineReport, OnlineSession, ReferralError, Source, SourceError, VerifierState
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
    """Everything ``licledger verifier serve`` is configured with (rules 1-4)."""

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
    workers: int = 1
    parallel_min_batch: int = 32

    def __post_init__(self) -> None:
        if self.min_sources < 1 or self.refresh_s < 0 or self.max_body_bytes < 1024:
            raise ValueError("min_sources >= 1, refresh_s >= 0 and max_body_bytes >= 1024 are required")
        if self.workers < 1 or self.parallel_min_batch < 1:
            raise ValueError("workers >= 1 and parallel_min_batch >= 1 are required")
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

    def maybe_refresh(self) -> OnlineSession | None:
        """Advance from the nodes if ``refresh_s`` has passed since the last try (others go on meanwhile); the
        online run, if one was made, for the request to go on with (rule 3)."""
        if not self.sources:
            return None
        now = self._clock()
        with self._lock:
            due = self._checked_at is None or now - self._checked_at >= self.config.refresh_s
            if not due or self._refreshing:
                return None
            self._refreshing, self._checked_at = True, now
        try:
            return self.session()
        finally:
            with self._lock:
                self._refreshing = False

    def session(self) -> OnlineSession:
        """An online run from the current trust root (steps 1-5: checkpoints, consistency, advance), adopted."""
        root, seq = self.current()
        session = OnlineSession(root, self.sources, checkpoint_seq=seq, min_sources=self.config.min_sources)
        report = session.report
        if report.split_view is not None:
            self.alarm = report.split_view
            log.error("verifier: split view between nodes; the trusted checkpoint stays: %s", report.split_view)
        elif report.undecided is not None:
            log.warning("verifier: the trusted checkpoint was not advanced: %s", report.undecided)
        self.adopt_report(report)
        return session

    def adopt_report(self, report: OnlineReport) -> None:
        after = report.trusted_after
        self.adopt(report.trust_root, None if after is None else after.seq, report.advanced)

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
    """One request's verification under the service's trust root and policy (rules 2 and 3)."""

    def __init__(self, service: _Service, max_age_ms: int | None, online: OnlineSession | None) -> None:
        self.state = service.trust
        self.pool = service.pool
        self.parallel_min = service.config.parallel_min_batch
        self.age = max_age_ms
        self.now_ms = int(time.time() * 1000)
        self._online = online

    def verify(self, bundle: ProofBundle | bytes, expected: str | None) -> tuple[Verdict, TrustedCheckpoint]:
        [verified] = self._verify_all([bundle], expected)
        return verified

    def verify_batch(self, bundles: list[ProofBundle]) -> list[tuple[Verdict, TrustedCheckpoint]]:
        return self._verify_all(list(bundles), None)

    def _verify_all(
        self, bundles: list[ProofBundle | bytes], expected: str | None
    ) -> list[tuple[Verdict, TrustedCheckpoint]]:
        """Offline first (over the worker pool for a large batch); then the stale ones through one online run."""
        root, _ = self.state.current()
        verdicts = self._offline(bundles, root, expected)
        stale = [i for i, v in enumerate(verdicts) if v.result is Result.UNDECIDED]
        if stale and self.state.sources:
            online = self._online = self._online or self.state.session()
            for i in stale:
                report = online.verify(
                    now_ms=self.now_ms, max_checkpoint_age_ms=self.age, bundle=bundles[i], expected_license_id=expected
                )
                if report.split_view is not None:
                    self.state.alarm = report.split_view
                if report.verdict is not None:
                    verdicts[i] = report.verdict
        info = self.state.info()
        return [(v, info) for v in verdicts]

    def _offline(self, bundles: list[ProofBundle | bytes], root: TrustRoot, expected: str | None) -> list[Verdict]:
        if self.pool is not None and len(bundles) >= self.parallel_min:
            data = [b.to_json() if isinstance(b, ProofBundle) else b for b in bundles]
            if all(len(d) <= MAX_BUNDLE_BYTES for d in data):  # as parsed from the request, never judged anew
                return verify_many(
                    data,
                    root,
                    now_ms=self.now_ms,
                    max_checkpoint_age_ms=self.age,
                    expected_license_id=expected,
                    pool=self.pool,
                )
        return [
            verify_bundle(b, root, now_ms=self.now_ms, max_checkpoint_age_ms=self.age, expected_license_id=expected)
            for b in bundles
        ]

    def _from_nodes(
        self, fetch: Callable[[Source], ProofBundle | bytes], missing: str, what: str
    ) -> ProofBundle | bytes:
        """``fetch`` from each configured node in turn: the first bundle given; 404 ``missing`` when every node
        answered 404, else 502 naming each node's problem."""
        if not self.state.sources:
            raise HTTPException(404, "this verification service is offline (no --node): submit the bundle itself")
        problems = []
        for source in self.state.sources:
            try:
                return fetch(source)
            except SourceError as exc:
                problems.append(exc)
        if all(p.status == 404 for p in problems):
            raise HTTPException(404, missing)
        raise HTTPException(502, f"no node gave {what}: " + "; ".join(str(p) for p in problems))

    def resolve(self, license_id: str) -> ProofBundle | bytes:
        """The public-view bundle from the first node that gives one (one referral followed per node)."""

        def fetch(source: Source) -> ProofBundle | bytes:
            try:
                return source.bundle(license_id)
            except ReferralError as exc:
                return Source(exc.node, "node", source.timeout).bundle(license_id)

        return self._from_nodes(fetch, f"no node holds license {license_id}", "the license's bundle")

    def resolve_commitment(self, commitment: bytes) -> ProofBundle | bytes:
        """The public-view bundle of the license version with ``commitment`` from the first node that holds it
        (every configured node is asked in turn: a commitment names no issuer, so no node refers)."""
        return self._from_nodes(
            lambda source: source.bundle_by_commitment(commitment),
            f"no node holds a license version with commitment {commitment.hex()}",
            "the license version's bundle",
        )

    def resolve_reference(self, ref: QrReference) -> ProofBundle | bytes:
        return self.resolve(ref.license_id)  # the nodes configured, never the URL printed in the QR code

    def request(self, data: bytes, *, personal: bool) -> dict[str, Any]:
        """``POST /v1/verify``'s answer to ``data`` (:func:`verifier.service.verify_request`) with this service's
        ways of verifying and of finding bundles."""
        return verify_request(
            data,
            self.verify,
            self.resolve,
            personal=personal,
            resolve_commitment=self.resolve_commitment,
            verify_batch=self.verify_batch,
        )


# --- the app ------------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class _Service:
    """What the app's routes share (``app.state.service``)."""

    config: ServerConfig
    trust: TrustState
    keys: KeyFile | None
    key_bucket: TokenBucket
    public_bucket: TokenBucket
    pool: VerifierPool | None = None


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
    online = service.trust.maybe_refresh()
    return _Verifying(service, service.config.max_age_ms if max_age_ms is None else max_age_ms, online)


router = APIRouter()


@router.post("/v1/verify")
def verify(data: Body, key: Agency, service: ServiceDep, max_age_ms: MaxAge = None) -> JSONResponse:
    """A proof bundle, ``{"bundles": [...]}`` (1-100), ``{"license_id"}`` or ``{"commitment"}`` (fetched from the
    nodes)."""
    return JSONResponse(_work(service, max_age_ms).request(data, personal=key.role == "auditor"))


@router.post("/v1/verify/qr")
def verify_qr(data: Body, key: Agency, service: ServiceDep, max_age_ms: MaxAge = None) -> JSONResponse:
    """The voucher QR code in a photo (PNG, JPEG, WebP, GIF or BMP bytes)."""
    w = _work(service, max_age_ms)
    return JSONResponse(verify_image(data, w.verify, w.resolve_reference, personal=key.role == "auditor"))


@router.post("/v1/public/verify")
def public_verify(data: Body, _: Public, service: ServiceDep) -> JSONResponse:
    """The web page's check: no key, personal data masked (only with ``--public``)."""
    return JSONResponse(_work(service, None).request(data, personal=False))


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
    """The service's app (rules 3-6); with ``config.workers`` > 1 its worker pool, stopped with the app."""
    service = _Service(
        config,
        TrustState(config),
        KeyFile(config.keys_path) if config.keys_path is not None else None,
        TokenBucket(config.rate_per_second, config.rate_burst),
        TokenBucket(config.public_rate_per_second, config.public_rate_burst),
        VerifierPool(config.workers) if config.workers > 1 else None,
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if service.pool is not None:
            service.pool.start()
        gc.freeze()  # modules, the trust root, the app: start-up state the cyclic collector need not walk again
        try:
            yield
        finally:
            if service.pool is not None:
                service.pool.close()

    app = FastAPI(
        title="licledger verification service",
        version="1",
        description="Verify licledger proof bundles and voucher QR codes against a pinned trust root "
        "(docs/verifier.md).",
        lifespan=lifespan,
    )
    app.state.service = service
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
