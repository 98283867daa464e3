"""Scheduling the node's ledger jobs with APScheduler (3.x): the anchoring pass and the reconciliation.

* ``anchor`` every ``anchor_interval_ms`` (:meth:`sync.anchor.AnchorWorker.run_once`);
* ``reconcile`` every ``reconcile_interval_s`` unless 0 (:func:`sync.reconcile.reconcile`, repairing);
* ``checkpoints`` every ``checkpoint_duty_interval_s`` on a Fabric ledger (:class:`sync.checkpoints.CheckpointDuty`:
  the province's checkpoint proposals and cosignatures, which the embedded ledger's peers make themselves);
* ``announce`` at start and every ``announce_interval_s`` unless 0 or without ``public_url``
  (:func:`announce_job`: the node's URL on the ledger, :mod:`node.directory`).

Each job runs at most once at a time (``max_instances=1``) and missed runs collapse into one (``coalesce``): a
pass that takes longer than the interval (the ledger slow to commit) delays the next instead of stacking them.
Jobs never raise: a pass reports ledger trouble in its result and the scheduler logs anything unexpected.
``licledger node serve`` runs them in the background of the web server (:func:`start_background`, unless
``LICLEDGER_ANCHOR_IN_PROCESS=false``); ``licledger node anchor`` in the foreground (:func:`run_blocking`).
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler  # type: ignore[import-untyped]
from apscheduler.schedulers.base import BaseScheduler  # type: ignore[import-untyped]
from apscheduler.schedulers.blocking import BlockingScheduler  # type: ignore[import-untyped]

from node.context import NodeContext
from sync.anchor import AnchorWorker
from sync.checkpoints import CheckpointDuty

log = logging.getLogger("licledger.scheduler")
JOB_DEFAULTS = {"coalesce": True, "max_instances": 1, "misfire_grace_time": None}


def _add_jobs(scheduler: Any, node: NodeContext, worker: AnchorWorker) -> None:
    # APScheduler logs every run at INFO (once a second here); the passes log what they did themselves.
    logging.getLogger("apscheduler").setLevel(max(logging.WARNING, logging.getLogger().getEffectiveLevel()))
    settings = node.settings
    scheduler.add_job(
        worker.run_once,
        "interval",
        seconds=settings.anchor_interval_ms / 1000,
        id="anchor",
        name="anchoring pass",
        next_run_time=datetime.now(),
    )
    if settings.reconcile_interval_s > 0:
        from sync.reconcile import reconcile

        def reconcile_job() -> None:
            report = reconcile(node, repair=True, worker=worker)
            if not report.ok:
                log.warning("reconciliation: %s", report.summary())

        scheduler.add_job(
            reconcile_job, "interval", seconds=settings.reconcile_interval_s, id="reconcile", name="reconciliation"
        )
    if settings.ledger_backend == "fabric" and settings.checkpoint_duty_interval_s > 0 and node.ledger is not None:
        duty = checkpoint_duty(node)
        scheduler.add_job(
            duty.run_once,
            "interval",
            seconds=settings.checkpoint_duty_interval_s,
            id="checkpoints",
            name="checkpoint duty",
            next_run_time=datetime.now(),
        )
    if settings.announce_interval_s > 0 and settings.public_url:
        scheduler.add_job(
            announce_job,
            "interval",
            args=[node],
            seconds=settings.announce_interval_s,
            id="announce",
            name="node announcement",
            next_run_time=datetime.now(),
        )


def checkpoint_duty(node: NodeContext) -> CheckpointDuty:
    """The province's checkpoint duty through the node's ledger (sync.checkpoints), signing with the node's
    member key as it is now."""
    assert node.ledger is not None
    return CheckpointDuty(
        node.ledger,
        member=node.settings.province,
        key=lambda: node.signing_key,
        clock=node.clock,
        refresh_ms=node.settings.checkpoint_refresh_ms,
    )


def announce_job(node: NodeContext) -> None:
    """Announce ``public_url`` on the ledger if it holds another URL for this member; log trouble, never raise."""
    from node.directory import AnnounceRefusedError, announce
    from node.errors import RotationPendingError
    from node.ledger import LedgerRequestError, LedgerUnavailableError

    url = (node.settings.public_url or "").rstrip("/")
    if not url:
        return
    try:
        announce(node, url)
    except RotationPendingError:
        log.info("node announcement postponed: a key rotation is pending")
    except (AnnounceRefusedError, LedgerUnavailableError, LedgerRequestError) as exc:
        log.warning("node announcement failed: %s: %s", type(exc).__name__, exc)


def start_background(node: NodeContext, worker: AnchorWorker | None = None) -> BaseScheduler:
    """Start the jobs on a background thread pool; call ``shutdown(wait=True)`` on the result to stop."""
    scheduler = BackgroundScheduler(job_defaults=JOB_DEFAULTS, daemon=True)
    _add_jobs(scheduler, node, worker or AnchorWorker(node))
    scheduler.start()
    log.info("anchoring every %d ms in the background", node.settings.anchor_interval_ms)
    return scheduler


def run_blocking(node: NodeContext, worker: AnchorWorker | None = None) -> None:
    """Run the jobs in the foreground until interrupted (SIGINT/SIGTERM end the process after the pass)."""
    scheduler = BlockingScheduler(job_defaults=JOB_DEFAULTS)
    _add_jobs(scheduler, node, worker or AnchorWorker(node))
    log.info("anchoring every %d ms", node.settings.anchor_interval_ms)
    try:
        scheduler.start()
    except (KeyboardInterrupt, SystemExit):
        scheduler.shutdown(wait=True)
