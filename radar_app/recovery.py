"""Reconciliation: find jobs nobody is working on and put them back in the queue.

Two ways a job gets stranded:
- its worker died (SIGKILL, OOM, machine lost): the row stays PROCESSING and its
  heartbeat stops. RQ only files the job as abandoned after its own, much longer, cleanup.
- its queue entry vanished (Redis restarted or flushed): the row stays PENDING forever.

Every worker runs reconcile() every RECOVERY_INTERVAL seconds; `flask jobs recover` runs
it on demand. Each requeue is a conditional UPDATE, so several reconcilers can race
safely: exactly one wins, and a requeued job resumes from its checkpoint.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import sqlalchemy as sa
from redis.exceptions import RedisError
from rq import Queue
from rq.job import Job
from rq.job import JobStatus as RQJobStatus
from sqlalchemy.orm import Session

from radar_app.batches import QueueSettings, enqueue_job, new_rq_job_id
from radar_app.importer import add_log
from radar_app.models import BatchJob, JobStatus, utcnow

logger = logging.getLogger(__name__)

# RQ states in which a queue entry will never run our job.
_DEAD_RQ_STATES = {RQJobStatus.FAILED, RQJobStatus.STOPPED, RQJobStatus.CANCELED}


@dataclass
class RecoveryReport:
    requeued_stale: list[str] = field(default_factory=list)
    cancelled_stale: list[str] = field(default_factory=list)
    reenqueued_lost: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.requeued_stale or self.cancelled_stale or self.reenqueued_lost)


def stale_jobs(session: Session, stale_after: float, now: datetime | None = None) -> list[BatchJob]:
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
    session: Session, queue: Queue, settings: QueueSettings, job: BatchJob, reason: str
) -> bool:
    """Put a PROCESSING or PENDING job back in the queue under a new RQ id. Returns False
    when the job changed meanwhile (another reconciler, or the worker came back)."""
    old_rq_job_id, old_status = job.rq_job_id, job.status
    job_row_id, public_id = job.id, job.job_id
    rq_job_id = new_rq_job_id(job)
    won = session.execute(
        sa.update(BatchJob)
        .where(
            BatchJob.id == job_row_id,
            BatchJob.status == old_status,
            BatchJob.rq_job_id == old_rq_job_id,
        )
        .values(status=JobStatus.PENDING, rq_job_id=rq_job_id, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    ).rowcount
    if not won:
        session.rollback()
        return False
    add_log(session, job, "WARNING", f"{reason}; requeued to resume at record {job.next_start + 1}")
    session.commit()
    session.refresh(job)
    enqueue_job(queue, job, settings)
    logger.warning("job=%s requeued (%s) as %s", public_id, reason, rq_job_id)
    return True


def mark_failed(session: Session, job: BatchJob, reason: str) -> bool:
    """Give up on an active job (an admin's decision); it can be retried later."""
    won = session.execute(
        sa.update(BatchJob)
        .where(BatchJob.id == job.id, BatchJob.status == job.status)
        .where(BatchJob.status.in_([JobStatus.PENDING, JobStatus.PROCESSING]))
        .values(
            status=JobStatus.FAILED,
            error_details=reason,
            completed_at=utcnow(),
            cancel_requested=False,
            updated_at=utcnow(),
        )
        .execution_options(synchronize_session=False)
    ).rowcount
    if not won:
        session.rollback()
        return False
    add_log(session, job, "ERROR", f"Marked failed: {reason}. Retry resumes from the checkpoint.")
    session.commit()
    session.refresh(job)
    return True


def _cancel_stale(session: Session, job: BatchJob) -> bool:
    now = utcnow()
    won = session.execute(
        sa.update(BatchJob)
        .where(BatchJob.id == job.id, BatchJob.status == JobStatus.PROCESSING)
        .where(BatchJob.rq_job_id == job.rq_job_id)
        .values(
            status=JobStatus.CANCELLED, completed_at=now, cancel_requested=False, updated_at=now
        )
        .execution_options(synchronize_session=False)
    ).rowcount
    if not won:
        session.rollback()
        return False
    add_log(session, job, "WARNING", "Worker lost while cancelling; marked cancelled")
    session.commit()
    return True


def lost_pending_jobs(
    session: Session, queue: Queue, grace: float, now: datetime | None = None
) -> list[BatchJob]:
    """PENDING jobs (older than `grace` seconds) whose RQ job is gone or dead."""
    cutoff = (now or utcnow()) - timedelta(seconds=grace)
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
    lost = []
    for job, rq_job in zip(candidates, rq_jobs, strict=True):
        if rq_job is None or rq_job.get_status(refresh=False) in _DEAD_RQ_STATES:
            lost.append(job)
    return lost


def reconcile(
    session: Session,
    queue: Queue,
    settings: QueueSettings,
    *,
    stale_after: float,
    pending_grace: float,
    now: datetime | None = None,
) -> RecoveryReport:
    """One reconciliation pass over stale PROCESSING and lost PENDING jobs."""
    report = RecoveryReport()
    for job in stale_jobs(session, stale_after, now):
        if job.cancel_requested:
            if _cancel_stale(session, job):
                report.cancelled_stale.append(job.job_id)
        elif requeue(session, queue, settings, job, "Worker stopped responding"):
            report.requeued_stale.append(job.job_id)
    for job in lost_pending_jobs(session, queue, pending_grace, now):
        if requeue(session, queue, settings, job, "Queue entry was lost (Redis restarted?)"):
            report.reenqueued_lost.append(job.job_id)
    return report


def safe_reconcile(session: Session, queue: Queue, settings: QueueSettings, **kwargs) -> None:
    """reconcile() for a background loop: logs failures instead of raising them."""
    try:
        report = reconcile(session, queue, settings, **kwargs)
    except (RedisError, sa.exc.SQLAlchemyError) as exc:
        session.rollback()
        logger.warning("reconciliation skipped: %s", exc)
        return
    if report.changed:
        logger.warning("reconciliation: %s", report)
