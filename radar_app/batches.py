"""Batch job workflows: create, enqueue, cancel, retry.

Each function owns its unit of work and commits it. The database row is the source of
truth; the RQ job is only a wake-up call for a worker, so losing one loses no work.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from redis.exceptions import RedisError
from rq import Queue
from rq.job import Job

from radar_app.defaults import JOB_NAME_MAX_LENGTH
from radar_app.jobstate import SYSTEM, Event, add_log, transition
from radar_app.models import (
    BatchJob,
    DbSession,
    JobStatus,
    SavedSearch,
    SuppressionList,
    User,
)
from radar_app.propertyradar.criteria import (
    describe_criteria,
    resolve_fields,
    validate_criteria,
)
from radar_app.propertyradar.errors import CriteriaError

logger = logging.getLogger(__name__)

TASK = "radar_app.tasks.run_batch_job"


class InvalidTransition(Exception):
    """The job's state does not allow the requested action (HTTP 409)."""


class QueueUnavailable(Exception):
    """Redis could not be reached (HTTP 503)."""


# What a person is told when Redis (the queue, or the rate limit that lives there) is down.
QUEUE_DOWN = "The job queue is unavailable; please try again shortly"


@dataclass(frozen=True)
class QueueSettings:
    job_timeout: int
    result_ttl: int
    failure_ttl: int

    @classmethod
    def from_config(cls, config: Any) -> QueueSettings:
        return cls(
            job_timeout=config["RQ_JOB_TIMEOUT"],
            result_ttl=config["RQ_RESULT_TTL"],
            failure_ttl=config["RQ_FAILURE_TTL"],
        )


def enqueue_job(queue: Queue, job: BatchJob, settings: QueueSettings) -> None:
    queue.enqueue(
        TASK,
        job.id,
        job_id=job.rq_job_id,
        job_timeout=settings.job_timeout,
        result_ttl=settings.result_ttl,
        failure_ttl=settings.failure_ttl,
        description=f"batch {job.job_id}: {job.name}"[:200],
    )


def new_rq_job_id(job: BatchJob) -> str:
    # A fresh RQ id per run: the previous run's RQ job may still sit in a registry.
    return f"batch-{job.job_id}-{uuid.uuid4().hex[:8]}"


def create_job(
    session: DbSession,
    queue: Queue,
    settings: QueueSettings,
    *,
    owner: User,
    criteria: object,
    name: str | None = None,
    max_records: int | None = None,
    refresh_all: bool = False,
    fields: object = None,
    saved_search: SavedSearch | None = None,
    suppression_list_id: int | None = None,
    max_purchases: int | None = None,
    enqueue: bool = True,
) -> BatchJob:
    """Validate, record and enqueue a new batch job (enqueue=False records it without
    queueing it: a job row for a caller that queues it later, or a test). `saved_search`
    is the search it runs, if it came from one; `suppression_list_id` a list of the
    owner's it skips besides their default lists; `max_purchases` the most records it
    may buy.

    Raises:
        CriteriaError: the criteria are invalid (nothing is stored).
        QueueUnavailable: Redis is down; the job row is removed again so nothing is
            left half-created.
    """
    normalized = validate_criteria(criteria)
    chosen_fields = resolve_fields(fields)
    if suppression_list_id is not None:
        chosen = session.get(SuppressionList, suppression_list_id)
        if chosen is None or chosen.created_by != owner.id:
            raise CriteriaError({"suppression_list": "No such suppression list of yours"})
    job = BatchJob(
        job_id=uuid.uuid4().hex,
        name=(name or "").strip()[:JOB_NAME_MAX_LENGTH]
        or describe_criteria(normalized)[:JOB_NAME_MAX_LENGTH],
        criteria=normalized,
        max_records=max_records,
        refresh_all=refresh_all,
        fields=chosen_fields,
        created_by=owner.id,
        status=JobStatus.PENDING,
        saved_search_id=saved_search.id if saved_search else None,
        suppression_list_id=suppression_list_id,
        max_purchases=max_purchases,
    )
    job.rq_job_id = new_rq_job_id(job)
    session.add(job)
    session.flush()
    add_log(session, job.id, "INFO", "Job created")
    # Commit before enqueueing, so a fast worker always finds the row.
    session.commit()
    if not enqueue:
        return job
    try:
        enqueue_job(queue, job, settings)
    except RedisError as exc:
        logger.error("job=%s enqueue failed: %s", job.job_id, exc)
        if not _withdraw_unclaimed(session, job):
            # A timed-out enqueue can still have reached Redis, and a worker has already
            # claimed the job: it exists and runs, so the caller gets it, not a 503.
            logger.warning("job=%s enqueue timed out but a worker claimed it", job.job_id)
            session.refresh(job)
            return job
        raise QueueUnavailable(QUEUE_DOWN) from exc
    return job


def _withdraw_unclaimed(session: DbSession, job: BatchJob) -> bool:
    """Delete a job that failed to enqueue, unless a worker claimed it meanwhile.

    An enqueue whose reply timed out may still be carried out once Redis wakes up; the
    RQ job it leaves behind then finds no row and does nothing (claim needs a PENDING row
    with its RQ id). Taking the row out of PENDING first, atomically, means a worker
    claiming it at this moment gets either the whole job or nothing.
    """
    withdrawn = transition(
        session,
        job,
        Event.WITHDRAW,
        actor=SYSTEM,
        reason="Not created: the job queue is unavailable",
        commit=False,
    )
    if not withdrawn:
        return False
    session.delete(job)
    session.commit()
    return True


def _actor(by: User | None) -> str:
    # A caller that does not say who acted (a script) is recorded as the web app.
    return by.email if by is not None else "web"


def request_cancel(
    session: DbSession,
    queue: Queue,
    job: BatchJob,
    *,
    by: User | None = None,
    reason: str | None = None,
) -> BatchJob:
    """Cancel a queued job at once, or ask a running one to stop after its page in flight.

    Args:
        by: who asks (recorded in the job's state history).
        reason: why, for the state history (a bulk cancel says so); what happened is
            added to it.
    """
    if not job.is_active:
        raise InvalidTransition(f"A {job.status} job cannot be cancelled")
    rq_job_id = job.rq_job_id
    # Atomic: a worker may be claiming this PENDING job right now.
    if transition(
        session,
        job,
        Event.CANCEL_QUEUED,
        actor=_actor(by),
        reason=f"{reason}; cancelled before it started"
        if reason
        else "Cancelled before it started",
    ):
        _drop_queued_rq_job(queue, job.job_id, rq_job_id)
    else:
        # A worker claimed it first (or it finished meanwhile: then nothing is asked).
        transition(
            session,
            job,
            Event.REQUEST_CANCEL,
            actor=_actor(by),
            reason=f"{reason or 'Cancel requested'}; stopping after the page in flight",
            expect={"status": JobStatus.PROCESSING},
        )
    session.refresh(job)
    return job


def _drop_queued_rq_job(queue: Queue, job_id: str, rq_job_id: str | None) -> None:
    # Best effort: the worker would skip it anyway, since the row is no longer PENDING.
    if not rq_job_id:
        return
    try:
        Job.fetch(rq_job_id, connection=queue.connection).cancel()
    except Exception as exc:  # noqa: BLE001 - the RQ job may be gone or already started
        logger.info("job=%s RQ job not cancelled: %s", job_id, exc)


def retry_job(
    session: DbSession,
    queue: Queue,
    settings: QueueSettings,
    job: BatchJob,
    *,
    by: User | None = None,
    reason: str = "Retry requested",
) -> BatchJob:
    """Re-queue a FAILED or CANCELLED job; it resumes from its checkpoint.

    Args:
        by: who asks (recorded in the job's state history).
        reason: why, for the state history; where the job resumes is added to it.
    """
    if not job.can_retry:
        raise InvalidTransition(f"A {job.status} job cannot be retried")
    previous_status, previous_rq_job_id, previous_completed_at = (
        job.status,
        job.rq_job_id,
        job.completed_at,
    )
    rq_job_id = new_rq_job_id(job)
    if not transition(
        session,
        job,
        Event.RETRY,
        actor=_actor(by),
        reason=f"{reason}; resuming at record {job.next_start + 1}",
        expect={"status": previous_status},
        values={"rq_job_id": rq_job_id},
    ):
        raise InvalidTransition("The job changed state; reload and try again")
    session.refresh(job)
    try:
        enqueue_job(queue, job, settings)
    except RedisError as exc:
        logger.error("job=%s retry enqueue failed: %s", job.job_id, exc)
        # Only if no worker claimed this run meanwhile (a timed-out enqueue can still land):
        # a job that is running must not be put back to FAILED under its worker.
        reverted = transition(
            session,
            job,
            Event.RETRY_NOT_STARTED,
            actor=SYSTEM,
            reason="Retry not started: the job queue is unavailable",
            expect={"rq_job_id": rq_job_id},
            values={"rq_job_id": previous_rq_job_id, "completed_at": previous_completed_at},
            to=JobStatus(previous_status),
        )
        session.refresh(job)
        if not reverted:
            logger.warning("job=%s retry enqueue timed out but a worker claimed it", job.job_id)
            return job
        raise QueueUnavailable(QUEUE_DOWN) from exc
    return job


def visible_jobs(user: User) -> sa.Select[tuple[BatchJob]]:
    """Jobs a user may see: their own, or every job for an admin. Newest first."""
    query = sa.select(BatchJob).order_by(BatchJob.created_at.desc(), BatchJob.id.desc())
    if not user.is_admin:
        query = query.where(BatchJob.created_by == user.id)
    return query


def find_job(session: DbSession, user: User, job_id: str) -> BatchJob | None:
    """The job with this public id if the user may see it; None otherwise (shown as 404,
    so another user's job ids cannot be probed)."""
    if "\x00" in job_id:
        # No id has one (they are uuid4 hex), and PostgreSQL refuses to compare text
        # with a NUL: the query itself would fail and the user see a 500.
        return None
    job = session.scalar(sa.select(BatchJob).where(BatchJob.job_id == job_id))
    if job is None or (job.created_by != user.id and not user.is_admin):
        return None
    return job
