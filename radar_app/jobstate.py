"""The job state machine: which changes of a batch job's state are allowed, and the one
function that makes them.

Every change of ``BatchJob.status`` (and of the cancel flag, which asks a run to stop)
goes through transition(): a conditional UPDATE guarded by the state the caller saw (and,
where a run owns the job, its RQ id), so two processes racing for the same job cannot
both win; then, in the same transaction, a line in the job's user-visible log and a row
in its state history (job_transitions). To learn what can set a job FAILED, read TABLE.

No Flask here: the web, the worker and the reconciler all call it with their session.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from radar_app.models import (
    BatchJob,
    BatchJobLog,
    DbSession,
    JobPhase,
    JobStatus,
    JobTransition,
    rows_updated,
    utcnow,
)
from radar_app.prepared import Prepared

PENDING, PROCESSING = JobStatus.PENDING, JobStatus.PROCESSING
COMPLETED, FAILED, CANCELLED = JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED

# Actors that are not a person (a person is their email, or "admin:<email>").
WORKER, RECOVERY, SYSTEM = "worker", "recovery", "system"


def admin_actor(email: str) -> str:
    """The actor of something an admin did to another user's job from the admin pages."""
    return f"admin:{email}"


class Event(enum.StrEnum):
    CLAIM = "claim"  # a worker starts a run of a queued job
    COMPLETE = "complete"  # the run stored everything
    FAIL = "fail"  # the run stopped on an error
    REQUEST_CANCEL = "request_cancel"  # the owner asks an active job to stop (a flag)
    CANCEL_QUEUED = "cancel_queued"  # a job cancelled before any worker claimed it
    CANCELLED = "cancelled"  # the run honoured a cancel request
    RETRY = "retry"  # the owner queues a failed or cancelled job again
    RETRY_NOT_STARTED = "retry_not_started"  # the retry could not be queued: undone
    REQUEUE = "requeue"  # recovery (or an admin) queues a stranded job under a new RQ id
    MARK_FAILED = "mark_failed"  # an admin gives up on an active job
    CANCEL_LOST = "cancel_lost"  # recovery: the worker died while the job was cancelling
    WITHDRAW = "withdraw"  # create_job could not queue the job; it is deleted next


def _finished(now: datetime) -> dict[str, Any]:
    return {"completed_at": now, "cancel_requested": False}


def _claimed(now: datetime) -> dict[str, Any]:
    return {
        "attempts": BatchJob.attempts + 1,
        "started_at": sa.func.coalesce(BatchJob.started_at, now),
        "run_started_at": now,
        # A run resuming in the purchase phase begins buying at once.
        "purchase_started_at": sa.case((BatchJob.phase == JobPhase.PURCHASE, now), else_=None),
        "run_start_processed": BatchJob.processed_records,
        "heartbeat_at": now,
        "completed_at": None,
        "error_details": None,
    }


def _nothing(now: datetime) -> dict[str, Any]:
    return {}


@dataclass(frozen=True)
class Rule:
    """What an event allows: the states it leaves, the states it enters (empty: the state
    stays, only columns change), the columns it always sets, and its log level."""

    sources: frozenset[JobStatus]
    targets: frozenset[JobStatus]
    sets: Callable[[datetime], dict[str, Any]] = field(default=_nothing)
    level: str = "INFO"
    # The claim writes no log line: the run's first line ("Attempt N started") says it.
    logs: bool = True


def _rule(sources: set[JobStatus], targets: set[JobStatus], **kwargs: Any) -> Rule:
    return Rule(frozenset(sources), frozenset(targets), **kwargs)


TABLE: Mapping[Event, Rule] = {
    Event.CLAIM: _rule({PENDING}, {PROCESSING}, sets=_claimed, logs=False),
    Event.COMPLETE: _rule({PROCESSING}, {COMPLETED}, sets=_finished),
    Event.FAIL: _rule({PROCESSING}, {FAILED}, sets=_finished, level="ERROR"),
    Event.REQUEST_CANCEL: _rule(
        {PENDING, PROCESSING}, set(), sets=lambda now: {"cancel_requested": True}, level="WARNING"
    ),
    Event.CANCEL_QUEUED: _rule({PENDING}, {CANCELLED}, sets=_finished, level="WARNING"),
    Event.CANCELLED: _rule({PROCESSING}, {CANCELLED}, sets=_finished, level="WARNING"),
    Event.RETRY: _rule(
        {FAILED, CANCELLED},
        {PENDING},
        sets=lambda now: {"cancel_requested": False, "completed_at": None},
    ),
    Event.RETRY_NOT_STARTED: _rule({PENDING}, {FAILED, CANCELLED}, level="WARNING"),
    Event.REQUEUE: _rule({PENDING, PROCESSING}, {PENDING}, level="WARNING"),
    Event.MARK_FAILED: _rule({PENDING, PROCESSING}, {FAILED}, sets=_finished, level="ERROR"),
    Event.CANCEL_LOST: _rule({PROCESSING}, {CANCELLED}, sets=_finished, level="WARNING"),
    Event.WITHDRAW: _rule({PENDING}, {CANCELLED}, level="WARNING"),
}


def allowed(event: Event, status: str) -> bool:
    return status in TABLE[event].sources


# inline(): no RETURNING of the new id, which nothing reads.
_LOG_INSERT = Prepared(
    sa.insert(BatchJobLog.__table__).inline(), keys=["batch_job_id", "level", "page", "message"]
)


def add_log(
    session: DbSession, job_id: int, level: str, message: str, page: int | None = None
) -> None:
    """Record a line in the job's user-visible log (committed with the caller's transaction).
    A prepared INSERT on the session's connection: the importer writes one per chunk, and
    the ORM's unit of work cost more than the statement."""
    _LOG_INSERT(
        session.connection(bind_arguments={"mapper": BatchJobLog}),
        {"batch_job_id": job_id, "level": level, "page": page, "message": message},
    )


def log_newest_first(job: BatchJob) -> sa.Select[tuple[BatchJobLog]]:
    """The job's user-visible log, newest line first: the query a page of it is cut from."""
    return (
        sa.select(BatchJobLog)
        .where(BatchJobLog.batch_job_id == job.id)
        .order_by(BatchJobLog.id.desc())
    )


def owned_update(changes: Mapping[str, Any] | None = None) -> Prepared:
    """The UPDATE a run beats its heart with, and writes `changes` (column name -> value or
    expression, over the row's own values and named parameters) with. Its parameters are
    batch_id, run_id and now (and those of `changes`). It changes the row only while the
    run still owns the job (PROCESSING under its RQ id): 0 rows means another run has it
    now. Prepared (built once): a run writes one per chunk and per snapshot page."""
    return Prepared(
        sa.update(BatchJob)
        .where(
            BatchJob.id == sa.bindparam("batch_id"),
            BatchJob.rq_job_id == sa.bindparam("run_id"),
            BatchJob.status == JobStatus.PROCESSING,
        )
        .values({**(changes or {}), "heartbeat_at": sa.bindparam("now")})
    )


HEARTBEAT = owned_update()


def beat(
    connection: sa.Connection,
    batch_id: int,
    run_id: str,
    now: datetime,
    update: Prepared = HEARTBEAT,
    **params: Any,
) -> bool:
    """Run a heartbeat UPDATE (owned_update's); False when the run no longer owns the job."""
    result = update(connection, {"batch_id": batch_id, "run_id": run_id, "now": now, **params})
    return result.rowcount == 1


def transition(
    session: DbSession,
    job: BatchJob,
    event: Event,
    *,
    actor: str,
    reason: str,
    expect: Mapping[str, Any] | None = None,
    values: Mapping[str, Any] | None = None,
    to: JobStatus | None = None,
    message: str | None = None,
    commit: bool = True,
) -> bool:
    """Make `event` happen to `job` if its row is still as expected; returns whether it won.

    Args:
        actor: who did it (a user's email, "admin:<email>", WORKER, RECOVERY or SYSTEM).
        reason: why, for the state history (and the log line unless `message` is given).
        expect: column values the row must still have, e.g. ``{"rq_job_id": run_id}``.
            ``status`` is the state the caller saw; it defaults to the event's only
            source state, or else to ``job.status``.
        values: columns to set besides those the event always sets.
        to: the state to enter, for an event with more than one (RETRY_NOT_STARTED).
        message: the user-visible log line, when it should say more than `reason`.
        commit: False leaves the transaction open for the caller to add to and commit.

    A refused transition (the state it starts from is not allowed) or a lost one (the row
    changed meanwhile) rolls the session back and writes nothing.
    """
    rule = TABLE[event]
    guard = dict(expect or {})
    source = guard.pop("status", None)
    if source is None:
        source = next(iter(rule.sources)) if len(rule.sources) == 1 else job.status
    if to is None:
        if len(rule.targets) > 1:
            raise ValueError(f"{event} needs `to`: one of {sorted(rule.targets)}")
        to = next(iter(rule.targets), JobStatus(source))
    elif to not in rule.targets:
        raise ValueError(f"{event} cannot enter {to}")
    if source not in rule.sources:
        session.rollback()
        return False
    now = utcnow()
    won = rows_updated(
        session,
        sa.update(BatchJob)
        .where(
            BatchJob.id == job.id,
            BatchJob.status == source,
            *(getattr(BatchJob, name) == value for name, value in guard.items()),
        )
        .values({**rule.sets(now), **(values or {}), "status": to, "updated_at": now})
        .execution_options(synchronize_session=False),
    )
    if won != 1:
        session.rollback()
        return False
    if rule.logs:
        add_log(session, job.id, rule.level, message or reason)
    session.add(
        JobTransition(
            batch_job_id=job.id,
            created_at=now,
            from_status=source,
            to_status=to,
            event=event,
            actor=actor[:320],
            reason=reason,
        )
    )
    if commit:
        session.commit()
    return True


def history(session: DbSession, job: BatchJob) -> list[JobTransition]:
    """The job's state changes, oldest first."""
    return list(
        session.scalars(
            sa.select(JobTransition)
            .where(JobTransition.batch_job_id == job.id)
            .order_by(JobTransition.id)
        )
    )
