"""The sealing workers of a running node (``licledger node serve --seal-workers N``), following key rotations.

``POST /v1/licenses/batch`` validates and seals its documents in a :class:`~node.sealing.SealingPool` of N spawned
processes, each of which loaded the province's key when it started (:mod:`node.sealing`, rule 1). A key
rotation (docs/node.md, "Key rotation") replaces the node's key without a restart, so :class:`SealingWorkers`
keeps the pool in step with :meth:`~node.context.NodeContext.sealing_key`. Rules:

1. **Never the wrong key.** A request gets the pool only while the pool's key is the node's key now (read fresh,
   not up to a second old); otherwise it seals in its own thread with the node's key (same answers, slower).
   While a rotation is pending nothing is sealed at all: the pool, like the request's thread, refuses with
   :class:`~node.errors.RotationPendingError` (503), and no new pool is started.
2. **Replaced, not restarted.** A watcher thread looks every ``check_interval_s`` (and at once when a request
   found the pool stale): when the node's key differs from the pool's, it starts a new pool with the node's
   key, waits until every new worker has loaded that key and answered (:meth:`SealingPool.warm_up`), then
   makes it the current pool. A pool that fails to start (a worker's keystore holds another key: the key
   changed again meanwhile) is shut down and tried again at the next look; requests seal in their thread.
3. **The old pool is drained, then shut down.** A request holds a *lease* on the pool it was given for as long
   as it seals; a replaced pool takes no new lease and is shut down by the watcher once its last lease is
   returned. A request in flight therefore finishes on the pool it started on and stores its answers once
   (its own transaction); nothing is cancelled, resubmitted or sealed twice.

:func:`share` makes one instance the node's (``node serve``); :func:`lease` is what the batch route calls and
:func:`status` what ``GET /v1/sealing`` reports (the pool's key id and worker ids, how many pools were started,
how many batches went to the workers and how many were sealed in the request's thread).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from node.errors import RotationPendingError
from node.sealing import SealingPool

if TYPE_CHECKING:
    from node.context import NodeContext

__all__ = ["SealingWorkers", "lease", "share", "status"]

log = logging.getLogger(__name__)


class SealingWorkers:
    """``workers`` sealing processes for ``node`` that follow its signing key (rules in the module docstring).

    :meth:`start` starts the first pool (waiting for it, unless a rotation is pending) and the watcher;
    :meth:`close` stops the watcher and shuts every pool down. :meth:`refresh` is one look of the watcher
    (blocking while a new pool starts); tests call it directly.
    """

    def __init__(
        self,
        node: NodeContext,
        workers: int,
        *,
        check_interval_s: float = 1.0,
        start_timeout_s: float = 120.0,
    ) -> None:
        if workers < 1:
            raise ValueError("SealingWorkers needs at least one worker (0: seal in the request's thread)")
        self.node = node
        self.workers = workers
        self._interval = check_interval_s
        self._start_timeout = start_timeout_s
        self._lock = threading.Lock()
        self._refreshing = threading.Lock()
        self._current: SealingPool | None = None
        self._retired: list[SealingPool] = []
        self._leases: dict[SealingPool, int] = {}
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.pools_started = 0
        self.batches_by_workers = 0
        self.batches_in_thread = 0

    # --- life cycle ---

    def start(self) -> None:
        """Start the first pool now (a failure is logged; the watcher retries) and then the watcher thread."""
        self.refresh()
        self._thread = threading.Thread(target=self._watch, name="sealing-workers", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop the watcher, then shut every pool down (``node serve`` does this after the server stopped, when
        no request holds a lease)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        with self._lock:
            pools = [p for p in (self._current, *self._retired) if p is not None]
            self._current, self._retired = None, []
            self._leases.clear()
        for pool in pools:
            pool.close()

    def __enter__(self) -> SealingWorkers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _watch(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self._interval)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self.refresh()
            except Exception:  # the watcher must outlive any one failure; requests seal in their thread meanwhile
                log.exception("sealing workers: refresh failed")

    # --- rule 2 and 3 ---

    def refresh(self) -> bool:
        """One look: shut down drained old pools; start a pool with the node's key if the current one does not
        seal with it (and no rotation is pending). Returns whether the pool was replaced."""
        with self._refreshing:
            self._close_drained()
            try:
                self.node.check_no_pending_rotation()
                key_id = self.node.sealing_key().key_id
            except RotationPendingError:
                return False
            current = self._current
            if current is not None and current.sealer.key.key_id == key_id:
                return False
            try:
                pool = SealingPool(self.node, self.workers)
            except RotationPendingError:  # requested between the check and now
                return False
            try:
                pids = pool.warm_up(self._start_timeout)
            except Exception as exc:
                pool.close()
                log.error(
                    "sealing workers: a pool with key %s did not start (%s: %s); sealing in the request's thread",
                    pool.sealer.key.key_id,
                    type(exc).__name__,
                    exc,
                )
                return False
            with self._lock:
                old, self._current = self._current, pool
                self._leases[pool] = 0
                if old is not None:
                    self._retired.append(old)
                self.pools_started += 1
            log.info(
                "sealing workers: %d processes (%s) seal with key %s%s",
                self.workers,
                ", ".join(map(str, pids)),
                pool.sealer.key.key_id,
                "" if old is None else f" instead of {old.sealer.key.key_id}; the old pool drains",
            )
            self._close_drained()
            return True

    def _close_drained(self) -> None:
        with self._lock:
            drained = [p for p in self._retired if self._leases.get(p, 0) == 0]
            self._retired = [p for p in self._retired if p not in drained]
            for pool in drained:
                self._leases.pop(pool, None)
        for pool in drained:
            pids = pool.worker_pids()
            pool.close()
            log.info("sealing workers: the pool with key %s shut down (%s)", pool.sealer.key.key_id, pids)

    # --- rule 1 ---

    @contextlib.contextmanager
    def lease(self, node: NodeContext) -> Iterator[SealingPool | None]:
        """The current pool if it seals with ``node``'s key now, held until the block ends; else ``None``: seal
        in this thread (and the watcher is woken to replace the pool). :class:`~node.errors.RotationPendingError`
        while a key rotation is pending: nothing is sealed, here or in the request's thread."""
        node.check_no_pending_rotation()
        key_id = node.sealing_key().key_id
        with self._lock:
            pool = self._current
            if pool is None or (pool.sealer.key.key_id, pool.sealer.authority_uscc) != (
                key_id,
                node.settings.authority_uscc,
            ):
                pool = None
                self.batches_in_thread += 1
            else:
                self._leases[pool] += 1
                self.batches_by_workers += 1
        if pool is None:
            self._wake.set()
        try:
            yield pool
        finally:
            if pool is not None:
                with self._lock:
                    self._leases[pool] -= 1
                    drained = self._leases[pool] == 0 and pool in self._retired
                if drained:
                    self._wake.set()

    def status(self) -> dict[str, Any]:
        """What ``GET /v1/sealing`` reports (identifiers and counts only)."""
        with self._lock:
            current = self._current
            return {
                "workers": self.workers,
                "key_id": None if current is None else current.sealer.key.key_id,
                "pids": [] if current is None else sorted(current.worker_pids()),
                "draining": sum(len(p.worker_pids()) for p in self._retired),
                "pools_started": self.pools_started,
                "batches_by_workers": self.batches_by_workers,
                "batches_in_thread": self.batches_in_thread,
            }


_shared: SealingWorkers | None = None


def share(workers: SealingWorkers | None) -> None:
    """Make ``workers`` the ones ``POST /v1/licenses/batch`` uses (``node serve --seal-workers``); ``None``: none."""
    global _shared
    _shared = workers


@contextlib.contextmanager
def lease(node: NodeContext) -> Iterator[SealingPool | None]:
    """The shared workers' pool for ``node`` (:meth:`SealingWorkers.lease`), or ``None`` without shared workers."""
    workers = _shared
    if workers is None:
        yield None
        return
    with workers.lease(node) as pool:
        yield pool


def status() -> dict[str, Any]:
    """The shared workers' :meth:`~SealingWorkers.status`; zeros without ``--seal-workers``."""
    workers = _shared
    if workers is None:
        return {
            "workers": 0,
            "key_id": None,
            "pids": [],
            "draining": 0,
            "pools_started": 0,
            "batches_by_workers": 0,
            "batches_in_thread": 0,
        }
    return workers.status()
