"""The admin audit trail: who did what to whom, newest first.

Two sources, one list. What people do to jobs (cancel, retry, requeue, mark failed) is
already a row of job_transitions, with its actor and reason (radar_app.jobstate), so it
is read from there, never copied. What admins and the command line do to users (created,
disabled, password reset, API token issued, role or budget changed) is an AuditEvent,
written by record() in the transaction that makes the change.

No Flask: the admin pages and the CLI call it with their session.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
import sqlalchemy.orm as so

from radar_app.jobstate import RECOVERY, SYSTEM, WORKER, Event, admin_actor
from radar_app.models import AuditEvent, BatchJob, DbSession, JobTransition, User

# The actor of a change made on the command line (`flask users ...`).
CLI = "cli"
# Actors that are not a person; their job events are shown only when asked for.
AUTOMATIC = (WORKER, RECOVERY, SYSTEM)


class Action(enum.StrEnum):
    """What an AuditEvent records."""

    USER_CREATED = "user_created"
    USER_DISABLED = "user_disabled"
    USER_ENABLED = "user_enabled"
    PASSWORD_RESET = "password_reset"
    TOKEN_ISSUED = "token_issued"
    TOKEN_REVOKED = "token_revoked"
    ROLE_CHANGED = "role_changed"
    BUDGET_CHANGED = "budget_changed"


def record(
    session: DbSession, actor: str, action: Action, target: User | None, detail: str
) -> AuditEvent:
    """Add an audit row to the session's transaction: it is committed with the change it
    describes, or not at all. `detail` says what changed; never a password or a token."""
    event = AuditEvent(
        actor=actor[:320],
        action=action,
        target=target,
        target_email=target.email if target is not None else None,
        detail=detail,
    )
    session.add(event)
    return event


# ----------------------------------------------------------------------- the audit page


@dataclass(frozen=True)
class Kind:
    label: str
    job_events: frozenset[str] = frozenset()
    actions: frozenset[str] = frozenset()


# The audit page's kind filter, in the order its menu shows them.
KINDS: dict[str, Kind] = {
    "cancel": Kind("Cancel", job_events=frozenset({Event.REQUEST_CANCEL, Event.CANCEL_QUEUED})),
    "retry": Kind("Retry", job_events=frozenset({Event.RETRY})),
    "requeue": Kind("Requeue", job_events=frozenset({Event.REQUEUE})),
    "mark_failed": Kind("Mark failed", job_events=frozenset({Event.MARK_FAILED})),
    "budget": Kind("Budget", actions=frozenset({Action.BUDGET_CHANGED})),
    "user": Kind("User", actions=frozenset(Action) - {Action.BUDGET_CHANGED}),
}
JOB_EVENTS: frozenset[str] = frozenset[str]().union(*(kind.job_events for kind in KINDS.values()))

# What each row's action is called on the page.
LABELS: dict[str, str] = {
    Event.REQUEST_CANCEL: "Cancel requested",
    Event.CANCEL_QUEUED: "Cancelled",
    Event.RETRY: "Retried",
    Event.REQUEUE: "Requeued",
    Event.MARK_FAILED: "Marked failed",
    Action.USER_CREATED: "User created",
    Action.USER_DISABLED: "User disabled",
    Action.USER_ENABLED: "User enabled",
    Action.PASSWORD_RESET: "Password reset",
    Action.TOKEN_ISSUED: "API token issued",
    Action.TOKEN_REVOKED: "API token revoked",
    Action.ROLE_CHANGED: "Role changed",
    Action.BUDGET_CHANGED: "Budget changed",
}

JOB, USER = "j", "u"  # a row's source; the cursor's tie-break between equal times
MAX_ACTOR_LENGTH = 320


class InvalidAuditQuery(ValueError):
    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(errors.values()))
        self.errors = errors


@dataclass(frozen=True)
class Cursor:
    """Where a page ends: its last row's time, source and id (rows sort by all three)."""

    at: datetime
    source: str
    id: int

    _EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
    _SHAPE = re.compile(r"([0-9]{1,17})-([ju])-([0-9]{1,10})")
    # The ids are database integers: a larger one would be an error on PostgreSQL.
    _MAX_ID = 2**31 - 1

    def encode(self) -> str:
        micros = (self.at - self._EPOCH) // timedelta(microseconds=1)
        return f"{micros}-{self.source}-{self.id}"

    @classmethod
    def decode(cls, text: str) -> Cursor:
        match = cls._SHAPE.fullmatch(text)
        if match is None or int(match[3]) > cls._MAX_ID:
            raise ValueError(text)
        # At most 17 digits of microseconds: before the year 5000, within datetime's range.
        return cls(cls._EPOCH + timedelta(microseconds=int(match[1])), match[2], int(match[3]))


@dataclass(frozen=True)
class AuditQuery:
    actor: str = ""  # an email (matching "admin:<email>" too) or "cli"; "" for anyone
    kind: str = ""  # a key of KINDS; "" for every kind
    automatic: bool = False  # include the job events of the worker, recovery and system
    after: Cursor | None = None
    per_page: int = 50

    def args(self) -> dict[str, str]:
        """The filters as URL parameters (without the cursor): links keep them."""
        args = {"actor": self.actor, "kind": self.kind, "automatic": "1" if self.automatic else ""}
        return {name: value for name, value in args.items() if value}


def parse_query(args: Any, per_page: int = 50) -> AuditQuery:
    """The audit page's filters from its URL; InvalidAuditQuery says what is wrong."""
    errors = {}
    actor = (args.get("actor") or "").strip().lower()
    if len(actor) > MAX_ACTOR_LENGTH or any(ord(c) < 32 or ord(c) == 127 for c in actor):
        errors["actor"] = "Enter an email address, or cli for the command line."
    kind = args.get("kind") or ""
    if kind and kind not in KINDS:
        errors["kind"] = "Pick one of the kinds in the list."
    after = None
    if cursor := (args.get("after") or "").strip():
        try:
            after = Cursor.decode(cursor)
        except ValueError:
            errors["after"] = "Not a page of the audit list; start from the first page."
    if errors:
        raise InvalidAuditQuery(errors)
    automatic = (args.get("automatic") or "") not in ("", "0")
    return AuditQuery(actor, kind, automatic, after, per_page)


@dataclass(frozen=True)
class Entry:
    """One row of the audit page."""

    at: datetime
    source: str
    id: int
    actor: str
    action: str
    detail: str
    # A job row: the job's public id and name (the page links to it).
    job_id: str | None = None
    job_name: str | None = None
    # A user row: whom it was about.
    target_user_id: int | None = None
    target_email: str | None = None

    @property
    def label(self) -> str:
        return LABELS.get(self.action, self.action)

    def cursor(self) -> Cursor:
        return Cursor(self.at, self.source, self.id)


@dataclass(frozen=True)
class AuditPage:
    entries: list[Entry]
    next_cursor: str | None


def page(session: DbSession, query: AuditQuery) -> AuditPage:
    """One page of the audit list, newest first, from the query's cursor.

    Each source is read newest first up to a page and one row (each from its time index),
    the two are merged here: an ORDER BY over a UNION would sort both whole."""
    kind = KINDS.get(query.kind)
    job_events = kind.job_events if kind else JOB_EVENTS
    actions = kind.actions if kind else frozenset(Action)
    limit = query.per_page + 1
    entries: list[Entry] = []
    if job_events:
        entries += _job_entries(session, query, job_events, limit)
    if actions:
        entries += _user_entries(session, query, actions, limit)
    entries.sort(key=lambda e: (e.at, e.source, e.id), reverse=True)
    shown = entries[: query.per_page]
    more = len(entries) > query.per_page
    return AuditPage(shown, shown[-1].cursor().encode() if more and shown else None)


def _actors(actor: str) -> list[str]:
    # An admin's actions on other users' jobs are recorded as "admin:<email>".
    return [actor, admin_actor(actor)]


def _before(
    created_at: so.QueryableAttribute[datetime],
    row_id: so.QueryableAttribute[int],
    source: str,
    after: Cursor,
) -> sa.ColumnElement[bool]:
    """Rows of `source` that sort after the cursor, newest first by (time, source, id)."""
    if source < after.source:
        return created_at <= after.at
    if source > after.source:
        return created_at < after.at
    return sa.or_(created_at < after.at, sa.and_(created_at == after.at, row_id < after.id))


def _job_entries(
    session: DbSession, query: AuditQuery, events: Iterable[str], limit: int
) -> list[Entry]:
    t = JobTransition
    select = (
        sa.select(t, BatchJob.job_id, BatchJob.name)
        .join(BatchJob, BatchJob.id == t.batch_job_id)
        .where(t.event.in_(sorted(events)))
        .order_by(t.created_at.desc(), t.id.desc())
        .limit(limit)
    )
    if not query.automatic:
        select = select.where(t.actor.not_in(AUTOMATIC))
    if query.actor:
        select = select.where(t.actor.in_(_actors(query.actor)))
    if query.after is not None:
        select = select.where(_before(t.created_at, t.id, JOB, query.after))
    return [
        Entry(row.created_at, JOB, row.id, row.actor, row.event, row.reason, job_id, name)
        for row, job_id, name in session.execute(select).tuples()
    ]


def _user_entries(
    session: DbSession, query: AuditQuery, actions: Iterable[str], limit: int
) -> list[Entry]:
    a = AuditEvent
    select = (
        sa.select(a)
        .where(a.action.in_(sorted(actions)))
        .order_by(a.created_at.desc(), a.id.desc())
        .limit(limit)
    )
    if query.actor:
        select = select.where(a.actor.in_(_actors(query.actor)))
    if query.after is not None:
        select = select.where(_before(a.created_at, a.id, USER, query.after))
    return [
        Entry(
            row.created_at,
            USER,
            row.id,
            row.actor,
            row.action,
            row.detail,
            target_user_id=row.target_user_id,
            target_email=row.target_email,
        )
        for row in session.scalars(select)
    ]


def known_actors(session: DbSession) -> list[str]:
    """What the actor filter suggests: every user's email, and the command line."""
    return [*session.scalars(sa.select(User.email).order_by(User.email)), CLI]
