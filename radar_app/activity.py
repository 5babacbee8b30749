"""What the charts show, read from the database: a job's purchases over time, and the
jobs and purchases of the whole system (or of one user) per hour.

Queries only: no Flask, a session in, series out (radar_app.charts draws them).

Sources, and why each is exact:
- Records bought and money spent come from the purchase ledger (models.LedgerEntry): a
  "billed" row per Purchase=1 request, with the records and cost PropertyRadar said it
  billed, written in the same transaction that stores the chunk (ledger.record_billed),
  so it holds exactly what was bought and kept, at the moment it was. The job's log rows
  carry their counts only inside a sentence, and its counters (processed_records,
  reused_count) only the running total, with no time. Reused records cost nothing and
  make no ledger row: they are not in these series (a chart's note says how many).
  "Possibly billed" rows (a lost response) have no figures and are left out, as the
  budget leaves them out.
- Jobs created come from batch_jobs.created_at; completions and failures from
  job_transitions, the row every status change writes (jobstate.transition), so a job
  that failed, was retried and failed again counts two failures, each in its hour.

Every system query is bounded by a time range on created_at, which batch_jobs and (for
one user) the ledger index; see the index requests in the report for job_transitions and
the whole-system ledger.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler

from radar_app.charts import Point, round_step
from radar_app.models import (
    BatchJob,
    DbSession,
    JobStatus,
    JobTransition,
    LedgerEntry,
)

# Most points a job's chart gets: its time is cut into at most this many round intervals.
JOB_POINTS = 40


# ---------------------------------------------------------------------------- one job


@dataclass(frozen=True)
class JobActivity:
    """A job's purchases: records bought per second in each interval (a point at the
    interval's end) and the money spent so far at each point."""

    rate: list[Point]
    cost: list[Point]
    bought: int
    spent: float


def job_activity(session: DbSession, job: BatchJob, now: datetime) -> JobActivity:
    """The job's billed purchases, cut into at most JOB_POINTS round intervals from the
    job's first start to its end (now, while it is active)."""
    rows = session.execute(
        sa.select(LedgerEntry.created_at, LedgerEntry.result_count, LedgerEntry.total_cost)
        .where(LedgerEntry.batch_job_id == job.id, LedgerEntry.outcome == LedgerEntry.BILLED)
        .order_by(LedgerEntry.id)
    ).all()
    if not rows:
        return JobActivity([], [], 0, 0.0)
    first, last = min(row[0] for row in rows), max(row[0] for row in rows)
    start = min(job.started_at or first, first)
    end = now if job.is_active else (job.completed_at or last)
    end = max(end, last)
    if end <= start:
        end = start + timedelta(seconds=1)
    step = round_step(end - start, JOB_POINTS)
    count = _ceil_div(end - start, step)
    records = [0] * count
    money = [0.0] * count
    for at, result_count, total_cost in rows:
        i = min(int((at - start) / step), count - 1)
        records[i] += result_count or 0
        money[i] += total_cost or 0.0
    rate, cost, spent = [], [Point(start, 0.0)], 0.0
    for i in range(count):
        interval_end = min(start + (i + 1) * step, end)
        seconds = (interval_end - (start + i * step)).total_seconds()
        rate.append(Point(interval_end, records[i] / seconds))
        spent += money[i]
        cost.append(Point(interval_end, round(spent, 6)))
    return JobActivity(rate, cost, sum(records), round(spent, 6))


# ----------------------------------------------------------------------------- system


@dataclass(frozen=True)
class Window:
    """A stretch of time up to now, in buckets of `step` aligned to round UTC times."""

    name: str
    span: timedelta
    step: timedelta


DAY = Window("last 24 hours", timedelta(hours=24), timedelta(hours=1))
WEEK = Window("last 7 days", timedelta(days=7), timedelta(hours=6))


@dataclass(frozen=True)
class SystemActivity:
    """Per bucket (from each of `starts`, `step` long): jobs created, completed and
    failed, records bought and money spent."""

    window: Window
    starts: list[datetime]
    created: list[int]
    completed: list[int]
    failed: list[int]
    bought: list[int]
    spent: list[float]

    @property
    def step(self) -> timedelta:
        return self.window.step


def system_activity(
    session: DbSession, window: Window, now: datetime, owner_id: int | None
) -> SystemActivity:
    """Jobs and purchases per bucket over `window` up to now: of everyone (owner_id None,
    an admin's view) or of one user's jobs. The last bucket is the one now is in."""
    step_seconds = int(window.step.total_seconds())
    end_epoch = (int(now.timestamp()) // step_seconds + 1) * step_seconds
    start_epoch = end_epoch - int(window.span.total_seconds())
    end = datetime.fromtimestamp(end_epoch, now.tzinfo)
    start = datetime.fromtimestamp(start_epoch, now.tzinfo)
    count = _ceil_div(end - start, window.step)

    def bucket(column: Any) -> _Bucket:
        return _Bucket(column, start_epoch, step_seconds)

    created = sa.select(bucket(BatchJob.created_at).label("b")).where(
        BatchJob.created_at >= start, BatchJob.created_at < end
    )
    finished = (
        sa.select(bucket(JobTransition.created_at).label("b"), JobTransition.to_status)
        .where(
            JobTransition.created_at >= start,
            JobTransition.created_at < end,
            JobTransition.to_status.in_([JobStatus.COMPLETED, JobStatus.FAILED]),
        )
        .join(BatchJob, BatchJob.id == JobTransition.batch_job_id)
    )
    bought = sa.select(
        bucket(LedgerEntry.created_at).label("b"),
        LedgerEntry.result_count,
        LedgerEntry.total_cost,
    ).where(
        LedgerEntry.created_at >= start,
        LedgerEntry.created_at < end,
        LedgerEntry.outcome == LedgerEntry.BILLED,
    )
    if owner_id is not None:
        created = created.where(BatchJob.created_by == owner_id)
        finished = finished.where(BatchJob.created_by == owner_id)
        # The ledger's user is the job's owner (the runner writes job.created_by).
        bought = bought.where(LedgerEntry.user_id == owner_id)

    series: dict[str, list[Any]] = {
        "created": [0] * count,
        "completed": [0] * count,
        "failed": [0] * count,
        "bought": [0] * count,
        "spent": [0.0] * count,
    }
    # Grouped outside the subquery: PostgreSQL will not match a GROUP BY expression to the
    # selected one when each carries its own bound parameters.
    inner = created.subquery()
    for b, n in session.execute(sa.select(inner.c.b, sa.func.count()).group_by(inner.c.b)):
        series["created"][b] += n
    inner = finished.subquery()
    query = sa.select(inner.c.b, inner.c.to_status, sa.func.count()).group_by(
        inner.c.b, inner.c.to_status
    )
    for b, status, n in session.execute(query):
        series["completed" if status == JobStatus.COMPLETED else "failed"][b] += n
    inner = bought.subquery()
    query = sa.select(
        inner.c.b,
        sa.func.coalesce(sa.func.sum(inner.c.result_count), 0),
        sa.func.coalesce(sa.func.sum(inner.c.total_cost), 0.0),
    ).group_by(inner.c.b)
    for b, records, money in session.execute(query):
        series["bought"][b] += int(records)
        series["spent"][b] += float(money)
    return SystemActivity(
        window=window,
        starts=[start + i * window.step for i in range(count)],
        **series,
    )


class _Bucket(sa.ColumnElement[int]):
    """The number of the `step_seconds` bucket, counted from `start_epoch` (Unix time), a
    UTC timestamp column falls in. Only for rows at or after the start (the query's WHERE):
    integer division then is floor division on both databases."""

    type = sa.Integer()
    inherit_cache = False  # the start changes with every call

    def __init__(self, column: Any, start_epoch: int, step_seconds: int) -> None:
        self.column = column
        self.start_epoch = start_epoch
        self.step_seconds = step_seconds


@compiles(_Bucket, "sqlite")
def _bucket_sqlite(element: _Bucket, compiler: SQLCompiler, **kw: Any) -> str:
    # UTCDateTime stores UTC text without an offset ("2026-12-07 14:59:59.999999"), which
    # strftime('%s') reads as UTC; only its whole seconds, since SQLite rounds the fraction
    # to milliseconds (14:59:59.9996 would be 15:00:00, the next hour's bucket).
    whole_seconds = sa.func.substr(element.column, 1, 19)
    seconds = sa.cast(sa.func.strftime("%s", whole_seconds), sa.Integer)
    return compiler.process((seconds - element.start_epoch) // element.step_seconds, **kw)


@compiles(_Bucket, "postgresql")
def _bucket_postgresql(element: _Bucket, compiler: SQLCompiler, **kw: Any) -> str:
    seconds = sa.extract("epoch", element.column)
    offset = sa.func.floor((seconds - element.start_epoch) / element.step_seconds)
    return compiler.process(sa.cast(offset, sa.Integer), **kw)


def _ceil_div(span: timedelta, step: timedelta) -> int:
    return max(1, -(-span // step))
