"""The purchase ledger: a row per Purchase=1 request (billed, or possibly billed when its
response was lost), what a user bought this month, and whether a purchase fits their
monthly export budget.

Months are calendar months in UTC. Only rows the API said it billed count against the
budget; a "possibly billed" row (a lost response) is kept for the record, not counted.
No Flask here: the importer (before each purchase) and the admin pages both ask it.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from radar_app.models import DbSession, LedgerEntry, User, utcnow
from radar_app.prepared import Prepared
from radar_app.propertyradar.client import Page, RetryEvent


class BudgetExceeded(Exception):
    """Buying the next chunk would cross the owner's monthly export budget."""


def month_start(now: datetime) -> datetime:
    return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


# Prepared (see radar_app.prepared): the importer asks before every purchase.
_BOUGHT_SINCE = Prepared(
    sa.select(sa.func.coalesce(sa.func.sum(LedgerEntry.result_count), 0)).where(
        LedgerEntry.user_id == sa.bindparam("user_id"),
        LedgerEntry.outcome == LedgerEntry.BILLED,
        LedgerEntry.created_at >= sa.bindparam("since", type_=LedgerEntry.created_at.type),
    )
)
_BUDGET = Prepared(sa.select(User.monthly_export_budget).where(User.id == sa.bindparam("user_id")))


def records_bought_this_month(session: DbSession, user_id: int, now: datetime | None = None) -> int:
    """Records billed to the user since the 1st of this month (UTC), from the ledger."""
    since = month_start(now or utcnow())
    connection = session.connection(bind_arguments={"mapper": LedgerEntry})
    return int(_BOUGHT_SINCE(connection, {"user_id": user_id, "since": since}).scalar_one())


_BOUGHT_BY_JOB = Prepared(
    sa.select(sa.func.coalesce(sa.func.sum(LedgerEntry.result_count), 0)).where(
        LedgerEntry.batch_job_id == sa.bindparam("job_id"),
        LedgerEntry.outcome == LedgerEntry.BILLED,
    )
)


def check_job_cap(session: DbSession, job_id: int, cap: int, wanted: int) -> None:
    """Raise BudgetExceeded if buying `wanted` more records would take the job past its
    own cap (a scheduled run's cost cap, in records)."""
    connection = session.connection(bind_arguments={"mapper": LedgerEntry})
    used = int(_BOUGHT_BY_JOB(connection, {"job_id": job_id}).scalar_one())
    if used + wanted > cap:
        raise BudgetExceeded(
            f"This run's cost cap reached: {used:,} of at most {cap:,} records bought, and "
            f"the next chunk needs {wanted:,} more. Nothing was bought for it"
        )


def check_budget(session: DbSession, user_id: int, wanted: int) -> None:
    """Raise BudgetExceeded if buying `wanted` more records would cross the user's budget
    (no budget set: anything goes)."""
    connection = session.connection(bind_arguments={"mapper": User})
    budget = _BUDGET(connection, {"user_id": user_id}).scalar()
    if budget is None:
        return
    used = records_bought_this_month(session, user_id)
    if used + wanted > budget:
        raise BudgetExceeded(
            f"Monthly export budget reached: {used:,} of {budget:,} records bought this "
            f"month, and the next chunk needs {wanted:,} more. Nothing was bought for it; "
            "retry after the budget is raised or next month"
        )


# Built once (a chunk writes one). inline(): no RETURNING of the new id, which nothing
# reads (and which a pipelined statement could not return; see store.pipelined).
_INSERT = Prepared(
    sa.insert(LedgerEntry.__table__).inline(),
    keys=[
        "batch_job_id", "user_id", "page", "outcome", "requested", "result_count",
        "total_cost", "request_id", "client_request_id", "note",
    ],
)  # fmt: skip


def record_billed(
    session: DbSession,
    job_id: int,
    user_id: int,
    chunk_number: int,
    requested: int,
    page: Page,
    client_request_id: str | None,
) -> None:
    """Ledger row for a purchase the API answered (no commit: it is stored with the chunk,
    by a Core INSERT on the chunk's connection, not the ORM's unit of work)."""
    _INSERT(
        session.connection(bind_arguments={"mapper": LedgerEntry}),
        {
            "batch_job_id": job_id,
            "user_id": user_id,
            "page": chunk_number,
            "outcome": LedgerEntry.BILLED,
            "requested": requested,
            "result_count": page.result_count,
            "total_cost": page.total_cost,
            "request_id": page.request_id,
            "client_request_id": client_request_id,
            "note": None,
        },
    )


def record_possibly_billed(
    engine: sa.Engine,
    job_id: int,
    user_id: int,
    chunk_number: int | None,
    event: RetryEvent,
    client_request_id: str | None,
) -> None:
    """Ledger row for a purchase whose response was lost: it may have been billed.
    Written on its own connection at once, so a crash right after cannot lose it."""
    entry = {
        "batch_job_id": job_id,
        "user_id": user_id,
        "created_at": utcnow(),
        "page": chunk_number,
        "outcome": LedgerEntry.POSSIBLY_BILLED,
        "requested": event.requested,
        "result_count": None,
        "total_cost": None,
        "request_id": event.error.request_id,
        "client_request_id": client_request_id,
        "note": f"Attempt {event.attempt} failed ({event.error}); retried"[:300],
    }
    with engine.begin() as conn:
        _INSERT(conn, entry)


def record_unanswered(
    session: DbSession,
    job_id: int,
    user_id: int,
    chunk_number: int,
    requested: int,
    request_id: str | None,
    client_request_id: str | None,
    why: str,
) -> None:
    """Ledger row for a journaled purchase that went out and never got a usable response
    (the run died, or the request's last attempt was lost): it may have billed up to
    `requested` records. No commit: written with the chunk that settles it."""
    session.add(
        LedgerEntry(
            batch_job_id=job_id,
            user_id=user_id,
            page=chunk_number,
            outcome=LedgerEntry.POSSIBLY_BILLED,
            requested=requested,
            result_count=None,
            total_cost=None,
            request_id=request_id,
            client_request_id=client_request_id,
            note=why[:300],
        )
    )
