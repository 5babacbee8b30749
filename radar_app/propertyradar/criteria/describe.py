"""Human summaries of a search, for the lists and pages that show a job's criteria."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import CriteriaError
from .catalogue import (
    BOOLEAN,
    CRITERIA,
    DATE,
    DATE_PRESETS,
    FROM_TO_RE,
    PREFIX,
    PROPERTY_TYPE,
    PROPERTY_TYPES,
    RANGE,
)
from .text import printable, text_problem
from .validate import validate_criteria


def _fmt_number(v: object) -> str:
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    if isinstance(v, (int, float)) and not isinstance(v, bool) and abs(v) >= 10000:
        return f"{v:,}"
    return str(v)


def _fmt_range(pair: object) -> str:
    if not isinstance(pair, (list, tuple)) or len(pair) != 2:
        return str(pair)
    lo, hi = pair
    if hi is None:
        return f"≥ {_fmt_number(lo)}"
    if lo is None:
        return f"≤ {_fmt_number(hi)}"
    return f"{_fmt_number(lo)}–{_fmt_number(hi)}"


def _fmt_date(v: object) -> str:
    text = str(v)
    m = FROM_TO_RE.match(text)
    if not m:
        return text if text in DATE_PRESETS else f"on {text}"
    a, b = m.group("a"), m.group("b")
    if a and b:
        return f"{a}–{b}"
    return f"after {a}" if a else f"before {b}"


def _join(values: list[str], limit: int = 3) -> str:
    shown = ", ".join(values[:limit])
    return shown + (f" +{len(values) - limit} more" if len(values) > limit else "")


def _describe_item(item: Mapping[str, Any]) -> str:
    name = item.get("name")
    value = item.get("value")
    values = value if isinstance(value, list) else [value]
    spec = CRITERIA.get(name) if isinstance(name, str) else None
    if spec is None:
        return f"{name} {_join([str(v) for v in values])}"
    if spec.kind == BOOLEAN:
        flags = {v for v in values if v in (0, 1)}
        if flags == {1}:
            return spec.true_label or spec.label
        if flags == {0}:
            return spec.false_label or f"not {spec.label}"
        return f"{spec.label}: any"
    if spec.kind == RANGE:
        return f"{spec.label} " + " or ".join(_fmt_range(v) for v in values)
    if spec.kind == DATE:
        return f"{spec.label} " + " or ".join(_fmt_date(v) for v in values)
    if spec.kind == PREFIX:
        return f"{spec.label} starts with {_join([str(v) for v in values])}"
    if spec.kind == PROPERTY_TYPE:
        codes = [
            code
            for v in values
            if isinstance(v, Mapping) and isinstance(v.get("value"), list)
            for code in v["value"]
        ]
        return _join([PROPERTY_TYPES.get(str(c), str(c)) for c in codes], limit=4)
    return f"{spec.label} {_join([str(v) for v in values])}"


def describe_criteria(criteria: object) -> str:
    """A short human summary for UI lists, e.g.
    ``"State CA · County 41051 · Single Family · Equity % ≥ 40 · Absentee"``.

    Never raises: stored searches are shown even if they no longer validate (the
    catalogue may have changed), described as well as possible.
    """
    try:
        items: list[Any] = validate_criteria(criteria)
    except CriteriaError:
        if not isinstance(criteria, list):
            return "(no criteria)"
        items = criteria
    parts = [_describe_item(item) for item in items if isinstance(item, Mapping)]
    text = " · ".join(parts) if parts else "(no criteria)"
    # A search stored before values were checked may hold a lone surrogate, which no page
    # can encode: show it escaped rather than fail every page that lists the job.
    return text if text_problem(text) is None else printable(text, limit=len(text) * 10)
