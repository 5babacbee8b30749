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
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import sqlalchemy as sa
from flask import Response, stream_with_context

from radar_app import leads, leadsearch
from radar_app.leadsearch import LeadQuery
from radar_app.models import BatchJob, DbSession, JobProperty, Property, User, raw_field, utcnow
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
    columns = _Columns([f.name for f in leads.FIELDS], custom)
    yield columns.header()
    # Core, not the ORM session's execute: no ORM result machinery for plain tuples.
    connection = session.connection()
    last_position = -1
    while True:
        # Keyset pagination on (job, position): each chunk is one indexed range scan.
        rows = connection.execute(
            sa.select(*columns.cells, JobProperty.position)
            .join(Property, Property.id == JobProperty.property_id)
            .where(JobProperty.batch_job_id == batch_job_id, JobProperty.position > last_position)
            .order_by(JobProperty.position)
            .limit(_CHUNK)
        ).all()
        if not rows:
            return
        yield columns.text(row[:-1] for row in rows)
        if len(rows) < _CHUNK:
            return
        last_position = rows[-1][-1]


class _Columns:
    """The CSV columns chosen: essentials by their JSON name, in radar_app.leads order,
    then custom fields by PropertyRadar name; what to select for them and how a row of
    the selection becomes CSV text."""

    def __init__(self, essentials: Sequence[str], custom: Sequence[str]) -> None:
        chosen = set(essentials)
        self.fields = [f for f in leads.FIELDS if f.name in chosen]
        self.custom = list(custom)
        self.cells: list[sa.ColumnElement[Any]] = [
            _csv_expression(f.name) if f.sql_type is not None else raw_field(f.field)
            for f in self.fields
        ] + [raw_field(field) for field in self.custom]
        # Essentials without a column read as the JSON leads show them (text); custom
        # fields as sent.
        self._raw_essentials = [i for i, f in enumerate(self.fields) if f.sql_type is None]
        self._raw_custom = range(len(self.fields), len(self.cells))
        self._buffer = io.StringIO()
        self._writer = csv.writer(self._buffer)

    def header(self) -> str:
        return self._write([[f.header for f in self.fields] + self.custom])

    def text(self, rows: Iterable[Sequence[Any]]) -> str:
        return self._write(self._finish(row) for row in rows)

    def _finish(self, row: Sequence[Any]) -> list[Any]:
        out = list(row)
        for i in self._raw_essentials:
            out[i] = _raw_cell(self.fields[i].parse(out[i]))
        for i in self._raw_custom:
            out[i] = _raw_cell(out[i])
        return out

    def _write(self, rows: Iterable[Sequence[Any]]) -> str:
        self._buffer.seek(0)
        self._buffer.truncate()
        self._writer.writerows(rows)
        return self._buffer.getvalue()


def browser_download(
    session: DbSession,
    user: User,
    query: LeadQuery,
    essentials: Sequence[str],
    custom: Sequence[str],
) -> Response:
    """The leads browser's current filter and order as a streamed CSV, in the columns
    the user picked."""
    columns = _Columns(essentials, custom)

    def chunks() -> Iterator[str]:
        yield columns.header()
        for rows in leadsearch.iter_keyset(session, user, query, columns.cells, _CHUNK):
            yield columns.text(rows)

    return _attachment(chunks(), f"radar-leads-{utcnow():%Y%m%d-%H%M}.csv")
