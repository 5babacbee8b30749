"""The import loop that turns a batch job into stored leads, spending as little as possible.

Works on any SQLAlchemy Session and a PropertyRadarClient: no Flask app or request
context is needed, so the RQ task, the tests and a plain script can all drive it.

A job lists, then buys, and the two overlap:

- SNAPSHOT (free): Purchase=0 pages of RadarIDs, stored as the job's snapshot. The job's
  total is the snapshot's size, so a result set that changes while the job runs cannot
  make it skip or repeat records. After the first page every Start offset is known, so
  the other pages are fetched concurrently (snapshot.py plans them).
- PURCHASE: as soon as snapshot rows are stored, they are bought in chunks of the batch
  size. RadarIDs already stored (and fresher than the freshness window) are linked to the
  job without buying them ("reused"); the rest are bought in one Purchase=1 request per
  chunk, by RadarID and the original criteria, so records that no longer match are
  reported as vanished. Up to `concurrency` purchases are in flight, all through the
  client's shared rate limiter; chunks may finish out of order.

Per chunk, the properties, the job links, the ledger rows, the snapshot rows marked
stored (the per-chunk checkpoint), the counters and the log row are committed in ONE
transaction. Each purchase is journaled (journal.py) before it is sent and its response
the moment it arrives, so a work horse killed at any moment loses nothing it paid for:
the next run stores journaled responses without buying them again, and puts requests
that got no response in the ledger as possibly billed.

What else a bought chunk survives (issue 9):
- another job buying the same records: RadarIDs are claimed (purchase_claims) before a
  purchase is sent; a job never buys what another active job has claimed, it waits for
  the record to be stored and reuses it;
- a busy or unreachable database: the response stays in memory (and in the journal) and
  the store transaction is retried with backoff for up to db_retry_for seconds;
- a page shorter than asked (the API capping Limit): the rest of the chunk is asked for
  again instead of being called vanished; the snapshot follows the records returned;
- oversize values (unbounded TEXT columns) and records without a RadarID (billed,
  counted as such, never called vanished).

The rooms it works with: store.py (upserts, links, snapshot rows, the busy-database
retry), journal.py (purchases in flight), snapshot.py (which free pages to ask for),
claims.py (cross-job purchase claims), ledger.py (ledger rows and the budget) and
jobstate.py (every change of the job's state).
"""

from __future__ import annotations

import contextvars
import copy
import dataclasses
import logging
import math
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any, TypeVar, cast

import sqlalchemy as sa
from redis.exceptions import RedisError

from radar_app import journal
from radar_app.claims import claim_records, release, release_all
from radar_app.defaults import MAX_ROWS_PER_REQUEST
from radar_app.import_report import chunk_message, completion_summary, shortfall_warning
from radar_app.joblog import job_context
from radar_app.jobstate import HEARTBEAT, WORKER, Event, add_log, beat, owned_update, transition
from radar_app.journal import PurchaseJournal, SentRequest
from radar_app.ledger import (
    BudgetExceeded,
    check_budget,
    check_job_cap,
    record_billed,
    record_possibly_billed,
    record_unanswered,
)
from radar_app.models import (
    BatchJob,
    DbSession,
    JobPhase,
    JobStatus,
    JournaledPurchase,
    Property,
    SnapshotItem,
    one_of,
    one_of_listed,
    utcnow,
)
from radar_app.outcomes import Outcome
from radar_app.prepared import Prepared
from radar_app.propertyradar.client import Page, PropertyRadarClient, RetryEvent, page_from_body
from radar_app.propertyradar.coerce import radar_id_of
from radar_app.propertyradar.criteria import LEAD_FIELDS
from radar_app.propertyradar.errors import PropertyRadarError
from radar_app.propertyradar.wait import Wait
from radar_app.snapshot import SnapshotPlan
from radar_app.store import (
    CoercedPage,
    coerce_page,
    free_snapshot_rows,
    is_transient_db_error,
    link,
    link_page,
    mark_stored,
    pipelined,
    retry_transaction,
    store_snapshot_items,
    upsert_coerced,
    upsert_records,
)
from radar_app.suppression import suppressed_radar_ids
from radar_app.waits import WaitBoard

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
    # Purchase=1 requests in flight per job (1: strictly one after another). More cut the
    # wall time while the API's latency dominates; a killed work horse may have this many
    # purchases in flight, whose records are then possibly billed twice.
    concurrency: int = 2
    # Records claimed by another active job: check this often whether they are stored.
    claim_poll_interval: float = 1.0
    # A claim this old is taken over whatever its job's state (a safety net; a stopped
    # job's claims are taken over at once, see _claim).
    claim_stale_after: float = 900.0
    # A claiming job whose heartbeat is older than this has stopped (recovery's bound).
    heartbeat_stale_after: float = 30.0
    # How long a transaction is retried while the database is busy or unreachable.
    db_retry_for: float = 600.0

    @property
    def free_page_slots(self) -> int:
        """Free snapshot pages in flight beside the purchases, in slots of their own: as
        many as the purchases, at least 2 (they are cheap). Purchases that outrun the
        snapshot wait for RadarIDs to buy: at concurrency 4 and 100 ms, 2 slots finished
        the snapshot of 20,000 records near the end of the job (PostgreSQL, 2.9 s), 4
        half way (2.7 s)."""
        return max(2, self.concurrency)

    @classmethod
    def from_config(cls, config: Any) -> ImportSettings:
        return cls(
            batch_size=config["PROPERTYRADAR_BATCH_SIZE"],
            snapshot_page_size=config["PROPERTYRADAR_SNAPSHOT_PAGE_SIZE"],
            freshness=timedelta(days=config["LEAD_FRESHNESS_DAYS"]),
            concurrency=config["PROPERTYRADAR_CONCURRENCY"],
            claim_poll_interval=config["PURCHASE_CLAIM_POLL_INTERVAL"],
            claim_stale_after=config["PURCHASE_CLAIM_STALE_AFTER"],
            heartbeat_stale_after=config["RECOVERY_STALE_AFTER"],
            db_retry_for=config["DATABASE_RETRY_SECONDS"],
        )


class LostOwnership(Exception):
    """Another run owns this job now (recovery requeued it); this run must stop and store
    nothing more."""


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
    _assert_owner(session, job.id, run_id, utcnow())
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


_CANCEL_REQUESTED = Prepared(
    sa.select(BatchJob.cancel_requested).where(BatchJob.id == sa.bindparam("batch_id"))
)


def _cancel_requested(session: DbSession, batch_id: int) -> bool:
    # Read the flag from the database, not the identity map: the web process sets it.
    connection = session.connection(bind_arguments={"mapper": BatchJob})
    return bool(_CANCEL_REQUESTED(connection, {"batch_id": batch_id}).scalar())


# Which of these RadarIDs are stored and fresh (_Run._reusable, twice a chunk).
_STORED_FRESH = Prepared(
    lambda dialect: sa.select(Property.radar_id).where(
        one_of_listed(Property.radar_id, "radar_ids", dialect),
        Property.last_seen_at >= sa.bindparam("since", type_=Property.last_seen_at.type),
    )
)


# What a stored chunk adds to the job row's counters: increments of the row's own values
# (the job object is not read back after every commit), written by the heartbeat.
_CHUNK_STORED = owned_update(
    {
        "cost_total": BatchJob.cost_total + sa.bindparam("cost", type_=sa.Float),
        "pages_fetched": BatchJob.pages_fetched + sa.bindparam("pages"),
        "processed_records": BatchJob.processed_records + sa.bindparam("done"),
        # SET reads the row as it was: the new processed_records.
        "next_start": BatchJob.processed_records + sa.bindparam("done"),
        "vanished_count": BatchJob.vanished_count + sa.bindparam("vanished"),
        "reused_count": BatchJob.reused_count + sa.bindparam("reused"),
        "purchased_count": BatchJob.purchased_count + sa.bindparam("bought"),
        "unidentified_count": BatchJob.unidentified_count + sa.bindparam("missing"),
        "success_count": BatchJob.success_count + sa.bindparam("linked"),
        "suppressed_count": BatchJob.suppressed_count + sa.bindparam("suppressed"),
    }
)
# ... and a stored snapshot page.
_SNAPSHOT_PAGE_STORED = owned_update(
    {
        # The total may change while paging (the snapshot follows it): the latest.
        "total_records": sa.bindparam("total"),
        "snapshot_count": BatchJob.snapshot_count + sa.bindparam("added"),
        "error_count": BatchJob.error_count + sa.bindparam("missing"),
        "snapshot_next_start": sa.bindparam("checkpoint"),
    }
)


def _assert_owner(
    session: DbSession,
    batch_id: int,
    run_id: str,
    now: datetime,
    update: Prepared = HEARTBEAT,
    **counters: Any,
) -> None:
    """Still ours? The heartbeat UPDATE, guarded by the run's ownership, also writes the
    transaction's counters (with an `update` that has them: _CHUNK_STORED,
    _SNAPSHOT_PAGE_STORED). It takes the row's write lock, so recovery cannot requeue the
    job between this check and the commit."""
    # On the connection: the same UPDATE without the ORM's bulk-update machinery, which
    # cost more than the statement (every transaction of the run has one).
    connection = session.connection(bind_arguments={"mapper": BatchJob})
    if not beat(connection, batch_id, run_id, now, update, **counters):
        raise LostOwnership(f"job {batch_id} was taken over by another run")


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
    waits: WaitBoard | None = None,
) -> str:
    """Run (or resume) a batch job from its checkpoint until it completes, fails or is cancelled.

    Args:
        settings: page sizes and freshness (defaults: ImportSettings()).
        batch_size: shorthand that overrides settings.batch_size.
        run_id: the RQ job id this run was started for (None: whatever the row holds).
        waits: where to post the run's noticeable waits (rate limit, backoff, 429 pause)
            for the job's page; None posts nothing.

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
        return _Run(session, client, job, settings, waits).run()


@dataclass
class _Bought:
    """What one chunk's purchase brought back: every page billed (a capped page is
    followed by more requests for the rest), and the error that stopped it, if any.
    `complete` is False when some of the chunk is still to be bought: after an error, or
    for a chunk settled from the journal whose follow-up request got no answer."""

    pages: list[Page] = field(default_factory=list)
    error: Exception | None = None
    incomplete: bool = False
    # Per page: its journal row; and its records parsed into lead values, by the parser
    # thread once the pages are journaled (off the path from an answer to its replacement).
    entries: list[SentRequest] = field(default_factory=list)
    journaled: bool = False
    parsed: Future[list[CoercedPage]] | None = None

    @property
    def complete(self) -> bool:
        return self.error is None and not self.incomplete


@dataclass
class _Chunk:
    """Up to batch_size snapshot positions, and the purchase for those not reusable."""

    number: int
    positions: dict[str, int]
    reusable: set[str]
    to_buy: list[str]
    # Stored leads not reused because they lack fields this job asks for.
    lacking_fields: int = 0
    # On a suppression list that applies to the job: never bought, never linked.
    suppressed: set[str] = field(default_factory=set)
    # Its journal rows: the first request's written with its claims before it is sent, those of
    # follow-up requests (the rest of a capped answer) by the purchase thread.
    entries: list[SentRequest] = field(default_factory=list)

    @property
    def entry_ids(self) -> list[int]:
        return [entry.entry_id for entry in self.entries]


def _outcomes(chunk: _Chunk, bought: set[str], done: set[str]) -> dict[int, int]:
    """{position: Outcome} of the chunk's rows that are done: suppressed and reused were
    decided at plan time; of those asked for, what came back was bought, the rest
    vanished."""
    return {
        chunk.positions[rid]: (
            Outcome.SUPPRESSED
            if rid in chunk.suppressed
            else Outcome.REUSED
            if rid in chunk.reusable
            else Outcome.BOUGHT
            if rid in bought
            else Outcome.VANISHED
        )
        for rid in done
    }


def _parse_pages(pages: list[Page]) -> list[CoercedPage]:
    return [coerce_page(page) for page in pages]


class _Held(Exception):
    """The next chunk holds records another active job is buying right now."""

    def __init__(self, count: int) -> None:
        super().__init__(f"{count} records are being bought by another job")
        self.count = count


# How long the loop waits for a purchase it handed to a thread to be written out.
SEND_WAIT = 0.05
# Chunks answered together are stored in one transaction, up to this many: the pages they
# share are written once, and no purchase goes out while the transaction runs (its
# replacements are sent between transactions).
STORE_BATCH = 2

# The chunk a purchase thread is buying and the request it is sending, for the ledger
# rows of its lost attempts.
_current_chunk: contextvars.ContextVar[int | None] = contextvars.ContextVar(
    "current_chunk", default=None
)
_current_request: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "current_request", default=None
)


class _Run:
    """One claimed run of a job: the snapshot and the purchases, pipelined.

    The main thread owns the session and does every database write of the job (snapshot
    pages, chunks, counters, the state); purchase threads only send requests and write
    the journal, snapshot threads only fetch free pages.
    """

    def __init__(
        self,
        session: DbSession,
        client: PropertyRadarClient,
        job: BatchJob,
        settings: ImportSettings,
        waits: WaitBoard | None = None,
    ) -> None:
        self.session, self.client, self.job, self.settings = session, client, job, settings
        self.waits = waits
        self.batch_id, self.run_id = job.id, job.rq_job_id or ""
        self.owner_id = job.created_by
        # Read once here: the purchase threads must not touch the session's objects.
        self.criteria: list[dict[str, Any]] = list(job.criteria)
        self.fields = job.fields or settings.fields
        # What a stored lead must be newer than to be reused: with "refresh everything",
        # the moment the job was asked for (a lead another job bought since then is as
        # fresh as a purchase now, and buying it again would pay twice for the same
        # record); else the freshness window before now (see _reusable).
        self.refreshed_since = job.created_at if job.refresh_all else None
        self.max_records = job.max_records
        self.max_purchases = job.max_purchases
        # RadarIDs the owner must not buy (radar_app.suppression), read once per run.
        self.suppressed = suppressed_radar_ids(session, job.created_by, job.suppression_list_id)
        # Whether the first snapshot page of the job has been stored (by any run).
        self._search_total_known = job.search_total is not None
        # A stored lead is reused only if its raw record has every field the job asks for
        # beyond the essentials (responses carry each requested field, null when unknown,
        # as in the documented example). The essentials come with every purchase, so
        # requiring them would re-buy every stored lead whenever that list grows.
        self.required_fields = frozenset(self.fields or ()) - frozenset(LEAD_FIELDS)
        # An Engine: the web's and the worker's sessions are bound to one, never to a
        # single Connection (get_bind() is typed for both). The threads write through it.
        self.engine = cast(sa.Engine, session.get_bind())
        self.journal = PurchaseJournal(self.engine, job.id, settings.db_retry_for)
        self.in_flight: dict[Future[_Bought], _Chunk] = {}
        # Parses answered pages into lead values (set for the pipeline, see _import).
        self._parser: ThreadPoolExecutor
        # Chunks planned to replace those on the wire (see _prepare).
        self._ready: list[_Chunk] = []
        # Every snapshot row before this position is stored, planned, or not listed yet:
        # _plan reads from here, not past the rows of every chunk in flight again. A
        # snapshot page that arrives late (pages come back out of order) moves it back.
        self._scan_from = 0
        self._last_beat = time.monotonic()
        self._logged_wait = False  # "waiting for records another job is buying": once

    def run(self) -> str:
        session, job = self.session, self.job

        def start() -> None:
            logger.info("attempt %d started (%s phase)", job.attempts, job.phase)
            resume = ""
            if job.processed_records:
                resume = f", resuming after record {job.processed_records:,}"
            elif job.snapshot_next_start:
                resume = f", resuming the snapshot at record {job.snapshot_next_start + 1}"
            add_log(session, job.id, "INFO", f"Attempt {job.attempts} started{resume}")
            session.commit()

        previous_on_retry = getattr(self.client, "on_retry", None)
        previous_on_wait = getattr(self.client, "on_wait", None)
        self.client.on_retry = self._record_retry
        self.client.on_wait = self._post_wait
        try:
            self._retry_db("start", start)
            self._settle_journal()
            if not self._import():
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
            self.client.on_wait = previous_on_wait

    # -- the pipeline ---------------------------------------------------------------

    def _import(self) -> bool:
        """Snapshot and buy until nothing is left. False when the run stopped (cancel or
        shutdown; the job row says which)."""
        job, settings = self.job, self.settings
        plan = None
        if job.phase == JobPhase.SNAPSHOT:
            plan = SnapshotPlan(
                settings.snapshot_page_size,
                job.max_records,
                start=job.snapshot_next_start,
                count=job.snapshot_count,
            )
        with (
            ThreadPoolExecutor(settings.concurrency, thread_name_prefix="purchase") as buyers,
            ThreadPoolExecutor(settings.free_page_slots, thread_name_prefix="snapshot") as pages,
            ThreadPoolExecutor(1, thread_name_prefix="parse") as self._parser,
        ):
            try:
                return self._pipeline(plan, buyers, pages)
            except BaseException:
                self._drain()
                raise

    def _pipeline(
        self, plan: SnapshotPlan | None, buyers: ThreadPoolExecutor, pages: ThreadPoolExecutor
    ) -> bool:
        """Keep up to `concurrency` purchases and `free_page_slots` free pages in flight.
        Chunks are planned from snapshot rows already stored, so purchases start with
        the first snapshot page. When responses arrive they are journaled at once, the
        requests that replace them are sent, and only then are they stored: the store
        runs while the next requests are on the wire."""
        self._plan_state = plan
        self._fetching: dict[Future[Page], tuple[int, int]] = {}
        self._stop: str | None = None  # "cancel", "shutdown" or "error"
        self._error: BaseException | None = None
        # Budget or another job's claims: plan again once nothing is in flight (and, for
        # claims, not before the claim poll interval while free pages are fetched).
        self._blocked = False
        self._claims_asked_at = -math.inf
        while True:
            if self._stop is None:
                if self._cancel_requested():
                    self._stop = "cancel"
                elif shutdown_requested.is_set():
                    self._stop = "shutdown"
            if self._stop is None and self._issue(buyers, pages):
                return True
            waiting: list[Future[Any]] = [*self.in_flight, *self._fetching]
            if not waiting:
                if self._stop is not None:
                    break
                continue  # _issue waited for another job's purchase
            arrived, _ = wait(waiting, timeout=0.25, return_when=FIRST_COMPLETED)
            bought_now = [future for future in arrived if future in self.in_flight]
            self._journal_responses(*(future.result() for future in bought_now))  # at once
            for future in arrived:
                if future in self._fetching:
                    self._snapshot_page_arrived(future)
            # Replacements (and the next free pages) go out before anything is stored.
            if arrived and self._stop is None and self._issue(buyers, pages):
                return True
            to_store = bought_now
            while to_store:
                batch, to_store = to_store[:STORE_BATCH], to_store[STORE_BATCH:]
                answered = [(self.in_flight.pop(future), future.result()) for future in batch]
                self._store_chunks(answered)
                for _chunk, bought in answered:
                    if bought.error is not None and self._error is None:
                        self._stop, self._error = "error", bought.error
                # Answers that came in while those were stored: their replacements go out
                # (each answer journaled first, see _on_the_wire) before the next store.
                fresh = [f for f in self.in_flight if f.done() and f not in to_store]
                if fresh and self._stop is None:
                    self._issue(buyers, pages)
                to_store += fresh
            if self._stop is None:
                self._prepare(snapshot_done=self._plan_state is None)
            if not arrived:
                self._beat_now_and_then()
        if self._stop == "error" and self._error is not None:
            raise self._error
        if self._stop == "cancel":
            self._cancelled()
        elif self._stop == "shutdown":
            self._stopped_for_shutdown()
        return False

    def _issue(self, buyers: ThreadPoolExecutor, pages: ThreadPoolExecutor) -> bool:
        """Send what may be sent now: free snapshot pages, then purchases. True when the
        job is done (everything stored, nothing in flight)."""
        plan = self._plan_state
        if plan is not None and plan.done:
            self._retry_db("snapshot", self._close_snapshot)
            plan = self._plan_state = None
        while plan is not None and len(self._fetching) < self.settings.free_page_slots:
            request = plan.next_request()
            if request is None:
                break
            self._fetching[self._fetch_snapshot_page(pages, *request)] = request
        if self._blocked and (
            self.in_flight or (self._fetching and self._asked_for_claims_just_now())
        ):
            return False
        self._blocked = False
        snapshot_done = plan is None
        try:
            exhausted = self._fill(buyers, snapshot_done)
        except (BudgetExceeded, _Held) as exc:
            if isinstance(exc, _Held):
                self._claims_asked_at = time.monotonic()
                self._log_wait_once(exc.count)
            if self.in_flight or self._fetching:
                self._blocked = True  # decide again with nothing of ours in flight
                return False
            if isinstance(exc, BudgetExceeded):
                raise
            self._wait_for_other_job(exc.count)
            return False
        return exhausted and snapshot_done and not self.in_flight

    def _asked_for_claims_just_now(self) -> bool:
        """Another job held the next records less than a claim poll interval ago: while
        free pages arrive, the loop turns every few milliseconds, and asking again on
        every turn only loads the database of the job being waited for."""
        return time.monotonic() - self._claims_asked_at < self.settings.claim_poll_interval

    def _snapshot_page_arrived(self, future: Future[Page]) -> None:
        start, limit = self._fetching.pop(future)
        plan = self._plan_state
        if self._stop is not None or plan is None:
            return  # free: dropped when stopping
        try:
            page = future.result()
        except PropertyRadarError as exc:
            self._stop, self._error = "error", exc
            return
        store = partial(self._store_snapshot_page, plan, page, start, limit)
        self._retry_db("snapshot page", store)

    def _fill(self, buyers: ThreadPoolExecutor, snapshot_done: bool) -> bool:
        """Plan chunks until `concurrency` purchases are on the wire (answered ones
        waiting to be stored do not count). True when every snapshot row stored so far
        is done, in flight or waiting to be stored (nothing to plan)."""
        while self._on_the_wire() < self.settings.concurrency:
            if shutdown_requested.is_set():
                return False  # the app is stopping: buy nothing more (the loop then stops)
            chunk = self._ready.pop(0) if self._ready else self._plan(snapshot_done)
            if chunk is None:
                return not self._unplanned_rows()
            if chunk.to_buy:
                try:
                    self._retry_db("claim", partial(self._claim_and_journal, chunk))
                except _Held:
                    self._ready.insert(0, chunk)  # its claim is tried again, as planned
                    raise
            if not chunk.to_buy:
                self._store_chunk(chunk, None)
                continue
            left = threading.Event()
            # copy_context: the purchase thread's log lines keep this job's id.
            future = buyers.submit(contextvars.copy_context().run, self._buy, chunk, left.set)
            self.in_flight[future] = chunk
            # Let the request leave before going on: this thread's next work (storing a
            # chunk) would hold the GIL while the purchase thread prepares and writes it,
            # delaying the purchase and widening the one window where the ledger errs high
            # (journaled, not sent yet). Bounded: a rate-limiter wait or a slow connect
            # must not hold up the loop.
            left.wait(SEND_WAIT)
        return False

    def _on_the_wire(self) -> int:
        """Purchases not answered yet. Those answered are journaled first: the request
        that replaces an answered one is sent only once that answer is safe, so a kill
        loses at most the requests on the wire (`concurrency` of them)."""
        answered = [future for future in self.in_flight if future.done()]
        self._journal_responses(*(future.result() for future in answered))
        return len(self.in_flight) - len(answered)

    def _prepare(self, snapshot_done: bool) -> None:
        """Plan the chunks that will replace those on the wire (reuse decided) while
        waiting for their answers, so an answer's replacement goes out at once. Their
        claims and journal rows are written when they are sent."""
        try:
            while len(self._ready) < self.settings.concurrency and not self._blocked:
                chunk = self._plan(snapshot_done)
                if chunk is None or not chunk.to_buy:
                    if chunk is not None:
                        self._ready.append(chunk)  # stored (reused) by the next _fill
                    return
                self._ready.append(chunk)
        except BudgetExceeded:
            return  # _fill meets it again with the exact figures, and decides

    def _drain(self) -> None:
        """The run is ending on an error: store the purchases still in flight (they are
        paid for). Whatever cannot be stored now is in the journal for the next run."""
        # The error may have left a transaction open (LostOwnership from a guarded UPDATE
        # keeps SQLite's write lock): the journal writes below use other connections.
        self.session.rollback()
        for future, chunk in list(self.in_flight.items()):
            try:
                self._store_chunk(chunk, future.result())
            except BaseException:  # noqa: BLE001 - the first error is the one to report
                logger.warning("chunk %d: left in the journal for the next run", chunk.number)
        self.in_flight.clear()

    # -- the snapshot ---------------------------------------------------------------

    def _fetch_snapshot_page(
        self, pages: ThreadPoolExecutor, start: int, limit: int
    ) -> Future[Page]:
        return pages.submit(
            contextvars.copy_context().run, self.client.radar_ids, self.criteria, start, limit
        )

    def _store_snapshot_page(self, plan: SnapshotPlan, page: Page, start: int, limit: int) -> None:
        """One transaction: the page's RadarIDs, the counters and the snapshot checkpoint."""
        session, job, total = self.session, self.job, page.total_result_count
        if not self._search_total_known:
            cap = f" (capped at {self.max_records:,})" if self.max_records else ""
            add_log(
                session,
                self.batch_id,
                "INFO",
                f"Search matches {total:,} records{cap}; taking a free snapshot of their RadarIDs",
            )
            # What the user was told the search matches; compared with what was stored.
            job.search_total = total
            job.purchase_started_at = job.purchase_started_at or utcnow()
        added, missing = store_snapshot_items(session, self.batch_id, page)
        # The plan itself is told only once the page is safely stored (a retried
        # transaction must not count it twice); the checkpoint comes from a copy.
        answered = copy.deepcopy(plan)
        answered.answered(start, limit, len(page.results), total, added)
        _assert_owner(
            session,
            self.batch_id,
            self.run_id,
            utcnow(),
            _SNAPSHOT_PAGE_STORED,
            total=min(total, self.max_records) if self.max_records else total,
            added=added,
            missing=missing,
            checkpoint=answered.checkpoint,
        )
        session.commit()
        self._search_total_known = True
        plan.answered(start, limit, len(page.results), page.total_result_count, added)
        self._scan_from = min(self._scan_from, start)
        logger.info("snapshot start=%d ids=%d", start, len(page.results))

    def _close_snapshot(self) -> None:
        session, job = self.session, self.job
        _assert_owner(session, self.batch_id, self.run_id, utcnow())
        job.total_records = job.snapshot_count
        job.phase = JobPhase.PURCHASE
        job.purchase_started_at = job.purchase_started_at or utcnow()
        add_log(
            session,
            job.id,
            "INFO",
            f"Snapshot complete: {job.snapshot_count:,} RadarIDs, at no cost",
        )
        session.commit()

    # -- chunks ---------------------------------------------------------------------

    def _unplanned_rows(self) -> bool:
        return bool(self._free_rows(1))

    def _free_rows(self, size: int) -> list[tuple[int, str]]:
        """The first `size` snapshot rows (position, RadarID) not stored and not in a
        chunk of this run's, in search order."""
        # Only busy rows at or past _scan_from can come back from the query (usually none).
        busy = {
            rid
            for chunk in [*self.in_flight.values(), *self._ready]
            for rid, position in chunk.positions.items()
            if position >= self._scan_from
        }
        listed = free_snapshot_rows(self.session, self.batch_id, self._scan_from, size + len(busy))
        rows = [(position, radar_id) for position, radar_id in listed if radar_id not in busy]
        del rows[size:]
        self.session.commit()  # end the read transaction
        return rows

    def _plan(self, snapshot_done: bool) -> _Chunk | None:
        """The next chunk: up to batch_size snapshot rows not stored and not in flight, in
        search order, with what can be reused decided (the rest is claimed when it is
        sent). None when there is none yet (a short chunk waits for more snapshot pages)."""
        session, size = self.session, self.settings.batch_size
        rows = self._free_rows(size)
        if not rows or (len(rows) < size and not snapshot_done):
            return None
        positions = {radar_id: position for position, radar_id in rows}
        suppressed = self.suppressed.intersection(positions)
        wanted = [rid for rid in positions if rid not in suppressed]
        reusable, lacking = self._reusable(wanted)
        to_buy = [rid for rid in wanted if rid not in reusable]
        if to_buy:
            needed = len(to_buy) + self._records_in_flight()
            check_budget(session, self.owner_id, needed)
            if self.max_purchases is not None:
                check_job_cap(session, self.batch_id, self.max_purchases, needed)
        # Numbered by place in the search: chunk N starts at record (N-1)*batch_size+1, in
        # every run, so a retry calls a chunk what the failed run called it.
        number = rows[0][0] // size + 1
        # Planned: every free row before the last one is in this chunk or an earlier one.
        self._scan_from = max(self._scan_from, rows[-1][0] + 1)
        return _Chunk(number, positions, reusable, to_buy, lacking, suppressed=suppressed)

    def _records_in_flight(self) -> int:
        """Records being bought: on the wire, answered and not stored yet, or planned."""
        chunks = [*self.in_flight.values(), *self._ready]
        return sum(len(chunk.to_buy) for chunk in chunks)

    def _log_wait_once(self, held: int) -> None:
        if not self._logged_wait:
            self._logged_wait = True
            self._retry_db("wait", partial(self._log_wait, held))
            logger.info("waiting for %d records another job is buying", held)

    def _wait_for_other_job(self, held: int) -> None:
        """Nothing of ours is in flight and the next records are being bought by another
        job: wait (heart beating; the loop checks for a cancel) until they are stored to
        reuse them, or their claim is released or goes stale and this run may buy them."""
        time.sleep(self.settings.claim_poll_interval)
        self._retry_db("wait", self._beat)

    def _buy(self, chunk: _Chunk, on_sent: Callable[[], None] | None = None) -> _Bought:
        """Buy the chunk's RadarIDs (on a purchase thread). A response with fewer records
        than asked although its total says more match (the API silently capping Limit)
        is followed by a request for the rest, so they are not called vanished. Every
        request is journaled before it is sent (the first one by _plan). Never raises:
        what was bought before an error must still be stored."""
        _current_chunk.set(chunk.number)
        bought = _Bought()
        wanted = list(chunk.to_buy)
        matching: int | None = None  # how many of the chunk still match (first total)
        received = 0
        entry = chunk.entries[0] if chunk.entries else None
        try:
            while wanted:
                limit = len(wanted) if matching is None else min(len(wanted), matching - received)
                if entry is None:
                    entry = self.journal.sent(chunk.number, wanted)
                    chunk.entries.append(entry)
                _current_request.set(entry.client_request_id)
                page = self.client.fetch_page(
                    purchase_criteria(self.criteria, wanted),
                    0,
                    limit,
                    self.fields,
                    client_request_id=entry.client_request_id,
                    on_sent=on_sent,
                )
                on_sent = None
                bought.pages.append(page)
                bought.entries.append(entry)
                entry = None
                if matching is None:
                    matching = min(page.total_result_count, len(chunk.to_buy))
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

    def _journal_responses(self, *answers: _Bought) -> None:
        """Journal the responses of these purchases not journaled yet, in one transaction,
        then hand their pages to the parser thread (journaled first: parsing may wait)."""
        fresh = [bought for bought in answers if bought.entries and not bought.journaled]
        if fresh:
            self.journal.received(
                [
                    (entry.entry_id, page)
                    for bought in fresh
                    for entry, page in zip(bought.entries, bought.pages, strict=True)
                ]
            )
            for bought in fresh:
                bought.journaled = True
                bought.parsed = self._parser.submit(
                    contextvars.copy_context().run, _parse_pages, bought.pages
                )

    def _store_chunk(self, chunk: _Chunk, bought: _Bought | None) -> None:
        self._store_chunks([(chunk, bought)])

    def _store_chunks(self, chunks: list[tuple[_Chunk, _Bought | None]]) -> None:
        """Journal the responses that arrived, in a short transaction of their own, then
        store what the chunks brought in one transaction, retrying while the database is
        busy. One transaction for the chunks answered together: the pages they share
        (the RadarID index's, the job row's) are written once, not once per chunk. A
        purchase error is left in its `bought` for the caller (what was bought before it
        is kept)."""
        self._journal_responses(*(bought for _chunk, bought in chunks if bought is not None))
        try:
            self._retry_db("chunk", lambda: self._store_chunks_once(chunks))
        except LostOwnership:
            self.session.rollback()
            for chunk, bought in chunks:
                if bought is not None and bought.pages:
                    orphaned = partial(self._store_orphaned, chunk, bought)
                    self._retry_db("orphaned chunk", orphaned)
            raise

    def _store_chunks_once(self, chunks: list[tuple[_Chunk, _Bought | None]]) -> None:
        now = utcnow()
        logged = [self._add_chunk(chunk, bought, now) for chunk, bought in chunks]
        self.session.commit()
        for line in logged:
            logger.info(*line)

    def _add_chunk(self, chunk: _Chunk, bought: _Bought | None, now: datetime) -> tuple[Any, ...]:
        """A chunk's part of a store transaction: links, bought properties, ledger,
        counters, the chunk's rows marked stored, its journal rows deleted, its claims
        released, a log row. A chunk whose purchase failed part way stores what was
        bought; the rest stays to buy. Returns its log line (written once committed)."""
        session, batch_id = self.session, self.batch_id
        positions = chunk.positions
        pages = bought.pages if bought is not None else []
        coerced = bought.parsed.result() if bought is not None and bought.parsed else []
        # A page the parser thread did not get to is parsed here.
        parsed = [coerced[i] if i < len(coerced) else coerce_page(p) for i, p in enumerate(pages)]
        sent = bought.entries if bought is not None else []
        stored = {radar_id for page in parsed for radar_id in page.rows}
        missing = sum(page.missing_id for page in parsed)
        complete = bought is None or bought.complete
        # A record without a RadarID was one of those asked for: it was bought, not lost.
        vanished = max(0, len([rid for rid in chunk.to_buy if rid not in stored]) - missing)
        done = (
            set(positions)
            if complete
            else (chunk.reusable | chunk.suppressed | stored) & positions.keys()
        )
        if bought is not None:
            self._settle_unanswered(chunk, bought)
        # The statements whose results are not needed go out together; the links, whose
        # counts the counters need, after them.
        with pipelined(session):
            for page, page_parsed, request in zip(pages, parsed, sent, strict=True):
                upsert_coerced(session, page_parsed, now)
                self._add_ledger(chunk.number, len(chunk.to_buy), page, request)
            if chunk.to_buy:
                release(session, batch_id, chunk.to_buy)
            mark_stored(session, batch_id, _outcomes(chunk, stored, done))
        reused = link(session, batch_id, {rid: positions[rid] for rid in chunk.reusable})
        bought_linked = sum(
            link_page(session, batch_id, page, page_parsed, positions)
            for page, page_parsed in zip(pages, parsed, strict=True)
        )
        _assert_owner(
            session,
            batch_id,
            self.run_id,
            now,
            _CHUNK_STORED,
            cost=sum(page.total_cost or 0.0 for page in pages),
            pages=len(pages),
            done=len(done),
            vanished=vanished if complete else 0,
            reused=reused,
            bought=len(stored),
            missing=missing,
            linked=reused + bought_linked,
            suppressed=len(chunk.suppressed),
        )
        message = chunk_message(
            chunk.number,
            len(positions),
            reused=reused,
            bought=len(stored),
            requests=len(pages),
            lacking_fields=chunk.lacking_fields,
            missing=missing,
            vanished=vanished if complete else 0,
            suppressed=len(chunk.suppressed),
        )
        if not complete:
            message += "; the purchase failed part way, the rest is bought on retry"
        add_log(
            session,
            batch_id,
            "WARNING" if vanished or missing or not complete else "INFO",
            message,
            page=chunk.number if pages else None,
        )
        return (
            "chunk %d positions=%d reused=%d bought=%d no_radar_id=%d vanished=%d requests=%s",
            chunk.number,
            len(positions),
            reused,
            len(stored),
            missing,
            vanished,
            [page.request_id for page in pages],
        )

    def _settle_unanswered(self, chunk: _Chunk, bought: _Bought) -> None:
        """The chunk's journal rows go with it. A request that went out and got no usable
        answer (its last attempt lost, or this chunk settled after a crash) may have been
        billed: it becomes a "possibly billed" ledger row for the records it asked for."""
        error = bought.error
        lost = bought.incomplete or bool(getattr(error, "last_attempt_possibly_billed", False))
        if lost:
            for entry in journal.unanswered(self.session, chunk.entry_ids):
                why = "no response was stored before the run stopped"
                if error is not None:
                    why = f"the last attempt failed ({error})"
                record_unanswered(
                    self.session,
                    self.batch_id,
                    self.owner_id,
                    chunk.number,
                    len(entry.radar_ids),
                    entry.request_id,
                    entry.client_request_id,
                    f"Purchase sent, {why}; its records may have been billed",
                )
        journal.discard(self.session, chunk.entry_ids)

    def _settle_journal(self) -> None:
        """Store what an earlier run of this job bought and did not store (its responses
        are in the journal), and put its unanswered requests in the ledger as possibly
        billed, before anything is bought again."""
        entries = self._retry_db("journal", lambda: journal.left_over(self.session, self.batch_id))
        by_chunk: dict[int, list[JournaledPurchase]] = {}
        for entry in entries:
            by_chunk.setdefault(entry.chunk, []).append(entry)
        self.session.commit()
        for number, rows in by_chunk.items():
            answered = [row for row in rows if row.response is not None]
            if not answered:
                self._retry_db("journal", partial(self._settle_lost, number, rows))
                continue
            asked = list(dict.fromkeys(rid for row in answered for rid in row.radar_ids))
            pages = [
                page_from_body(row.response.encode(), row.request_id, 0, len(row.radar_ids))
                for row in answered
                if row.response is not None
            ]
            matching = min(pages[0].total_result_count, len(asked)) if pages else 0
            received = sum(len(page.results) for page in pages)
            bought = _Bought(
                pages=pages,
                incomplete=len(answered) < len(rows) or received < matching,
                entries=[SentRequest.of(row) for row in answered],
                journaled=True,
            )
            found = dict(
                self.session.execute(
                    sa.select(SnapshotItem.radar_id, SnapshotItem.position).where(
                        SnapshotItem.batch_job_id == self.batch_id,
                        SnapshotItem.radar_id.in_(asked),
                    )
                )
                .tuples()
                .all()
            )
            self.session.commit()
            chunk = _Chunk(number, found, set(), [rid for rid in asked if rid in found])
            chunk.entries = [SentRequest.of(row) for row in rows]
            self._store_chunk(chunk, bought)
            logger.info(
                "chunk %d: %d journaled responses stored, %d unanswered requests",
                number,
                len(answered),
                len(rows) - len(answered),
            )

    def _settle_lost(self, number: int, rows: list[JournaledPurchase]) -> None:
        """A chunk of an earlier run whose purchase got no response before it stopped."""
        session, job = self.session, self.job
        _assert_owner(session, self.batch_id, self.run_id, utcnow())
        lost = _Chunk(number, {}, set(), [], entries=[SentRequest.of(row) for row in rows])
        self._settle_unanswered(lost, _Bought(incomplete=True))
        asked = sum(len(row.radar_ids) for row in rows)
        add_log(
            session,
            job.id,
            "WARNING",
            f"Chunk {number}: a purchase of {asked:,} records was sent before the run "
            "stopped and got no response; it may have been billed (see the ledger) and "
            "is bought again",
            page=number,
        )
        session.commit()
        logger.warning("chunk %d: %d unanswered purchase requests settled", number, len(rows))

    def _store_orphaned(self, chunk: _Chunk, bought: _Bought) -> None:
        """This run lost the job (recovery requeued it, e.g. while the database was locked)
        but holds a paid chunk: store the records and the ledger rows anyway, so the run
        that owns the job now reuses them instead of buying them again."""
        session, now = self.session, utcnow()
        stored: set[str] = set()
        for page, sent in zip(bought.pages, bought.entries, strict=True):
            stored |= upsert_records(session, page, now)[0]
            self._add_ledger(chunk.number, len(chunk.to_buy), page, sent)
        release(session, self.batch_id, chunk.to_buy)
        journal.discard(session, chunk.entry_ids)
        add_log(
            session,
            self.batch_id,
            "WARNING",
            f"Chunk {chunk.number}: {len(stored):,} records bought by a run that lost the job "
            "were stored, so they are reused, not bought again",
            page=chunk.number,
        )
        session.commit()
        logger.warning("stored %d records of an orphaned purchase", len(stored))

    def _add_ledger(self, chunk_number: int, requested: int, page: Page, sent: SentRequest) -> None:
        record_billed(
            self.session,
            self.batch_id,
            self.owner_id,
            chunk_number,
            requested,
            page,
            sent.client_request_id,
        )

    def _complete(self) -> None:
        warning = shortfall_warning(self.job)
        if warning:
            self.job.warning = warning
            add_log(self.session, self.batch_id, "WARNING", warning)
        # Module-level _finish: this whole function is one retried transaction.
        _finish(self.session, self.job, self.run_id, Event.COMPLETE, completion_summary(self.job))

    # -- purchase claims ----------------------------------------------------------

    def _claim_and_journal(self, chunk: _Chunk) -> None:
        """Claim the chunk's records and journal its purchase, in one transaction (one
        commit, not one each) right before it is sent. Raises _Held (nothing claimed)
        when another active job is buying some of them."""
        session = self.session
        held = claim_records(
            session,
            self.batch_id,
            chunk.to_buy,
            claim_stale_after=self.settings.claim_stale_after,
            heartbeat_stale_after=self.settings.heartbeat_stale_after,
        )
        if held:
            raise _Held(len(held))
        # Stored by the job whose claim was released between our check and our claim:
        # now that the claim is ours nobody else can store them, so this check is final.
        late, _ = self._reusable(chunk.to_buy)
        to_buy = [rid for rid in chunk.to_buy if rid not in late]
        if late:
            release(session, self.batch_id, late)
        entry = None
        if to_buy:
            # Written here, not on the purchase thread: on SQLite the threads would wait
            # for this thread's write lock, in SQLite's busy handler that sleeps in steps.
            connection = session.connection(bind_arguments={"mapper": JournaledPurchase})
            entry = journal.write_sent(connection, self.batch_id, chunk.number, to_buy)
        session.commit()
        # The chunk changes only once committed: a retried transaction starts over.
        chunk.reusable |= late
        chunk.to_buy = to_buy
        if entry is not None:
            chunk.entries.append(entry)

    def _log_wait(self, held: int) -> None:
        _assert_owner(self.session, self.batch_id, self.run_id, utcnow())
        add_log(
            self.session,
            self.batch_id,
            "INFO",
            f"Waiting for {held:,} records another job is buying right now; "
            "they will be reused, not bought twice",
        )
        self.session.commit()

    def _beat(self) -> None:
        _assert_owner(self.session, self.batch_id, self.run_id, utcnow())
        self.session.commit()

    def _beat_now_and_then(self) -> None:
        """Still ours? Checked about once a second while waiting on requests (also a
        heartbeat for runs without the heartbeat thread)."""
        if time.monotonic() - self._last_beat >= 1.0:
            self._last_beat = time.monotonic()
            self._retry_db("heartbeat", self._beat)

    # -- helpers ------------------------------------------------------------------

    def _retry_db(self, what: str, work: Callable[[], T]) -> T:
        return retry_transaction(self.session, what, work, self.settings.db_retry_for)

    def _reusable(self, radar_ids: list[str]) -> tuple[set[str], int]:
        """(RadarIDs stored fresh enough, and with every field the job asks for; how many
        stored ones were passed over because they lack some of those fields)."""
        fresh_since = self.refreshed_since or utcnow() - self.settings.freshness
        if not self.required_fields:
            connection = self.session.connection(bind_arguments={"mapper": Property})
            params = {"radar_ids": radar_ids, "since": fresh_since}
            return set(_STORED_FRESH(connection, params).scalars()), 0
        listed = one_of(Property.radar_id, radar_ids, self.engine.dialect)
        fresh = sa.and_(listed, Property.last_seen_at >= fresh_since)
        rows = self.session.execute(sa.select(Property.radar_id, Property.raw).where(fresh)).all()
        complete = {
            radar_id
            for radar_id, raw in rows
            if isinstance(raw, dict) and self.required_fields <= raw.keys()
        }
        return complete, len(rows) - len(complete)

    def _record_retry(self, event: RetryEvent) -> None:
        """Ledger row for a purchase attempt whose response was lost: it may have been
        billed. Written on its own connection at once, so a crash right after cannot lose
        it. Runs on the purchase thread that sent the attempt."""
        if event.purchase and event.possibly_billed:
            record_possibly_billed(
                self.engine,
                self.batch_id,
                self.owner_id,
                _current_chunk.get(),
                event,
                _current_request.get(),
            )

    def _post_wait(self, wait: Wait | None) -> None:
        """Show a noticeable wait of this thread's request on the job (radar_app/waits.py),
        or that it ended. Runs on the waiting thread; never stops the import."""
        if self.waits is None:
            return
        holder = f"{self.run_id}:{threading.current_thread().name}"
        try:
            if wait is None:
                self.waits.clear(self.batch_id, holder)
            else:
                self.waits.post(self.batch_id, holder, wait)
        except RedisError as exc:  # the wait still happens; only its display is lost
            logger.debug("wait not shown on the job: %s", exc)

    def _cancel_requested(self) -> bool:
        return self._retry_db(
            "cancel check", lambda: _cancel_requested(self.session, self.batch_id)
        )

    def _cancelled(self) -> None:
        self._finish(
            Event.CANCELLED,
            f"Cancelled after {self.job.processed_records:,} records; stored leads are kept",
        )
        logger.info("cancelled after record %d", self.job.processed_records)

    def _stopped_for_shutdown(self) -> None:
        """The app is stopping: log it on the job, which stays PROCESSING; recovery
        requeues it from its checkpoint once its heartbeat is stale."""

        def log_stop() -> None:
            _assert_owner(self.session, self.batch_id, self.run_id, utcnow())
            add_log(
                self.session,
                self.batch_id,
                "WARNING",
                f"Stopped after {self.job.processed_records:,} records because the app is "
                "shutting down; nothing more was bought. The job resumes from here when a "
                "worker runs again",
            )
            self.session.commit()

        self._retry_db("shutdown", log_stop)
        logger.warning("stopped for shutdown after record %d", self.job.processed_records)

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
            logger.error("failed after record %d: %s", job.processed_records, message)
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
