"""Lead outputs: what the CSV export and the JSON leads carry, and the CSV export itself.

Both outputs carry every field the job bought, from one table: the lead essentials
(typed Property columns, plus LastTransferRecDate, which has no column and is read from
the raw record) and the job's custom fields (read from the raw record as PropertyRadar
sent them). A field that was paid for and shown nowhere is money lost to the user.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from flask import Response, stream_with_context
from sqlalchemy.orm import Session

from radar_app.models import BatchJob, JobProperty, Property
from radar_app.propertyradar.coerce import to_str


@dataclass(frozen=True)
class LeadColumn:
    """One lead essential in both outputs."""

    field: str  # the PropertyRadar field bought
    key: str  # its JSON key
    header: str  # its CSV header
    column: str | None = None  # the Property attribute; None: read from the raw record


# In the order a mail-merge or CRM import expects them; the JSON keys follow it too.
ESSENTIAL_COLUMNS: list[LeadColumn] = [
    LeadColumn("RadarID", "radar_id", "RadarID", "radar_id"),
    LeadColumn("Address", "address", "Address", "address"),
    LeadColumn("City", "city", "City", "city"),
    LeadColumn("State", "state", "State", "state"),
    LeadColumn("ZipFive", "zip_code", "ZIP", "zip_code"),
    LeadColumn("County", "county", "County FIPS", "county"),
    LeadColumn("APN", "apn", "APN", "apn"),
    LeadColumn("Owner", "owner_name", "Owner", "owner_name"),
    LeadColumn("Owner2", "owner2", "Owner 2", "owner2"),
    LeadColumn("OwnerFirstName", "owner_first_name", "Owner First Name", "owner_first_name"),
    LeadColumn("OwnerLastName", "owner_last_name", "Owner Last Name", "owner_last_name"),
    LeadColumn("OwnerAddress", "mail_address", "Mailing Address", "mail_address"),
    LeadColumn("OwnerCity", "mail_city", "Mailing City", "mail_city"),
    LeadColumn("OwnerState", "mail_state", "Mailing State", "mail_state"),
    LeadColumn("OwnerZipFive", "mail_zip", "Mailing ZIP", "mail_zip"),
    LeadColumn("PType", "property_type", "Property Type", "property_type"),
    LeadColumn("Beds", "beds", "Beds", "beds"),
    LeadColumn("Baths", "baths", "Baths", "baths"),
    LeadColumn("SqFt", "sqft", "Sq Ft", "sqft"),
    LeadColumn("YearBuilt", "year_built", "Year Built", "year_built"),
    LeadColumn("AVM", "avm", "AVM", "avm"),
    LeadColumn("AvailableEquity", "available_equity", "Available Equity", "available_equity"),
    LeadColumn("EquityPercent", "equity_percent", "Equity %", "equity_percent"),
    LeadColumn("isSameMailingOrExempt", "owner_occupied", "Owner Occupied", "owner_occupied"),
    LeadColumn("inForeclosure", "in_foreclosure", "In Foreclosure", "in_foreclosure"),
    LeadColumn("ForeclosureStage", "foreclosure_stage", "Foreclosure Stage", "foreclosure_stage"),
    LeadColumn("inTaxDelinquency", "tax_delinquent", "Tax Delinquent", "tax_delinquent"),
    LeadColumn("isListedForSale", "listed_for_sale", "Listed For Sale", "listed_for_sale"),
    # No column (adding one needs a migration); the text as PropertyRadar sent it, M/D/YYYY.
    LeadColumn("LastTransferRecDate", "last_transfer_date", "Last Transfer Date"),
]
# tests/test_lead_outputs.py checks these are exactly criteria.LEAD_FIELDS: every
# essential bought is exported.
_ESSENTIAL_FIELDS = frozenset(column.field for column in ESSENTIAL_COLUMNS)

# The JSON key under which a lead carries the job's custom fields, by PropertyRadar name.
CUSTOM_FIELDS_KEY = "custom_fields"


def custom_fields(job: BatchJob) -> list[str]:
    """The fields the job bought beyond the essentials, in the order it asked for them."""
    return [field for field in job.fields or [] if field not in _ESSENTIAL_FIELDS]


def _raw_value(raw: object, column: LeadColumn) -> str | None:
    return to_str(raw.get(column.field)) if isinstance(raw, dict) else None


def lead_values(prop: Property, custom: Sequence[str]) -> dict[str, Any]:
    """A lead as the JSON API shows it: every essential by key, then the custom fields."""
    raw = prop.raw if isinstance(prop.raw, dict) else {}
    values: dict[str, Any] = {
        column.key: getattr(prop, column.column) if column.column else _raw_value(raw, column)
        for column in ESSENTIAL_COLUMNS
    }
    values[CUSTOM_FIELDS_KEY] = {field: raw.get(field) for field in custom}
    return values


def csv_header(custom: Sequence[str]) -> list[str]:
    """The CSV's header row: the essentials' headers, then the custom fields' own names."""
    return [column.header for column in ESSENTIAL_COLUMNS] + list(custom)


# Rows per keyset page: big enough that the per-query cost vanishes, small enough that a
# chunk (~1 MB of CSV) is nothing next to the web process.
_CHUNK = 5000
# Spreadsheet formula injection: a cell from outside data must not start a formula.
_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def _csv_expression(name: str) -> sa.ColumnElement[Any]:
    """The column as the CSV shows it (Yes/No for flags, formula-guarded text), computed
    by the database so rows go from the cursor to csv.writer untouched."""
    column = getattr(Property, name)
    if isinstance(column.type, sa.Boolean):
        return sa.case((column == sa.true(), "Yes"), (column == sa.false(), "No"), else_="")
    if isinstance(column.type, sa.String):
        guarded = sa.func.substr(column, 1, 1).in_(_FORMULA_PREFIXES)
        return sa.case((guarded, sa.literal("'") + column), else_=column)
    return column


def _raw_cell(value: object) -> object:
    """A raw-record value as a CSV cell: text formula-guarded, flags Yes/No, None empty."""
    if isinstance(value, str):
        return "'" + value if value.startswith(_FORMULA_PREFIXES) else value
    if isinstance(value, bool):
        return "Yes" if value else "No"
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return value


def csv_download(session: Session, job: BatchJob) -> Response:
    """A streamed attachment response with every lead of the job."""
    filename = f"radar-{job.job_id[:8]}-leads.csv"
    return Response(
        stream_with_context(iter_csv(session, job.id, custom_fields(job))),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def iter_csv(session: Session, batch_job_id: int, custom: Sequence[str] = ()) -> Iterator[str]:
    """Yield the CSV text chunk by chunk: a header, then one row per lead in search order.

    Memory stays flat whatever the job's size: one keyset page of rows and its text at a
    time. csv.writer writes None as an empty cell. Column-backed cells are formatted by
    the database; values from the raw record (the JSON column, indexed per field) are
    decoded by the driver and formatted here.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(csv_header(custom))
    yield buffer.getvalue()
    cells: list[sa.ColumnElement[Any]] = [
        _csv_expression(c.column) if c.column else Property.raw[c.field] for c in ESSENTIAL_COLUMNS
    ]
    cells += [Property.raw[field] for field in custom]
    # Raw essentials read as the JSON leads show them (text); custom fields as sent.
    raw_essentials = [i for i, c in enumerate(ESSENTIAL_COLUMNS) if c.column is None]
    raw_custom = range(len(ESSENTIAL_COLUMNS), len(cells))

    def finish(row: Sequence[Any]) -> list[Any]:
        # The position is the last column: slice it off.
        out = list(row[:-1])
        for i in raw_essentials:
            out[i] = _raw_cell(to_str(out[i]))
        for i in raw_custom:
            out[i] = _raw_cell(out[i])
        return out

    # Core, not the ORM session's execute: no ORM result machinery for plain tuples.
    connection = session.connection()
    last_position = -1
    while True:
        # Keyset pagination on (job, position): each chunk is one indexed range scan.
        rows = connection.execute(
            sa.select(*cells, JobProperty.position)
            .join(Property, Property.id == JobProperty.property_id)
            .where(JobProperty.batch_job_id == batch_job_id, JobProperty.position > last_position)
            .order_by(JobProperty.position)
            .limit(_CHUNK)
        ).all()
        if not rows:
            return
        buffer.seek(0)
        buffer.truncate()
        writer.writerows(finish(row) for row in rows)
        yield buffer.getvalue()
        if len(rows) < _CHUNK:
            return
        last_position = rows[-1][-1]
