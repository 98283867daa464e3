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

Process pools are an implementation detail of this module; :mod:`verifier.core` stays free of I/O and processes.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor

from verifier.core import Verdict, _check_caller, verify_bundle
from verifier.trust import TrustRoot, load_trust_root

__all__ = ["MIN_PARALLEL", "default_workers", "verify_many"]

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


def verify_many(
    bundles: Sequence[bytes | str],
    trust_root: TrustRoot,
    *,
    now_ms: int,
    max_checkpoint_age_ms: int | None,
    expected_license_id: str | None = None,
    workers: int | None = None,
) -> list[Verdict]:
    """The verdict of each bundle (its JSON bytes or text), in input order; ``workers=None`` = one per CPU.

    Equivalent to ``[verify_bundle(b, trust_root, now_ms=..., ...) for b in bundles]`` (rule 1), faster on several
    cores for many bundles.
    """
    _check_caller(trust_root, now_ms, max_checkpoint_age_ms, expected_license_id)
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
    with ProcessPoolExecutor(
        max_workers=workers, initializer=_init_worker, initargs=(trust_root.to_json(), trust_root.network_id, policy)
    ) as pool:
        return [verdict for chunk in pool.map(_verify_chunk, chunks) for verdict in chunk]


# --- in the worker processes -------------------------------------------------------------------------------------

_Policy = tuple[int, int | None, str | None]
_worker: tuple[TrustRoot, _Policy] | None = None


def _init_worker(trust_root: bytes, network_id: str, policy: _Policy) -> None:
    global _worker
    _worker = (load_trust_root(trust_root, network_id=network_id), policy)


def _verify_chunk(chunk: list[bytes | str]) -> list[Verdict]:
    assert _worker is not None, "worker not initialised"
    root, (now_ms, max_age_ms, expected) = _worker
    return [
        verify_bundle(b, root, now_ms=now_ms, max_checkpoint_age_ms=max_age_ms, expected_license_id=expected)
        for b in chunk
    ]
