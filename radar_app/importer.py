"""The page loop that turns a batch job into stored leads.

Works on any SQLAlchemy Session and a PropertyRadarClient: no Flask app or request
context is needed, so the RQ task, the tests and a plain script can all drive it.

Guarantees, per page: the properties, the job links, the checkpoint, the counters and
the log row are committed in ONE transaction. A page is therefore either fully stored
and never requested again, or not stored at all and requested again on resume.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from radar_app.joblog import job_context
from radar_app.models import BatchJob, BatchJobLog, JobProperty, JobStatus, Property, utcnow
from radar_app.propertyradar.client import Page, PropertyRadarClient
from radar_app.propertyradar.coerce import lead_columns
from radar_app.propertyradar.errors import PropertyRadarError

logger = logging.getLogger(__name__)

# Columns refreshed when a property we already have comes back in a later page or job.
_UPDATABLE_COLUMNS = [
    c.name for c in Property.__table__.columns if c.name not in {"id", "radar_id", "first_seen_at"}
]


class LostOwnership(Exception):
    """Another run owns this job now (recovery requeued it); this run must stop and store
    nothing more."""


def add_log(
    session: Session, job: BatchJob, level: str, message: str, page: int | None = None
) -> None:
    """Record a line in the job's user-visible log (committed with the caller's transaction)."""
    session.add(BatchJobLog(batch_job_id=job.id, level=level, page=page, message=message))


def _insert(session: Session, table: sa.Table) -> Any:
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(table)
    if dialect == "sqlite":
        return sqlite.insert(table)
    raise RuntimeError(f"Unsupported database dialect: {dialect}")


def _upsert_properties(session: Session) -> Any:
    table = Property.__table__
    stmt = _insert(session, table)
    return stmt.on_conflict_do_update(
        index_elements=[table.c.radar_id],
        set_={name: stmt.excluded[name] for name in _UPDATABLE_COLUMNS},
    )


def store_page(session: Session, job: BatchJob, page: Page, now: datetime) -> tuple[int, int]:
    """Upsert a page's properties and link them to the job (no commit).

    Returns:
        (records linked to the job for the first time, records without a RadarID)
    """
    rows: dict[str, dict[str, Any]] = {}
    positions: dict[str, int] = {}
    missing_id = 0
    for index, record in enumerate(page.results):
        columns = lead_columns(record) if isinstance(record, dict) else {"radar_id": None}
        radar_id = columns.get("radar_id")
        if not radar_id:
            missing_id += 1
            continue
        columns.update(raw=record, first_seen_at=now, last_seen_at=now)
        # A RadarID twice in one page: keep the last copy. PostgreSQL refuses an upsert
        # that touches the same row twice in one statement.
        rows[radar_id] = columns
        positions.setdefault(radar_id, page.start + index)
    if not rows:
        return 0, missing_id

    # One statement with a list of parameter sets: SQLAlchemy compiles it once (cached)
    # and sends the rows as a batch ("insertmanyvalues"/executemany), instead of
    # compiling a 400-row VALUES clause for every page.
    session.execute(_upsert_properties(session), list(rows.values()))

    ids = dict(
        session.execute(
            sa.select(Property.radar_id, Property.id).where(Property.radar_id.in_(list(rows)))
        ).all()
    )
    already_linked = session.scalar(
        sa.select(sa.func.count())
        .select_from(JobProperty)
        .where(JobProperty.batch_job_id == job.id, JobProperty.property_id.in_(ids.values()))
    )
    links = [
        {"batch_job_id": job.id, "property_id": ids[rid], "position": positions[rid]}
        for rid in rows
    ]
    session.execute(_insert(session, JobProperty.__table__).on_conflict_do_nothing(), links)
    return len(links) - (already_linked or 0), missing_id


def claim(session: Session, batch_id: int, run_id: str | None = None) -> BatchJob | None:
    """Atomically move a PENDING job to PROCESSING; None when another worker has it or it
    is no longer pending (cancelled while queued, already finished).

    Args:
        run_id: the RQ job id of this run. A stale RQ job (one that recovery or a retry
            has replaced with a new id) cannot claim the row.
    """
    now = utcnow()
    conditions = [BatchJob.id == batch_id, BatchJob.status == JobStatus.PENDING]
    if run_id is not None:
        conditions.append(BatchJob.rq_job_id == run_id)
    result = session.execute(
        sa.update(BatchJob)
        .where(*conditions)
        .values(
            status=JobStatus.PROCESSING,
            attempts=BatchJob.attempts + 1,
            started_at=sa.func.coalesce(BatchJob.started_at, now),
            run_started_at=now,
            run_start_processed=BatchJob.processed_records,
            heartbeat_at=now,
            completed_at=None,
            error_details=None,
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    session.commit()
    if result.rowcount != 1:
        return None
    return session.get(BatchJob, batch_id, populate_existing=True)


def _finish(
    session: Session, job: BatchJob, run_id: str, status: JobStatus, message: str, level: str
) -> None:
    _assert_owner(session, job, run_id, utcnow())
    job.status = status
    job.completed_at = utcnow()
    job.cancel_requested = False
    add_log(session, job, level, message)
    session.commit()


def _cancel_requested(session: Session, job: BatchJob) -> bool:
    # Read the flag from the database, not the identity map: the web process sets it.
    return bool(session.scalar(sa.select(BatchJob.cancel_requested).where(BatchJob.id == job.id)))


def _assert_owner(session: Session, job: BatchJob, run_id: str, now: datetime) -> None:
    """First statement of each page transaction: still ours? It also takes the row's write
    lock, so recovery cannot requeue the job between this check and the commit."""
    owned = session.execute(
        sa.update(BatchJob)
        .where(
            BatchJob.id == job.id,
            BatchJob.rq_job_id == run_id,
            BatchJob.status == JobStatus.PROCESSING,
        )
        .values(heartbeat_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount
    if owned != 1:
        raise LostOwnership(f"job {job.job_id} was taken over by another run")


def run_import(
    session: Session,
    client: PropertyRadarClient,
    batch_id: int,
    *,
    batch_size: int,
    fields: Sequence[str] | None = None,
    run_id: str | None = None,
) -> str:
    """Run (or resume) a batch job from its checkpoint until it completes, fails or is cancelled.

    Args:
        run_id: the RQ job id this run was started for (None: whatever the row holds).

    Returns the job's final status. Raises the client's error after recording FAILED,
    so RQ also files the job as failed.
    """
    job = claim(session, batch_id, run_id)
    if job is None:
        current = session.get(BatchJob, batch_id)
        status = current.status if current else "MISSING"
        logger.info("batch %s not claimed (status %s); nothing to do", batch_id, status)
        return status
    if job.rq_job_id is None:  # run inline, never queued: give the run an id to own it by
        job.rq_job_id = f"inline-{uuid.uuid4().hex[:12]}"
        session.commit()
    with job_context(job.job_id):
        return _run_claimed(session, client, job, batch_size=batch_size, fields=fields)


def _run_claimed(
    session: Session,
    client: PropertyRadarClient,
    job: BatchJob,
    *,
    batch_size: int,
    fields: Sequence[str] | None,
) -> str:
    batch_id, run_id = job.id, job.rq_job_id or ""
    logger.info("attempt %d started at offset %d", job.attempts, job.next_start)
    add_log(
        session,
        job,
        "INFO",
        f"Attempt {job.attempts} started"
        + (f", resuming at record {job.next_start + 1}" if job.next_start else ""),
    )
    session.commit()

    try:
        if job.total_records is None:
            matches = client.count(job.criteria)
            job.total_records = min(matches, job.max_records) if job.max_records else matches
            cap = f" (capped at {job.max_records:,})" if job.max_records else ""
            add_log(session, job, "INFO", f"Search matches {matches:,} records{cap}")
            session.commit()
            logger.info("total %d records", job.total_records)

        last_seen_total: int | None = None
        while job.next_start < job.total_records:
            if _cancel_requested(session, job):
                _finish(
                    session,
                    job,
                    run_id,
                    JobStatus.CANCELLED,
                    f"Cancelled after {job.processed_records:,} records; stored leads are kept",
                    "WARNING",
                )
                logger.info("cancelled at offset %d", job.next_start)
                return job.status
            start = job.next_start
            limit = min(batch_size, job.total_records - start)
            page_number = start // batch_size + 1
            page = client.fetch_page(job.criteria, start, limit, fields)
            now = utcnow()
            _assert_owner(session, job, run_id, now)
            linked, missing_id = store_page(session, job, page, now)
            job.processed_records += len(page.results)
            job.success_count += linked
            job.error_count += missing_id
            # Advance by what was asked for: a short page means the result set shrank
            # and the offsets after it moved, which a fixed checkpoint cannot repair.
            job.next_start = start + limit
            job.pages_fetched += 1
            job.heartbeat_at = now
            message = f"Page {page_number}: {len(page.results)} records from offset {start}"
            if missing_id:
                message += f", {missing_id} without a RadarID (skipped)"
            level = "WARNING" if missing_id else "INFO"
            if not page.results:
                job.total_records = job.processed_records
                message += "; the search returned no more records, finishing early"
                level = "WARNING"
            if last_seen_total is not None and page.total_result_count != last_seen_total:
                # Offsets shift when the result set changes under a running job, so a
                # record can move past the checkpoint (missed) or back before it (seen
                # twice, stored once). Say so; the job's total stays what it promised.
                message += (
                    f"; the search now matches {page.total_result_count:,} records"
                    f" (was {last_seen_total:,}), so records may have moved between pages"
                )
                level = "WARNING"
            last_seen_total = page.total_result_count
            add_log(session, job, level, message, page=page_number)
            session.commit()
            logger.info(
                "page %d start=%d records=%d linked=%d missing_id=%d request=%s",
                page_number,
                start,
                len(page.results),
                linked,
                missing_id,
                page.request_id,
            )

        _finish(
            session,
            job,
            run_id,
            JobStatus.COMPLETED,
            f"Completed: {job.success_count:,} leads stored"
            + (f", {job.error_count:,} records skipped" if job.error_count else ""),
            "INFO",
        )
        logger.info("completed: %d stored, %d errors", job.success_count, job.error_count)
        return job.status
    except LostOwnership:
        session.rollback()
        logger.warning("stopped: another run owns the job now; this run stored nothing more")
        return JobStatus.PROCESSING
    except PropertyRadarError as exc:
        session.rollback()
        _fail(session, batch_id, run_id, str(exc))
        raise
    except Exception as exc:
        session.rollback()
        _fail(session, batch_id, run_id, f"Internal error: {exc.__class__.__name__}: {exc}")
        raise


def _fail(session: Session, batch_id: int, run_id: str, message: str) -> None:
    job = session.get(BatchJob, batch_id, populate_existing=True)
    if job is None or job.rq_job_id != run_id or job.status != JobStatus.PROCESSING:
        return  # not ours any more: the run that owns it decides its fate
    job.error_details = message
    logger.error("failed at offset %d: %s", job.next_start, message)
    _finish(
        session,
        job,
        run_id,
        JobStatus.FAILED,
        f"Failed at record {job.next_start + 1}: {message}. Retry resumes from there.",
        "ERROR",
    )
