"""Criteria catalogue, validation, normalization and summaries."""

from __future__ import annotations

import copy

import pytest

from radar_app.propertyradar.criteria import (
    BOOLEAN,
    CRITERIA,
    DATE,
    FORECLOSURE_STAGES,
    KINDS,
    KNOWN_FIELDS,
    LEAD_FIELDS,
    LIST,
    MAX_CRITERIA,
    MAX_FIELDS,
    MULTI,
    PREFIX,
    PROPERTY_TYPE,
    PROPERTY_TYPES,
    RANGE,
    describe_criteria,
    suggest_name,
    validate_criteria,
)
from radar_app.propertyradar.errors import CriteriaError


def one(name: str, value: object) -> list[dict]:
    return validate_criteria([{"name": name, "value": value}])


def value_error(name: str, value: object) -> str:
    with pytest.raises(CriteriaError) as info:
        validate_criteria([{"name": name, "value": value}])
    assert list(info.value.errors) == ["criteria[0].value"]
    return info.value.errors["criteria[0].value"]


# ------------------------------------------------------------------------- catalogue


def test_catalogue_kinds_cover_notes_section_4() -> None:
    expected = {
        MULTI: {
            "State",
            "County",
            "City",
            "ZipFive",
            "RadarID",
            "OwnershipType",
            "ForeclosureStage",
            "ListingStatus",
            "FirstLoanType",
            "FirstPurpose",
        },
        PREFIX: {"APN", "Address"},
        BOOLEAN: {
            "Pool",
            "isSameMailingOrExempt",
            "isNotSameMailingOrExempt",
            "isMailVacant",
            "isSiteVacant",
            "inForeclosure",
            "inTaxDelinquency",
            "inDivorce",
            "isListedForSale",
        },
        RANGE: {
            "Beds",
            "Baths",
            "SqFt",
            "YearBuilt",
            "LotSize",
            "Units",
            "AVM",
            "AvailableEquity",
            "EquityPercent",
            "CLTV",
            "TotalLoanBalance",
            "NumberLoans",
            "FirstRate",
            "DaysOnMarket",
            "LastTransferDownPaymentPercent",
        },
        DATE: {"FirstDate", "LastTransferRecDate"},
        PROPERTY_TYPE: {"PropertyType"},
        LIST: {"InList"},
    }
    for kind, names in expected.items():
        assert {n for n, s in CRITERIA.items() if s.kind == kind} == names, kind
    assert {s.kind for s in CRITERIA.values()} <= KINDS
    assert all(spec.name == name for name, spec in CRITERIA.items())
    for wrong in ("SiteCity", "SiteState", "SiteAddress"):
        assert wrong not in CRITERIA


def test_property_types_and_stages() -> None:
    assert PROPERTY_TYPES["SFR"] == "Single Family"
    assert PROPERTY_TYPES["CND"] == "Condominium"
    assert PROPERTY_TYPES["MFR"] == "Multi-Family 2-4"
    assert {"COM", "VL", "MH"} <= set(PROPERTY_TYPES)
    assert len(FORECLOSURE_STAGES) == 20
    assert FORECLOSURE_STAGES[0] == "Preforeclosure"
    assert "3rd Held" in FORECLOSURE_STAGES


def test_lead_fields_are_known_and_within_cap() -> None:
    assert len(LEAD_FIELDS) <= MAX_FIELDS == 50
    assert len(set(LEAD_FIELDS)) == len(LEAD_FIELDS)
    assert set(LEAD_FIELDS) <= KNOWN_FIELDS
    assert LEAD_FIELDS[0] == "RadarID"
    assert {"Owner", "EquityPercent", "isSameMailingOrExempt"} <= set(LEAD_FIELDS)
    assert isinstance(KNOWN_FIELDS, frozenset)
    assert {"DistressScore", "PhotoURL1", "inBankruptcyProperty"} <= KNOWN_FIELDS


# ------------------------------------------------------------------------ valid kinds


@pytest.mark.parametrize(
    ("name", "value", "normalized"),
    [
        ("State", ["ca", " OR "], ["CA", "OR"]),
        ("County", [41051, "06037", "6037"], ["41051", "06037", "6037"]),
        ("City", [" Portland "], ["Portland"]),
        ("ZipFive", [97202, "97212", "02134"], [97202, 97212, 2134]),
        ("RadarID", ["P8A0E18D"], ["P8A0E18D"]),
        ("OwnershipType", ["Trust", "Corporate"], ["Trust", "Corporate"]),
        ("ForeclosureStage", ["preforeclosure", "Bank Owned"], ["Preforeclosure", "Bank Owned"]),
        ("ListingStatus", ["Active"], ["Active"]),
        ("FirstLoanType", ["V"], ["V"]),
        ("FirstPurpose", ["Refi"], ["Refi"]),
        ("APN", ["123", "910-021-669-000"], ["123", "910-021-669-000"]),
        ("Address", ["1234 SE Alder St"], ["1234 SE Alder St"]),
        ("Pool", [1], [1]),
        ("isSameMailingOrExempt", ["0"], [0]),
        ("inForeclosure", [True], [1]),
        ("AvailableEquity", [[100000, None]], [[100000, None]]),
        (
            "TotalLoanBalance",
            [[None, 100000], [200000, 300000]],
            [[None, 100000], [200000, 300000]],
        ),
        ("FirstRate", [[None, 3.5]], [[None, 3.5]]),
        ("EquityPercent", [["40", None]], [[40, None]]),
        ("Beds", [[3, 3]], [[3, 3]]),
        (
            "FirstDate",
            ["Last 7 Days", "next 365 days", "This Quarter", "Today"],
            ["Last 7 Days", "Next 365 Days", "This Quarter", "Today"],
        ),
        (
            "LastTransferRecDate",
            [
                "from: 1/1/2023 to: 1/31/2023",
                "1/1/2028",
                "from: to: 1/1/1999",
                "FROM: 01/05/2020   TO:",
            ],
            [
                "from: 1/1/2023 to: 1/31/2023",
                "1/1/2028",
                "from: to: 1/1/1999",
                "from: 1/5/2020 to:",
            ],
        ),
        (
            "PropertyType",
            [{"name": "PType", "value": ["SFR", "cnd", "MFR"]}],
            [{"name": "PType", "value": ["SFR", "CND", "MFR"]}],
        ),
        ("InList", [12345, "678"], [12345, 678]),
    ],
)
def test_valid_values_are_normalized(name: str, value: object, normalized: object) -> None:
    assert one(name, value) == [{"name": name, "value": normalized}]


def test_validate_returns_copy_and_drops_ui_keys() -> None:
    original = [
        {"name": "State", "value": ["or"], "menuLabels": ["Oregon"], "chipLabel": "OR"},
        {"name": "ZipFive", "value": ["97202"]},
    ]
    snapshot = copy.deepcopy(original)
    out = validate_criteria(original)
    assert out == [{"name": "State", "value": ["OR"]}, {"name": "ZipFive", "value": [97202]}]
    assert original == snapshot
    assert out[0] is not original[0]


# ---------------------------------------------------------------------- invalid kinds


@pytest.mark.parametrize(
    ("name", "value", "fragment"),
    [
        ("State", ["California"], "State expects 2-letter codes like 'CA'"),
        ("State", ["C1"], "2-letter"),
        ("State", [6], "2-letter"),
        ("County", ["Multnomah"], "FIPS"),
        ("County", [123], "FIPS"),
        ("County", ["123456"], "FIPS"),
        ("ZipFive", ["9720"], "5-digit"),
        ("ZipFive", ["97202-1234"], "5-digit"),
        ("ZipFive", [True], "5-digit"),
        ("City", [""], "City expects"),
        ("RadarID", ["P8A0-E18D"], "RadarID"),
        ("ForeclosureStage", ["Foreclosed"], "Unknown foreclosure stage"),
        ("APN", [123], "APN expects"),
        ("Address", ["  "], "Address expects"),
        ("Pool", [2], "Pool expects [1] or [0]"),
        ("Pool", ["yes"], "Pool expects [1] or [0]"),
        ("EquityPercent", [40, None], "EquityPercent expects ranges like [[40, null]]"),
        ("EquityPercent", [[40]], "EquityPercent expects ranges like [[40, null]]"),
        ("EquityPercent", [["forty", None]], "EquityPercent expects ranges"),
        ("AVM", [[500000, 100000]], "min greater than max"),
        ("AVM", [[None, None]], "needs a min or a max"),
        ("AVM", [[float("nan"), 1]], "AVM expects ranges"),
        ("Beds", [[True, 3]], "Beds expects ranges"),
        ("FirstDate", ["Last 8 Days"], "FirstDate expects dates like 'Last 30 Days'"),
        ("FirstDate", ["2023-01-01"], "FirstDate expects dates"),
        ("FirstDate", ["2/30/2023"], "FirstDate expects dates"),
        ("FirstDate", ["from: to:"], "FirstDate expects dates"),
        ("FirstDate", ["from: 2/1/2023 to: 1/1/2023"], "FirstDate expects dates"),
        ("PropertyType", ["SFR"], "PropertyType expects"),
        ("PropertyType", [{"name": "Type", "value": ["SFR"]}], "PropertyType expects"),
        ("PropertyType", [{"name": "PType", "value": []}], "PropertyType expects"),
        ("PropertyType", [{"name": "PType", "value": ["CONDO"]}], "Unknown property type"),
        ("InList", ["abc"], "InList expects"),
        ("InList", [0], "InList expects"),
        # Issue 9: closed sets, absurd numbers, non-ASCII digits, unstorable text.
        ("State", ["ZZ"], "State expects 2-letter codes like 'CA' (got \"ZZ\")"),
        ("OwnershipType", ["Alien"], "OwnershipType expects one of Individual, Couple"),
        ("ListingStatus", ["Maybe"], "ListingStatus expects one of Active"),
        ("AVM", [[10**400, None]], "AVM values must be between -1,000,000,000,000 and"),
        ("AVM", [[None, "-" + "9" * 30]], "AVM values must be between"),
        ("Baths", [[float("inf"), None]], "Baths expects ranges"),
        ("Baths", [["sNaN", None]], "Baths expects ranges"),
        ("InList", ["²"], "InList expects"),
        ("InList", [10**30], "InList expects"),
        ("County", ["٤١٠٥١"], "FIPS"),
        ("ZipFive", ["٩٧٢٠٢"], "5-digit"),
        ("City", ["x\udfffy"], "City values must be valid Unicode text"),
        ("City", ["Port\x00land"], "City values must not contain NUL characters"),
        ("City", ["P" * 201], "City values are at most 200 characters (got 201)"),
        ("ZipFive", [97202] * 1001, "ZipFive takes at most 1,000 values (got 1,001)"),
        ("AVM", [[1, 2]] * 21, "AVM takes at most 20 values (got 21)"),
    ],
)
def test_invalid_values_give_specific_messages(name: str, value: object, fragment: str) -> None:
    assert fragment in value_error(name, value)


@pytest.mark.parametrize("value", [[], "CA", None, {"CA": 1}, 5])
def test_value_must_be_non_empty_list(value: object) -> None:
    msg = value_error("State", value)
    assert "State expects 2-letter codes like 'CA'" in msg
    assert "non-empty list" in msg


@pytest.mark.parametrize("criteria", [None, {"name": "State", "value": ["CA"]}, "State", []])
def test_criteria_must_be_non_empty_list(criteria: object) -> None:
    with pytest.raises(CriteriaError) as info:
        validate_criteria(criteria)
    assert list(info.value.errors) == ["criteria"]


def test_all_errors_collected_at_once_with_paths() -> None:
    criteria = [
        {"name": "State", "value": ["CA"]},  # ok
        "State=CA",  # not an object
        {"name": "SiteCity", "value": ["Portland"]},  # wrong name
        {"name": "County", "value": ["Multnomah"]},  # bad value
        {"name": "State", "value": ["OR"]},  # duplicate
        {"name": "Pool", "value": [1], "extra": True},  # unexpected key
        {"value": [1]},  # missing name
        {"name": 7, "value": [1]},  # name not a string
        {"name": "EquityPercent", "value": [[40, None]]},  # ok
    ]
    with pytest.raises(CriteriaError) as info:
        validate_criteria(criteria)
    errors = info.value.errors
    assert set(errors) == {
        "criteria[1]",
        "criteria[2].name",
        "criteria[3].value",
        "criteria[4].name",
        "criteria[5]",
        "criteria[6]",
        "criteria[7].name",
    }
    assert errors["criteria[2].name"].startswith("Unknown criterion 'SiteCity'")
    assert "'City'" in errors["criteria[2].name"]
    assert "Duplicate" in errors["criteria[4].name"]
    assert "'extra'" in errors["criteria[5]"]
    assert "'name'" in errors["criteria[6]"]
    # The exception is a ValueError whose text lists every problem.
    assert isinstance(info.value, ValueError)
    assert "criteria[3].value" in str(info.value)


@pytest.mark.parametrize(
    ("wrong", "right"),
    [
        ("SiteCity", "City"),
        ("SiteState", "State"),
        ("SiteAddress", "Address"),
        ("state", "State"),
        ("EquityPercentage", "EquityPercent"),
        ("Zip", "ZipFive"),
        ("Bedz", "Beds"),
    ],
)
def test_suggestions(wrong: str, right: str) -> None:
    assert suggest_name(wrong) == right


def test_no_suggestion_for_nonsense() -> None:
    assert suggest_name("Qwertyuiop") is None
    with pytest.raises(CriteriaError) as info:
        one("Qwertyuiop", [1])
    assert info.value.errors == {"criteria[0].name": "Unknown criterion 'Qwertyuiop'"}


# --------------------------------------------------------------------------- describe


def test_describe_example_from_brief() -> None:
    criteria = [
        {"name": "State", "value": ["ca"]},
        {"name": "County", "value": [41051]},
        {"name": "PropertyType", "value": [{"name": "PType", "value": ["SFR"]}]},
        {"name": "EquityPercent", "value": [[40, None]]},
        {"name": "isSameMailingOrExempt", "value": [0]},
    ]
    assert describe_criteria(criteria) == (
        "State CA · County 41051 · Single Family · Equity % ≥ 40 · Absentee"
    )


def test_describe_other_kinds() -> None:
    text = describe_criteria(
        [
            {"name": "isSameMailingOrExempt", "value": [1]},
            {"name": "inForeclosure", "value": [1]},
            {"name": "AVM", "value": [[None, 250000], [400000, 500000]]},
            {"name": "YearBuilt", "value": [[1950, 1990]]},
            {"name": "LastTransferRecDate", "value": ["Last 90 Days", "from: to: 1/1/1999"]},
            {"name": "APN", "value": ["123-45"]},
            {"name": "ZipFive", "value": [97201, 97202, 97203, 97204, 97205]},
            {"name": "PropertyType", "value": [{"name": "PType", "value": ["SFR", "CND"]}]},
            {"name": "InList", "value": [42]},
        ]
    )
    assert text.split(" · ") == [
        "Owner-occupied",
        "In foreclosure",
        "AVM ≤ 250,000 or 400,000–500,000",
        "Built 1950–1990",
        "Last transfer Last 90 Days or before 1/1/1999",
        "APN starts with 123-45",
        "ZipFive 97201, 97202, 97203 +2 more",
        "Single Family, Condominium",
        "In list 42",
    ]


def test_describe_never_raises() -> None:
    assert describe_criteria(None) == "(no criteria)"
    assert describe_criteria([]) == "(no criteria)"
    assert describe_criteria([{"name": "SiteCity", "value": ["X"]}, 5]) == "SiteCity X"


def test_messages_quote_bad_values_escaped_and_cut() -> None:
    with pytest.raises(CriteriaError) as info:
        validate_criteria([{"name": "x\udfff" * 100, "value": [1]}])
    message = info.value.errors["criteria[0].name"]
    message.encode("utf-8")  # a page can show it
    assert "x\\udfff" in message and len(message) < 100


def test_too_many_criteria_is_one_error() -> None:
    with pytest.raises(CriteriaError) as info:
        validate_criteria([{"name": "State", "value": ["OR"]}] * (MAX_CRITERIA + 1))
    assert list(info.value.errors) == ["criteria"]


def test_describe_escapes_a_stored_surrogate() -> None:
    # Stored before values were checked: described escaped, so the page still renders.
    text = describe_criteria([{"name": "City", "value": ["x\udfffy"]}])
    assert text == "City x\\udfffy"
    text.encode("utf-8")
