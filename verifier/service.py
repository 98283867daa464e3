"""The verification service a provincial node runs for agencies and the public web page: its own trust root,
kept current from the ledger, and the checks of :mod:`verifier.core` on what callers submit.

Rules, before any code:

1. **The node's trust root** is its network's genesis, pinned by the node's configured ``network_id`` (the SM3
   of the genesis: a ``GetGenesis`` answer with another hash is refused), plus the ledger's latest final
   checkpoint with every member's record proven under it (``GetMember``).
2. **It advances like any verifier's** (:meth:`verifier.trust.TrustRoot.advanced`): quorum under keys already
   trusted, no conflict, no rollback, and an RFC 9162 §2.1.4 consistency proof (``GetLogConsistencyProof``)
   from the trusted checkpoint. The node's own peers are not trusted more than anyone's: a checkpoint that fails
   is not adopted, the failure (with both checkpoints) is kept in :attr:`NodeVerifier.alarm` and logged, and
   verification goes on with the last trusted root.
3. **Refresh** at most every ``refresh_ms`` (the first verification fetches the genesis); if the ledger is
   unreachable the last trusted root is used, and with none yet the ledger error propagates (HTTP 503).
4. **Verdicts** are :func:`verifier.core.verify_bundle`'s, never changed here. A malformed bundle is the caller's
   error (:class:`core.bundle.InvalidBundleError`, HTTP 422 naming the field) before any verification.

The request and answer of ``POST /v1/verify`` (a bundle, ``{"bundles": [...]}`` or ``{"license_id"}``) and of
``POST /v1/verify/qr`` are defined once, here (:func:`verify_request`, :func:`verify_image`), for the node's
routes (``node/api/routes/verify.py``) and the standalone service (``verifier/server.py``): each passes how it
verifies (its trust root) and how it finds a license's bundle by id. Caller errors raise
:class:`core.errors.DocumentError` with ``errors`` {path: problem} (HTTP 422).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any

from core import canonical
from core.bundle import InvalidBundleError, ProofBundle, QrReference, from_qr_payload
from core.commitment import parse_commitment_hex
from core.consortium import Genesis, MemberRecord
from core.divisions import PROVINCES
from core.errors import DocumentError, FormatError, LicledgerError
from core.smt import SparseProof
from node.ledger import Ledger, LedgerRequestError, LedgerUnavailableError
from verifier.core import Verdict, verify_bundle
from verifier.trust import ConsistencyError, TrustRoot, TrustRootError

__all__ = [
    "DEFAULT_MAX_AGE_MS",
    "MAX_BATCH",
    "PAGE_HEADERS",
    "WEB_FILES",
    "NodeVerifier",
    "ResolveCommitment",
    "TrustedCheckpoint",
    "VerifyBatch",
    "answer",
    "bind_commitment",
    "summary",
    "verify_image",
    "verify_request",
    "web_file",
]

log = logging.getLogger("licledger.verifier")
DEFAULT_MAX_AGE_MS = 24 * 3_600_000
MAX_BATCH = 100
WEB_FILES = {"verify.js": "text/javascript; charset=utf-8", "verify.css": "text/css; charset=utf-8"}
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
    "connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


@dataclass(frozen=True, slots=True)
class TrustedCheckpoint:
    """What the node's trust root holds now, for answers: seq, tree_size, timestamp (``None`` fields: genesis)."""

    seq: int | None
    tree_size: int | None
    timestamp_ms: int | None

    def to_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "tree_size": self.tree_size, "timestamp_ms": self.timestamp_ms}


class NodeVerifier:
    """Rules 1-4 for one node; thread-safe (the web app's worker threads share one)."""

    def __init__(self, ledger: Ledger, *, refresh_ms: int = 1000, clock: Callable[[], float] = time.monotonic) -> None:
        self.ledger = ledger
        self.refresh_ms = refresh_ms
        self._clock = clock
        self._lock = threading.Lock()
        self._refresh_lock = threading.Lock()
        self._refreshing = False
        self._root: TrustRoot | None = None
        self._seq: int | None = None
        self._checked_at: float | None = None
        self.alarm: dict[str, Any] | None = None
        """The last checkpoint that could not be adopted, with the trusted one and why (rule 2)."""

    def trust_root(self) -> tuple[TrustRoot, TrustedCheckpoint]:
        """The current trust root (refreshed per rule 3). One thread refreshes at a time; the others go on with
        the current root meanwhile (only the very first call, with no root yet, waits)."""
        now = self._clock()
        with self._lock:
            due = self._checked_at is None or (now - self._checked_at) * 1000 >= self.refresh_ms
            refresh = due and not self._refreshing
            if refresh:
                self._refreshing = True
            root, seq = self._root, self._seq
        if refresh:
            try:
                with self._refresh_lock:
                    self._refresh()
                with self._lock:
                    self._checked_at = now
            except (LedgerUnavailableError, LedgerRequestError) as exc:
                if self._root is None:
                    raise
                log.warning("verifier: ledger unreachable, using the trusted checkpoint: %s", exc)
            finally:
                with self._lock:
                    self._refreshing = False
            with self._lock:
                root, seq = self._root, self._seq
        elif root is None:
            with self._refresh_lock:  # wait for the first refresh to finish, or do it
                if self._root is None:
                    self._refresh()
            root, seq = self._root, self._seq
        assert root is not None
        cp = root.checkpoint
        info = TrustedCheckpoint(
            seq if cp is not None else None,
            None if cp is None else cp.log_size,
            None if cp is None else cp.timestamp_ms,
        )
        return root, info

    def _refresh(self) -> None:
        if self._root is None:
            answer = self.ledger.query("GetGenesis")
            try:
                genesis = Genesis.from_dict((answer or {}).get("genesis"))
            except FormatError as exc:
                raise LedgerRequestError(None, "MALFORMED_ANSWER", f"GetGenesis: {exc}") from None
            if genesis.network_id != self.ledger.network_id:
                raise LedgerRequestError(
                    None, "WRONG_GENESIS", f"the ledger's genesis has network id {genesis.network_id}, not ours"
                )
            with self._lock:
                self._root = TrustRoot.from_genesis(genesis)
        latest = self.ledger.latest_final_checkpoint()
        if latest is None:
            return
        note, seq = str(latest["note"]).encode("utf-8"), int(latest["seq"])
        root = self._root
        assert root is not None
        if root.note == note:
            return
        try:
            proof = self._consistency(root, int(latest["fields"]["log_size"]))
            advanced = root.advanced(note, proof, self._members(root, seq))
        except (ConsistencyError, TrustRootError, FormatError, LicledgerError) as exc:
            if isinstance(exc, LedgerUnavailableError):
                raise
            self.alarm = {
                "problem": str(exc),
                "trusted": None if root.note is None else root.note.decode("utf-8"),
                "refused": note.decode("utf-8", errors="replace"),
                "seq": seq,
            }
            log.error("verifier: the ledger's checkpoint %d was not adopted: %s", seq, exc)
            return
        with self._lock:
            self._root, self._seq = advanced, seq

    def _consistency(self, root: TrustRoot, new_size: int) -> list[bytes]:
        old = root.checkpoint
        if old is None or old.log_size == 0 or old.log_size >= new_size:
            return []
        answer = self.ledger.query("GetLogConsistencyProof", str(old.log_size), str(new_size))
        if answer is None:
            raise LedgerRequestError(404, "NOT_FOUND", "no consistency proof")
        return [bytes.fromhex(p) for p in answer["consistency_proof"]]

    def _members(self, root: TrustRoot, seq: int) -> list[tuple[MemberRecord, SparseProof]]:
        out = []
        for name in sorted(root.members):
            answer = self.ledger.query("GetMember", name, str(seq))
            if answer is not None and answer.get("record") is not None:
                out.append((MemberRecord.from_dict(answer["record"]), SparseProof.from_dict(answer["proof"])))
        return out

    def verify(
        self,
        bundle: ProofBundle | bytes,
        *,
        now_ms: int,
        max_age_ms: int | None = DEFAULT_MAX_AGE_MS,
        expected_license_id: str | None = None,
    ) -> tuple[Verdict, TrustedCheckpoint]:
        """Rule 4: the verdict of ``bundle`` under the node's trust root, and which checkpoint that root holds."""
        root, info = self.trust_root()
        verdict = verify_bundle(
            bundle, root, now_ms=now_ms, max_checkpoint_age_ms=max_age_ms, expected_license_id=expected_license_id
        )
        return verdict, info


# --- the request and answer of POST /v1/verify, for the node and the standalone service ------------------------

Verify = Callable[[ProofBundle | bytes, str | None], tuple[Verdict, TrustedCheckpoint]]
"""``(bundle, expected_license_id) -> (verdict, trusted checkpoint)`` under the caller's trust root and policy."""
VerifyBatch = Callable[[list[ProofBundle]], list[tuple[Verdict, TrustedCheckpoint]]]
"""A batch's bundles -> each one's ``(verdict, trusted checkpoint)``, in order: what :data:`Verify` gives one by
one, for callers that verify a batch as a whole (the standalone service: one online refresh per batch, worker
processes for large ones)."""
Resolve = Callable[[str], ProofBundle | bytes]
"""A license id (checked to be a string of 1-160 characters) -> its public-view bundle, from wherever the caller
finds it (the node's own records, the issuer's node); raises the caller's not-found error."""
ResolveCommitment = Callable[[bytes], ProofBundle | bytes]
"""A commitment (32 bytes) -> the public-view bundle of the license version that committed to it (the node's own
records; the nodes a service asks in turn: a commitment names no issuer); raises the caller's not-found error."""


def web_file(name: str) -> bytes:
    """``index.html`` or one of :data:`WEB_FILES` of the ``/verify`` page (``verifier/web``)."""
    return resources.files("verifier").joinpath("web", name).read_bytes()


def malformed(exc: InvalidBundleError, prefix: str = "") -> DocumentError:
    path = f"{prefix}{'' if exc.path == '$' and prefix else ('.' if prefix else '') + exc.path}"
    return DocumentError("malformed proof bundle", {path or "$": exc.problem})


def _parse(value: object, prefix: str = "") -> ProofBundle:
    try:
        return ProofBundle.from_dict(value)
    except InvalidBundleError as exc:
        raise malformed(exc, prefix) from None


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


def answer(verdict: Verdict, trusted: TrustedCheckpoint, personal: bool) -> dict[str, Any]:
    """The answer of one verification: the verdict, its summary and the trusted checkpoint."""
    return {**verdict.to_dict(personal=personal), "summary": summary(verdict), "trusted_checkpoint": trusted.to_dict()}


def _license_id(value: object) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= 160:
        raise DocumentError("bad license_id", {"license_id": "must be a license identifier (string)"})
    return value


def _commitment(value: object) -> bytes:
    commitment = parse_commitment_hex(value)
    if commitment is None:
        raise DocumentError("bad commitment", {"commitment": "must be 64 hex digits (an SM3 hash)"})
    return commitment


def bind_commitment(
    verdict: Verdict, data: ProofBundle | bytes, expected: bytes, what: str, *, key: str = "expected"
) -> Verdict:
    """``verdict``, or ``WRONG_COMMITMENT`` if the proven bundle ``data`` carries another commitment than
    ``expected`` (``what`` names where the expected one came from, ``key`` its name in the evidence)."""
    from verifier.online import reject_verdict  # urllib only when needed

    try:
        commitment = (data if isinstance(data, ProofBundle) else ProofBundle.from_json(data)).commitment
    except InvalidBundleError:
        return verdict  # the verdict already says what is wrong with it
    if verdict.facts.proven and commitment != expected:
        return reject_verdict(
            verdict,
            "WRONG_COMMITMENT",
            f"the license on the ledger has another commitment than {what}",
            {key: expected.hex(), "ledger": commitment.hex()},
        )
    return verdict


def verify_request(
    body: bytes,
    verify: Verify,
    resolve: Resolve,
    *,
    personal: bool,
    resolve_commitment: ResolveCommitment,
    verify_batch: VerifyBatch | None = None,
) -> dict[str, Any]:
    """``POST /v1/verify``: a bundle, ``{"bundles": [...]}`` (1 to :data:`MAX_BATCH`), ``{"license_id"}`` or
    ``{"commitment"}`` (the bundle from ``resolve_commitment``, which must carry that commitment). A batch goes to
    ``verify_batch`` when given, otherwise to ``verify`` one bundle at a time."""
    if not body.strip():
        raise DocumentError("empty request", {"$": "the body must be a proof bundle, a batch or a license_id"})
    try:
        value = canonical.decode(body)
    except FormatError as exc:
        raise DocumentError("the body is not strict JSON", {"$": str(exc)}) from None
    if not isinstance(value, dict):
        raise DocumentError("bad request", {"$": "must be a JSON object: a bundle, {bundles: [...]} or {license_id}"})
    if set(value) == {"license_id"}:
        expected = _license_id(value["license_id"])
        verdict, trusted = verify(resolve(expected), expected)
        return answer(verdict, trusted, personal)
    if set(value) == {"commitment"}:
        wanted = _commitment(value["commitment"])
        data = resolve_commitment(wanted)
        verdict, trusted = verify(data, None)
        return answer(bind_commitment(verdict, data, wanted, "the one asked for"), trusted, personal)
    if set(value) == {"bundles"}:
        items = value["bundles"]
        if not isinstance(items, list) or not 0 < len(items) <= MAX_BATCH:
            raise DocumentError("bad batch", {"bundles": f"must be a list of 1 to {MAX_BATCH} proof bundles"})
        bundles = [_parse(item, f"bundles[{i}]") for i, item in enumerate(items)]
        verified = [verify(b, None) for b in bundles] if verify_batch is None else verify_batch(bundles)
        assert len(verified) == len(bundles), "one verdict per bundle"
        results = [answer(one, trusted, personal) for one, trusted in verified]
        counts: dict[str, int] = {}
        for r in results:
            counts[r["result"]] = counts.get(r["result"], 0) + 1
        return {"results": results, "counts": counts, "trusted_checkpoint": verified[-1][1].to_dict()}
    try:
        single = ProofBundle.from_json(body)  # parsed again from the bytes: owned, no deep copy
    except InvalidBundleError as exc:
        raise malformed(exc) from None
    verdict, trusted = verify(single, None)
    return answer(verdict, trusted, personal)


def verify_image(
    image: bytes, verify: Verify, resolve: Callable[[QrReference], ProofBundle | bytes], *, personal: bool
) -> dict[str, Any]:
    """``POST /v1/verify/qr``: the voucher QR code in a photo; a reference's bundle comes from ``resolve`` and must
    carry the voucher's commitment (``WRONG_COMMITMENT`` otherwise)."""
    from verifier.qr import decode_qr_image  # Pillow, zxing-cpp: only for photos

    if not image:
        raise DocumentError("empty request", {"$": "the body must be an image"})
    payload = decode_qr_image(image)  # QrImageError (a FormatError): 422
    try:
        found = from_qr_payload(payload)
    except InvalidBundleError as exc:
        raise malformed(exc, "qr") from None
    if isinstance(found, ProofBundle):
        verdict, trusted = verify(found, None)
        return {**answer(verdict, trusted, personal), "qr": {"form": "offline", "node": None}}
    ref: QrReference = found
    data = resolve(ref)
    verdict, trusted = verify(data, ref.license_id)
    verdict = bind_commitment(
        verdict, data, ref.commitment, "the voucher: the voucher is not this license's", key="voucher"
    )
    return {**answer(verdict, trusted, personal), "qr": {"form": "reference", "node": ref.node_url}}
