"""The lead schema (radar_app.leads): one table, and everything derived from it agrees.

The model's columns, the coercion of bought records, the CSV header, the JSON keys and the
OpenAPI Lead schema all come from radar_app.leads.FIELDS; these tests fail when any of them
drifts from the table (or the table from the essentials that are bought).
"""

from __future__ import annotations

import random
import subprocess
import sys
from typing import Any

import pytest
import sqlalchemy as sa

from radar_app import leads
from radar_app.api.openapi import openapi_spec
from radar_app.api.serializers import LEAD_KEYS
from radar_app.leads import LEAD_COLUMNS, lead_columns
from radar_app.models import Property
from radar_app.propertyradar.criteria import KNOWN_FIELDS, LEAD_FIELDS

# The example row of the API's documentation, as the client tests use it.
ROW = {
    "RadarID": "P1A2B3C4", "APN": "R123456", "Address": "1234 SE Alder St",
    "City": "Portland", "State": "OR", "ZipFive": 97214, "Owner": "Doe Jane",
    "OwnerAddress": "55 Pine Ave", "OwnerCity": "Bend", "OwnerState": "OR",
    "OwnerZipFive": 97701, "PType": "Single Family", "Beds": 3, "Baths": "2", "SqFt": 1640,
    "AVM": "612000", "AvailableEquity": "401000", "EquityPercent": "65",
    "isSameMailingOrExempt": 0, "inForeclosure": 0, "ForeclosureStage": None,
}  # fmt: skip


# ------------------------------------------------------------------- the table


def test_the_table_has_one_row_per_essential_bought():
    assert set(leads.BY_FIELD) == set(LEAD_FIELDS) and len(leads.FIELDS) == len(LEAD_FIELDS)
    names = [f.name for f in leads.FIELDS]
    headers = [f.header for f in leads.FIELDS]
    assert len(set(names)) == len(names) and len(set(headers)) == len(headers)
    assert [f.field for f in leads.FIELDS if f.identifies] == ["RadarID"]
    # A custom field's CSV header is its own name: it must not clash with an essential's.
    assert not (KNOWN_FIELDS - set(LEAD_FIELDS)) & set(headers)
    # LastTransferRecDate is bought but has no column: it is read from the raw record.
    assert leads.BY_FIELD["LastTransferRecDate"].sql_type is None
    assert "LastTransferRecDate" not in {f.field for f in leads.STORED_FIELDS}


def test_the_property_model_has_exactly_the_stored_fields_as_columns():
    table = Property.__table__
    own = {"id", "raw", "first_seen_at", "last_seen_at"}
    assert [c.name for c in table.columns if c.name not in own] == list(LEAD_COLUMNS)
    assert [c.name for c in table.columns][:2] == ["id", "radar_id"]
    assert [c.name for c in table.columns][-3:] == ["raw", "first_seen_at", "last_seen_at"]
    for f in leads.STORED_FIELDS:
        column = table.c[f.name]
        assert type(column.type) is type(f.sql_type), f.name
        assert column.nullable is not f.identifies, f.name
        assert bool(column.unique) is f.identifies, f.name
    # Unbounded text, so no bought value is refused for its length; only the RadarID is
    # bounded (and longer ones are refused before the database).
    assert table.c.radar_id.type.length == 32
    assert all(
        isinstance(table.c[f.name].type, sa.Text)
        for f in leads.STORED_FIELDS
        if f.json_type == "string" and not f.identifies
    )


def test_the_outputs_follow_the_table():
    assert LEAD_KEYS == [*(f.name for f in leads.FIELDS), leads.CUSTOM_FIELDS_KEY]
    schema = openapi_spec()["components"]["schemas"]["Lead"]
    assert list(schema["properties"]) == LEAD_KEYS == schema["required"]
    for f in leads.FIELDS:
        prop = schema["properties"][f.name]
        assert prop["type"] == f.json_type, f.name
        assert prop.get("nullable", False) is not f.identifies, f.name
    assert {f.json_type for f in leads.STORED_FIELDS} == {"string", "integer", "number", "boolean"}
    assert leads.custom_fields(None) == []
    assert leads.custom_fields(["RadarID", "AnnualTaxes", "Owner", "PhotoURL1"]) == [
        "AnnualTaxes",
        "PhotoURL1",
    ]


def test_the_schema_imports_neither_flask_nor_the_models():
    # The worker, the bench and plain scripts read the lead schema without an app.
    probe = (
        "import sys, radar_app.leads; "
        "print(sorted(m for m in ('flask', 'flask_sqlalchemy', 'radar_app.models') "
        "if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]"


# ------------------------------------------------------------------- coercion


def test_lead_columns_from_example_row() -> None:
    cols = lead_columns(ROW)
    assert cols == {
        "radar_id": "P1A2B3C4", "address": "1234 SE Alder St", "city": "Portland",
        "state": "OR", "zip_code": "97214", "county": None, "apn": "R123456",
        "owner_name": "Doe Jane", "owner2": None, "owner_first_name": None,
        "owner_last_name": None, "mail_address": "55 Pine Ave", "mail_city": "Bend",
        "mail_state": "OR", "mail_zip": "97701", "property_type": "Single Family",
        "beds": 3, "baths": 2.0, "sqft": 1640, "year_built": None, "avm": 612000,
        "available_equity": 401000, "equity_percent": 65.0, "owner_occupied": False,
        "in_foreclosure": False, "foreclosure_stage": None, "tax_delinquent": None,
        "listed_for_sale": None,
    }  # fmt: skip
    assert tuple(cols) == LEAD_COLUMNS


def test_lead_columns_messy_values_never_raise() -> None:
    cols = lead_columns(
        {
            "RadarID": " PBD4D8F5 ",
            "State": "California",
            "ZipFive": "02134",
            "County": 6037,
            "OwnerState": "Oregon",
            "OwnerZipFive": 2134,
            "PType": "CND",
            "Beds": "three",
            "Baths": "2.5",
            "SqFt": "1,640",
            "YearBuilt": "1987",
            "AVM": "$745,000",
            "AvailableEquity": "N/A",
            "EquityPercent": "65.5%",
            "isSameMailingOrExempt": "1",
            "inForeclosure": "Yes",
            "ForeclosureStage": " Auction ",
            "inTaxDelinquency": {},
            "isListedForSale": "0",
            "APN": 123456,
            "Owner2": "",
        }
    )
    assert cols["radar_id"] == "PBD4D8F5"
    assert (cols["state"], cols["zip_code"], cols["county"]) == ("CA", "02134", "06037")
    assert (cols["mail_state"], cols["mail_zip"]) == ("OR", "02134")
    assert cols["property_type"] == "Condominium"
    assert (cols["beds"], cols["baths"], cols["sqft"], cols["year_built"]) == (
        None,
        2.5,
        1640,
        1987,
    )
    assert (cols["avm"], cols["available_equity"], cols["equity_percent"]) == (745000, None, 65.5)
    assert (
        cols["owner_occupied"],
        cols["in_foreclosure"],
        cols["tax_delinquent"],
        cols["listed_for_sale"],
    ) == (True, True, None, False)
    assert cols["foreclosure_stage"] == "Auction"
    assert cols["apn"] == "123456" and cols["owner2"] is None
    # County given as a name: fall back to FIPS, else None.
    assert lead_columns({"County": "Multnomah", "FIPS": "41051"})["county"] == "41051"
    assert lead_columns({"County": "Multnomah"})["county"] is None
    # Not even a dict.
    for junk in (None, [], "P1", 5):
        assert set(lead_columns(junk).values()) == {None}


def _reference(record: Any) -> dict[str, Any]:
    """lead_columns written as the plain loop over the table that it is compiled from."""
    get = record.get if isinstance(record, dict) else {}.get
    columns = {}
    for f in leads.STORED_FIELDS:
        value = f.parse(get(f.field))
        if value is None and f.fallback is not None:
            value = f.parse(get(f.fallback))
        columns[f.name] = value
    return columns


_ODD_VALUES = [
    None, "", "  ", "n/a", 0, 1, -3, 2.5, float("nan"), True, False, "1", "0", "Yes",
    "$612,000", "65%", "(1,234)", "97214-1234", 2134, "41051", "Multnomah", "OR",
    "California", "SFR", "Single Family", "x" * 40, "\x00nul", "\udfff", [], {}, 10**40,
    # The edges of the parsers' inlined common cases (coerce.INLINE).
    "2.5", "2.", ".5", ".", "1.2.3", "1e5", " 12 ", "1_000", "\u0661\u0662", "0612", "12345",
    "123456", "2147483647", "2147483648", 2147483647, 2147483648, -2147483649, 2**63,
    "9" * 18, "9" * 19, "9" * 30, "9" * 31, 99999, 100000, -1, "ca", "CA ", " OR", "ZZ",
    "Condominium", "condominium", "P1A2B3C4", " P1 ", "p" * 32, "p" * 33, 1.0, 0.0, -0.0,
    float("inf"), 1e30, 1e29, "\t", "a\x00", "é",
]  # fmt: skip


@pytest.mark.parametrize("seed", range(20))
def test_compiled_lead_columns_match_the_table_for_any_values(seed: int) -> None:
    rng = random.Random(seed)
    keys = [*(f.field for f in leads.FIELDS), "FIPS", "Unrelated"]
    for _ in range(300):
        record = {key: rng.choice(_ODD_VALUES) for key in rng.sample(keys, rng.randint(0, 12))}
        # Types too: 1 == True, and a fast path must not turn a flag into an int.
        typed = {name: (type(v), v) for name, v in lead_columns(record).items()}
        assert typed == {name: (type(v), v) for name, v in _reference(record).items()}, record
