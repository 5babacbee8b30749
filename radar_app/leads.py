"""The lead: one table of the fields a job buys by default, and everything derived from it.

Each row says, for one PropertyRadar field, how the app keeps and shows it: the Property
column and its SQL type, the parser that turns the value PropertyRadar sent into that
column's value, the CSV header and the JSON key. From this table come the Property
model's lead columns (radar_app.models), the coercion of bought records
(:func:`lead_columns`), the CSV columns (radar_app.export), the JSON leads
(radar_app.api.serializers) and the API's Lead schema (radar_app.api.schemas).

Which fields are the lead essentials, bought when a job names no fields, is
``criteria.LEAD_FIELDS``: the PropertyRadar client sends it by default, and that package
imports nothing of the app (see radar_app/propertyradar/__init__.py). The table has a row
for exactly those fields; importing this module fails if the two differ, so no field can
be bought and then shown nowhere.

A field with no column (LastTransferRecDate: adding one needs a migration) is read from
the stored raw record, as text. So are the fields a job bought beyond the essentials
(:func:`custom_fields`): both outputs show them under their PropertyRadar names.

Flask-free: the worker, the bench and the tests import it without an app.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from radar_app.propertyradar.coerce import (
    INLINE,
    INLINE_NAMES,
    RADAR_ID_MAX_LENGTH,
    to_bool,
    to_fips,
    to_float,
    to_int32,
    to_int64,
    to_property_type,
    to_radar_id,
    to_state,
    to_str,
    to_zip,
)
from radar_app.propertyradar.criteria import LEAD_FIELDS


@dataclass(frozen=True)
class LeadField:
    """One bought field: where it is kept and how each output shows it."""

    field: str  # PropertyRadar's name: what is bought, and its key in the raw record
    name: str  # the JSON key, and the Property column's name when it has one
    header: str  # the CSV header
    # Turns the value as sent into the stored (or shown) one; never raises, the record is
    # paid for; None for anything unreadable. Text for a field without a column.
    parse: Callable[[object], Any]
    # The column's SQL type; None: no column, the value is read from the raw record.
    sql_type: sa.types.TypeEngine[Any] | None
    description: str | None = None  # for the OpenAPI document
    # Read when ``field`` gives nothing: County may hold a name, FIPS then has the code.
    fallback: str | None = None
    # The lead's identity: a unique, never-null column, and never null in the JSON.
    identifies: bool = False

    @property
    def json_type(self) -> str:
        """The value's JSON type (OpenAPI): the column's, text for a raw-record field."""
        if self.sql_type is None:
            return "string"
        return _JSON_TYPES[self.sql_type.python_type]


_JSON_TYPES = {str: "string", int: "integer", float: "number", bool: "boolean"}

# Lead text is unbounded: a record is paid for before it is stored, so no column may
# reject a value for its length (PostgreSQL would fail the whole chunk with
# StringDataRightTruncation). The RadarID is the one bounded column: to_radar_id
# refuses longer ones before the database sees them.
_TEXT = sa.Text()
_STATE = "2-letter state code"
_ZIP = "5-digit ZIP"

# In the order a mail-merge or CRM import expects them: the table's column order, the
# CSV's column order and the JSON keys' order.
FIELDS: tuple[LeadField, ...] = (
    LeadField(
        "RadarID",
        "radar_id",
        "RadarID",
        to_radar_id,
        sa.String(RADAR_ID_MAX_LENGTH),
        "PropertyRadar's id of the property",
        identifies=True,
    ),
    LeadField("Address", "address", "Address", to_str, _TEXT),
    LeadField("City", "city", "City", to_str, _TEXT),
    LeadField("State", "state", "State", to_state, _TEXT, _STATE),
    LeadField("ZipFive", "zip_code", "ZIP", to_zip, _TEXT, _ZIP),
    LeadField(
        "County",
        "county",
        "County FIPS",
        to_fips,
        _TEXT,
        "County FIPS code (5 digits)",
        fallback="FIPS",
    ),
    LeadField("APN", "apn", "APN", to_str, _TEXT),
    LeadField("Owner", "owner_name", "Owner", to_str, _TEXT),
    LeadField("Owner2", "owner2", "Owner 2", to_str, _TEXT),
    LeadField("OwnerFirstName", "owner_first_name", "Owner First Name", to_str, _TEXT),
    LeadField("OwnerLastName", "owner_last_name", "Owner Last Name", to_str, _TEXT),
    LeadField("OwnerAddress", "mail_address", "Mailing Address", to_str, _TEXT),
    LeadField("OwnerCity", "mail_city", "Mailing City", to_str, _TEXT),
    LeadField("OwnerState", "mail_state", "Mailing State", to_state, _TEXT, _STATE),
    LeadField("OwnerZipFive", "mail_zip", "Mailing ZIP", to_zip, _TEXT, _ZIP),
    LeadField(
        "PType",
        "property_type",
        "Property Type",
        to_property_type,
        _TEXT,
        "Display label, e.g. Single Family",
    ),
    LeadField("Beds", "beds", "Beds", to_int32, sa.Integer()),
    LeadField("Baths", "baths", "Baths", to_float, sa.Float()),
    LeadField("SqFt", "sqft", "Sq Ft", to_int32, sa.Integer()),
    LeadField("YearBuilt", "year_built", "Year Built", to_int32, sa.Integer()),
    # Dollar amounts outgrow a 32-bit integer on the dearest properties.
    LeadField("AVM", "avm", "AVM", to_int64, sa.BigInteger(), "Automated valuation, dollars"),
    LeadField(
        "AvailableEquity",
        "available_equity",
        "Available Equity",
        to_int64,
        sa.BigInteger(),
        "Dollars",
    ),
    LeadField("EquityPercent", "equity_percent", "Equity %", to_float, sa.Float()),
    # None is "unknown", which is not "absentee".
    LeadField(
        "isSameMailingOrExempt",
        "owner_occupied",
        "Owner Occupied",
        to_bool,
        sa.Boolean(),
        "null when unknown",
    ),
    LeadField("inForeclosure", "in_foreclosure", "In Foreclosure", to_bool, sa.Boolean()),
    LeadField("ForeclosureStage", "foreclosure_stage", "Foreclosure Stage", to_str, _TEXT),
    LeadField("inTaxDelinquency", "tax_delinquent", "Tax Delinquent", to_bool, sa.Boolean()),
    LeadField("isListedForSale", "listed_for_sale", "Listed For Sale", to_bool, sa.Boolean()),
    LeadField(
        "LastTransferRecDate",
        "last_transfer_date",
        "Last Transfer Date",
        to_str,
        None,
        "Last recorded transfer, as PropertyRadar sends it (M/D/YYYY)",
    ),
)

if {f.field for f in FIELDS} != set(LEAD_FIELDS) or len(FIELDS) != len(LEAD_FIELDS):
    raise RuntimeError(
        "radar_app.leads.FIELDS must have one row per criteria.LEAD_FIELDS entry: "
        f"missing {sorted(set(LEAD_FIELDS) - {f.field for f in FIELDS})}, "
        f"extra {sorted({f.field for f in FIELDS} - set(LEAD_FIELDS))}"
    )

BY_FIELD: dict[str, LeadField] = {f.field: f for f in FIELDS}
# The fields kept in a Property column, in table order.
STORED_FIELDS: tuple[LeadField, ...] = tuple(f for f in FIELDS if f.sql_type is not None)
LEAD_COLUMNS: tuple[str, ...] = tuple(f.name for f in STORED_FIELDS)
RADAR_ID: LeadField = next(f for f in FIELDS if f.identifies)


def _compile_parser(name: str, opening: str, entry: str, closing: str) -> Callable[[object], Any]:
    """Build a parser of whole records from the table as straight-line code: one dict (or
    tuple) display, the code one would write by hand. It runs for every record bought,
    and a loop over the table is about 10% slower (bench/: store only). Only the table's
    own names and parsers go into the source, so nothing from a record is ever compiled.
    ``entry`` formats one column's value (``{value}``) with its ``{name}``."""
    parsers: dict[str, Any] = {}
    entries = []
    for i, f in enumerate(STORED_FIELDS):
        parsers[f"_parse{i}"] = f.parse
        common = INLINE.get(f.parse, "{parse}(_v)").format(parse=f"_parse{i}")
        value = f"(None if (_v := get({f.field!r})) is None else {common})"
        if f.fallback is not None:
            value = f"(v if (v := {value}) is not None else _parse{i}(get({f.fallback!r})))"
        entries.append("        " + entry.format(name=repr(f.name), value=value))
    source = "\n".join(
        [
            f"def {name}(record):",
            "    get = (record if isinstance(record, Mapping) else _EMPTY).get",
            f"    return {opening}",
            *entries,
            f"    {closing}",
        ]
    )
    namespace: dict[str, Any] = {"Mapping": Mapping, "_EMPTY": {}, **INLINE_NAMES, **parsers}
    exec(compile(source, f"<{__name__}.{name}>", "exec"), namespace)
    compiled: Callable[[object], Any] = namespace[name]
    compiled.__module__ = __name__
    return compiled


lead_columns: Callable[[object], dict[str, Any]] = _compile_parser(
    "lead_columns", "{", "{name}: {value},", "}"
)
lead_columns.__doc__ = """Map one PropertyRadar result record to typed lead columns, by column name.

    Missing keys and unreadable values become ``None``; this never raises, because the
    record has already been paid for by the time it is parsed. ``county`` is the FIPS
    code from ``County`` (or ``FIPS``), ``None`` when only a county name is present.
    """

# What the store sends to the database: the values of lead_columns, in LEAD_COLUMNS
# order, as a tuple (no dict to build and take apart again per record).
lead_values: Callable[[object], tuple[Any, ...]] = _compile_parser(
    "lead_values", "(", "{value},", ")"
)
lead_values.__doc__ = """lead_columns(record)'s values as a tuple, in LEAD_COLUMNS order."""


def raw_value(raw: object, lead_field: LeadField) -> Any:
    """A field without a column, parsed from the stored raw record (None if it is absent)."""
    return lead_field.parse(raw.get(lead_field.field)) if isinstance(raw, Mapping) else None


# The JSON key under which a lead carries the job's custom fields, by PropertyRadar name.
CUSTOM_FIELDS_KEY = "custom_fields"


def custom_fields(fields: Sequence[str] | None) -> list[str]:
    """The fields a job bought beyond the essentials, in the order it asked for them
    (``fields``: the job's, None when it bought the essentials)."""
    return [field for field in fields or () if field not in BY_FIELD]


# A lead's JSON keys, in order: every essential, then the job's custom fields by name.
JSON_KEYS: list[str] = [f.name for f in FIELDS] + [CUSTOM_FIELDS_KEY]
