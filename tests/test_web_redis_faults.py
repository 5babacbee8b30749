"""A frozen (SIGSTOP) or stopped Redis costs a web request a short timeout, never a hang.

Each test runs its own redis-server, so freezing it leaves the session's Redis alone. The
web's Redis timeout is 0.5 s here (REDIS_WEB_TIMEOUT); each freeze lasts a few seconds and
ends by itself, so a request that still hangs shows up as a slow answer, not a hung suite.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests
import sqlalchemy as sa
from flask import Flask
from redis import Redis
from redis.exceptions import TimeoutError as RedisTimeoutError
from rq import Queue, SimpleWorker

from devstack import RedisServer, free_port, wait_until
from radar_app import batches, create_app
from radar_app.extensions import db
from radar_app.models import BatchJob, JobStatus
from tests.conftest import PASSWORD, ROOT, ApiClient, AuthActions, csrf_token_from, worker_env
from tests.helpers import MULTNOMAH, count_rows, job_row, purchase_requests

WEB_TIMEOUT = 0.5
FREEZE = 6.0
# A request may spend one timeout on the rate limiter's Redis and one on the queue's,
# plus an scrypt check and a loaded 2-core CI box.
BOUND = 3.0


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


@contextmanager
def frozen(server: RedisServer, seconds: float = FREEZE) -> Iterator[None]:
    """SIGSTOP the server; it resumes after `seconds` at most, or when the block ends."""
    assert server.process is not None
    pid = server.process.pid
    os.kill(pid, signal.SIGSTOP)
    timer = threading.Timer(seconds, os.kill, (pid, signal.SIGCONT))
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
        os.kill(pid, signal.SIGCONT)


def timed(call: Callable[[], Any]) -> tuple[Any, float]:
    started = time.monotonic()
    result = call()
    return result, time.monotonic() - started


@pytest.fixture
def fault_app(app: Flask, app_config: dict[str, Any], own_redis: RedisServer) -> Iterator[Flask]:
    """The app on this test's own Redis; `app` made the schema and binds the worker task."""
    flask_app = create_app(
        {**app_config, "REDIS_URL": own_redis.url, "REDIS_WEB_TIMEOUT": WEB_TIMEOUT}
    )
    yield flask_app
    with flask_app.app_context():
        db.session.remove()
        db.engine.dispose()


def run_worker_on(server: RedisServer, queue_name: str) -> None:
    connection = Redis.from_url(server.url)
    try:
        SimpleWorker([queue_name], connection=connection).work(burst=True, with_scheduler=False)
    finally:
        connection.close()


def test_sign_in_answers_at_once_while_redis_is_frozen(fault_app, own_redis, user):
    client = fault_app.test_client()
    token = csrf_token_from(client.get("/auth/login").text)
    data = {"email": user.email, "password": PASSWORD, "csrf_token": token}
    with frozen(own_redis):
        response, elapsed = timed(lambda: client.post("/auth/login", data=data))
    assert response.status_code == 302, response.text
    assert elapsed < BOUND, f"sign-in took {elapsed:.1f}s with Redis frozen"
    assert client.get("/jobs").status_code == 200


@pytest.mark.parametrize("fault", ["frozen", "stopped"])
def test_sign_in_rate_limit_holds_while_redis_is_unavailable(fault_app, own_redis, user, fault):
    fault_app.config["LOGIN_RATE_LIMIT"] = "3 per minute"
    client = fault_app.test_client()
    token = csrf_token_from(client.get("/auth/login").text)
    wrong = {"email": user.email, "password": "wrong password", "csrf_token": token}

    def attempts() -> list[tuple[int, float]]:
        answers = []
        for password in ["wrong"] * 3 + [PASSWORD]:
            response, elapsed = timed(
                lambda password=password: client.post(
                    "/auth/login", data={**wrong, "password": password}
                )
            )
            answers.append((response.status_code, elapsed))
        return answers

    if fault == "frozen":
        with frozen(own_redis):
            answers = attempts()
    else:
        own_redis.stop()
        answers = attempts()
    assert [code for code, _ in answers] == [401, 401, 401, 429]  # not skipped: counted in memory
    assert max(elapsed for _, elapsed in answers) < BOUND, answers
    assert client.get("/jobs").status_code == 302  # the right password waited too


def test_job_creation_while_redis_is_frozen_is_a_quick_503_that_leaves_nothing(
    fault_app, own_redis, user, token, simulator
):
    api = ApiClient(fault_app.test_client(), token)
    with frozen(own_redis):
        response, elapsed = timed(lambda: api.post("/api/batch-jobs", json={"criteria": MULTNOMAH}))
    assert response.status_code == 503, response.json
    assert "unavailable" in response.json["error"]
    assert elapsed < BOUND, f"job creation took {elapsed:.1f}s with Redis frozen"
    assert count_rows(fault_app, BatchJob) == 0

    # Awake again, Redis carries out whatever the web sent before it stopped waiting; a
    # worker then finds nothing to run and buys nothing, and no job appears later.
    wait_until(own_redis.ping, 10, "Redis to answer again")
    run_worker_on(own_redis, fault_app.config["RQ_QUEUE"])
    assert count_rows(fault_app, BatchJob) == 0
    assert purchase_requests(simulator.stats(), status=None) == []


def test_search_form_while_redis_is_frozen_is_a_quick_503_that_leaves_nothing(
    fault_app, own_redis, user
):
    client = fault_app.test_client()
    AuthActions(client).login(user.email)
    page = client.get("/search")
    data = {"state": "OR", "background": "y", "csrf_token": csrf_token_from(page.text)}
    with frozen(own_redis):
        response, elapsed = timed(lambda: client.post("/search", data=data))
    assert response.status_code == 503, response.text[:500]
    assert "nothing was created" in response.text
    assert elapsed < BOUND
    assert count_rows(fault_app, BatchJob) == 0


def test_retry_while_redis_is_frozen_is_a_quick_503_and_the_job_stays_failed(
    fault_app, own_redis, user, token, simulator
):
    api = ApiClient(fault_app.test_client(), token)
    job_id = api.post("/api/batch-jobs", json={"criteria": MULTNOMAH}).json["id"]
    with fault_app.app_context():
        db.session.execute(
            sa.update(BatchJob)
            .where(BatchJob.job_id == job_id)
            .values(status=JobStatus.FAILED, error_details="PropertyRadar was down")
        )
        db.session.commit()
    before = job_row(fault_app, job_id)

    with frozen(own_redis):
        response, elapsed = timed(lambda: api.post(f"/api/batch-jobs/{job_id}/retry"))
    assert response.status_code == 503, response.json
    assert elapsed < BOUND
    after = job_row(fault_app, job_id)
    assert (after.status, after.rq_job_id) == (JobStatus.FAILED, before.rq_job_id)

    # Whatever RQ jobs Redis holds for it (the original one at least) find a FAILED row.
    wait_until(own_redis.ping, 10, "Redis to answer again")
    run_worker_on(own_redis, fault_app.config["RQ_QUEUE"])
    assert job_row(fault_app, job_id).status == JobStatus.FAILED
    assert purchase_requests(simulator.stats(), status=None) == []


def test_healthz_reports_a_frozen_redis_quickly(fault_app, own_redis):
    client = fault_app.test_client()
    with frozen(own_redis):
        response, elapsed = timed(lambda: client.get("/healthz"))
    assert response.status_code == 503
    assert response.json["checks"]["redis"] == {"ok": False, "error": "TimeoutError"}
    assert response.json["checks"]["database"]["ok"] is True
    assert elapsed < BOUND


def test_admin_queue_page_reports_a_frozen_redis_quickly(fault_app, own_redis, admin):
    client = fault_app.test_client()
    AuthActions(client).login(admin.email)
    with frozen(own_redis):
        response, elapsed = timed(lambda: client.get("/admin/"))
    assert response.status_code == 503
    assert "Redis is not answering (TimeoutError)" in response.text
    assert elapsed < BOUND


# ------------------------------------------------------------------ a real gunicorn


@pytest.fixture
def gunicorn(app_config, own_redis, tmp_path: Path, app) -> Iterator[str]:
    """gunicorn as `make run` starts it (2 workers, threads), on this test's Redis."""
    port = free_port()
    env = {
        **worker_env(app_config),
        "REDIS_URL": own_redis.url,
        "REDIS_WEB_TIMEOUT": str(WEB_TIMEOUT),
    }
    log = open(tmp_path / "gunicorn.log", "wb")  # noqa: SIM115
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "wsgi:app", "--bind", f"127.0.0.1:{port}",
         "--workers", "2", "--threads", "4", "--timeout", "60"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    log.close()
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: requests.get(f"{url}/auth/login", timeout=1).ok, 60, "gunicorn")
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _signed_in(url: str, email: str) -> requests.Session:
    session = requests.Session()
    page = session.get(f"{url}/auth/login", timeout=10)
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page.text).group(1)
    response = session.post(
        f"{url}/auth/login",
        data={"email": email, "password": PASSWORD, "csrf_token": token},
        allow_redirects=False,
        timeout=10,
    )
    assert response.status_code == 302
    return session


# The Jobs tab, the health check, and the notifications poll every signed-in page makes.
PAGES = ("/jobs", "/healthz", "/notifications")


def test_under_gunicorn_other_pages_answer_quickly_while_redis_is_frozen(
    gunicorn, own_redis, user, token, app
):
    browser = _signed_in(gunicorn, user.email)
    bearer = {"Authorization": f"Bearer {token}"}

    def create() -> tuple[int, float]:
        response, elapsed = timed(
            lambda: requests.post(
                f"{gunicorn}/api/batch-jobs", json={"criteria": MULTNOMAH}, headers=bearer,
                timeout=30,
            )
        )  # fmt: skip
        return response.status_code, elapsed

    def page(path: str) -> tuple[int, float]:
        response, elapsed = timed(lambda: browser.get(f"{gunicorn}{path}", timeout=30))
        return response.status_code, elapsed

    # Eight creations take every server thread (2 workers x 4): with Redis frozen, each
    # must give its thread back within a timeout or two, or the pages behind them wait
    # out the whole freeze.
    with frozen(own_redis, seconds=12), ThreadPoolExecutor(max_workers=14) as pool:
        creations = [pool.submit(create) for _ in range(8)]
        pages = [pool.submit(page, path) for path in PAGES * 2]
        created = [future.result() for future in creations]
        shown = [future.result() for future in pages]

    # The poll answers 286 ("stop polling") when the user has no job pending, 200 while a
    # creation's row is there: either way it answered.
    assert [200 if code == 286 else code for code, _ in shown] == [200, 503, 200] * 2, shown
    # A page may wait for a thread behind a creation: at most two timeouts more.
    assert max(elapsed for _, elapsed in shown) < BOUND + 2 * WEB_TIMEOUT, shown
    assert {code for code, _ in created} == {503}, created
    assert max(elapsed for _, elapsed in created) < BOUND, created
    assert count_rows(app, BatchJob) == 0


# ------------------------------------------- an enqueue that Redis did, but never answered
#
# Redis took the job but its reply was lost (the timeout struck between the two): the real
# enqueue runs, then the caller sees the TimeoutError a frozen Redis gives.


@pytest.fixture
def reply_lost(monkeypatch):
    """Make every enqueue reach Redis and then time out; `before_reply` runs in between."""
    real_enqueue = batches.enqueue_job
    hooks: list[Callable[[], None]] = []

    def enqueue_then_time_out(*args: Any, **kwargs: Any) -> None:
        real_enqueue(*args, **kwargs)
        for hook in hooks:
            hook()
        raise RedisTimeoutError("Timeout reading from socket")

    monkeypatch.setattr(batches, "enqueue_job", enqueue_then_time_out)
    return hooks


def test_a_job_whose_enqueue_reply_was_lost_is_withdrawn_and_its_rq_job_buys_nothing(
    app, api, run_worker, simulator, reply_lost
):
    response = api.post("/api/batch-jobs", json={"criteria": MULTNOMAH})
    assert response.status_code == 503
    assert count_rows(app, BatchJob) == 0
    queue = Queue(app.config["RQ_QUEUE"], connection=Redis.from_url(app.config["REDIS_URL"]))
    assert queue.count == 1  # the orphan RQ job is really there

    run_worker()
    assert queue.count == 0
    assert count_rows(app, BatchJob) == 0
    assert purchase_requests(simulator.stats(), status=None) == []


def test_a_job_claimed_before_the_lost_reply_is_kept_and_bought_once(
    app, api, run_worker, simulator, reply_lost
):
    reply_lost.append(run_worker)  # a worker takes and finishes the job meanwhile
    response = api.post("/api/batch-jobs", json={"criteria": MULTNOMAH})
    assert response.status_code == 201, response.json
    job = job_row(app, response.json["id"])
    assert (job.status, job.success_count) == (JobStatus.COMPLETED, 2000)
    assert simulator.stats()["billed_records"] == 2000


def test_a_retry_claimed_before_the_lost_reply_is_not_put_back_to_failed(
    app, api, run_worker, simulator, monkeypatch
):
    job_id = api.post("/api/batch-jobs", json={"criteria": MULTNOMAH}).json["id"]
    with app.app_context():
        db.session.execute(
            sa.update(BatchJob).where(BatchJob.job_id == job_id).values(status=JobStatus.FAILED)
        )
        db.session.commit()
    real_enqueue = batches.enqueue_job

    def enqueue_run_then_time_out(*args: Any, **kwargs: Any) -> None:
        real_enqueue(*args, **kwargs)
        run_worker()
        raise RedisTimeoutError("Timeout reading from socket")

    monkeypatch.setattr(batches, "enqueue_job", enqueue_run_then_time_out)
    response = api.post(f"/api/batch-jobs/{job_id}/retry")
    assert response.status_code == 202, response.json
    assert job_row(app, job_id).status == JobStatus.COMPLETED
    assert simulator.stats()["billed_records"] == 2000
