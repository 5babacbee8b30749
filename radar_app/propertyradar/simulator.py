"""Offline simulator of the PropertyRadar REST API, as a plain WSGI app.

Why it exists: the real API cannot be reached from the project's machines, and every
``Purchase=1`` row costs money. The client, the batch runner and the demo are therefore
built and tested against this simulator. It follows the facts collected in
``/work/shared/propertyradar-api.md`` (query-string control parameters, a body holding
only ``Criteria``, the ``results``/``resultCount``/``totalResultCount``/``totalCost``
envelope, the ``error``/``eventid``/``message``/``messageTitle`` error body with the
``X-Radar-Request-Id`` header, mixed wire types, the 50-field cap, the 1000-row cap).
Where the notes say UNCONFIRMED the simulator makes the documented best guess:
``Start`` is a 0-based row offset, ``Limit`` defaults to 100 and is capped at
``max_limit`` (1000), a repeated ``Purchase=1`` of the same record is billed again.

It deliberately imports only the standard library, Werkzeug and ``radar_app.config`` (for
the one configured price; that module is Flask-free) so it can run in a thread inside a
test, or on its own::

    python -m radar_app.propertyradar.simulator --port 5001

Dataset
-------
Synthetic and deterministic for a given ``(scale, seed)``. Records are stored state by
state and county by county, so "dataset index order" (the order every search returns)
groups by county. Exact record counts at ``scale=1.0`` (121,400 in total)::

    CA 40,000  06037 Los Angeles 16,000 | 06073 San Diego 9,000
               06059 Orange 8,000       | 06001 Alameda 7,000
    TX 30,000  48201 Harris 12,000      | 48113 Dallas 9,000
               48453 Travis 6,000       | 48029 Bexar 3,000
    FL 25,000  12086 Miami-Dade 10,000  | 12011 Broward 8,000 | 12095 Orange 7,000
    OR 10,000  41051 Multnomah 2,000    | 41067 Washington 3,500
               41005 Clackamas 2,500    | 41039 Lane 2,000
    AZ  8,000  04013 Maricopa 6,000     | 04019 Pima 2,000
    WA  6,000  53033 King 3,500         | 53053 Pierce 1,500 | 53061 Snohomish 1,000
    NV  2,000  32003 Clark 1,500        | 32031 Washoe 500
    ID    400  16001 Ada 300            | 16027 Canyon 100

With another ``scale`` a state holds ``round(count * scale)`` records, split over its
counties in the same proportions (largest remainder, so the county counts add up).

Every field used for filtering lives in a typed ``array`` column (about 10 MB in all);
display-only fields (names, mailing address, coordinates, ...) are derived on demand
from a hash of the record index, and a full record dict is only built for a row that is
actually returned. The list of matching indices per canonical criteria is kept in a
small LRU, so paging through one search costs O(page) after the first request.

Filter semantics worth knowing: items AND, values inside an item OR; ranges are
``[[min, max], ...]`` with ``null`` for an open end; for the "Including Unknowns"
criteria (Beds, Baths, SqFt, YearBuilt, LotSize, Units) a ``null`` minimum also matches
records whose value is unknown (vacant land has no beds, baths, sqft or year built);
for the other ranges unknown values (no loan -> no FirstRate, not listed -> no
DaysOnMarket) never match. Some known criteria (dates, listing status, lists, ...) are
accepted but do not filter; see ``IGNORED_CRITERIA``.

Fault injection (our own invention)
-----------------------------------
The real API's rate limits and error behaviour are UNCONFIRMED: no 429 or
``Retry-After`` has ever been observed. The faults below exist so that the client's
retry and billing-safety logic can be exercised; they are not a claim about the real
service. A fault is decided before the request is processed:

* ``429`` (with ``Retry-After``), ``500``, ``502`` (HTML gateway page), ``503``: the
  request is *not* processed and *not* billed.
* ``slow``: the request is processed and billed, then the answer is delayed by
  ``slow_seconds`` (a client with a shorter timeout never sees it, but paid for it).
* ``malformed``: processed and billed, but the 200 body is truncated, invalid JSON.

Faults come at random (``fault_rate`` / ``fault_kinds``, from a seeded RNG) or are
scripted (``scripted_faults``). ``total_drift`` makes the result set change while a job
pages through it: after each served search purchase, ``total_drift`` new records appear
at the front of every non-empty result set (clones of matching records with fresh
RadarIDs), or, when negative, that many records disappear from the front.

Standing fault modes (each off by default; set with ``configure`` or ``/_sim/config``):

* ``total_after_first=N``: once the first page (``Start=0``) of a search has been served,
  that search holds N records: later pages, and a repeated first page, report
  ``totalResultCount`` N and hold only records up to it (fewer: shrinking; more: growing,
  with clones of matching records under fresh RadarIDs).
* ``limit_cap=N``: at most N results per request whatever ``Limit`` asked for;
  ``totalResultCount`` is unchanged and only returned rows are billed.
* ``missing_radar_id_every=N``: in ``Purchase=1`` responses the N-th, 2N-th, ... record
  of the response has no ``RadarID`` key; it is billed all the same.
* ``oversize_field="APN"``, ``oversize_length=L``: in ``Purchase=1`` responses that field,
  where the response has it, holds exactly L characters (its value padded with "x").
* ``trickle_seconds=S``: the body of every API response is sent in small pieces spread
  evenly over S seconds, each within 0.1 s of the last, so no per-read timeout fires.
  The request is processed and billed before the first piece goes out.
* ``rotate_token_after=N``: after N further authenticated requests the token stops
  working: every API request gets the 401 of a bad token until ``configure(token=NEW)``
  (which also ends the rotation; ``reset()`` re-arms it).

Price: every billed record costs ``price_per_record`` (default: the app's
``Config.PRICE_PER_EXPORT``, so the demo's estimate and its bill agree); ``totalCost``
is that price times the rows billed, and ``/_sim/stats`` reports ``billed_records`` and
``billed_cost``.

Control endpoints (no auth, for tests and demos): ``GET /_sim/stats``,
``GET|POST /_sim/config``, ``POST /_sim/reset``, ``GET /_sim/health``.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import datetime as dt
import json
import math
import random
import secrets
import threading
import time
from array import array
from bisect import bisect_right
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from werkzeug.serving import WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from radar_app.config import Config

__all__ = [
    "ALL_FIELDS",
    "FIELDSETS",
    "FAULT_KINDS",
    "IGNORED_CRITERIA",
    "CriteriaError",
    "Dataset",
    "Simulator",
    "SimulatorConfig",
    "get_dataset",
    "serve",
    "start_in_thread",
]

# --------------------------------------------------------------------------------------
# Static tables
# --------------------------------------------------------------------------------------

# (code, full name, probability of a pool, property tax rate)
_STATES: tuple[tuple[str, str, float, float], ...] = (
    ("CA", "California", 0.20, 0.011),
    ("TX", "Texas", 0.18, 0.020),
    ("FL", "Florida", 0.30, 0.010),
    ("OR", "Oregon", 0.04, 0.010),
    ("AZ", "Arizona", 0.35, 0.007),
    ("WA", "Washington", 0.04, 0.010),
    ("NV", "Nevada", 0.25, 0.006),
    ("ID", "Idaho", 0.06, 0.007),
)
_STATE_INDEX = {code: i for i, (code, _n, _p, _t) in enumerate(_STATES)}
_STATE_BY_NAME = {name.upper(): code for code, name, _p, _t in _STATES}


@dataclass(frozen=True)
class _County:
    fips: str
    name: str
    state: str
    count: int  # records at scale 1.0
    lat: float
    lon: float
    median_avm: int
    apn_style: str  # "dash" -> 1234-567-890, "R" -> R123456, "plain" -> 10 digits
    cities: tuple[tuple[str, tuple[int, ...]], ...]  # first city is the biggest


_COUNTIES: tuple[_County, ...] = (
    _County(
        "06037",
        "Los Angeles",
        "CA",
        16000,
        34.05,
        -118.25,
        850000,
        "dash",
        (
            ("Los Angeles", (90001, 90004, 90026, 90042)),
            ("Long Beach", (90802, 90805)),
            ("Pasadena", (91101, 91104)),
            ("Glendale", (91201, 91205)),
        ),
    ),
    _County(
        "06073",
        "San Diego",
        "CA",
        9000,
        32.72,
        -117.16,
        820000,
        "dash",
        (
            ("San Diego", (92101, 92104, 92115)),
            ("Chula Vista", (91910, 91911)),
            ("Oceanside", (92054, 92056)),
        ),
    ),
    _County(
        "06059",
        "Orange",
        "CA",
        8000,
        33.72,
        -117.83,
        1000000,
        "dash",
        (
            ("Anaheim", (92801, 92804)),
            ("Santa Ana", (92701, 92704)),
            ("Irvine", (92602, 92614)),
            ("Huntington Beach", (92646, 92648)),
        ),
    ),
    _County(
        "06001",
        "Alameda",
        "CA",
        7000,
        37.80,
        -122.27,
        1050000,
        "dash",
        (
            ("Oakland", (94601, 94610, 94611)),
            ("Fremont", (94536, 94538)),
            ("Berkeley", (94702, 94703)),
            ("Hayward", (94541, 94544)),
        ),
    ),
    _County(
        "48201",
        "Harris",
        "TX",
        12000,
        29.76,
        -95.37,
        290000,
        "plain",
        (
            ("Houston", (77002, 77004, 77008, 77019)),
            ("Pasadena", (77502, 77506)),
            ("Baytown", (77520, 77521)),
        ),
    ),
    _County(
        "48113",
        "Dallas",
        "TX",
        9000,
        32.78,
        -96.80,
        340000,
        "plain",
        (
            ("Dallas", (75201, 75204, 75214)),
            ("Irving", (75038, 75061)),
            ("Garland", (75040, 75043)),
        ),
    ),
    _County(
        "48453",
        "Travis",
        "TX",
        6000,
        30.27,
        -97.74,
        520000,
        "plain",
        (("Austin", (78701, 78704, 78745)), ("Pflugerville", (78660,))),
    ),
    _County(
        "48029",
        "Bexar",
        "TX",
        3000,
        29.42,
        -98.49,
        280000,
        "plain",
        (("San Antonio", (78201, 78209, 78230)),),
    ),
    _County(
        "12086",
        "Miami-Dade",
        "FL",
        10000,
        25.76,
        -80.19,
        560000,
        "dash",
        (
            ("Miami", (33125, 33133, 33145)),
            ("Hialeah", (33010, 33012)),
            ("Homestead", (33030, 33033)),
        ),
    ),
    _County(
        "12011",
        "Broward",
        "FL",
        8000,
        26.12,
        -80.14,
        480000,
        "dash",
        (
            ("Fort Lauderdale", (33301, 33304)),
            ("Hollywood", (33019, 33021)),
            ("Pembroke Pines", (33024, 33027)),
        ),
    ),
    _County(
        "12095",
        "Orange",
        "FL",
        7000,
        28.54,
        -81.38,
        390000,
        "dash",
        (("Orlando", (32801, 32803, 32806)), ("Winter Park", (32789,)), ("Apopka", (32703,))),
    ),
    _County(
        "41051",
        "Multnomah",
        "OR",
        2000,
        45.52,
        -122.68,
        520000,
        "R",
        (("Portland", (97202, 97211, 97212, 97214, 97217)), ("Gresham", (97030, 97080))),
    ),
    _County(
        "41067",
        "Washington",
        "OR",
        3500,
        45.49,
        -122.80,
        560000,
        "R",
        (("Beaverton", (97005, 97006)), ("Hillsboro", (97123, 97124)), ("Tigard", (97223, 97224))),
    ),
    _County(
        "41005",
        "Clackamas",
        "OR",
        2500,
        45.36,
        -122.61,
        580000,
        "plain",
        (("Oregon City", (97045,)), ("Lake Oswego", (97034, 97035)), ("Milwaukie", (97222, 97267))),
    ),
    _County(
        "41039",
        "Lane",
        "OR",
        2000,
        44.05,
        -123.09,
        430000,
        "plain",
        (("Eugene", (97401, 97402, 97405)), ("Springfield", (97477, 97478))),
    ),
    _County(
        "04013",
        "Maricopa",
        "AZ",
        6000,
        33.45,
        -112.07,
        450000,
        "dash",
        (
            ("Phoenix", (85004, 85008, 85016)),
            ("Mesa", (85201, 85204)),
            ("Scottsdale", (85251, 85257)),
            ("Chandler", (85224, 85225)),
        ),
    ),
    _County(
        "04019",
        "Pima",
        "AZ",
        2000,
        32.22,
        -110.97,
        340000,
        "dash",
        (("Tucson", (85705, 85710, 85719)), ("Marana", (85653,))),
    ),
    _County(
        "53033",
        "King",
        "WA",
        3500,
        47.61,
        -122.33,
        850000,
        "plain",
        (
            ("Seattle", (98103, 98105, 98115, 98118)),
            ("Bellevue", (98004, 98006)),
            ("Kent", (98030, 98031)),
        ),
    ),
    _County(
        "53053",
        "Pierce",
        "WA",
        1500,
        47.25,
        -122.44,
        500000,
        "plain",
        (("Tacoma", (98402, 98405, 98406)), ("Puyallup", (98371, 98373))),
    ),
    _County(
        "53061",
        "Snohomish",
        "WA",
        1000,
        47.98,
        -122.20,
        680000,
        "plain",
        (("Everett", (98201, 98203)), ("Lynnwood", (98036, 98037))),
    ),
    _County(
        "32003",
        "Clark",
        "NV",
        1500,
        36.17,
        -115.14,
        420000,
        "dash",
        (
            ("Las Vegas", (89101, 89104, 89117)),
            ("Henderson", (89014, 89052)),
            ("North Las Vegas", (89030, 89031)),
        ),
    ),
    _County(
        "32031",
        "Washoe",
        "NV",
        500,
        39.53,
        -119.81,
        540000,
        "dash",
        (("Reno", (89501, 89502, 89509)), ("Sparks", (89431, 89434))),
    ),
    _County(
        "16001",
        "Ada",
        "ID",
        300,
        43.62,
        -116.20,
        480000,
        "R",
        (("Boise", (83702, 83704, 83706)), ("Meridian", (83642, 83646))),
    ),
    _County(
        "16027",
        "Canyon",
        "ID",
        100,
        43.58,
        -116.56,
        380000,
        "R",
        (("Nampa", (83651, 83686)), ("Caldwell", (83605, 83607))),
    ),
)
_COUNTY_BY_FIPS = {c.fips: i for i, c in enumerate(_COUNTIES)}

# Global city table: (city name, county index, zips); a "city" is a (name, county) pair.
_CITIES: tuple[tuple[str, int, tuple[int, ...]], ...] = tuple(
    (name, ci, zips) for ci, c in enumerate(_COUNTIES) for name, zips in c.cities
)
_CITY_FIRST = [0] * len(_COUNTIES)  # index of each county's first city in _CITIES
for _i in range(len(_CITIES) - 1, -1, -1):
    _CITY_FIRST[_CITIES[_i][1]] = _i

# Out-of-area mailing addresses for absentee owners.
_REMOTE_MAIL: tuple[tuple[str, str, int], ...] = (
    ("New York", "NY", 10001),
    ("Chicago", "IL", 60601),
    ("Denver", "CO", 80202),
    ("Salt Lake City", "UT", 84101),
    ("Atlanta", "GA", 30303),
    ("Boston", "MA", 2108),
    ("Honolulu", "HI", 96813),
    ("Bend", "OR", 97701),
    ("Sacramento", "CA", 95814),
    ("Scottsdale", "AZ", 85251),
    ("Vancouver", "WA", 98660),
    ("Plano", "TX", 75024),
)

# (criteria code, display value shown in results, share of records)
_PTYPES: tuple[tuple[str, str, float], ...] = (
    ("SFR", "Single Family", 0.70),
    ("CND", "Condominium", 0.15),
    ("MFR", "Multi-Family 2-4", 0.08),
    ("MH", "Mobile Home", 0.03),
    ("VL", "Vacant Land", 0.04),
)
_PTYPE_BY_CODE = {code: i for i, (code, _d, _s) in enumerate(_PTYPES)}
_PT_SFR, _PT_CND, _PT_MFR, _PT_MH, _PT_VL = range(5)

_OWNERSHIP_TYPES: tuple[tuple[str, float], ...] = (
    ("Individual", 0.45),
    ("Couple", 0.30),
    ("Multiple owners", 0.05),
    ("Corporate", 0.12),
    ("Trust", 0.08),
)
_OWN_CORPORATE = 3
_OWN_TRUST = 4

# "V" (VA) is attested by a field client; the other codes are invented for the simulator.
_LOAN_TYPES: tuple[tuple[str, float], ...] = (
    ("C", 0.70),
    ("F", 0.15),
    ("V", 0.08),
    ("P", 0.07),
)

# [SPEC] ForeclosureStage enum, with invented relative frequencies.
_FC_STAGES: tuple[tuple[str, float], ...] = (
    ("Preforeclosure", 0.28),
    ("PF New Filing", 0.14),
    ("PF Sold", 0.02),
    ("PF Outdated", 0.02),
    ("PF Released", 0.04),
    ("Auction", 0.18),
    ("Auction Outdated", 0.02),
    ("Auction Unknown", 0.01),
    ("Sale Pending", 0.04),
    ("Auction Cancelled", 0.04),
    ("Auction Cancelled Resold", 0.01),
    ("Auction Released", 0.02),
    ("Bank Owned", 0.09),
    ("Bank Resold", 0.02),
    ("Bank Rescinded", 0.01),
    ("Bank Held", 0.02),
    ("3rd Owned", 0.01),
    ("3rd Resold", 0.01),
    ("3rd Rescinded", 0.005),
    ("3rd Held", 0.005),
)
_FC_AUCTION_STAGES = frozenset(
    i for i, (name, _w) in enumerate(_FC_STAGES) if name in ("Auction", "Sale Pending")
)

_FIRST_NAMES = (
    "James Mary Robert Patricia John Jennifer Michael Linda David Elizabeth William "
    "Barbara Richard Susan Joseph Jessica Thomas Sarah Charles Karen Christopher Lisa "
    "Daniel Nancy Matthew Betty Anthony Sandra Mark Margaret Donald Ashley Steven "
    "Kimberly Andrew Emily Paul Donna Joshua Michelle Kenneth Carol Kevin Amanda Brian "
    "Melissa George Deborah Timothy Stephanie Jose Maria Luis Ana Wei Mei Hiroshi Yuki "
    "Priya Arjun Fatima Omar"
).split()
_LAST_NAMES = (
    "Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez "
    "Hernandez Lopez Gonzalez Wilson Anderson Thomas Taylor Moore Jackson Martin Lee "
    "Perez Thompson White Harris Sanchez Clark Ramirez Lewis Robinson Walker Young "
    "Allen King Wright Scott Torres Nguyen Hill Flores Green Adams Nelson Baker Hall "
    "Rivera Campbell Mitchell Carter Roberts Chen Wang Kim Patel Singh Tanaka Cohen "
    "Murphy Sullivan Olsen Larsen Novak Kowalski Silva Costa"
).split()
_CORP_SUFFIXES = (
    "Holdings LLC",
    "Properties LLC",
    "Investments Inc",
    "Real Estate LP",
    "Capital LLC",
    "Homes LLC",
)
_STREET_NAMES = (
    "Alder Birch Cedar Maple Oak Pine Spruce Willow Elm Ash Hawthorne Belmont Division "
    "Burnside Clinton Franklin Lincoln Washington Jefferson Madison Adams Monroe Jackson "
    "Grant Sunset Highland Park Lake River Hill Valley Meadow Forest Ridge Canyon Mesa "
    "Vista Harbor Bay Ocean Palm Magnolia Cypress Juniper Aspen Sequoia Redwood Laurel "
    "Chestnut Hickory Poplar Sycamore Orchard Garden Mission College Church Mill Main"
).split()
_STREET_SUFFIXES = ("St", "Ave", "Rd", "Dr", "Ln", "Ct", "Way", "Blvd", "Pl")
_STREET_DIRS = ("", "", "", "", "N ", "S ", "E ", "W ", "NE ", "SE ", "NW ", "SW ")
_TRANSFER_TYPES = ("Grant Deed", "Warranty Deed", "Quitclaim Deed", "Trustee's Deed")

# Reference "today" for synthetic dates, fixed so the dataset never changes with the clock.
_TODAY = dt.date(2025, 1, 1).toordinal()
_XFER_FIRST = dt.date(1985, 1, 1).toordinal()
_XFER_LAST = dt.date(2024, 12, 15).toordinal()

# --------------------------------------------------------------------------------------
# Fields and fieldsets
# --------------------------------------------------------------------------------------

ALL_FIELDS: tuple[str, ...] = (
    "RadarID",
    "PropertyKey",
    "APN",
    "FIPS",
    "County",
    "Address",
    "FullAddress",
    "City",
    "State",
    "ZipFive",
    "Latitude",
    "Longitude",
    "PType",
    "Beds",
    "Baths",
    "SqFt",
    "LotSize",
    "LotSizeAcres",
    "YearBuilt",
    "Units",
    "Pool",
    "Owner",
    "Owner2",
    "OwnerFirstName",
    "OwnerLastName",
    "OwnershipType",
    "OwnerAddress",
    "OwnerCity",
    "OwnerState",
    "OwnerZipFive",
    "isSameMailingOrExempt",
    "isSameMailing",
    "isMailVacant",
    "isSiteVacant",
    "PrimaryName",
    "PrimaryFirstName",
    "PrimaryLastName",
    "PhoneAvailability",
    "EmailAvailability",
    "AVM",
    "AVMPerSqFt",
    "AssessedValue",
    "AvailableEquity",
    "EquityPercent",
    "CLTV",
    "TotalLoanBalance",
    "NumberLoans",
    "AnnualTaxes",
    "EstimatedRent",
    "isFreeAndClear",
    "isHighEquity",
    "FirstAmount",
    "FirstRate",
    "FirstLoanType",
    "FirstPurpose",
    "FirstDate",
    "LastTransferRecDate",
    "LastTransferValue",
    "LastTransferType",
    "inForeclosure",
    "ForeclosureStage",
    "ForeclosureRecDate",
    "DefaultAmount",
    "SaleDate",
    "inTaxDelinquency",
    "DelinquentAmount",
    "DelinquentYear",
    "isListedForSale",
    "ListingPrice",
    "DaysOnMarket",
)
_ALL_FIELD_SET = frozenset(ALL_FIELDS)

_DEFAULT_FIELDS: tuple[str, ...] = (
    "RadarID",
    "APN",
    "Address",
    "City",
    "State",
    "ZipFive",
    "County",
    "Owner",
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
)
FIELDSETS: dict[str, tuple[str, ...]] = {
    "All": ALL_FIELDS,
    "default": _DEFAULT_FIELDS,
    "Grid": (
        "RadarID",
        "Address",
        "City",
        "State",
        "ZipFive",
        "PType",
        "Beds",
        "Baths",
        "SqFt",
        "YearBuilt",
        "AVM",
        "EquityPercent",
        "Owner",
        "isSameMailingOrExempt",
    ),
    "Overview": _DEFAULT_FIELDS
    + (
        "FullAddress",
        "Latitude",
        "Longitude",
        "LotSize",
        "Units",
        "OwnershipType",
        "TotalLoanBalance",
        "CLTV",
        "NumberLoans",
        "LastTransferRecDate",
        "LastTransferValue",
        "inTaxDelinquency",
        "isListedForSale",
        "ListingPrice",
        "DaysOnMarket",
        "PhoneAvailability",
        "EmailAvailability",
    ),
}
MAX_FIELDS = 50

# --------------------------------------------------------------------------------------
# Criteria catalogue
# --------------------------------------------------------------------------------------

# name -> (column, multiplier applied to bounds, "Including Unknowns")
_RANGE_CRITERIA: dict[str, tuple[str, int, bool]] = {
    "Beds": ("beds", 1, True),
    "Baths": ("baths2", 2, True),
    "SqFt": ("sqft", 1, True),
    "YearBuilt": ("year", 1, True),
    "LotSize": ("lot", 1, True),
    "Units": ("units", 1, True),
    "AVM": ("avm", 1, False),
    "AvailableEquity": ("avail", 1, False),
    "EquityPercent": ("eqp", 1, False),
    "CLTV": ("cltv", 1, False),
    "TotalLoanBalance": ("bal", 1, False),
    "NumberLoans": ("nloans", 1, False),
    "DaysOnMarket": ("dom", 1, False),
    "FirstRate": ("rate", 100, False),
}
# name -> (column, inverted)
_BOOL_CRITERIA: dict[str, tuple[str, bool]] = {
    "isSameMailingOrExempt": ("same_mail", False),
    "isNotSameMailingOrExempt": ("same_mail", True),
    "isMailVacant": ("mail_vac", False),
    "isSiteVacant": ("site_vac", False),
    "inForeclosure": ("in_fc", False),
    "inTaxDelinquency": ("in_tax", False),
    "isListedForSale": ("listed", False),
    "Pool": ("pool", False),
}
# name -> (column, {upper-cased value: code})
_ENUM_CRITERIA: dict[str, tuple[str, dict[str, int]]] = {
    "ForeclosureStage": ("fc_stage", {n.upper(): i for i, (n, _w) in enumerate(_FC_STAGES)}),
    "OwnershipType": ("own_type", {n.upper(): i for i, (n, _w) in enumerate(_OWNERSHIP_TYPES)}),
    "FirstLoanType": ("loan_type", {n.upper(): i for i, (n, _w) in enumerate(_LOAN_TYPES)}),
}
# Real criterion names the simulator accepts but does not filter on (dates, listing
# status, list membership, ...). They must not 400, or a valid client request would fail.
IGNORED_CRITERIA: frozenset[str] = frozenset(
    {
        "LastTransferRecDate",
        "FirstDate",
        "FirstPurpose",
        "LastTransferDownPaymentPercent",
        "ListingStatus",
        "inDivorce",
        "InList",
        "OddEven",
        "ForeclosureRecDate",
    }
)
_SPECIAL_CRITERIA = frozenset(
    {
        "State",
        "County",
        "City",
        "ZipFive",
        "RadarID",
        "APN",
        "Address",
        "PropertyType",
    }
)
KNOWN_CRITERIA: frozenset[str] = frozenset(
    set(_RANGE_CRITERIA)
    | set(_BOOL_CRITERIA)
    | set(_ENUM_CRITERIA)
    | IGNORED_CRITERIA
    | _SPECIAL_CRITERIA
)

# --------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------

_M64 = (1 << 64) - 1
_ID_BITS = 28  # 7 hex digits
_ID_MOD = 1 << _ID_BITS
_ID_MULT = 0x5DEECE5  # odd, so idx -> idx * MULT + ADD is a bijection mod 2**28
_ID_MULT_INV = pow(_ID_MULT, -1, _ID_MOD)


def _mix(x: int) -> int:
    """splitmix64 finaliser: a cheap, well-spread deterministic hash of an integer."""
    x = (x + 0x9E3779B97F4A7C15) & _M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _M64
    return x ^ (x >> 31)


def _mdy(ordinal: int) -> str:
    """Format a date ordinal the way PropertyRadar does: M/D/YYYY without zero padding."""
    d = dt.date.fromordinal(ordinal)
    return f"{d.month}/{d.day}/{d.year}"


def _cumulative(weights: Iterable[float]) -> list[float]:
    total, out = 0.0, []
    for w in weights:
        total += w
        out.append(total)
    return [c / total for c in out]


def _allocate(total: int, weights: list[int]) -> list[int]:
    """Split ``total`` over ``weights`` proportionally; largest remainder keeps the sum."""
    wsum = sum(weights)
    if wsum == 0:
        return [0] * len(weights)
    raw = [total * w / wsum for w in weights]
    out = [math.floor(r) for r in raw]
    order = sorted(range(len(raw)), key=lambda i: (-(raw[i] - out[i]), i))
    for i in order[: total - sum(out)]:
        out[i] += 1
    return out


class CriteriaError(ValueError):
    """A request the real API would refuse with 400; ``str()`` is the ``error`` text."""

    def __init__(
        self,
        error: str,
        message: str = "Your search could not be run.",
        title: str = "Invalid search",
    ) -> None:
        super().__init__(error)
        self.error = error
        self.message = message
        self.title = title


def _bad_value(name: str) -> CriteriaError:
    return CriteriaError(
        f"Invalid value for criterion: {name}", f"The value given for {name} is not valid."
    )


# --------------------------------------------------------------------------------------
# Dataset
# --------------------------------------------------------------------------------------

_UNK_B = -128  # unknown marker in 'b' columns
_UNK_H = -32768  # unknown marker in 'h' columns
_UNK_I = -(2**31)  # unknown marker in 'i' columns


class Dataset:
    """Deterministic synthetic property records, stored column-wise.

    Why columns: 121k dicts of ~70 fields would cost well over a gigabyte and make
    filtering slow; typed ``array`` columns cost about 10 MB and a filter is a list
    comprehension over ints. Records are materialised (``record(i)``) only when returned.
    """

    CACHE_SIZE = 64

    def __init__(self, scale: float = 1.0, seed: int = 42) -> None:
        if scale < 0:
            raise ValueError("scale must be >= 0")
        started = time.perf_counter()
        self.scale = scale
        self.seed = seed
        self._id_add = _mix(seed) % _ID_MOD
        self._hash_base = (seed & 0xFFFFFF) << 40
        self.state_counts: dict[str, int] = {}
        self.county_counts: dict[str, int] = {}
        county_n: list[int] = []
        for code, _name, _pool, _tax in _STATES:
            state_total = round(sum(c.count for c in _COUNTIES if c.state == code) * scale)
            members = [c for c in _COUNTIES if c.state == code]
            split = _allocate(state_total, [c.count for c in members])
            self.state_counts[code] = state_total
            for c, n in zip(members, split, strict=True):
                self.county_counts[c.fips] = n
        # Records are laid out county by county in _COUNTIES order (states are contiguous).
        self._county_range: list[tuple[int, int]] = []
        pos = 0
        for c in _COUNTIES:
            n = self.county_counts[c.fips]
            county_n.append(n)
            self._county_range.append((pos, pos + n))
            pos += n
        self.size = pos
        if self.size >= _ID_MOD // 2:
            raise ValueError("dataset too large for 7-hex-digit RadarIDs")
        self._state_range: dict[str, tuple[int, int]] = {}
        for ci, c in enumerate(_COUNTIES):
            lo, hi = self._county_range[ci]
            prev = self._state_range.get(c.state)
            self._state_range[c.state] = (prev[0], hi) if prev else (lo, hi)
        self._build(county_n)
        self._cache: OrderedDict[str, array] = OrderedDict()
        self._cache_lock = threading.Lock()
        self._cache_hits = 0
        self._cache_misses = 0
        self.build_seconds = time.perf_counter() - started

    # -- construction ------------------------------------------------------------------

    def _build(self, county_n: list[int]) -> None:
        rng = random.Random(self.seed)
        r = rng.random
        gauss = rng.gauss
        cols: dict[str, array] = {
            "county": array("B"),
            "city": array("H"),
            "zip": array("I"),
            "ptype": array("B"),
            "beds": array("b"),
            "baths2": array("b"),
            "sqft": array("i"),
            "lot": array("i"),
            "year": array("h"),
            "units": array("h"),
            "pool": array("B"),
            "own_type": array("B"),
            "same_mail": array("B"),
            "mail_vac": array("B"),
            "site_vac": array("B"),
            "avm": array("i"),
            "bal": array("i"),
            "avail": array("i"),
            "eqp": array("h"),
            "cltv": array("h"),
            "nloans": array("b"),
            "rate": array("h"),
            "loan_type": array("b"),
            "xfer_day": array("i"),
            "xfer_value": array("i"),
            "in_fc": array("B"),
            "fc_stage": array("b"),
            "in_tax": array("B"),
            "listed": array("B"),
            "dom": array("h"),
        }
        ptype_cum = _cumulative(s for _c, _d, s in _PTYPES)
        own_cum = _cumulative(w for _n, w in _OWNERSHIP_TYPES)
        loan_cum = _cumulative(w for _n, w in _LOAN_TYPES)
        fc_cum = _cumulative(w for _n, w in _FC_STAGES)
        ptype_factor = (1.0, 0.65, 1.35, 0.25, 0.30)
        xfer_span = _XFER_LAST - _XFER_FIRST
        a = {k: v.append for k, v in cols.items()}
        for ci, county in enumerate(_COUNTIES):
            n = county_n[ci]
            _code, _name, pool_p, _tax = _STATES[_STATE_INDEX[county.state]]
            first_city = _CITY_FIRST[ci]
            n_cities = len(county.cities)
            for _ in range(n):
                # location: the first city of a county is the biggest
                u = r()
                k = 0 if (n_cities == 1 or u < 0.5) else 1 + int((u - 0.5) * 2 * (n_cities - 1))
                city = first_city + min(k, n_cities - 1)
                zips = _CITIES[city][2]
                a["county"](ci)
                a["city"](city)
                a["zip"](zips[int(r() * len(zips))])
                # physical
                pt = bisect_right(ptype_cum, r())
                if pt == _PT_SFR:
                    beds = 2 + int(r() * 4)
                    baths2 = max(2, beds * 2 - 2 + int(r() * 3))
                    sqft = 600 + beds * 350 + int(r() * 900)
                    lot = 3000 + int(r() * 9000)
                    year = 1920 + int(r() * 103)
                    units = 1
                elif pt == _PT_CND:
                    beds = 1 + int(r() * 3)
                    baths2 = 2 + int(r() * 3)
                    sqft = 450 + beds * 300 + int(r() * 400)
                    lot = 0
                    year = 1960 + int(r() * 63)
                    units = 1
                elif pt == _PT_MFR:
                    units = 2 + int(r() * 3)
                    beds = units * 2 + int(r() * 3) - 1
                    baths2 = units * 2 + int(r() * 3)
                    sqft = units * 800 + int(r() * 900)
                    lot = 4000 + int(r() * 8000)
                    year = 1900 + int(r() * 116)
                elif pt == _PT_MH:
                    beds = 2 + int(r() * 2)
                    baths2 = 2 + int(r() * 3)
                    sqft = 800 + int(r() * 900)
                    lot = 2000 + int(r() * 6000)
                    year = 1965 + int(r() * 51)
                    units = 1
                else:  # vacant land: no building, so beds/baths/sqft/year are unknown
                    beds, baths2, sqft, year = _UNK_B, _UNK_B, _UNK_I, _UNK_H
                    lot = 5000 + int(r() * 195000)
                    units = 0
                a["ptype"](pt)
                a["beds"](beds)
                a["baths2"](baths2)
                a["sqft"](sqft)
                a["lot"](lot)
                a["year"](year)
                a["units"](units)
                a["pool"](1 if (pt != _PT_VL and r() < pool_p) else 0)
                # owner
                own = bisect_right(own_cum, r())
                a["own_type"](own)
                absentee = r() < (0.85 if own == _OWN_CORPORATE else 0.225)
                a["same_mail"](0 if absentee else 1)
                a["mail_vac"](1 if r() < 0.02 else 0)
                a["site_vac"](1 if r() < (0.25 if pt == _PT_VL else 0.02) else 0)
                # value and loans
                avm = county.median_avm * ptype_factor[pt] * math.exp(gauss(0.0, 0.35))
                avm = max(20000, int(round(avm, -3)))
                in_fc = r() < 0.08
                u = r()
                nloans = 0 if u < 0.28 else (1 if u < 0.85 else 2)
                if in_fc and nloans == 0:
                    nloans = 1
                if nloans:
                    ltv = (0.75 + r() * 0.45) if in_fc else (0.12 + r() * 0.78 + 0.1 * (nloans - 1))
                    bal = int(round(avm * ltv, -2))
                    rate = 250 + int(r() * 500)
                    loan_type = bisect_right(loan_cum, r())
                else:
                    bal, rate, loan_type = 0, _UNK_H, _UNK_B
                a["avm"](avm)
                a["bal"](bal)
                a["avail"](avm - bal)
                a["eqp"](round(100 * (avm - bal) / avm))
                a["cltv"](round(100 * bal / avm))
                a["nloans"](nloans)
                a["rate"](rate)
                a["loan_type"](loan_type)
                # transfer
                frac = r()
                a["xfer_day"](_XFER_FIRST + int(frac * xfer_span))
                a["xfer_value"](int(round(avm * (0.35 + 0.6 * frac) * (0.9 + r() * 0.2), -3)))
                # distress and listing
                a["in_fc"](1 if in_fc else 0)
                a["fc_stage"](bisect_right(fc_cum, r()) if in_fc else _UNK_B)
                a["in_tax"](1 if r() < 0.05 else 0)
                if r() < 0.06:
                    a["listed"](1)
                    a["dom"](1 + int(r() * 180))
                else:
                    a["listed"](0)
                    a["dom"](_UNK_H)
        self._cols = cols

    # -- identity ----------------------------------------------------------------------

    def __len__(self) -> int:
        return self.size

    def radar_id(self, idx: int) -> str:
        """RadarID for an index: ``P`` + 7 hex digits, a bijection of the index."""
        return f"P{(idx * _ID_MULT + self._id_add) % _ID_MOD:07X}"

    def index_of(self, radar_id: str) -> int | None:
        """Inverse of :meth:`radar_id`; returns the raw index even past ``size``
        (phantom records created by drift), or None if the id is malformed."""
        if not isinstance(radar_id, str) or len(radar_id) != 8 or radar_id[0] not in "Pp":
            return None
        try:
            h = int(radar_id[1:], 16)
        except ValueError:
            return None
        return ((h - self._id_add) * _ID_MULT_INV) % _ID_MOD

    def _h(self, idx: int, salt: int) -> int:
        return _mix(self._hash_base ^ (idx << 8) ^ salt)

    # -- materialising records ---------------------------------------------------------

    def address(self, idx: int) -> str:
        h = self._h(idx, 1)
        num = 100 + h % 19900
        h >>= 16
        name = _STREET_NAMES[h % len(_STREET_NAMES)]
        h >>= 8
        suffix = _STREET_SUFFIXES[h % len(_STREET_SUFFIXES)]
        h >>= 8
        direction = _STREET_DIRS[h % len(_STREET_DIRS)]
        return f"{num} {direction}{name} {suffix}"

    def apn(self, idx: int) -> str:
        ci = self._cols["county"][idx]
        style = _COUNTIES[ci].apn_style
        if style == "R":
            return f"R{(idx * 7919 + ci * 101) % 10**6:06d}"
        digits = f"{(idx * 7919 + ci * 1_000_003) % 10**10:010d}"
        if style == "dash":
            return f"{digits[:4]}-{digits[4:7]}-{digits[7:]}"
        return digits

    def record(self, idx: int, radar_id: str | None = None) -> dict[str, Any]:
        """Build the full result object for one record, with the API's wire types."""
        c = self._cols
        ci = c["county"][idx]
        county = _COUNTIES[ci]
        state = county.state
        _code, _sname, _pool_p, tax_rate = _STATES[_STATE_INDEX[state]]
        city_name = _CITIES[c["city"][idx]][0]
        zip5 = c["zip"][idx]
        address = self.address(idx)
        pt = c["ptype"][idx]
        beds, baths2, sqft = c["beds"][idx], c["baths2"][idx], c["sqft"][idx]
        year, lot, units = c["year"][idx], c["lot"][idx], c["units"][idx]
        avm, bal, avail = c["avm"][idx], c["bal"][idx], c["avail"][idx]
        eqp, nloans, rate = c["eqp"][idx], c["nloans"][idx], c["rate"][idx]
        own, same_mail = c["own_type"][idx], c["same_mail"][idx]
        in_fc, stage = c["in_fc"][idx], c["fc_stage"][idx]
        in_tax, listed = c["in_tax"][idx], c["listed"][idx]
        xfer_day = c["xfer_day"][idx]

        h_geo, h_name, h_mail, h_misc = (self._h(idx, s) for s in (2, 3, 4, 5))
        lat = county.lat + ((h_geo & 0xFFFF) / 0xFFFF - 0.5) * 0.4
        lon = county.lon + (((h_geo >> 16) & 0xFFFF) / 0xFFFF - 0.5) * 0.5

        first = _FIRST_NAMES[h_name % len(_FIRST_NAMES)]
        last = _LAST_NAMES[(h_name >> 8) % len(_LAST_NAMES)]
        other_first = _FIRST_NAMES[(h_name >> 16) % len(_FIRST_NAMES)]
        other_last = _LAST_NAMES[(h_name >> 24) % len(_LAST_NAMES)]
        owner_first: str | None = first
        owner_last: str | None = last
        owner2: str | None = None
        if own == _OWN_CORPORATE:
            owner = f"{last} {_CORP_SUFFIXES[(h_name >> 32) % len(_CORP_SUFFIXES)]}"
            owner_first = owner_last = None
        elif own == _OWN_TRUST:
            owner = f"{last} Family Trust"
        else:
            owner = f"{last} {first}"
            if own == 1:  # couple
                owner2 = f"{last} {other_first}"
            elif own == 2:  # multiple owners
                owner2 = f"{other_last} {other_first}"

        if same_mail:
            m_addr, m_city, m_state, m_zip = address, city_name, state, zip5
        else:
            pick = h_mail % 100
            if pick < 50:  # same county
                k = (h_mail >> 8) % len(county.cities)
                m_city, m_zips = county.cities[k]
                m_state, m_zip = state, m_zips[(h_mail >> 16) % len(m_zips)]
            elif pick < 80:  # anywhere in the dataset
                m_city, mci, m_zips = _CITIES[(h_mail >> 8) % len(_CITIES)]
                m_state, m_zip = _COUNTIES[mci].state, m_zips[(h_mail >> 16) % len(m_zips)]
            else:
                m_city, m_state, m_zip = _REMOTE_MAIL[(h_mail >> 8) % len(_REMOTE_MAIL)]
            if (h_mail >> 24) % 100 < 15:
                m_addr = f"PO Box {1 + (h_mail >> 32) % 9000}"
            else:
                m_addr = self.address(idx + 1_000_003)

        taxes = int(avm * tax_rate)
        first_amount = int(round(bal * (1.05 + (h_misc % 20) / 100), -3)) if nloans else None
        first_day = max(xfer_day, xfer_day + (h_misc >> 8) % 3000) if nloans else None
        if first_day is not None:
            first_day = min(first_day, _TODAY - 30)
        fc_rec = _TODAY - 1 - (h_misc >> 20) % 300 if in_fc else None
        auction = in_fc and stage in _FC_AUCTION_STAGES
        return {
            "RadarID": radar_id or self.radar_id(idx),
            "PropertyKey": (idx * 2654435761 + self.seed) % 10**9 + 10**9,
            "APN": self.apn(idx),
            "FIPS": county.fips,
            "County": county.fips,
            "Address": address,
            "FullAddress": f"{address}, {city_name}, {state} {zip5:05d}",
            "City": city_name,
            "State": state,
            "ZipFive": zip5,
            "Latitude": round(lat, 6),
            "Longitude": round(lon, 6),
            "PType": _PTYPES[pt][1],
            "Beds": None if beds == _UNK_B else beds,
            "Baths": None
            if baths2 == _UNK_B
            else (str(baths2 // 2) if baths2 % 2 == 0 else f"{baths2 / 2:.1f}"),
            "SqFt": None if sqft == _UNK_I else sqft,
            "LotSize": lot,
            "LotSizeAcres": round(lot / 43560, 2),
            "YearBuilt": None if year == _UNK_H else str(year),
            "Units": units,
            "Pool": c["pool"][idx],
            "Owner": owner,
            "Owner2": owner2,
            "OwnerFirstName": owner_first,
            "OwnerLastName": owner_last,
            "OwnershipType": _OWNERSHIP_TYPES[own][0],
            "OwnerAddress": m_addr,
            "OwnerCity": m_city,
            "OwnerState": m_state,
            "OwnerZipFive": m_zip,
            "isSameMailingOrExempt": same_mail,
            "isSameMailing": same_mail,
            "isMailVacant": c["mail_vac"][idx],
            "isSiteVacant": c["site_vac"][idx],
            "PrimaryName": f"{first} {last}",
            "PrimaryFirstName": first,
            "PrimaryLastName": last,
            "PhoneAvailability": "available" if (h_misc >> 40) % 100 < 72 else "unavailable",
            "EmailAvailability": "available" if (h_misc >> 48) % 100 < 55 else "unavailable",
            "AVM": str(avm),
            "AVMPerSqFt": avm // sqft if sqft > 0 else None,
            "AssessedValue": int(avm * (0.6 + (h_misc >> 12) % 35 / 100)),
            "AvailableEquity": str(avail),
            "EquityPercent": str(eqp),
            "CLTV": c["cltv"][idx],
            "TotalLoanBalance": str(bal),
            "NumberLoans": nloans,
            "AnnualTaxes": taxes,
            "EstimatedRent": None if pt == _PT_VL else int(round(avm * 0.0045, -1)),
            "isFreeAndClear": 1 if bal == 0 else 0,
            "isHighEquity": 1 if eqp >= 50 else 0,
            "FirstAmount": first_amount,
            "FirstRate": None if rate == _UNK_H else rate / 100,
            "FirstLoanType": None if nloans == 0 else _LOAN_TYPES[c["loan_type"][idx]][0],
            "FirstPurpose": None
            if nloans == 0
            else ("Purchase" if first_day == xfer_day else "Refinance"),
            "FirstDate": None if first_day is None else _mdy(first_day),
            "LastTransferRecDate": _mdy(xfer_day),
            "LastTransferValue": c["xfer_value"][idx],
            "LastTransferType": _TRANSFER_TYPES[(h_misc >> 28) % len(_TRANSFER_TYPES)],
            "inForeclosure": in_fc,
            "ForeclosureStage": _FC_STAGES[stage][0] if in_fc else None,
            "ForeclosureRecDate": None if fc_rec is None else _mdy(fc_rec),
            "DefaultAmount": int(bal * (0.03 + (h_misc >> 36) % 8 / 100)) if in_fc else None,
            "SaleDate": _mdy(_TODAY + 7 + (h_misc >> 44) % 80) if auction else None,
            "inTaxDelinquency": in_tax,
            "DelinquentAmount": int(taxes * (1 + (h_misc >> 52) % 200 / 100)) if in_tax else None,
            "DelinquentYear": 2019 + (h_misc >> 56) % 5 if in_tax else None,
            "isListedForSale": listed,
            "ListingPrice": int(round(avm * (0.95 + (h_misc >> 24) % 17 / 100), -3))
            if listed
            else None,
            "DaysOnMarket": c["dom"][idx] if listed else None,
        }

    # -- searching ---------------------------------------------------------------------

    def cache_info(self) -> dict[str, int]:
        with self._cache_lock:
            return {
                "hits": self._cache_hits,
                "misses": self._cache_misses,
                "size": len(self._cache),
                "maxsize": self.CACHE_SIZE,
            }

    def match(self, criteria: Any) -> array:
        """Indices (ascending) of the records matching ``criteria``.

        Validates first (raising :class:`CriteriaError` for what the API would 400),
        then serves from the LRU keyed by the canonical JSON of the criteria.
        """
        filters = self._compile(criteria)
        key = json.dumps(criteria, sort_keys=True, separators=(",", ":"))
        with self._cache_lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
                self._cache_hits += 1
                return hit
            self._cache_misses += 1
        result = array("I", self._run(filters))
        with self._cache_lock:
            self._cache[key] = result
            self._cache.move_to_end(key)
            while len(self._cache) > self.CACHE_SIZE:
                self._cache.popitem(last=False)
        return result

    def count(self, criteria: Any) -> int:
        return len(self.match(criteria))

    def _compile(self, criteria: Any) -> list[tuple[str, Any]]:
        """Validate criteria and turn them into (kind, argument) filter steps."""
        if not isinstance(criteria, list):
            raise CriteriaError("Criteria must be an array")
        steps: list[tuple[str, Any]] = []
        for item in criteria:
            if not isinstance(item, dict):
                raise CriteriaError("Invalid criterion: each item must be an object")
            for required in ("name", "value"):
                if required not in item:
                    raise CriteriaError(f"Missing required criterion field: {required}")
            name, values = item["name"], item["value"]
            if not isinstance(name, str) or name not in KNOWN_CRITERIA:
                raise CriteriaError(
                    f"Unexpected Criterion: {name}",
                    "One of your search criteria is not recognized.",
                )
            if not isinstance(values, list):
                raise CriteriaError(f"Criterion value must be an array: {name}")
            if not values:
                raise CriteriaError(f"Criterion has no values: {name}")
            if name in IGNORED_CRITERIA:
                continue
            steps.append(self._compile_one(name, values))
        return steps

    def _compile_one(self, name: str, values: list[Any]) -> tuple[str, Any]:
        if name == "State":
            ranges = []
            for v in values:
                if not isinstance(v, str):
                    raise _bad_value(name)
                code = _STATE_BY_NAME.get(v.strip().upper(), v.strip().upper())
                if code in self._state_range:
                    ranges.append(self._state_range[code])
            return ("ranges", ranges)
        if name == "County":
            ranges = []
            for v in values:
                if isinstance(v, bool) or not isinstance(v, (int, str)):
                    raise _bad_value(name)
                text = str(v).strip()
                if not text.isdigit() or not 4 <= len(text) <= 5:
                    raise _bad_value(name)
                ci = _COUNTY_BY_FIPS.get(text.zfill(5))
                if ci is not None:
                    ranges.append(self._county_range[ci])
            return ("ranges", ranges)
        if name == "RadarID":
            ids = set()
            for v in values:
                if not isinstance(v, str):
                    raise _bad_value(name)
                idx = self.index_of(v.strip().upper())
                if idx is not None and idx < self.size:
                    ids.add(idx)
            return ("ids", sorted(ids))
        if name == "City":
            if not all(isinstance(v, str) for v in values):
                raise _bad_value(name)
            wanted = {v.strip().upper() for v in values}
            return (
                "in",
                ("city", {i for i, (cn, _c, _z) in enumerate(_CITIES) if cn.upper() in wanted}),
            )
        if name == "ZipFive":
            zips = set()
            for v in values:
                if isinstance(v, bool) or not isinstance(v, (int, str)):
                    raise _bad_value(name)
                try:
                    zips.add(int(str(v).strip()))
                except ValueError:
                    raise _bad_value(name) from None
            return ("in", ("zip", zips))
        if name in ("APN", "Address"):
            if not all(isinstance(v, str) and v for v in values):
                raise _bad_value(name)
            return ("prefix", (name, tuple(v.upper() for v in values)))
        if name == "PropertyType":
            codes = set()
            for v in values:
                if (
                    not isinstance(v, dict)
                    or v.get("name") != "PType"
                    or not isinstance(v.get("value"), list)
                ):
                    raise CriteriaError(
                        "Invalid value for criterion: PropertyType",
                        'PropertyType takes [{"name": "PType", "value": ["SFR", ...]}].',
                    )
                for code in v["value"]:
                    if not isinstance(code, str) or code.upper() not in _PTYPE_BY_CODE:
                        raise CriteriaError(f"Invalid PType value: {code}")
                    codes.add(_PTYPE_BY_CODE[code.upper()])
            return ("in", ("ptype", codes))
        if name in _BOOL_CRITERIA:
            column, inverted = _BOOL_CRITERIA[name]
            wanted = set()
            for v in values:
                if v in (1, "1"):  # also True, which == 1
                    wanted.add(0 if inverted else 1)
                elif v in (0, "0"):
                    wanted.add(1 if inverted else 0)
                else:
                    raise CriteriaError(f"Invalid yesno value for criterion: {name}")
            return ("in", (column, wanted))
        if name in _ENUM_CRITERIA:
            column, lookup = _ENUM_CRITERIA[name]
            codes = set()
            for v in values:
                if not isinstance(v, str) or v.strip().upper() not in lookup:
                    raise _bad_value(name)
                codes.add(lookup[v.strip().upper()])
            return ("in", (column, codes))
        # remaining: ranges
        column, mult, with_unknown = _RANGE_CRITERIA[name]
        unknown = {"b": _UNK_B, "h": _UNK_H, "i": _UNK_I}[self._cols[column].typecode]
        bounds = []
        for pair in values:
            if not isinstance(pair, list) or len(pair) != 2:
                raise CriteriaError(
                    f"Invalid range for criterion: {name}",
                    f"{name} takes ranges like [[min, max]].",
                )
            lo, hi = (self._number(name, x) for x in pair)
            lo_v = (-math.inf if with_unknown else unknown + 1) if lo is None else lo * mult - 1e-9
            hi_v = math.inf if hi is None else hi * mult + 1e-9
            bounds.append((lo_v, hi_v))
        return ("range", (column, bounds))

    @staticmethod
    def _number(name: str, x: Any) -> float | None:
        if x is None:
            return None
        if isinstance(x, bool):
            raise _bad_value(name)
        if isinstance(x, (int, float)):
            return float(x)
        if isinstance(x, str):
            try:
                return float(x.replace(",", "").strip())
            except ValueError:
                raise _bad_value(name) from None
        raise _bad_value(name)

    def _run(self, steps: list[tuple[str, Any]]) -> list[int]:
        # 1. Location ranges and RadarIDs give the starting candidates (cheap).
        spans: list[tuple[int, int]] = [(0, self.size)]
        for kind, arg in steps:
            if kind == "ranges":
                spans = [(max(a, c), min(b, d)) for a, b in spans for c, d in sorted(set(arg))]
                spans = [(a, b) for a, b in spans if a < b]
        cand: list[int] | range
        ids = [arg for kind, arg in steps if kind == "ids"]
        if ids:
            wanted = set(ids[0]).intersection(*ids[1:])
            cand = [i for i in sorted(wanted) if any(a <= i < b for a, b in spans)]
        elif len(spans) == 1:
            cand = range(*spans[0])
        else:
            cand = [i for a, b in sorted(spans) for i in range(a, b)]
        # 2. Column filters, then 3. string prefixes (slowest) last.
        order = {"in": 0, "range": 0, "prefix": 1}
        for kind, arg in sorted((s for s in steps if s[0] in order), key=lambda s: order[s[0]]):
            if kind == "in":
                col = self._cols[arg[0]]
                allowed = arg[1]
                if len(allowed) == 1:
                    (only,) = allowed
                    cand = [i for i in cand if col[i] == only]
                else:
                    cand = [i for i in cand if col[i] in allowed]
            elif kind == "range":
                col = self._cols[arg[0]]
                bounds = arg[1]
                if len(bounds) == 1:
                    lo, hi = bounds[0]
                    cand = [i for i in cand if lo <= col[i] <= hi]
                else:
                    cand = [i for i in cand if any(lo <= col[i] <= hi for lo, hi in bounds)]
            else:
                what, prefixes = arg
                getter = self.apn if what == "APN" else self.address
                cand = [i for i in cand if getter(i).upper().startswith(prefixes)]
        return list(cand)

    def approx_memory_bytes(self) -> int:
        """Bytes held by the columns (the bulk of the dataset's memory)."""
        return sum(col.itemsize * len(col) for col in self._cols.values())


_DATASETS: dict[tuple[float, int], Dataset] = {}
_DATASETS_LOCK = threading.Lock()


def get_dataset(scale: float = 1.0, seed: int = 42) -> Dataset:
    """Shared, lazily built dataset: it is immutable, so every simulator can reuse it."""
    with _DATASETS_LOCK:
        ds = _DATASETS.get((scale, seed))
        if ds is None:
            ds = _DATASETS[(scale, seed)] = Dataset(scale=scale, seed=seed)
        return ds


# --------------------------------------------------------------------------------------
# Simulator
# --------------------------------------------------------------------------------------

FAULT_KINDS: tuple[str, ...] = ("429", "500", "502", "503", "slow", "malformed")
_PRE_FAULTS = frozenset({"429", "500", "502", "503"})
_LOG_MAX = 100_000


def _default_fault_kinds() -> list[str]:
    return list(FAULT_KINDS)


@dataclass
class SimulatorConfig:
    """Knobs of the simulator. All are safe to change while it serves (``configure``)."""

    token: str | None = "demo-token"  # None: any non-empty bearer token is accepted
    latency_ms: float = 0.0
    max_limit: int = 1000
    fault_rate: float = 0.0
    fault_kinds: list[str] = field(default_factory=_default_fault_kinds)
    retry_after: float = 1.0
    slow_seconds: float = 5.0
    scripted_faults: list[dict] = field(default_factory=list)
    total_drift: int = 0
    seed: int = 42
    # One price for the demo: the app estimates with Config.PRICE_PER_EXPORT too.
    price_per_record: float = Config.PRICE_PER_EXPORT
    # Standing fault modes (module docstring); None / 0 / 0.0 = off.
    total_after_first: int | None = None
    limit_cap: int | None = None
    missing_radar_id_every: int = 0
    oversize_field: str | None = None
    oversize_length: int = 1000
    trickle_seconds: float = 0.0
    rotate_token_after: int | None = None


_CONFIG_FIELDS = {f.name for f in dataclasses.fields(SimulatorConfig)}


def _validate_script(entry: Any) -> dict:
    if not isinstance(entry, dict):
        raise ValueError("each scripted fault must be an object")
    unknown = set(entry) - {"kind", "purchase", "start", "times", "after"}
    if unknown:
        raise ValueError(f"unknown scripted fault keys: {sorted(unknown)}")
    if entry.get("kind") not in FAULT_KINDS:
        raise ValueError(f"scripted fault kind must be one of {FAULT_KINDS}")
    out: dict[str, Any] = {"kind": entry["kind"], "times": int(entry.get("times", 1))}
    if out["times"] < -1:
        raise ValueError("times must be -1 (forever) or >= 0")
    if entry.get("purchase") is not None:
        if entry["purchase"] not in (0, 1, True, False):
            raise ValueError("purchase must be 0 or 1")
        out["purchase"] = int(entry["purchase"])
    if entry.get("start") is not None:
        out["start"] = int(entry["start"])
    # "after": let this many matching requests through first (e.g. fail the 7th purchase).
    out["after"] = int(entry.get("after", 0))
    if out["after"] < 0:
        raise ValueError("after must be >= 0")
    return out


def _coerce_config(changes: dict[str, Any]) -> dict[str, Any]:
    """Validate and type-coerce config changes; raises ValueError on anything bad."""
    unknown = set(changes) - _CONFIG_FIELDS
    if unknown:
        raise ValueError(f"unknown config fields: {sorted(unknown)}")
    out: dict[str, Any] = {}
    for key, value in changes.items():
        try:
            if key == "token":
                out[key] = None if value in (None, "") else str(value)
            elif key in (
                "latency_ms",
                "retry_after",
                "slow_seconds",
                "price_per_record",
                "trickle_seconds",
            ):
                if isinstance(value, bool):
                    raise ValueError
                out[key] = float(value)
                if not 0 <= out[key] < math.inf:
                    raise ValueError
            elif key in ("total_after_first", "limit_cap", "rotate_token_after"):
                if value is None:
                    out[key] = None
                    continue
                if isinstance(value, bool) or int(value) != value:
                    raise ValueError
                out[key] = int(value)
                if out[key] < (1 if key == "limit_cap" else 0):
                    raise ValueError
            elif key in ("missing_radar_id_every", "oversize_length"):
                if isinstance(value, bool) or int(value) != value:
                    raise ValueError
                out[key] = int(value)
                if out[key] < (1 if key == "oversize_length" else 0):
                    raise ValueError
            elif key == "oversize_field":
                if value in (None, ""):
                    out[key] = None
                elif value in _ALL_FIELD_SET:
                    out[key] = value
                else:
                    raise ValueError
            elif key == "fault_rate":
                out[key] = float(value)
                if not 0.0 <= out[key] <= 1.0:
                    raise ValueError
            elif key in ("max_limit", "total_drift", "seed"):
                if isinstance(value, bool):
                    raise ValueError
                out[key] = int(value)
                if key == "max_limit" and out[key] < 1:
                    raise ValueError
            elif key == "fault_kinds":
                kinds = [str(k) for k in value]
                if not all(k in FAULT_KINDS for k in kinds):
                    raise ValueError
                out[key] = kinds
            elif key == "scripted_faults":
                out[key] = [_validate_script(e) for e in value]
        except (TypeError, ValueError) as exc:
            if key == "scripted_faults" and str(exc):
                raise ValueError(str(exc)) from None
            raise ValueError(f"invalid value for {key}: {value!r}") from None
    return out


# RadarIDs of records grown by total_after_first sit far past the dataset and drift clones.
_GROWN_ID_OFFSET = 10_000_000
# trickle_seconds: the most time between two pieces of a trickled body.
_TRICKLE_GAP = 0.1


def _price(price_per_record: float) -> Decimal:
    # repr() gives the shortest exact text of the float: 0.1 -> Decimal("0.1"), not 0.1000...0055
    return Decimal(repr(price_per_record))


def _cost_text(records: int, price_per_record: float) -> str:
    """``totalCost`` as the API sends it, a string: "40" for 400 records at 0.1."""
    if records == 0:
        return "0"
    text = format(_price(price_per_record) * records, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def _spoil_records(results: list[dict[str, Any]], cfg: SimulatorConfig) -> None:
    """Apply the record-level faults (missing RadarID, oversize field) to purchased rows."""
    every = cfg.missing_radar_id_every
    name, length = cfg.oversize_field, cfg.oversize_length
    for number, record in enumerate(results, 1):
        if every and number % every == 0:
            record.pop("RadarID", None)
        if name is not None and name in record:
            base = "" if record[name] is None else str(record[name])
            record[name] = (base + "x" * length)[:length]


def _trickle(response: Response, seconds: float) -> None:
    """Send ``response``'s body in pieces spread evenly over ``seconds``: the headers go
    at once, then a piece at most every ``_TRICKLE_GAP`` s (a per-read timeout never
    fires; only a deadline on the whole request does)."""
    body = response.get_data()
    count = max(1, min(len(body), math.ceil(seconds / _TRICKLE_GAP)))
    size = math.ceil(len(body) / count) if body else 1
    pieces = [body[i : i + size] for i in range(0, len(body), size)] or [b""]
    gap = seconds / len(pieces)

    def stream() -> Iterator[bytes]:
        yield b""  # Werkzeug sends the status line and headers on the first write
        for piece in pieces:
            time.sleep(gap)
            yield piece

    response.response = stream()
    response.headers["Content-Length"] = str(len(body))


class _ApiError(Exception):
    def __init__(self, status: int, error: str, message: str, title: str) -> None:
        super().__init__(error)
        self.status, self.error, self.message, self.title = status, error, message, title


def _bad_request(
    error: str,
    message: str = "Your request could not be processed.",
    title: str = "Invalid request",
) -> _ApiError:
    return _ApiError(400, error, message, title)


class Simulator:
    """The WSGI application. One instance holds config, fault state and statistics."""

    def __init__(
        self, config: SimulatorConfig | None = None, dataset: Dataset | None = None
    ) -> None:
        self.config = config if config is not None else SimulatorConfig()
        self.dataset = dataset if dataset is not None else get_dataset(1.0, self.config.seed)
        self._lock = threading.RLock()
        self._rng = random.Random(self.config.seed)
        self._script_src: list[dict] | None = None
        self._script_left: list[int] = []
        self._reset_state()

    # -- control -----------------------------------------------------------------------

    def _reset_state(self) -> None:
        self._log: deque[dict[str, Any]] = deque(maxlen=_LOG_MAX)
        self._purchase_requests = 0
        self._count_requests = 0
        self._billed_records = 0
        self._billed_ids: dict[str, int] = {}
        self._faults: dict[str, int] = {}
        self._billed_cost = Decimal(0)
        self._drift_steps = 0
        # Searches (canonical criteria) whose first page was served: total_after_first.
        self._first_page_served: set[str] = set()
        # rotate_token_after: authenticated requests left before the token is revoked.
        self._token_uses_left = self.config.rotate_token_after
        self._token_revoked = False
        self._rng.seed(self.config.seed)
        self._sync_script(force=True)

    def _sync_script(self, force: bool = False) -> None:
        """(Re)arm the scripted fault counters when the list object was replaced."""
        if force or self.config.scripted_faults is not self._script_src:
            self._script_src = self.config.scripted_faults
            self._script_left = [int(e.get("times", 1)) for e in self._script_src]
            self._script_skip = [int(e.get("after", 0)) for e in self._script_src]

    def configure(self, **changes: Any) -> None:
        """Apply config changes atomically. Replacing ``scripted_faults`` re-arms them;
        changing ``seed`` re-seeds the fault RNG (the dataset is not rebuilt); setting
        ``total_after_first`` starts every search afresh; setting ``rotate_token_after``
        arms the rotation, and setting ``token`` alone (the rotated-in token) ends it."""
        clean = _coerce_config(changes)
        with self._lock:
            if "token" in clean and "rotate_token_after" not in clean:
                clean["rotate_token_after"] = None
            for key, value in clean.items():
                setattr(self.config, key, value)
            if "scripted_faults" in clean:
                self._sync_script(force=True)
            if "seed" in clean:
                self._rng.seed(clean["seed"])
            if "total_after_first" in clean:
                self._first_page_served.clear()
            if "rotate_token_after" in clean:
                self._token_uses_left = clean["rotate_token_after"]
                self._token_revoked = False

    def reset(self) -> None:
        """Clear statistics, drift and scripted fault counters; re-arm the standing fault
        modes (first pages served, token rotation); keep config and dataset."""
        with self._lock:
            self._reset_state()

    def config_dict(self) -> dict[str, Any]:
        with self._lock:
            return dataclasses.asdict(self.config)

    def stats(self, tail: int | None = None) -> dict[str, Any]:
        """Snapshot of what was served and billed (``tail``: only the last N log rows).

        Keys: ``requests`` (log of the last 100,000 API requests: t, method, path,
        purchase, start, limit, status, result_count, fault, request_id, billed);
        ``purchase_requests`` (Purchase=1 requests the server processed with a 200,
        including slow and malformed deliveries); ``count_requests`` (the same for
        Purchase=0); ``billed_records`` and ``billed_radar_ids`` (every billed row, also
        for slow/malformed answers the client never saw); ``billed_cost`` (what those
        rows cost at ``price_per_record``) and ``price_per_record``; ``faults`` (kind ->
        count); ``drift`` (current result-set offset from ``total_drift``);
        ``token_revoked`` (``rotate_token_after`` has fired and no new token was set).
        """
        with self._lock:
            log = list(self._log)
            if tail is not None:
                log = log[-tail:] if tail > 0 else []
            return {
                "requests": [dict(e) for e in log],
                "purchase_requests": self._purchase_requests,
                "count_requests": self._count_requests,
                "billed_records": self._billed_records,
                "billed_cost": float(self._billed_cost),
                "price_per_record": self.config.price_per_record,
                "billed_radar_ids": dict(self._billed_ids),
                "faults": dict(self._faults),
                "drift": self._drift_steps * self.config.total_drift,
                "token_revoked": self._token_revoked,
            }

    # -- WSGI --------------------------------------------------------------------------

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        request = Request(environ)
        if request.path.startswith("/_sim/"):
            response = self._control(request)
        else:
            response = self._api(request)
        return response(environ, start_response)

    @staticmethod
    def _json(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
        body = json.dumps(payload, separators=(",", ":"))
        return Response(body, status=status, headers=headers, content_type="application/json")

    def _control(self, request: Request) -> Response:
        path, method = request.path, request.method
        try:
            if path == "/_sim/stats" and method == "GET":
                tail = request.args.get("tail", type=int)
                return self._json(self.stats(tail))
            if path == "/_sim/config" and method == "GET":
                return self._json(self.config_dict())
            if path == "/_sim/config" and method == "POST":
                body = json.loads(request.get_data(as_text=True) or "{}")
                if not isinstance(body, dict):
                    raise ValueError("config body must be a JSON object")
                self.configure(**body)
                return self._json(self.config_dict())
            if path == "/_sim/reset" and method == "POST":
                self.reset()
                return self._json({"ok": True})
            if path == "/_sim/health" and method == "GET":
                return self._json({"ok": True, "records": len(self.dataset)})
        except ValueError as exc:  # includes JSONDecodeError
            return self._json({"error": str(exc)}, 400)
        known = {"/_sim/stats", "/_sim/config", "/_sim/reset", "/_sim/health"}
        status = 405 if path in known else 404
        return self._json({"error": "Method Not Allowed" if status == 405 else "Not Found"}, status)

    # -- the API -----------------------------------------------------------------------

    def _api(self, request: Request) -> Response:
        with self._lock:
            trickle = self.config.trickle_seconds
        response = self._api_response(request)
        if trickle > 0 and request.path.startswith("/v1/"):
            _trickle(response, trickle)
        return response

    def _api_response(self, request: Request) -> Response:
        started = time.time()
        rid = "-".join(secrets.token_hex(2)[:3] for _ in range(3))
        with self._lock:
            self._sync_script()
            cfg = copy.deepcopy(self.config)
            drift = self._drift_steps * cfg.total_drift

        purchase = self._peek_purchase(request.args.get("Purchase"))
        start_arg = request.args.get("Start")
        start = self._peek_int(start_arg)
        limit = self._peek_int(request.args.get("Limit"))
        entry: dict[str, Any] = {
            "t": started,
            "method": request.method,
            "path": request.path,
            "purchase": purchase,
            "start": start,
            "limit": limit,
            "status": 0,
            "result_count": 0,
            "fault": None,
            "request_id": rid,
        }
        headers = {"X-Radar-Request-Id": rid}
        if not request.path.startswith("/v1/"):
            # Outside the API namespace: no auth, no faults, just a JSON 404.
            response = self._error(
                _ApiError(
                    404,
                    f"Not Found: {request.path}",
                    "The requested resource does not exist.",
                    "Not found",
                ),
                rid,
            )
            return self._finish(entry, response, None, [], None)
        if cfg.latency_ms > 0:
            time.sleep(cfg.latency_ms / 1000)

        # Faults are per API key, so a request without a valid key never gets one.
        authorized = self._authorized(request, cfg) and self._token_still_valid()
        fault = None
        if authorized:
            fault = self._pick_fault(
                cfg, purchase, start if start_arg is not None else 0, request.method == "POST"
            )
        if fault in _PRE_FAULTS:
            response = self._fault_response(fault, rid, cfg)
            return self._finish(entry, response, fault, [], None)

        billed: list[str] = []
        served_kind: str | None = None
        try:
            if not authorized:
                raise _ApiError(
                    401,
                    "Unauthorized: missing or invalid API token",
                    "Your API key is missing or invalid.",
                    "Not authorized",
                )
            payload, billed, served_kind = self._route(request, cfg, drift)
            entry["result_count"] = payload["resultCount"]
            response = self._json(payload, 200, headers)
        except _ApiError as exc:
            response = self._error(exc, rid)

        if fault == "slow":
            time.sleep(cfg.slow_seconds)
        elif fault == "malformed":
            text = response.get_data()
            response.set_data(text[: max(1, len(text) // 2)])
        return self._finish(entry, response, fault, billed, served_kind)

    def _finish(
        self,
        entry: dict[str, Any],
        response: Response,
        fault: str | None,
        billed: list[str],
        served_kind: str | None,
    ) -> Response:
        entry["status"] = response.status_code
        entry["fault"] = fault
        entry["billed"] = len(billed)
        with self._lock:
            self._log.append(entry)
            if fault:
                self._faults[fault] = self._faults.get(fault, 0) + 1
            if served_kind == "purchase_search":
                self._drift_steps += 1
            if served_kind in ("purchase_search", "purchase_get"):
                self._purchase_requests += 1
            elif served_kind in ("count_search", "count_get"):
                self._count_requests += 1
            self._billed_records += len(billed)
            self._billed_cost += _price(self.config.price_per_record) * len(billed)
            ids = self._billed_ids
            for radar_id in billed:
                ids[radar_id] = ids.get(radar_id, 0) + 1
        return response

    @staticmethod
    def _peek_purchase(value: str | None) -> int | None:
        if value is None:
            return None
        value = value.strip().lower()
        return 1 if value in ("1", "true") else 0 if value in ("0", "false") else None

    @staticmethod
    def _peek_int(value: str | None) -> int | None:
        try:
            return int(value) if value is not None else None
        except ValueError:
            return None

    def _token_still_valid(self) -> bool:
        """Count one authenticated request against ``rotate_token_after``; False once the
        token has been rotated out (until ``configure(token=...)``)."""
        with self._lock:
            if self._token_revoked:
                return False
            if self._token_uses_left is None:
                return True
            if self._token_uses_left == 0:
                self._token_revoked = True
                return False
            self._token_uses_left -= 1
            return True

    @staticmethod
    def _authorized(request: Request, cfg: SimulatorConfig) -> bool:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return False
        return cfg.token is None or secrets.compare_digest(token, cfg.token)

    def _pick_fault(
        self, cfg: SimulatorConfig, purchase: int | None, start: int, is_post: bool
    ) -> str | None:
        with self._lock:
            if self.config.scripted_faults is self._script_src:
                for i, rule in enumerate(self._script_src):
                    if self._script_left[i] == 0:
                        continue
                    if "purchase" in rule and rule["purchase"] != purchase:
                        continue
                    if "start" in rule and (not is_post or rule["start"] != start):
                        continue
                    if self._script_skip[i] > 0:
                        self._script_skip[i] -= 1
                        continue
                    if self._script_left[i] > 0:
                        self._script_left[i] -= 1
                    return str(rule["kind"])
            if cfg.fault_rate > 0 and cfg.fault_kinds:
                if self._rng.random() < cfg.fault_rate:
                    return self._rng.choice(cfg.fault_kinds)
        return None

    def _fault_response(self, fault: str, rid: str, cfg: SimulatorConfig) -> Response:
        headers = {"X-Radar-Request-Id": rid}
        if fault == "429":
            headers["Retry-After"] = f"{cfg.retry_after:g}"
            return self._error(
                _ApiError(
                    429, "Too Many Requests", "You are sending requests too quickly.", "Slow down"
                ),
                rid,
                headers,
            )
        if fault == "502":
            html = (
                "<html><head><title>502 Bad Gateway</title></head><body>"
                "<center><h1>502 Bad Gateway</h1></center></body></html>"
            )
            return Response(html, status=502, headers=headers, content_type="text/html")
        status = int(fault)
        text = "Internal Server Error" if status == 500 else "Service Unavailable"
        return self._error(
            _ApiError(status, text, "Something went wrong. Please try again.", "Server error"),
            rid,
            headers,
        )

    def _error(self, exc: _ApiError, rid: str, headers: dict[str, str] | None = None) -> Response:
        body = {
            "error": exc.error,
            "eventid": rid,
            "message": exc.message,
            "messageTitle": exc.title,
        }
        merged = {"X-Radar-Request-Id": rid, **(headers or {})}
        if exc.status == 405:
            merged["Allow"] = "GET" if exc.error.endswith("GET") else "POST"
        return self._json(body, exc.status, merged)

    # -- request handling --------------------------------------------------------------

    def _route(
        self, request: Request, cfg: SimulatorConfig, drift: int
    ) -> tuple[dict[str, Any], list[str], str]:
        path = request.path.rstrip("/")
        if path == "/v1/properties":
            if request.method != "POST":
                raise _ApiError(
                    405,
                    "Method Not Allowed: use POST",
                    "This endpoint only accepts POST.",
                    "Method not allowed",
                )
            return self._search(request, cfg, drift)
        parts = path.split("/")
        if len(parts) == 4 and parts[:3] == ["", "v1", "properties"]:
            if request.method != "GET":
                raise _ApiError(
                    405,
                    "Method Not Allowed: use GET",
                    "This endpoint only accepts GET.",
                    "Method not allowed",
                )
            return self._get_one(request, parts[3], cfg)
        raise _ApiError(
            404, f"Not Found: {request.path}", "The requested resource does not exist.", "Not found"
        )

    def _parse_purchase(self, request: Request) -> int:
        raw = request.args.get("Purchase")
        if raw is None:
            raise _bad_request("Missing required param: Purchase")
        value = self._peek_purchase(raw)
        if value is None:
            raise _bad_request(f"Invalid value for param Purchase: {raw}")
        return value

    @staticmethod
    def _parse_fields(raw: str | None) -> list[str]:
        if raw is None:
            return list(FIELDSETS["default"])
        wanted: list[str] = []
        suppressed: set[str] = set()
        uses_all = False
        for token in (t.strip() for t in raw.split(",")):
            if not token:
                continue
            negate = token.startswith("-")
            name = token[1:] if negate else token
            if name in FIELDSETS:
                names = list(FIELDSETS[name])
                uses_all = uses_all or (name == "All" and not negate)
            elif name in _ALL_FIELD_SET:
                names = [name]
            else:
                raise _bad_request(
                    f"Unknown field: {name}", f"The field {name} does not exist.", "Invalid fields"
                )
            if negate:
                suppressed.update(names)
            else:
                wanted.extend(names)
        fields = [f for f in dict.fromkeys(wanted) if f not in suppressed]
        if len(fields) > MAX_FIELDS and not uses_all:
            raise _bad_request(
                f"Too many fields requested: {len(fields)} (max {MAX_FIELDS})",
                "Combined fields and fieldsets must be 50 fields or fewer.",
                "Invalid fields",
            )
        return fields

    def _search(
        self, request: Request, cfg: SimulatorConfig, drift: int
    ) -> tuple[dict[str, Any], list[str], str]:
        purchase = self._parse_purchase(request)
        limit_raw = request.args.get("Limit")
        start_raw = request.args.get("Start")
        limit = self._peek_int(limit_raw) if limit_raw is not None else 100
        if limit is None or not 1 <= limit <= cfg.max_limit:
            raise _bad_request(
                f"Invalid value for param Limit: {limit_raw} (must be 1-{cfg.max_limit})"
            )
        start = self._peek_int(start_raw) if start_raw is not None else 0
        if start is None or start < 0:
            raise _bad_request(f"Invalid value for param Start: {start_raw}")
        if cfg.limit_cap is not None:
            limit = min(limit, cfg.limit_cap)  # silently, as the fault's name says
        fields = self._parse_fields(request.args.get("Fields"))

        try:
            body = json.loads(request.get_data(as_text=True))
        except ValueError:
            raise _bad_request(
                "Invalid JSON body", "The request body must be a JSON object."
            ) from None
        if not isinstance(body, dict):
            raise _bad_request("Invalid JSON body", "The request body must be a JSON object.")
        for key in body:
            if key != "Criteria":
                raise _bad_request(f"Unexpected payload field: {key}")
        if "Criteria" not in body:
            raise _bad_request("Missing required param: Criteria")
        try:
            matches = self.dataset.match(body["Criteria"])
        except CriteriaError as exc:
            raise _bad_request(exc.error, exc.message, exc.title) from None

        size_after_first = self._size_after_first(cfg, body["Criteria"], start)
        rows = self._page(matches, drift, start, limit, size_after_first)
        total = len(matches) + (drift if matches else 0)
        total = max(total, 0)
        if size_after_first is not None and matches:
            total = size_after_first
        ds = self.dataset
        if purchase:
            results = []
            for idx, radar_id in rows:
                full = ds.record(idx, radar_id)
                results.append({f: full[f] for f in fields})
            _spoil_records(results, cfg)
            billed = [rid for _idx, rid in rows]
            kind = "purchase_search"
        else:
            results = [{"RadarID": rid} for _idx, rid in rows]
            billed, kind = [], "count_search"
        payload = {
            "results": results,
            "resultCount": len(results),
            "totalResultCount": total,
            "totalCost": _cost_text(len(billed), cfg.price_per_record),
        }
        return payload, billed, kind

    def _size_after_first(self, cfg: SimulatorConfig, criteria: Any, start: int) -> int | None:
        """``total_after_first`` for this request: None while the search's first page
        (Start=0) has not been served yet; this request, if it is that page, marks it."""
        if cfg.total_after_first is None:
            return None
        key = json.dumps(criteria, sort_keys=True, separators=(",", ":"))
        with self._lock:
            if key in self._first_page_served:
                return cfg.total_after_first
            if start == 0:
                self._first_page_served.add(key)
        return None

    def _page(
        self, matches: array, drift: int, start: int, limit: int, size: int | None = None
    ) -> list[tuple[int, str]]:
        """The rows [start, start+limit) of the (possibly drifted) result set.

        Positive drift prepends ``drift`` phantom records (newest first) cloned from the
        matches with fresh RadarIDs; negative drift drops records from the front. ``size``
        (``total_after_first``) cuts the set to that many rows, or grows it with clones.
        """
        ds = self.dataset
        n = len(matches)
        if n == 0:
            return []
        if size is not None:
            rows = self._page(matches, drift, start, min(limit, max(size - start, 0)))
            have = max(n + drift, 0)
            for pos in range(max(start, have), min(start + limit, size)):
                # Grown records: clones of the matches under RadarIDs no other record uses.
                rows.append((matches[pos % n], ds.radar_id(ds.size + _GROWN_ID_OFFSET + pos)))
            return rows
        if drift < 0:
            shift = min(-drift, n)
            sel = range(start + shift, min(start + shift + limit, n))
            return [(matches[i], ds.radar_id(matches[i])) for i in sel]
        rows: list[tuple[int, str]] = []
        for pos in range(start, min(start + limit, n + drift)):
            if pos < drift:
                j = drift - 1 - pos  # phantom number; newest first
                rows.append((matches[j % n], ds.radar_id(ds.size + j)))
            else:
                idx = matches[pos - drift]
                rows.append((idx, ds.radar_id(idx)))
        return rows

    def _get_one(
        self, request: Request, radar_id: str, cfg: SimulatorConfig
    ) -> tuple[dict[str, Any], list[str], str]:
        purchase = self._parse_purchase(request)
        fields = self._parse_fields(request.args.get("Fields"))
        idx = self.dataset.index_of(radar_id.upper())
        if idx is None or idx >= self.dataset.size:
            raise _ApiError(
                404,
                f"Property not found: {radar_id}",
                "That property could not be found.",
                "Not found",
            )
        canonical = self.dataset.radar_id(idx)
        if purchase:
            full = self.dataset.record(idx)
            results, billed, kind = [{f: full[f] for f in fields}], [canonical], "purchase_get"
            _spoil_records(results, cfg)
        else:
            results, billed, kind = [{"RadarID": canonical}], [], "count_get"
        payload = {
            "results": results,
            "resultCount": 1,
            "totalResultCount": 1,
            "totalCost": _cost_text(len(billed), cfg.price_per_record),
        }
        return payload, billed, kind


# --------------------------------------------------------------------------------------
# Serving
# --------------------------------------------------------------------------------------


class _QuietHandler(WSGIRequestHandler):
    """Request handler that does not log every request (tests page thousands of times)."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


def serve(
    host: str = "127.0.0.1",
    port: int = 5001,
    config: SimulatorConfig | None = None,
    *,
    scale: float = 1.0,
) -> None:
    """Serve the simulator with a threaded Werkzeug server until interrupted."""
    cfg = config or SimulatorConfig()
    sim = Simulator(cfg, get_dataset(scale, cfg.seed))
    server = make_server(host, port, sim, threaded=True)
    print(
        f"PropertyRadar simulator: {len(sim.dataset):,} records on "
        f"http://{host}:{server.server_port} (token: {cfg.token or 'any'})",
        flush=True,
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def start_in_thread(
    host: str = "127.0.0.1",
    port: int = 0,
    config: SimulatorConfig | None = None,
    *,
    dataset: Dataset | None = None,
) -> tuple[Simulator, str, Callable[[], None]]:
    """Start a threaded server in a daemon thread; returns (simulator, base_url, stop).

    ``port=0`` picks a free port. ``stop()`` shuts the server down and closes its socket;
    calling it twice is harmless.
    """
    sim = Simulator(config, dataset)
    server = make_server(host, port, sim, threaded=True, request_handler=_QuietHandler)
    thread = threading.Thread(
        target=server.serve_forever, name="propertyradar-simulator", daemon=True
    )
    thread.start()
    stopped = threading.Event()

    def stop() -> None:
        if stopped.is_set():
            return
        stopped.set()
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()

    return sim, f"http://{host}:{server.server_port}", stop


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Offline PropertyRadar API simulator")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5001)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--fault-rate", type=float, default=0.0)
    parser.add_argument(
        "--token",
        default="demo-token",
        help="required bearer token; '' accepts any non-empty token",
    )
    parser.add_argument(
        "--scale", type=float, default=1.0, help="dataset size multiplier (1.0 = 121,400 records)"
    )
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--price",
        type=float,
        default=Config.PRICE_PER_EXPORT,
        help="price billed per record (default: the app's PRICE_PER_EXPORT, %(default)s)",
    )
    args = parser.parse_args(argv)
    if not 0 <= args.price < math.inf:
        parser.error("--price must be a number >= 0")
    config = SimulatorConfig(
        token=args.token or None,
        latency_ms=args.latency_ms,
        fault_rate=args.fault_rate,
        seed=args.seed,
        price_per_record=args.price,
    )
    serve(args.host, args.port, config, scale=args.scale)


if __name__ == "__main__":
    main()
