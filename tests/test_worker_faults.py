"""Worker faults with real processes: `python worker.py` killed and restarted, Redis stopped
and started again under a running worker, a work horse that hangs before claiming its job.

Every test uses short recovery settings (FAST) so that a fault is noticed in seconds."""

from __future__ import annotations

import signal
import time

import psutil
import pytest
from redis import Redis

from radar_app.models import JobStatus
from tests.helpers import MULTNOMAH, OREGON, job_row, stored_radar_ids, wait_for

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


def work_horse(worker: psutil.Process) -> psutil.Process | None:
    """The worker's forked work horse: a child running the same command line (the
    reconciler is a spawned child with its own command line)."""
    for child in worker.children():
        try:
            if child.cmdline() == worker.cmdline():
                return child
        except psutil.NoSuchProcess:
            continue
    return None


def kill_worker_and_horse(pid: int) -> None:
    """SIGKILL a worker, its work horse and every other child, as the OOM killer or a lost
    machine would: no cleanup. RQ starts each horse in its own session, so killing the
    process group is not enough."""
    worker = psutil.Process(pid)
    assert work_horse(worker) is not None, "the worker has no work horse: is a job running?"
    family = [worker, *worker.children(recursive=True)]
    for process in family:
        try:
            process.send_signal(signal.SIGKILL)
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(family, timeout=10)


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
    # At most the chunk in flight at each kill was bought and not stored.
    assert 10_000 <= billed <= 10_000 + 10 * CHUNK, billed
