"""Defensive value coercion for PropertyRadar results.

The API's wire types are mixed: the spec types ``AVM``, ``Baths``, ``EquityPercent``,
``totalCost``... as *strings*, ``Beds``/``SqFt``/``ZipFive`` as ints, flags as 0/1, and
the exact formatting ("612000" or "$612,000"?) is unconfirmed (notes section 4). One odd
value must never abort an import that has already been paid for, so every function
here returns ``None`` for anything it cannot read instead of raising.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation

from .criteria import PROPERTY_TYPES

_NULL_STRINGS = frozenset({"", "n/a", "na", "none", "null", "nan", "-", "--", "unknown"})
_STRIP_CHARS_RE = re.compile(r"[\s$,%]")


def _parse_text(text: str) -> Decimal | None:
    text = text.strip()
    if text.lower() in _NULL_STRINGS:
        return None
    negative = False
    if text.startswith("(") and text.endswith(")"):  # accounting-style negative
        negative, text = True, text[1:-1]
    try:
        number = Decimal(_STRIP_CHARS_RE.sub("", text))
    except (InvalidOperation, ValueError):
        return None
    return -number if negative else number


def _decimal(v: object) -> Decimal | None:
    """Parse ``v`` into a finite Decimal, tolerating "$1,234.50", "65%", "(1,234)"."""
    number: Decimal | None
    if v is None:
        return None
    if isinstance(v, (bool, int)):
        number = Decimal(int(v))
    elif isinstance(v, float):
        number = Decimal(repr(v)) if math.isfinite(v) else None
    elif isinstance(v, Decimal):
        number = v
    elif isinstance(v, str):
        number = _parse_text(v)
    else:
        return None
    if number is None or not number.is_finite() or (number and number.adjusted() > 30):
        return None  # NaN/Infinity, or absurd magnitudes such as "1e999999"
    return number


_MAX_MAGNITUDE = 1e30


def to_float(v: object) -> float | None:
    """A float from a number or numeric string ("1,234.50", "65%", "$612,000"), else None."""
    # Fast path for what the API sends almost always: plain ints, floats and "612000".
    # This runs for every numeric field of every record, so it matters (see bench/).
    if type(v) is int or type(v) is float:
        return float(v) if math.isfinite(v) and abs(v) < _MAX_MAGNITUDE else None
    if type(v) is str and v.isascii() and v.isdigit():
        return float(v) if len(v) <= 30 else None
    number = _decimal(v)
    return float(number) if number is not None else None


def to_int(v: object) -> int | None:
    """An int from a number or numeric string; fractions are rounded half-even
    ("1640.0" -> 1640, "2.5" -> 2). Unreadable values give None."""
    if type(v) is int:  # the fast path, as in to_float
        return v if abs(v) < _MAX_MAGNITUDE else None
    if type(v) is str and v.isascii() and v.isdigit():
        return int(v) if len(v) <= 30 else None
    number = _decimal(v)
    if number is None:
        return None
    try:
        return int(number.to_integral_value())
    except (InvalidOperation, ValueError, OverflowError):
        return None


_INT32_MAX = 2**31 - 1
_INT64_MAX = 2**63 - 1


def to_int32(v: object) -> int | None:
    """to_int, within a 32-bit INTEGER column's range (None beyond it: PostgreSQL refuses
    the value, and one odd value must not fail a paid chunk; the raw record keeps it)."""
    number = to_int(v)
    return number if number is not None and -_INT32_MAX - 1 <= number <= _INT32_MAX else None


def to_int64(v: object) -> int | None:
    """to_int, within a BIGINT column's range (SQLite's INTEGER too)."""
    number = to_int(v)
    return number if number is not None and -_INT64_MAX - 1 <= number <= _INT64_MAX else None


_TRUE = frozenset({"1", "true", "t", "yes", "y"})
_FALSE = frozenset({"0", "false", "f", "no", "n"})


def to_bool(v: object) -> bool | None:
    """True/False from 1/0, "1"/"0", true/false, "Yes"/"No" (any case); else None.

    ``None`` means *unknown*, which callers must keep distinct from ``False``:
    "not known to be owner-occupied" is not "absentee".
    """
    if isinstance(v, bool):
        return v
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        if v == 1:
            return True
        if v == 0:
            return False
        return None
    if isinstance(v, str):
        text = v.strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
    return None


def _storable(text: str) -> str:
    """Text every database accepts: PostgreSQL's text type cannot hold NUL, and no driver
    can encode a lone surrogate ("\\udfff" decoded from JSON). raw keeps the original."""
    text = text.replace("\x00", "")
    return text.encode("utf-8", "replace").decode("utf-8").strip()


def to_str(v: object) -> str | None:
    """A stripped string, or None for None/empty. Numbers become their text
    (an APN or ZIP sent as a number); containers and bools give None."""
    if v is None or isinstance(v, bool):
        return None
    if isinstance(v, str):
        text = v.strip()
        if not text.isascii() or "\x00" in text:
            text = _storable(text)
        return text or None
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if not math.isfinite(v):
            return None
        return str(int(v)) if v.is_integer() else repr(v)
    if isinstance(v, Decimal):
        return str(v) if v.is_finite() else None
    return None


US_STATES: dict[str, str] = {
    "alabama": "AL", "alaska": "AK", "arizona": "AZ", "arkansas": "AR", "california": "CA",
    "colorado": "CO", "connecticut": "CT", "delaware": "DE", "district of columbia": "DC",
    "florida": "FL", "georgia": "GA", "hawaii": "HI", "idaho": "ID", "illinois": "IL",
    "indiana": "IN", "iowa": "IA", "kansas": "KS", "kentucky": "KY", "louisiana": "LA",
    "maine": "ME", "maryland": "MD", "massachusetts": "MA", "michigan": "MI",
    "minnesota": "MN", "mississippi": "MS", "missouri": "MO", "montana": "MT",
    "nebraska": "NE", "nevada": "NV", "new hampshire": "NH", "new jersey": "NJ",
    "new mexico": "NM", "new york": "NY", "north carolina": "NC", "north dakota": "ND",
    "ohio": "OH", "oklahoma": "OK", "oregon": "OR", "pennsylvania": "PA",
    "rhode island": "RI", "south carolina": "SC", "south dakota": "SD", "tennessee": "TN",
    "texas": "TX", "utah": "UT", "vermont": "VT", "virginia": "VA", "washington": "WA",
    "west virginia": "WV", "wisconsin": "WI", "wyoming": "WY", "puerto rico": "PR",
    "guam": "GU", "virgin islands": "VI", "american samoa": "AS",
    "northern mariana islands": "MP",
}  # fmt: skip
_STATE_CODES = frozenset(US_STATES.values())


def to_state(v: object) -> str | None:
    """A 2-letter state code. The spec's enum lists full names ("California") while
    every field report shows codes, so accept both; anything else gives None."""
    text = to_str(v)
    if text is None:
        return None
    if len(text) == 2 and text.upper() in _STATE_CODES:
        return text.upper()
    return US_STATES.get(" ".join(text.lower().replace(".", "").split()))


def to_zip(v: object) -> str | None:
    """A 5-character ZIP string. ZipFive arrives as an int, so leading zeros are lost
    (2134 -> "02134"); "97214-1234" keeps the first five digits."""
    if isinstance(v, bool):
        return None
    if isinstance(v, float) and math.isfinite(v) and v.is_integer():
        v = int(v)
    if isinstance(v, int):
        return f"{v:05d}" if 0 <= v <= 99999 else None
    text = to_str(v)
    if text is None:
        return None
    m = re.fullmatch(r"(\d{1,5})(?:[-\s]?\d{4})?", text)
    if not m or (len(m.group(1)) < 5 and len(text) > len(m.group(1))):
        return None
    return m.group(1).zfill(5)


def to_fips(v: object) -> str | None:
    """A county FIPS code as its 5 digits: sent as a number, 06037 arrives as 6037, and one
    stored form is what a lead's county is filtered and indexed by."""
    if isinstance(v, float) and math.isfinite(v) and v.is_integer():
        v = int(v)
    text = to_str(v)
    if text is not None and re.fullmatch(r"\d{4,5}", text):
        return text.zfill(5)
    return None


def to_property_type(v: object) -> str | None:
    """The PType display label ("Single Family"); a criteria code ("SFR") is mapped to
    its label so stored leads read the same whichever form the API sent."""
    text = to_str(v)
    if text is None:
        return None
    return PROPERTY_TYPES.get(text.upper(), text)


# properties.radar_id and the snapshot/claim tables hold RadarIDs as varchar(32). Real
# ones are short ("P1A2B3C4" in the documented example); anything longer is not a
# RadarID we could look up again, so it is refused here rather than by the database.
RADAR_ID_MAX_LENGTH = 32


def to_radar_id(v: object) -> str | None:
    """A RadarID as text, or None when it is not usable (empty, not text or number, or
    longer than RADAR_ID_MAX_LENGTH)."""
    radar_id = to_str(v)
    if radar_id is None or len(radar_id) > RADAR_ID_MAX_LENGTH:
        return None
    return radar_id


def radar_id_of(record: object) -> str | None:
    """The record's RadarID, or None when it has none usable (see to_radar_id). The one
    reader of RadarIDs in results; radar_app.leads parses the lead's other fields."""
    if not isinstance(record, Mapping):
        return None
    return to_radar_id(record.get("RadarID"))


# The common case of each parser, as an expression the compiled record parsers
# (radar_app.leads) inline: with a function call per field, parsing a record's lead
# columns took 6.3 µs, against 1.3 µs for its JSON (orjson); inlined, 3.2 µs (a
# simulated page of 400 on the 2-core machine). In each, `_v` is the value as sent and
# `{parse}` the parser itself, which decides every other case; the expression gives
# exactly what the parser gives (tests/test_leads.py compares them, types included).
# None comes first: every parser gives None for None.
_LABELS = frozenset(label for label in PROPERTY_TYPES.values() if to_property_type(label) == label)
_TEXT_FAST = "_t.isascii() and '\\x00' not in _t"
INLINE: dict[object, str] = {
    to_str: f"_t if type(_v) is str and (_t := _v.strip()) and {_TEXT_FAST} else {{parse}}(_v)",
    to_radar_id: (
        f"_t if type(_v) is str and 0 < len(_t := _v.strip()) <= {RADAR_ID_MAX_LENGTH} "
        f"and {_TEXT_FAST} else {{parse}}(_v)"
    ),
    to_state: "_v if type(_v) is str and _v in _STATE_CODES else {parse}(_v)",
    to_zip: "f'{{_v:05d}}' if type(_v) is int and 0 <= _v <= 99999 else {parse}(_v)",
    to_fips: (
        "_v if type(_v) is str and len(_v) == 5 and _v.isascii() and _v.isdigit() else {parse}(_v)"
    ),
    to_property_type: "_v if type(_v) is str and _v in _LABELS else {parse}(_v)",
    # Digits, and at most one point: what float() and the Decimal path read alike.
    to_float: (
        "float(_v) if type(_v) is str and len(_v) <= 30 and _v.isascii() "
        "and _v.replace('.', '', 1).isdigit() else {parse}(_v)"
    ),
    to_int32: (
        f"_v if type(_v) is int and {-_INT32_MAX - 1} <= _v <= {_INT32_MAX} "
        "else int(_v) if type(_v) is str and len(_v) <= 9 and _v.isascii() and _v.isdigit() "
        "else {parse}(_v)"
    ),
    to_int64: (
        f"_v if type(_v) is int and {-_INT64_MAX - 1} <= _v <= {_INT64_MAX} "
        "else int(_v) if type(_v) is str and len(_v) <= 18 and _v.isascii() and _v.isdigit() "
        "else {parse}(_v)"
    ),
    to_bool: "_v == 1 if type(_v) in _FLAG_TYPES and (_v == 0 or _v == 1) else {parse}(_v)",
}
INLINE_NAMES: dict[str, object] = {
    "_STATE_CODES": _STATE_CODES, "_LABELS": _LABELS, "_FLAG_TYPES": (bool, int),
}  # fmt: skip

__all__ = [
    "US_STATES",
    "RADAR_ID_MAX_LENGTH",
    "radar_id_of",
    "to_bool",
    "to_int32",
    "to_int64",
    "to_fips",
    "to_float",
    "to_int",
    "to_property_type",
    "to_radar_id",
    "to_state",
    "to_str",
    "to_zip",
]
