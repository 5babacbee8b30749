"""The batch import end to end: API → RQ → importer → database, against the simulator."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from radar_app.extensions import db
from radar_app.importer import run_import
from radar_app.models import BatchJob, BatchJobLog, JobStatus, Property
from radar_app.propertyradar.client import PropertyRadarClient
from tests.conftest import SIM_TOKEN
from tests.helpers import (
    MULTNOMAH,
    OREGON,
    count_rows,
    job_row,
    purchase_requests,
    stored_radar_ids,
    wait_for,
)

ROOT = Path(__file__).resolve().parent.parent


def create(api, criteria, **extra):
    response = api.post("/api/batch-jobs", json={"criteria": criteria, **extra})
    assert response.status_code == 201, response.json
    return response.json["id"]


def test_ten_thousand_records_in_exactly_25_purchases(app, api, run_worker, simulator):
    job_id = create(api, OREGON, name="Oregon")
    run_worker()

    job = job_row(app, job_id)
    assert job.status == JobStatus.COMPLETED
    assert (job.total_records, job.processed_records, job.success_count) == (10_000, 10_000, 10_000)
    assert job.error_count == 0 and job.completed_at is not None
    # Time left is estimated from when buying began, after the free snapshot.
    assert job.run_started_at < job.purchase_started_at < job.completed_at
    ids = stored_radar_ids(app, job_id)
    assert len(ids) == len(set(ids)) == 10_000
    assert count_rows(app, Property) == 10_000

    stats = simulator.stats()
    purchases = purchase_requests(stats, status=None)
    assert len(purchases) == 25
    assert all(r["limit"] == 400 for r in purchases)
    assert stats["billed_records"] == 10_000
    assert len(stats["billed_radar_ids"]) == 10_000
    assert max(stats["billed_radar_ids"].values()) == 1
    # The snapshot is free: 10 RadarID-only pages of 1,000.
    snapshot = [r for r in stats["requests"] if r["purchase"] == 0]
    assert len(snapshot) == 10

    body = api.get(f"/api/batch-jobs/{job_id}").json
    assert body["progress_percent"] == 100.0
    assert body["status"] == "COMPLETED"
    with app.app_context():
        pages_logged = db.session.scalar(
            sa.select(sa.func.count()).where(BatchJobLog.page.is_not(None))
        )
    assert pages_logged == 25


def test_max_records_caps_the_purchase(app, api, run_worker, simulator):
    job_id = create(api, OREGON, max_records=1000)
    run_worker()
    job = job_row(app, job_id)
    assert job.status == JobStatus.COMPLETED and job.success_count == 1000
    limits = [r["limit"] for r in purchase_requests(simulator.stats())]
    assert limits == [400, 400, 200]
    assert simulator.stats()["billed_records"] == 1000


def test_records_without_radar_id_are_reported_as_such(app, user, requests_mock):
    ids = ["PAAAA001", "PBBBB000", "PBBBB001", "PBBBB002"]
    snapshot = {
        "results": [{"RadarID": ids[0]}, {"RadarID": ""}] + [{"RadarID": i} for i in ids[1:]],
        "resultCount": 5,
        "totalResultCount": 5,
        "totalCost": "0",
    }
    purchase = {
        "results": [{"RadarID": i, "Address": "1 Main St"} for i in ids[:3]] + [{"APN": "1"}],
        "resultCount": 4,
        "totalResultCount": 4,
        "totalCost": "4",
    }
    url = "https://pr.test/v1/properties"
    requests_mock.post(url + "?Purchase=0", json=snapshot)
    requests_mock.post(url + "?Purchase=1", json=purchase)
    with app.app_context():
        job = BatchJob(
            job_id="a" * 32, name="t", criteria=OREGON, created_by=user.id, rq_job_id="run-1"
        )
        db.session.add(job)
        db.session.commit()
        client = PropertyRadarClient("t", "https://pr.test")
        status = run_import(db.session, client, job.id, batch_size=400, run_id="run-1")
        db.session.refresh(job)
        assert status == JobStatus.COMPLETED
        # One snapshot row had no RadarID (skipped, not bought); one bought record came
        # back without one: bought and billed but not stored, and not called vanished.
        assert (job.snapshot_count, job.success_count, job.error_count) == (4, 3, 1)
        assert (job.unidentified_count, job.vanished_count, job.purchased_count) == (1, 0, 3)
        warning = db.session.scalar(
            sa.select(BatchJobLog.message).where(
                BatchJobLog.level == "WARNING", BatchJobLog.page.is_not(None)
            )
        )
    assert "1 bought without a RadarID (billed" in warning
    assert "no longer match" not in warning


def test_cancel_mid_job_keeps_stored_pages(app, api, start_worker, simulator):
    simulator.configure(latency_ms=60)
    job_id = create(api, OREGON)
    start_worker()
    wait_for(lambda: job_row(app, job_id).processed_records >= 1200, what="3 pages stored")
    response = api.post(f"/api/batch-jobs/{job_id}/cancel")
    assert response.status_code == 202
    assert response.json["cancel_requested"] is True
    job = wait_for(
        lambda: (j := job_row(app, job_id)).status != JobStatus.PROCESSING and j,
        what="the worker to notice the cancel",
    )
    assert job.status == JobStatus.CANCELLED
    assert 1200 <= job.processed_records < 10_000
    ids = stored_radar_ids(app, job_id)
    assert len(ids) == len(set(ids)) == job.success_count == job.processed_records
    # Every page that was bought is stored: at most none was left in flight unstored.
    assert simulator.stats()["billed_records"] == job.processed_records
    assert api.post(f"/api/batch-jobs/{job_id}/cancel").status_code == 409


def test_cancel_pending_job_never_runs(app, api, run_worker, simulator):
    job_id = create(api, OREGON)
    assert api.post(f"/api/batch-jobs/{job_id}/cancel").json["status"] == "CANCELLED"
    run_worker()
    assert job_row(app, job_id).status == JobStatus.CANCELLED
    assert simulator.stats()["billed_records"] == 0


def test_failed_on_page_7_resumes_at_page_7(app, api, run_worker, simulator):
    simulator.configure(scripted_faults=[{"kind": "503", "purchase": 1, "after": 6, "times": -1}])
    job_id = create(api, OREGON)
    run_worker()

    failed = job_row(app, job_id)
    assert failed.status == JobStatus.FAILED
    assert "503" in failed.error_details
    assert (failed.next_start, failed.success_count) == (2400, 2400)
    body = api.get(f"/api/batch-jobs/{job_id}").json
    assert body["error_details"] == failed.error_details

    simulator.configure(scripted_faults=[])
    simulator.reset()
    assert api.post(f"/api/batch-jobs/{job_id}/retry").status_code == 202
    run_worker()

    job = job_row(app, job_id)
    assert job.status == JobStatus.COMPLETED and job.attempts == 2
    stats = simulator.stats()
    assert len(purchase_requests(stats, status=None)) == 19, "pages 1-6 were requested again"
    # Free snapshot pages the failed run had not stored yet (purchases run beside the
    # snapshot) are fetched now; none before its checkpoint is fetched again.
    again = [r["start"] for r in stats["requests"] if r["purchase"] == 0]
    assert all(start >= failed.snapshot_next_start for start in again), "snapshot taken again"
    assert stats["billed_records"] == 10_000 - 2400
    ids = stored_radar_ids(app, job_id)
    assert len(ids) == len(set(ids)) == 10_000
    assert api.post(f"/api/batch-jobs/{job_id}/retry").status_code == 409


def test_transient_faults_are_retried_without_losing_a_lead(app, api, run_worker, simulator):
    simulator.configure(
        scripted_faults=[
            {"kind": "429", "purchase": 1, "after": 1, "times": 1},
            {"kind": "500", "purchase": 1, "after": 2, "times": 1},
            {"kind": "malformed", "purchase": 1, "after": 3, "times": 1},
        ]
    )
    job_id = create(api, MULTNOMAH)
    run_worker()
    job = job_row(app, job_id)
    assert job.status == JobStatus.COMPLETED
    ids = stored_radar_ids(app, job_id)
    assert len(ids) == len(set(ids)) == 2000


@pytest.mark.slow
def test_real_worker_process_completes_a_job(app, api, simulator, app_config):
    job_id = create(api, MULTNOMAH)
    env = {
        **os.environ,
        "SECRET_KEY": "test-secret",
        "DATABASE_URL": app_config["SQLALCHEMY_DATABASE_URI"],
        "REDIS_URL": app_config["REDIS_URL"],
        "RQ_QUEUE": app_config["RQ_QUEUE"],
        "PROPERTYRADAR_API_URL": app_config["PROPERTYRADAR_API_URL"],
        "PROPERTYRADAR_API_TOKEN": SIM_TOKEN,
    }
    result = subprocess.run(
        [sys.executable, "worker.py", "--burst"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    job = job_row(app, job_id)
    assert job.status == JobStatus.COMPLETED and job.success_count == 2000
    assert f"job={job_id}" in result.stderr


@pytest.mark.slow
def test_stock_rq_worker_command_runs_jobs_too(app, api, simulator, app_config):
    """`rq worker -u $REDIS_URL radar` works without our worker.py: the task builds the app."""
    from tests.conftest import worker_env

    job_id = create(api, MULTNOMAH)
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "rq"),
            "worker",
            "--burst",
            "-u",
            app_config["REDIS_URL"],
            app_config["RQ_QUEUE"],
        ],
        cwd=ROOT,
        env=worker_env(app_config),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    job = job_row(app, job_id)
    assert job.status == JobStatus.COMPLETED and job.success_count == 2000


@pytest.mark.slow
def test_worker_process_runs_no_thread_of_ours_and_never_opens_the_database(
    app, api, simulator, start_worker, app_config
):
    """RQ forks a work horse per job, and a fork copies any lock another thread holds at
    that instant, locked for ever: a reconciler thread inside SQLite left a horse hung in
    sqlite3.connect (issue 9). The worker process has only RQ's own command thread, the
    reconciler is a separate process, and the database is only ever opened by horses."""
    import psutil

    simulator.configure(latency_ms=100)
    job_id = create(api, OREGON)
    worker = psutil.Process(start_worker().pid)
    wait_for(lambda: job_row(app, job_id).processed_records >= 800, what="2 chunks")
    children = worker.children()
    horses = [c for c in children if c.cmdline() == worker.cmdline()]
    others = [c for c in children if c not in horses]
    assert len(horses) == 1, "one work horse for the running job"
    assert any("multiprocessing" in " ".join(c.cmdline()) for c in others), "no reconciler"
    # The main thread and the thread RQ runs for its pubsub commands (stop-job, shutdown).
    assert worker.num_threads() == 2
    database = app_config["SQLALCHEMY_DATABASE_URI"]
    if database.startswith("sqlite"):
        path = database.removeprefix("sqlite:///")
        assert not [f for f in worker.open_files() if f.path.startswith(path)]
        assert [f for f in horses[0].open_files() if f.path.startswith(path)]
    else:
        port = sa.engine.make_url(database).port or 5432
        assert not [c for c in worker.net_connections() if c.raddr and c.raddr.port == port]
        assert [c for c in horses[0].net_connections() if c.raddr and c.raddr.port == port]
    job = wait_for(
        lambda: (j := job_row(app, job_id)).status == JobStatus.COMPLETED and j, timeout=60
    )
    assert job.success_count == 10_000


@pytest.mark.slow
def test_worker_takes_jobs_only_once_its_reconciler_is_up(app_config, start_worker, tmp_path):
    """The reconciler is a fresh interpreter importing the app (seconds of CPU on a small
    machine): a worker that listened before it was up would run its first job beside
    that start-up. By the time `rq info` lists the worker, the reconciler is ready."""
    from tests.conftest import wait_until_listening

    process = start_worker()
    wait_until_listening(app_config["REDIS_URL"], app_config["RQ_QUEUE"], process)
    log = (tmp_path / "worker-1.log").read_text()
    assert "reconciler ready" in log, log[-2000:]


def test_worker_process_refuses_database_connections_its_horses_may_open(app):
    """The guard worker.py installs: a connection attempt in the worker process itself
    fails loudly instead of creating a connection the next fork would share."""
    import worker

    engine = sa.create_engine(app.config["SQLALCHEMY_DATABASE_URI"])
    worker.forbid_database_in_this_process(engine)
    with pytest.raises(worker.ParentProcessTouchedDatabase):
        engine.connect()
    pid = os.fork()
    if pid == 0:  # a work horse
        try:
            with engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
        except BaseException:  # noqa: BLE001
            os._exit(1)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    engine.dispose()
