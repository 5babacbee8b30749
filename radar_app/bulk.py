"""Bulk retry and cancel (issue 13): the jobs a user ticked, or every job matching a Jobs
search, each through the same service as a single action (batches.retry_job,
batches.request_cancel: a state-machine transition with the user as actor and "Bulk retry
by <email>" as reason) and each on its own: one that cannot be changed is reported and the
others go on. The answer is a summary, job by job, of what happened.

At most BULK_LIMIT jobs in one action: the newest of those matching, with the number left
over, so a second action takes the next ones. Ownership is that of a single action: a user
acts on their own jobs, an admin on anyone's; an id the user may not see is reported as
"not yours", whether it is someone else's or no one's.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from rq import Queue

from radar_app import batches, jobsearch
from radar_app.fielderrors import FieldErrors
from radar_app.jobsearch import JobQuery
from radar_app.models import BatchJob, DbSession, JobStatus, User

logger = logging.getLogger(__name__)

# The most jobs one bulk action changes.
BULK_LIMIT = 1_000


class InvalidBulkAction(FieldErrors):
    """What is wrong with a bulk action's request, by field."""


class Action(enum.StrEnum):
    RETRY = "retry"
    CANCEL = "cancel"

    @property
    def statuses(self) -> tuple[JobStatus, ...]:
        """The statuses of the jobs it can change: what "every matching job" means."""
        if self is Action.RETRY:
            return (JobStatus.FAILED, JobStatus.CANCELLED)
        return (JobStatus.PENDING, JobStatus.PROCESSING)


class Result(enum.StrEnum):
    RETRIED = "retried"
    CANCELLED = "cancelled"
    # A running job stops after its page in flight.
    CANCEL_REQUESTED = "cancel_requested"
    SKIPPED = "skipped"


# Why a job was skipped (Outcome.reason): short, for people and API clients alike.
NOT_YOURS = "not yours"
ALREADY_FINISHED = "already finished"
NOT_RETRYABLE = "not retryable"
ALREADY_CANCELLING = "cancel already requested"
NOT_MATCHING = "does not match the search"
CHANGED = "changed state meanwhile"
NOT_QUEUED = "could not queue"
FAILED_UNEXPECTEDLY = "could not be changed (the error is logged)"
SKIP_REASONS = (
    NOT_YOURS,
    NOT_MATCHING,
    ALREADY_FINISHED,
    NOT_RETRYABLE,
    ALREADY_CANCELLING,
    CHANGED,
    NOT_QUEUED,
    FAILED_UNEXPECTEDLY,
)


@dataclass(frozen=True)
class Outcome:
    """What became of one job. `name` and `status` are None for an id the user may not
    see: nothing about it is told."""

    job_id: str
    result: Result
    reason: str | None = None
    name: str | None = None
    status: str | None = None


@dataclass(frozen=True)
class Summary:
    action: Action
    outcomes: Sequence[Outcome]
    # The most jobs one action changes (BULK_LIMIT when it ran).
    limit: int
    # Jobs the search matched that the action could change (a search's action); None when
    # the jobs were named by id.
    matching: int | None = None

    def count(self, *results: Result) -> int:
        return sum(outcome.result in results for outcome in self.outcomes)

    @property
    def skipped(self) -> int:
        return self.count(Result.SKIPPED)

    @property
    def changed(self) -> int:
        return len(self.outcomes) - self.skipped

    @property
    def left_over(self) -> int:
        """Matching jobs beyond the limit, not acted on."""
        return max(0, (self.matching or 0) - len(self.outcomes))


def parse_action(value: object) -> Action:
    try:
        return Action(str(value).strip().lower())
    except ValueError:
        raise InvalidBulkAction({"action": "Action: retry or cancel"}) from None


def by_ids(
    session: DbSession,
    queue: Queue,
    settings: batches.QueueSettings,
    user: User,
    action: Action,
    ids: Iterable[str],
    query: JobQuery | None = None,
) -> Summary:
    """Act on the jobs with these public ids, in the order given (repeats once); with a
    `query`, only on those it matches (the others are skipped)."""
    wanted = list(dict.fromkeys(job_id.strip() for job_id in ids if job_id.strip()))
    if not wanted:
        raise InvalidBulkAction({"ids": "Jobs: tick at least one job"})
    if len(wanted) > BULK_LIMIT:
        raise InvalidBulkAction({"ids": f"Jobs: at most {BULK_LIMIT:,} in one action"})
    # No id has a NUL (they are uuid4 hex), and PostgreSQL refuses to compare text with one.
    searchable = [job_id for job_id in wanted if "\x00" not in job_id]
    visible = {
        job.job_id: job
        for job in session.scalars(
            batches.visible_jobs(user).where(BatchJob.job_id.in_(searchable))
        )
    }
    passing = set(visible)
    if query is not None and query.narrows:
        passing = set(
            session.scalars(
                jobsearch.matching(user, query)
                .where(BatchJob.job_id.in_(searchable))
                .with_only_columns(BatchJob.job_id)
            )
        )
    # passing is a part of visible: the search starts from the jobs the user may see.
    jobs = [visible[i] if i in passing else i for i in wanted]
    return _run(session, queue, settings, user, action, jobs, unmatched=set(visible) - passing)


def by_query(
    session: DbSession,
    queue: Queue,
    settings: batches.QueueSettings,
    user: User,
    action: Action,
    query: JobQuery,
) -> Summary:
    """Act on the newest BULK_LIMIT jobs the search matches that the action can change
    (retry: failed and cancelled ones; cancel: queued and running ones)."""
    select = jobsearch.matching(user, query).where(BatchJob.status.in_(action.statuses))
    matching = session.scalar(select.with_only_columns(sa.func.count()).order_by(None)) or 0
    jobs: list[BatchJob | str] = list(session.scalars(select.limit(BULK_LIMIT)))
    return _run(session, queue, settings, user, action, jobs, matching=matching)


def _run(
    session: DbSession,
    queue: Queue,
    settings: batches.QueueSettings,
    user: User,
    action: Action,
    jobs: Sequence[BatchJob | str],
    *,
    matching: int | None = None,
    unmatched: set[str] | None = None,
) -> Summary:
    """Act on each job in turn; a str is an id the user may not see, or (in `unmatched`)
    one of theirs the search leaves out."""
    reason = f"Bulk {action} by {user.email}"
    queue_down = False
    outcomes: list[Outcome] = []
    for job in jobs:
        if isinstance(job, str):
            why = NOT_MATCHING if job in (unmatched or ()) else NOT_YOURS
            outcomes.append(Outcome(job, Result.SKIPPED, why))
            continue
        if action is Action.RETRY and queue_down and job.can_retry:
            # One failed enqueue is enough to know: the others would wait on Redis too.
            outcome = Outcome(job.job_id, Result.SKIPPED, NOT_QUEUED)
        else:
            outcome = _act(session, queue, settings, user, action, job, reason)
            queue_down = queue_down or outcome.reason == NOT_QUEUED
        outcomes.append(_described(outcome, job))
    return Summary(action, outcomes, BULK_LIMIT, matching)


def _described(outcome: Outcome, job: BatchJob) -> Outcome:
    return Outcome(outcome.job_id, outcome.result, outcome.reason, job.name, job.status)


def _act(
    session: DbSession,
    queue: Queue,
    settings: batches.QueueSettings,
    user: User,
    action: Action,
    job: BatchJob,
    reason: str,
) -> Outcome:
    """One job's action, never raising: what happened to it."""
    job_id = job.job_id
    try:
        if action is Action.RETRY:
            if not job.can_retry:
                return Outcome(job_id, Result.SKIPPED, NOT_RETRYABLE)
            batches.retry_job(session, queue, settings, job, by=user, reason=reason)
            return Outcome(job_id, Result.RETRIED)
        if not job.is_active:
            return Outcome(job_id, Result.SKIPPED, ALREADY_FINISHED)
        if job.cancel_requested:
            return Outcome(job_id, Result.SKIPPED, ALREADY_CANCELLING)
        batches.request_cancel(session, queue, job, by=user, reason=reason)
        if job.status == JobStatus.CANCELLED:
            return Outcome(job_id, Result.CANCELLED)
        if job.cancel_requested:
            return Outcome(job_id, Result.CANCEL_REQUESTED)
        return Outcome(job_id, Result.SKIPPED, ALREADY_FINISHED)  # it finished meanwhile
    except batches.InvalidTransition:
        session.rollback()
        return Outcome(job_id, Result.SKIPPED, CHANGED)
    except batches.QueueUnavailable:
        return Outcome(job_id, Result.SKIPPED, NOT_QUEUED)
    except Exception:  # noqa: BLE001 - one job's failure must not stop the others
        logger.exception("job=%s bulk %s failed", job_id, action)
        session.rollback()
        return Outcome(job_id, Result.SKIPPED, FAILED_UNEXPECTEDLY)
