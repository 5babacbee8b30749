"""Local validation of a search: every problem at once, keyed by field path.

Why validate locally: the API answers a wrong criterion name or value shape with a
terse 400 ("Unexpected Criterion"), one problem at a time, and each round trip costs
time. Validating here lets the UI show *every* problem at once, next to the right
field, before any request is made. Normalizing (upper-casing states, ZipFive as int,
County as str...) also makes two equivalent searches compare equal.
"""

from __future__ import annotations

import difflib
import json
import math
import re
from collections.abc import Callable, Mapping
from datetime import date
from functools import cache
from typing import Any

from ..errors import CriteriaError
from .catalogue import (
    BOOLEAN,
    CRITERIA,
    DATE,
    DATE_PRESETS,
    FORECLOSURE_STAGES,
    FROM_TO_RE,
    LIST,
    LISTING_STATUSES,
    MAX_CRITERIA,
    MAX_RANGE_NUMBER,
    MAX_VALUE_LENGTH,
    MULTI,
    OWNERSHIP_TYPES,
    PREFIX,
    PROPERTY_TYPE,
    PROPERTY_TYPES,
    RANGE,
    CriterionSpec,
    max_values,
)
from .text import printable, text_problem

# The canonical spelling of a preset, stage or name, whatever the case a user typed.
_PRESET_BY_LOWER = {p.lower(): p for p in DATE_PRESETS}
_STAGE_BY_LOWER = {s.lower(): s for s in FORECLOSURE_STAGES}
_NAME_BY_LOWER = {name.lower(): name for name in CRITERIA}

# Names users (and other clients) often try that the API rejects, with the right one.
_KNOWN_MISTAKES = {
    "sitecity": "City",
    "sitestate": "State",
    "siteaddress": "Address",
    "sitezip": "ZipFive",
    "zip": "ZipFive",
    "zipcode": "ZipFive",
    "propertytype": "PropertyType",
    "ptype": "PropertyType",
    "fips": "County",
}

_OPTIONAL_ITEM_KEYS = frozenset({"menuLabels", "chipLabel"})


class _Invalid(Exception):
    """Internal: one value problem; the message goes into CriteriaError.errors."""


# --------------------------------------------------------------------------- values


def _show(v: object) -> str:
    """Render a user's value as JSON (null, not None) for error messages, cut to length."""
    try:
        text = json.dumps(v, default=str)
    except (TypeError, ValueError, RecursionError):  # too deep, or an int over 4300 digits
        text = "(a value too large or too deeply nested to show)"
    return printable(text)


def _is_number(v: object) -> bool:
    if isinstance(v, bool):
        return False
    # Not math.isfinite(int): it converts to float, which overflows past ~1e308.
    return isinstance(v, int) or (isinstance(v, float) and math.isfinite(v))


# ASCII digits only: str.isdigit() and \\d also match "²" and "٣", which int() rejects or
# reads as a number nobody typed.
_NUMERIC_RE = re.compile(r"^-?[0-9]+(\.[0-9]+)?$")


def _number(v: object) -> int | float:
    """A finite number of sane size, or a plain numeric string (forms send strings)."""
    if isinstance(v, str) and _NUMERIC_RE.match(v.strip()) and len(v.strip()) <= 40:
        text = v.strip()
        number: int | float = float(text) if "." in text else int(text)
    elif _is_number(v):
        number = v  # type: ignore[assignment]
    else:
        raise _Invalid
    if abs(number) > MAX_RANGE_NUMBER:
        raise _Invalid(
            f"values must be between {-MAX_RANGE_NUMBER:,} and {MAX_RANGE_NUMBER:,} "
            f"(got {_show(v)})"
        )
    return number


def _text(v: object) -> str:
    if not isinstance(v, str) or not v.strip():
        raise _Invalid
    problem = text_problem(v)
    if problem:
        raise _Invalid(f"values {problem} (got {_show(v)})")
    text = v.strip()
    if len(text) > MAX_VALUE_LENGTH:
        raise _Invalid(f"values are at most {MAX_VALUE_LENGTH} characters (got {len(text):,})")
    return text


@cache
def _state_codes() -> frozenset[str]:
    # The one state table is coerce.US_STATES (it also reads states in API results);
    # coerce imports this package, so the table is read on first use, not at import.
    from ..coerce import US_STATES

    return frozenset(US_STATES.values())


def _state(v: object) -> str:
    text = _text(v).upper()
    if text in _state_codes():
        return text
    raise _Invalid


def _closed_set(members: list[str]) -> Callable[[object], str]:
    """A converter to the canonical spelling of a member, whatever the case."""
    by_lower = {m.lower(): m for m in members}

    def convert(v: object) -> str:
        try:
            return by_lower[" ".join(_text(v).split()).lower()]
        except KeyError:
            raise _Invalid(f"expects one of {', '.join(members)} (got {_show(v)})") from None

    return convert


def _county(v: object) -> str:
    if isinstance(v, int) and not isinstance(v, bool) and 1000 <= v <= 99999:
        return str(v)
    if isinstance(v, str) and re.fullmatch(r"[0-9]{4,5}", v.strip()):
        return v.strip()
    raise _Invalid


def _zip(v: object) -> int:
    if isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 99999:
        return v
    if isinstance(v, str) and re.fullmatch(r"[0-9]{5}", v.strip()):
        return int(v.strip())
    raise _Invalid


def _radar_id(v: object) -> str:
    text = _text(v)
    if text.isascii() and text.isalnum():
        return text
    raise _Invalid


def _stage(v: object) -> str:
    text = _text(v)
    try:
        return _STAGE_BY_LOWER[text.lower()]
    except KeyError:
        raise _Invalid from None


_MULTI_ITEM: dict[str, Callable[[object], Any]] = {
    "State": _state,
    "County": _county,
    "ZipFive": _zip,
    "RadarID": _radar_id,
    "ForeclosureStage": _stage,
    "OwnershipType": _closed_set(OWNERSHIP_TYPES),
    "ListingStatus": _closed_set(LISTING_STATUSES),
}


def _flag(v: object) -> int:
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, int) and v in (0, 1):
        return v
    if isinstance(v, str) and v.strip() in ("0", "1"):
        return int(v.strip())
    raise _Invalid


_DATE_RE = re.compile(r"^([0-9]{1,2})/([0-9]{1,2})/([0-9]{4})$")


def _parse_mdy(text: str) -> date:
    m = _DATE_RE.match(text)
    if not m:
        raise _Invalid
    month, day, year = (int(g) for g in m.groups())
    try:
        return date(year, month, day)
    except ValueError:
        raise _Invalid from None


def _mdy(d: date) -> str:
    return f"{d.month}/{d.day}/{d.year}"


def _relative_date(v: object) -> str:
    """Normalize a relative-date value; see notes section 2 for the syntax."""
    text = " ".join(_text(v).split())
    preset = _PRESET_BY_LOWER.get(text.lower())
    if preset:
        return preset
    m = FROM_TO_RE.match(text)
    if m:
        a, b = m.group("a"), m.group("b")
        if not a and not b:
            raise _Invalid
        start = _parse_mdy(a) if a else None
        end = _parse_mdy(b) if b else None
        if start and end and start > end:
            raise _Invalid
        out = "from:" + (f" {_mdy(start)}" if start else "") + " to:"
        return out + (f" {_mdy(end)}" if end else "")
    return _mdy(_parse_mdy(text))


def _range_pair(v: object) -> list[int | float | None]:
    if not isinstance(v, (list, tuple)) or len(v) != 2:
        raise _Invalid
    lo, hi = (None if x is None else _number(x) for x in v)
    if lo is None and hi is None:
        raise _Invalid(f"range {_show(v)} needs a min or a max (null marks an open end)")
    if lo is not None and hi is not None and lo > hi:
        raise _Invalid(f"range {_show(v)} has min greater than max")
    return [lo, hi]


def _list_id(v: object) -> int:
    if isinstance(v, int) and not isinstance(v, bool) and 0 < v < 10**18:
        return v
    if isinstance(v, str) and re.fullmatch(r"[0-9]{1,18}", v.strip()) and int(v.strip()) > 0:
        return int(v.strip())
    raise _Invalid


def _ptype_items(value: list[Any], spec: CriterionSpec) -> list[dict[str, Any]]:
    out = []
    for item in value:
        if (
            not isinstance(item, Mapping)
            or set(item) != {"name", "value"}
            or item["name"] != "PType"
            or not isinstance(item["value"], list)
            or not item["value"]
        ):
            raise _Invalid(spec.hint)
        _check_count(spec, item["value"], len(PROPERTY_TYPES))
        codes = []
        for code in item["value"]:
            norm = code.strip().upper() if isinstance(code, str) else None
            if norm not in PROPERTY_TYPES:
                raise _Invalid(
                    f"Unknown property type {_show(code)}; use one of " + ", ".join(PROPERTY_TYPES)
                )
            codes.append(norm)
        out.append({"name": "PType", "value": codes})
    return out


def _check_count(spec: CriterionSpec, values: list[Any], limit: int) -> None:
    if len(values) > limit:
        raise _Invalid(
            f"{spec.name} takes at most {limit:,} values (got {len(values):,}); "
            "split the search into several jobs"
        )


def _validate_value(spec: CriterionSpec, value: object) -> list[Any]:
    """Return the normalized value list or raise _Invalid with a specific message."""
    if not isinstance(value, list) or not value:
        raise _Invalid(f"{spec.hint} (value must be a non-empty list)")
    _check_count(spec, value, max_values(spec))
    if spec.kind == PROPERTY_TYPE:
        return _ptype_items(value, spec)
    convert: Callable[[object], Any]
    if spec.kind == MULTI:
        convert = _MULTI_ITEM.get(spec.name, _text)
    elif spec.kind == PREFIX:
        convert = _text
    elif spec.kind == BOOLEAN:
        convert = _flag
    elif spec.kind == RANGE:
        convert = _range_pair
    elif spec.kind == DATE:
        convert = _relative_date
    elif spec.kind == LIST:
        convert = _list_id
    else:  # pragma: no cover - catalogue is static
        raise _Invalid(spec.hint)
    out = []
    for item in value:
        try:
            out.append(convert(item))
        except _Invalid as exc:
            if exc.args:
                detail = f"{spec.name} {exc.args[0]}"
            elif spec.name == "ForeclosureStage":
                detail = f"Unknown foreclosure stage {_show(item)}; {spec.hint}"
            else:
                detail = f"{spec.hint} (got {_show(item)})"
            raise _Invalid(detail) from None
    return out


def suggest_name(name: str) -> str | None:
    """The closest known criterion name, for "did you mean" messages."""
    key = name.lower().replace("_", "").replace(" ", "")
    if len(key) > 64:  # no name is this long; difflib would take its time saying so
        return None
    if key in _KNOWN_MISTAKES:
        return _KNOWN_MISTAKES[key]
    if key in _NAME_BY_LOWER:
        return _NAME_BY_LOWER[key]
    stripped = re.sub(r"^(site|owner|property)", "", key)
    if stripped in _NAME_BY_LOWER:
        return _NAME_BY_LOWER[stripped]
    close = difflib.get_close_matches(key, list(_NAME_BY_LOWER), n=1, cutoff=0.6)
    return _NAME_BY_LOWER[close[0]] if close else None


def validate_criteria(criteria: object) -> list[dict[str, Any]]:
    """Validate ``criteria`` and return a normalized copy ready to send as ``Criteria``.

    Every problem is collected and raised together as :class:`CriteriaError`, keyed by
    field path, so a user fixes a search in one go instead of one 400 at a time. The
    input is never modified; UI-only keys (``menuLabels``, ``chipLabel``) are dropped.
    """
    errors: dict[str, str] = {}
    if not isinstance(criteria, list):
        raise CriteriaError({"criteria": "Criteria must be a list of {name, value} objects"})
    if not criteria:
        raise CriteriaError({"criteria": "Add at least one criterion"})
    if len(criteria) > MAX_CRITERIA:
        raise CriteriaError(
            {
                "criteria": f"At most {MAX_CRITERIA} criteria, each criterion once "
                f"(got {len(criteria):,})"
            }
        )

    out: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    for i, item in enumerate(criteria):
        path = f"criteria[{i}]"
        if not isinstance(item, Mapping):
            errors[path] = "Each criterion must be an object with 'name' and 'value'"
            continue
        keys = set(item)
        missing = {"name", "value"} - keys
        extra = keys - {"name", "value"} - _OPTIONAL_ITEM_KEYS
        if missing or extra:
            parts = []
            if missing:
                parts.append("missing " + ", ".join(f"'{k}'" for k in sorted(missing)))
            if extra:
                shown = sorted(printable(str(k)) for k in extra)
                parts.append("unexpected " + ", ".join(f"'{k}'" for k in shown[:5]))
            errors[path] = "Criterion must have exactly 'name' and 'value': " + "; ".join(parts)
            continue
        name = item["name"]
        if not isinstance(name, str) or not name.strip():
            errors[f"{path}.name"] = "Criterion name must be a non-empty string"
            continue
        spec = CRITERIA.get(name)
        if spec is None:
            msg = f"Unknown criterion '{printable(name)}'"
            suggestion = suggest_name(name)
            if suggestion:
                msg += f"; did you mean '{suggestion}'?"
            errors[f"{path}.name"] = msg
            continue
        if name in seen:
            errors[f"{path}.name"] = (
                f"Duplicate criterion '{name}' (also criteria[{seen[name]}]); "
                "put all values in one item, they are OR'd"
            )
            continue
        seen[name] = i
        try:
            value = _validate_value(spec, item["value"])
        except _Invalid as exc:
            errors[f"{path}.value"] = str(exc.args[0]) if exc.args else spec.hint
            continue
        out.append({"name": name, "value": value})

    if errors:
        raise CriteriaError(errors)
    return out
