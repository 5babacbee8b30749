"""What the simulated API accepts and returns: the record fields and fieldsets, the
criteria catalogue, and the 400 a request the real API would refuse gets."""

from __future__ import annotations

from simulator.tables import FC_STAGES, LOAN_TYPES, OWNERSHIP_TYPES

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
ALL_FIELD_SET = frozenset(ALL_FIELDS)

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
    "ForeclosureStage": ("fc_stage", {n.upper(): i for i, (n, _w) in enumerate(FC_STAGES)}),
    "OwnershipType": ("own_type", {n.upper(): i for i, (n, _w) in enumerate(OWNERSHIP_TYPES)}),
    "FirstLoanType": ("loan_type", {n.upper(): i for i, (n, _w) in enumerate(LOAN_TYPES)}),
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
