"""A job's state history told for people: the timeline on its page and in the API.

Its rows are the job's job_transitions (jobstate.transition writes one with every change
of state), newest first like the job's log. The job's creation is no transition (nothing
changes state), so the timeline's first entry is read from the job row: who created it,
a person or, when a scheduled_runs row points at the job, a schedule.

The words for an event and for an actor are here, once, for every page that shows them.

No Flask here: the pages and the API call it with their session.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from radar_app.jobstate import RECOVERY, SYSTEM, WORKER, Event
from radar_app.models import BatchJob, DbSession, JobStatus, JobTransition, ScheduledRun

# The creation's event, which jobstate has no Event for (see the module docstring).
CREATE = "create"
# The creation's actor when a schedule made the job.
SCHEDULE = "schedule"

EVENT_WORDS: Mapping[str, str] = {
    CREATE: "Created and queued",
    Event.CLAIM: "A worker started a run",
    Event.COMPLETE: "Completed: every record stored",
    Event.FAIL: "Failed",
    Event.REQUEST_CANCEL: "Asked to stop after the page in flight",
    Event.CANCEL_QUEUED: "Cancelled before a worker took it",
    Event.CANCELLED: "Stopped, as asked",
    Event.RETRY: "Retried: queued again to resume from its checkpoint",
    Event.RETRY_NOT_STARTED: "Retry undone: the job queue was unavailable",
    Event.REQUEUE: "Requeued to resume under a new run",
    Event.MARK_FAILED: "Marked failed",
    Event.CANCEL_LOST: "Marked cancelled: its worker was lost while stopping",
    Event.WITHDRAW: "Withdrawn: it could not be queued",
}

# Actors that are not a person, in words. "web" is batches' actor for a change made
# through the services by a caller that named nobody (a script); "admin" recovery's
# default for an admin's mark-failed.
_ACTOR_WORDS: Mapping[str, str] = {
    WORKER: "worker",
    RECOVERY: "recovery",
    SCHEDULE: "a schedule",
    SYSTEM: "the app",
    "web": "the app",
    "admin": "an admin",
}
_ADMIN_PREFIX = "admin:"


def who(actor: str) -> str:
    """An actor as recorded ("admin:ann@example.com", "worker") in words: the email of a
    person (marked when an admin acted on a job not theirs), or what acted."""
    if actor.startswith(_ADMIN_PREFIX):
        return f"{actor.removeprefix(_ADMIN_PREFIX)} (admin)"
    return _ACTOR_WORDS.get(actor, actor)


def actor_kind(actor: str) -> str:
    """person, admin, or the non-person actor itself (worker, recovery, schedule, ...)."""
    if actor.startswith(_ADMIN_PREFIX) or actor == "admin":
        return "admin"
    return actor if actor in _ACTOR_WORDS else "person"


@dataclass(frozen=True)
class Entry:
    """One entry of the timeline: a transition, or the job's creation (from_status None)."""

    at: datetime
    from_status: str | None
    to_status: str
    event: str
    actor: str
    reason: str

    @property
    def what(self) -> str:
        return EVENT_WORDS.get(self.event, self.event)

    @property
    def who(self) -> str:
        return who(self.actor)

    @property
    def actor_kind(self) -> str:
        return actor_kind(self.actor)

    @property
    def changes_status(self) -> bool:
        return self.from_status != self.to_status


@dataclass(frozen=True)
class TimelinePage:
    """One page of a job's timeline, newest first (the shape of every paged list)."""

    items: list[Entry]
    page: int
    per_page: int
    total: int

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.per_page))


def _from_transition(row: JobTransition) -> Entry:
    return Entry(row.created_at, row.from_status, row.to_status, row.event, row.actor, row.reason)


def creation(session: DbSession, job: BatchJob) -> Entry:
    """The job's creation: by its owner, or by the schedule of the saved search it ran."""
    actor, reason = job.owner.email, ""
    if job.saved_search_id is not None:
        scheduled = session.scalar(
            sa.select(sa.exists().where(ScheduledRun.batch_job_id == job.id))
        )
        name = job.saved_search.name if job.saved_search else "a saved search"
        if scheduled:
            actor, reason = SCHEDULE, f"Scheduled run of the saved search “{name}”"
        else:
            reason = f"Ran the saved search “{name}”"
    return Entry(job.created_at, None, JobStatus.PENDING, CREATE, actor, reason)


def timeline_page(session: DbSession, job: BatchJob, page: int, per_page: int) -> TimelinePage:
    """Page `page` of the job's timeline, newest first: its transitions, then its creation."""
    where = JobTransition.batch_job_id == job.id
    changes = session.scalar(sa.select(sa.func.count()).where(where)) or 0
    offset = (page - 1) * per_page
    rows = session.scalars(
        sa.select(JobTransition)
        .where(where)
        .order_by(JobTransition.id.desc())
        .offset(offset)
        .limit(per_page)
    )
    items = [_from_transition(row) for row in rows]
    # The creation is the oldest entry: on the page that reaches past the last change.
    if offset <= changes < offset + per_page:
        items.append(creation(session, job))
    return TimelinePage(items, page, per_page, changes + 1)
