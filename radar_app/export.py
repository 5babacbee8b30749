"""CSV export of a job's leads, streamed in constant memory."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from flask import Response, stream_with_context
from sqlalchemy.orm import Session

from radar_app.models import BatchJob, JobProperty, Property

# (header, column) in the order a mail-merge or CRM import expects them.
CSV_COLUMNS: list[tuple[str, str]] = [
    ("RadarID", "radar_id"),
    ("Address", "address"),
    ("City", "city"),
    ("State", "state"),
    ("ZIP", "zip_code"),
    ("County FIPS", "county"),
    ("APN", "apn"),
    ("Owner", "owner_name"),
    ("Owner 2", "owner2"),
    ("Owner First Name", "owner_first_name"),
    ("Owner Last Name", "owner_last_name"),
    ("Mailing Address", "mail_address"),
    ("Mailing City", "mail_city"),
    ("Mailing State", "mail_state"),
    ("Mailing ZIP", "mail_zip"),
    ("Property Type", "property_type"),
    ("Beds", "beds"),
    ("Baths", "baths"),
    ("Sq Ft", "sqft"),
    ("Year Built", "year_built"),
    ("AVM", "avm"),
    ("Available Equity", "available_equity"),
    ("Equity %", "equity_percent"),
    ("Owner Occupied", "owner_occupied"),
    ("In Foreclosure", "in_foreclosure"),
    ("Foreclosure Stage", "foreclosure_stage"),
    ("Tax Delinquent", "tax_delinquent"),
    ("Listed For Sale", "listed_for_sale"),
]
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


def csv_download(session: Session, job: BatchJob) -> Response:
    """A streamed attachment response with every lead of the job."""
    filename = f"radar-{job.job_id[:8]}-leads.csv"
    return Response(
        stream_with_context(iter_csv(session, job.id)),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def iter_csv(session: Session, batch_job_id: int) -> Iterator[str]:
    """Yield the CSV text chunk by chunk: a header, then one row per lead in search order.

    Memory stays flat whatever the job's size: one keyset page of rows and its text at a
    time. csv.writer writes None as an empty cell.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([header for header, _ in CSV_COLUMNS])
    yield buffer.getvalue()
    columns = [_csv_expression(name) for _, name in CSV_COLUMNS]
    # Core, not the ORM session's execute: no ORM result machinery for plain tuples.
    connection = session.connection()
    last_position = -1
    while True:
        # Keyset pagination on (job, position): each chunk is one indexed range scan.
        rows = connection.execute(
            sa.select(*columns, JobProperty.position)
            .join(Property, Property.id == JobProperty.property_id)
            .where(JobProperty.batch_job_id == batch_job_id, JobProperty.position > last_position)
            .order_by(JobProperty.position)
            .limit(_CHUNK)
        ).all()
        if not rows:
            return
        buffer.seek(0)
        buffer.truncate()
        # The position is the last column: slice it off without touching the other cells.
        writer.writerows(row[:-1] for row in rows)
        yield buffer.getvalue()
        if len(rows) < _CHUNK:
            return
        last_position = rows[-1][-1]
