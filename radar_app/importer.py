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

What a bought chunk survives (issue 9):
- another job buying the same records: RadarIDs are claimed (purchase_claims) before a
  purchase is sent; a job never buys what another active job has claimed, it waits for
  the record to be stored and reuses it;
- a busy or unreachable database: the response stays in memory and the store
  transaction is retried with backoff for up to db_retry_for seconds;
- a page shorter than asked (the API capping Limit): the rest of the chunk is asked for
  again instead of being called vanished; the snapshot follows the records returned;
- oversize values (unbounded TEXT columns) and records without a RadarID (billed,
  counted as such, never called vanished).

This module keeps the phases; the rooms it works with: store.py (upserts, links,
snapshot rows, the busy-database retry), claims.py (cross-job purchase claims),
ledger.py (ledger rows and the budget) and jobstate.py (every change of the job's state).
"""

from __future__ import annotations

import contextvars
import dataclasses
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any, TypeVar, cast

import sqlalchemy as sa

from radar_app.claims import claim_records, release, release_all
from radar_app.defaults import MAX_ROWS_PER_REQUEST
from radar_app.import_report import chunk_message, completion_summary, shortfall_warning
from radar_app.joblog import job_context
from radar_app.jobstate import WORKER, Event, add_log, transition
from radar_app.ledger import (
    BudgetExceeded,
    check_budget,
    record_billed,
    record_possibly_billed,
)
from radar_app.models import (
    BatchJob,
    BatchJobLog,
    DbSession,
    JobPhase,
    JobStatus,
    Property,
    SnapshotItem,
    rows_updated,
    utcnow,
)
from radar_app.propertyradar.client import Page, PropertyRadarClient, RetryEvent
from radar_app.propertyradar.coerce import radar_id_of
from radar_app.propertyradar.criteria import LEAD_FIELDS
from radar_app.propertyradar.errors import PropertyRadarError
from radar_app.store import (
    is_transient_db_error,
    link,
    retry_transaction,
    store_page,
    store_snapshot_items,
    upsert_records,
)

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Set by the work horse's SIGTERM handler (tasks.run_batch_job) when the app is stopping:
# the run stores the chunk it has already paid for, buys nothing more and leaves the job
# PROCESSING with its checkpoint, for recovery to resume on the next start.
shutdown_requested = threading.Event()


@dataclass(frozen=True)
class ImportSettings:
    batch_size: int = 400
    # Purchase=0 pages are free, so take as many RadarIDs per request as the API allows.
    snapshot_page_size: int = MAX_ROWS_PER_REQUEST
    # A stored property younger than this is reused instead of bought again.
    freshness: timedelta = timedelta(days=30)
    fields: Sequence[str] | None = None
    # Overlap the next purchase with storing the current chunk (see _Run._purchase).
    prefetch_purchases: bool = False
    # Records claimed by another active job: check this often whether they are stored.
    claim_poll_interval: float = 1.0
    # A claim this old is taken over whatever its job's state (a safety net; a stopped
    # job's claims are taken over at once, see _claim).
    claim_stale_after: float = 900.0
    # A claiming job whose heartbeat is older than this has stopped (recovery's bound).
    heartbeat_stale_after: float = 30.0
    # How long a transaction is retried while the database is busy or unreachable.
    db_retry_for: float = 600.0

    @classmethod
    def from_config(cls, config: Any) -> ImportSettings:
        return cls(
            batch_size=config["PROPERTYRADAR_BATCH_SIZE"],
            snapshot_page_size=config["PROPERTYRADAR_SNAPSHOT_PAGE_SIZE"],
            freshness=timedelta(days=config["LEAD_FRESHNESS_DAYS"]),
            prefetch_purchases=config["PROPERTYRADAR_PREFETCH_PURCHASES"],
            claim_poll_interval=config["PURCHASE_CLAIM_POLL_INTERVAL"],
            claim_stale_after=config["PURCHASE_CLAIM_STALE_AFTER"],
            heartbeat_stale_after=config["RECOVERY_STALE_AFTER"],
            db_retry_for=config["DATABASE_RETRY_SECONDS"],
        )


class LostOwnership(Exception):
    """Another run owns this job now (recovery requeued it); this run must stop and store
    nothing more."""


class _MustWait(Exception):
    """The next chunk holds records another job is buying, and this run may not wait for
    them yet (it holds a bought chunk that is not stored)."""


class _Stopped(Exception):
    """The run stopped while waiting (cancelled); the job row says why."""


def failure_message(exc: BaseException) -> str:
    """What the user is told about an unexpected error: never SQL, parameters or a stack
    trace (those go to the server log only)."""
    if isinstance(exc, PropertyRadarError | BudgetExceeded):
        return str(exc)
    if isinstance(exc, sa.exc.SQLAlchemyError | sqlite3.Error):
        if is_transient_db_error(exc):
            return (
                "The database stayed busy or unreachable for too long; what was bought "
                "before is stored"
            )
        return "A database error stopped the import (details are in the server log)"
    return f"Internal error ({exc.__class__.__name__}; details are in the server log)"


def claim(session: DbSession, batch_id: int, run_id: str | None = None) -> BatchJob | None:
    """Atomically move a PENDING job to PROCESSING; None when another worker has it or it
    is no longer pending (cancelled while queued, already finished).

    Args:
        run_id: the RQ job id of this run. A stale RQ job (one that recovery or a retry
            has replaced with a new id) cannot claim the row.
    """
    job = session.get(BatchJob, batch_id)
    if job is None:
        session.rollback()
        return None
    claimed = transition(
        session,
        job,
        Event.CLAIM,
        actor=WORKER,
        reason=f"Run {run_id or job.rq_job_id or 'without an RQ id'} started",
        expect={} if run_id is None else {"rq_job_id": run_id},
    )
    if not claimed:
        return None
    return session.get(BatchJob, batch_id, populate_existing=True)


def _finish(
    session: DbSession,
    job: BatchJob,
    run_id: str,
    event: Event,
    message: str,
    values: dict[str, Any] | None = None,
) -> None:
    """End the run: COMPLETE, FAIL or CANCELLED, in one transaction that also frees the
    job's purchase claims (left by a failed chunk): a finished job buys nothing more."""
    _assert_owner(session, job, run_id, utcnow())
    release_all(session, job.id)
    # _assert_owner holds the row's write lock, so this cannot lose to another process.
    if not transition(
        session,
        job,
        event,
        actor=WORKER,
        reason=message,
        expect={"rq_job_id": run_id},
        values=values,
    ):
        raise LostOwnership(f"job {job.job_id} was taken over by another run")


def _cancel_requested(session: DbSession, job: BatchJob) -> bool:
    # Read the flag from the database, not the identity map: the web process sets it.
    return bool(session.scalar(sa.select(BatchJob.cancel_requested).where(BatchJob.id == job.id)))


def _assert_owner(session: DbSession, job: BatchJob, run_id: str, now: datetime) -> None:
    """First statement of each page transaction: still ours? It also takes the row's write
    lock, so recovery cannot requeue the job between this check and the commit."""
    owned = rows_updated(
        session,
        sa.update(BatchJob)
        .where(
            BatchJob.id == job.id,
            BatchJob.rq_job_id == run_id,
            BatchJob.status == JobStatus.PROCESSING,
        )
        .values(heartbeat_at=now)
        .execution_options(synchronize_session=False),
    )
    if owned != 1:
        raise LostOwnership(f"job {job.job_id} was taken over by another run")


def purchase_criteria(criteria: list[dict[str, Any]], radar_ids: list[str]) -> list[dict]:
    """The job's criteria narrowed to these RadarIDs: a record that stopped matching since
    the snapshot is not returned (and not billed)."""
    return [c for c in criteria if c["name"] != "RadarID"] + [
        {"name": "RadarID", "value": radar_ids}
    ]


def run_import(
    session: DbSession,
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
    with job_context(job.job_id):
        return _Run(session, client, job, settings).run()


@dataclass
class _Bought:
    """What one chunk's purchase brought back: every page billed (a capped page is
    followed by more requests for the rest), and the error that stopped it, if any."""

    pages: list[Page] = field(default_factory=list)
    error: Exception | None = None


@dataclass
class _Chunk:
    """Up to batch_size snapshot positions, and the purchase for those not reusable."""

    number: int
    positions: dict[str, int]
    reusable: set[str]
    to_buy: list[str]
    last_position: int
    purchase: Future[_Bought] | None
    # Stored leads not reused because they lack fields this job asks for.
    lacking_fields: int = 0

    def bought(self) -> _Bought | None:
        return self.purchase.result() if self.purchase is not None else None


class _Run:
    """One claimed run of a job. Holds what the phases share."""

    def __init__(
        self,
        session: DbSession,
        client: PropertyRadarClient,
        job: BatchJob,
        settings: ImportSettings,
    ) -> None:
        self.session, self.client, self.job, self.settings = session, client, job, settings
        self.batch_id, self.run_id = job.id, job.rq_job_id or ""
        self.owner_id = job.created_by
        self.current_page: int | None = None
        self._next_chunk_number = 1
        # Read once here: the purchase thread must not touch the session's objects.
        self.criteria: list[dict[str, Any]] = list(job.criteria)
        self.fields = job.fields or settings.fields
        # A stored lead is reused only if its raw record has every field the job asks for
        # beyond the essentials (responses carry each requested field, null when unknown,
        # as in the documented example). The essentials come with every purchase, so
        # requiring them would re-buy every stored lead whenever that list grows.
        self.required_fields = frozenset(self.fields or ()) - frozenset(LEAD_FIELDS)
        # Resolved here: the prefetch thread has no Flask app context to find it through.
        # An Engine: the web's and the worker's sessions are bound to one, never to a
        # single Connection (get_bind() is typed for both).
        self.engine = cast(sa.Engine, session.get_bind())

    def run(self) -> str:
        session, job = self.session, self.job

        def start() -> None:
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
            self._retry_db("start", start)
            if job.phase == JobPhase.SNAPSHOT and not self._snapshot():
                return job.status
            if not self._purchase():
                return job.status
            self._retry_db("completion", self._complete)
            logger.info("completed: %s", completion_summary(job))
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
            # The full error (SQL and parameters included) goes to the server log only.
            logger.exception("import failed")
            self._fail(failure_message(exc))
            raise
        finally:
            self.client.on_retry = previous_on_retry

    # -- phases -------------------------------------------------------------------

    def _snapshot(self) -> bool:
        """Collect every matching RadarID for free. False when the run stopped (cancel).

        Paging follows the records actually returned: a page shorter than asked (the API
        may cap Limit) is not the end while the total says more remain; an empty page is.
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
                more = bool(page.results) and following < page.total_result_count
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
                self._retry_db(
                    "snapshot page",
                    partial(self._store_snapshot_page, page, start),
                )
                logger.info("snapshot start=%d ids=%d", start, len(page.results))
                if not more:
                    break

        def close() -> None:
            _assert_owner(session, job, self.run_id, utcnow())
            job.total_records = job.snapshot_count
            job.phase = JobPhase.PURCHASE
            job.purchase_started_at = utcnow()
            job.next_start = 0
            add_log(
                session,
                job,
                "INFO",
                f"Snapshot complete: {job.snapshot_count:,} RadarIDs, at no cost",
            )
            session.commit()

        self._retry_db("snapshot", close)
        return True

    def _store_snapshot_page(self, page: Page, start: int) -> None:
        """One transaction: the page's RadarIDs, the counters and the snapshot checkpoint."""
        session, job = self.session, self.job
        _assert_owner(session, job, self.run_id, utcnow())
        if start == 0:
            cap = f" (capped at {job.max_records:,})" if job.max_records else ""
            add_log(
                session,
                job,
                "INFO",
                f"Search matches {page.total_result_count:,} records{cap}; "
                "taking a free snapshot of their RadarIDs",
            )
        if job.search_total is None:
            # What the user was told the search matches; compared with what was stored.
            job.search_total = page.total_result_count
        # The total may change while paging (the snapshot follows it), so show the latest.
        job.total_records = (
            min(page.total_result_count, job.max_records)
            if job.max_records
            else page.total_result_count
        )
        added, missing = store_snapshot_items(session, job, page)
        job.snapshot_count += added
        job.error_count += missing
        job.snapshot_next_start = start + len(page.results)
        session.commit()

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
        self._next_chunk_number = self._chunks_done(self.job.next_start) + 1
        try:
            return self._purchase_chunks()
        except _Stopped:
            return False

    def _purchase_chunks(self) -> bool:
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="prefetch") as executor:
            current = self._plan(self.job.next_start, executor, in_flight=0)
            while current is not None:
                bought = current.bought()
                cancelled = _cancel_requested(self.session, self.job)
                if cancelled:
                    # A chunk that was bought is stored even when a cancel arrived
                    # meanwhile: it has been paid for.
                    self._store_chunk(current, bought)
                    self._cancelled()
                    return False
                if shutdown_requested.is_set():
                    self._store_chunk(current, bought)  # paid for: keep it, then buy no more
                    self._stopped_for_shutdown()
                    return False
                if not self.settings.prefetch_purchases or (bought and bought.error):
                    self._store_chunk(current, bought)
                    if self._stopped_for_shutdown():
                        return False
                    current = self._plan(current.last_position + 1, executor, in_flight=0)
                    continue
                try:
                    upcoming = self._plan(
                        current.last_position + 1,
                        executor,
                        in_flight=len(current.to_buy),
                        may_wait=False,
                    )
                except (BudgetExceeded, _MustWait):
                    # Store the chunk already paid for, then decide again with nothing in
                    # flight: that raises with the exact figures, or goes on (or waits for
                    # another job's purchase) once nothing of ours is left unstored.
                    self._store_chunk(current, bought)
                    current = self._plan(current.last_position + 1, executor, in_flight=0)
                    continue
                self._store_chunk(current, bought)
                current = upcoming
        return True

    def _chunks_done(self, cursor: int) -> int:
        """Chunks before `cursor`: chunk N holds snapshot rows (N-1)*batch_size onwards, so
        a resumed job numbers its chunks on from where it stopped."""
        done = self.session.scalar(
            sa.select(sa.func.count())
            .select_from(SnapshotItem)
            .where(SnapshotItem.batch_job_id == self.job.id, SnapshotItem.position < cursor)
        )
        self.session.commit()
        return -(-int(done or 0) // self.settings.batch_size)

    def _plan(
        self,
        cursor: int,
        executor: ThreadPoolExecutor,
        *,
        in_flight: int,
        may_wait: bool = True,
    ) -> _Chunk | None:
        """Select the chunk starting at `cursor`, decide what to reuse, claim the rest and
        start buying it in the background. None when the snapshot is exhausted.

        Records another active job is buying are not bought here: the run waits (heart
        beating, checking for a cancel) until they are stored and reuses them, or until
        their claim is released or goes stale and it may buy them itself.
        """
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
        number = self._next_chunk_number
        positions = {radar_id: position for position, radar_id in rows}
        waited_for: int | None = None
        while True:
            reusable, lacking = self._reusable(list(positions))
            to_buy = [rid for rid in positions if rid not in reusable]
            if to_buy:
                check_budget(session, self.owner_id, len(to_buy) + in_flight)
            held = self._retry_db("claim", partial(self._claim, to_buy))
            session.commit()
            if not held:
                break
            if not may_wait:
                raise _MustWait
            if waited_for is None:
                waited_for = len(held)
                self._retry_db("wait", partial(self._log_wait, number, waited_for))
                logger.info(
                    "chunk %d: waiting for %d records another job is buying", number, waited_for
                )
            time.sleep(self.settings.claim_poll_interval)
            if self._cancelled() or self._stopped_for_shutdown():
                raise _Stopped
            # Still ours? (Also a heartbeat, for runs without the heartbeat thread.)
            self._retry_db("wait", self._beat)
        if to_buy:
            # Stored by the job whose claim was released between our check and our claim:
            # now that the claim is ours nobody else can store them, so this check is final.
            late, _ = self._reusable(to_buy)
            if late:
                self._retry_db("claim", partial(self._release, late))
                reusable |= late
                to_buy = [rid for rid in to_buy if rid not in late]
        self._next_chunk_number += 1
        future = None
        if to_buy:
            self.current_page = number
            # copy_context: the prefetch thread's log lines keep this job's id.
            future = executor.submit(contextvars.copy_context().run, self._buy, to_buy)
        return _Chunk(number, positions, reusable, to_buy, rows[-1][0], future, lacking)

    def _buy(self, radar_ids: list[str]) -> _Bought:
        """Buy these RadarIDs. A response with fewer records than asked although its total
        says more match (the API silently capping Limit) is followed by a request for the
        rest, so they are not called vanished. Never raises: what was bought before an
        error must still be stored."""
        bought = _Bought()
        wanted = list(radar_ids)
        matching: int | None = None  # how many of the chunk still match (first total)
        received = 0
        try:
            while wanted:
                limit = len(wanted) if matching is None else min(len(wanted), matching - received)
                page = self.client.fetch_page(
                    purchase_criteria(self.criteria, wanted), 0, limit, self.fields
                )
                bought.pages.append(page)
                if matching is None:
                    matching = min(page.total_result_count, len(radar_ids))
                received += len(page.results)
                got = {radar_id_of(record) for record in page.results}
                wanted = [rid for rid in wanted if rid not in got]
                if not page.results or received >= matching:
                    break
                logger.info(
                    "purchase returned %d of %d matching records; asking for the rest",
                    received,
                    matching,
                )
        except Exception as exc:  # noqa: BLE001 - handed to the caller with what was bought
            bought.error = exc
        return bought

    def _store_chunk(self, chunk: _Chunk, bought: _Bought | None) -> None:
        """Store what the chunk brought, retrying while the database is busy, then raise
        the purchase's error if it had one (what was bought before it is kept)."""
        if bought is not None and bought.error is not None and not bought.pages:
            raise bought.error
        try:
            self._retry_db("chunk", lambda: self._store_chunk_once(chunk, bought))
        except LostOwnership:
            self.session.rollback()
            if bought is not None and bought.pages:
                self._retry_db("orphaned chunk", lambda: self._store_orphaned(chunk, bought))
            raise
        if bought is not None and bought.error is not None:
            raise bought.error

    def _store_chunk_once(self, chunk: _Chunk, bought: _Bought | None) -> None:
        """One transaction: links, bought properties, ledger, counters, checkpoint, log,
        and the release of the chunk's claims. A chunk whose purchase failed part way
        stores what was bought but keeps the checkpoint, so a retry reuses it."""
        session, job = self.session, self.job
        now = utcnow()
        _assert_owner(session, job, self.run_id, now)
        positions = chunk.positions
        reused = link(session, job, {rid: positions[rid] for rid in chunk.reusable})
        bought_linked, missing = 0, 0
        stored: set[str] = set()
        pages = bought.pages if bought is not None else []
        for page in pages:
            linked, page_missing, page_stored = store_page(session, job, page, now, positions)
            bought_linked, missing, stored = (
                bought_linked + linked,
                missing + page_missing,
                stored | page_stored,
            )
            self._add_ledger(chunk.number, len(chunk.to_buy), page)
        job.cost_total += sum(page.total_cost or 0.0 for page in pages)
        job.pages_fetched += len(pages)
        if chunk.to_buy:
            release(session, job.id, chunk.to_buy)
        complete = bought is None or bought.error is None
        # A record without a RadarID was one of those asked for: it was bought, not lost.
        vanished = max(0, len([rid for rid in chunk.to_buy if rid not in stored]) - missing)
        if complete:
            job.processed_records += len(positions)
            job.vanished_count += vanished
            job.next_start = chunk.last_position + 1
        job.reused_count += reused
        job.purchased_count += len(stored)
        job.unidentified_count += missing
        job.success_count += reused + bought_linked
        job.heartbeat_at = now
        message = chunk_message(
            chunk.number,
            len(positions),
            reused=reused,
            bought=len(stored),
            requests=len(pages),
            lacking_fields=chunk.lacking_fields,
            missing=missing,
            vanished=vanished if complete else 0,
        )
        if not complete:
            message += "; the purchase failed part way, the rest is bought on retry"
        add_log(
            session,
            job,
            "WARNING" if vanished or missing or not complete else "INFO",
            message,
            page=chunk.number if pages else None,
        )
        session.commit()
        logger.info(
            "chunk %d positions=%d reused=%d bought=%d no_radar_id=%d vanished=%d requests=%s",
            chunk.number,
            len(positions),
            reused,
            len(stored),
            missing,
            vanished,
            [page.request_id for page in pages],
        )

    def _store_orphaned(self, chunk: _Chunk, bought: _Bought) -> None:
        """This run lost the job (recovery requeued it, e.g. while the database was locked)
        but holds a paid chunk: store the records and the ledger rows anyway, so the run
        that owns the job now reuses them instead of buying them again."""
        session, now = self.session, utcnow()
        stored: set[str] = set()
        for page in bought.pages:
            stored |= upsert_records(session, page, now)[0]
            self._add_ledger(chunk.number, len(chunk.to_buy), page)
        release(session, self.batch_id, chunk.to_buy)
        session.add(
            BatchJobLog(
                batch_job_id=self.batch_id,
                level="WARNING",
                page=chunk.number,
                message=f"Chunk {chunk.number}: {len(stored):,} records bought by a run that "
                "lost the job were stored, so they are reused, not bought again",
            )
        )
        session.commit()
        logger.warning("stored %d records of an orphaned purchase", len(stored))

    def _add_ledger(self, chunk_number: int, requested: int, page: Page) -> None:
        record_billed(self.session, self.batch_id, self.owner_id, chunk_number, requested, page)

    def _complete(self) -> None:
        warning = shortfall_warning(self.job)
        if warning:
            self.job.warning = warning
            add_log(self.session, self.job, "WARNING", warning)
        # Module-level _finish: this whole function is one retried transaction.
        _finish(self.session, self.job, self.run_id, Event.COMPLETE, completion_summary(self.job))

    # -- purchase claims ----------------------------------------------------------

    def _claim(self, radar_ids: list[str]) -> set[str]:
        return claim_records(
            self.session,
            self.batch_id,
            radar_ids,
            claim_stale_after=self.settings.claim_stale_after,
            heartbeat_stale_after=self.settings.heartbeat_stale_after,
        )

    def _release(self, radar_ids: set[str]) -> None:
        release(self.session, self.batch_id, radar_ids)
        self.session.commit()

    def _log_wait(self, number: int, held: int) -> None:
        _assert_owner(self.session, self.job, self.run_id, utcnow())
        add_log(
            self.session,
            self.job,
            "INFO",
            f"Chunk {number}: waiting for {held:,} records another job is buying right now; "
            "they will be reused, not bought twice",
        )
        self.session.commit()

    def _beat(self) -> None:
        _assert_owner(self.session, self.job, self.run_id, utcnow())
        self.session.commit()

    # -- helpers ------------------------------------------------------------------

    def _retry_db(self, what: str, work: Callable[[], T]) -> T:
        return retry_transaction(self.session, what, work, self.settings.db_retry_for)

    def _reusable(self, radar_ids: list[str]) -> tuple[set[str], int]:
        """(RadarIDs stored fresh enough, and with every field the job asks for; how many
        stored ones were passed over because they lack some of those fields)."""
        if self.job.refresh_all:
            return set(), 0
        fresh_since = utcnow() - self.settings.freshness
        fresh = sa.and_(Property.radar_id.in_(radar_ids), Property.last_seen_at >= fresh_since)
        if not self.required_fields:
            return set(self.session.scalars(sa.select(Property.radar_id).where(fresh))), 0
        rows = self.session.execute(sa.select(Property.radar_id, Property.raw).where(fresh)).all()
        complete = {
            radar_id
            for radar_id, raw in rows
            if isinstance(raw, dict) and self.required_fields <= raw.keys()
        }
        return complete, len(rows) - len(complete)

    def _record_retry(self, event: RetryEvent) -> None:
        """Ledger row for a purchase whose response was lost: it may have been billed.
        Written on its own connection at once, so a crash right after cannot lose it."""
        if event.purchase and event.possibly_billed:
            record_possibly_billed(
                self.engine, self.batch_id, self.owner_id, self.current_page, event
            )

    def _cancelled(self) -> bool:
        if not _cancel_requested(self.session, self.job):
            return False
        self._finish(
            Event.CANCELLED,
            f"Cancelled after {self.job.processed_records:,} records; stored leads are kept",
        )
        logger.info("cancelled at record %d", self.job.next_start)
        return True

    def _stopped_for_shutdown(self) -> bool:
        """True (after logging it on the job) when the app is stopping; the job stays
        PROCESSING, and recovery requeues it from its checkpoint once its heartbeat is stale."""
        if not shutdown_requested.is_set():
            return False

        def log_stop() -> None:
            _assert_owner(self.session, self.job, self.run_id, utcnow())
            add_log(
                self.session,
                self.job,
                "WARNING",
                f"Stopped after {self.job.processed_records:,} records because the app is "
                "shutting down; nothing more was bought. The job resumes from here when a "
                "worker runs again",
            )
            self.session.commit()

        self._retry_db("shutdown", log_stop)
        logger.warning("stopped for shutdown at record %d", self.job.next_start)
        return True

    def _finish(self, event: Event, message: str) -> None:
        self._retry_db(
            "finish", lambda: _finish(self.session, self.job, self.run_id, event, message)
        )

    def _fail(self, message: str) -> None:
        def fail() -> None:
            session = self.session
            job = session.get(BatchJob, self.batch_id, populate_existing=True)
            if job is None or job.rq_job_id != self.run_id or job.status != JobStatus.PROCESSING:
                return  # not ours any more: the run that owns it decides its fate
            self.job = job
            logger.error("failed at record %d: %s", job.processed_records, message)
            _finish(
                session,
                job,
                self.run_id,
                Event.FAIL,
                f"Failed at record {job.processed_records + 1}: {message}. "
                "Retry resumes from there.",
                values={"error_details": message},
            )

        try:
            self._retry_db("failure", fail)
        except sa.exc.SQLAlchemyError:
            # The job stays PROCESSING; recovery requeues it once its heartbeat stops.
            logger.exception("could not record the failure")
