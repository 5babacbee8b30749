"""Storing what a job bought: the property upserts, the job's links to them, its snapshot
rows, and the retry that waits out a busy or unreachable database.

No commits here except through retry_transaction's `work`: the importer decides what one
transaction holds (a chunk's properties, links, ledger rows and checkpoint together).
"""

from __future__ import annotations

import abc
import logging
import sqlite3
import time
import weakref
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar, cast

import psycopg
import sqlalchemy as sa

from radar_app import jsoncodec
from radar_app.leads import LEAD_COLUMNS, lead_values
from radar_app.models import DbSession, Property
from radar_app.propertyradar.client import Page
from radar_app.propertyradar.coerce import radar_id_of

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Columns refreshed when a property we already have comes back in a later page or job.
_UPDATABLE_COLUMNS = [
    c.name for c in Property.__table__.columns if c.name not in {"id", "radar_id", "first_seen_at"}
]


def is_transient_db_error(exc: BaseException) -> bool:
    """A database error worth waiting out: SQLite's "database is locked" (another process
    held the write lock past busy_timeout), or on PostgreSQL a lost connection, a
    serialization failure, a deadlock or a lock timeout (all OperationalError)."""
    if isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated:
        return True
    if not isinstance(exc, sa.exc.OperationalError):
        return False
    if isinstance(exc.orig, sqlite3.Error):
        text = str(exc.orig).lower()
        return "locked" in text or "busy" in text
    return True


def retry_transaction(session: DbSession, what: str, work: Callable[[], T], retry_for: float) -> T:
    """Run one transaction, retrying it with backoff while the database is busy or
    unreachable (up to `retry_for` seconds). Each try starts from a rollback, so
    `work` sees the committed state again (the job row is reloaded)."""
    deadline = time.monotonic() + retry_for
    delay, tries = 0.05, 0
    while True:
        try:
            result = work()
        except sa.exc.DBAPIError as exc:
            try:
                session.rollback()
            except sa.exc.DBAPIError:  # the connection is gone; the pool replaces it
                logger.debug("rollback after a database error failed", exc_info=True)
            remaining = deadline - time.monotonic()
            if not is_transient_db_error(exc) or remaining <= 0:
                raise
            tries += 1
            if tries == 1:
                logger.warning(
                    "%s: database busy or unreachable (%s); retrying for up to %.0f s",
                    what,
                    exc.orig,
                    remaining,
                )
            time.sleep(min(delay, remaining))
            delay = min(delay * 2, 2.0)
            continue
        if tries:
            logger.warning("%s: stored after %d database retries", what, tries)
        return result


# -- the hot path --------------------------------------------------------------------
#
# Every bought record goes through here, 400 to a chunk, so nothing below does per-row
# ORM work: each record is coerced by one compiled function into a tuple in column order
# (leads.lead_values), the values that need the column type's own conversion (the raw
# record's JSON, the timestamps) are converted once per field with the very processors
# SQLAlchemy would apply, and the statement text is built once per dialect and sent
# with the session's own connection (exec_driver_sql: the DB-API cursor's executemany
# or execute, in the session's transaction, with SQLAlchemy's error wrapping that
# retry_transaction and the pool's disconnect handling rely on). On PostgreSQL a chunk
# is ONE statement over unnest()ed arrays (see _PostgresqlStatements for why).

_TABLE: sa.Table = Property.__table__
# Columns of an upsert, in the order of the tuples sent.
_INSERT_COLUMNS: tuple[str, ...] = (*LEAD_COLUMNS, "raw", "first_seen_at", "last_seen_at")
if LEAD_COLUMNS[0] != "radar_id":  # coerce_page reads the RadarID from the first value
    raise RuntimeError("radar_app.leads.FIELDS must start with the RadarID")


def _quoted(dialect: sa.Dialect, names: Iterable[str]) -> str:
    return ", ".join(dialect.identifier_preparer.quote(name) for name in names)


def _updates(dialect: sa.Dialect) -> str:
    quote = dialect.identifier_preparer.quote
    return ", ".join(f"{quote(name)} = excluded.{quote(name)}" for name in _UPDATABLE_COLUMNS)


class _Statements(abc.ABC):
    """The hot path's statements for one dialect, built once (see _statements)."""

    free_rows_sql: str

    def __init__(self, dialect: sa.Dialect) -> None:
        self.dialect = dialect
        # The conversions SQLAlchemy applies to these columns' values (None: none), so the
        # stored bytes are the ones the ORM path stored: the JSON text of the raw record
        # (both databases, models.RecordJSON), and on SQLite the "YYYY-MM-DD
        # HH:MM:SS.ffffff" UTC text of UTCDateTime.
        self.raw_processor = _TABLE.c.raw.type._cached_bind_processor(dialect)
        self.time_processor = _TABLE.c.last_seen_at.type._cached_bind_processor(dialect)
        for name in LEAD_COLUMNS:
            if not self._passes_through(name):
                raise RuntimeError(f"properties.{name}: the fast store path cannot convert it")

    def _passes_through(self, name: str) -> bool:
        """The driver stores this lead column's coerced value as SQLAlchemy would."""
        column_type = _TABLE.c[name].type
        if column_type._cached_bind_processor(self.dialect) is None:
            return True
        # Conversions that change nothing the lead parsers return: float(x) of to_float's
        # float (SQLite's Float), bool(x) of to_bool's bool, and on SQLite, which has no
        # boolean, int(x) of it, which sqlite3 stores as the same integer as the bool.
        return isinstance(column_type, (sa.Boolean, sa.Float))

    def timestamp(self, now: datetime) -> Any:
        return self.time_processor(now) if self.time_processor else now

    @abc.abstractmethod
    def upsert(self, connection: sa.Connection, rows: list[tuple[Any, ...]], now: Any) -> None:
        """Insert or update these (lead values, raw record) rows of properties."""

    @abc.abstractmethod
    def link(self, connection: sa.Connection, job_id: int, positions: dict[str, int]) -> int:
        """Link the stored properties (RadarID -> position) to the job; the new links."""

    @abc.abstractmethod
    def add_snapshot_items(
        self, connection: sa.Connection, job_id: int, items: dict[str, int]
    ) -> int:
        """Add snapshot rows (RadarID -> position); how many were new."""

    @abc.abstractmethod
    def mark_stored(self, connection: sa.Connection, job_id: int, outcomes: dict[int, int]) -> None:
        """Mark these snapshot positions stored, each with its outcome code."""

    def free_rows(
        self, connection: sa.Connection, job_id: int, start: int, limit: int
    ) -> list[tuple[int, str]]:
        """The first `limit` snapshot rows (position, RadarID) at or past `start` not
        stored yet, in search order. Read through the driver's cursor: the planner runs
        this before every purchase, and SQLAlchemy's result rows cost more than the query."""
        result = connection.exec_driver_sql(self.free_rows_sql, (job_id, start, limit))
        assert result.cursor is not None  # a SELECT's cursor
        rows = result.cursor.fetchall()
        result.close()
        return cast(list[tuple[int, str]], rows)


class _SqliteStatements(_Statements):
    """executemany: sqlite3 binds each row's parameters in C, one prepared statement.
    Links, marks and snapshot rows are one statement per chunk or page over a JSON
    parameter (json_each), which measured 1.6 ms a chunk against 2.5 ms for an
    executemany of 400 UPDATEs."""

    def __init__(self, dialect: sa.Dialect) -> None:
        super().__init__(dialect)
        marks = ", ".join("?" * len(_INSERT_COLUMNS))
        self.upsert_sql = (
            f"INSERT INTO properties ({_quoted(dialect, _INSERT_COLUMNS)}) VALUES ({marks}) "
            f"ON CONFLICT (radar_id) DO UPDATE SET {_updates(dialect)}"
        )
        # The WHERE is what lets SQLite parse ON CONFLICT after an INSERT ... SELECT.
        self.link_sql = (
            "INSERT INTO job_properties (batch_job_id, property_id, position) "
            "SELECT ?, p.id, e.value FROM json_each(?) AS e "
            "JOIN properties AS p ON p.radar_id = e.key WHERE true ON CONFLICT DO NOTHING"
        )
        self.snapshot_sql = (
            "INSERT INTO job_snapshot_items (batch_job_id, position, radar_id) "
            "SELECT ?, e.value, e.key FROM json_each(?) AS e WHERE true ON CONFLICT DO NOTHING"
        )
        # One statement per outcome (a chunk has one or two): as UPDATE ... FROM json_each,
        # SQLite scanned the job's rows for each position (510 ms a chunk at 20,000 rows,
        # against 0.2 ms with IN).
        self.mark_stored_sql = (
            "UPDATE job_snapshot_items SET stored = 1, outcome = ? "
            "WHERE batch_job_id = ? AND position IN (SELECT value FROM json_each(?))"
        )
        self.free_rows_sql = (
            "SELECT position, radar_id FROM job_snapshot_items WHERE batch_job_id = ? "
            "AND stored = 0 AND position >= ? ORDER BY position LIMIT ?"
        )

    def upsert(self, connection: sa.Connection, rows: list[tuple[Any, ...]], now: Any) -> None:
        dumps = self.raw_processor
        assert dumps is not None  # JSON text (RecordJSON)
        params = [(*values, dumps(raw), now, now) for values, raw in rows]
        connection.exec_driver_sql(self.upsert_sql, params)

    def link(self, connection: sa.Connection, job_id: int, positions: dict[str, int]) -> int:
        params = (job_id, jsoncodec.dumps(positions))
        return _rowcount(connection.exec_driver_sql(self.link_sql, params))

    def add_snapshot_items(
        self, connection: sa.Connection, job_id: int, items: dict[str, int]
    ) -> int:
        params = (job_id, jsoncodec.dumps(items))
        return _rowcount(connection.exec_driver_sql(self.snapshot_sql, params))

    def mark_stored(self, connection: sa.Connection, job_id: int, outcomes: dict[int, int]) -> None:
        by_outcome: dict[int, list[int]] = {}
        for position, outcome in outcomes.items():
            by_outcome.setdefault(outcome, []).append(position)
        for outcome, positions in by_outcome.items():
            params = (outcome, job_id, jsoncodec.dumps(positions))
            connection.exec_driver_sql(self.mark_stored_sql, params)


class _PostgresqlStatements(_Statements):
    """One statement per chunk: INSERT ... SELECT FROM unnest(one array per column).

    Measured on 20,000 leads in 400-row chunks (bench/storepath.py; 2 shared cores, local
    server; CPU is this process + its server backend, steadier than wall time there):
    upserts alone, psycopg 3.3's executemany, which pipelines (one Bind/Execute per row,
    no round trip each): 0.68 + 0.93 CPU s; unnest(): 0.53 + 0.87 s; COPY into a
    temporary staging table, then INSERT ... SELECT ... ON CONFLICT: 0.52 + 0.84 s. The
    whole store path (upsert + links), best of 4: unnest 10,300-12,400 records/s wall and
    1.48-1.54 CPU s, executemany 11,900-12,200 records/s and 1.68-1.72 CPU s. So unnest:
    the wall time of executemany within noise for 10% less CPU (what N workers on a
    busy machine share), as cheap as COPY without a staging table per connection, a
    second statement, or the raw psycopg connection (COPY bypasses SQLAlchemy, whose
    wrapped errors retry_transaction relies on). Arrays go in binary (%b): in text every
    quote of every JSON document is escaped in Python, 4x slower. raw is a text column
    (models.RecordJSON): as JSONB, parsing the documents cost the server more than the
    rest of the upsert together.
    """

    def __init__(self, dialect: sa.Dialect) -> None:
        super().__init__(dialect)
        quote = dialect.identifier_preparer.quote
        lead_types = [_TABLE.c[name].type.compile(dialect) for name in LEAD_COLUMNS]
        arrays = ", ".join(f"%b::{sql_type}[]" for sql_type in [*lead_types, "text"])
        names = _quoted(dialect, [*LEAD_COLUMNS, "raw"])
        selected = _quoted(dialect, [*LEAD_COLUMNS, "raw"])
        # WITH ORDINALITY + ORDER BY: new rows take their ids in page order, as before.
        self.upsert_sql = (
            f"INSERT INTO properties ({_quoted(dialect, _INSERT_COLUMNS)}) "
            f"SELECT {selected}, %s, %s FROM unnest({arrays}) WITH ORDINALITY "
            f"AS v({names}, {quote('ordinality')}) ORDER BY {quote('ordinality')} "
            f"ON CONFLICT (radar_id) DO UPDATE SET {_updates(dialect)}"
        )
        self.link_sql = (
            "INSERT INTO job_properties (batch_job_id, property_id, position) "
            "SELECT %s, p.id, v.position "
            "FROM unnest(%b::varchar[], %b::integer[]) AS v(radar_id, position) "
            "JOIN properties p ON p.radar_id = v.radar_id ON CONFLICT DO NOTHING"
        )
        self.snapshot_sql = (
            "INSERT INTO job_snapshot_items (batch_job_id, position, radar_id) "
            "SELECT %s, v.position, v.radar_id "
            "FROM unnest(%b::integer[], %b::varchar[]) WITH ORDINALITY "
            "AS v(position, radar_id, n) ORDER BY v.n ON CONFLICT DO NOTHING"
        )
        # The range: a new job's rows are not in the table's statistics yet, and from
        # "batch_job_id = x" alone PostgreSQL planned a scan of all of the job's rows.
        self.mark_stored_sql = (
            "UPDATE job_snapshot_items AS s SET stored = true, outcome = v.outcome "
            "FROM unnest(%b::integer[], %b::smallint[]) AS v(position, outcome) "
            "WHERE s.batch_job_id = %s AND s.position BETWEEN %s AND %s "
            "AND s.position = v.position"
        )
        self.free_rows_sql = (
            "SELECT position, radar_id FROM job_snapshot_items WHERE batch_job_id = %s "
            "AND NOT stored AND position >= %s ORDER BY position LIMIT %s"
        )

    def free_rows(
        self, connection: sa.Connection, job_id: int, start: int, limit: int
    ) -> list[tuple[int, str]]:
        """The primary key's ordered scan, which stops after `limit` free rows, whatever
        the statistics say. A running job's rows are newer than them: taking a job of
        200,000 rows for 75, PostgreSQL read all of its rows past `start` and sorted them
        (28 ms a call under bench row e's four imports, against 0.1 ms). With sorting
        ruled out, for this statement only, the ordered scan is the one plan left."""
        connection.exec_driver_sql("SET LOCAL enable_sort = off")
        rows = super().free_rows(connection, job_id, start, limit)
        connection.exec_driver_sql("SET LOCAL enable_sort = on")
        return rows

    def upsert(self, connection: sa.Connection, rows: list[tuple[Any, ...]], now: Any) -> None:
        dumps = self.raw_processor
        assert dumps is not None  # JSON text (RecordJSON)
        columns = [list(column) for column in zip(*(values for values, _raw in rows), strict=True)]
        columns.append([dumps(raw) for _values, raw in rows])
        connection.exec_driver_sql(self.upsert_sql, (now, now, *columns))

    def link(self, connection: sa.Connection, job_id: int, positions: dict[str, int]) -> int:
        params = (job_id, list(positions), list(positions.values()))
        return _rowcount(connection.exec_driver_sql(self.link_sql, params))

    def add_snapshot_items(
        self, connection: sa.Connection, job_id: int, items: dict[str, int]
    ) -> int:
        params = (job_id, list(items.values()), list(items))
        return _rowcount(connection.exec_driver_sql(self.snapshot_sql, params))

    def mark_stored(self, connection: sa.Connection, job_id: int, outcomes: dict[int, int]) -> None:
        positions = list(outcomes)
        params = (positions, list(outcomes.values()), job_id, min(positions), max(positions))
        connection.exec_driver_sql(self.mark_stored_sql, params)


def _rowcount(result: sa.CursorResult[Any]) -> int:
    """Rows an INSERT ... ON CONFLICT DO NOTHING added: sqlite3 sums them over an
    executemany, and one PostgreSQL statement counts its own."""
    return max(result.rowcount, 0)


_STATEMENTS: weakref.WeakKeyDictionary[sa.Dialect, _Statements] = weakref.WeakKeyDictionary()


def _statements(connection: sa.Connection) -> _Statements:
    dialect = connection.dialect
    statements = _STATEMENTS.get(dialect)
    if statements is None:
        if dialect.name == "sqlite":
            statements = _SqliteStatements(dialect)
        elif dialect.name == "postgresql":
            statements = _PostgresqlStatements(dialect)
        else:
            raise RuntimeError(f"Unsupported database dialect: {dialect.name}")
        _STATEMENTS[dialect] = statements
    return statements


def _connection(session: DbSession) -> sa.Connection:
    """The session's connection to the properties' database, in its transaction. What
    the session holds pending is flushed first, as the ORM's autoflush did before the
    statements here were ORM statements."""
    session.flush()
    return session.connection(bind_arguments={"mapper": Property})


@dataclass(frozen=True)
class CoercedPage:
    """A page's records parsed into lead values once (a purchase thread does it while
    the main thread stores another chunk): each record's RadarID in page order (None:
    no usable RadarID), (lead values, raw record) by RadarID, and how many lacked one."""

    ids: list[str | None]
    rows: dict[str, tuple[tuple[Any, ...], Any]]
    missing_id: int


def coerce_page(page: Page) -> CoercedPage:
    rows: dict[str, tuple[tuple[Any, ...], Any]] = {}
    ids: list[str | None] = []
    missing_id = 0
    for record in page.results:
        values = lead_values(record)
        radar_id = values[0]
        ids.append(radar_id)
        if radar_id is None:
            missing_id += 1
            continue
        # A RadarID twice in one page: keep the last copy. PostgreSQL refuses an upsert
        # that touches the same row twice in one statement.
        rows[radar_id] = (values, record)
    return CoercedPage(ids, rows, missing_id)


def _upsert_rows(
    session: DbSession, rows: dict[str, tuple[tuple[Any, ...], Any]], now: datetime
) -> None:
    if rows:
        connection = _connection(session)
        statements = _statements(connection)
        statements.upsert(connection, list(rows.values()), statements.timestamp(now))


def link(session: DbSession, job_id: int, positions: dict[str, int]) -> int:
    """Link stored properties (by RadarID) to the job; returns how many links are new."""
    if not positions:
        return 0
    connection = _connection(session)
    return _statements(connection).link(connection, job_id, positions)


def store_page(
    session: DbSession,
    job_id: int,
    page: Page,
    now: datetime,
    positions: dict[str, int] | None = None,
    coerced: CoercedPage | None = None,
) -> tuple[int, int, set[str]]:
    """Upsert a page's properties and link them to the job (no commit).

    Args:
        positions: snapshot position per RadarID; without it, Start + index on the page.
        coerced: the page already parsed by coerce_page.

    Returns:
        (records linked to the job for the first time, records without a RadarID,
        RadarIDs stored)
    """
    coerced = coerced or coerce_page(page)
    upsert_coerced(session, coerced, now)
    linked = link_page(session, job_id, page, coerced, positions)
    return linked, coerced.missing_id, set(coerced.rows)


def upsert_coerced(session: DbSession, coerced: CoercedPage, now: datetime) -> None:
    """Upsert a parsed page's properties (no commit)."""
    _upsert_rows(session, coerced.rows, now)


def link_page(
    session: DbSession,
    job_id: int,
    page: Page,
    coerced: CoercedPage,
    positions: dict[str, int] | None = None,
) -> int:
    """Link a page's upserted properties to the job, at their snapshot positions (Start +
    index on the page without them); returns how many links are new (no commit)."""
    link_positions: dict[str, int] = {}
    for index, radar_id in enumerate(coerced.ids):
        if radar_id is not None:
            fallback = page.start + index
            link_positions.setdefault(radar_id, (positions or {}).get(radar_id, fallback))
    return link(session, job_id, link_positions)


@contextmanager
def pipelined(session: DbSession) -> Iterator[None]:
    """Statements whose results the block does not read, sent without waiting for each
    answer: on PostgreSQL in psycopg's pipeline mode, one round trip for the block
    instead of one per statement (each of which, on a busy machine, also waits for the
    server process to be scheduled). SQLAlchemy reports no row counts inside it. An
    error the server reports at the end comes out as SQLAlchemy's, as it would have
    without the pipeline. On SQLite (in-process) a plain block."""
    connection = _connection(session)
    driver = connection.connection.driver_connection
    if not isinstance(driver, psycopg.Connection):
        yield
        return
    try:
        with driver.pipeline():
            yield
    except psycopg.Error as exc:
        raise sa.exc.DBAPIError.instance(
            None, None, exc, psycopg.Error, connection_invalidated=driver.broken
        ) from exc


def upsert_records(session: DbSession, page: Page, now: datetime) -> tuple[set[str], int]:
    """Upsert a page's records into properties (no commit).

    Returns:
        (RadarIDs stored, records without a usable RadarID: not stored)
    """
    coerced = coerce_page(page)
    _upsert_rows(session, coerced.rows, now)
    return set(coerced.rows), coerced.missing_id


def store_snapshot_items(session: DbSession, job_id: int, page: Page) -> tuple[int, int]:
    """Add a snapshot page's RadarIDs to the job's snapshot (no commit).

    Returns:
        (RadarIDs added, records listed without a RadarID)
    """
    items: dict[str, int] = {}
    missing = 0
    for index, record in enumerate(page.results):
        radar_id = radar_id_of(record)
        if radar_id is None:
            missing += 1
            continue
        items.setdefault(radar_id, page.start + index)
    if not items:
        return 0, missing
    # A RadarID seen on an earlier page (the result set shifted) keeps its first place:
    # the unique (job, RadarID) makes ON CONFLICT skip it, and the count is of rows added.
    connection = _connection(session)
    return _statements(connection).add_snapshot_items(connection, job_id, items), missing


def free_snapshot_rows(
    session: DbSession, job_id: int, start: int, limit: int
) -> list[tuple[int, str]]:
    """The job's first `limit` snapshot rows at or past position `start` not stored yet."""
    connection = _connection(session)
    return _statements(connection).free_rows(connection, job_id, start, limit)


def mark_stored(session: DbSession, job_id: int, outcomes: dict[int, int]) -> None:
    """Mark these snapshot rows done, {position: radar_app.outcomes.Outcome}: their
    chunk is stored (no commit)."""
    if outcomes:
        connection = _connection(session)
        _statements(connection).mark_stored(connection, job_id, outcomes)
