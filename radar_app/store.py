"""Storing what a job bought: the property upserts, the job's links to them, its snapshot
rows, and the retry that waits out a busy or unreachable database.

No commits here except through retry_transaction's `work`: the importer decides what one
transaction holds (a chunk's properties, links, ledger rows and checkpoint together).
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from radar_app.leads import lead_columns
from radar_app.models import BatchJob, DbSession, JobProperty, Property, SnapshotItem
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


def dialect_insert(session: DbSession, table: sa.Table) -> Any:
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(table)
    if dialect == "sqlite":
        return sqlite.insert(table)
    raise RuntimeError(f"Unsupported database dialect: {dialect}")


def _upsert_properties(session: DbSession) -> Any:
    table = Property.__table__
    stmt = dialect_insert(session, table)
    return stmt.on_conflict_do_update(
        index_elements=[table.c.radar_id],
        set_={name: stmt.excluded[name] for name in _UPDATABLE_COLUMNS},
    )


def link(session: DbSession, job: BatchJob, positions: dict[str, int]) -> int:
    """Link stored properties (by RadarID) to the job; returns how many links are new."""
    if not positions:
        return 0
    ids = dict(
        session.execute(
            sa.select(Property.radar_id, Property.id).where(Property.radar_id.in_(list(positions)))
        )
        .tuples()
        .all()
    )
    already_linked = session.scalar(
        sa.select(sa.func.count())
        .select_from(JobProperty)
        .where(JobProperty.batch_job_id == job.id, JobProperty.property_id.in_(ids.values()))
    )
    links = [
        {"batch_job_id": job.id, "property_id": ids[rid], "position": positions[rid]}
        for rid in positions
        if rid in ids
    ]
    if links:
        # One statement with a list of parameter sets: compiled once (cached) and sent as
        # a batch, instead of compiling a 400-row VALUES clause for every chunk.
        session.execute(
            dialect_insert(session, JobProperty.__table__).on_conflict_do_nothing(), links
        )
    return len(links) - (already_linked or 0)


def store_page(
    session: DbSession,
    job: BatchJob,
    page: Page,
    now: datetime,
    positions: dict[str, int] | None = None,
) -> tuple[int, int, set[str]]:
    """Upsert a page's properties and link them to the job (no commit).

    Args:
        positions: snapshot position per RadarID; without it, Start + index on the page.

    Returns:
        (records linked to the job for the first time, records without a RadarID,
        RadarIDs stored)
    """
    link_positions: dict[str, int] = {}
    rows, missing_id = upsert_records(session, page, now)
    for index, record in enumerate(page.results):
        radar_id = radar_id_of(record)
        if radar_id is not None:
            fallback = page.start + index
            link_positions.setdefault(radar_id, (positions or {}).get(radar_id, fallback))
    return link(session, job, link_positions), missing_id, rows


def upsert_records(session: DbSession, page: Page, now: datetime) -> tuple[set[str], int]:
    """Upsert a page's records into properties (no commit).

    Returns:
        (RadarIDs stored, records without a usable RadarID: not stored)
    """
    rows: dict[str, dict[str, Any]] = {}
    missing_id = 0
    for record in page.results:
        columns = lead_columns(record)
        radar_id = columns["radar_id"]
        if radar_id is None:
            missing_id += 1
            continue
        columns.update(raw=record, first_seen_at=now, last_seen_at=now)
        # A RadarID twice in one page: keep the last copy. PostgreSQL refuses an upsert
        # that touches the same row twice in one statement.
        rows[radar_id] = columns
    if rows:
        session.execute(_upsert_properties(session), list(rows.values()))
    return set(rows), missing_id


def store_snapshot_items(session: DbSession, job: BatchJob, page: Page) -> tuple[int, int]:
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
    # A RadarID seen on an earlier page (the result set shifted) keeps its first place.
    known = set(
        session.scalars(
            sa.select(SnapshotItem.radar_id).where(
                SnapshotItem.batch_job_id == job.id, SnapshotItem.radar_id.in_(list(items))
            )
        )
    )
    rows = [
        {"batch_job_id": job.id, "position": position, "radar_id": radar_id}
        for radar_id, position in items.items()
        if radar_id not in known
    ]
    if rows:
        session.execute(
            dialect_insert(session, SnapshotItem.__table__).on_conflict_do_nothing(), rows
        )
    return len(rows), missing


def mark_stored(session: DbSession, job: BatchJob, positions: list[int]) -> None:
    """Mark these snapshot rows done: their chunk is stored (no commit)."""
    if positions:
        session.execute(
            sa.update(SnapshotItem)
            .where(SnapshotItem.batch_job_id == job.id, SnapshotItem.position.in_(positions))
            .values(stored=True)
            .execution_options(synchronize_session=False)
        )
