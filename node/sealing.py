"""Validating and sealing license documents, in this process or spread over worker processes.

Issuing a license is CPU-bound work that needs no database: parse and validate the document
(:func:`core.licenses.parse_document`), check that this node's authority issued it, compute the canonical bytes
once, a fresh salt, the commitment ``SM3(salt || canonical bytes)`` (:mod:`core.commitment`), the RFC 9162 leaf
hash and the seal, the province's SM2 signature (GB/T 32918.2, :mod:`core.seal`). :class:`Sealer` does that and
returns a :class:`Sealed`: plain values, ready for :func:`node.records.store_sealed` to insert.

:class:`SealingPool` runs the same work in worker processes so that several documents are sealed at once while
the parent stores finished ones, in order. Rules:

1. **The key never crosses a pipe.** Each worker is a spawned child of the node process; it loads the settings of
   the node directory and decrypts the province key and node secret from the node's encrypted keystore
   (``province-key.enc``, ``node-secret.enc``) with the KEK from its environment (inherited from the parent,
   ``LICLEDGER_KEK``), exactly as :func:`node.context.open_node` does. It refuses to work if that key is not the
   one the parent holds (key id compared), e.g. after a key rotation between the two loads.
2. **Nothing is stored by a worker.** Workers answer values; the parent writes them, one chunk per transaction,
   in input order. A worker or the parent dying loses only work not yet committed: the outbox and the import
   progress are written with the licenses, so a resumed import redoes exactly the uncommitted chunks.
3. **Results are in input order**, and a bad document is an answer (:class:`Rejected`, field errors by path, no
   values), never an exception that loses the rest of the chunk.
"""

from __future__ import annotations

import base64
import functools
import multiprocessing
import os
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from core import canonical
from core.commitment import commitment, license_leaf_hash, new_salt
from core.errors import DocumentError, FormatError
from core.keystore import decrypt_private_key
from core.licenses import InstitutionLicense, License, NurseLicense, PhysicianLicense, canonical_bytes, parse_document
from core.seal import ALGORITHM, Seal
from core.sm2 import DEFAULT_SIGNER_ID, PrivateKey
from node.errors import RotationPendingError
from node.tokens import NodeSecrets, load_secret_file

if TYPE_CHECKING:  # a worker process needs no database, ledger client or migrations: it starts faster without
    from node.context import NodeContext

T = TypeVar("T")


# --- derived columns ------------------------------------------------------------------------------------


def institutions_of(doc: License) -> dict[str, str]:
    """USCC -> relation (``primary``, ``filed``, ``holder``) of the institutions a license names."""
    if isinstance(doc, PhysicianLicense):
        out = {doc.practice.primary_institution.uscc: "primary"}
        out.update({f.uscc: "filed" for f in doc.practice.filed_institutions})
        return out
    if isinstance(doc, NurseLicense):
        return {doc.practice.institution.uscc: "primary"}
    return {doc.holder.uscc: "holder"}


@dataclass(frozen=True, slots=True)
class Sealed:
    """A validated, sealed document: the rows :func:`node.records.store_sealed` writes, as plain values."""

    base_id: str
    kind: str
    version: int
    facets: dict[str, Any]
    """The license row's lookup columns: ``institution_uscc``, ``practice_category``, ``city_code``,
    ``holder_hash`` (HMAC-SM3 of the citizen ID, never the ID)."""
    institutions: tuple[tuple[str, str], ...]
    columns: dict[str, Any]
    """The version row: ``version``, ``full_id``, ``document`` (canonical bytes), ``salt``, ``commitment``,
    ``leaf_hash``, ``seal`` (canonical JSON), ``seal_key_id``, ``created_ms``."""

    def __reduce__(self) -> tuple[type[Sealed], tuple[Any, ...]]:
        # From a sealing worker as the constructor's arguments: the dataclass default for slots goes through
        # dataclasses.fields() for every object unpickled.
        return Sealed, (self.base_id, self.kind, self.version, self.facets, self.institutions, self.columns)

    @property
    def full_id(self) -> str:
        return str(self.columns["full_id"])

    @property
    def commitment(self) -> bytes:
        return bytes(self.columns["commitment"])

    @property
    def seal_key_id(self) -> str:
        return str(self.columns["seal_key_id"])


@dataclass(frozen=True, slots=True)
class Rejected:
    """A document that is not a valid license of this node's authority: field path -> message (no values)."""

    message: str
    errors: dict[str, str]

    def describe(self) -> str:
        """One line for an operator (``field: message; ...``), at most 1,000 characters."""
        if self.errors:
            return "; ".join(f"{k}: {v}" for k, v in sorted(self.errors.items()))[:1000]
        return self.message[:1000]


def rejected(exc: FormatError) -> Rejected:
    errors = dict(exc.errors) if isinstance(exc, DocumentError) and exc.errors else {}
    return Rejected(str(exc)[:1000], errors)


@dataclass(frozen=True, slots=True)
class Sealer:
    """Who this node issues for and the keys it seals and hashes with; no I/O."""

    province: str
    authority_uscc: str
    authority: str
    key: PrivateKey
    secrets: NodeSecrets

    @classmethod
    def of(cls, node: NodeContext) -> Sealer:
        """The sealer for ``node`` now; :class:`~node.errors.RotationPendingError` while a key rotation is pending."""
        node.check_no_pending_rotation()
        s = node.settings
        return cls(s.province, s.authority_uscc, s.authority, node.sealing_key(), node.secrets)

    def check_issuer(self, doc: License) -> None:
        """:class:`DocumentError` on ``issuer.*`` unless this node's province and authority issued ``doc``."""
        errors: dict[str, str] = {}
        if doc.issuer.province != self.province:
            errors["issuer.province"] = f"is not this node's province {self.province}"
        if doc.issuer.authority_uscc != self.authority_uscc:
            errors["issuer.authority_uscc"] = "is not this node's issuing authority"
        if doc.issuer.authority != self.authority:
            errors["issuer.authority"] = "is not the name of this node's issuing authority"
        if errors:
            raise DocumentError("license not issued by this node's authority", errors)

    def validate(self, document: Mapping[str, Any] | bytes) -> License:
        """The parsed document, issued by this node's authority; :class:`DocumentError` otherwise."""
        doc = parse_document(document)
        self.check_issuer(doc)
        return doc

    def facets(self, doc: License) -> dict[str, Any]:
        """The license row's lookup and statistics columns for ``doc``."""
        category: str | None
        if isinstance(doc, InstitutionLicense):
            uscc, category, city = doc.holder.uscc, doc.practice.category, doc.holder.division[:4] + "00"
            holder = None
        else:
            uscc = (
                doc.practice.primary_institution.uscc
                if isinstance(doc, PhysicianLicense)
                else doc.practice.institution.uscc
            )
            category = doc.practice.category if isinstance(doc, PhysicianLicense) else None
            # The institution's registration division (USCC positions 3-8) at prefecture level.
            city = uscc[2:6] + "00"
            holder = self.secrets.holder_hash(doc.holder.citizen_id)
        return {"institution_uscc": uscc, "practice_category": category, "city_code": city, "holder_hash": holder}

    def seal(self, doc: License, now_ms: int) -> Sealed:
        """Canonical bytes (encoded once), fresh salt, commitment, leaf hash and seal of validated ``doc``."""
        data = canonical_bytes(doc)
        salt = new_salt()
        value = commitment(data, salt)
        seal = self._seal(data, now_ms)
        return Sealed(
            base_id=doc.license_id.base,
            kind=doc.kind,
            version=doc.version,
            facets=self.facets(doc),
            institutions=tuple(institutions_of(doc).items()),
            columns={
                "version": doc.version,
                "full_id": str(doc.license_id),
                "document": data,
                "salt": salt,
                "commitment": value,
                "leaf_hash": license_leaf_hash(doc.license_id, doc.version, value),
                "seal": seal,
                "seal_key_id": self.key.key_id,
                "created_ms": now_ms,
            },
        )

    def _seal(self, data: bytes, now_ms: int) -> bytes:
        """The canonical JSON of the seal :func:`core.seal.seal_document` makes, over canonical bytes ``data``
        of a document this node's authority issued (:meth:`check_issuer`).

        The signed payload is canonical ``{"document": D, "seal": S}`` (:func:`core.seal.signed_payload`); its
        keys are in order and the canonical form of an object is its members' canonical forms joined, so it is
        ``{"document":`` + canonical(D) + ``,"seal":`` + canonical(S) + ``}``, with canonical(D) the bytes
        committed to. ``S`` (the seal without signature) and the seal's JSON with a placeholder for the
        signature depend only on the signing time, so they are encoded once per time (:func:`_seal_templates`);
        the base64 signature needs no JSON escaping. The tests check the result against ``seal_document``
        and ``verify_seal``.
        """
        info, template = _seal_templates(self.province, self.authority, self.key.key_id, now_ms)
        signature = self.key.sign(b'{"document":' + data + b',"seal":' + info + b"}", DEFAULT_SIGNER_ID)
        return template.replace(_PLACEHOLDER, base64.b64encode(signature), 1)

    def prepare(self, document: Mapping[str, Any] | bytes, now_ms: int) -> Sealed | Rejected:
        """Validate and seal one document; a bad one is answered as :class:`Rejected`."""
        try:
            return self.seal(self.validate(document), now_ms)
        except FormatError as exc:
            return rejected(exc)

    def prepare_many(self, documents: Sequence[Mapping[str, Any] | bytes], now_ms: int) -> list[Sealed | Rejected]:
        """:meth:`prepare` for each document, in order."""
        return [self.prepare(d, now_ms) for d in documents]


_PLACEHOLDER = b"@signature@"


@functools.lru_cache(maxsize=8)
def _seal_templates(province: str, authority: str, key_id: str, now_ms: int) -> tuple[bytes, bytes]:
    """Canonical bytes of the seal info (what is signed with the document) and of the seal with
    :data:`_PLACEHOLDER` as its signature, validated once by :class:`core.seal.Seal`."""
    unsigned = Seal(
        issuer_province=province,
        issuer_authority=authority,
        key_id=key_id,
        signing_time=now_ms,
        signer_id=DEFAULT_SIGNER_ID.decode("ascii"),
        algorithm=ALGORITHM,
        signature=b"\x00",  # placeholder: info() leaves the signature out
    )
    info = canonical.encode(unsigned.info())
    template = canonical.encode({**unsigned.info(), "signature": _PLACEHOLDER.decode("ascii")})
    assert template.count(_PLACEHOLDER) == 1
    return info, template


# --- worker processes -------------------------------------------------------------------------------------

_worker: Sealer | None = None


def _exit_with_parent(parent: int, interval_s: float = 0.5) -> None:
    """End this worker once its parent is gone (a SIGKILLed import): a pool worker holds both ends of its job
    queue's pipe, so it would otherwise wait for work forever."""
    while os.getppid() == parent:
        time.sleep(interval_s)
    os._exit(1)


def load_sealer(directory: str, mode: str, expected_key_id: str, issuer: tuple[str, str, str]) -> Sealer:
    """Rule 1: the key and secret from the node's keystore, with the KEK of this process's environment;
    ``RuntimeError`` if the key is not ``expected_key_id``."""
    from node.settings import load_settings

    settings = load_settings(Path(directory), mode=mode)
    kek = settings.kek_bytes
    key = decrypt_private_key(settings.key_file.read_bytes(), kek)
    if key.key_id != expected_key_id:
        raise RuntimeError(f"the keystore holds key {key.key_id[:16]}..., the node {expected_key_id[:16]}...")
    return Sealer(*issuer, key, load_secret_file(settings.secret_file, kek))


def _init_worker(parent: int, directory: str, mode: str, expected_key_id: str, issuer: tuple[str, str, str]) -> None:
    global _worker
    # the parent's pid comes from the parent: a worker still starting when the parent died already has another
    threading.Thread(target=_exit_with_parent, args=(parent,), name="parent-watch", daemon=True).start()
    _worker = load_sealer(directory, mode, expected_key_id, issuer)


def _work(documents: Sequence[Mapping[str, Any] | bytes], now_ms: int) -> list[Sealed | Rejected]:
    assert _worker is not None, "sealing worker not initialised"
    return _worker.prepare_many(documents, now_ms)


def _ping() -> tuple[int, str]:
    """This worker's process id and the id of the key it seals with (:meth:`SealingPool.warm_up`)."""
    assert _worker is not None, "sealing worker not initialised"
    return os.getpid(), _worker.key.key_id


def default_workers() -> int:
    return os.cpu_count() or 1


class SealingPool:
    """``workers`` spawned processes sealing for ``node`` (rules in the module docstring). ``workers=0`` seals in
    this process (same answers, no processes): callers need not care which they got.

    Use as a context manager, or call :meth:`close`. Blocking: :meth:`map` waits for its answers; :meth:`stream`
    keeps up to ``ahead`` jobs in flight and yields answers in input order as they are needed.
    """

    PIECE = 64
    """Documents per job sent to a worker: large enough to amortise the pipe, small enough to spread a chunk."""

    def __init__(self, node: NodeContext, workers: int) -> None:
        if workers < 0:
            raise ValueError("workers must be >= 0")
        self.sealer = Sealer.of(node)
        self.workers = workers
        self._node = node
        self._pool: ProcessPoolExecutor | None = None
        if workers:
            s = node.settings
            self._pool = ProcessPoolExecutor(
                workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_init_worker,
                initargs=(
                    os.getpid(),
                    str(s.dir.resolve()),
                    s.mode,
                    self.sealer.key.key_id,
                    (self.sealer.province, self.sealer.authority_uscc, self.sealer.authority),
                ),
            )

    def worker_pids(self) -> list[int]:
        """The worker processes' ids (for monitoring and benchmarks); empty when sealing in this process."""
        return [] if self._pool is None else [p.pid for p in self._pool._processes.values() if p.pid is not None]

    def warm_up(self, timeout: float = 120.0) -> list[int]:
        """Start every worker and wait until each has loaded its key (rule 1) and answered; returns their ids.

        A worker that refuses (its keystore holds another key, e.g. after a rotation's switch) breaks the pool:
        ``BrokenProcessPool`` is raised; ``TimeoutError`` if they are not all up within ``timeout`` seconds."""
        if self._pool is None:
            return []
        deadline = time.monotonic() + timeout
        answered: set[int] = set()
        while True:
            # submitted together, the pings start every worker (the executor spawns one per job while none is
            # idle); a worker that was slower to start than the others answers a later round
            for future in [self._pool.submit(_ping) for _ in range(self.workers)]:
                pid, key_id = future.result(timeout=max(0.0, deadline - time.monotonic()))
                if key_id != self.sealer.key.key_id:  # rule 1 already refuses this; checked again, cheaply
                    raise RuntimeError(
                        f"worker {pid} seals with key {key_id[:16]}..., not {self.sealer.key.key_id[:16]}..."
                    )
                answered.add(pid)
            pids = self.worker_pids()
            if len(pids) >= self.workers and answered >= set(pids):
                return sorted(pids)
            if time.monotonic() >= deadline:
                raise TimeoutError(f"{len(answered)} of {self.workers} sealing workers answered within {timeout} s")
            time.sleep(0.05)

    def __enter__(self) -> SealingPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def _submit(self, documents: Sequence[Mapping[str, Any] | bytes], now_ms: int) -> list[Future[list[Any]]]:
        assert self._pool is not None
        return [
            self._pool.submit(_work, documents[i : i + self.PIECE], now_ms)
            for i in range(0, len(documents), self.PIECE)
        ]

    def map(self, documents: Sequence[Mapping[str, Any] | bytes], now_ms: int) -> list[Sealed | Rejected]:
        """Validate and seal ``documents``; answers in input order. :class:`~node.errors.RotationPendingError`,
        nothing sealed, while a key rotation is pending (also for a pool started before the request)."""
        self._node.check_no_pending_rotation()
        if self._pool is None:
            return self.sealer.prepare_many(documents, now_ms)
        return [answer for job in self._submit(documents, now_ms) for answer in job.result()]

    def stream(
        self,
        jobs: Iterable[tuple[T, Sequence[Mapping[str, Any] | bytes], int]],
        *,
        ahead: int | None = None,
    ) -> Iterator[tuple[T, list[Sealed | Rejected]]]:
        """For each ``(tag, documents, now_ms)``, ``(tag, answers)`` in input order, with up to ``ahead`` jobs
        (default: two per worker) being sealed while the caller handles earlier answers.

        Each job is checked against a pending key rotation when it is handed out, not only when the stream starts:
        a long import stops with :class:`~node.errors.RotationPendingError` at the first job after a
        ``rotate-key request`` (the jobs handed out before it were sealed at times before the request, which the
        old key still covers); the caller gets the answers of the earlier jobs first."""
        if self._pool is None:
            for tag, documents, now_ms in jobs:
                self._node.check_no_pending_rotation()
                yield tag, self.sealer.prepare_many(documents, now_ms)
            return
        window: deque[tuple[T, list[Future[list[Any]]]]] = deque()
        limit = ahead if ahead is not None else 2 * self.workers
        iterator = iter(jobs)
        pending: RotationPendingError | None = None
        try:
            while True:
                while pending is None and len(window) < max(1, limit):
                    job = next(iterator, None)
                    if job is None:
                        break
                    tag, documents, now_ms = job
                    try:
                        self._node.check_no_pending_rotation()
                    except RotationPendingError as exc:
                        pending = exc  # no job is handed out any more; the earlier ones are answered first
                        break
                    window.append((tag, self._submit(documents, now_ms)))
                if not window:
                    if pending is not None:
                        raise pending
                    return
                tag, futures = window.popleft()
                yield tag, [answer for future in futures for answer in future.result()]
        finally:
            for _, futures in window:
                for future in futures:
                    future.cancel()
