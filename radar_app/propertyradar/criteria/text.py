"""Text that can be stored and shown: why a value cannot be, and a safe way to quote it.

Used by criterion and field validation here and by the app's own form and API checks,
so that every message quoting a user's input is safe to render.
"""

from __future__ import annotations

_SHOW_LIMIT = 60


def printable(text: str, limit: int = _SHOW_LIMIT) -> str:
    """``text`` safe to quote in a message: what cannot be shown (a lone surrogate, which
    no page can even encode, NUL and other control characters) is backslash-escaped, and
    a long value is cut, so an error never carries the bad input whole or unrenderable."""
    cut = text[: limit + 1]
    safe = "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in cut)
    return safe if len(safe) <= limit else safe[: limit - 1] + "…"


def text_problem(text: str) -> str | None:
    """Why ``text`` cannot be stored or sent, or None.

    NUL: PostgreSQL cannot store it in text or JSONB, and it means nothing to
    PropertyRadar. A lone surrogate (JSON "\\udfff") is not Unicode text: no database
    driver and no page can encode it as UTF-8 (stored on SQLite, it made every page
    listing the job a 500).
    """
    if "\x00" in text:
        return "must not contain NUL characters"
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return "must be valid Unicode text (it contains a lone surrogate)"
    return None
