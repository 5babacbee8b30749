"""The Fields a purchase names: the lead essentials, the known field names, named sets.

A request carries Criteria (which records) and Fields (which of their values come back);
this module is the second half, checked before anything is bought.
"""

from __future__ import annotations

from ..errors import CriteriaError
from .text import printable

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
