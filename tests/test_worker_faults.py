"""Worker faults with real processes: `python worker.py` killed and restarted, Redis stopped
and started again under a running worker, a work horse that hangs before claiming its job.

Every test uses short recovery settings (FAST) so that a fault is noticed in seconds."""

from __future__ import annotations

import time

import psutil
import pytest
from redis import Redis

from radar_app.models import JobStatus
from tests.helpers import (
    MULTNOMAH,
    OREGON,
    assert_ledger_matches_bill,
    job_row,
    kill_worker_and_horse,
    stored_radar_ids,
    wait_for,
)

FAST = {
    "HEARTBEAT_INTERVAL": "0.5",
    "RECOVERY_STALE_AFTER": "3",
    "RECOVERY_INTERVAL": "1",
    "RECOVERY_PENDING_GRACE": "1",
}
CHUNK = 400


def create(api, criteria, **extra) -> str:
    response = api.post("/api/batch-jobs", json={"criteria": criteria, **extra})
    assert response.status_code == 201, response.json
    return response.json["id"]


def finished(app, job_id):
    job = job_row(app, job_id)
    return job if not JobStatus(job.status).is_active else None


def assert_exact(app, job_id: str, expected: int) -> None:
    ids = stored_radar_ids(app, job_id)
    assert len(ids) == len(set(ids)) == expected


RESUME_BOUND = 20.0  # stale_after 3 + interval 1 + worker start-up on a busy CI machine


@pytest.mark.slow
def test_ten_kill_restart_cycles_with_one_worker_all_resume(app, api, simulator, start_worker):
    """Issue 9: a SIGKILLed worker's job was requeued, and the new worker's horse hung for
    ever in sqlite3.connect (the reconciler thread held SQLite's mutex when RQ forked).
    Ten crashes in a row, one worker at a time: every restart resumes the job."""
    simulator.configure(latency_ms=150)
    job_id = create(api, OREGON)
    worker = start_worker(env=FAST)
    wait_for(lambda: job_row(app, job_id).processed_records >= CHUNK, what="the first chunk")
    resume_seconds = []
    for cycle in range(10):
        kill_worker_and_horse(worker.pid)
        worker.wait(timeout=10)
        killed_at = time.monotonic()
        at_kill = job_row(app, job_id).processed_records
        assert at_kill < 10_000, f"the job ended before cycle {cycle + 1}; raise the latency"
        worker = start_worker(env=FAST)
        wait_for(
            lambda at_kill=at_kill: job_row(app, job_id).processed_records > at_kill,
            timeout=RESUME_BOUND,
            what=f"the job to resume after kill {cycle + 1} (resumed so far: {resume_seconds})",
        )
        resume_seconds.append(round(time.monotonic() - killed_at, 1))
    print(f"resume seconds per kill: {resume_seconds}")

    job = wait_for(lambda: finished(app, job_id), timeout=60, what="completion")
    assert job.status == JobStatus.COMPLETED
    assert job.attempts == 11
    assert_exact(app, job_id, 10_000)
    billed = simulator.stats()["billed_records"]
    # At most the chunks on the wire at each kill were bought twice (a response that had
    # arrived is in the journal), and the ledger says what PropertyRadar billed.
    on_the_wire = CHUNK * app.config["PROPERTYRADAR_CONCURRENCY"]
    assert 10_000 <= billed <= 10_000 + 10 * on_the_wire, billed
    # Row by row; a kill may land between journaling a request and sending it.
    assert_ledger_matches_bill(
        app, job.id, simulator.stats(), killed_before_sending=10 * on_the_wire // CHUNK
    )


def worker_log(tmp_path, number: int) -> str:
    return (tmp_path / f"worker-{number}.log").read_text(errors="replace")


def workers_seen_by_admin(queue_name: str, redis_url: str) -> list[str]:
    from rq import Queue

    from radar_app.admin.queue_health import queue_health

    connection = Redis.from_url(redis_url)
    try:
        return [w.name for w in queue_health(Queue(queue_name, connection=connection)).workers]
    finally:
        connection.close()


@pytest.mark.slow
def test_redis_down_under_a_busy_worker_loses_and_duplicates_nothing(
    app, app_config, token, admin, simulator, start_worker, tmp_path
):
    """Issue 9: with Redis stopped for 60 s every worker running a job quit ("unhandled
    exception, quitting"), its horse ran on alone, queued jobs stayed PENDING for good and
    the admin page said "Workers online (0)". Now: one worker, one job running and two
    queued, Redis stopped for several heartbeat intervals and started again empty."""
    from devstack import RedisServer
    from radar_app import create_app
    from radar_app.extensions import db
    from tests.conftest import ApiClient, AuthActions

    redis = RedisServer().start()
    try:
        own_app = create_app({**app_config, "REDIS_URL": redis.url})
        api = ApiClient(own_app.test_client(), token)
        simulator.configure(latency_ms=300)
        expected = {create(api, OREGON): 10_000}
        # One purchase at a time, so the 10,000-record job outlasts the outage.
        worker = start_worker(
            "--name", "survivor", "--job-monitoring-interval", "1",
            env={**FAST, "REDIS_URL": redis.url, "PROPERTYRADAR_CONCURRENCY": "1"},
        )  # fmt: skip
        running = next(iter(expected))
        wait_for(lambda: job_row(app, running).processed_records >= 800, what="2 chunks")
        expected[create(api, [{"name": "County", "value": ["53061"]}])] = 1000
        expected[create(api, [{"name": "State", "value": ["ID"]}])] = 400

        redis.stop()  # the queue entries of the two PENDING jobs go with it
        down_at = time.monotonic()
        # Several worker heartbeats (1 s) and reconciler passes (1 s) fail meanwhile.
        time.sleep(5)
        assert worker.poll() is None, worker_log(tmp_path, 1)[-3000:]
        assert job_row(app, running).status == JobStatus.PROCESSING
        redis = RedisServer(redis.port).start()
        back_at = time.monotonic()

        wait_for(
            lambda: workers_seen_by_admin(app_config["RQ_QUEUE"], redis.url) == ["survivor"],
            timeout=15,
            what="the worker to register again",
        )
        for job_id in expected:
            wait_for(lambda job_id=job_id: finished(app, job_id), timeout=60, what=job_id)
        done_after = time.monotonic() - back_at
        print(f"Redis down {back_at - down_at:.1f} s; all jobs done {done_after:.1f} s later")

        for job_id, count in expected.items():
            job = job_row(app, job_id)
            assert job.status == JobStatus.COMPLETED, (job_id, job.status, job.error_details)
            assert_exact(app, job_id, count)
        stats = simulator.stats()
        assert stats["billed_records"] == sum(expected.values())
        assert max(stats["billed_radar_ids"].values()) == 1
        assert worker.poll() is None, "the worker quit"

        auth = AuthActions(own_app.test_client())
        auth.login(admin.email)
        page = auth.client.get("/admin/")
        assert page.status_code == 200
        assert "Workers online (1)" in page.text

        log = worker_log(tmp_path, 1)
        assert "Traceback" not in log and "quitting" not in log, log[-3000:]
        # One line when each outage starts and one when it ends, not one per pass.
        assert log.count("reconciliation skipped") == 1, log[-3000:]
        with own_app.app_context():
            db.engine.dispose()
    finally:
        redis.stop()


@pytest.mark.slow
def test_worker_waits_for_redis_and_stops_cleanly_without_it(
    app, app_config, token, simulator, start_worker, tmp_path
):
    """Redis unreachable must never end worker.py with a traceback: started before Redis,
    it waits and then works; stopped while Redis is down, it exits cleanly."""
    from devstack import RedisServer, free_port
    from radar_app import create_app
    from radar_app.extensions import db
    from tests.conftest import ApiClient

    redis = RedisServer(free_port())
    worker = start_worker(env={**FAST, "REDIS_URL": redis.url})
    try:
        wait_for(
            lambda: "Redis unreachable" in worker_log(tmp_path, 1), timeout=30, what="a warning"
        )
        assert worker.poll() is None
        redis.start()
        own_app = create_app({**app_config, "REDIS_URL": redis.url})
        job_id = create(ApiClient(own_app.test_client(), token), MULTNOMAH)
        job = wait_for(lambda: finished(app, job_id), timeout=30, what="the job")
        assert job.status == JobStatus.COMPLETED
        assert_exact(app, job_id, 2000)
        with own_app.app_context():
            db.engine.dispose()

        redis.stop()
        wait_for(
            lambda: worker_log(tmp_path, 1).count("Redis unreachable") >= 2,
            what="the worker to notice Redis is gone again",
        )
        children = psutil.Process(worker.pid).children(recursive=True)
        assert children, "the reconciler process is missing"
        worker.terminate()
        assert worker.wait(timeout=20) == 0
        _, alive = psutil.wait_procs(children, timeout=10)
        assert not alive, "the reconciler outlived its worker"
        log = worker_log(tmp_path, 1)
        assert "Traceback" not in log, log[-3000:]
    finally:
        redis.stop()
