"""GET /metrics: Prometheus' text format, read back with prometheus_client's own parser.

Jobs by status and the records bought and reused are read from the database; PropertyRadar
requests are counted by whichever process makes them (a web process, a real worker's work
horse) and, with PROMETHEUS_MULTIPROC_DIR, summed across processes; queue depth and
workers come from Redis, which may be down without failing the scrape.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.mmap_dict import MmapedDict, mmap_key
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families
from redis import Redis

from devstack import RedisServer, free_port
from radar_app import create_app, metrics, services
from radar_app.extensions import db
from radar_app.models import BatchJob, JobStatus, utcnow
from radar_app.propertyradar.errors import PropertyRadarError
from radar_app.queue import get_redis
from tests.conftest import SIM_TOKEN, ApiClient, issue_token, wait_until_listening
from tests.helpers import MULTNOMAH, job_row, make_job, wait_for
from tests.test_devstack import stack_env, start_stack  # noqa: F401 - used by name
from tests.test_web_redis_faults import frozen

SCRAPE_TOKEN = "scrape-token-0123456789abcdef"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    """Every sample of a scrape, by name and labels."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    key = (name, frozenset(labels.items()))
    assert key in samples, f"no sample {name}{labels} in the scrape"
    return samples[key]


def scrape(client: FlaskClient, token: str = SCRAPE_TOKEN) -> Samples:
    response = client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    assert response.content_type.startswith("text/plain; version=0.0.4")
    return parse(response.text)


@pytest.fixture
def served_log(simulator) -> Callable[[], list[dict[str, Any]]]:
    """The simulator's log of this test's requests. The simulator is shared: a request an
    earlier test left waiting on a slow answer is logged when it ends, maybe now."""
    since = time.time()
    return lambda: [r for r in simulator.stats()["requests"] if r["t"] >= since]


@pytest.fixture
def scrapeable(app: Flask) -> Flask:
    app.config["METRICS_TOKEN"] = SCRAPE_TOKEN
    return app


# ------------------------------------------------------------------ who may scrape


def test_anonymous_users_wrong_tokens_are_refused_admins_and_the_scrape_token_are_not(
    scrapeable, client, auth, user, admin
):
    anonymous = client.get("/metrics")
    assert anonymous.status_code == 401
    assert anonymous.headers["WWW-Authenticate"].startswith("Bearer")
    assert "radar_jobs" not in anonymous.text

    wrong = client.get("/metrics", headers={"Authorization": "Bearer not-the-token"})
    assert wrong.status_code == 401
    # The token's prefix is not enough (compared whole, in constant time).
    prefix = client.get("/metrics", headers={"Authorization": f"Bearer {SCRAPE_TOKEN[:-1]}"})
    assert prefix.status_code == 401

    assert value(scrape(client), "radar_database_up") == 1

    auth.login(user.email)
    refused = client.get("/metrics")
    assert refused.status_code == 403 and "radar_jobs" not in refused.text
    # A user's API token is that user: not an admin either.
    user_token = issue_token(scrapeable, user.email)
    assert ApiClient(client, user_token).get("/metrics").status_code == 403

    client.post("/auth/logout", data={"csrf_token": auth.csrf_token()})
    auth.login(admin.email)
    page = client.get("/metrics")
    assert page.status_code == 200 and "radar_jobs" in page.text


def test_without_a_scrape_token_configured_no_bearer_token_opens_it(app, client):
    assert app.config["METRICS_TOKEN"] is None
    assert client.get("/metrics", headers={"Authorization": "Bearer "}).status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer x"}).status_code == 401


# ------------------------------------------------------------------ from the database


def test_jobs_by_status_and_heartbeat_ages_match_the_database(scrapeable, client, user):
    app = scrapeable
    for status in [JobStatus.PENDING] * 2 + [JobStatus.FAILED] + [JobStatus.COMPLETED] * 3:
        make_job(app, status=status, purchased_count=100, reused_count=7)
    now = utcnow()
    make_job(app, status=JobStatus.PROCESSING, heartbeat_at=now - timedelta(seconds=100))
    make_job(app, status=JobStatus.PROCESSING, heartbeat_at=now - timedelta(seconds=2))

    samples = scrape(client)

    with app.app_context():
        in_database = dict(
            db.session.execute(
                sa.select(BatchJob.status, sa.func.count()).group_by(BatchJob.status)
            )
            .tuples()
            .all()
        )
    expected = {"PENDING": 2, "PROCESSING": 2, "COMPLETED": 3, "FAILED": 1, "CANCELLED": 0}
    assert {status: in_database.get(status, 0) for status in expected} == expected
    for status, count in expected.items():
        assert value(samples, "radar_jobs", status=status) == count
    assert value(samples, "radar_records_bought_total") == 600
    assert value(samples, "radar_records_reused_total") == 42
    # The silent one: 100 s and counting; one of the two is past RECOVERY_STALE_AFTER (30 s).
    assert 100 <= value(samples, "radar_running_job_heartbeat_age_seconds_max") < 160
    assert value(samples, "radar_running_jobs_stale") == 1
    assert value(samples, "radar_database_up") == 1
    assert value(samples, "radar_redis_up") == 1

    # A scraper asking for OpenMetrics gets it (prometheus_client's content negotiation).
    response = client.get(
        "/metrics",
        headers={
            "Authorization": f"Bearer {SCRAPE_TOKEN}",
            "Accept": "application/openmetrics-text; version=1.0.0",
        },
    )
    assert response.content_type.startswith("application/openmetrics-text; version=1.0.0")
    jobs = {
        sample.labels["status"]: sample.value
        for family in openmetrics_families(response.text)
        if family.name == "radar_jobs"
        for sample in family.samples
    }
    assert jobs == expected


def test_web_requests_are_counted_by_outcome_in_a_single_process(
    scrapeable, client, api, simulator, served_log
):
    """No PROMETHEUS_MULTIPROC_DIR: the web process counts in memory, and says so."""
    before = scrape(client)
    simulator.configure(scripted_faults=[{"kind": "503", "purchase": 0, "times": 1}])
    preview = api.post("/api/batch-jobs/preview", json={"criteria": MULTNOMAH})
    assert preview.status_code == 200, preview.json
    after = scrape(client)

    def grew(outcome: str) -> float:
        name, labels = "radar_propertyradar_requests_total", {"kind": "free", "outcome": outcome}
        return value(after, name, **labels) - value(before, name, **labels)

    served = Counter(outcome_of_logged(r) for r in served_log())
    assert grew("5xx") == served["5xx"] == 1
    assert grew("ok") == served["ok"] >= 1
    assert grew("429") == 0
    assert value(after, "radar_propertyradar_requests_in_flight", kind="free") == 0
    timings = "radar_propertyradar_request_duration_seconds_count"
    timed = value(after, timings, kind="free") - value(before, timings, kind="free")
    assert timed == served["5xx"] + served["ok"]


def counted_by_outcome() -> dict[tuple[str, str], float]:
    """This process's PropertyRadar attempts by (kind, outcome), as a scrape shows them."""
    registry = CollectorRegistry()
    registry.register(metrics.REQUESTS)
    samples = parse(generate_latest(registry).decode())
    return {
        (labels["kind"], labels["outcome"]): count
        for (name, label_set), count in samples.items()
        if name == "radar_propertyradar_requests_total"
        for labels in [dict(label_set)]
    }


@pytest.mark.parametrize(
    ("fault", "outcome"),
    [
        ("429", "429"),
        ("502", "5xx"),
        ("malformed", "malformed"),
        ("slow", "timeout"),  # headers later than the attempt's deadline
        ("refused", "connection"),  # nothing listens on the port
        ("bad token", "auth"),
        (None, "ok"),
    ],
)
def test_each_attempt_of_the_one_client_builder_is_counted_by_its_outcome(
    app, simulator, fault, outcome
):
    settings = {**app.config, "PROPERTYRADAR_MAX_ATTEMPTS": 1, "PROPERTYRADAR_TIMEOUT": 0.5}
    if fault == "refused":
        settings["PROPERTYRADAR_API_URL"] = f"http://127.0.0.1:{free_port()}"
    elif fault == "bad token":
        settings["PROPERTYRADAR_API_TOKEN"] = "not-the-simulator-token"
    elif fault is not None:
        simulator.configure(slow_seconds=2.0, scripted_faults=[{"kind": fault, "times": 1}])
    before = counted_by_outcome()
    with app.app_context(), services.build_client(settings, get_redis()) as client:
        if outcome == "ok":
            client.count(MULTNOMAH)
        else:
            with pytest.raises(PropertyRadarError):
                client.count(MULTNOMAH)
    after = counted_by_outcome()
    grew = {key: after[key] - before.get(key, 0) for key in after if after[key] != before.get(key)}
    assert grew == {("free", outcome): 1}


def leave_file(path: Path, metric: Any, labels: dict[str, str], count: float) -> None:
    """A metrics file as a process that is gone would have left it."""
    file = MmapedDict(str(path))
    sample = metric._name + ("_total" if metric._type == "counter" else "")
    names = list(labels)
    key = mmap_key(metric._name, sample, names, [labels[n] for n in names], metric._documentation)
    file.write_value(key, count, 0.0)
    file.close()


def outcome_of_logged(request: dict[str, Any]) -> str:
    """The outcome label the app should have given a request in the simulator's log."""
    if request["fault"] == "malformed":
        return "malformed"
    if request["status"] == 429:
        return "429"
    if request["status"] >= 500:
        return "5xx"
    return "ok" if request["status"] == 200 else str(request["status"])


# ------------------------------------------------------------------ across processes


@pytest.fixture
def multiprocess_app(scrapeable, app_config, tmp_path: Path) -> Iterator[tuple[Flask, Path]]:
    """The app as production runs it: every process writes its counts to one directory."""
    directory = tmp_path / "prometheus"
    flask_app = create_app(
        {**app_config, "PROMETHEUS_MULTIPROC_DIR": str(directory), "METRICS_TOKEN": SCRAPE_TOKEN}
    )
    try:
        yield flask_app, directory
    finally:
        with flask_app.app_context():
            db.session.remove()
            db.engine.dispose()
        metrics.use_directory(None)  # back to memory for the tests that follow


def test_a_real_workers_import_is_counted_and_summed_with_the_web_process(
    multiprocess_app, start_worker, simulator, served_log, redis_url, user, token
):
    app, directory = multiprocess_app
    client = app.test_client()
    api = ApiClient(client, token)
    worker = start_worker(env={"PROMETHEUS_MULTIPROC_DIR": str(directory)})
    wait_until_listening(redis_url, app.config["RQ_QUEUE"], worker)
    # The work horse meets a 429 and a 503 while buying (each retried), the web a 503.
    simulator.configure(
        scripted_faults=[
            {"kind": "429", "purchase": 1, "after": 1, "times": 1},
            {"kind": "503", "purchase": 1, "after": 2, "times": 1},
            {"kind": "503", "purchase": 0, "times": 1},
        ]
    )
    assert api.post("/api/batch-jobs/preview", json={"criteria": MULTNOMAH}).status_code == 200

    bought = api.post("/api/batch-jobs", json={"criteria": MULTNOMAH}).json["id"]
    wait_for(lambda: job_row(app, bought).status == JobStatus.COMPLETED, 90, "the import")
    # Again: the same 2,000 leads, stored a moment ago, are reused, not bought.
    reused = api.post("/api/batch-jobs", json={"criteria": MULTNOMAH}).json["id"]
    wait_for(lambda: job_row(app, reused).status == JobStatus.COMPLETED, 90, "the second job")

    samples = scrape(client)
    assert value(samples, "radar_records_bought_total") == job_row(app, bought).purchased_count
    assert value(samples, "radar_records_bought_total") == 2000
    assert value(samples, "radar_records_reused_total") == job_row(app, reused).reused_count
    assert value(samples, "radar_records_reused_total") == 2000
    assert value(samples, "radar_jobs", status="COMPLETED") == 2

    # Every request the simulator served, counted once by outcome: the web process's
    # preview and both horses' snapshots and purchases, summed from their files.
    log = served_log()
    for kind, purchase in (("free", 0), ("purchase", 1)):
        served = Counter(outcome_of_logged(r) for r in log if r["purchase"] == purchase)
        for outcome in metrics.OUTCOMES:
            counted = value(
                samples, "radar_propertyradar_requests_total", kind=kind, outcome=outcome
            )
            assert counted == served[outcome], (kind, outcome, counted, served)
        assert value(
            samples, "radar_propertyradar_request_duration_seconds_count", kind=kind
        ) == sum(served.values())
        assert value(samples, "radar_propertyradar_requests_in_flight", kind=kind) == 0
    assert value(samples, "radar_propertyradar_requests_total", kind="purchase", outcome="429") == 1
    assert value(samples, "radar_propertyradar_requests_total", kind="purchase", outcome="5xx") == 1
    assert value(samples, "radar_propertyradar_requests_total", kind="free", outcome="5xx") == 1

    # This process wrote under its pid; both horses, one after the other, under their
    # worker's slot, not one pair of files per job.
    files = {path.name for path in directory.iterdir()}
    assert f"counter_{os.getpid()}.db" in files
    assert f"counter_{metrics.horse_slot(worker.pid)}.db" in files
    assert not {name for name in files if name.startswith("counter_")} - {
        f"counter_{os.getpid()}.db",
        f"counter_{metrics.horse_slot(worker.pid)}.db",
    }

    queue = app.config["RQ_QUEUE"]
    assert value(samples, "radar_rq_workers", queue=queue) == 1
    assert value(samples, "radar_rq_jobs", queue=queue, state="queued") == 0
    assert value(samples, "radar_redis_up") == 1


def test_a_killed_horses_attempts_in_flight_go_its_counts_stay(
    multiprocess_app, start_worker, simulator, redis_url, user, token
):
    app, directory = multiprocess_app
    client = app.test_client()
    api = ApiClient(client, token)
    worker = start_worker(env={"PROMETHEUS_MULTIPROC_DIR": str(directory)})
    wait_until_listening(redis_url, app.config["RQ_QUEUE"], worker)
    # The first purchase answers at once, every later one after 30 s: the horse is caught
    # with purchases under way.
    simulator.configure(
        slow_seconds=30.0,
        scripted_faults=[{"kind": "slow", "purchase": 1, "after": 1, "times": -1}],
    )
    job_id = api.post("/api/batch-jobs", json={"criteria": MULTNOMAH}).json["id"]
    wait_for(lambda: job_row(app, job_id).purchased_count >= 400, 60, "a first chunk bought")

    def in_flight() -> float:
        return value(scrape(client), "radar_propertyradar_requests_in_flight", kind="purchase")

    wait_for(lambda: in_flight() >= 1, 30, "a purchase in flight")
    before = scrape(client)
    ok = value(before, "radar_propertyradar_requests_total", kind="purchase", outcome="ok")
    assert ok >= 1
    redis = Redis.from_url(redis_url)
    try:
        worker_key = wait_for(lambda: redis.keys("rq:worker:*"), 10, "the worker's key")[0]
        horse = int(redis.hget(worker_key, "horse_pid"))
    finally:
        redis.close()
    os.kill(horse, signal.SIGKILL)

    # Once the worker has reaped it: nothing under way, what it counted still counted.
    wait_for(lambda: in_flight() == 0, 30, "the killed horse's attempts to be dropped")
    after = scrape(client)
    assert value(after, "radar_propertyradar_requests_total", kind="purchase", outcome="ok") == ok


def test_live_gauges_of_processes_killed_outright_go_at_the_next_start_their_counts_stay(
    scrapeable, app_config, tmp_path
):
    """A worker (its horse with it) or gunicorn killed with SIGKILL says nothing; the next
    process to start drops what they had under way."""
    directory = tmp_path / "prometheus"
    directory.mkdir()
    gone = int(subprocess.check_output([sys.executable, "-c", "import os; print(os.getpid())"]))
    alive = os.getppid()  # whatever started pytest
    purchase, ok = {"kind": "purchase"}, {"kind": "purchase", "outcome": "ok"}
    for name in (str(gone), metrics.horse_slot(gone), str(alive)):
        leave_file(directory / f"gauge_livesum_{name}.db", metrics.IN_FLIGHT, purchase, 1)
        leave_file(directory / f"counter_{name}.db", metrics.REQUESTS, ok, 3)

    started = create_app(
        {**app_config, "PROMETHEUS_MULTIPROC_DIR": str(directory), "METRICS_TOKEN": SCRAPE_TOKEN}
    )
    try:
        samples = scrape(started.test_client())
    finally:
        with started.app_context():
            db.engine.dispose()
        metrics.use_directory(None)
    assert value(samples, "radar_propertyradar_requests_in_flight", kind="purchase") == 1
    assert value(samples, "radar_propertyradar_requests_total", **ok) == 9
    assert not (directory / f"gauge_livesum_{gone}.db").exists()
    assert (directory / f"gauge_livesum_{alive}.db").exists()


# ------------------------------------------------------------------ Redis away


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


@pytest.mark.parametrize("fault", ["frozen", "stopped"])
def test_with_redis_down_the_scrape_answers_quickly_with_what_it_can_read(
    app, app_config, own_redis, user, fault
):
    faulty = create_app(
        {
            **app_config,
            "REDIS_URL": own_redis.url,
            "REDIS_WEB_TIMEOUT": 0.5,
            "METRICS_TOKEN": SCRAPE_TOKEN,
        }
    )
    make_job(faulty, status=JobStatus.FAILED)
    client = faulty.test_client()
    assert value(scrape(client), "radar_redis_up") == 1

    def timed_scrape() -> tuple[Samples, float]:
        started = time.monotonic()
        samples = scrape(client)
        return samples, time.monotonic() - started

    if fault == "frozen":
        with frozen(own_redis):
            samples, elapsed = timed_scrape()
    else:
        own_redis.stop()
        samples, elapsed = timed_scrape()
    assert elapsed < 3.0, f"the scrape took {elapsed:.1f}s with Redis {fault}"
    assert value(samples, "radar_redis_up") == 0
    assert not any(name == "radar_rq_jobs" for name, _ in samples)
    # What the database says is still there.
    assert value(samples, "radar_jobs", status="FAILED") == 1
    assert value(samples, "radar_database_up") == 1
    with faulty.app_context():
        db.session.remove()
        db.engine.dispose()


# ------------------------------------------------------------------ make run


def test_make_run_counts_every_process_from_an_empty_directory(
    request, simulator, simulator_url, served_log, tmp_path
):
    """`make run`: two gunicorn workers, two workers' horses and the launcher's flask
    commands all write to the instance's metrics directory, emptied at start."""
    # tests/test_devstack.py's fixtures: `make run` in a pseudo-terminal.
    base_env = request.getfixturevalue("stack_env")
    start = request.getfixturevalue("start_stack")
    directory = tmp_path / "instance" / "prometheus"
    directory.mkdir(parents=True)
    # A previous run's file, saying 1,000 purchases: counted if it were left there.
    purchases = {"kind": "purchase", "outcome": "ok"}
    leave_file(directory / "counter_999999.db", metrics.REQUESTS, purchases, 1000)

    env = {
        **base_env,
        "PROPERTYRADAR_API_URL": simulator_url,
        "PROPERTYRADAR_API_TOKEN": SIM_TOKEN,
        "PORT": str(free_port()),
        "REDIS_PORT": str(free_port()),
    }
    stack = start(env)
    url, token = stack.banner_value("radar_app is running"), stack.banner_value("API token")
    api = requests.Session()
    api.headers["Authorization"] = f"Bearer {token}"  # the demo admin's
    created = api.post(f"{url}/api/batch-jobs", json={"criteria": MULTNOMAH})
    assert created.status_code == 201, created.text
    job_url = f"{url}/api/batch-jobs/{created.json()['id']}"
    wait_for(lambda: api.get(job_url).json()["status"] == "COMPLETED", 60, "the import")

    def counted_as_served() -> bool:
        # The demo account's schedule may start a job meanwhile: the simulator's log is
        # read right before each scrape, and the two compared until they agree.
        log = served_log()
        response = api.get(f"{url}/metrics", timeout=10)
        assert response.status_code == 200, response.text
        samples = parse(response.text)
        assert value(samples, "radar_records_bought_total") >= 2000
        compared = {
            kind: (
                value(samples, "radar_propertyradar_requests_total", kind=kind, outcome="ok"),
                sum(1 for r in log if r["purchase"] == purchase and r["status"] == 200),
            )
            for kind, purchase in (("free", 0), ("purchase", 1))
        }
        last.update(compared)
        return all(counted == served for counted, served in compared.values())

    last: dict[str, tuple[float, int]] = {}

    # Any of gunicorn's two workers may answer: each sums every process's files.
    for _ in range(4):
        try:
            wait_for(counted_as_served, 10, "the scrape to count what the simulator served")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; (counted, served) by kind: {last}") from None
    assert not (directory / "counter_999999.db").exists()
    stack.ctrl_c()
    stack.wait_stopped(timeout=45)
    assert stack.returncode == 0, stack.text
