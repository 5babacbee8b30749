"""CSV export of a job's leads, streamed in constant memory."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator

import sqlalchemy as sa
from sqlalchemy.orm import Session

from radar_app.models import JobProperty, Property

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
_CHUNK = 2000


def _cell(value: object) -> object:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "Yes" if value else "No"
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@"):
        # Spreadsheet formula injection: data from outside must not run as a formula.
        return "'" + value
    return value


def iter_csv(session: Session, batch_job_id: int) -> Iterator[str]:
    """Yield the CSV text chunk by chunk: a header, then one row per lead in search order."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([header for header, _ in CSV_COLUMNS])
    columns = [getattr(Property, name) for _, name in CSV_COLUMNS]
    last_position = -1
    while True:
        # Keyset pagination on (job, position): each chunk is one indexed range scan.
        rows = session.execute(
            sa.select(JobProperty.position, *columns)
            .join(Property, Property.id == JobProperty.property_id)
            .where(JobProperty.batch_job_id == batch_job_id, JobProperty.position > last_position)
            .order_by(JobProperty.position)
            .limit(_CHUNK)
        ).all()
        for row in rows:
            writer.writerow([_cell(value) for value in row[1:]])
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        if len(rows) < _CHUNK:
            return
        last_position = rows[-1][0]
