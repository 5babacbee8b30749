"""Live throttling state (issue 13, item 3): a running job says what it is waiting for
(the rate limit, a backoff, a 429 pause, a silent worker) on its page, its Jobs row and in
the API, from what its worker posts to Redis (radar_app/waits.py)."""

from __future__ import annotations

import random
import socket
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta

import pytest
import sqlalchemy as sa
from redis import Redis

from radar_app import services, waits
from radar_app.extensions import db
from radar_app.models import BatchJob, JobStatus, utcnow
from radar_app.propertyradar.client import PropertyRadarClient
from radar_app.propertyradar.throttle import SharedRateLimiter
from radar_app.propertyradar.wait import Wait, WaitKind
from radar_app.queue import connect
from tests.conftest import SIM_TOKEN, wait_until_listening
from tests.helpers import MULTNOMAH, job_row, make_job, stored_radar_ids, wait_for

NOW = 1_000_000.0


def posted(wait: Wait, started: float = NOW) -> waits.Posted:
    return waits.Posted(wait, started + wait.seconds)


BACKOFF = Wait(WaitKind.BACKOFF, 8, cause="a 503", attempt=3, max_attempts=5)
PAUSE = Wait(WaitKind.PAUSED, 30, cause="a 429", retry_after=30)
RATE = Wait(WaitKind.RATE_LIMIT, 2)


# ------------------------------------------------------------------------- wording


def test_each_wait_in_words_with_the_time_left():
    assert waits.describe(posted(RATE), NOW).message == "waiting for the rate limit (2 s)"
    assert (
        waits.describe(posted(BACKOFF), NOW).message
        == "backing off after a 503, attempt 3 of 5, next in 8 s"
    )
    assert (
        waits.describe(posted(BACKOFF), NOW + 5.5).message
        == "backing off after a 503, attempt 3 of 5, next in 3 s"
    )
    assert (
        waits.describe(posted(PAUSE), NOW + 6).message
        == "paused by PropertyRadar (429, Retry-After 30 s), next try in 24 s"
    )
    no_header = Wait(WaitKind.PAUSED, 4, cause="a 429")
    assert (
        waits.describe(posted(no_header), NOW).message
        == "paused by PropertyRadar (429), next try in 4 s"
    )
    timeout = Wait(WaitKind.BACKOFF, 1.2, cause="a timeout", attempt=2, max_attempts=5)
    shown = waits.describe(posted(timeout), NOW)
    assert shown.message == "backing off after a timeout, attempt 2 of 5, next in 2 s"
    assert (shown.kind, shown.label) == ("backoff", "Retrying")
    assert shown.seconds == pytest.approx(1.2)


def test_of_several_waiting_threads_the_pause_shows_then_the_longest():
    long_backoff = Wait(WaitKind.BACKOFF, 50, cause="a 502", attempt=2, max_attempts=5)
    shown = waits.most_telling([posted(RATE), posted(long_backoff), posted(PAUSE)], NOW)
    assert shown is not None and shown.kind == "paused"
    longer_rate = Wait(WaitKind.RATE_LIMIT, 5)
    shown = waits.most_telling([posted(RATE), posted(longer_rate)], NOW)
    assert shown is not None and shown.message == "waiting for the rate limit (5 s)"
    assert waits.most_telling([], NOW) is None


def test_no_heartbeat_after_two_missed_beats_and_recovery_after_the_threshold():
    now = utcnow()

    def silent(seconds: float) -> waits.Waiting | None:
        beat = now - timedelta(seconds=seconds)
        return waits.no_heartbeat(beat, now, interval=5, stale_after=30)

    assert silent(6) is None  # one beat late: normal
    early = silent(15)
    assert early is not None
    assert early.message == "no heartbeat for 15 s — will be recovered after 30 s without one"
    late = silent(40)
    assert late is not None and late.kind == "no_heartbeat"
    assert late.message == "no heartbeat for 40 s — will be recovered"
    assert waits.no_heartbeat(None, now, interval=5, stale_after=30) is None


# ------------------------------------------------------------- the board, in Redis


@pytest.fixture
def redis(redis_url: str) -> Iterator[Redis]:
    connection = Redis.from_url(redis_url)
    yield connection
    connection.close()


@pytest.fixture
def batch_id(redis: Redis) -> Iterator[int]:
    number = random.randrange(10**9, 10**10)
    yield number
    redis.delete(waits.key(number))


def test_board_posts_reads_and_clears_each_threads_wait(redis, batch_id):
    board = waits.WaitBoard(redis)
    board.post(batch_id, "run:purchase_0", BACKOFF)
    board.post(batch_id, "run:purchase_1", PAUSE)
    read = board.read(batch_id)
    assert sorted((p.wait for p in read), key=lambda w: w.kind) == [BACKOFF, PAUSE]
    assert all(p.until > time.time() for p in read)

    board.clear(batch_id, "run:purchase_1")
    assert [p.wait for p in board.read(batch_id)] == [BACKOFF]
    board.clear(batch_id, "run:purchase_0")
    assert board.read(batch_id) == []
    assert not redis.exists(waits.key(batch_id))  # an empty hash is gone


def test_board_expires_after_the_longest_wait_and_ignores_ended_or_garbled_ones(redis, batch_id):
    board = waits.WaitBoard(redis)
    board.post(batch_id, "a", PAUSE)
    board.post(batch_id, "b", RATE)  # a shorter wait after it must not cut the hash's life
    assert redis.pttl(waits.key(batch_id)) > (PAUSE.seconds + waits.GRACE - 1) * 1000
    assert redis.pttl(waits.key(batch_id)) <= (PAUSE.seconds + waits.GRACE) * 1000

    board.post(batch_id, "ended", BACKOFF, now=time.time() - 60)  # its clear was lost
    redis.hset(waits.key(batch_id), "garbled", b"{not json")
    assert {p.wait for p in board.read(batch_id)} == {PAUSE, RATE}


# ------------------------------------------------ the client and the limiter tell


class _Longest(random.Random):
    """Backoff "jitter" that always picks the ceiling, so delays are known."""

    def uniform(self, a: float, b: float) -> float:
        return b


def _client(simulator_url: str, told: list, slept: list, **kwargs) -> PropertyRadarClient:
    return PropertyRadarClient(
        SIM_TOKEN,
        simulator_url,
        max_attempts=5,
        sleep=slept.append,
        on_wait=told.append,
        rng=_Longest(),
        **kwargs,
    )


def test_client_tells_each_noticeable_backoff_before_and_after_it(simulator, simulator_url):
    simulator.configure(scripted_faults=[{"kind": "503", "times": 2}])
    told: list[Wait | None] = []
    slept: list[float] = []
    with _client(simulator_url, told, slept, backoff_base=1.0) as client:
        assert client.count(MULTNOMAH) == 2000
    assert slept == [1.0, 2.0]
    assert told == [
        Wait(WaitKind.BACKOFF, 1.0, cause="a 503", attempt=2, max_attempts=5),
        None,
        Wait(WaitKind.BACKOFF, 2.0, cause="a 503", attempt=3, max_attempts=5),
        None,
    ]


def test_client_tells_a_429_pause_with_its_retry_after(simulator, simulator_url):
    simulator.configure(retry_after=3, scripted_faults=[{"kind": "429", "times": 1}])
    told: list[Wait | None] = []
    slept: list[float] = []
    with _client(simulator_url, told, slept, backoff_max=10.0) as client:
        client.count(MULTNOMAH)
    assert slept == [3.0]
    assert told == [
        Wait(WaitKind.PAUSED, 3.0, cause="a 429", attempt=2, max_attempts=5, retry_after=3.0),
        None,
    ]


def test_short_waits_tell_nothing(simulator, simulator_url):
    """The hot path: a wait too short to see posts nothing (no Redis call per request)."""
    simulator.configure(scripted_faults=[{"kind": "503", "times": 2}])
    told: list[Wait | None] = []
    slept: list[float] = []
    with _client(simulator_url, told, slept, backoff_base=0.1) as client:
        client.count(MULTNOMAH)
    assert slept == [0.1, 0.2]
    assert told == []


def test_limiter_tells_a_wait_behind_another_workers_429_and_one_for_a_slot(redis):
    key = f"test:rate:{uuid.uuid4().hex}"
    told: list[Wait | None] = []
    slept: list[float] = []
    # Another worker was answered 429 with Retry-After: 2.
    SharedRateLimiter(redis, 1000, key=key).pause(2.0, retry_after=2.0)
    SharedRateLimiter(redis, 1000, key=key, sleep=slept.append).acquire(told.append)
    assert len(told) == 2 and told[1] is None
    assert told[0] is not None and told[0].kind == WaitKind.PAUSED
    assert told[0].retry_after == 2.0 and 1.5 < told[0].seconds <= 2.0
    assert waits.describe(posted(told[0]), NOW).message.startswith(
        "paused by PropertyRadar (429, Retry-After 2 s)"
    )

    told.clear()
    slow = SharedRateLimiter(redis, 1.0, key=f"{key}:slow", sleep=slept.append)
    slow.acquire(told.append)  # the first slot is free
    slow.acquire(told.append)  # the next is a second later (sleep is not real here)
    assert told[0] is not None and told[0].kind == WaitKind.RATE_LIMIT
    assert 0.9 < told[0].seconds <= 1.0 and told[1] is None
    redis.delete(*redis.keys(f"{key}*"))


# ------------------------------------------------------------------ what the web shows


@pytest.fixture
def running(app, user) -> BatchJob:
    job_id = make_job(app, status=JobStatus.PROCESSING, heartbeat_at=utcnow(), total_records=2000)
    return job_row(app, job_id)


def _api_waiting(api, job: BatchJob) -> dict | None:
    response = api.get(f"/api/batch-jobs/{job.job_id}")
    assert response.status_code == 200
    return response.json["waiting"]


def test_job_page_row_and_api_say_what_a_running_job_waits_for(
    app, client, auth, api, redis, running
):
    auth.login()
    board = waits.WaitBoard(redis)
    board.post(running.id, "run:purchase_0", BACKOFF)
    board.post(running.id, "run:purchase_1", PAUSE)

    expected = "paused by PropertyRadar (429, Retry-After 30 s), next try in"
    progress = client.get(f"/jobs/{running.job_id}/progress").text
    assert expected in progress and 'id="job-waiting"' in progress
    assert 'hx-trigger="every 2s"' in progress  # shown within 2 s of being posted
    assert expected in client.get(f"/jobs/{running.job_id}").text
    assert expected in client.get(f"/jobs/{running.job_id}/row").text
    assert expected in client.get("/jobs").text
    waiting = _api_waiting(api, running)
    assert waiting["kind"] == "paused" and waiting["message"].startswith(expected)
    assert 0 < waiting["seconds"] <= 30
    listed = api.get("/api/batch-jobs").json["items"]
    assert listed[0]["waiting"]["kind"] == "paused"

    board.clear(running.id, "run:purchase_1")
    assert (
        "backing off after a 503, attempt 3 of 5"
        in client.get(f"/jobs/{running.job_id}/progress").text
    )
    board.clear(running.id, "run:purchase_0")
    progress = client.get(f"/jobs/{running.job_id}/progress").text
    assert 'id="job-waiting"' not in progress
    assert _api_waiting(api, running) is None


def test_a_finished_job_shows_no_wait_left_behind(app, client, auth, api, redis, running):
    auth.login()
    waits.WaitBoard(redis).post(running.id, "run:purchase_0", PAUSE)
    with app.app_context():
        db.session.execute(
            sa.update(BatchJob).where(BatchJob.id == running.id).values(status=JobStatus.COMPLETED)
        )
        db.session.commit()
    assert "paused by PropertyRadar" not in client.get(f"/jobs/{running.job_id}").text
    assert _api_waiting(api, running) is None


def test_a_silent_worker_shows_as_no_heartbeat(app, client, auth, api, running):
    auth.login()
    with app.app_context():
        db.session.execute(
            sa.update(BatchJob)
            .where(BatchJob.id == running.id)
            .values(heartbeat_at=utcnow() - timedelta(seconds=40))
        )
        db.session.commit()
    progress = client.get(f"/jobs/{running.job_id}/progress").text
    assert "no heartbeat for 40 s — will be recovered" in progress
    waiting = _api_waiting(api, running)
    assert waiting["kind"] == "no_heartbeat" and waiting["seconds"] >= 40


def test_redis_down_shows_no_wait_quickly_not_an_error(app, client, auth, api, running):
    auth.login()
    for n in range(5):
        make_job(app, status=JobStatus.PROCESSING, heartbeat_at=utcnow(), name=f"also {n}")
    # A "Redis" that takes connections and never answers, like a frozen one.
    with socket.create_server(("127.0.0.1", 0), backlog=64) as silent:
        port = silent.getsockname()[1]
        frozen = connect(f"redis://127.0.0.1:{port}/0", 0.25, connect_timeout=0.25)
        app.extensions["wait_reader"] = services._WaitReader(waits.WaitBoard(frozen))
        started = time.monotonic()
        response = client.get(f"/jobs/{running.job_id}/progress")
        assert response.status_code == 200 and 'id="job-waiting"' not in response.text
        assert time.monotonic() - started < 1.2
        assert _api_waiting(api, running) is None
        # Six running jobs on the Jobs page: one 0.25 s timeout at most, not one per job
        # (1.5 s); the margin is for a busy machine's rendering.
        started = time.monotonic()
        response = client.get("/jobs")
        assert response.status_code == 200 and "also 4" in response.text
        assert time.monotonic() - started < 1.2
        frozen.close()


# ------------------------------------------------- a real worker through a 429 storm


def test_worker_shows_a_429_pause_while_it_lasts_then_completes_exactly(
    app, api, simulator, start_worker, redis_url, redis
):
    """PropertyRadar answers the first purchases 429 with Retry-After: 3. While the worker
    waits, the API says so; then the job completes, each lead bought once."""
    simulator.configure(retry_after=3, scripted_faults=[{"kind": "429", "purchase": 1, "times": 2}])
    process = start_worker(
        env={"PROPERTYRADAR_BACKOFF_MAX": "10", "PROPERTYRADAR_RATE_LIMIT": "100"}
    )
    wait_until_listening(redis_url, app.config["RQ_QUEUE"], process)
    response = api.post("/api/batch-jobs", json={"criteria": MULTNOMAH})
    assert response.status_code == 201, response.json
    job_id = response.json["id"]

    def paused() -> dict | None:
        waiting = api.get(f"/api/batch-jobs/{job_id}").json["waiting"]
        return waiting if waiting and waiting["kind"] == "paused" else None

    waiting = wait_for(paused, timeout=30, what="the API to report the 429 pause")
    assert waiting["message"].startswith("paused by PropertyRadar (429, Retry-After 3 s)")

    def finished() -> dict | None:
        job = api.get(f"/api/batch-jobs/{job_id}").json
        return job if job["status"] not in ("PENDING", "PROCESSING") else None

    job = wait_for(finished, timeout=60, what="the job to finish")
    assert job["status"] == "COMPLETED" and job["waiting"] is None
    # Each wait was cleared when it ended, not left to expire.
    assert not redis.exists(waits.key(job_row(app, job_id).id))
    assert job["purchased_count"] == 2000
    stats = simulator.stats()
    assert stats["faults"]["429"] == 2
    assert stats["billed_records"] == job["purchased_count"]
    assert max(stats["billed_radar_ids"].values()) == 1
    ids = stored_radar_ids(app, job_id)
    assert len(ids) == len(set(ids)) == 2000
