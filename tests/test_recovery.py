"""Crash recovery, lost queue entries and one-job-one-worker, with real worker processes."""

from __future__ import annotations

import signal
import threading
import time

import psutil
import pytest
import sqlalchemy as sa
import sqlalchemy.orm as so
from redis import Redis

from radar_app import recovery
from radar_app.batches import QueueSettings
from radar_app.extensions import db
from radar_app.importer import run_import
from radar_app.models import BatchJob, JobStatus
from radar_app.queue import get_queue, get_redis
from radar_app.services import build_client
from tests.helpers import (
    MULTNOMAH,
    OREGON,
    assert_ledger_matches_bill,
    job_row,
    stored_radar_ids,
    wait_for,
)

FAST_RECOVERY = {
    "HEARTBEAT_INTERVAL": "0.5",
    "RECOVERY_STALE_AFTER": "3",
    "RECOVERY_INTERVAL": "0.5",
    "RECOVERY_PENDING_GRACE": "1",
}


def create(api, criteria, **extra):
    response = api.post("/api/batch-jobs", json={"criteria": criteria, **extra})
    assert response.status_code == 201, response.json
    return response.json["id"]


def kill_worker_and_horse(pid: int) -> None:
    """SIGKILL a worker and its work horse, as a crash or the OOM killer would: no cleanup.
    RQ starts each horse in its own session, so killing the process group is not enough."""
    family = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    assert len(family) >= 2, "the worker has no work horse: is a job running?"
    for process in family:
        process.send_signal(signal.SIGKILL)
    psutil.wait_procs(family, timeout=10)


def finished(app, job_id):
    job = job_row(app, job_id)
    return job if not JobStatus(job.status).is_active else None


@pytest.mark.slow
def test_sigkilled_worker_job_is_requeued_and_completes_exactly(app, api, simulator, start_worker):
    simulator.configure(latency_ms=40)
    job_id = create(api, OREGON)
    doomed = start_worker(env=FAST_RECOVERY)
    wait_for(lambda: job_row(app, job_id).processed_records >= 2000, what="5 pages stored")

    kill_worker_and_horse(doomed.pid)
    doomed.wait(timeout=10)
    killed_at = time.monotonic()
    stranded = job_row(app, job_id)
    assert stranded.status == JobStatus.PROCESSING

    start_worker(env=FAST_RECOVERY)
    wait_for(lambda: job_row(app, job_id).attempts == 2, timeout=30, what="requeue")
    requeue_seconds = time.monotonic() - killed_at
    job = wait_for(lambda: finished(app, job_id), timeout=60, what="completion")

    assert job.status == JobStatus.COMPLETED
    assert requeue_seconds < 3 + 0.5 + 5  # stale_after + interval + process start-up
    ids = stored_radar_ids(app, job_id)
    assert len(ids) == len(set(ids)) == 10_000
    billed = simulator.stats()["billed_records"]
    # Only the purchases on the wire at the kill may have been bought twice (a response
    # that had arrived is in the journal and is stored from there).
    on_the_wire = 400 * app.config["PROPERTYRADAR_CONCURRENCY"]
    assert 10_000 <= billed <= 10_000 + on_the_wire
    bought_twice = [rid for rid, n in simulator.stats()["billed_radar_ids"].items() if n > 1]
    assert len(bought_twice) <= on_the_wire
    # And the ledger says what PropertyRadar billed, row by row (the kill may have landed
    # between journaling a request and sending it).
    assert_ledger_matches_bill(
        app, job.id, simulator.stats(), killed_before_sending=on_the_wire // 400
    )
    logs = api.get(f"/api/batch-jobs/{job_id}/logs?per_page=100").json["items"]
    assert any("Worker stopped responding" in entry["message"] for entry in logs)


def test_lost_queue_entry_is_reenqueued(app, api, run_worker, redis_url, simulator):
    job_id = create(api, MULTNOMAH)
    Redis.from_url(redis_url).flushdb()  # Redis restarted without persistence
    app.config["RECOVERY_PENDING_GRACE"] = 0
    run_worker()
    assert job_row(app, job_id).status == JobStatus.PENDING  # nothing to run: entry gone

    result = app.test_cli_runner().invoke(args=["jobs", "recover"])
    assert result.exit_code == 0, result.output
    assert "Re-enqueued (queue entry lost): 1" in result.output
    assert job_id in result.output

    run_worker()
    job = job_row(app, job_id)
    assert job.status == JobStatus.COMPLETED and job.success_count == 2000
    again = app.test_cli_runner().invoke(args=["jobs", "recover"])
    assert "Re-enqueued (queue entry lost): 0" in again.output


def test_queued_pending_job_is_left_alone(app, api):
    create(api, MULTNOMAH)
    app.config["RECOVERY_PENDING_GRACE"] = 0
    result = app.test_cli_runner().invoke(args=["jobs", "recover"])
    assert "Re-enqueued (queue entry lost): 0" in result.output


def test_a_replaced_run_stops_without_storing_more(app, api, run_worker, simulator):
    """One job, one worker: when recovery hands the job to a new run, the old run (a
    zombie that was only slow) must not store another page."""
    job_id = create(api, MULTNOMAH)
    with app.app_context():
        batch = db.session.scalar(sa.select(BatchJob).where(BatchJob.job_id == job_id))
        # Read here: the purchase thread below must not load an expired `batch` through
        # the run's own session (a session is not for two threads at once).
        batch_id, first_run = batch.id, batch.rq_job_id
        real_client = build_client(app.config, get_redis())
        engine = db.engine
        pages, before_takeover = [], []
        lock, taken_over = threading.Lock(), threading.Event()

        class TakenOverClient:
            on_retry = None

            def radar_ids(self, *args):
                return real_client.radar_ids(*args)

            def fetch_page(self, *args, **kwargs):
                page = real_client.fetch_page(*args, **kwargs)
                with lock:
                    pages.append(page)
                    second = len(pages) == 2
                    if not second and not taken_over.is_set():
                        before_takeover.append(page)
                if second:  # recovery decides this run is dead, mid-page
                    # On a session of its own, as the reconciler process has: this runs on
                    # a purchase thread, beside the run's own session.
                    with app.app_context(), so.Session(engine) as session:
                        stale = session.get(BatchJob, batch_id)
                        settings = QueueSettings.from_config(app.config)
                        assert recovery.requeue(session, get_queue(), settings, stale, "test")
                    taken_over.set()
                return page

        status = run_import(
            db.session, TakenOverClient(), batch_id, batch_size=400, run_id=first_run
        )
    assert status == JobStatus.PROCESSING
    # The zombie linked nothing it bought after the takeover (the second page and those
    # after it); a page that came back before the takeover was committed (purchases
    # overlap) is linked only if it was stored before, so that is a race.
    linked = set(stored_radar_ids(app, job_id))
    early = {record["RadarID"] for page in before_takeover for record in page.results}
    late = {r["RadarID"] for p in pages if p not in before_takeover for r in p.results}
    assert linked <= early and not linked & late
    assert job_row(app, job_id).status == JobStatus.PENDING

    run_worker()  # the RQ job of the old run can no longer claim it; the new one can
    job = job_row(app, job_id)
    assert job.status == JobStatus.COMPLETED
    ids = stored_radar_ids(app, job_id)
    assert len(ids) == len(set(ids)) == 2000


@pytest.mark.slow
def test_three_workers_five_jobs_exact_counts(app, api, simulator, start_worker):
    simulator.configure(latency_ms=10)
    searches = {
        "41051": 2000,
        "41067": 3500,
        "41005": 2500,
        "41039": 2000,
    }
    jobs = {
        create(api, [{"name": "County", "value": [fips]}]): count
        for fips, count in searches.items()
    }
    jobs[create(api, [{"name": "State", "value": ["ID"]}])] = 400
    for _ in range(3):
        start_worker()
    for job_id in jobs:
        wait_for(lambda job_id=job_id: finished(app, job_id), timeout=90, what=job_id)
    for job_id, expected in jobs.items():
        job = job_row(app, job_id)
        assert job.status == JobStatus.COMPLETED and job.attempts == 1
        ids = stored_radar_ids(app, job_id)
        assert len(ids) == len(set(ids)) == expected
    assert simulator.stats()["billed_records"] == sum(jobs.values())


@pytest.mark.slow
@pytest.mark.parametrize("concurrency", [1, 4], ids=lambda n: f"concurrency-{n}")
def test_redis_restart_mid_job_loses_nothing(
    app, app_config, token, simulator, start_worker, concurrency
):
    """Redis (no persistence) restarts while a worker is importing: the job row, not the
    queue, holds the progress, so the job completes with exact counts, and its ledger
    (billed + possibly billed) is what PropertyRadar billed."""
    from devstack import RedisServer
    from radar_app import create_app
    from tests.conftest import ApiClient

    redis = RedisServer().start()
    try:
        own_app = create_app({**app_config, "REDIS_URL": redis.url})
        api = ApiClient(own_app.test_client(), token)
        simulator.configure(latency_ms=40)
        response = api.post("/api/batch-jobs", json={"criteria": OREGON})
        assert response.status_code == 201
        job_id = response.json["id"]
        concurrent = {"PROPERTYRADAR_CONCURRENCY": str(concurrency)}
        start_worker(env={**FAST_RECOVERY, "REDIS_URL": redis.url, **concurrent})
        wait_for(lambda: job_row(app, job_id).processed_records >= 1200, what="3 chunks")

        redis.stop()  # everything in Redis is gone
        redis = RedisServer(redis.port).start()

        job = wait_for(lambda: finished(app, job_id), timeout=90, what="completion")
        assert job.status == JobStatus.COMPLETED
        ids = stored_radar_ids(app, job_id)
        assert len(ids) == len(set(ids)) == 10_000
        billed = simulator.stats()["billed_records"]
        # A Redis restart loses no journaled response: at most the purchases on the wire.
        assert billed <= 10_000 + 400 * concurrency
        assert_ledger_matches_bill(app, job.id, simulator.stats())
        with own_app.app_context():
            db.engine.dispose()
    finally:
        redis.stop()


@pytest.mark.slow
def test_started_but_never_claimed_job_is_requeued_and_frees_its_worker(
    app, api, simulator, start_worker, redis_url
):
    """Issue 9: a work horse hung before claiming its job left the row PENDING behind a
    "started" RQ job, which recovery did not treat as lost: the job and its (only) worker
    were stuck until RQ_JOB_TIMEOUT, 6 hours. Here the horse hangs for real (the RQ job
    under the row's id just sleeps); recovery requeues the job under a new RQ id and
    stops the hung horse, and the same single worker then runs the job."""
    from rq import Queue
    from rq.job import Job
    from rq.job import JobStatus as RQJobStatus

    job_id = create(api, MULTNOMAH)
    hung_id = job_row(app, job_id).rq_job_id
    connection = Redis.from_url(redis_url)
    Job.fetch(hung_id, connection=connection).delete()
    Queue(app.config["RQ_QUEUE"], connection=connection).enqueue(
        "time.sleep", 600, job_id=hung_id, job_timeout=3600
    )
    start_worker(env=FAST_RECOVERY)
    wait_for(
        lambda: Job.fetch(hung_id, connection=connection).get_status() == RQJobStatus.STARTED,
        what="the hung horse to start",
    )
    started_at = time.monotonic()

    job = wait_for(lambda: finished(app, job_id), timeout=30, what="the job to run after all")
    freed_after = time.monotonic() - started_at
    assert job.status == JobStatus.COMPLETED and job.attempts == 1
    assert freed_after < 3 + 0.5 + 10  # stale_after + interval + a job of 2,000 records
    assert job.rq_job_id != hung_id
    assert Job.fetch(hung_id, connection=connection).get_status() == RQJobStatus.STOPPED
    ids = stored_radar_ids(app, job_id)
    assert len(ids) == len(set(ids)) == 2000
    assert simulator.stats()["billed_records"] == 2000
    logs = api.get(f"/api/batch-jobs/{job_id}/logs?per_page=100").json["items"]
    assert any("never began it" in entry["message"] for entry in logs)
    connection.close()


def test_reconciler_outlives_a_database_outage_with_one_warning(app, redis_url, tmp_path, caplog):
    """The reconciler loop (worker.py runs it in its own process) keeps going while the
    database cannot be opened: one warning when the outage starts, one when it ends, no
    traceback."""
    import logging

    from radar_app.extensions import Base

    missing_dir = tmp_path / "not-yet"
    url = f"sqlite:///{missing_dir / 'radar.db'}"
    settings = recovery.ReconcilerSettings(
        database_url=url,
        redis_url=redis_url,
        queue_name=app.config["RQ_QUEUE"],
        queue_settings=QueueSettings.from_config(app.config),
        interval=0.05,
        stale_after=3,
        pending_grace=0,
    )
    ticks = 0

    def should_stop() -> bool:
        nonlocal ticks
        ticks += 1
        if ticks == 20:  # several failed passes in: the database comes back
            missing_dir.mkdir()
            engine = sa.create_engine(url)
            Base.metadata.create_all(engine)
            engine.dispose()
        return "running again" in caplog.text or ticks > 2000

    with caplog.at_level(logging.WARNING, logger="radar_app.recovery"):
        recovery.reconcile_forever(settings, should_stop)
    records = [r for r in caplog.records if r.name == "radar_app.recovery"]
    assert [r.getMessage().split(":")[0] for r in records] == [
        "reconciliation skipped, retrying every 0.05s",
        "reconciliation running again (was",
    ]
    assert "unable to open database file" in records[0].getMessage()
    assert not [r for r in records if r.exc_info]
