"""The purchase ledger's questions: what a user bought this month, and whether a purchase
fits their monthly export budget.

Months are calendar months in UTC. Only rows the API said it billed count against the
budget; a "possibly billed" row (a lost response) is kept for the record, not counted.
No Flask here: the importer (before each purchase) and the admin pages both ask it.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from radar_app.models import LedgerEntry, User, utcnow


class BudgetExceeded(Exception):
    """Buying the next chunk would cross the owner's monthly export budget."""


def month_start(now: datetime) -> datetime:
    return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def records_bought_this_month(session: Session, user_id: int, now: datetime | None = None) -> int:
    """Records billed to the user since the 1st of this month (UTC), from the ledger."""
    since = month_start(now or utcnow())
    return int(
        session.scalar(
            sa.select(sa.func.coalesce(sa.func.sum(LedgerEntry.result_count), 0)).where(
                LedgerEntry.user_id == user_id,
                LedgerEntry.outcome == LedgerEntry.BILLED,
                LedgerEntry.created_at >= since,
            )
        )
    )


def check_budget(session: Session, user_id: int, wanted: int) -> None:
    """Raise BudgetExceeded if buying `wanted` more records would cross the user's budget
    (no budget set: anything goes)."""
    budget = session.scalar(sa.select(User.monthly_export_budget).where(User.id == user_id))
    if budget is None:
        return
    used = records_bought_this_month(session, user_id)
    if used + wanted > budget:
        raise BudgetExceeded(
            f"Monthly export budget reached: {used:,} of {budget:,} records bought this "
            f"month, and the next chunk needs {wanted:,} more. Nothing was bought for it; "
            "retry after the budget is raised or next month"
        )
