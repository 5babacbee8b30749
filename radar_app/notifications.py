"""What the notification poll asks: has a user a job still running, and which of their
jobs finished since a moment (the toasts "Completed" and "Failed").

A cancelled job gets no toast: the user stopped it themselves. No Flask here: the
notifications view (jobs/routes.py) keeps the moment in the session and renders.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa

from radar_app.models import BatchJob, DbSession, JobStatus

ACTIVE = [status for status in JobStatus if status.is_active]
ANNOUNCED = [JobStatus.COMPLETED, JobStatus.FAILED]


def _active(user_id: int) -> sa.Select[tuple[int]]:
    return sa.select(BatchJob.id).where(BatchJob.created_by == user_id, BatchJob.status.in_(ACTIVE))


def _finished_since(user_id: int, since: datetime) -> sa.Select[tuple[BatchJob]]:
    return sa.select(BatchJob).where(
        BatchJob.created_by == user_id,
        BatchJob.status.in_(ANNOUNCED),
        BatchJob.completed_at > since,
    )


def has_active_job(session: DbSession, user_id: int) -> bool:
    """Whether a job of the user is pending or processing: then the page keeps polling."""
    return bool(session.scalar(sa.select(_active(user_id).exists())))


def finished_since(
    session: DbSession, user_id: int, since: datetime, limit: int
) -> Sequence[BatchJob]:
    """The user's jobs that completed or failed after `since`, oldest first, at most `limit`."""
    query = _finished_since(user_id, since).order_by(BatchJob.completed_at, BatchJob.id)
    return session.scalars(query.limit(limit)).all()


def worth_polling(session: DbSession, user_id: int, since: datetime) -> bool:
    """Whether a job of the user is pending or processing, or finished after `since`.

    Every page asks, so it is one statement: two EXISTS, each a seek in the owner, status
    and completed_at index (an OR inside one EXISTS reads all the user's entries).
    """
    either = sa.or_(_active(user_id).exists(), _finished_since(user_id, since).exists())
    return bool(session.scalar(sa.select(either)))
