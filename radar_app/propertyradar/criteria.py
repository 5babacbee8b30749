"""Catalogue of PropertyRadar search criteria, local validation and summaries.

Why validate locally: the API answers a wrong criterion name or value shape with a
terse 400 ("Unexpected Criterion"), one problem at a time, and each round trip costs
time. Validating here lets the UI show *every* problem at once, next to the right
field, before any request is made. Normalizing (upper-casing states, ZipFive as int,
County as str...) also makes two equivalent searches compare equal.

The catalogue covers the search criteria PropertyRadar documents for ``/v1/properties``.
Anything not listed is rejected rather than passed through, because an unknown name
always fails at the API anyway.
"""

from __future__ import annotations

import difflib
import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date
from functools import cache
from typing import Any

from .errors import CriteriaError

# Kinds of criteria, named after the value shapes on developers.propertyradar.com/criteria.
MULTI = "multi"  # values OR'd together: ["OR", "WA"]
PREFIX = "prefix"  # "beginning with" match: ["123-45"]
BOOLEAN = "boolean"  # [1] or [0]
RANGE = "range"  # [[min, max], ...] with null for an open end
DATE = "date"  # relative-date presets or "from: M/D/YYYY to: M/D/YYYY"
PROPERTY_TYPE = "property_type"  # [{"name": "PType", "value": ["SFR", ...]}]
LIST = "list"  # InList: [ListID, ...]
KINDS = frozenset({MULTI, PREFIX, BOOLEAN, RANGE, DATE, PROPERTY_TYPE, LIST})

# Criteria codes for PType -> the display label the API returns in results.
PROPERTY_TYPES: dict[str, str] = {
    "SFR": "Single Family",
    "CND": "Condominium",
    "MFR": "Multi-Family 2-4",
    # UNCONFIRMED: these three appear in a single third-party client's map only
    # (notes section 4); kept so users can try them, labels are that client's guesses.
    "COM": "Commercial",
    "VL": "Vacant Land",
    "MH": "Mobile Home",
}

FORECLOSURE_STAGES: list[str] = [
    "Preforeclosure",
    "PF New Filing",
    "PF Sold",
    "PF Outdated",
    "PF Released",
    "Auction",
    "Auction Outdated",
    "Auction Unknown",
    "Sale Pending",
    "Auction Cancelled",
    "Auction Cancelled Resold",
    "Auction Released",
    "Bank Owned",
    "Bank Resold",
    "Bank Rescinded",
    "Bank Held",
    "3rd Owned",
    "3rd Resold",
    "3rd Rescinded",
    "3rd Held",
]

# Relative-date presets, from the spec's *DateEnum values.
DATE_PRESETS: list[str] = (
    ["Today", "Tomorrow", "Yesterday"]
    + [f"{w} {p}" for w in ("This", "Last", "Next") for p in ("Week", "Month", "Quarter", "Year")]
    + [f"{w} {n} Days" for w in ("Last", "Next") for n in (7, 30, 90, 365)]
)
_PRESET_BY_LOWER = {p.lower(): p for p in DATE_PRESETS}
_STAGE_BY_LOWER = {s.lower(): s for s in FORECLOSURE_STAGES}

# Closed sets from the criteria notes (section 4); the API answers anything else with a 400.
OWNERSHIP_TYPES: list[str] = ["Individual", "Couple", "Multiple owners", "Corporate", "Trust"]
LISTING_STATUSES: list[str] = [
    "Active",
    "Contingent",
    "Pending",
    "Sold",
    "Withdrawn",
    "Expired",
    "Cancelled",
]

# Input limits, the one place the API, the search form and the client take them from.
# A search is sent whole with every PropertyRadar request and stored on the job, so an
# unbounded one (a probe sent 3.4 M values in 20 MB) slows every page that lists it and
# every request of the job. Each criterion may appear once, so MAX_CRITERIA is the
# catalogue's size (set below it).
MAX_VALUES_PER_CRITERION = 1000  # ZIP codes, RadarIDs, cities... OR'd in one criterion
# Ranges, dates and property-type groups OR'd in one criterion: a handful is all a search
# needs, and each is checked against every candidate record (1,000 ranges made a single
# simulated preview take over 10 s).
MAX_RANGES_PER_CRITERION = 20
MAX_VALUE_LENGTH = 200  # characters in one text value: a street address, a city name
# Largest magnitude of a range bound. Ten times the biggest dollar figure (AVM, loan
# balance) a property can have; beyond it a number is a typo or a probe, and a 400-digit
# integer overflows float conversion.
MAX_RANGE_NUMBER = 10**12


@dataclass(frozen=True)
class CriterionSpec:
    """One known criterion.

    ``hint`` is the message shown when the value has the wrong shape, phrased as
    "<Name> expects ..." so it reads well in a form. ``label`` is used by
    :func:`describe_criteria`. For booleans, ``true_label``/``false_label`` replace
    "<label>: yes/no" with something natural ("Absentee").
    """

    name: str
    kind: str
    label: str
    hint: str
    true_label: str | None = None
    false_label: str | None = None


def _multi(name: str, hint: str, label: str | None = None) -> CriterionSpec:
    return CriterionSpec(name, MULTI, label or name, f"{name} expects {hint}")


def _prefix(name: str, hint: str) -> CriterionSpec:
    return CriterionSpec(name, PREFIX, name, f"{name} expects {hint}")


def _bool(name: str, true_label: str, false_label: str) -> CriterionSpec:
    return CriterionSpec(
        name, BOOLEAN, true_label, f"{name} expects [1] or [0]", true_label, false_label
    )


def _range(name: str, label: str, example: str) -> CriterionSpec:
    return CriterionSpec(name, RANGE, label, f"{name} expects ranges like {example}")


def _date(name: str, label: str) -> CriterionSpec:
    return CriterionSpec(
        name,
        DATE,
        label,
        f"{name} expects dates like 'Last 30 Days', 'from: 1/1/2023 to: 1/31/2023' or '1/1/2023'",
    )


_SPECS: list[CriterionSpec] = [
    # Location
    _multi("State", "2-letter codes like 'CA'"),
    _multi("County", "FIPS codes (4-5 digits) like '41051'"),
    _multi("City", "city names like 'Portland'"),
    _multi("ZipFive", "5-digit ZIP codes like 97202"),
    _prefix("Address", "street addresses like '1234 SE Alder St' (no city, state or ZIP)"),
    _prefix("APN", "APN prefixes like '123-456' (dashes as the county formats them)"),
    _multi("RadarID", "RadarIDs like 'P8A0E18D'"),
    # Property
    CriterionSpec(
        "PropertyType",
        PROPERTY_TYPE,
        "Property type",
        'PropertyType expects [{"name": "PType", "value": ["SFR"]}] with codes '
        + ", ".join(PROPERTY_TYPES),
    ),
    _range("Beds", "Beds", "[[3, null]]"),
    _range("Baths", "Baths", "[[2, null]]"),
    _range("SqFt", "SqFt", "[[1000, 2500]]"),
    _range("YearBuilt", "Built", "[[1950, 2000]]"),
    _range("LotSize", "Lot size", "[[5000, null]]"),
    _range("Units", "Units", "[[2, 4]]"),
    _bool("Pool", "Pool", "No pool"),
    # Owner
    _bool("isSameMailingOrExempt", "Owner-occupied", "Absentee"),
    _bool("isNotSameMailingOrExempt", "Not owner-occupied", "Not absentee"),
    _bool("isMailVacant", "Mail vacant", "Mail not vacant"),
    _bool("isSiteVacant", "Site vacant", "Site not vacant"),
    _multi(
        "OwnershipType", "ownership types like 'Individual', 'Trust' or 'Corporate'", "Ownership"
    ),
    # Value and equity
    _range("AVM", "AVM", "[[200000, 500000]]"),
    _range("AvailableEquity", "Equity $", "[[100000, null]]"),
    _range("EquityPercent", "Equity %", "[[40, null]]"),
    _range("CLTV", "CLTV", "[[null, 80]]"),
    _range("TotalLoanBalance", "Loan balance", "[[null, 100000]]"),
    _range("NumberLoans", "Loans", "[[0, 1]]"),
    # Loans
    _range("FirstRate", "1st rate", "[[null, 4]]"),
    _multi("FirstLoanType", "loan type codes like 'V'", "1st loan type"),
    _multi("FirstPurpose", "loan purposes like 'Refi'", "1st loan purpose"),
    _date("FirstDate", "1st loan date"),
    # Distress and listing
    _bool("inForeclosure", "In foreclosure", "Not in foreclosure"),
    _multi("ForeclosureStage", "stages like 'Preforeclosure' or 'Auction'", "Foreclosure"),
    _bool("inTaxDelinquency", "Tax delinquent", "Not tax delinquent"),
    _bool("inDivorce", "In divorce", "Not in divorce"),
    _bool("isListedForSale", "Listed for sale", "Not listed"),
    _multi("ListingStatus", "statuses like 'Active' or 'Sold'", "Listing"),
    _range("DaysOnMarket", "Days on market", "[[null, 30]]"),
    _date("LastTransferRecDate", "Last transfer"),
    _range("LastTransferDownPaymentPercent", "Down payment %", "[[null, 10]]"),
    # Lists. UNCONFIRMED value shape; best guess is [ListID].
    CriterionSpec("InList", LIST, "In list", "InList expects list ids like [12345]"),
]

CRITERIA: dict[str, CriterionSpec] = {spec.name: spec for spec in _SPECS}
MAX_CRITERIA = len(CRITERIA)
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

# The "lead essentials": the Fields a purchase names when the job names none. Price does
# not depend on the number of fields (notes section 3), but the API caps a request at ~50
# fields. How each is stored and shown is radar_app.leads, one row per name here (it
# refuses to import otherwise); this package imports nothing of the app, so the names
# the client sends by default are kept here, in the order they are requested.
LEAD_FIELDS: list[str] = [
    "RadarID",
    "APN",
    "Address",
    "City",
    "State",
    "ZipFive",
    "County",
    "Owner",
    "Owner2",
    "OwnerFirstName",
    "OwnerLastName",
    "OwnerAddress",
    "OwnerCity",
    "OwnerState",
    "OwnerZipFive",
    "PType",
    "Beds",
    "Baths",
    "SqFt",
    "YearBuilt",
    "AVM",
    "AvailableEquity",
    "EquityPercent",
    "isSameMailingOrExempt",
    "inForeclosure",
    "ForeclosureStage",
    "inTaxDelinquency",
    "isListedForSale",
    "LastTransferRecDate",
]
MAX_FIELDS = 50

# Result field names from notes section 4 (the lead-relevant subset of ~250).
KNOWN_FIELDS: frozenset[str] = frozenset(
    """
    RadarID PropertyKey APN FIPS County Address FullAddress City State ZipFive Latitude
    Longitude Subdivision PropertyURL PhotoURL1
    PType AdvancedPropertyType Beds Baths SqFt LotSize LotSizeAcres YearBuilt Units Stories
    Pool
    Owner Owner2 OwnerFirstName OwnerLastName OwnerSpouseFirstName Taxpayer OwnershipType
    OwnerAddress OwnerCity OwnerState OwnerZipFive
    isSameMailingOrExempt isSameMailing isMailVacant isSiteVacant
    PrimaryName PrimaryFirstName PrimaryLastName PhoneAvailability EmailAvailability
    PrimaryPhone1Hashed PrimaryEmail1Hashed Persons
    AVM AVMPerSqFt AssessedValue EquityPercent AvailableEquity CLTV TotalLoanBalance
    NumberLoans AnnualTaxes EstimatedRent HUDRent
    FirstAmount FirstRate FirstLoanType FirstPurpose FirstDate FirstLenderOriginal
    LastTransferRecDate LastTransferValue LastTransferType LastTransferSeller
    inForeclosure ForeclosureStage ForeclosureRecDate DefaultAmount DefaultAsOf SaleDate
    OpeningBid Trustee TrusteePhone TrusteeSaleNum
    inTaxDelinquency DelinquentAmount DelinquentYear
    isListedForSale ListingPrice DaysOnMarket DistressScore
    isFreeAndClear isHighEquity isCashBuyer isPreforeclosure isAuction isBankOwned
    isDeceasedProperty inBankruptcyProperty
    """.split()
)

_OPTIONAL_ITEM_KEYS = frozenset({"menuLabels", "chipLabel"})


class _Invalid(Exception):
    """Internal: one value problem; the message goes into CriteriaError.errors."""


# --------------------------------------------------------------------------- values


_SHOW_LIMIT = 60


def printable(text: str, limit: int = _SHOW_LIMIT) -> str:
    """``text`` safe to quote in a message: what cannot be shown (a lone surrogate, which
    no page can even encode, NUL and other control characters) is backslash-escaped, and
    a long value is cut, so an error never carries the bad input whole or unrenderable."""
    cut = text[: limit + 1]
    safe = "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in cut)
    return safe if len(safe) <= limit else safe[: limit - 1] + "…"


def _show(v: object) -> str:
    """Render a user's value as JSON (null, not None) for error messages, cut to length."""
    try:
        text = json.dumps(v, default=str)
    except (TypeError, ValueError, RecursionError):  # too deep, or an int over 4300 digits
        text = "(a value too large or too deeply nested to show)"
    return printable(text)


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
    # coerce imports this module, so the table is read on first use, not at import.
    from .coerce import US_STATES

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
_FROM_TO_RE = re.compile(r"^from:\s*(?P<a>\S*)\s*to:\s*(?P<b>\S*)$", re.IGNORECASE)


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
    m = _FROM_TO_RE.match(text)
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


def max_values(spec: CriterionSpec) -> int:
    """How many values the criterion takes (OR'd together)."""
    if spec.kind in (RANGE, DATE, PROPERTY_TYPE):
        return MAX_RANGES_PER_CRITERION
    return MAX_VALUES_PER_CRITERION


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


# -------------------------------------------------------------------------- describe


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
    m = _FROM_TO_RE.match(text)
    if not m:
        return text if text in _PRESET_BY_LOWER.values() else f"on {text}"
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


__all__ = [
    "CRITERIA",
    "DATE_PRESETS",
    "FORECLOSURE_STAGES",
    "KINDS",
    "KNOWN_FIELDS",
    "LEAD_FIELDS",
    "MAX_FIELDS",
    "PROPERTY_TYPES",
    "LISTING_STATUSES",
    "MAX_CRITERIA",
    "MAX_RANGE_NUMBER",
    "MAX_VALUE_LENGTH",
    "MAX_RANGES_PER_CRITERION",
    "MAX_VALUES_PER_CRITERION",
    "OWNERSHIP_TYPES",
    "CriterionSpec",
    "describe_criteria",
    "max_values",
    "suggest_name",
    "printable",
    "text_problem",
    "validate_criteria",
]


FIELD_SETS: dict[str, list[str]] = {"essentials": LEAD_FIELDS}


def resolve_fields(fields: object) -> list[str] | None:
    """The Fields a job buys: None (the essentials), a named set, or a custom list that is
    validated against the catalogue and always includes the essentials' identity fields.

    Raises:
        CriteriaError: with errors["fields"] describing the problem.
    """
    if fields is None or fields == "essentials":
        return None
    if isinstance(fields, str):
        raise CriteriaError(
            {"fields": f"Unknown field set '{fields}'; use one of {sorted(FIELD_SETS)}"}
        )
    if not isinstance(fields, list) or not all(isinstance(f, str) for f in fields):
        raise CriteriaError({"fields": "Must be 'essentials' or a list of field names"})
    unknown = sorted({printable(f) for f in fields if f not in KNOWN_FIELDS})
    if unknown:
        raise CriteriaError({"fields": f"Unknown field(s): {', '.join(unknown[:10])}"})
    # Price does not depend on the field count, so the essentials come along for free.
    chosen = list(dict.fromkeys([*LEAD_FIELDS, *fields]))
    if len(chosen) > MAX_FIELDS:
        raise CriteriaError(
            {
                "fields": f"At most {MAX_FIELDS} fields per request, essentials included "
                f"({len(LEAD_FIELDS)}); this asks for {len(chosen)}"
            }
        )
    return chosen
