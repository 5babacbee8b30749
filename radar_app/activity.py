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

Every system query reads a created_at range through an index (ix_batch_jobs_created or
_owner_created, ix_job_transitions_created, ix_purchase_ledger_created or _user_month), so
it costs what the window holds, not what the tables hold; the rows are counted per bucket
in SQL and only the buckets come back.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeAlias

import sqlalchemy as sa

from radar_app.charts import Point, round_step
from radar_app.models import (
    BatchJob,
    DbSession,
    JobStatus,
    JobTransition,
    LedgerEntry,
    UTCDateTime,
)
from radar_app.prepared import Prepared

# Most points a job's chart gets: its time is cut into at most this many round intervals.
JOB_POINTS = 40
# The longest a chunk's purchase is taken to have lasted (see job_activity).
PURCHASE_SPREAD = timedelta(seconds=60)


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
        .order_by(LedgerEntry.created_at, LedgerEntry.id)
    ).all()
    if not rows:
        return JobActivity([], [], 0, 0.0)
    first, last = rows[0][0], rows[-1][0]
    start = min(job.started_at or first, first)
    end = max(now if job.is_active else (job.completed_at or last), last)
    if end <= start:
        end = start + timedelta(seconds=1)
    step = round_step(end - start, JOB_POINTS)
    count = _ceil_div(end - start, step)

    def bucket(at: datetime) -> int:
        return min(int((at - start) / step), count - 1)

    records = [0.0] * count
    money = [0.0] * count
    previous = start
    for at, result_count, total_cost in rows:
        money[bucket(at)] += total_cost or 0.0
        # A chunk's records are written together, when the chunk is stored, but were
        # bought since the chunk before it: spread over that time (at most PURCHASE_SPREAD,
        # so a retry days later does not smear its first chunk over the gap), the rate
        # reads as the import's pace instead of spikes between silences.
        begin, previous = max(previous, at - PURCHASE_SPREAD), at
        seconds = (at - begin).total_seconds()
        for i in range(bucket(begin), bucket(at) + 1):
            if seconds <= 0:
                records[i] += result_count or 0
                break
            low = max(begin, start + i * step)
            high = min(at, start + (i + 1) * step)
            records[i] += (result_count or 0) * max(0.0, (high - low).total_seconds()) / seconds
    rate, cost, spent = [], [Point(start, 0.0)], 0.0
    for i in range(count):
        interval_end = min(start + (i + 1) * step, end)
        seconds = (interval_end - (start + i * step)).total_seconds()
        rate.append(Point(interval_end, round(records[i] / seconds, 6)))
        spent += money[i]
        cost.append(Point(interval_end, round(spent, 6)))
    bought = sum(row[1] or 0 for row in rows)
    return JobActivity(rate, cost, bought, round(spent, 6))


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


# A bucket that ended this long ago holds all it ever will: its rows were stamped with
# the time they were written, and committed by then (a database retry included).
SETTLED_AFTER = timedelta(minutes=15)

Series: TypeAlias = dict[str, list[Any]]


class SettledBuckets:
    """The settled buckets of recent system_activity answers, per owner and window, kept
    for `ttl` seconds, so a dashboard reads only its open buckets from the database. A
    week's rows cost PostgreSQL 3 ms a part, and twenty operators polling the dashboard
    read the same settled week again and again. What changes a settled bucket (a user's
    jobs deleted with the user) shows within `ttl`. Thread-safe (gunicorn's threads)."""

    def __init__(self, ttl: float = 600.0, max_entries: int = 1_000) -> None:
        self.ttl, self.max_entries = ttl, max_entries
        self._entries: dict[tuple[Any, ...], tuple[float, Series]] = {}
        self._lock = threading.Lock()

    def get(self, key: tuple[Any, ...]) -> Series | None:
        with self._lock:
            entry = self._entries.get(key)
        return entry[1] if entry is not None and entry[0] > time.monotonic() else None

    def put(self, key: tuple[Any, ...], series: Series) -> None:
        now = time.monotonic()
        with self._lock:
            if len(self._entries) >= self.max_entries:
                for stale in [k for k, (until, _) in self._entries.items() if until <= now]:
                    del self._entries[stale]
                while len(self._entries) >= self.max_entries:  # all fresh: drop the oldest
                    del self._entries[next(iter(self._entries))]
            self._entries[key] = (now + self.ttl, series)


def system_activity(
    session: DbSession,
    window: Window,
    now: datetime,
    owner_id: int | None,
    settled: SettledBuckets | None = None,
) -> SystemActivity:
    """Jobs and purchases per bucket over `window` up to now: of everyone (owner_id None,
    an admin's view) or of one user's jobs. The last bucket is the one now is in. With
    `settled`, the buckets that ended SETTLED_AFTER ago come from it when it has them."""
    step = window.step
    end = _EPOCH + (now - _EPOCH) // step * step + step
    count = _ceil_div(window.span, step)
    starts = [end - (count - i) * step for i in range(count)]
    connection = session.connection(bind_arguments={"mapper": BatchJob})
    closed = sum(start + step <= now - SETTLED_AFTER for start in starts)
    if settled is None or not closed:
        series = _read(connection, starts, step, owner_id)
    else:
        key = (owner_id, window.name, starts[0], closed)
        past = settled.get(key)
        if past is None:
            past = _read(connection, starts[:closed], step, owner_id)
            settled.put(key, past)
        live = _read(connection, starts[closed:], step, owner_id)
        series = {name: past[name] + live[name] for name in past}
    return SystemActivity(window=window, starts=starts, **series)


def _read(
    connection: sa.Connection, starts: list[datetime], step: timedelta, owner_id: int | None
) -> Series:
    """Each series' value in each bucket (from each of `starts`, `step` long)."""
    count = len(starts)
    params: dict[str, Any] = {"owner": owner_id, "step": step.total_seconds()}
    for i, start in enumerate(starts):
        params[f"lo{i}"], params[f"hi{i}"] = start, start + step
    series: Series = {
        "created": [0] * count,
        "completed": [0] * count,
        "failed": [0] * count,
        "bought": [0] * count,
        "spent": [0.0] * count,
    }
    for kind in _PARTS:
        statement = _per_bucket(kind, count, owned=owner_id is not None)
        for i, status, n, money in statement(connection, params):
            if kind == "finished":
                series["completed" if status == JobStatus.COMPLETED else "failed"][i] += n
            else:
                series[kind][i] += int(n)
                if kind == "bought":
                    series["spent"][i] += float(money)
    return series


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_OWNER = sa.bindparam("owner", type_=sa.Integer)
# The columns every part has, so every kind's rows read alike: (status, n, money).
_NO_STATUS = sa.null().label("status")
_NO_MONEY = sa.literal_column("0.0", sa.Float).label("money")


def _created(lo: Any, hi: Any, owned: bool) -> sa.Select[Any]:
    query = sa.select(_NO_STATUS, sa.func.count().label("n"), _NO_MONEY)
    query = query.where(BatchJob.created_at >= lo, BatchJob.created_at < hi)
    return query.where(BatchJob.created_by == _OWNER) if owned else query


def _finished(lo: Any, hi: Any, owned: bool) -> sa.Select[Any]:
    query = (
        sa.select(JobTransition.to_status.label("status"), sa.func.count().label("n"), _NO_MONEY)
        .where(
            JobTransition.created_at >= lo,
            JobTransition.created_at < hi,
            # Not IN: a Prepared statement cannot expand a list (see radar_app.prepared).
            sa.or_(
                JobTransition.to_status == JobStatus.COMPLETED,
                JobTransition.to_status == JobStatus.FAILED,
            ),
        )
        .group_by(JobTransition.to_status)
    )
    if not owned:
        return query
    # Each transition of the bucket's range, its job looked up by primary key: driven
    # from the owner's jobs instead (IN), both databases probed the transitions once per
    # job the owner ever had, in every bucket (600 ms for 10,000 jobs on SQLite).
    return query.where(
        sa.exists().where(BatchJob.id == JobTransition.batch_job_id, BatchJob.created_by == _OWNER)
    )


def _bought(lo: Any, hi: Any, owned: bool) -> sa.Select[Any]:
    query = sa.select(
        _NO_STATUS,
        sa.func.coalesce(sa.func.sum(LedgerEntry.result_count), 0).label("n"),
        sa.func.coalesce(sa.func.sum(LedgerEntry.total_cost), 0.0).label("money"),
    ).where(
        LedgerEntry.created_at >= lo,
        LedgerEntry.created_at < hi,
        LedgerEntry.outcome == LedgerEntry.BILLED,
    )
    # The ledger's user is the job's owner (the runner writes job.created_by).
    return query.where(LedgerEntry.user_id == _OWNER) if owned else query


# Each kind's part (a select of its aggregate over [lo, hi)) and the time it is read by.
_PARTS: dict[str, tuple[Callable[[Any, Any, bool], sa.Select[Any]], Any]] = {
    "created": (_created, BatchJob.created_at),
    "finished": (_finished, JobTransition.created_at),
    "bought": (_bought, LedgerEntry.created_at),
}


@functools.cache
def _per_bucket(kind: str, count: int, owned: bool) -> Prepared:
    """One statement: the `kind` aggregate of each of `count` buckets (parameters lo<i>,
    hi<i>, step in seconds, and owner when `owned`), as rows (bucket, status, count or sum,
    money). Built and compiled once (radar_app.prepared): building it at every request cost
    SQLAlchemy more than the database took to answer it.

    PostgreSQL: one range, each row's bucket by arithmetic on its epoch. One part per
    bucket (a UNION of 24 or 28) was longer than psycopg prepares, so PostgreSQL planned
    it at every request (15 ms), and its total cost passed the bar for parallel workers,
    whose start-up took 3-15 ms more. SQLite: the buckets as rows, each joined to its range
    of the index and counted by comparison; computing each row's bucket instead (a date
    function per row) cost several times as much there (370 ms against 40 ms for a week
    of 47,000 ledger rows), and one part per bucket took SQLite 100 ms to prepare on each
    new connection (against 30).
    """

    def build(dialect: sa.Dialect) -> sa.Select[Any]:
        part, at = _PARTS[kind]
        lo: sa.ColumnElement[Any]
        hi: sa.ColumnElement[Any]
        bucket: sa.ColumnElement[Any]
        if dialect.name == "postgresql":
            lo, hi = _edge("lo", 0), _edge("hi", count - 1)
            step = sa.bindparam("step", type_=sa.Float)
            bucket = sa.cast(sa.func.floor(sa.extract("epoch", at - lo) / step), sa.Integer)
        else:
            buckets = sa.union_all(
                *(
                    sa.select(
                        sa.literal_column(str(i)).label("bucket"),
                        _edge("lo", i).label("lo"),
                        _edge("hi", i).label("hi"),
                    )
                    for i in range(count)
                )
            ).subquery("buckets")
            lo, hi, bucket = buckets.c.lo, buckets.c.hi, buckets.c.bucket
        query = part(lo, hi, owned).add_columns(bucket.label("bucket"))
        rows = query.group_by(bucket).subquery()
        *values, bucket_column = rows.c
        return sa.select(bucket_column, *values)

    return Prepared(build)


def _edge(name: str, i: int) -> sa.BindParameter[datetime]:
    return sa.bindparam(f"{name}{i}", type_=UTCDateTime())


def _ceil_div(span: timedelta, step: timedelta) -> int:
    return max(1, -(-span // step))
