"""The catalogue of PropertyRadar search criteria: names, value shapes, closed sets, limits.

The catalogue covers the search criteria PropertyRadar documents for ``/v1/properties``.
Anything not listed is rejected rather than passed through, because an unknown name
always fails at the API anyway. Everything here is data: how a value is checked is
:mod:`.validate`, how a search reads in a list is :mod:`.describe`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

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
# The other spelling of a DATE value, "from: M/D/YYYY to: M/D/YYYY" (either end may be empty).
FROM_TO_RE = re.compile(r"^from:\s*(?P<a>\S*)\s*to:\s*(?P<b>\S*)$", re.IGNORECASE)

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
# catalogue's size (set below it), and max_values() says which limit a kind takes.
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


def max_values(spec: CriterionSpec) -> int:
    """How many values the criterion takes (OR'd together)."""
    if spec.kind in (RANGE, DATE, PROPERTY_TYPE):
        return MAX_RANGES_PER_CRITERION
    return MAX_VALUES_PER_CRITERION
