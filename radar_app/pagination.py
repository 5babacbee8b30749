"""Page/per_page query arguments and one page of a query, shared by the API and the pages."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from flask_sqlalchemy.pagination import Pagination

from radar_app.extensions import db

DEFAULT_PER_PAGE = 25
MAX_PER_PAGE = 100
# Keeps the OFFSET, (page - 1) * per_page, inside the 64-bit integer SQLite and PostgreSQL
# take: a larger page is a 400, not an OverflowError / "bigint out of range" 500.
MAX_PAGE = 1_000_000_000


@dataclass(frozen=True)
class PageArgs:
    page: int
    per_page: int


def page_args(args: Mapping[str, str], default_per_page: int = DEFAULT_PER_PAGE) -> PageArgs:
    """Parse ?page=&per_page=; raises ValueError with a readable message."""
    try:
        page = int(args.get("page", 1))
        per_page = int(args.get("per_page", default_per_page))
    except (TypeError, ValueError):
        raise ValueError("page and per_page must be whole numbers") from None
    if not 1 <= page <= MAX_PAGE:
        raise ValueError(f"page must be between 1 and {MAX_PAGE:,}")
    if not 1 <= per_page <= MAX_PER_PAGE:
        raise ValueError(f"per_page must be between 1 and {MAX_PER_PAGE}")
    return PageArgs(page, per_page)


def paginate(select: sa.Select[Any], paging: PageArgs, *, total: int | None = None) -> Pagination:
    """One page of the rows ``select`` returns, through Flask-SQLAlchemy's ``db.paginate``.

    The arguments come from :func:`page_args`, which has bounded them (db.paginate's own
    parsing would answer 404, and does not bound the page). Pass ``total`` when it is
    already known (kept on the job, or counted with other figures) to skip the COUNT query.
    """
    pagination = db.paginate(
        select,
        page=paging.page,
        per_page=paging.per_page,
        max_per_page=None,
        error_out=False,
        count=total is None,
    )
    if total is not None:
        pagination.total = total
    return pagination
