"""The query parameters that the leads browser (leadsearch) and the Jobs search
(jobsearch) both take: free text and dates, each read the same way and described to the
OpenAPI document by the same JSON Schema.

A parser raises ValueError with the message the user sees beside the field.
"""

from __future__ import annotations

from datetime import date
from typing import Any

# Longest free-text value accepted (a search box, a city, an email): beyond it nothing
# could match.
MAX_TEXT = 200
TEXT_SCHEMA: dict[str, Any] = {"type": "string", "maxLength": MAX_TEXT, "pattern": "^[^\\x00]*$"}
DATE_SCHEMA: dict[str, Any] = {"type": "string", "format": "date"}


def text(value: str) -> str:
    """Free text, trimmed."""
    value = value.strip()
    if len(value) > MAX_TEXT:
        raise ValueError(f"at most {MAX_TEXT} characters")
    if "\x00" in value:
        raise ValueError("contains a NUL character")
    return value


def day(value: str) -> date:
    """A calendar date, YYYY-MM-DD."""
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise ValueError("a date as YYYY-MM-DD") from None
