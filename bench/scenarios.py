"""The scenarios of issues 6 and 11, run against a live stack (see bench/stack.py).

Every import goes the production way: a job row + an RQ job, picked up by a real
`worker.py` process that forks a work horse, which talks HTTP to the simulator.

Issue 6's rows (a, c, f) take an import's wall time from the job rows: first started_at
to last completed_at (queue wait and fork are outside it; the bench polls the rows only to
know when to stop).

Issue 11's rows (g–j) put radar_app beside the script our users write without it
(bench/script.py), run in this process against the same simulator at the same latency,
alternating (each side's best of `compare_runs`), and time what a user sees: from the
API POST that creates the job (through gunicorn, with an API token) until a GET of the
job answers COMPLETED. The bench watches the job row to know when to send that GET; the
clock stops at its answer.
"""

from __future__ import annotations

import math
import statistics
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

import requests
import sqlalchemy as sa
from flask import Flask

from bench import script, storepath
from bench.stack import TOKEN, PeakRss, Stack, cpu_seconds
from radar_app import batches, create_app, leadsearch, store
from radar_app.config import settings_from_env
from radar_app.extensions import db
from radar_app.models import (
    BatchJob,
    JobProperty,
    JobStatus,
    JobTransition,
    LedgerEntry,
    Property,
    User,
    utcnow,
)
from radar_app.propertyradar.client import Page
from radar_app.queue import get_queue
from simulator.dataset import get_dataset

EMAIL = "bench@example.com"
PASSWORD = "bench-password-123"
SNAPSHOT_PAGE = 1000  # PROPERTYRADAR_SNAPSHOT_PAGE_SIZE default
DONE = {JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED}


@dataclass
class Sizes:
    """How big each scenario is; --quick shrinks everything to fit CI's 3 minutes."""

    scale: float
    zero_latency: tuple[list[str], int]  # states, records
    million: tuple[list[str], int] | None
    poll_seconds: float
    # Issue 11's side-by-side imports: this many records of one state; each side's best
    # of `compare_runs` runs, the two sides alternating (a shared machine's load swings).
    compare: tuple[list[str], int] = (["CA"], 20_000)
    compare_runs: int = 2
    pollers: int = 20
    table_jobs: int = 10_000
    parallel_records: int = 4_000
    latency_ms: int = 100
    # Row k: the leads browser with this many of the user's leads (row c's count, when it
    # ran; the rest stored here from the simulator's dataset).
    browser_leads: int = 20_000


QUICK = Sizes(
    scale=1,
    zero_latency=(["OR"], 10_000),
    million=None,
    poll_seconds=8,
    compare=(["CA"], 10_000),
    parallel_records=4_000,
)
FULL = Sizes(
    scale=10,
    zero_latency=(["OR"], 100_000),
    million=(["CA", "TX", "FL", "WA"], 1_000_000),
    poll_seconds=30,
    compare=(["CA"], 20_000),
    parallel_records=20_000,
    browser_leads=1_000_000,
)


@dataclass
class Row:
    scenario: str
    database: str
    records: int | None = None
    wall_s: float | None = None
    records_per_s: int | None = None
    page_requests: int | None = None
    api_bound_s: float | None = None
    overhead: float | None = None
    worker_peak_rss_mb: float | None = None
    web_peak_rss_mb: float | None = None
    p50_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None
    target: str = ""
    met: str = ""
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Comparison:
    """radar_app's figure beside a peer's from the same run (issue 11): the script our
    users write (bench/script.py), or a raw DB-API executemany of the same rows."""

    scenario: str
    database: str
    records: int
    measure: str  # what radar_app and peer are: "wall s" or "rec/s"
    radar_app: float
    peer: float
    ratio: float  # radar_app / peer
    radar_app_requests: str = ""
    peer_requests: str = ""
    target: str = ""
    met: str = ""
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Timed:
    """One import, as its user saw it, and what the simulator served for it."""

    wall_s: float
    records: int
    purchase_requests: int
    free_requests: int
    billed_records: int
    # radar_app's job alone (started_at to completed_at); the rest of wall_s is the POST,
    # the queue, the fork of the work horse and the GET.
    job_s: float | None = None
    # CPU seconds of the importing side (the RQ workers with their work horses, until
    # the worker is idle again; or the script's process) and of the simulator.
    cpu_s: float | None = None
    simulator_cpu_s: float | None = None

    @property
    def records_per_s(self) -> float:
        return self.records / self.wall_s

    @property
    def requests(self) -> str:
        total = self.purchase_requests + self.free_requests
        return f"{total} ({self.free_requests} free + {self.purchase_requests} bought)"


def _round(value: float, digits: int = 2) -> float:
    return round(value, digits)


class Bench:
    def __init__(
        self, stack: Stack, database_url: str, sizes: Sizes, only: set[str] | None = None
    ) -> None:
        self.stack, self.sizes, self.only = stack, sizes, only
        self.database_url = database_url
        self.backend = sa.engine.make_url(database_url).get_backend_name()
        queue = f"bench-{uuid.uuid4().hex[:8]}"
        stack.use_database(database_url, queue)
        self.app: Flask = create_app(settings_from_env(stack.env))
        self.rows: list[Row] = []
        self.comparisons: list[Comparison] = []
        self.biggest_job: str | None = None
        self.rss_small: float | None = None  # worker peak RSS of row a, for row c
        # The script's own table: beside radar_app's tables on PostgreSQL (same server),
        # a file of its own beside radar_app's on SQLite (the script's sqlite3 defaults).
        if self.backend == "sqlite":
            self.script_database_url = f"sqlite:///{stack.workdir}/script-{queue}.db"
        else:
            self.script_database_url = database_url
        # What the "default" rows run with: the caller's environment, or the app's default.
        self.concurrency = stack.env.get("PROPERTYRADAR_CONCURRENCY") or "default"

    # -- setup ---------------------------------------------------------------------

    def prepare(self) -> None:
        """Empty schema, migrated the production way, and one user."""
        with self.app.app_context():
            meta = sa.MetaData()
            meta.reflect(db.engine)
            meta.drop_all(db.engine)
            db.engine.dispose()
        self.stack.flask("db", "upgrade")
        self.stack.flask("users", "create", EMAIL, "--password", PASSWORD)
        with self.app.app_context():
            self.user_id = db.session.scalar(sa.select(User.id).where(User.email == EMAIL))
            db.session.remove()
        self.api = requests.Session()
        self.api.headers["Authorization"] = f"Bearer {self.stack.api_token(EMAIL)}"

    @contextmanager
    def ctx(self) -> Iterator[None]:
        with self.app.app_context():
            try:
                yield
            finally:
                db.session.remove()

    def create_jobs(self, specs: list[tuple[list[str], int]]) -> list[int]:
        ids = []
        with self.ctx():
            owner = db.session.get(User, self.user_id)
            for states, records in specs:
                job = batches.create_job(
                    db.session,
                    get_queue(),
                    batches.QueueSettings.from_config(self.app.config),
                    owner=owner,
                    criteria=[{"name": "State", "value": states}],
                    name=f"bench {'+'.join(states)} {records:,}",
                    max_records=records or None,
                    # Every record is bought, also ones an earlier scenario stored.
                    refresh_all=True,
                )
                ids.append(job.id)
        return ids

    def jobs(self, ids: list[int]) -> list[BatchJob]:
        with self.ctx():
            found = db.session.scalars(sa.select(BatchJob).where(BatchJob.id.in_(ids))).all()
            for job in found:
                db.session.expunge(job)
            return list(found)

    def wait(self, ids: list[int], timeout: float) -> list[BatchJob]:
        deadline = time.monotonic() + timeout
        while True:
            found = self.jobs(ids)
            if all(job.status in DONE for job in found):
                return found
            if time.monotonic() > deadline:
                raise TimeoutError(f"jobs {ids} still running after {timeout:.0f}s")
            time.sleep(0.1)

    # -- imports -------------------------------------------------------------------

    def run_import(
        self, name: str, specs: list[tuple[list[str], int]], latency_ms: int, workers: int
    ) -> tuple[Row, list[BatchJob]]:
        self.stack.simulator.configure(latency_ms=latency_ms)
        self.stack.simulator.reset()
        pids = [w.pid for w in self.stack.workers]
        with PeakRss(pids) as rss:
            ids = self.create_jobs(specs)
            found = self.wait(ids, timeout=3600)
        bad = [(j.job_id, j.status, j.error_details) for j in found if j.status != "COMPLETED"]
        if bad:
            raise RuntimeError(f"{name}: jobs did not complete: {bad}")
        records = sum(j.success_count for j in found)
        expected = sum(n for _, n in specs)
        if records != expected:
            raise RuntimeError(f"{name}: stored {records:,} leads, expected {expected:,}")
        wall = (
            max(j.completed_at for j in found) - min(j.started_at for j in found)
        ).total_seconds()
        per_job_pages = [
            j.pages_fetched + math.ceil(j.snapshot_count / SNAPSHOT_PAGE) for j in found
        ]
        pages = sum(per_job_pages)
        # The requests of one job run in sequence; jobs run side by side on `workers`.
        bound = pages * latency_ms / 1000 / min(workers, len(specs))
        row = Row(
            scenario=name,
            database=self.backend,
            records=records,
            wall_s=_round(wall),
            records_per_s=round(records / wall) if wall else None,
            page_requests=pages,
            api_bound_s=_round(bound),
            overhead=_round(wall / bound) if bound else None,
            worker_peak_rss_mb=rss.peak_mb,
        )
        return row, found

    def _timed_step(self, name: str, step: Callable[[], None]) -> None:
        started = time.monotonic()
        step()
        print(
            f"bench: {self.backend} {name} took {time.monotonic() - started:.0f} s",
            file=sys.stderr,
        )

    def scenario_a(self) -> None:
        states, n = self.sizes.zero_latency
        row, found = self.run_import(f"a. import {n:,}, 0 ms", [(states, n)], 0, 1)
        row.target, row.met = "≥ 50,000 rec/s", _yes(row.records_per_s >= 50_000)
        self.rows.append(row)
        self.rss_small = row.worker_peak_rss_mb
        self.biggest_job = found[0].job_id

    def scenario_c(self) -> None:
        if self.sizes.million is None:
            return
        if self.rss_small is None:
            print("bench: c compares with a's RSS: run a too; skipped", file=sys.stderr)
            return
        states, n = self.sizes.million
        row, found = self.run_import(f"c. import {n:,}, 0 ms", [(states, n)], 0, 1)
        growth = row.worker_peak_rss_mb - self.rss_small
        row.target = "RSS < 200 MB, no growth vs 100k"
        row.met = _yes(row.worker_peak_rss_mb < 200 and growth < 10)
        row.notes = f"RSS {growth:+.1f} MB vs row a"
        self.rows.append(row)
        self.biggest_job = found[0].job_id

    # -- radar_app beside the script (issue 11) ---------------------------------------

    def run_script(self, states: list[str], records: int) -> Timed:
        """bench/script.py in this process, against the same simulator."""
        self.stack.simulator.reset()
        criteria = [{"name": "State", "value": states}]
        simulator = self._simulator_cpu()
        cpu = time.process_time()
        started = time.perf_counter()
        with closing(script.connect(self.script_database_url)) as connection:
            stored = script.import_leads(
                self.stack.simulator.url, TOKEN, criteria, records, connection
            )
        wall = time.perf_counter() - started
        if stored != records:
            raise RuntimeError(f"the script stored {stored:,} records, expected {records:,}")
        timed = self._timed(wall, records)
        timed.cpu_s = time.process_time() - cpu
        timed.simulator_cpu_s = self._simulator_cpu() - simulator
        return timed

    def _simulator_cpu(self) -> float:
        return cpu_seconds([self.stack.simulator.process.pid])

    def _workers_cpu(self) -> float:
        return cpu_seconds(worker.pid for worker in self.stack.workers)

    def _timed(self, wall: float, records: int) -> Timed:
        stats = self.stack.simulator.stats()
        return Timed(
            wall_s=wall,
            records=records,
            purchase_requests=stats["purchase_requests"],
            free_requests=stats["count_requests"],
            billed_records=stats["billed_records"],
        )

    def run_api_import(self, states: list[str], records: int, refresh_all: bool) -> Timed:
        """A job created through the API, timed from its POST until a GET answers
        COMPLETED; checks the counts a user would check."""
        self.stack.wait_workers_idle()
        self.stack.simulator.reset()
        jobs_url = f"{self.stack.web_url}/api/batch-jobs"
        body = {
            "name": f"bench {'+'.join(states)} {records:,}",
            "criteria": [{"name": "State", "value": states}],
            "max_records": records,
            "refresh_all": refresh_all,
        }
        cpu, simulator = self._workers_cpu(), self._simulator_cpu()
        started = time.perf_counter()
        created = self.api.post(jobs_url, json=body, timeout=30)
        if created.status_code != 201:
            raise RuntimeError(f"POST {jobs_url}: HTTP {created.status_code} {created.text}")
        job = self._await_done(created.json()["id"], started + 3600)
        wall = time.perf_counter() - started
        bought = records if refresh_all else 0
        if (job["status"], job["success_count"], job["purchased_count"]) != (
            "COMPLETED", records, bought
        ):  # fmt: skip
            raise RuntimeError(
                f"job {job['id']}: {job['status']}, {job['success_count']:,} leads, "
                f"{job['purchased_count']:,} bought; expected COMPLETED, {records:,} leads, "
                f"{bought:,} bought ({job['error_details']})"
            )
        timed = self._timed(wall, records)
        timed.job_s = job["duration_seconds"]
        # The horse is waited for once its worker is idle again: then its CPU is counted.
        self.stack.wait_workers_idle()
        timed.cpu_s = self._workers_cpu() - cpu
        timed.simulator_cpu_s = self._simulator_cpu() - simulator
        return timed

    def _await_done(self, job_id: str, deadline: float) -> dict[str, Any]:
        """The job's API answer once it is done. The job row says when to ask (cheaper
        than polling gunicorn at this rate, which would take CPU from the import)."""
        job_url = f"{self.stack.web_url}/api/batch-jobs/{job_id}"
        query = sa.select(BatchJob.status).where(BatchJob.job_id == job_id)
        with self.app.app_context(), db.engine.connect() as connection:
            while True:
                status = connection.scalar(query)
                connection.rollback()  # the next read sees the next commit
                if status in DONE:
                    answer: dict[str, Any] = self.api.get(job_url, timeout=30).json()
                    if answer["status"] in DONE:
                        return answer
                if time.perf_counter() > deadline:
                    raise TimeoutError(f"job {job_id} still {status}")
                time.sleep(0.01)

    def warm_up_api(self) -> None:
        """One small import through the API first: gunicorn's workers and the first
        request's imports are warm in production, and must not count as the first row's."""
        self.stack.simulator.configure(latency_ms=0)
        self.run_api_import(["ID"], 400, refresh_all=True)
        for _ in range(4):
            self.api.get(f"{self.stack.web_url}/api/batch-jobs", timeout=30).raise_for_status()

    def side_by_side(self, states: list[str], n: int, refresh_all: bool) -> tuple[Timed, Timed]:
        """(radar_app, the script) on the same search: the script, then radar_app, again
        `compare_runs` times; each side's fastest run."""
        ours: list[Timed] = []
        peers: list[Timed] = []
        for _ in range(self.sizes.compare_runs):
            peers.append(self.run_script(states, n))
            ours.append(self.run_api_import(states, n, refresh_all=refresh_all))
        return min(ours, key=lambda t: t.wall_s), min(peers, key=lambda t: t.wall_s)

    def compare_import(self, latency_ms: int, concurrency: str) -> None:
        """radar_app beside the script on the same search at the same latency."""
        states, n = self.sizes.compare
        self.stack.simulator.configure(latency_ms=latency_ms)
        ours, peer = self.side_by_side(states, n, refresh_all=True)
        name = f"import {n:,}, {latency_ms} ms, concurrency {concurrency}"
        if latency_ms == 0:
            ratio = ours.records_per_s / peer.records_per_s
            row = Comparison(
                scenario=f"g. {name}",
                database=self.backend,
                records=n,
                measure="rec/s",
                radar_app=round(ours.records_per_s),
                peer=round(peer.records_per_s),
                ratio=_round(ratio),
                target="≥ 1.0× (goal 1.5×)",
                met=_yes(ratio >= 1.0),
                notes=(
                    f"goal 1.5× met: {_yes(ratio >= 1.5)}; "
                    f"wall {ours.wall_s:.2f} s vs {peer.wall_s:.2f} s"
                ),
            )
        else:
            ratio = ours.wall_s / peer.wall_s
            limit = 0.6 if concurrency == "default" else 0.4 if concurrency == "4" else None
            row = Comparison(
                scenario=f"h. {name}",
                database=self.backend,
                records=n,
                measure="wall s",
                radar_app=_round(ours.wall_s),
                peer=_round(peer.wall_s),
                ratio=_round(ratio),
                target=f"≤ {limit}×" if limit else "",
                met=_yes(ratio <= limit) if limit else "",
                notes=f"{ours.records_per_s:,.0f} vs {peer.records_per_s:,.0f} rec/s",
            )
        row.notes += f"; the job itself {ours.job_s:.2f} s" + _cpu_note(ours, peer)
        row.radar_app_requests, row.peer_requests = ours.requests, peer.requests
        row.notes += self._billing_note(ours, n)
        row.extra = {"radar_app": vars(ours), "script": vars(peer), "latency_ms": latency_ms}
        self.comparisons.append(row)

    def compare_rerun(self, latency_ms: int) -> None:
        """The same search again once its leads are stored: radar_app reuses them (free
        snapshot only); the script buys every record again."""
        states, n = self.sizes.compare
        self.stack.simulator.configure(latency_ms=latency_ms)
        ours, peer = self.side_by_side(states, n, refresh_all=False)
        ratio = ours.wall_s / peer.wall_s
        self.comparisons.append(
            Comparison(
                scenario=f"i. re-run {n:,} all stored, {latency_ms} ms, "
                f"concurrency {self.concurrency}",
                database=self.backend,
                records=n,
                measure="wall s",
                radar_app=_round(ours.wall_s),
                peer=_round(peer.wall_s),
                ratio=_round(ratio),
                radar_app_requests=ours.requests,
                peer_requests=peer.requests,
                target="≤ 0.35×, 0 bought",
                met=_yes(ratio <= 0.35 and ours.purchase_requests == 0),
                notes=f"the script bought {peer.billed_records:,} records again; "
                f"the job itself {ours.job_s:.2f} s"
                + _cpu_note(ours, peer)
                + self._billing_note(ours, 0),
                extra={"radar_app": vars(ours), "script": vars(peer), "latency_ms": latency_ms},
            )
        )

    @staticmethod
    def _billing_note(ours: Timed, bought: int) -> str:
        # The job's own counts were checked; this is what PropertyRadar billed for them.
        if ours.billed_records == bought:
            return ""
        return f"; simulator billed {ours.billed_records:,} records for {bought:,} bought"

    def scenario_compare(self) -> None:
        """g, h, i with the settings as given; g and h again with concurrency 4."""
        lat = self.sizes.latency_ms
        self.warm_up_api()
        self.compare_import(0, self.concurrency)
        self.compare_import(lat, self.concurrency)
        self.compare_rerun(lat)
        self.stack.start_workers(1, {"PROPERTYRADAR_CONCURRENCY": "4"})
        try:
            self.compare_import(0, "4")
            self.compare_import(lat, "4")
        finally:
            self.stack.start_workers(1)

    def scenario_store(self) -> None:
        """j. radar_app's store path vs a raw DB-API executemany of the same rows."""
        _states, n = self.sizes.compare
        name = f"j. store path {n:,} vs raw executemany"
        result = storepath.measure(self.database_url, n)
        ratio = result["ratio"]
        self.comparisons.append(
            Comparison(
                scenario=name,
                database=self.backend,
                records=n,
                measure="rec/s",
                radar_app=result["store_path_records_per_s"],
                peer=result["raw_executemany_records_per_s"],
                ratio=ratio,
                target="≥ 0.7×",
                met=_yes(ratio >= 0.7),
                notes="400-record chunks, commit per chunk, no API (bench/storepath.py)",
                extra=result,
            )
        )

    # -- export --------------------------------------------------------------------

    def scenario_d(self, session: requests.Session) -> None:
        if self.biggest_job is None:
            print("bench: d needs a or c (a job to export); skipped", file=sys.stderr)
            return
        url = f"{self.stack.web_url}/jobs/{self.biggest_job}/leads.csv"
        web = self.stack.web
        assert web is not None
        # Warm-up: the first export imports and compiles what every later one reuses.
        with session.get(url, stream=True, timeout=600) as response:
            for _chunk in response.iter_content(1 << 20):
                break
        idle = PeakRss([web.pid])
        idle.sample()
        lines = size = 0
        with PeakRss([web.pid], interval=0.02) as rss:
            started = time.perf_counter()
            with session.get(url, stream=True, timeout=600) as response:
                response.raise_for_status()
                for chunk in response.iter_content(1 << 16):
                    lines += chunk.count(b"\n")
                    size += len(chunk)
            wall = time.perf_counter() - started
        rows = lines - 1  # the header
        self.rows.append(
            Row(
                scenario=f"d. CSV export {rows:,} rows",
                database=self.backend,
                records=rows,
                wall_s=_round(wall),
                records_per_s=round(rows / wall),
                web_peak_rss_mb=rss.peak_mb,
                target="≥ 100,000 rows/s, flat RSS",
                met=_yes(rows / wall >= 100_000 and rss.peak - idle.peak < 20 * 2**20),
                notes=f"web RSS before {idle.peak_mb} MB; {size / 2**20:.0f} MB of CSV",
            )
        )

    # -- pages under load ----------------------------------------------------------

    def fill_jobs_table(self) -> None:
        """`table_jobs` finished jobs for the bench user, spread over the last 30 days,
        each with what a finished job leaves: its claim and completion in the state
        history, and three billed purchases in the ledger (the charts and the audit page
        read them)."""
        now = utcnow()
        rows = [
            {
                "job_id": uuid.uuid4().hex,
                "name": f"history {i}",
                "status": JobStatus.COMPLETED,
                "criteria": [{"name": "State", "value": ["OR"]}],
                "max_records": 1000,
                "total_records": 1000,
                "processed_records": 1000,
                "success_count": 1000,
                "pages_fetched": 3,
                "phase": "PURCHASE",
                "created_by": self.user_id,
                "created_at": now - timedelta(minutes=5 + i * 4),
                "updated_at": now - timedelta(minutes=4 + i * 4),
                "started_at": now - timedelta(minutes=5 + i * 4),
                "completed_at": now - timedelta(minutes=4 + i * 4),
            }
            for i in range(self.sizes.table_jobs)
        ]
        with self.ctx():
            db.session.execute(sa.insert(BatchJob.__table__), rows)
            found = db.session.execute(
                sa.select(BatchJob.job_id, BatchJob.id).where(
                    BatchJob.job_id.in_([row["job_id"] for row in rows])
                )
            )
            ids = {job_id: row_id for job_id, row_id in found}
            transitions, purchases = [], []
            for row in rows:
                job = ids[row["job_id"]]
                for at, source, to, event in (
                    (row["started_at"], JobStatus.PENDING, JobStatus.PROCESSING, "claim"),
                    (row["completed_at"], JobStatus.PROCESSING, JobStatus.COMPLETED, "complete"),
                ):
                    transitions.append({"batch_job_id": job, "created_at": at,
                                        "from_status": source, "to_status": to, "event": event,
                                        "actor": "worker", "reason": ""})  # fmt: skip
                for page, count in enumerate((400, 400, 200)):
                    purchases.append({"batch_job_id": job, "user_id": self.user_id,
                                      "created_at": row["started_at"] + timedelta(seconds=page),
                                      "page": page, "outcome": LedgerEntry.BILLED,
                                      "requested": count, "result_count": count,
                                      "total_cost": count * 0.01})  # fmt: skip
            db.session.execute(sa.insert(JobTransition.__table__), transitions)
            db.session.execute(sa.insert(LedgerEntry.__table__), purchases)
            db.session.commit()
            if db.engine.dialect.name == "postgresql":
                # A month of jobs arrives here in one transaction; in a real database it
                # arrived over the month, and autovacuum's ANALYZE kept the planner's
                # statistics current. Without them the planner took a user's 10,000 jobs
                # for 50 and sorted them all for each Jobs page (9.7 ms idle, not 0.4).
                # Committed: ANALYZE in a transaction that rolls back leaves no statistics
                # (until 6c09ca2 it did, and autovacuum caught up only during the run).
                with db.engine.begin() as conn:
                    conn.execute(sa.text("ANALYZE"))

    def scenario_e(self, session: requests.Session) -> None:
        self.fill_jobs_table()
        lat = self.sizes.latency_ms
        self.stack.simulator.configure(latency_ms=lat)
        self.stack.start_workers(4)
        # Big enough to still be running when the pollers stop; cancelled afterwards.
        ids = self.create_jobs([(["CA"], 0)] * 4)
        deadline = time.monotonic() + 60
        while not all(j.status == "PROCESSING" for j in self.jobs(ids)):
            if time.monotonic() > deadline:
                raise TimeoutError("the 4 jobs did not start")
            time.sleep(0.1)
        public = [j.job_id for j in self.jobs(ids)]
        web = self.stack.web
        assert web is not None
        week_ago = (utcnow() - timedelta(days=7)).date().isoformat()
        targets = {
            "Jobs page": [f"/jobs?page={p}" for p in (1, 2, 3)],
            "job page": [f"/jobs/{j}" for j in public],
            "progress fragment": [f"/jobs/{j}/progress" for j in public],
            # Issue 13: the searches an operator bookmarks, the status counts that poll
            # beside them, and the charts page.
            "Jobs search": [
                "/jobs?q=history+12",
                "/jobs?q=OR&status=COMPLETED&page=2",
                f"/jobs?created_from={week_ago}&status=COMPLETED",
            ],
            "status counts": ["/jobs/counts", "/jobs/counts?q=history+12"],
            "dashboard": ["/dashboard"],
        }
        with PeakRss([web.pid]) as rss:
            # htmx's pace: every poller asks again 2 s after its last answer.
            timings, errors = poll(
                self.stack.web_url, session.cookies, targets, self.sizes.pollers,
                self.sizes.poll_seconds, pause=2.0,
            )  # fmt: skip
            # Saturation: the same pollers with no pause at all (closed loop).
            flood, flood_errors = poll(
                self.stack.web_url, session.cookies, targets, self.sizes.pollers,
                self.sizes.poll_seconds / 2, pause=0.0,
            )  # fmt: skip
        running = sum(j.status == "PROCESSING" for j in self.jobs(ids))
        with self.ctx():
            for job in db.session.scalars(sa.select(BatchJob).where(BatchJob.id.in_(ids))):
                try:
                    batches.request_cancel(db.session, get_queue(), job)
                except batches.InvalidTransition:
                    pass  # it finished while the pollers ran: nothing to cancel
        self.wait(ids, timeout=120)
        context = (
            f"{self.sizes.pollers} pollers, {self.sizes.table_jobs:,} jobs in the table, "
            f"{running} importing at the end"
        )
        for name, samples in timings.items():
            self._latency_row(f"e. {name} (poll every 2 s)", samples, rss, errors, context)
        merged = [ms for samples in flood.values() for ms in samples]
        self._latency_row(
            "e. all pages, no pause (saturation)", merged, rss, flood_errors, context, target=""
        )

    def _latency_row(
        self, name: str, samples: list[float], rss: PeakRss, errors: Counter[str], context: str,
        target: str = "p95 < 100 ms",
    ) -> None:  # fmt: skip
        p50, p95, p99 = _percentiles(samples)
        self.rows.append(
            Row(
                scenario=name,
                database=self.backend,
                records=len(samples),
                web_peak_rss_mb=rss.peak_mb,
                p50_ms=p50,
                p95_ms=p95,
                p99_ms=p99,
                target=target,
                met=_yes(p95 < 100) if target else "",
                notes=f"records = requests; {_errors(errors)}; {context}",
            )
        )

    # -- scaling -------------------------------------------------------------------

    def scenario_f(self) -> None:
        n, lat = self.sizes.parallel_records, self.sizes.latency_ms
        specs = [(["CA"], n), (["TX"], n), (["FL"], n), (["OR"], n)]
        results = {}
        for workers in (1, 4):
            self.stack.start_workers(workers)
            row, _ = self.run_import(
                f"f. 4 jobs × {n:,}, {lat} ms, {workers} worker{'s' if workers > 1 else ''}",
                specs,
                lat,
                workers,
            )
            results[workers] = row
            self.rows.append(row)
        speedup = results[4].records_per_s / results[1].records_per_s
        results[4].target = "≥ 3.5 × 1 worker"
        results[4].met = _yes(speedup >= 3.5)
        results[4].notes = f"speed-up {speedup:.2f}×"

    # -- the leads browser (issue 12) --------------------------------------------------

    def user_leads(self) -> int:
        with self.ctx():
            return int(
                db.session.scalar(
                    sa.select(sa.func.count(sa.distinct(JobProperty.property_id)))
                    .join(BatchJob, BatchJob.id == JobProperty.batch_job_id)
                    .where(BatchJob.created_by == self.user_id)
                )
                or 0
            )

    def store_leads(self, n: int) -> None:
        """`n` more leads for the bench user, as ten finished jobs stored through the
        importer's store path, from the simulator's dataset (records the user does not
        have yet), seen over the last 90 days."""
        dataset = get_dataset(max(1.0, (n + 1_000_000) / 100_000))
        with self.ctx():
            known = db.session.scalar(sa.select(sa.func.count()).select_from(Property)) or 0
            jobs = []
            for k in range(10):
                job = BatchJob(job_id=uuid.uuid4().hex, name=f"browser {k + 1}", criteria=[],
                               created_by=self.user_id, status=JobStatus.COMPLETED)  # fmt: skip
                db.session.add(job)
                jobs.append(job)
            db.session.commit()
            start_at = utcnow() - timedelta(days=90)
            per_job = -(-n // len(jobs))
            for offset in range(0, n, SNAPSHOT_PAGE):
                count = min(SNAPSHOT_PAGE, n - offset)
                records = [dataset.record(known + offset + i) for i in range(count)]
                page = Page(records, count, n, None, None, offset % per_job, count)
                seen = start_at + timedelta(days=90 * offset / n)
                store.store_page(db.session, jobs[offset // per_job].id, page, seen)
                db.session.commit()

    def scenario_k(self, session: requests.Session) -> None:
        """k. The leads browser at `browser_leads` leads: a fixed mix of filters, orders
        and next pages, through gunicorn, closed loop by two clients."""
        n = self.sizes.browser_leads
        if (have := self.user_leads()) < n:
            self.store_leads(n - have)
        with self.ctx():
            # What the hourly job does (radar_app.cron_config), so the planner has them.
            leadsearch.refresh_statistics(db.session)
        # An hour later every web connection has been recycled and read them: here, a
        # new web server (SQLite reads statistics when a connection opens).
        self.stack.stop_web()
        self.stack.start_web()
        session = self.stack.login(EMAIL, PASSWORD)
        with self.ctx():
            median = db.session.scalar(
                sa.select(Property).order_by(Property.id).offset(n // 2).limit(1)
            )
            assert median is not None
            sample = {name: getattr(median, name) for name in
                      ("state", "county", "city", "zip_code", "owner_name", "address")}  # fmt: skip
        recent = (utcnow() - timedelta(days=7)).date().isoformat()
        shapes: dict[str, dict[str, str]] = {
            "no filter": {},
            "state": {"state": sample["state"]},
            "county": {"county": sample["county"]},
            "city": {"city": sample["city"]},
            "ZIP": {"zip": sample["zip_code"]},
            "owner name": {"q": (sample["owner_name"] or "a").split()[0]},
            "street address": {"q": " ".join((sample["address"] or "1").split()[:2])},
            "absentee, equity ≥ 50%": {"occupancy": "absentee", "min_equity": "50"},
            "in foreclosure": {"foreclosure": "yes"},
            "by value": {"sort": "value"},
            "state, by owner Z-A": {"state": sample["state"], "sort": "-owner"},
            "in foreclosure, by equity": {"foreclosure": "yes", "sort": "equity"},
            "value ≥ $1M, by value": {"min_value": "1000000", "sort": "value"},
            "seen this week": {"last_seen_from": recent},
            "state, owner-occupied, by address": {
                "state": sample["state"], "occupancy": "owner", "sort": "address",
            },
        }  # fmt: skip
        base = self.stack.web_url
        targets: dict[str, list[str]] = {}
        for name, args in shapes.items():
            query = urlencode(args)
            first = session.get(f"{base}/api/leads?{query}", timeout=60).json()
            paths = [f"/leads?{query}", f"/api/leads?{query}"]
            if first.get("next_cursor"):
                paths.append(f"/api/leads?{urlencode({**args, 'after': first['next_cursor']})}")
            targets[name] = paths
        web = self.stack.web
        assert web is not None
        with PeakRss([web.pid]) as rss:
            timings, errors = poll(base, session.cookies, targets, 2, self.sizes.poll_seconds, 0)
        merged = [ms for samples in timings.values() for ms in samples]
        slow = sorted(
            ((_percentiles(samples)[1], name) for name, samples in timings.items() if samples),
            reverse=True,
        )
        worst = ", ".join(f"{name} {p95:.0f}" for p95, name in slow[:4])
        self._latency_row(
            f"k. leads browser, {max(n, have):,} leads (page, API, next page)",
            merged, rss, errors,
            f"{len(shapes)} filter/order shapes, 2 clients closed loop; slowest p95 ms: {worst}",
        )  # fmt: skip

    # -- all -----------------------------------------------------------------------

    def run(self) -> list[Row]:
        """The scenarios in `only` (default: all) in order; rows and comparisons fill in
        as they are measured."""
        self.prepare()
        self.stack.start_web()
        self.stack.start_workers(1)
        steps: list[tuple[str, Callable[[], None]]] = [
            ("a", self.scenario_a),
            ("g", self.scenario_compare),  # g, h and i
            ("j", self.scenario_store),
            ("c", self.scenario_c),
            ("d", lambda: self.scenario_d(self.stack.login(EMAIL, PASSWORD))),
            ("e", lambda: self.scenario_e(self.stack.login(EMAIL, PASSWORD))),
            ("f", self.scenario_f),
            ("k", lambda: self.scenario_k(self.stack.login(EMAIL, PASSWORD))),
        ]
        try:
            for name, step in steps:
                if self.only is None or name in self.only:
                    self._timed_step(name, step)
        finally:
            self.stack.stop_workers()
            self.stack.stop_web()
            with self.app.app_context():
                db.engine.dispose()
        return self.rows


def _cpu_note(ours: Timed, peer: Timed) -> str:
    """Where the CPU went, each side beside the simulator's share: on 2 cores the three
    compete, and what the importer itself spends is what it can save."""
    if ours.cpu_s is None or peer.cpu_s is None:
        return ""
    return (
        f"; CPU s: radar_app workers {ours.cpu_s:.2f} + simulator {ours.simulator_cpu_s:.2f}, "
        f"script {peer.cpu_s:.2f} + simulator {peer.simulator_cpu_s:.2f}"
    )


def _yes(ok: bool) -> str:
    return "yes" if ok else "NO"


def _percentiles(samples: list[float]) -> tuple[float, float, float]:
    if len(samples) < 2:
        value = round(samples[0], 1) if samples else float("nan")
        return value, value, value
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    return round(cuts[49], 1), round(cuts[94], 1), round(cuts[98], 1)


# Targets that htmx asks for (with its header), not pages a person opens.
HTMX_FRAGMENTS = ("progress fragment", "status counts")


def _errors(errors: Counter[str]) -> str:
    """ "0 errors", or "3 errors (path 503 ×2, path ReadTimeout ×1)"."""
    if not errors:
        return "0 errors"
    each = ", ".join(f"{what} ×{n}" for what, n in errors.most_common())
    return f"{errors.total()} errors ({each})"


def poll(
    base_url: str,
    cookies: Any,
    targets: dict[str, list[str]],
    pollers: int,
    seconds: float,
    pause: float,
) -> tuple[dict[str, list[float]], Counter[str]]:
    """`pollers` threads, each cycling through every target, waiting `pause` seconds after
    each answer (htmx polls every 2 s; 0 = closed-loop saturation). Milliseconds per target,
    and the failures by path and what went wrong; the first round is a warm-up and not
    counted."""
    timings: dict[str, list[float]] = {name: [] for name in targets}
    errors: Counter[str] = Counter()
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds
    plan = [(name, path) for name, paths in targets.items() for path in paths]

    def run(offset: int) -> None:
        http = requests.Session()
        http.cookies.update(cookies)
        i = offset
        time.sleep(pause * offset / pollers)  # spread the pollers over the interval
        while time.monotonic() < stop_at:
            name, path = plan[i % len(plan)]
            i += 1
            headers = {"HX-Request": "true"} if name in HTMX_FRAGMENTS else {}
            started = time.perf_counter()
            try:
                status = http.get(base_url + path, headers=headers, timeout=30).status_code
                # 286: a fragment telling htmx to stop polling (nothing counted is active).
                failure = None if status in (200, 286) else str(status)
            except requests.RequestException as exc:
                failure = type(exc).__name__
            elapsed = (time.perf_counter() - started) * 1000
            with lock:
                if failure is not None:
                    errors[f"{path.split('?')[0]} {failure}"] += 1
                elif i > offset + 1:
                    timings[name].append(elapsed)
            if pause:
                time.sleep(pause)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(pollers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return timings, errors
