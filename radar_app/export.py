"""A job's leads as they are read back: in search order, and as a CSV export.

It carries every field the job bought, in radar_app.leads order: the lead essentials
(typed Property columns, plus any without a column, read from the raw record) and the
job's custom fields (read from the raw record as PropertyRadar sent them). A field that
was paid for and shown nowhere is money lost to the user.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator, Sequence
from typing import Any

import sqlalchemy as sa
from flask import Response, stream_with_context

from radar_app import leads
from radar_app.models import BatchJob, DbSession, JobProperty, Property
from radar_app.outcomes import iter_outcomes_csv


def custom_fields(job: BatchJob) -> list[str]:
    """The fields the job bought beyond the essentials, in the order it asked for them."""
    return leads.custom_fields(job.fields)


def leads_in_search_order(job: BatchJob) -> sa.Select[tuple[Property]]:
    """The job's leads, in the order the search returned them: the query a page of them
    is cut from (the CSV reads the same links by keyset, see iter_csv)."""
    return (
        sa.select(Property)
        .join(JobProperty, JobProperty.property_id == Property.id)
        .where(JobProperty.batch_job_id == job.id)
        .order_by(JobProperty.position)
    )


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


def outcomes_download(session: DbSession, job: BatchJob, batch_size: int) -> Response:
    """The job's outcome file (radar_app.outcomes) as a streamed attachment."""
    return _attachment(
        iter_outcomes_csv(session, job, batch_size), f"radar-{job.job_id[:8]}-outcomes.csv"
    )


def _attachment(chunks: Iterator[str], filename: str) -> Response:
    return Response(
        stream_with_context(chunks),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def csv_download(session: DbSession, job: BatchJob) -> Response:
    """A streamed attachment response with every lead of the job."""
    return _attachment(
        iter_csv(session, job.id, custom_fields(job)), f"radar-{job.job_id[:8]}-leads.csv"
    )


def iter_csv(session: DbSession, batch_job_id: int, custom: Sequence[str] = ()) -> Iterator[str]:
    """Yield the CSV text chunk by chunk: a header, then one row per lead in search order.

    Memory stays flat whatever the job's size: one keyset page of rows and its text at a
    time. csv.writer writes None as an empty cell. Column-backed cells are formatted by
    the database; values from the raw record (the JSON column, indexed per field) are
    decoded by the driver and formatted here.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(leads.csv_header(custom))
    yield buffer.getvalue()
    cells: list[sa.ColumnElement[Any]] = [
        _csv_expression(f.name) if f.sql_type is not None else Property.raw[f.field]
        for f in leads.FIELDS
    ]
    cells += [Property.raw[field] for field in custom]
    # Essentials without a column read as the JSON leads show them (text); custom fields
    # as sent.
    raw_essentials = [i for i, f in enumerate(leads.FIELDS) if f.sql_type is None]
    raw_custom = range(len(leads.FIELDS), len(cells))

    def finish(row: Sequence[Any]) -> list[Any]:
        # The position is the last column: slice it off.
        out = list(row[:-1])
        for i in raw_essentials:
            out[i] = _raw_cell(leads.FIELDS[i].parse(out[i]))
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
