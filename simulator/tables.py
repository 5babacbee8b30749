"""Static tables the synthetic dataset is drawn from: states, counties and their cities,
property and loan types, names and streets, the fixed "today" of every synthetic date."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from radar_app.propertyradar import counties
from radar_app.propertyradar.coerce import US_STATES

# (code, probability of a pool, property tax rate). Full state names come from the
# product's table (coerce.US_STATES), so the simulator and the app spell them alike.
STATES: tuple[tuple[str, float, float], ...] = (
    ("CA", 0.20, 0.011),
    ("TX", 0.18, 0.020),
    ("FL", 0.30, 0.010),
    ("OR", 0.04, 0.010),
    ("AZ", 0.35, 0.007),
    ("WA", 0.04, 0.010),
    ("NV", 0.25, 0.006),
    ("ID", 0.06, 0.007),
)
STATE_INDEX = {code: i for i, (code, _p, _t) in enumerate(STATES)}
STATE_BY_NAME = {name.upper(): code for name, code in US_STATES.items() if code in STATE_INDEX}


@dataclass(frozen=True)
class DatasetCounty:
    """A county the dataset holds records in; its name is in the product's county table."""

    fips: str
    state: str
    count: int  # records at scale 1.0
    lat: float
    lon: float
    median_avm: int
    apn_style: str  # "dash" -> 1234-567-890, "R" -> R123456, "plain" -> 10 digits
    cities: tuple[tuple[str, tuple[int, ...]], ...]  # first city is the biggest


COUNTIES: tuple[DatasetCounty, ...] = (
    DatasetCounty(
        "06037",
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
    DatasetCounty(
        "06073",
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
    DatasetCounty(
        "06059",
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
    DatasetCounty(
        "06001",
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
    DatasetCounty(
        "48201",
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
    DatasetCounty(
        "48113",
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
    DatasetCounty(
        "48453",
        "TX",
        6000,
        30.27,
        -97.74,
        520000,
        "plain",
        (("Austin", (78701, 78704, 78745)), ("Pflugerville", (78660,))),
    ),
    DatasetCounty(
        "48029",
        "TX",
        3000,
        29.42,
        -98.49,
        280000,
        "plain",
        (("San Antonio", (78201, 78209, 78230)),),
    ),
    DatasetCounty(
        "12086",
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
    DatasetCounty(
        "12011",
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
    DatasetCounty(
        "12095",
        "FL",
        7000,
        28.54,
        -81.38,
        390000,
        "dash",
        (("Orlando", (32801, 32803, 32806)), ("Winter Park", (32789,)), ("Apopka", (32703,))),
    ),
    DatasetCounty(
        "41051",
        "OR",
        2000,
        45.52,
        -122.68,
        520000,
        "R",
        (("Portland", (97202, 97211, 97212, 97214, 97217)), ("Gresham", (97030, 97080))),
    ),
    DatasetCounty(
        "41067",
        "OR",
        3500,
        45.49,
        -122.80,
        560000,
        "R",
        (("Beaverton", (97005, 97006)), ("Hillsboro", (97123, 97124)), ("Tigard", (97223, 97224))),
    ),
    DatasetCounty(
        "41005",
        "OR",
        2500,
        45.36,
        -122.61,
        580000,
        "plain",
        (("Oregon City", (97045,)), ("Lake Oswego", (97034, 97035)), ("Milwaukie", (97222, 97267))),
    ),
    DatasetCounty(
        "41039",
        "OR",
        2000,
        44.05,
        -123.09,
        430000,
        "plain",
        (("Eugene", (97401, 97402, 97405)), ("Springfield", (97477, 97478))),
    ),
    DatasetCounty(
        "04013",
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
    DatasetCounty(
        "04019",
        "AZ",
        2000,
        32.22,
        -110.97,
        340000,
        "dash",
        (("Tucson", (85705, 85710, 85719)), ("Marana", (85653,))),
    ),
    DatasetCounty(
        "53033",
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
    DatasetCounty(
        "53053",
        "WA",
        1500,
        47.25,
        -122.44,
        500000,
        "plain",
        (("Tacoma", (98402, 98405, 98406)), ("Puyallup", (98371, 98373))),
    ),
    DatasetCounty(
        "53061",
        "WA",
        1000,
        47.98,
        -122.20,
        680000,
        "plain",
        (("Everett", (98201, 98203)), ("Lynnwood", (98036, 98037))),
    ),
    DatasetCounty(
        "32003",
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
    DatasetCounty(
        "32031",
        "NV",
        500,
        39.53,
        -119.81,
        540000,
        "dash",
        (("Reno", (89501, 89502, 89509)), ("Sparks", (89431, 89434))),
    ),
    DatasetCounty(
        "16001",
        "ID",
        300,
        43.62,
        -116.20,
        480000,
        "R",
        (("Boise", (83702, 83704, 83706)), ("Meridian", (83642, 83646))),
    ),
    DatasetCounty(
        "16027",
        "ID",
        100,
        43.58,
        -116.56,
        380000,
        "R",
        (("Nampa", (83651, 83686)), ("Caldwell", (83605, 83607))),
    ),
)
COUNTY_BY_FIPS = {c.fips: i for i, c in enumerate(COUNTIES)}


def _check_against_the_product(table: tuple[DatasetCounty, ...]) -> None:
    """Every county here is one the product's county table knows, in the same state: a
    county search the app resolves by name must reach these records."""
    for county in table:
        known = counties.by_fips(county.fips)
        if known is None or known.state != county.state:
            raise RuntimeError(
                f"simulator county {county.fips} ({county.state}) is not in counties.py"
            )


_check_against_the_product(COUNTIES)

# Global city table: (city name, county index, zips); a "city" is a (name, county) pair.
CITIES: tuple[tuple[str, int, tuple[int, ...]], ...] = tuple(
    (name, ci, zips) for ci, c in enumerate(COUNTIES) for name, zips in c.cities
)
CITY_FIRST = [0] * len(COUNTIES)  # index of each county's first city in CITIES
for _i in range(len(CITIES) - 1, -1, -1):
    CITY_FIRST[CITIES[_i][1]] = _i

# Out-of-area mailing addresses for absentee owners.
REMOTE_MAIL: tuple[tuple[str, str, int], ...] = (
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
PTYPES: tuple[tuple[str, str, float], ...] = (
    ("SFR", "Single Family", 0.70),
    ("CND", "Condominium", 0.15),
    ("MFR", "Multi-Family 2-4", 0.08),
    ("MH", "Mobile Home", 0.03),
    ("VL", "Vacant Land", 0.04),
)
PTYPE_BY_CODE = {code: i for i, (code, _d, _s) in enumerate(PTYPES)}
PT_SFR, PT_CND, PT_MFR, PT_MH, PT_VL = range(5)

OWNERSHIP_TYPES: tuple[tuple[str, float], ...] = (
    ("Individual", 0.45),
    ("Couple", 0.30),
    ("Multiple owners", 0.05),
    ("Corporate", 0.12),
    ("Trust", 0.08),
)
OWN_CORPORATE = 3
OWN_TRUST = 4

# "V" (VA) is attested by a field client; the other codes are invented for the simulator.
LOAN_TYPES: tuple[tuple[str, float], ...] = (
    ("C", 0.70),
    ("F", 0.15),
    ("V", 0.08),
    ("P", 0.07),
)

# [SPEC] ForeclosureStage enum, with invented relative frequencies.
FC_STAGES: tuple[tuple[str, float], ...] = (
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
FC_AUCTION_STAGES = frozenset(
    i for i, (name, _w) in enumerate(FC_STAGES) if name in ("Auction", "Sale Pending")
)

FIRST_NAMES = (
    "James Mary Robert Patricia John Jennifer Michael Linda David Elizabeth William "
    "Barbara Richard Susan Joseph Jessica Thomas Sarah Charles Karen Christopher Lisa "
    "Daniel Nancy Matthew Betty Anthony Sandra Mark Margaret Donald Ashley Steven "
    "Kimberly Andrew Emily Paul Donna Joshua Michelle Kenneth Carol Kevin Amanda Brian "
    "Melissa George Deborah Timothy Stephanie Jose Maria Luis Ana Wei Mei Hiroshi Yuki "
    "Priya Arjun Fatima Omar"
).split()
LAST_NAMES = (
    "Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez "
    "Hernandez Lopez Gonzalez Wilson Anderson Thomas Taylor Moore Jackson Martin Lee "
    "Perez Thompson White Harris Sanchez Clark Ramirez Lewis Robinson Walker Young "
    "Allen King Wright Scott Torres Nguyen Hill Flores Green Adams Nelson Baker Hall "
    "Rivera Campbell Mitchell Carter Roberts Chen Wang Kim Patel Singh Tanaka Cohen "
    "Murphy Sullivan Olsen Larsen Novak Kowalski Silva Costa"
).split()
CORP_SUFFIXES = (
    "Holdings LLC",
    "Properties LLC",
    "Investments Inc",
    "Real Estate LP",
    "Capital LLC",
    "Homes LLC",
)
STREET_NAMES = (
    "Alder Birch Cedar Maple Oak Pine Spruce Willow Elm Ash Hawthorne Belmont Division "
    "Burnside Clinton Franklin Lincoln Washington Jefferson Madison Adams Monroe Jackson "
    "Grant Sunset Highland Park Lake River Hill Valley Meadow Forest Ridge Canyon Mesa "
    "Vista Harbor Bay Ocean Palm Magnolia Cypress Juniper Aspen Sequoia Redwood Laurel "
    "Chestnut Hickory Poplar Sycamore Orchard Garden Mission College Church Mill Main"
).split()
STREET_SUFFIXES = ("St", "Ave", "Rd", "Dr", "Ln", "Ct", "Way", "Blvd", "Pl")
STREET_DIRS = ("", "", "", "", "N ", "S ", "E ", "W ", "NE ", "SE ", "NW ", "SW ")
TRANSFER_TYPES = ("Grant Deed", "Warranty Deed", "Quitclaim Deed", "Trustee's Deed")

# Reference "today" for synthetic dates, fixed so the dataset never changes with the clock.
TODAY = dt.date(2025, 1, 1).toordinal()
XFER_FIRST = dt.date(1985, 1, 1).toordinal()
XFER_LAST = dt.date(2024, 12, 15).toordinal()
