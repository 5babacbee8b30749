"""Reconciliation: find jobs nobody is working on and put them back in the queue.

Three ways a job gets stranded:
- its worker died (SIGKILL, OOM, machine lost): the row stays PROCESSING and its
  heartbeat stops. RQ only files the job as abandoned after its own, much longer, cleanup.
- its queue entry vanished (Redis restarted or flushed): the row stays PENDING forever.
- its work horse started but never claimed the row (it hung before its first database
  statement): the row stays PENDING behind a "started" RQ job, which RQ would only give
  up on after RQ_JOB_TIMEOUT (hours), keeping its worker busy all that time.

Every worker.py runs reconcile_forever() in a process of its own; `flask jobs recover`
runs reconcile() on demand. Each requeue is a conditional UPDATE, so several reconcilers
can race safely: exactly one wins, and a requeued job resumes from its checkpoint.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from redis.exceptions import RedisError
from rq import Queue
from rq.command import send_stop_job_command
from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq.job import Job
from rq.job import JobStatus as RQJobStatus
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from radar_app import alerts
from radar_app.batches import QueueSettings, enqueue_job, new_rq_job_id
from radar_app.jobstate import RECOVERY, Event, transition
from radar_app.models import BatchJob, DbSession, JobStatus, utcnow

if TYPE_CHECKING:
    from multiprocessing.synchronize import Event as ProcessEvent

logger = logging.getLogger(__name__)

# RQ states in which a queue entry will never run our job.
_DEAD_RQ_STATES = {RQJobStatus.FAILED, RQJobStatus.STOPPED, RQJobStatus.CANCELED}


@dataclass
class RecoveryReport:
    requeued_stale: list[str] = field(default_factory=list)
    cancelled_stale: list[str] = field(default_factory=list)
    reenqueued_lost: list[str] = field(default_factory=list)
    requeued_unclaimed: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(
            self.requeued_stale
            or self.cancelled_stale
            or self.reenqueued_lost
            or self.requeued_unclaimed
        )


def stale_jobs(
    session: DbSession, stale_after: float, now: datetime | None = None
) -> list[BatchJob]:
    """PROCESSING jobs whose heartbeat is older than `stale_after` seconds."""
    cutoff = (now or utcnow()) - timedelta(seconds=stale_after)
    return list(
        session.scalars(
            sa.select(BatchJob).where(
                BatchJob.status == JobStatus.PROCESSING,
                sa.or_(BatchJob.heartbeat_at.is_(None), BatchJob.heartbeat_at < cutoff),
            )
        )
    )


def requeue(
    session: DbSession,
    queue: Queue,
    settings: QueueSettings,
    job: BatchJob,
    reason: str,
    *,
    actor: str = RECOVERY,
) -> bool:
    """Put a PROCESSING or PENDING job back in the queue under a new RQ id. Returns False
    when the job changed meanwhile (another reconciler, or the worker came back)."""
    old_rq_job_id = job.rq_job_id
    public_id = job.job_id
    rq_job_id = new_rq_job_id(job)
    won = transition(
        session,
        job,
        Event.REQUEUE,
        actor=actor,
        reason=reason,
        message=f"{reason}; requeued to resume at record {job.next_start + 1}",
        expect={"status": job.status, "rq_job_id": old_rq_job_id},
        values={"rq_job_id": rq_job_id},
    )
    if not won:
        return False
    session.refresh(job)
    enqueue_job(queue, job, settings)
    logger.warning("job=%s requeued (%s) as %s", public_id, reason, rq_job_id)
    if old_rq_job_id:
        stop_old_run(queue, old_rq_job_id)
    return True


def stop_old_run(queue: Queue, rq_job_id: str) -> None:
    """Ask the worker still running a replaced RQ job to kill its work horse, so that a
    hung horse frees its worker for the new run. Best effort: the worker may be dead, or
    the RQ job gone with Redis. The old run could not store anything anyway (it no longer
    owns the row), so this only stops it wasting a worker and further purchases."""
    try:
        send_stop_job_command(queue.connection, rq_job_id)
    except (InvalidJobOperation, NoSuchJobError, RedisError) as exc:
        logger.debug("old run %s not stopped: %s", rq_job_id, exc)
    else:
        logger.warning("asked the worker of the replaced run %s to stop it", rq_job_id)


def mark_failed(session: DbSession, job: BatchJob, reason: str, *, actor: str = "admin") -> bool:
    """Give up on an active job (an admin's decision); it can be retried later."""
    won = transition(
        session,
        job,
        Event.MARK_FAILED,
        actor=actor,
        reason=reason,
        message=f"Marked failed: {reason}. Retry resumes from the checkpoint.",
        expect={"status": job.status},
        values={"error_details": reason},
    )
    if won:
        session.refresh(job)
    return won


def _cancel_stale(session: DbSession, job: BatchJob) -> bool:
    return transition(
        session,
        job,
        Event.CANCEL_LOST,
        actor=RECOVERY,
        reason="Worker lost while cancelling; marked cancelled",
        expect={"rq_job_id": job.rq_job_id},
    )


def _pending_with_rq_jobs(
    session: DbSession, queue: Queue, cutoff: datetime
) -> list[tuple[BatchJob, Job | None]]:
    """PENDING jobs not touched since `cutoff`, each with its RQ job (None when gone)."""
    candidates = list(
        session.scalars(
            sa.select(BatchJob).where(
                BatchJob.status == JobStatus.PENDING, BatchJob.updated_at < cutoff
            )
        )
    )
    if not candidates:
        return []
    rq_jobs = Job.fetch_many(
        [job.rq_job_id or "" for job in candidates], connection=queue.connection
    )
    return list(zip(candidates, rq_jobs, strict=True))


def lost_pending_jobs(
    session: DbSession, queue: Queue, grace: float, now: datetime | None = None
) -> list[BatchJob]:
    """PENDING jobs (older than `grace` seconds) whose RQ job is gone or dead."""
    cutoff = (now or utcnow()) - timedelta(seconds=grace)
    return [
        job
        for job, rq_job in _pending_with_rq_jobs(session, queue, cutoff)
        if rq_job is None or rq_job.get_status(refresh=False) in _DEAD_RQ_STATES
    ]


def unclaimed_started_jobs(
    session: DbSession, queue: Queue, stale_after: float, now: datetime | None = None
) -> list[BatchJob]:
    """PENDING jobs whose RQ job started more than `stale_after` seconds ago but whose work
    horse never claimed the row. A horse claims within a second of starting; one that has
    not after `stale_after` is as silent as a stale heartbeat."""
    cutoff = (now or utcnow()) - timedelta(seconds=stale_after)
    unclaimed = []
    for job, rq_job in _pending_with_rq_jobs(session, queue, cutoff):
        if rq_job is None or rq_job.get_status(refresh=False) != RQJobStatus.STARTED:
            continue
        # Both are aware UTC datetimes (RQ's and models.utcnow()).
        started_at = rq_job.started_at
        if started_at is None or started_at < cutoff:
            unclaimed.append(job)
    return unclaimed


def reconcile(
    session: DbSession,
    queue: Queue,
    settings: QueueSettings,
    *,
    stale_after: float,
    pending_grace: float,
    now: datetime | None = None,
    alert_settings: alerts.AlertSettings | None = None,
) -> RecoveryReport:
    """One reconciliation pass over stale PROCESSING and lost PENDING jobs; a job whose
    worker died or hung raises "job.stuck" (its owner's channels, the operators)."""
    report = RecoveryReport()
    stuck: list[tuple[BatchJob, str]] = []
    for job in stale_jobs(session, stale_after, now):
        if job.cancel_requested:
            if _cancel_stale(session, job):
                report.cancelled_stale.append(job.job_id)
                what = "Worker stopped responding while the job was being cancelled: it ended"
                stuck.append((job, what))
        elif requeue(session, queue, settings, job, "Worker stopped responding"):
            report.requeued_stale.append(job.job_id)
            stuck.append((job, "Worker stopped responding; requeued to resume where it stopped"))
    for job in lost_pending_jobs(session, queue, pending_grace, now):
        if requeue(session, queue, settings, job, "Queue entry was lost (Redis restarted?)"):
            report.reenqueued_lost.append(job.job_id)
    for job in unclaimed_started_jobs(session, queue, stale_after, now):
        reason = "Its worker started the job but never began it (work horse hung?)"
        if requeue(session, queue, settings, job, reason):
            report.requeued_unclaimed.append(job.job_id)
            stuck.append((job, f"{reason}; requeued"))
    if alert_settings is not None:
        # After the jobs' own commits: an alert that cannot be queued loses no recovery.
        for job, what in stuck:
            alerts.emit(session, job.created_by, "job.stuck", alerts.stuck_event(job, what),
                        alert_settings)  # fmt: skip
    return report


def safe_reconcile(
    session: DbSession, queue: Queue, settings: QueueSettings, **kwargs: Any
) -> Exception | None:
    """reconcile() for a background loop: returns the Redis or database error that cut the
    pass short instead of raising it (the next pass tries again)."""
    try:
        report = reconcile(session, queue, settings, **kwargs)
    except (RedisError, sa.exc.SQLAlchemyError) as exc:
        session.rollback()
        return exc
    if report.changed:
        logger.warning("reconciliation: %s", report)
    return None


@dataclass(frozen=True)
class ReconcilerSettings:
    """What the reconciler process needs: plain values, so they cross a spawn."""

    database_url: str
    redis_url: str
    queue_name: str
    queue_settings: QueueSettings
    interval: float
    stale_after: float
    pending_grace: float
    alert_settings: alerts.AlertSettings | None = None

    @classmethod
    def from_config(cls, config: Any) -> ReconcilerSettings:
        return cls(
            database_url=config["SQLALCHEMY_DATABASE_URI"],
            redis_url=config["REDIS_URL"],
            queue_name=config["RQ_QUEUE"],
            queue_settings=QueueSettings.from_config(config),
            interval=config["RECOVERY_INTERVAL"],
            stale_after=config["RECOVERY_STALE_AFTER"],
            pending_grace=config["RECOVERY_PENDING_GRACE"],
            alert_settings=alerts.AlertSettings.from_config(config),
        )


def _describe(exc: BaseException) -> str:
    # The first line only: a database error's text goes on to quote the whole statement.
    return f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc) else ''}"


def reconcile_forever(settings: ReconcilerSettings, should_stop: Callable[[], bool]) -> None:
    """Run reconcile() every `settings.interval` seconds until should_stop() says so.

    Redis or the database being down costs a pass, never the loop: the first failure is
    logged as one warning line, the recovery as another, and nothing in between."""
    from radar_app.extensions import sqlite_pragmas
    from radar_app.queue import connect

    engine = sa.create_engine(settings.database_url, poolclass=NullPool)
    if engine.dialect.name == "sqlite":
        sa.event.listen(engine, "connect", sqlite_pragmas)
    queue = Queue(settings.queue_name, connection=connect(settings.redis_url))
    failing: str | None = None  # the error type of the outage in progress, if any
    next_pass = time.monotonic() + settings.interval
    while not should_stop():
        if time.monotonic() < next_pass:
            time.sleep(min(0.2, max(0.0, next_pass - time.monotonic())))
            continue
        next_pass = time.monotonic() + settings.interval
        try:
            with Session(engine) as session:
                error = safe_reconcile(
                    session,
                    queue,
                    settings.queue_settings,
                    stale_after=settings.stale_after,
                    pending_grace=settings.pending_grace,
                    alert_settings=settings.alert_settings,
                )
        except Exception as exc:  # noqa: BLE001 - one bad pass must not end recovery
            error = exc
            if failing is None:
                logger.exception("reconciliation pass failed")
        if error is not None:
            # The same outage words its errors differently from pass to pass (connection
            # reset, then refused): one warning per kind of failure, not per pass.
            if type(error).__name__ != failing:
                logger.warning(
                    "reconciliation skipped, retrying every %ss: %s",
                    settings.interval,
                    _describe(error),
                )
            failing = type(error).__name__
        elif failing is not None:
            logger.warning("reconciliation running again (was: %s)", failing)
            failing = None
    engine.dispose()
    queue.connection.close()


def run_reconciler_process(
    settings: ReconcilerSettings, parent_pid: int, ready: ProcessEvent
) -> None:
    """Entry point of the reconciler process that worker.py spawns; sets `ready` once
    its imports are done (the worker waits for that before taking jobs).

    It lives exactly as long as its worker: SIGTERM (the worker stopping) ends it after
    the pass in progress, and so does the worker vanishing (SIGKILL), noticed as a change
    of parent. Ctrl-C reaches the whole terminal's process group; the worker decides."""
    from radar_app import joblog

    joblog.configure()
    stopping = False

    def stop(_signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logger.info("reconciler ready (pid %s)", os.getpid())
    ready.set()
    reconcile_forever(settings, lambda: stopping or os.getppid() != parent_pid)
