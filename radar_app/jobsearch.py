"""Searching the Jobs list (issue 13): by name and criteria text, status, owner (admins)
and creation date, for the Jobs page, GET /api/batch-jobs and the bulk actions alike.

The filters are the table FILTERS: the page's form, the API's query schema and the
parser all read it, so a filter exists everywhere or nowhere. Every query starts from
what the user may see (batches.visible_jobs): a user's own jobs, read through the
(created_by, created_at) index, so a text search scans at most that user's jobs; an
admin's search by text over everyone's jobs scans the newest SCAN_LIMIT of them (see
matching()).

Needs no app or request: the tests and the bench call it with a plain session.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import sqlalchemy as sa

from radar_app.batches import visible_jobs
from radar_app.fielderrors import FieldErrors
from radar_app.models import BatchJob, DbSession, JobStatus, User, UTCDateTime
from radar_app.queryparams import DATE_SCHEMA, TEXT_SCHEMA, day
from radar_app.queryparams import text as free_text

# An admin's text search without an owner reads at most this many of the newest jobs: a
# LIKE cannot use an index, and everyone's jobs are unbounded. A user's own jobs are not
# capped (they are read by the owner index, and a user has far fewer).
SCAN_LIMIT = 20_000

STATUSES = [s.value for s in JobStatus]


class InvalidJobQuery(FieldErrors):
    """What is wrong with a Jobs search, by parameter."""


@dataclass(frozen=True)
class Filter:
    """One query parameter: its label and help for the form and the API document, how its
    value is read (raises ValueError with the message the user sees), and the values it
    takes as JSON Schema."""

    key: str
    label: str
    help: str
    parse: Callable[[str], Any]
    schema: Mapping[str, Any] = field(default_factory=dict)
    # The Jobs page offers it to admins only (who alone see other users' jobs).
    admin_only: bool = False


def _status(value: str) -> str:
    status = value.strip().upper()
    if status not in STATUSES:
        raise ValueError("one of " + ", ".join(STATUSES))
    return status


FILTERS: tuple[Filter, ...] = (
    Filter(
        "q",
        "Search",
        "Part of the job's name or criteria (case-insensitive)",
        free_text,
        TEXT_SCHEMA,
    ),
    Filter(
        "status",
        "Status",
        "Only jobs in this status",
        _status,
        {"type": "string", "enum": STATUSES},
    ),
    Filter(
        "owner",
        "Owner",
        "The owner's email, exactly (any case). Only an admin sees other users' jobs: for "
        "anyone else another user's email, like an unknown one, finds nothing",
        lambda value: free_text(value).lower(),
        TEXT_SCHEMA,
        admin_only=True,
    ),
    Filter("created_from", "Created from", "YYYY-MM-DD (UTC)", day, DATE_SCHEMA),
    Filter("created_to", "Created to", "YYYY-MM-DD (UTC), inclusive", day, DATE_SCHEMA),
)
FILTER_BY_KEY = {f.key: f for f in FILTERS}


@dataclass(frozen=True)
class JobQuery:
    """A parsed Jobs search: the filters given, by key, parsed; the owner's row id."""

    filters: Mapping[str, Any] = field(default_factory=dict)
    # The user the owner filter names (None: no such user, or no owner filter).
    owner_id: int | None = None

    def get(self, key: str) -> Any:
        return self.filters.get(key)

    def args(self, **changes: Any) -> dict[str, str]:
        """The search as URL parameters, with `changes` (None drops a key): links and
        pagination keep the filters."""
        values = {**self.filters, **changes}
        return {
            key: value.isoformat() if isinstance(value, date) else str(value)
            for key, value in values.items()
            if value not in (None, "")
        }

    def without_status(self) -> JobQuery:
        """The same search in every status: what the status counts are counted over."""
        return JobQuery({k: v for k, v in self.filters.items() if k != "status"}, self.owner_id)

    @property
    def narrows(self) -> bool:
        """Whether any filter is given (the Jobs page then says "matching")."""
        return bool(self.filters)


def parse_query(session: DbSession, user: User, args: Mapping[str, Any]) -> JobQuery:
    """Read the filters of `args` (a query string, a form, an API body) into a JobQuery;
    every problem at once. Empty values are "no filter" (a form submits every field)."""
    problems: dict[str, str] = {}
    filters: dict[str, Any] = {}
    for spec in FILTERS:
        raw = args.get(spec.key)
        if raw is None or not str(raw).strip():
            continue
        try:
            filters[spec.key] = spec.parse(str(raw))
        except ValueError as exc:
            problems[spec.key] = f"{spec.label}: {exc}"
    low, high = filters.get("created_from"), filters.get("created_to")
    if low is not None and high is not None and low > high:
        problems["created_to"] = "Created to: must not be below the lower bound"
    if problems:
        raise InvalidJobQuery(problems)
    owner_id = None
    if "owner" in filters:
        # No error for an unknown email: it would tell anyone which emails have accounts.
        owner_id = session.scalar(
            sa.select(User.id).where(sa.func.lower(User.email) == filters["owner"])
        )
    return JobQuery(filters, owner_id)


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def matching(user: User, query: JobQuery) -> sa.Select[tuple[BatchJob]]:
    """The jobs the user may see that pass the search, newest first."""
    select = visible_jobs(user)
    if "owner" in query.filters:
        select = select.where(
            BatchJob.created_by == query.owner_id if query.owner_id is not None else sa.false()
        )
    if status := query.get("status"):
        select = select.where(BatchJob.status == status)
    if (low := query.get("created_from")) is not None:
        select = select.where(BatchJob.created_at >= _day_start(low))
    if (high := query.get("created_to")) is not None and high < date.max:
        select = select.where(BatchJob.created_at < _day_start(high + timedelta(days=1)))
    if text := query.get("q"):
        pattern = "%" + re.sub(r"([/%_])", r"/\1", text.lower()) + "%"
        select = select.where(BatchJob.search_text.like(pattern, escape="/"))
        if user.is_admin and "owner" not in query.filters:
            select = select.where(BatchJob.created_at >= _newest_scanned())
    return select


# Before any job: the bound when there are fewer than SCAN_LIMIT jobs.
_BEFORE_ANY_JOB = datetime(2000, 1, 1, tzinfo=UTC)


def _newest_scanned() -> sa.ColumnElement[datetime]:
    """When the SCAN_LIMIT-th newest job was created: one probe of the created_at index,
    made once per query, and a range the scan then reads through the same index."""
    limit = (
        sa.select(BatchJob.created_at)
        .order_by(BatchJob.created_at.desc())
        .offset(SCAN_LIMIT - 1)
        .limit(1)
        .scalar_subquery()
    )
    return sa.func.coalesce(limit, sa.bindparam(None, _BEFORE_ANY_JOB, type_=UTCDateTime))


def status_counts(session: DbSession, user: User, query: JobQuery) -> dict[str, int]:
    """How many jobs pass the search in each status (the search's own status aside): the
    figures of the Jobs page's status filter, in one query."""
    counted = (
        matching(user, query.without_status())
        .with_only_columns(BatchJob.status, sa.func.count())
        .order_by(None)
        .group_by(BatchJob.status)
    )
    return {status: count for status, count in session.execute(counted).tuples()}
