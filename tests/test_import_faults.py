"""Issue 9: what a bought record survives, and jobs that come up short say so.

Each test injects one fault (the simulator's fault modes, a real lock from another
process, concurrent real workers) and checks what the user sees, and that the
simulator's billed records equal what was stored: nothing lost, nothing bought twice.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from radar_app.extensions import db
from radar_app.importer import ImportSettings, run_import
from radar_app.models import BatchJob, BatchJobLog, JobStatus, LedgerEntry, Property, PurchaseClaim
from radar_app.propertyradar.client import PropertyRadarClient
from tests.conftest import SIM_TOKEN, ApiClient, issue_token, make_user, wait_until_listening
from tests.helpers import (
    MULTNOMAH,
    count_rows,
    job_row,
    purchase_requests,
    stored_radar_ids,
    wait_for,
)

ARIZONA = [{"name": "State", "value": ["AZ"]}]  # 8,000 simulator records
# King (3,500) and Snohomish (1,500) counties: 5,000 simulator records.
WASHINGTON_5000 = [
    {"name": "State", "value": ["WA"]},
    {"name": "County", "value": ["53033", "53053"]},
]
# Words that only appear in SQL text or SQLAlchemy's error rendering.
SQL_MARKERS = ("SELECT", "INSERT", "UPDATE ", "[SQL", "parameters", "sqlite3", "psycopg")


def create(api: ApiClient, criteria: list[dict[str, Any]], **extra: Any) -> str:
    response = api.post("/api/batch-jobs", json={"criteria": criteria, **extra})
    assert response.status_code == 201, response.json
    return response.json["id"]


def job_json(api: ApiClient, job_id: str) -> dict[str, Any]:
    response = api.get(f"/api/batch-jobs/{job_id}")
    assert response.status_code == 200
    return response.json


def log_messages(app: Flask, job_id: str) -> list[str]:
    row = job_row(app, job_id)
    with app.app_context():
        return list(
            db.session.scalars(
                sa.select(BatchJobLog.message)
                .where(BatchJobLog.batch_job_id == row.id)
                .order_by(BatchJobLog.id)
            )
        )


def ledger_billed(app: Flask) -> int:
    with app.app_context():
        return int(
            db.session.scalar(
                sa.select(sa.func.coalesce(sa.func.sum(LedgerEntry.result_count), 0)).where(
                    LedgerEntry.outcome == LedgerEntry.BILLED
                )
            )
        )


def assert_billed_equals_stored(app: Flask, simulator, *job_ids: str) -> None:
    stats = simulator.stats()
    stored = {rid for job_id in job_ids for rid in stored_radar_ids(app, job_id)}
    assert stats["billed_records"] == len(stored) == count_rows(app, Property)
    assert max(stats["billed_radar_ids"].values()) == 1, "a record was bought twice"
    assert ledger_billed(app) == stats["billed_records"]


# -- 1. identical searches at the same moment ------------------------------------------


@pytest.mark.parametrize("concurrency", ["1", "4"], ids=["one-purchase-at-a-time", "four"])
def test_three_identical_searches_at_once_buy_each_record_once(
    app, app_config, client, simulator, start_worker, concurrency
):
    """3 users, 3 worker processes, the same 5,000-record search at the same moment:
    before, 14,200 records were billed for 5,000 distinct (15,000 in the issue); now
    5,000 are billed, and every job has all 5,000 leads. With purchases in flight, a run
    never waits for another job (two could wait for each other): it stores them first."""
    simulator.configure(latency_ms=250)  # purchases overlap across the three workers
    apis = []
    for n in range(3):
        email = f"investor{n}@example.com"
        make_user(app, email)
        apis.append(ApiClient(client, issue_token(app, email)))
    for _ in range(3):
        last = start_worker(
            env={
                "PURCHASE_CLAIM_POLL_INTERVAL": "0.05",
                "PROPERTYRADAR_CONCURRENCY": concurrency,
            }
        )
    # All three listen before the jobs exist, so they start together: on a busy machine a
    # worker still starting took its job after the first job had bought everything.
    wait_until_listening(app_config["REDIS_URL"], app_config["RQ_QUEUE"], last, workers=3)
    job_ids = [create(api, WASHINGTON_5000, name="King + Snohomish") for api in apis]

    def finished() -> list[BatchJob] | None:
        jobs = [job_row(app, job_id) for job_id in job_ids]
        return None if any(job.is_active for job in jobs) else jobs

    jobs = wait_for(finished, timeout=180, what="three jobs to finish")
    assert [j.status for j in jobs] == [JobStatus.COMPLETED] * 3
    for api, job in zip(apis, jobs, strict=True):
        body = job_json(api, job.job_id)
        assert body["success_count"] == 5000 and body["warning"] is None
        ids = stored_radar_ids(app, job.job_id)
        assert len(ids) == len(set(ids)) == 5000
    assert sum(j.purchased_count for j in jobs) == 5000
    assert sum(j.reused_count for j in jobs) == 10_000
    stats = simulator.stats()
    assert stats["billed_records"] == 5000
    assert len(stats["billed_radar_ids"]) == 5000
    assert max(stats["billed_radar_ids"].values()) == 1
    assert count_rows(app, PurchaseClaim) == 0, "claims are released when stored"
    # The jobs did run at the same time: at least one waited for another's purchase.
    waits = [m for j in jobs for m in log_messages(app, j.job_id) if "another job is buying" in m]
    assert waits


def test_a_claim_left_by_a_stopped_job_is_taken_over(app, api, run_worker, simulator):
    """A failed job's claim does not block anyone: the next job buys the record."""
    first = create(api, MULTNOMAH)
    assert api.post(f"/api/batch-jobs/{first}/cancel").json["status"] == "CANCELLED"
    second = create(api, MULTNOMAH)
    some_id = simulator.dataset.radar_id(int(simulator.dataset.match(MULTNOMAH)[0]))
    with app.app_context():
        db.session.add(PurchaseClaim(radar_id=some_id, batch_job_id=job_row(app, first).id))
        db.session.commit()
    run_worker()
    job = job_row(app, second)
    assert job.status == JobStatus.COMPLETED and job.success_count == 2000
    assert some_id in stored_radar_ids(app, second)
    assert_billed_equals_stored(app, simulator, second)


# -- 2. a value longer than its column -------------------------------------------------


def test_oversize_values_are_stored_in_full(app, api, run_worker, simulator):
    """On PostgreSQL a 1,000-character APN (varchar(64)) failed every chunk: 1,200
    billed, 0 stored. Now every record is stored, the full value in column and raw."""
    simulator.configure(oversize_field="APN", oversize_length=1000)
    job_id = create(api, MULTNOMAH)
    run_worker()
    body = job_json(api, job_id)
    assert body["status"] == "COMPLETED", body["error_details"]
    assert body["success_count"] == body["purchased_count"] == 2000
    with app.app_context():
        apn, raw = db.session.execute(sa.select(Property.apn, Property.raw).limit(1)).one()
    assert len(apn) == 1000 and raw["APN"] == apn
    assert_billed_equals_stored(app, simulator, job_id)


# -- 3. the database locked by another process -----------------------------------------

LOCKER = textwrap.dedent(
    """
    import sys, time
    url, job_id, after, hold = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    if url.startswith("sqlite"):
        import sqlite3
        conn = sqlite3.connect(url.split("///", 1)[1], isolation_level=None)
        def processed():
            row = conn.execute(
                "SELECT processed_records FROM batch_jobs WHERE job_id = ?", (job_id,)
            ).fetchone()
            return row[0] if row else 0
        lock = "BEGIN IMMEDIATE"  # the write lock: every other writer waits
    else:
        import psycopg
        conn = psycopg.connect(url.replace("postgresql+psycopg", "postgresql"), autocommit=True)
        def processed():
            row = conn.execute(
                "SELECT processed_records FROM batch_jobs WHERE job_id = %s", (job_id,)
            ).fetchone()
            return row[0] if row else 0
        lock = "BEGIN; LOCK TABLE batch_jobs IN EXCLUSIVE MODE"  # writes wait, reads go on
    while processed() < after:
        time.sleep(0.01)
    for statement in lock.split("; "):
        conn.execute(statement)
    print("locked", flush=True)
    time.sleep(hold)
    conn.execute("ROLLBACK")
    print("released", flush=True)
    """
)


def test_a_write_lock_held_by_another_process_is_waited_out(
    app, api, simulator, start_worker, app_config, tmp_path
):
    """SQLite: another process holding the write lock longer than the busy timeout failed
    the job (and a retry re-bought a chunk). Now the bought chunk is kept in memory and
    stored once the lock is gone: the job completes by itself, billed == stored.
    On PostgreSQL the same lock is a table lock and the worker's lock_timeout is short."""
    simulator.configure(latency_ms=100)
    url = app_config["SQLALCHEMY_DATABASE_URI"]
    worker_url = url if url.startswith("sqlite") else f"{url}?options=-c%20lock_timeout%3D300"
    job_id = create(api, MULTNOMAH)
    locker = subprocess.Popen(
        [sys.executable, "-c", LOCKER, url, job_id, "400", "3"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        start_worker(env={"SQLITE_BUSY_TIMEOUT_MS": "300", "DATABASE_URL": worker_url})
        assert locker.stdout.readline().strip() == "locked"
        assert locker.stdout.readline().strip() == "released"
        assert locker.wait(timeout=10) == 0
    finally:
        if locker.poll() is None:
            locker.kill()
            locker.wait()
        locker.stdout.close()
    job = wait_for(
        lambda: not (j := job_row(app, job_id)).is_active and j, timeout=60, what="the job"
    )
    assert job.status == JobStatus.COMPLETED, job.error_details
    assert job.attempts == 1 and job.error_details is None
    assert job.success_count == 2000
    assert_billed_equals_stored(app, simulator, job_id)
    # The lock did stand in the way of a store, which waited and then went through.
    server_log = (tmp_path / "worker-1.log").read_text()
    assert "database busy or unreachable" in server_log
    assert "stored after" in server_log


def test_a_database_error_shown_to_the_user_has_no_sql(app, api, auth, run_worker, simulator):
    """The job's error used to be SQLAlchemy's text: the SQL statement and its
    parameters. Now the job page and the API say it plainly; the detail is in the log."""
    with app.app_context():
        if db.engine.dialect.name == "sqlite":
            db.session.execute(
                sa.text(
                    "CREATE TRIGGER ledger_full BEFORE INSERT ON purchase_ledger "
                    "BEGIN SELECT RAISE(ABORT, 'ledger is full'); END"
                )
            )
        else:
            db.session.execute(
                sa.text(
                    "CREATE FUNCTION ledger_full() RETURNS trigger LANGUAGE plpgsql AS "
                    "$$ BEGIN RAISE EXCEPTION 'ledger is full'; END $$"
                )
            )
            db.session.execute(
                sa.text(
                    "CREATE TRIGGER ledger_full BEFORE INSERT ON purchase_ledger "
                    "FOR EACH ROW EXECUTE FUNCTION ledger_full()"
                )
            )
        db.session.commit()
    job_id = create(api, MULTNOMAH)
    run_worker()
    body = job_json(api, job_id)
    assert body["status"] == "FAILED"
    assert body["error_details"] == (
        "A database error stopped the import (details are in the server log)"
    )
    auth.login()
    page = api.client.get(f"/jobs/{job_id}").text
    assert "A database error stopped the import" in page
    shown = [body["error_details"], page, *log_messages(app, job_id)]
    for marker in SQL_MARKERS:
        assert not [text for text in shown if marker in text], marker


# -- 4. totals that shrink, a capped Limit ---------------------------------------------


def test_a_total_that_shrinks_while_paging_is_reported(app, api, auth, run_worker, simulator):
    """8,000 matches at the start, 3,000 from the second page on: the job used to complete
    3,000/3,000 with no word. It still stores the 3,000 there are, and says so."""
    simulator.configure(total_after_first=3000)
    job_id = create(api, ARIZONA)
    run_worker()
    body = job_json(api, job_id)
    assert body["status"] == "COMPLETED"
    assert body["success_count"] == 3000
    assert body["warning"].startswith(
        "The search matched 8,000 records when the job started, but 3,000 leads were stored"
    )
    assert "listed 3,000 RadarIDs" in body["warning"]
    auth.login()
    page = api.client.get(f"/jobs/{job_id}").text
    assert 'id="job-warning"' in page and "The search matched 8,000 records" in page
    assert_billed_equals_stored(app, simulator, job_id)


def test_a_silently_capped_limit_still_gets_every_record(app, api, run_worker, simulator):
    """The API returning at most 300 rows whatever Limit says: the snapshot used to stop
    after the first short page (500 of 8,000), and a capped purchase called the rest of
    its chunk vanished. Now all 8,000 are listed and bought, each exactly once."""
    simulator.configure(limit_cap=300)
    job_id = create(api, ARIZONA)
    run_worker()
    body = job_json(api, job_id)
    assert body["status"] == "COMPLETED"
    assert (body["snapshot_count"], body["success_count"], body["vanished_count"]) == (
        8000,
        8000,
        0,
    )
    assert body["warning"] is None
    # Every 400-record chunk took two requests: 300, then the 100 left.
    purchases = purchase_requests(simulator.stats())
    assert len(purchases) == 40
    assert_billed_equals_stored(app, simulator, job_id)


# -- 5. records without a RadarID ------------------------------------------------------


def test_records_bought_without_a_radar_id_are_reported_as_bought(app, api, run_worker, simulator):
    """Every 25th bought record without its RadarID (16 per chunk of 400, 80 in all): they
    used to be logged "not bought" and counted as both vanished and errors."""
    simulator.configure(missing_radar_id_every=25)
    job_id = create(api, MULTNOMAH)
    run_worker()
    body = job_json(api, job_id)
    job = job_row(app, job_id)
    assert body["status"] == "COMPLETED"
    assert (job.purchased_count, job.unidentified_count) == (1920, 80)
    assert (job.vanished_count, job.error_count) == (0, 0)
    assert simulator.stats()["billed_records"] == 2000 == ledger_billed(app)
    assert body["warning"] == (
        "The search matched 2,000 records when the job started, but 1,920 leads were "
        "stored: 80 were bought without a RadarID (billed, not stored)"
    )
    messages = log_messages(app, job_id)
    assert "Chunk 1: 400 records, 384 bought, 16 bought without a RadarID" in "\n".join(messages)
    assert not [m for m in messages if "no longer match" in m or "not bought" in m]


# -- 6. custom fields ------------------------------------------------------------------


def test_stored_leads_lacking_the_fields_asked_for_are_bought(app, api, run_worker, simulator):
    """Leads bought with the essentials were reused for a job asking for AnnualTaxes
    (bought 0, no AnnualTaxes anywhere). Now they are bought with it, and said why."""
    essentials = create(api, MULTNOMAH)
    run_worker()
    taxes = create(api, MULTNOMAH, fields=["AnnualTaxes"])
    run_worker()
    body = job_json(api, taxes)
    assert body["status"] == "COMPLETED"
    assert (body["purchased_count"], body["reused_count"]) == (2000, 0)
    with app.app_context():
        raws = db.session.scalars(sa.select(Property.raw)).all()
    assert len(raws) == 2000 and all("AnnualTaxes" in raw for raw in raws)
    assert "400 stored leads lacked fields this job asks for" in "\n".join(log_messages(app, taxes))
    # Once stored with AnnualTaxes they are reused, by either kind of job.
    again = create(api, MULTNOMAH, fields=["AnnualTaxes"])
    run_worker()
    assert job_json(api, again)["reused_count"] == 2000
    assert job_row(app, essentials).purchased_count == 2000
    assert simulator.stats()["billed_records"] == 4000


# -- 7. chunk numbers ------------------------------------------------------------------


def test_chunk_numbers_advance_when_everything_is_reused_and_on_resume(
    app, api, run_worker, simulator
):
    """A job that reused everything logged "Chunk 1: 400 records, 400 reused" for every
    chunk. Now chunks are numbered 1..5 by their place in the search, in every run."""
    create(api, MULTNOMAH)
    run_worker()
    reused = create(api, MULTNOMAH)
    run_worker()
    chunks = [m.split(":")[0] for m in log_messages(app, reused) if m.startswith("Chunk ")]
    assert chunks == [f"Chunk {n}" for n in range(1, 6)]

    simulator.reset()
    simulator.configure(scripted_faults=[{"kind": "503", "purchase": 1, "after": 6, "times": -1}])
    resumed = create(api, ARIZONA)
    run_worker()
    assert job_row(app, resumed).status == JobStatus.FAILED
    simulator.configure(scripted_faults=[])
    assert api.post(f"/api/batch-jobs/{resumed}/retry").status_code == 202
    run_worker()
    messages = log_messages(app, resumed)
    retry_at = next(i for i, m in enumerate(messages) if m.startswith("Attempt 2 started"))

    def numbers(lines: list[str]) -> list[int]:
        return [int(m.split(":")[0].split()[1]) for m in lines if m.startswith("Chunk ")]

    # Chunk N starts at record (N-1)*400+1 in every run, so the retry starts with the
    # number of the first chunk the first run failed to store, and names no chunk past
    # the search's 20 (purchases in flight finish out of order: the log is in
    # completion order).
    first_run = [m for m in messages[:retry_at] if m.startswith("Chunk ")]
    failed = [n for n, m in zip(numbers(first_run), first_run, strict=True) if "failed" in m]
    retried = numbers(messages[retry_at:])
    assert min(retried) == min(failed) and max(retried) <= 20
    assert job_row(app, resumed).success_count == 8000


# -- a run that loses its job while buying ----------------------------------------------


class RequeuedDuringFirstPurchase(PropertyRadarClient):
    """The real client, but while its first purchase is on the wire the job is requeued
    under a new RQ id, as recovery does when it believes the worker is gone (e.g. its
    heartbeat could not be written while another process locked the database)."""

    def __init__(self, *args: Any, engine: sa.Engine, batch_id: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.engine, self.batch_id, self.requeued = engine, batch_id, False

    def fetch_page(self, *args: Any, **kwargs: Any):
        page = super().fetch_page(*args, **kwargs)
        if not self.requeued:
            self.requeued = True
            with self.engine.begin() as conn:
                conn.execute(
                    sa.update(BatchJob)
                    .where(BatchJob.id == self.batch_id)
                    .values(status=JobStatus.PENDING, rq_job_id="requeued-run")
                )
        return page


def test_a_chunk_bought_by_a_run_that_lost_its_job_is_not_bought_again(
    app, api, simulator, simulator_url
):
    """The bought chunk is stored for reuse even though this run may no longer write to
    the job: the run that owns the job now reuses those 400 records instead of buying."""
    job_id = create(api, MULTNOMAH)
    batch_id = job_row(app, job_id).id
    with app.app_context():
        lost = RequeuedDuringFirstPurchase(
            SIM_TOKEN, simulator_url, engine=db.engine, batch_id=batch_id
        )
        # One purchase on the wire at a time: the run that lost bought the chunk it was
        # storing, and maybe the next one, sent while it stored.
        one_at_a_time = ImportSettings(concurrency=1)
        assert run_import(db.session, lost, batch_id, settings=one_at_a_time) == (
            JobStatus.PROCESSING
        )
        db.session.remove()
        owner = PropertyRadarClient(SIM_TOKEN, simulator_url)
        assert run_import(db.session, owner, batch_id, run_id="requeued-run") == "COMPLETED"
    job = job_row(app, job_id)
    assert job.success_count == job.reused_count + job.purchased_count == 2000
    assert job.reused_count in (400, 800)
    assert_billed_equals_stored(app, simulator, job_id)
    assert "were stored, so they are reused, not bought again" in "\n".join(
        log_messages(app, job_id)
    )
