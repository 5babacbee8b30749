"""Database models: users, batch jobs with their logs and state history, properties and which
job brought them."""

from __future__ import annotations

import enum
import secrets
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeAlias, cast

import sqlalchemy as sa
import sqlalchemy.orm as so
from flask_login import UserMixin
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import ColumnElement
from sqlalchemy.sql.visitors import InternalTraversal
from werkzeug.security import check_password_hash, generate_password_hash

from radar_app import jsoncodec, leads
from radar_app.defaults import JOB_NAME_MAX_LENGTH
from radar_app.extensions import db

if TYPE_CHECKING:
    # Flask-SQLAlchemy builds db.Model at run time (the declarative Base plus its own
    # conveniences), which a type checker cannot follow; the mapped columns are Base's.
    from radar_app.extensions import Base as Model
else:
    Model = db.Model

# What the domain functions take: the web passes Flask-SQLAlchemy's db.session, a
# scoped_session forwarding each call to the request's Session; the worker and the CLI
# pass a plain Session.
DbSession: TypeAlias = so.Session | so.scoped_session[Any]


def rows_updated(session: DbSession, statement: sa.Update) -> int:
    """Run a conditional UPDATE and say how many rows it changed (0: the guard lost)."""
    # An UPDATE's result is a CursorResult (which has rowcount); Session.execute is typed
    # for every statement as the plain Result.
    result = cast(sa.CursorResult[Any], session.execute(statement))
    return result.rowcount


def one_of(
    column: so.QueryableAttribute[Any], values: list[Any], dialect: sa.Dialect
) -> sa.ColumnElement[bool]:
    """`column IN values` with every value in one bound parameter: a JSON array read by
    json_each on SQLite, an array on PostgreSQL. SQLAlchemy expands an IN list into a
    parameter per value at every execution (0.5 ms for 400 RadarIDs on SQLite against
    0.23 ms this way), and the importer runs several of these per chunk."""
    return _one_of(column, sa.bindparam(None, values, type_=_list_type(column, dialect)), dialect)


def one_of_listed(
    column: so.QueryableAttribute[Any], name: str, dialect: sa.Dialect
) -> sa.ColumnElement[bool]:
    """one_of for a prepared statement (radar_app.prepared): the list is the parameter
    `name` of each execution."""
    return _one_of(column, sa.bindparam(name, type_=_list_type(column, dialect)), dialect)


class _JsonList(sa.TypeDecorator[list[Any]]):
    """A list sent as JSON text (for SQLite's json_each)."""

    impl = sa.Text
    cache_ok = True

    def process_bind_param(self, value: list[Any] | None, dialect: sa.Dialect) -> str | None:
        return None if value is None else jsoncodec.dumps(value)


def _list_type(column: so.QueryableAttribute[Any], dialect: sa.Dialect) -> sa.types.TypeEngine[Any]:
    return ARRAY(column.type) if dialect.name == "postgresql" else _JsonList()


def _one_of(
    column: so.QueryableAttribute[Any], listed: sa.BindParameter[Any], dialect: sa.Dialect
) -> sa.ColumnElement[bool]:
    if dialect.name == "postgresql":
        return column == sa.any_(listed)
    return column.in_(sa.select(sa.func.json_each(listed).table_valued("value").c.value))


# JSONB on PostgreSQL (indexable, compact), plain JSON text elsewhere.
JSONType = sa.JSON().with_variant(JSONB(), "postgresql")


class _JsonText(sa.TypeDecorator[Any]):
    """JSON kept as the text it arrived in: written and read by jsoncodec, never parsed
    by the server."""

    impl = sa.Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: sa.Dialect) -> str | None:
        return None if value is None else jsoncodec.dumps(value)

    def process_result_value(self, value: str | None, dialect: sa.Dialect) -> Any:
        return None if value is None else jsoncodec.loads(value)


# The bought records (properties.raw): JSON text on both databases (migration 0020).
# Every record bought is written once and seldom read by SQL (the CSV's custom fields,
# through raw_field), and PostgreSQL's JSONB input cost more than all the rest of the
# upsert: 20,000 records took 1.58 s of server CPU as JSONB against 0.64 s as text
# (bench/storepath.py's rows, eleven leads-browser indexes in place). Text also keeps a
# record exactly as sent (JSONB reorders its keys and refuses \u0000).
RecordJSON = sa.JSON().with_variant(_JsonText(), "postgresql")


class _RawField(ColumnElement[Any]):
    """One field of a stored record, read by SQL: SQLite's JSON functions read the
    text; PostgreSQL parses it as JSONB for the expression."""

    inherit_cache = True
    _traverse_internals = [
        ("column", InternalTraversal.dp_clauseelement),
        ("field", InternalTraversal.dp_string),
    ]

    def __init__(self, column: ColumnElement[Any], field: str) -> None:
        self.column = column
        self.field = field
        self.type = JSONType


@compiles(_RawField)
def _raw_field_default(element: _RawField, compiler: Any, **kw: Any) -> str:
    return str(compiler.process(sa.type_coerce(element.column, sa.JSON)[element.field], **kw))


@compiles(_RawField, "postgresql")
def _raw_field_postgresql(element: _RawField, compiler: Any, **kw: Any) -> str:
    return str(compiler.process(sa.cast(element.column, JSONB)[element.field], **kw))


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(sa.TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite drops the offset on the way in)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is not None and value.tzinfo is not None:
            value = value.astimezone(UTC)
        if value is not None and dialect.name == "sqlite":
            value = value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


class JobPhase(enum.StrEnum):
    SNAPSHOT = "SNAPSHOT"  # free Purchase=0 pages of RadarIDs
    PURCHASE = "PURCHASE"  # buy what is not stored yet, chunk by chunk


class JobStatus(enum.StrEnum):
    PENDING = "PENDING"
    PROCESSING = "PROCESSING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    @property
    def is_active(self) -> bool:
        return self in (JobStatus.PENDING, JobStatus.PROCESSING)


def new_session_token() -> str:
    return secrets.token_hex(16)


class User(UserMixin, Model):
    __tablename__ = "users"

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    email: so.Mapped[str] = so.mapped_column(sa.String(254), unique=True)
    password_hash: so.Mapped[str] = so.mapped_column(sa.String(256))
    is_admin: so.Mapped[bool] = so.mapped_column(default=False)
    # Only a SHA-256 of the API token is stored; issuing a new token revokes the old one.
    api_token_hash: so.Mapped[str | None] = so.mapped_column(sa.String(64), unique=True)
    # Records this user may buy per calendar month (UTC); None = no budget set.
    monthly_export_budget: so.Mapped[int | None]
    created_at: so.Mapped[datetime] = so.mapped_column(UTCDateTime, default=utcnow)
    # Part of the id that every session and remember-me cookie carries (get_id); a cookie
    # whose token no longer matches signs nobody in. Replacing it (end_sessions) is how
    # signing out revokes copies of the cookies, which are otherwise valid until they expire.
    session_token: so.Mapped[str] = so.mapped_column(sa.String(32), default=new_session_token)
    # Set by an admin: the user cannot sign in, and their sessions and API token stop
    # working (the sign-in loaders refuse them), until an admin enables them again.
    disabled_at: so.Mapped[datetime | None] = so.mapped_column(UTCDateTime)
    # The read-only role: sees what the user (or, with is_admin, everyone) may see, and
    # acts on nothing (security.refuse_read_only_writes). An admin who is read-only is a
    # viewer.
    read_only: so.Mapped[bool] = so.mapped_column(default=False, server_default=sa.false())

    @property
    def is_active(self) -> bool:
        # Flask-Login counts an inactive user as not authenticated (UserMixin's
        # is_authenticated is is_active): a disabled user's session cookie, remember-me
        # cookie and API token all sign nobody in. login_user() refuses them too.
        return self.disabled_at is None

    @property
    def can_act(self) -> bool:
        """Whether this user may change anything (pages hide the actions otherwise)."""
        return not self.read_only

    @property
    def role(self) -> str:
        """What the user may do, in a word: admin, viewer (a read-only admin), user, or
        read-only (a read-only user)."""
        if self.is_admin:
            return "viewer" if self.read_only else "admin"
        return "read-only" if self.read_only else "user"

    def get_id(self) -> str:
        # Flask-Login stores this in the session and the remember-me cookie.
        return f"{self.id}:{self.session_token}"

    def end_sessions(self) -> None:
        """Sign this user out everywhere: every session and remember-me cookie issued so far
        stops working on its next request."""
        self.session_token = new_session_token()

    def set_password(self, password: str) -> None:
        # Werkzeug's default is scrypt, a memory-hard KDF.
        self.password_hash = generate_password_hash(password)
        # Whoever knew the old password may hold a session; a new password ends it.
        self.end_sessions()

    def check_password(self, password: str) -> bool:
        return check_password_hash(self.password_hash, password)

    def __repr__(self) -> str:
        return f"<User {self.email}>"


class SuppressionList(Model):
    """RadarIDs a user must never buy (a do-not-contact list, say). A job skips them
    before its Purchase=1 requests: they are never billed, and counted as suppressed.
    A default list applies to every job of its owner; a search or job can name one more."""

    __tablename__ = "suppression_lists"
    __table_args__ = (
        sa.UniqueConstraint("created_by", "name", name="uq_suppression_lists_owner_name"),
    )

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    list_id: so.Mapped[str] = so.mapped_column(sa.String(32), unique=True)
    name: so.Mapped[str] = so.mapped_column(sa.String(JOB_NAME_MAX_LENGTH))
    is_default: so.Mapped[bool] = so.mapped_column(default=False)
    created_by: so.Mapped[int] = so.mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"))
    created_at: so.Mapped[datetime] = so.mapped_column(UTCDateTime, default=utcnow)
    updated_at: so.Mapped[datetime] = so.mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    owner: so.Mapped[User] = so.relationship(lazy="joined", innerjoin=True)


class SuppressedRecord(Model):
    """One RadarID on a suppression list."""

    __tablename__ = "suppressed_records"

    list_id: so.Mapped[int] = so.mapped_column(
        sa.ForeignKey("suppression_lists.id", ondelete="CASCADE"), primary_key=True
    )
    radar_id: so.Mapped[str] = so.mapped_column(sa.String(32), primary_key=True)


class SavedSearch(Model):
    """A search a user keeps to run again: what to match, which fields to buy, the cap.
    Running it creates an ordinary batch job, which remembers the search it came from."""

    __tablename__ = "saved_searches"
    __table_args__ = (
        # One name per user: the name is how a person tells their searches apart.
        sa.UniqueConstraint("created_by", "name", name="uq_saved_searches_owner_name"),
    )

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    # Public identifier used in URLs.
    search_id: so.Mapped[str] = so.mapped_column(sa.String(32), unique=True)
    name: so.Mapped[str] = so.mapped_column(sa.String(JOB_NAME_MAX_LENGTH))
    criteria: so.Mapped[list[dict[str, Any]]] = so.mapped_column(JSONType)
    fields: so.Mapped[list[str] | None] = so.mapped_column(JSONType)
    max_records: so.Mapped[int | None]
    refresh_all: so.Mapped[bool] = so.mapped_column(default=False)
    # A suppression list its jobs skip, besides the owner's default lists.
    suppression_list_id: so.Mapped[int | None] = so.mapped_column(
        sa.ForeignKey("suppression_lists.id", ondelete="SET NULL")
    )
    created_by: so.Mapped[int] = so.mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"))
    created_at: so.Mapped[datetime] = so.mapped_column(UTCDateTime, default=utcnow)
    updated_at: so.Mapped[datetime] = so.mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    owner: so.Mapped[User] = so.relationship(lazy="joined", innerjoin=True)
    suppression_list: so.Mapped[SuppressionList | None] = so.relationship()
    schedule: so.Mapped[Schedule | None] = so.relationship(
        back_populates="saved_search", passive_deletes=True
    )


class Schedule(Model):
    """When a saved search runs by itself: daily or weekly at a time, or on a cron
    expression, in the owner's time zone (radar_app.schedules)."""

    __tablename__ = "schedules"

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    saved_search_id: so.Mapped[int] = so.mapped_column(
        sa.ForeignKey("saved_searches.id", ondelete="CASCADE"), unique=True
    )
    # A five-field cron expression, in `timezone` (daily and weekly are written as one).
    cron: so.Mapped[str] = so.mapped_column(sa.String(100))
    timezone: so.Mapped[str] = so.mapped_column(sa.String(64))
    # Dollars one run may spend at most (None: only the monthly budget limits it).
    max_cost: so.Mapped[float | None]
    enabled: so.Mapped[bool] = so.mapped_column(default=True)
    created_at: so.Mapped[datetime] = so.mapped_column(UTCDateTime, default=utcnow)
    updated_at: so.Mapped[datetime] = so.mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    saved_search: so.Mapped[SavedSearch] = so.relationship(back_populates="schedule")


class ScheduledRun(Model):
    """One slot of a schedule that fired. The unique (schedule, slot) is what makes a slot
    fire once however many schedulers and workers look at it at the same time."""

    __tablename__ = "scheduled_runs"
    __table_args__ = (sa.UniqueConstraint("schedule_id", "slot_at", name="uq_scheduled_runs_slot"),)

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    schedule_id: so.Mapped[int] = so.mapped_column(
        sa.ForeignKey("schedules.id", ondelete="CASCADE")
    )
    slot_at: so.Mapped[datetime] = so.mapped_column(UTCDateTime)
    fired_at: so.Mapped[datetime] = so.mapped_column(UTCDateTime, default=utcnow)
    batch_job_id: so.Mapped[int | None] = so.mapped_column(
        sa.ForeignKey("batch_jobs.id", ondelete="SET NULL")
    )
    # Why no job was made for the slot (its search no longer valid, say); None: one was.
    error: so.Mapped[str | None] = so.mapped_column(sa.Text)

    job: so.Mapped[BatchJob | None] = so.relationship()


class AlertChannel(Model):
    """Where a user hears about their jobs: an email address or a webhook URL, for the
    events they chose (radar_app.alerts)."""

    __tablename__ = "alert_channels"

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    channel_id: so.Mapped[str] = so.mapped_column(sa.String(32), unique=True)
    created_by: so.Mapped[int] = so.mapped_column(
        sa.ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    kind: so.Mapped[str] = so.mapped_column(sa.String(16))  # email | webhook
    target: so.Mapped[str] = so.mapped_column(sa.String(500))
    events: so.Mapped[list[str]] = so.mapped_column(JSONType)
    # A webhook's HMAC-SHA256 key, shown to its owner once, when it is made.
    secret: so.Mapped[str | None] = so.mapped_column(sa.String(64))
    created_at: so.Mapped[datetime] = so.mapped_column(UTCDateTime, default=utcnow)


class AlertDelivery(Model):
    """One event for one channel (or the operators' address), and how delivering it went."""

    __tablename__ = "alert_deliveries"
    __table_args__ = (sa.Index("ix_alert_deliveries_due", "status", "next_attempt_at"),)

    PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    channel_id: so.Mapped[int | None] = so.mapped_column(
        sa.ForeignKey("alert_channels.id", ondelete="CASCADE"), index=True
    )
    # For the operators' alerts, which belong to no user's channel.
    admin_email: so.Mapped[str | None] = so.mapped_column(sa.String(254))
    event: so.Mapped[str] = so.mapped_column(sa.String(32))
    payload: so.Mapped[dict[str, Any]] = so.mapped_column(JSONType)
    status: so.Mapped[str] = so.mapped_column(sa.String(16), default=PENDING)
    attempts: so.Mapped[int] = so.mapped_column(default=0)
    next_attempt_at: so.Mapped[datetime | None] = so.mapped_column(UTCDateTime)
    last_attempt_at: so.Mapped[datetime | None] = so.mapped_column(UTCDateTime)
    last_status_code: so.Mapped[int | None]
    last_error: so.Mapped[str | None] = so.mapped_column(sa.Text)
    created_at: so.Mapped[datetime] = so.mapped_column(UTCDateTime, default=utcnow)
    delivered_at: so.Mapped[datetime | None] = so.mapped_column(UTCDateTime)

    channel: so.Mapped[AlertChannel | None] = so.relationship(lazy="joined")


def job_search_text(name: str, criteria: list[dict[str, Any]], **_other_columns: Any) -> str:
    """A job's name and criteria as the Jobs search reads them: lower case (the search
    ignores case), the criteria as compact JSON text (a county's FIPS code, a criterion's
    name). A column, not the criteria cast to text at each search: on PostgreSQL that
    cast was two thirds of a search's time (10,000 jobs: 12.2 -> 4.1 ms)."""
    return f"{name}\n{jsoncodec.dumps(criteria)}".lower()


class BatchJob(Model):
    __tablename__ = "batch_jobs"
    __table_args__ = (
        sa.Index("ix_batch_jobs_owner_created", "created_by", "created_at"),
        # Every page asks whether the user has an active job, or one that ended since
        # the last look (radar_app.notifications): seeks, for a user with many jobs.
        sa.Index("ix_batch_jobs_owner_status_completed", "created_by", "status", "completed_at"),
        sa.Index("ix_batch_jobs_status_created", "status", "created_at"),
        # An admin's Jobs tab lists everyone's jobs newest first.
        sa.Index("ix_batch_jobs_created", "created_at"),
    )

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    # Public identifier used in URLs and as the RQ job id prefix.
    job_id: so.Mapped[str] = so.mapped_column(sa.String(32), unique=True)
    name: so.Mapped[str] = so.mapped_column(sa.String(JOB_NAME_MAX_LENGTH))
    status: so.Mapped[str] = so.mapped_column(sa.String(16), default=JobStatus.PENDING)
    criteria: so.Mapped[list[dict[str, Any]]] = so.mapped_column(JSONType)
    # What the Jobs search's text matches (radar_app.jobsearch): set on insert, as name
    # and criteria never change.
    search_text: so.Mapped[str] = so.mapped_column(
        sa.Text,
        default=lambda context: job_search_text(**context.get_current_parameters()),
        server_default="",
    )
    max_records: so.Mapped[int | None]
    total_records: so.Mapped[int | None]
    processed_records: so.Mapped[int] = so.mapped_column(default=0)
    success_count: so.Mapped[int] = so.mapped_column(default=0)
    error_count: so.Mapped[int] = so.mapped_column(default=0)
    error_details: so.Mapped[str | None] = so.mapped_column(sa.Text)
    # Checkpoint: the Start offset of the next page to fetch. Advanced in the same
    # transaction that stores a page, so a committed page is never bought again.
    next_start: so.Mapped[int] = so.mapped_column(default=0)
    pages_fetched: so.Mapped[int] = so.mapped_column(default=0)
    attempts: so.Mapped[int] = so.mapped_column(default=0)
    rq_job_id: so.Mapped[str | None] = so.mapped_column(sa.String(64))
    cancel_requested: so.Mapped[bool] = so.mapped_column(default=False)
    created_by: so.Mapped[int] = so.mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"))
    created_at: so.Mapped[datetime] = so.mapped_column(UTCDateTime, default=utcnow)
    updated_at: so.Mapped[datetime] = so.mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    started_at: so.Mapped[datetime | None] = so.mapped_column(UTCDateTime)
    completed_at: so.Mapped[datetime | None] = so.mapped_column(UTCDateTime)
    # Where the current run began, so records/s and ETA describe this run, not the retry gap.
    run_started_at: so.Mapped[datetime | None] = so.mapped_column(UTCDateTime)
    run_start_processed: so.Mapped[int] = so.mapped_column(default=0)
    heartbeat_at: so.Mapped[datetime | None] = so.mapped_column(UTCDateTime)
    # When the current run began buying (the free snapshot's end, or the run's start if it
    # resumed in the purchase phase): the time left is estimated from this, not run start.
    purchase_started_at: so.Mapped[datetime | None] = so.mapped_column(UTCDateTime)
    # Cost control (see importer.py): first a free snapshot of the matching RadarIDs, then
    # purchases of only those not already stored (or stale).
    phase: so.Mapped[str] = so.mapped_column(sa.String(16), default=JobPhase.SNAPSHOT)
    snapshot_next_start: so.Mapped[int] = so.mapped_column(default=0)
    snapshot_count: so.Mapped[int] = so.mapped_column(default=0)
    refresh_all: so.Mapped[bool] = so.mapped_column(default=False)
    fields: so.Mapped[list[str] | None] = so.mapped_column(JSONType)
    reused_count: so.Mapped[int] = so.mapped_column(default=0)
    purchased_count: so.Mapped[int] = so.mapped_column(default=0)
    vanished_count: so.Mapped[int] = so.mapped_column(default=0)
    cost_total: so.Mapped[float] = so.mapped_column(default=0.0)
    # Bought and billed, but not stored: the record came back without a RadarID, and a
    # lead cannot be kept (or reused, or linked) without one.
    unidentified_count: so.Mapped[int] = so.mapped_column(default=0)
    # totalResultCount of the search's first page, as the user was told it; the snapshot
    # follows the records actually returned, so the two can differ (see `warning`).
    search_total: so.Mapped[int | None]
    # Why the job stored fewer (or more) leads than the search first reported, with the
    # figures; None when they agree. Shown on the job page and in the API.
    warning: so.Mapped[str | None] = so.mapped_column(sa.Text)
    # The saved search this job ran, if any (kept when the search is deleted: None then).
    saved_search_id: so.Mapped[int | None] = so.mapped_column(
        sa.ForeignKey("saved_searches.id", ondelete="SET NULL"), index=True
    )
    # The suppression list the job skips besides its owner's default lists, and how many
    # of its matches were skipped as suppressed (never bought).
    suppression_list_id: so.Mapped[int | None] = so.mapped_column(
        sa.ForeignKey("suppression_lists.id", ondelete="SET NULL")
    )
    suppressed_count: so.Mapped[int] = so.mapped_column(default=0)
    # The most records this job may buy (a scheduled run's cost cap); None: no cap.
    max_purchases: so.Mapped[int | None]

    owner: so.Mapped[User] = so.relationship(lazy="joined", innerjoin=True)
    saved_search: so.Mapped[SavedSearch | None] = so.relationship()
    suppression_list: so.Mapped[SuppressionList | None] = so.relationship()

    @property
    def status_enum(self) -> JobStatus:
        return JobStatus(self.status)

    @property
    def is_active(self) -> bool:
        return self.status_enum.is_active

    @property
    def can_cancel(self) -> bool:
        return self.is_active and not self.cancel_requested

    @property
    def can_retry(self) -> bool:
        return self.status in (JobStatus.FAILED, JobStatus.CANCELLED)

    @property
    def progress_percent(self) -> float:
        if self.status == JobStatus.COMPLETED:
            return 100.0
        if not self.total_records:
            return 0.0
        return round(min(100.0, 100.0 * self.processed_records / self.total_records), 1)

    def records_per_second(self, now: datetime | None = None) -> float | None:
        if self.run_started_at is None:
            return None
        end = self.completed_at or (now or utcnow())
        if self.completed_at and self.completed_at < self.run_started_at:
            return None
        elapsed = (end - self.run_started_at).total_seconds()
        done = self.processed_records - self.run_start_processed
        if elapsed <= 0 or done <= 0:
            return None
        return round(done / elapsed, 1)

    def duration_seconds(self, now: datetime | None = None) -> float | None:
        if self.started_at is None:
            return None
        end = self.completed_at if not self.is_active else (now or utcnow())
        return round(((end or utcnow()) - self.started_at).total_seconds(), 1)


class BatchJobLog(Model):
    __tablename__ = "batch_job_logs"
    __table_args__ = (sa.Index("ix_batch_job_logs_job", "batch_job_id", "id"),)

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    batch_job_id: so.Mapped[int] = so.mapped_column(
        sa.ForeignKey("batch_jobs.id", ondelete="CASCADE")
    )
    created_at: so.Mapped[datetime] = so.mapped_column(UTCDateTime, default=utcnow)
    level: so.Mapped[str] = so.mapped_column(sa.String(10))
    page: so.Mapped[int | None]
    message: so.Mapped[str] = so.mapped_column(sa.Text)


class JobTransition(Model):
    """One change of a job's state (see jobstate.py): when, from what to what, through
    which event, who did it and why. Written in the transaction that makes the change."""

    __tablename__ = "job_transitions"
    __table_args__ = (
        sa.Index("ix_job_transitions_job", "batch_job_id", "id"),
        # Read by time: the admin audit page (newest first) and the activity charts.
        sa.Index("ix_job_transitions_created", "created_at", "id"),
    )

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    batch_job_id: so.Mapped[int] = so.mapped_column(
        sa.ForeignKey("batch_jobs.id", ondelete="CASCADE")
    )
    created_at: so.Mapped[datetime] = so.mapped_column(UTCDateTime, default=utcnow)
    from_status: so.Mapped[str] = so.mapped_column(sa.String(16))
    to_status: so.Mapped[str] = so.mapped_column(sa.String(16))
    event: so.Mapped[str] = so.mapped_column(sa.String(32))
    # A user's email, "admin:<email>", "worker", "recovery" or "system".
    actor: so.Mapped[str] = so.mapped_column(sa.String(320))
    reason: so.Mapped[str] = so.mapped_column(sa.Text)


class AuditEvent(Model):
    """A change an admin (or the command line) made to a user: created, disabled, enabled,
    password reset, API token issued or revoked, role or budget changed (radar_app.audit).
    Written in the transaction that makes the change. What people do to jobs is in
    job_transitions already; the audit page reads both."""

    __tablename__ = "audit_events"
    # The audit page lists them newest first, a keyset page at a time.
    __table_args__ = (sa.Index("ix_audit_events_created", "created_at", "id"),)

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    created_at: so.Mapped[datetime] = so.mapped_column(UTCDateTime, default=utcnow)
    # A user's email, or "cli" for the command line.
    actor: so.Mapped[str] = so.mapped_column(sa.String(320))
    action: so.Mapped[str] = so.mapped_column(sa.String(32))
    target_user_id: so.Mapped[int | None] = so.mapped_column(
        sa.ForeignKey("users.id", ondelete="SET NULL")
    )
    # Kept as text: the row still says who it was about once the user is deleted.
    target_email: so.Mapped[str | None] = so.mapped_column(sa.String(254))
    # What changed, for a person to read; never a password or a token.
    detail: so.Mapped[str] = so.mapped_column(sa.Text)

    target: so.Mapped[User | None] = so.relationship()


class _LeadColumns:
    """One Property column per stored lead field of radar_app.leads, so the table follows
    the lead schema. The RadarID is declared on Property itself: queries name it."""


for _lead_field in leads.STORED_FIELDS:
    if not _lead_field.identifies:
        setattr(_LeadColumns, _lead_field.name, so.mapped_column(_lead_field.sql_type))


class Property(_LeadColumns, Model):
    """One PropertyRadar record per RadarID, shared by every job that found it.

    The lead columns come from radar_app.leads (types and why text is unbounded there).
    ``raw`` keeps the record exactly as bought.
    """

    __tablename__ = "properties"

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    radar_id: so.Mapped[str] = so.mapped_column(leads.RADAR_ID.sql_type, unique=True)
    # sort_order 1: after the lead columns (which come from the base class), the order
    # the migrations built the table in.
    raw: so.Mapped[dict[str, Any]] = so.mapped_column(RecordJSON, sort_order=1)
    first_seen_at: so.Mapped[datetime] = so.mapped_column(UTCDateTime, default=utcnow, sort_order=1)
    last_seen_at: so.Mapped[datetime] = so.mapped_column(UTCDateTime, default=utcnow, sort_order=1)


def raw_field(field: str) -> ColumnElement[Any]:
    """A field of the stored record as SQL reads it (the JSON value, decoded on the way
    out): what the CSV writes for fields that have no column."""
    return _RawField(Property.__table__.c.raw, field)


def lead_column(name: str) -> so.InstrumentedAttribute[Any]:
    """A Property lead column by name: they are set from radar_app.leads at import, so a
    type checker cannot see them as attributes."""
    column: so.InstrumentedAttribute[Any] = getattr(Property, name)
    return column


class _Bytewise(ColumnElement[str]):
    """Text compared byte by byte: PostgreSQL's "C" collation, so a prefix range holds
    exactly the strings with that prefix and the index serves it (SQLite compares bytes
    already)."""

    inherit_cache = True
    # What SQLAlchemy walks: the cache key, and the table an Index on it belongs to.
    _traverse_internals = [("inner", InternalTraversal.dp_clauseelement)]

    def __init__(self, inner: ColumnElement[Any]) -> None:
        self.inner = inner
        self.type = sa.Text()


@compiles(_Bytewise)
def _bytewise_default(element: _Bytewise, compiler: Any, **kw: Any) -> str:
    return str(compiler.process(element.inner, **kw))


@compiles(_Bytewise, "postgresql")
def _bytewise_postgresql(element: _Bytewise, compiler: Any, **kw: Any) -> str:
    return f'({compiler.process(element.inner, **kw)}) COLLATE "C"'


def _folded(column: Any) -> ColumnElement[str]:
    """Lower-cased text, '' for none: what the leads browser's prefix search and A-Z
    orders read. Literals, not parameters, so a query's expression matches its index."""
    return _Bytewise(sa.func.lower(sa.func.coalesce(column, sa.literal_column("''"))))


def _or_minus_one(column: Any) -> ColumnElement[Any]:
    """A number with unknown as -1: below every real value, and never a NULL in a
    keyset cursor."""
    return sa.func.coalesce(column, sa.literal_column("-1"))


class LeadKeys:
    """The leads browser's sort keys (radar_app.leadsearch), each with its index below."""

    owner = _folded(lead_column("owner_name"))
    address = _folded(lead_column("address"))
    value = _or_minus_one(lead_column("avm"))
    equity = _or_minus_one(lead_column("equity_percent"))


# The leads browser's indexes (migration 0017): one per order, and one per equality
# filter with the default order (last seen), whose first rows are then the page.
LEAD_INDEXES: tuple[sa.Index, ...] = tuple(
    # The id last: pages are ordered by (key, id), and PostgreSQL reads that order
    # from an index only if the index holds it (SQLite's rowid is in every index).
    sa.Index(name, *columns, Property.id)
    for name, *columns in (
        ("ix_properties_last_seen", Property.last_seen_at),
        ("ix_properties_value", LeadKeys.value),
        ("ix_properties_equity", LeadKeys.equity),
        ("ix_properties_owner", LeadKeys.owner),
        ("ix_properties_address", LeadKeys.address),
        ("ix_properties_state_seen", lead_column("state"), Property.last_seen_at),
        ("ix_properties_county_seen", lead_column("county"), Property.last_seen_at),
        ("ix_properties_city_seen", lead_column("city"), Property.last_seen_at),
        ("ix_properties_zip_seen", lead_column("zip_code"), Property.last_seen_at),
        ("ix_properties_foreclosure_seen", lead_column("in_foreclosure"), Property.last_seen_at),
        # Pre-foreclosures with the most equity, the investor's classic: equity and
        # foreclosure seldom go together, so neither index alone finds them quickly.
        ("ix_properties_foreclosure_equity", lead_column("in_foreclosure"), LeadKeys.equity),
    )
)

# The import's own tables (job_properties, job_snapshot_items, purchase_claims) have no
# foreign keys. PostgreSQL checks a foreign key per row inserted, locking the parent
# row, and these take a row per record: the checks were about a fifth of the server's
# work per chunk (dropping them: 6,770 -> 7,980 records/s, three interleaved runs of
# 20,000 at 0 ms). Their ids come from rows the same transaction reads (the job the run
# owns, the properties it has just upserted), properties are never deleted, and the
# only job ever deleted is one that was never queued (batches.py), which has none.


class JobProperty(Model):
    """Which job brought which property, in the order the search returned them."""

    __tablename__ = "job_properties"
    __table_args__ = (
        sa.Index("ix_job_properties_job_position", "batch_job_id", "position"),
        sa.Index("ix_job_properties_property", "property_id"),
    )

    batch_job_id: so.Mapped[int] = so.mapped_column(primary_key=True)  # no foreign keys:
    property_id: so.Mapped[int] = so.mapped_column(primary_key=True)  # see above
    # Offset of the record in the search (Start + index on its page).
    position: so.Mapped[int]


class SnapshotItem(Model):
    """One RadarID of a job's free snapshot, at its position in the search."""

    __tablename__ = "job_snapshot_items"
    __table_args__ = (
        sa.UniqueConstraint("batch_job_id", "radar_id", name="uq_job_snapshot_items_job_radar"),
        # No index on `stored`: the planner reads the next free rows from where it has got
        # to, through the primary key, and marking rows stored then changes no indexed
        # column (migration 0011).
    )

    batch_job_id: so.Mapped[int] = so.mapped_column(primary_key=True)  # no foreign key
    position: so.Mapped[int] = so.mapped_column(primary_key=True)
    radar_id: so.Mapped[str] = so.mapped_column(sa.String(32))
    # Its chunk is stored (bought, reused or found vanished): the per-chunk checkpoint.
    # Chunks finish out of order, so one cursor cannot say what is left to buy.
    stored: so.Mapped[bool] = so.mapped_column(default=False, server_default=sa.false())
    # What became of it, once stored: a radar_app.outcomes.Outcome code (None before).
    outcome: so.Mapped[int | None] = so.mapped_column(sa.SmallInteger)


class LedgerEntry(Model):
    """A Purchase=1 request: what it was billed, or that it may have been billed."""

    __tablename__ = "purchase_ledger"
    __table_args__ = (
        sa.Index("ix_purchase_ledger_job", "batch_job_id", "id"),
        sa.Index("ix_purchase_ledger_user_month", "user_id", "created_at"),
        # The whole system's purchases by time (the admin's activity charts).
        sa.Index("ix_purchase_ledger_created", "created_at"),
    )

    BILLED = "billed"
    POSSIBLY_BILLED = "possibly_billed"

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    batch_job_id: so.Mapped[int] = so.mapped_column(
        sa.ForeignKey("batch_jobs.id", ondelete="CASCADE")
    )
    user_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"))
    created_at: so.Mapped[datetime] = so.mapped_column(UTCDateTime, default=utcnow)
    page: so.Mapped[int | None]
    outcome: so.Mapped[str] = so.mapped_column(sa.String(16))
    requested: so.Mapped[int]
    # What the API said it billed (None when the response was lost).
    result_count: so.Mapped[int | None]
    total_cost: so.Mapped[float | None]
    request_id: so.Mapped[str | None] = so.mapped_column(sa.String(64))
    # Ours, sent as X-Client-Request-Id: which request of ours the row stands for.
    client_request_id: so.Mapped[str | None] = so.mapped_column(sa.String(36))
    note: so.Mapped[str | None] = so.mapped_column(sa.String(300))


class JournaledPurchase(Model):
    """A Purchase=1 request of a chunk, written before it is sent, its response body written
    the moment it arrives (before anything is parsed or stored), and deleted in the
    transaction that stores the chunk. After a crash, a row with a response is stored from
    here, never bought again; a row without one may have been billed (see journal.py)."""

    __tablename__ = "purchase_journal"
    __table_args__ = (sa.Index("ix_purchase_journal_job", "batch_job_id", "id"),)

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    batch_job_id: so.Mapped[int] = so.mapped_column(
        sa.ForeignKey("batch_jobs.id", ondelete="CASCADE")
    )
    chunk: so.Mapped[int]
    radar_ids: so.Mapped[list[str]] = so.mapped_column(sa.JSON)
    sent_at: so.Mapped[datetime] = so.mapped_column(UTCDateTime, default=utcnow)
    received_at: so.Mapped[datetime | None] = so.mapped_column(UTCDateTime)
    response: so.Mapped[str | None] = so.mapped_column(sa.Text)
    request_id: so.Mapped[str | None] = so.mapped_column(sa.String(64))
    client_request_id: so.Mapped[str | None] = so.mapped_column(sa.String(36))


# PostgreSQL storage settings of the import's hot tables (migration 0009 applies them to
# an existing database):
# - Response bodies stored as they are: compressing a 250 KB body cost 4.5 ms a purchase
#   against 1.1 ms, and the rows live only until their chunk is stored.
# - Properties pages keep room for a new version of their rows: a record bought again
#   (refresh, expired freshness) is then updated in place (a HOT update, 72% of them
#   measured) instead of adding an entry to both indexes; three re-buys of the same
#   20,000 records in a row took 2.8-3.0 s each, against 3.1-3.6 s and growing.
# - Snapshot rows likewise, when their chunk is marked stored (migration 0011).
POSTGRESQL_STORAGE = {
    JournaledPurchase.__table__: "ALTER TABLE purchase_journal ALTER COLUMN response "
    "SET STORAGE EXTERNAL",
    Property.__table__: "ALTER TABLE properties SET (fillfactor = 70)",
    SnapshotItem.__table__: "ALTER TABLE job_snapshot_items SET (fillfactor = 70)",
}
for _table, _statement in POSTGRESQL_STORAGE.items():
    sa.event.listen(_table, "after_create", sa.DDL(_statement).execute_if(dialect="postgresql"))
del _table, _statement  # the loop's names are not part of the module


class PurchaseClaim(Model):
    """A RadarID some job is buying right now. Two jobs never buy the same record at once:
    a job claims what it is about to buy (one INSERT ... ON CONFLICT that renews its own
    claims and skips other jobs', committed before the purchase is sent), and a job that
    finds a RadarID claimed by another active job waits until it is stored and then reuses
    it. The claim is deleted in the transaction that stores the record (see claims.py).
    Found by RadarID only (migration 0009 says why there is no index on the job)."""

    __tablename__ = "purchase_claims"

    radar_id: so.Mapped[str] = so.mapped_column(sa.String(32), primary_key=True)
    batch_job_id: so.Mapped[int]  # no foreign key (see JobProperty)
    claimed_at: so.Mapped[datetime] = so.mapped_column(UTCDateTime, default=utcnow)
