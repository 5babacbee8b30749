"""Issue 11's crash acceptance: the work horse SIGKILLed at the three moments that decide
what a crash costs, at PROPERTYRADAR_CONCURRENCY 1, 2 and 4.

1. during the snapshot: the job is in its SNAPSHOT phase with a free page on the wire
   (and, the snapshot and the purchases overlapping, a purchase too);
2. purchases in flight: PropertyRadar is serving Purchase=1 requests (two at once when
   the concurrency allows) that the purchase journal holds without a response;
3. a response that arrived but is not stored: the journal holds its body, its chunk is
   not stored yet.

Each moment is a condition seen in the database and at the simulator, never a sleep. So
that the horse cannot move on between the test seeing the moment and the SIGKILL, the
test first takes the database's write lock (SQLite: BEGIN IMMEDIATE on a connection of
its own; PostgreSQL: LOCK TABLE ... IN EXCLUSIVE MODE), checks the moment again under
it, SIGKILLs the worker and its horse (RQ's horse leads a process group of its own, so
both are killed by pid), and only then lets go. The horse meanwhile waits on the lock, as
it does for any busy database. Seen, then gone under the lock (the chunk was stored
first) is a near miss: the test waits for the next chunk, bounded by the job's length.

After the kill a standby worker's recovery resumes the job, and the test asserts what
the user and the bill see: the job COMPLETED with every lead stored once; the job's ledger
(billed + possibly billed) equals what PropertyRadar billed; records billed twice are
at most the records of the requests in flight at the kill.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import psutil
import pytest
import sqlalchemy as sa
from werkzeug.wrappers import Request, Response

from radar_app.models import JobStatus
from simulator import Simulator
from tests.helpers import (
    MULTNOMAH,
    assert_ledger_matches_bill,
    assert_orphans_exit,
    job_row,
    ledger_total,
    sigkill_worker_and_horse,
    stored_radar_ids,
    wait_for,
    work_horse,
)

EXPECTED = 2000  # MULTNOMAH: 5 chunks of 400
# Long enough for a request on the wire to be seen by polling, short enough that a case,
# kill and recovery included, runs in seconds.
LATENCY_MS = 100
CONCURRENCY = [1, 2, 4]
# A killed job is requeued within RECOVERY_STALE_AFTER + RECOVERY_INTERVAL, by a worker
# that was started with the doomed one (a worker's start-up alone takes seconds on a
# busy machine).
FAST = {
    "HEARTBEAT_INTERVAL": "0.25",
    "RECOVERY_STALE_AFTER": "2",
    "RECOVERY_INTERVAL": "0.25",
    "RECOVERY_PENDING_GRACE": "1",
}


# -- what PropertyRadar is serving right now -------------------------------------------


@dataclass
class ApiCall:
    purchase: bool
    radar_ids: frozenset[str]
    status: int | None = None  # None while the simulator is still working on it


class ApiProbe:
    """Every API request the simulator serves, from the moment it arrives until its answer
    is decided and billed. The simulator's own log only gets a request once it is
    answered, too late to see one on the wire. `snapshot_latency`: seconds each free
    (Purchase=0) request takes on top of the simulator's latency."""

    def __init__(self, simulator: Simulator) -> None:
        self._serve = simulator._api_response
        self._lock = threading.Lock()
        self._calls: list[ApiCall] = []
        self.snapshot_latency = 0.0

    def serve(self, request: Request) -> Response:
        body = request.get_json(silent=True) or {}
        criteria = body.get("Criteria", []) if isinstance(body, dict) else []
        radar_ids = next((c["value"] for c in criteria if c.get("name") == "RadarID"), [])
        call = ApiCall(request.args.get("Purchase") == "1", frozenset(radar_ids))
        with self._lock:
            self._calls.append(call)
        try:
            if not call.purchase:
                time.sleep(self.snapshot_latency)
            response = self._serve(request)
            call.status = response.status_code
            return response
        finally:
            if call.status is None:
                call.status = 0

    def calls(self) -> list[ApiCall]:
        with self._lock:
            return list(self._calls)

    def in_progress(self, *, purchase: bool) -> list[ApiCall]:
        return [c for c in self.calls() if c.purchase == purchase and c.status is None]

    def reached(self, radar_ids: frozenset[str]) -> bool:
        return any(c.purchase and c.radar_ids == radar_ids for c in self.calls())

    def idle(self) -> bool:
        return all(c.status is not None for c in self.calls())


@pytest.fixture
def probe(simulator: Simulator, monkeypatch: pytest.MonkeyPatch) -> ApiProbe:
    spy = ApiProbe(simulator)
    monkeypatch.setattr(simulator, "_api_response", spy.serve)
    return spy


# -- the database, seen and locked from beside the workers ---------------------------


class JobState(NamedTuple):
    id: int
    status: str
    phase: str
    snapshot_count: int


class JournalRow(NamedTuple):
    radar_ids: frozenset[str]
    received: bool


class Database:
    """A raw DB-API connection of the test's own: cheap enough to poll every few
    milliseconds, and able to hold the write lock that storing a chunk needs."""

    def __init__(self, url: str) -> None:
        parsed = sa.engine.make_url(url)
        self.sqlite = parsed.get_backend_name() == "sqlite"
        self.mark = "?" if self.sqlite else "%s"
        self.conn: Any
        if self.sqlite:
            self.conn = sqlite3.connect(parsed.database, timeout=5, isolation_level=None)
        else:
            import psycopg

            self.conn = psycopg.connect(
                parsed.set(drivername="postgresql").render_as_string(hide_password=False),
                autocommit=True,
            )

    def rows(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        return list(self.conn.execute(sql.replace("?", self.mark), params).fetchall())

    def job(self, job_id: str) -> JobState:
        (row,) = self.rows(
            "SELECT id, status, phase, snapshot_count FROM batch_jobs WHERE job_id = ?", job_id
        )
        return JobState(*row)

    def journal(self, batch_id: int) -> list[JournalRow]:
        rows = self.rows(
            "SELECT radar_ids, CASE WHEN received_at IS NULL THEN 0 ELSE 1 END "
            "FROM purchase_journal WHERE batch_job_id = ?",
            batch_id,
        )
        return [
            JournalRow(frozenset(json.loads(ids) if isinstance(ids, str) else ids), bool(got))
            for ids, got in rows
        ]

    def lock(self, timeout: float = 0.2) -> bool:
        """Take the write lock a chunk's store needs; False if the horse held it all along."""
        deadline = time.monotonic() + timeout
        tables = "properties, purchase_journal"
        while True:
            try:
                if self.sqlite:
                    # Fail at once instead of queueing behind the horse (reads still wait).
                    self.conn.execute("PRAGMA busy_timeout = 0")
                    try:
                        self.conn.execute("BEGIN IMMEDIATE")
                    finally:
                        self.conn.execute("PRAGMA busy_timeout = 5000")
                else:
                    self.conn.execute("BEGIN")
                    self.conn.execute("SET LOCAL lock_timeout = '10ms'")
                    self.conn.execute(f"LOCK TABLE {tables} IN EXCLUSIVE MODE")
                return True
            except Exception as exc:  # noqa: BLE001 - sqlite3 or psycopg: busy, try again
                if "lock" not in str(exc).lower():
                    raise
                if not self.sqlite:
                    self.conn.execute("ROLLBACK")
            if time.monotonic() > deadline:
                return False
            time.sleep(0.001)

    def unlock(self) -> None:
        self.conn.execute("ROLLBACK")

    def close(self) -> None:
        self.conn.close()


@pytest.fixture
def database(app, app_config) -> Iterator[Database]:
    handle = Database(app_config["SQLALCHEMY_DATABASE_URI"])
    yield handle
    handle.close()


# -- the three moments -----------------------------------------------------------------


@dataclass
class Kill:
    """What was in flight when the horse died."""

    purchases_in_flight: list[frozenset[str]]  # RadarIDs of each request in flight
    journal: list[JournalRow]
    near_misses: int  # times the moment was seen, and gone once the lock was held

    @property
    def records_in_flight(self) -> int:
        return sum(len(ids) for ids in self.purchases_in_flight)


class Moment:
    name: str
    # Worker settings that make the moment last long enough to be seen. By default the
    # snapshot takes two free pages of 1,000: after the first, two chunks can be bought
    # at once while the second page is on the wire.
    env: dict[str, str] = {}
    snapshot_latency = 0.0

    def seen(self, db: Database, probe: ApiProbe, job_id: str, concurrency: int) -> bool:
        raise NotImplementedError

    def landed(self, db: Database, job_id: str, kill: Kill) -> bool:
        """Checked after the kill, with no process left to change anything."""
        raise NotImplementedError


class DuringSnapshot(Moment):
    name = "snapshot"
    # Five slow pages of 400: four of them on the wire while chunks are bought.
    env = {"PROPERTYRADAR_SNAPSHOT_PAGE_SIZE": "400"}
    snapshot_latency = 0.2

    def seen(self, db: Database, probe: ApiProbe, job_id: str, concurrency: int) -> bool:
        job = db.job(job_id)
        # A page stored already: the kill interrupts a snapshot, not its first request.
        if not (
            job.phase == "SNAPSHOT" and job.snapshot_count > 0 and probe.in_progress(purchase=False)
        ):
            return False
        # Purchases run beside the snapshot: the kill takes one down with it.
        return PurchaseInFlight().seen(db, probe, job_id, 1)

    def landed(self, db: Database, job_id: str, kill: Kill) -> bool:
        return db.job(job_id).phase == "SNAPSHOT"


class PurchaseInFlight(Moment):
    name = "purchase-in-flight"

    def seen(self, db: Database, probe: ApiProbe, job_id: str, concurrency: int) -> bool:
        # Two at once where the concurrency allows: after the first snapshot page two
        # chunks are ready together (more at once is too brief a sight to wait for).
        least = min(concurrency, 2)
        on_the_wire = {call.radar_ids for call in probe.in_progress(purchase=True)}
        waiting = {row.radar_ids for row in db.journal(db.job(job_id).id) if not row.received}
        return len(on_the_wire & waiting) >= least

    def landed(self, db: Database, job_id: str, kill: Kill) -> bool:
        return bool(kill.purchases_in_flight)


class ResponseNotStored(Moment):
    name = "response-not-stored"

    def seen(self, db: Database, probe: ApiProbe, job_id: str, concurrency: int) -> bool:
        return any(row.received for row in db.journal(db.job(job_id).id))

    def landed(self, db: Database, job_id: str, kill: Kill) -> bool:
        return any(row.received for row in db.journal(db.job(job_id).id))


MOMENTS = [DuringSnapshot(), PurchaseInFlight(), ResponseNotStored()]


def sent_as_journaled(db: Database, probe: ApiProbe, batch_id: int) -> bool:
    """Every request the journal holds without a response has reached PropertyRadar. A
    request journaled but not sent yet when the horse dies was never billed, yet must be
    called possibly billed: a kill there cannot leave an exact ledger, so no case kills
    there (it is a window of a few instructions; the lock makes it wait out)."""
    return all(probe.reached(row.radar_ids) for row in db.journal(batch_id) if not row.received)


def kill_at(
    moment: Moment,
    db: Database,
    probe: ApiProbe,
    workers: list[psutil.Process],
    job_id: str,
    concurrency: int,
    timeout: float = 30,
) -> tuple[Kill, list[psutil.Process]]:
    """Wait for the moment, lock the database, check the moment again and SIGKILL the
    worker running the job and its horse under the lock. Returns what was in flight, and
    the worker's orphaned children (its reconciler), which must exit by themselves."""

    def running() -> tuple[psutil.Process, psutil.Process] | None:
        for worker in workers:
            horse = work_horse(worker)
            if horse is not None:
                return worker, horse
        return None

    worker, horse = wait_for(running, what="a work horse")
    batch_id = db.job(job_id).id
    deadline = time.monotonic() + timeout
    near_misses = 0
    while True:
        job = db.job(job_id)
        if job.status != JobStatus.PROCESSING and job.status != JobStatus.PENDING:
            pytest.fail(
                f"the job ended ({job.status}) before the moment {moment.name} was seen "
                f"under the lock ({near_misses} near misses): raise LATENCY_MS or the search"
            )
        assert time.monotonic() < deadline, f"moment {moment.name} not seen in {timeout}s"
        if moment.seen(db, probe, job_id, concurrency) and db.lock():
            try:
                # Under the lock the horse can no longer store, journal or finish a chunk.
                # Wait (briefly) for journaled requests to leave: see sent_as_journaled.
                ready = wait_until(lambda: sent_as_journaled(db, probe, batch_id), 0.3)
                if ready and moment.seen(db, probe, job_id, concurrency):
                    in_flight = [c.radar_ids for c in probe.in_progress(purchase=True)]
                    orphans = sigkill_worker_and_horse(worker, horse)
                    break
                near_misses += 1
            finally:
                db.unlock()
        time.sleep(0.002)
    journal = db.journal(batch_id)
    # What the engine must call possibly billed: requests it sent without a response.
    in_flight = [row.radar_ids for row in journal if not row.received]
    return Kill(in_flight, journal, near_misses), orphans


def wait_until(check: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.002)
    return True


# -- the cases -------------------------------------------------------------------------


def logs_of(tmp_path: Path) -> str:
    return "\n".join(
        f"--- {path.name}\n{path.read_text(errors='replace')[-3000:]}"
        for path in sorted(tmp_path.glob("worker-*.log"))
    )


@pytest.mark.slow
@pytest.mark.parametrize("concurrency", CONCURRENCY, ids=lambda n: f"concurrency-{n}")
@pytest.mark.parametrize("moment", MOMENTS, ids=lambda m: m.name)
def test_sigkill_at_the_moment_keeps_the_ledger_exact(
    app, api, simulator, probe, database, start_worker, tmp_path, moment, concurrency
):
    simulator.configure(latency_ms=LATENCY_MS)
    probe.snapshot_latency = moment.snapshot_latency
    env = {**FAST, **moment.env, "PROPERTYRADAR_CONCURRENCY": str(concurrency)}
    response = api.post("/api/batch-jobs", json={"criteria": MULTNOMAH})
    assert response.status_code == 201, response.json
    job_id = response.json["id"]
    began = time.monotonic()
    # One runs the job and is killed; the other resumes it.
    workers = [psutil.Process(start_worker(env=env).pid) for _ in range(2)]

    kill, orphans = kill_at(moment, database, probe, workers, job_id, concurrency)
    killed_at = time.monotonic()
    assert moment.landed(database, job_id, kill), f"the kill missed {moment.name}: {kill}"
    assert_orphans_exit(orphans)

    def finished():
        job = job_row(app, job_id)
        return job if not JobStatus(job.status).is_active else None

    try:
        job = wait_for(finished, timeout=60, what="the resumed job to finish")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{logs_of(tmp_path)}") from None
    wait_for(probe.idle, timeout=10, what="PropertyRadar to answer every request")
    print(
        f"{moment.name} at concurrency {concurrency}: killed after "
        f"{killed_at - began:.1f}s ({kill.near_misses} near misses) with "
        f"{len(kill.purchases_in_flight)} purchases in flight, completed "
        f"{time.monotonic() - killed_at:.1f}s later"
    )

    assert job.status == JobStatus.COMPLETED, (job.status, job.error_details)
    assert job.attempts == 2, "one kill, one resume"
    assert job.success_count == EXPECTED
    ids = stored_radar_ids(app, job_id)
    assert len(ids) == len(set(ids)) == EXPECTED
    assert database.journal(job.id) == [], "journal rows outlived their chunk"

    stats = simulator.stats()
    ledger, billed = ledger_total(app, job.id), stats["billed_records"]
    assert ledger == billed, (
        f"the ledger (billed + possibly billed) says {ledger}, PropertyRadar billed "
        f"{billed}; {kill.records_in_flight} records were in flight at the kill"
    )
    # Row by row too: each kill here lands at a moment the simulator has seen.
    assert_ledger_matches_bill(app, job.id, stats)
    billed_again = sum(n - 1 for n in stats["billed_radar_ids"].values() if n > 1)
    assert billed_again <= kill.records_in_flight, (
        f"{billed_again} records billed twice, {kill.records_in_flight} were in flight"
    )
