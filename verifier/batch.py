"""Verify many proof bundles offline, spread over worker processes: :func:`verify_many`.

Rules, before any code:

1. **Same verdicts.** Each bundle's verdict is :func:`verifier.core.verify_bundle`'s under the same trust root and
   policy (``now_ms``, ``max_checkpoint_age_ms``, ``expected_license_id``), exactly as if verified one by one in
   this process; the answers come back in the order of the input. Nothing is decided here.
2. **Untrusted data never raises**: a bundle that does not parse is INVALID at step 1 and the others are
   unaffected. Caller misuse (a trust root that is not one, negative times, ``workers < 1``, an item that is not
   bytes or str) raises ``TypeError``/``ValueError`` here, before any worker starts.
3. **What crosses processes is small and plain**: the trust root once per worker, as its trust-root file bytes
   (:meth:`TrustRoot.to_json`, read back with :func:`verifier.trust.load_trust_root` pinned to its network id),
   then chunks of bundle bytes out and :class:`Verdict` objects back. Each worker keeps its own trust root, so the
   checkpoint's cosignatures are verified once per worker and then served from its memo.
4. **Small inputs stay in-process**: with ``workers=1``, or fewer than :data:`MIN_PARALLEL` bundles per worker,
   starting processes costs more than it saves.
5. **A long-running caller keeps its workers** (:class:`VerifierPool`, a verification service's ``--workers``):
   they are started once, each in a fresh interpreter (``forkserver``, else ``spawn``: never a fork of a
   multi-threaded web server), and every chunk carries the trust root's file bytes, which each worker loads once
   and keeps (keyed by those bytes) while the caller's trust root stays the same, so the caller's trust root may
   advance between two calls.

Process pools are an implementation detail of this module; :mod:`verifier.core` stays free of I/O and processes.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor

from verifier.core import Verdict, _check_caller, verify_bundle
from verifier.trust import TrustRoot, load_trust_root

__all__ = ["MIN_PARALLEL", "VerifierPool", "default_workers", "verify_many"]

MIN_PARALLEL = 8
"""Fewer bundles than this per worker are verified in this process."""
_CHUNKS_PER_WORKER = 4
_MAX_CHUNK = 64


def default_workers() -> int:
    """One worker per CPU this process may run on (``os.cpu_count()`` where affinity is unknown)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not on every platform
        return max(1, os.cpu_count() or 1)


class VerifierPool:
    """Worker processes kept for many :func:`verify_many` calls (rule 5); thread-safe. ``close()`` stops them."""

    def __init__(self, workers: int) -> None:
        if type(workers) is not int or workers < 1:
            raise ValueError(f"workers must be a positive int, got {workers!r}")
        self.workers = workers
        context: multiprocessing.context.BaseContext
        if "forkserver" in multiprocessing.get_all_start_methods():
            forkserver = multiprocessing.get_context("forkserver")
            forkserver.set_forkserver_preload(["verifier.batch"])  # workers start with the verifier imported
            context = forkserver
        else:
            context = multiprocessing.get_context("spawn")
        self._executor = ProcessPoolExecutor(max_workers=workers, mp_context=context)
        self._lock = threading.Lock()
        self._root: tuple[TrustRoot, bytes] | None = None

    def start(self) -> None:
        """Start every worker now (otherwise the first large call does, and waits for them)."""
        list(self._executor.map(_ready, range(self.workers)))

    def _map(self, trust_root: TrustRoot, policy: _Policy, chunks: list[list[bytes | str]]) -> list[Verdict]:
        with self._lock:
            if self._root is None or self._root[0] is not trust_root:
                self._root = (trust_root, trust_root.to_json())
            data = self._root[1]
        futures = [self._executor.submit(_verify_sent, data, trust_root.network_id, policy, c) for c in chunks]
        return [verdict for future in futures for verdict in future.result()]

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> VerifierPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def verify_many(
    bundles: Sequence[bytes | str],
    trust_root: TrustRoot,
    *,
    now_ms: int,
    max_checkpoint_age_ms: int | None,
    expected_license_id: str | None = None,
    workers: int | None = None,
    pool: VerifierPool | None = None,
) -> list[Verdict]:
    """The verdict of each bundle (its JSON bytes or text), in input order; ``workers=None`` = one per CPU, or the
    ``pool``'s workers when one is given (then ``workers`` must be ``None``).

    Equivalent to ``[verify_bundle(b, trust_root, now_ms=..., ...) for b in bundles]`` (rule 1), faster on several
    cores for many bundles.
    """
    _check_caller(trust_root, now_ms, max_checkpoint_age_ms, expected_license_id)
    if pool is not None:
        if workers is not None:
            raise ValueError("give workers or a pool, not both")
        if not isinstance(pool, VerifierPool):
            raise TypeError(f"pool must be a VerifierPool, not {type(pool).__name__}")
        workers = pool.workers
    if workers is None:
        workers = default_workers()
    if type(workers) is not int or workers < 1:
        raise ValueError(f"workers must be a positive int, got {workers!r}")
    items = list(bundles)
    for i, item in enumerate(items):
        if not isinstance(item, bytes | str):
            raise TypeError(f"bundles[{i}] must be the bundle's JSON bytes or text, not {type(item).__name__}")
    workers = min(workers, len(items) // MIN_PARALLEL)
    if workers <= 1:
        return [
            verify_bundle(
                b,
                trust_root,
                now_ms=now_ms,
                max_checkpoint_age_ms=max_checkpoint_age_ms,
                expected_license_id=expected_license_id,
            )
            for b in items
        ]
    size = max(1, min(_MAX_CHUNK, -(-len(items) // (workers * _CHUNKS_PER_WORKER))))
    chunks = [items[i : i + size] for i in range(0, len(items), size)]
    policy = (now_ms, max_checkpoint_age_ms, expected_license_id)
    if pool is not None:
        return pool._map(trust_root, policy, chunks)
    with ProcessPoolExecutor(
        max_workers=workers, initializer=_init_worker, initargs=(trust_root.to_json(), trust_root.network_id, policy)
    ) as executor:
        return [verdict for chunk in executor.map(_verify_chunk, chunks) for verdict in chunk]


# --- in the worker processes -------------------------------------------------------------------------------------

_Policy = tuple[int, int | None, str | None]
_worker: tuple[TrustRoot, _Policy] | None = None


def _init_worker(trust_root: bytes, network_id: str, policy: _Policy) -> None:
    global _worker
    _worker = (load_trust_root(trust_root, network_id=network_id), policy)
    gc.freeze()  # start-up state lives as long as the worker: keep the cyclic collector off it


def _verify_chunk(chunk: list[bytes | str]) -> list[Verdict]:
    assert _worker is not None, "worker not initialised"
    root, (now_ms, max_age_ms, expected) = _worker
    return [
        verify_bundle(b, root, now_ms=now_ms, max_checkpoint_age_ms=max_age_ms, expected_license_id=expected)
        for b in chunk
    ]


_ROOTS: OrderedDict[bytes, TrustRoot] = OrderedDict()
_MAX_ROOTS = 4


def _verify_sent(trust_root: bytes, network_id: str, policy: _Policy, chunk: list[bytes | str]) -> list[Verdict]:
    """A :class:`VerifierPool` worker's chunk: the trust root comes along and is loaded once per worker (rule 5)."""
    root = _ROOTS.get(trust_root)
    if root is None:
        root = _ROOTS[trust_root] = load_trust_root(trust_root, network_id=network_id)
        while len(_ROOTS) > _MAX_ROOTS:
            _ROOTS.popitem(last=False)
    now_ms, max_age_ms, expected = policy
    return [
        verify_bundle(b, root, now_ms=now_ms, max_checkpoint_age_ms=max_age_ms, expected_license_id=expected)
        for b in chunk
    ]


def _ready(_: int) -> None:
    """Nothing: makes the pool start a worker."""
