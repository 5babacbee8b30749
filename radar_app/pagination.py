"""Page/per_page query arguments, shared by the API and the pages."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

DEFAULT_PER_PAGE = 25
MAX_PER_PAGE = 100
# Keeps the OFFSET, (page - 1) * per_page, inside the 64-bit integer SQLite and PostgreSQL
# take: a larger page is a 400, not an OverflowError / "bigint out of range" 500.
MAX_PAGE = 1_000_000_000


@dataclass(frozen=True)
class PageArgs:
    page: int
    per_page: int

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.per_page


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
