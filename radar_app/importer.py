"""The import loop that turns a batch job into stored leads, spending as little as possible.

Works on any SQLAlchemy Session and a PropertyRadarClient: no Flask app or request
context is needed, so the RQ task, the tests and a plain script can all drive it.

A job runs in two phases, each resumable from a checkpoint on the job row:

1. SNAPSHOT (free): page through the search with Purchase=0 and Fields=RadarID and store
   the full list of matching RadarIDs. The job's total is the snapshot's size, so a result
   set that changes while the job runs cannot make it skip or repeat records.
2. PURCHASE: walk the snapshot in chunks of the batch size. RadarIDs already stored (and
   fresher than the freshness window) are linked to the job without buying them
   ("reused"); the rest are bought in one Purchase=1 request per chunk, by RadarID and
   the original criteria, so records that no longer match are reported as vanished.

Per chunk, the properties, the job links, the ledger row, the checkpoint, the counters
and the log row are committed in ONE transaction: a chunk is either fully stored and
never bought again, or not stored at all and bought again on resume.
"""

from __future__ import annotations

import contextvars
import dataclasses
import logging
import threading
import uuid
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from radar_app.joblog import job_context
from radar_app.models import (
    BatchJob,
    BatchJobLog,
    JobPhase,
    JobProperty,
    JobStatus,
    LedgerEntry,
    Property,
    SnapshotItem,
    User,
    utcnow,
)
from radar_app.propertyradar.client import Page, PropertyRadarClient, RetryEvent
from radar_app.propertyradar.coerce import lead_columns
from radar_app.propertyradar.errors import PropertyRadarError

logger = logging.getLogger(__name__)

# Set by the work horse's SIGTERM handler (tasks.run_batch_job) when the app is stopping:
# the run stores the chunk it has already paid for, buys nothing more and leaves the job
# PROCESSING with its checkpoint, for recovery to resume on the next start.
shutdown_requested = threading.Event()

# Columns refreshed when a property we already have comes back in a later page or job.
_UPDATABLE_COLUMNS = [
    c.name for c in Property.__table__.columns if c.name not in {"id", "radar_id", "first_seen_at"}
]


@dataclass(frozen=True)
class ImportSettings:
    batch_size: int = 400
    # Purchase=0 pages are free, so take as many RadarIDs per request as the API allows.
    snapshot_page_size: int = 1000
    # A stored property younger than this is reused instead of bought again.
    freshness: timedelta = timedelta(days=30)
    fields: Sequence[str] | None = None
    # Overlap the next purchase with storing the current chunk (see _Run._purchase).
    prefetch_purchases: bool = False

    @classmethod
    def from_config(cls, config: Any) -> ImportSettings:
        return cls(
            batch_size=config["PROPERTYRADAR_BATCH_SIZE"],
            snapshot_page_size=config["PROPERTYRADAR_SNAPSHOT_PAGE_SIZE"],
            freshness=timedelta(days=config["LEAD_FRESHNESS_DAYS"]),
            prefetch_purchases=config["PROPERTYRADAR_PREFETCH_PURCHASES"],
        )


class LostOwnership(Exception):
    """Another run owns this job now (recovery requeued it); this run must stop and store
    nothing more."""


class BudgetExceeded(Exception):
    """Buying the next chunk would cross the owner's monthly export budget."""


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


def _link(session: Session, job: BatchJob, positions: dict[str, int]) -> int:
    """Link stored properties (by RadarID) to the job; returns how many links are new."""
    if not positions:
        return 0
    ids = dict(
        session.execute(
            sa.select(Property.radar_id, Property.id).where(Property.radar_id.in_(list(positions)))
        ).all()
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
        session.execute(_insert(session, JobProperty.__table__).on_conflict_do_nothing(), links)
    return len(links) - (already_linked or 0)


def store_page(
    session: Session,
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
    rows: dict[str, dict[str, Any]] = {}
    link_positions: dict[str, int] = {}
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
        fallback = page.start + index
        link_positions.setdefault(radar_id, (positions or {}).get(radar_id, fallback))
    if rows:
        session.execute(_upsert_properties(session), list(rows.values()))
    return _link(session, job, link_positions), missing_id, set(rows)


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


def month_start(now: datetime) -> datetime:
    return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def records_bought_this_month(session: Session, user_id: int, now: datetime | None = None) -> int:
    """Records billed to the user since the 1st of this month (UTC), from the ledger."""
    since = month_start(now or utcnow())
    return int(
        session.scalar(
            sa.select(sa.func.coalesce(sa.func.sum(LedgerEntry.result_count), 0)).where(
                LedgerEntry.user_id == user_id,
                LedgerEntry.outcome == LedgerEntry.BILLED,
                LedgerEntry.created_at >= since,
            )
        )
    )


def purchase_criteria(criteria: list[dict[str, Any]], radar_ids: list[str]) -> list[dict]:
    """The job's criteria narrowed to these RadarIDs: a record that stopped matching since
    the snapshot is not returned (and not billed)."""
    return [c for c in criteria if c["name"] != "RadarID"] + [
        {"name": "RadarID", "value": radar_ids}
    ]


def run_import(
    session: Session,
    client: PropertyRadarClient,
    batch_id: int,
    *,
    settings: ImportSettings | None = None,
    batch_size: int | None = None,
    run_id: str | None = None,
) -> str:
    """Run (or resume) a batch job from its checkpoint until it completes, fails or is cancelled.

    Args:
        settings: page sizes and freshness (defaults: ImportSettings()).
        batch_size: shorthand that overrides settings.batch_size.
        run_id: the RQ job id this run was started for (None: whatever the row holds).

    Returns the job's final status. Raises the client's error after recording FAILED,
    so RQ also files the job as failed.
    """
    settings = settings or ImportSettings()
    if batch_size is not None:
        settings = dataclasses.replace(settings, batch_size=batch_size)
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
        return _Run(session, client, job, settings).run()


@dataclass
class _Chunk:
    """Up to batch_size snapshot positions, and the purchase for those not reusable."""

    number: int
    positions: dict[str, int]
    reusable: set[str]
    to_buy: list[str]
    last_position: int
    purchase: Future[Page] | None

    def page(self) -> Page | None:
        return self.purchase.result() if self.purchase is not None else None


class _Run:
    """One claimed run of a job. Holds what the phases share."""

    def __init__(
        self,
        session: Session,
        client: PropertyRadarClient,
        job: BatchJob,
        settings: ImportSettings,
    ) -> None:
        self.session, self.client, self.job, self.settings = session, client, job, settings
        self.batch_id, self.run_id = job.id, job.rq_job_id or ""
        self.owner_id = job.created_by
        self.current_page: int | None = None
        self._next_page_number = job.pages_fetched + 1
        # Resolved here: the prefetch thread has no Flask app context to find it through.
        self.engine = session.get_bind()

    def run(self) -> str:
        session, job = self.session, self.job
        logger.info("attempt %d started (%s phase)", job.attempts, job.phase)
        resume = ""
        if job.phase == JobPhase.PURCHASE and job.next_start:
            resume = f", resuming at record {job.processed_records + 1}"
        elif job.snapshot_next_start:
            resume = f", resuming the snapshot at record {job.snapshot_next_start + 1}"
        add_log(session, job, "INFO", f"Attempt {job.attempts} started{resume}")
        session.commit()

        previous_on_retry = getattr(self.client, "on_retry", None)
        self.client.on_retry = self._record_retry
        try:
            if job.phase == JobPhase.SNAPSHOT and not self._snapshot():
                return job.status
            if not self._purchase():
                return job.status
            self._finish(JobStatus.COMPLETED, self._summary(), "INFO")
            logger.info("completed: %s", self._summary())
            return job.status
        except LostOwnership:
            session.rollback()
            logger.warning("stopped: another run owns the job now; this run stored nothing more")
            return JobStatus.PROCESSING
        except BudgetExceeded as exc:
            session.rollback()
            self._fail(str(exc))
            return JobStatus.FAILED
        except PropertyRadarError as exc:
            session.rollback()
            self._fail(str(exc))
            raise
        except Exception as exc:
            session.rollback()
            self._fail(f"Internal error: {exc.__class__.__name__}: {exc}")
            raise
        finally:
            self.client.on_retry = previous_on_retry

    # -- phases -------------------------------------------------------------------

    def _snapshot(self) -> bool:
        """Collect every matching RadarID for free. False when the run stopped (cancel).

        Like the purchases, the next page is requested while the current one is stored.
        A prefetched page that turns out not to be needed is simply dropped: it was free.
        """
        session, job, client = self.session, self.job, self.client
        page_size = self.settings.snapshot_page_size

        def next_limit(count: int) -> int:
            return min(page_size, job.max_records - count) if job.max_records else page_size

        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="snapshot") as executor:
            prefetched: tuple[int, int, Future[Page]] | None = None
            while True:
                if self._cancelled() or self._stopped_for_shutdown():
                    return False
                limit = next_limit(job.snapshot_count)
                if limit <= 0:
                    break
                start = job.snapshot_next_start
                if prefetched is not None and prefetched[:2] == (start, limit):
                    page = prefetched[2].result()
                else:
                    page = client.radar_ids(job.criteria, start, limit)
                prefetched = None
                following = start + len(page.results)
                more = len(page.results) >= limit and following < page.total_result_count
                if more:
                    guess = next_limit(job.snapshot_count + len(page.results))
                    if guess > 0:
                        future = executor.submit(
                            contextvars.copy_context().run,
                            client.radar_ids,
                            job.criteria,
                            following,
                            guess,
                        )
                        prefetched = (following, guess, future)
                now = utcnow()
                _assert_owner(session, job, self.run_id, now)
                if start == 0:
                    cap = f" (capped at {job.max_records:,})" if job.max_records else ""
                    add_log(
                        session,
                        job,
                        "INFO",
                        f"Search matches {page.total_result_count:,} records{cap}; "
                        "taking a free snapshot of their RadarIDs",
                    )
                if job.total_records is None or start == 0:
                    job.total_records = (
                        min(page.total_result_count, job.max_records)
                        if job.max_records
                        else page.total_result_count
                    )
                added, missing = self._store_snapshot(page)
                job.snapshot_count += added
                job.error_count += missing
                job.snapshot_next_start = following
                session.commit()
                logger.info("snapshot start=%d ids=%d new=%d", start, len(page.results), added)
                if not more:
                    break

        _assert_owner(session, job, self.run_id, utcnow())
        job.total_records = job.snapshot_count
        job.phase = JobPhase.PURCHASE
        job.next_start = 0
        add_log(
            session,
            job,
            "INFO",
            f"Snapshot complete: {job.snapshot_count:,} RadarIDs, at no cost",
        )
        session.commit()
        return True

    def _store_snapshot(self, page: Page) -> tuple[int, int]:
        session, job = self.session, self.job
        items: dict[str, int] = {}
        missing = 0
        for index, record in enumerate(page.results):
            radar_id = record.get("RadarID") if isinstance(record, dict) else None
            if not isinstance(radar_id, str) or not radar_id.strip():
                missing += 1
                continue
            items.setdefault(radar_id.strip(), page.start + index)
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
            session.execute(_insert(session, SnapshotItem.__table__).on_conflict_do_nothing(), rows)
        return len(rows), missing

    def _purchase(self) -> bool:
        """Buy what is not stored yet, chunk by chunk. False when the run stopped (cancel).

        With prefetch_purchases, the next chunk's purchase is sent while the current one is
        being stored (one request in flight, on one background thread), so the database
        work hides behind the API's latency. Chunks are still committed strictly in order.
        The price: a worker killed mid-store leaves two paid chunks unstored instead of
        one, and both are bought again on resume. So it is off by default.
        """
        if self._stopped_for_shutdown():
            return False
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="prefetch") as executor:
            current = self._plan(self.job.next_start, executor, in_flight=0)
            while current is not None:
                page = current.page()  # re-raises the purchase's error, if any
                cancelled = _cancel_requested(self.session, self.job)
                if cancelled:
                    # A chunk that was bought is stored even when a cancel arrived
                    # meanwhile: it has been paid for.
                    self._store_chunk(current, page)
                    self._cancelled()
                    return False
                if shutdown_requested.is_set():
                    self._store_chunk(current, page)  # paid for: keep it, then buy no more
                    self._stopped_for_shutdown()
                    return False
                if not self.settings.prefetch_purchases:
                    self._store_chunk(current, page)
                    if self._stopped_for_shutdown():
                        return False
                    current = self._plan(current.last_position + 1, executor, in_flight=0)
                    continue
                try:
                    upcoming = self._plan(
                        current.last_position + 1, executor, in_flight=len(current.to_buy)
                    )
                except BudgetExceeded:
                    # Store the chunk already paid for, then decide again with nothing in
                    # flight: that raises with the exact figures, or goes on if it fits.
                    self._store_chunk(current, page)
                    current = self._plan(current.last_position + 1, executor, in_flight=0)
                    continue
                self._store_chunk(current, page)
                current = upcoming
        return True

    def _plan(self, cursor: int, executor: ThreadPoolExecutor, *, in_flight: int) -> _Chunk | None:
        """Select the chunk starting at `cursor`, decide what to reuse, and start buying the
        rest in the background. None when the snapshot is exhausted."""
        session, job = self.session, self.job
        rows = session.execute(
            sa.select(SnapshotItem.position, SnapshotItem.radar_id)
            .where(SnapshotItem.batch_job_id == job.id, SnapshotItem.position >= cursor)
            .order_by(SnapshotItem.position)
            .limit(self.settings.batch_size)
        ).all()
        session.commit()  # end the read transaction; the worker thread must not wait on it
        if not rows:
            return None
        positions = {radar_id: position for position, radar_id in rows}
        reusable = self._reusable(list(positions))
        to_buy = [rid for rid in positions if rid not in reusable]
        number = self._next_page_number
        self._next_page_number += 1 if to_buy else 0
        future = None
        if to_buy:
            self._check_budget(len(to_buy) + in_flight)
            self.current_page = number
            # copy_context: the prefetch thread's log lines keep this job's id.
            future = executor.submit(
                contextvars.copy_context().run,
                self.client.fetch_page,
                purchase_criteria(job.criteria, to_buy),
                0,
                len(to_buy),
                job.fields or self.settings.fields,
            )
        return _Chunk(number, positions, reusable, to_buy, rows[-1][0], future)

    def _store_chunk(self, chunk: _Chunk, page: Page | None) -> None:
        """One transaction: links, bought properties, ledger, counters, checkpoint, log."""
        session, job = self.session, self.job
        now = utcnow()
        _assert_owner(session, job, self.run_id, now)
        positions = chunk.positions
        reused = _link(session, job, {rid: positions[rid] for rid in chunk.reusable})
        bought_linked, missing, stored = 0, 0, set()
        if page is not None:
            bought_linked, missing, stored = store_page(session, job, page, now, positions)
            session.add(
                LedgerEntry(
                    batch_job_id=job.id,
                    user_id=self.owner_id,
                    page=chunk.number,
                    outcome=LedgerEntry.BILLED,
                    requested=len(chunk.to_buy),
                    result_count=page.result_count,
                    total_cost=page.total_cost,
                    request_id=page.request_id,
                )
            )
            job.cost_total += page.total_cost or 0.0
            job.pages_fetched += 1
        vanished = len([rid for rid in chunk.to_buy if rid not in stored])
        job.processed_records += len(positions)
        job.reused_count += reused
        job.purchased_count += len(stored)
        job.vanished_count += vanished
        job.error_count += missing
        job.success_count += reused + bought_linked
        job.next_start = chunk.last_position + 1
        job.heartbeat_at = now
        add_log(
            session,
            job,
            "WARNING" if vanished or missing else "INFO",
            self._chunk_message(chunk.number, len(positions), reused, len(stored), vanished, page),
            page=chunk.number if page is not None else None,
        )
        session.commit()
        logger.info(
            "chunk %d positions=%d reused=%d bought=%d vanished=%d request=%s",
            chunk.number,
            len(positions),
            reused,
            len(stored),
            vanished,
            page.request_id if page else None,
        )

    # -- helpers ------------------------------------------------------------------

    def _reusable(self, radar_ids: list[str]) -> set[str]:
        if self.job.refresh_all:
            return set()
        fresh_since = utcnow() - self.settings.freshness
        return set(
            self.session.scalars(
                sa.select(Property.radar_id).where(
                    Property.radar_id.in_(radar_ids), Property.last_seen_at >= fresh_since
                )
            )
        )

    def _check_budget(self, wanted: int) -> None:
        budget = self.session.scalar(
            sa.select(User.monthly_export_budget).where(User.id == self.owner_id)
        )
        if budget is None:
            return
        used = records_bought_this_month(self.session, self.owner_id)
        if used + wanted > budget:
            raise BudgetExceeded(
                f"Monthly export budget reached: {used:,} of {budget:,} records bought this "
                f"month, and the next chunk needs {wanted:,} more. Nothing was bought for it; "
                "retry after the budget is raised or next month"
            )

    def _record_retry(self, event: RetryEvent) -> None:
        """Ledger row for a purchase whose response was lost: it may have been billed.
        Written on its own connection at once, so a crash right after cannot lose it."""
        if not (event.purchase and event.possibly_billed):
            return
        entry = {
            "batch_job_id": self.batch_id,
            "user_id": self.owner_id,
            "created_at": utcnow(),
            "page": self.current_page,
            "outcome": LedgerEntry.POSSIBLY_BILLED,
            "requested": 0,
            "result_count": None,
            "total_cost": None,
            "request_id": event.error.request_id,
            "note": f"Attempt {event.attempt} failed ({event.error}); retried"[:300],
        }
        with self.engine.begin() as conn:
            conn.execute(sa.insert(LedgerEntry.__table__), entry)

    def _cancelled(self) -> bool:
        if not _cancel_requested(self.session, self.job):
            return False
        self._finish(
            JobStatus.CANCELLED,
            f"Cancelled after {self.job.processed_records:,} records; stored leads are kept",
            "WARNING",
        )
        logger.info("cancelled at record %d", self.job.next_start)
        return True

    def _stopped_for_shutdown(self) -> bool:
        """True (after logging it on the job) when the app is stopping; the job stays
        PROCESSING, and recovery requeues it from its checkpoint once its heartbeat is stale."""
        if not shutdown_requested.is_set():
            return False
        _assert_owner(self.session, self.job, self.run_id, utcnow())
        add_log(
            self.session,
            self.job,
            "WARNING",
            f"Stopped after {self.job.processed_records:,} records because the app is shutting "
            "down; nothing more was bought. The job resumes from here when a worker runs again",
        )
        self.session.commit()
        logger.warning("stopped for shutdown at record %d", self.job.next_start)
        return True

    def _finish(self, status: JobStatus, message: str, level: str) -> None:
        _finish(self.session, self.job, self.run_id, status, message, level)

    def _fail(self, message: str) -> None:
        session = self.session
        job = session.get(BatchJob, self.batch_id, populate_existing=True)
        if job is None or job.rq_job_id != self.run_id or job.status != JobStatus.PROCESSING:
            return  # not ours any more: the run that owns it decides its fate
        self.job = job
        job.error_details = message
        logger.error("failed at record %d: %s", job.processed_records, message)
        self._finish(
            JobStatus.FAILED,
            f"Failed at record {job.processed_records + 1}: {message}. Retry resumes from there.",
            "ERROR",
        )

    def _summary(self) -> str:
        job = self.job
        text = (
            f"Completed: {job.success_count:,} leads stored ({job.purchased_count:,} bought, "
            f"{job.reused_count:,} reused at no cost)"
        )
        if job.vanished_count:
            text += f", {job.vanished_count:,} no longer matched"
        if job.error_count:
            text += f", {job.error_count:,} records skipped"
        return text

    @staticmethod
    def _chunk_message(
        number: int, size: int, reused: int, bought: int, vanished: int, page: Page | None
    ) -> str:
        parts = [f"Chunk {number}: {size} records"]
        if page is not None:
            parts.append(f"{bought} bought")
        if reused:
            parts.append(f"{reused} reused (already stored)")
        if vanished:
            parts.append(f"{vanished} no longer match the search (not bought)")
        return ", ".join(parts)
