"""Shared fixtures: a real Redis, a real database per test, the simulator, users and clients.

Set TEST_DATABASE_URL=postgresql+psycopg://user@host/postgres to run the whole suite on
PostgreSQL: each test then gets its own freshly created database.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from redis import Redis
from rq import Queue, SimpleWorker, Worker
from werkzeug.security import generate_password_hash

from devstack import RedisServer
from radar_app import create_app, models, tasks
from radar_app.auth import passwords
from radar_app.auth.tokens import hash_token, new_token
from radar_app.config import Config
from radar_app.extensions import db
from radar_app.models import User
from simulator import Simulator, start_in_thread
from tests.helpers import wait_for

PASSWORD = "correct horse battery"
SIM_TOKEN = "test-sim-token"
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


# One round of PBKDF2: almost free, where scrypt costs tens of milliseconds per user made
# and per sign-in, the slowest part of many tests.
FAST_PASSWORD_HASH = "pbkdf2:sha256:1"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """With TEST_DATABASE_ONLY=1 (CI's PostgreSQL pass, beside the SQLite pass that runs
    everything), run only the tests that use the test database: the others (the type check,
    the import rules, the client against requests-mock, `make run` on its own SQLite file)
    would run exactly as they did in the other pass."""
    if os.environ.get("TEST_DATABASE_ONLY") != "1":
        return
    kept = [item for item in items if "database_url" in getattr(item, "fixturenames", ())]
    config.hook.pytest_deselected(items=[item for item in items if item not in kept])
    items[:] = kept


@pytest.fixture(autouse=True)
def fast_password_hashing(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch):
    """Hash test passwords cheaply; tests marked ``real_password_hash`` keep Werkzeug's
    default (scrypt), which production uses. The unknown-account hash is cached per
    process, so it is dropped before and after: it must cost what a user's hash costs."""
    passwords._unknown_account_hash.cache_clear()
    if request.node.get_closest_marker("real_password_hash") is None:
        fast = partial(generate_password_hash, method=FAST_PASSWORD_HASH)
        monkeypatch.setattr(models, "generate_password_hash", fast)
        monkeypatch.setattr(passwords, "generate_password_hash", fast)
    yield
    passwords._unknown_account_hash.cache_clear()


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    external = os.environ.get("TEST_REDIS_URL")
    if external:
        yield external
        return
    with RedisServer() as server:
        yield server.url


@pytest.fixture(scope="session")
def simulator_server() -> Iterator[tuple[Simulator, str]]:
    simulator, url, shutdown = start_in_thread(port=0)
    simulator.configure(token=SIM_TOKEN)
    yield simulator, url
    shutdown()


@pytest.fixture
def simulator(simulator_server: tuple[Simulator, str]) -> Iterator[Simulator]:
    """The shared simulator, reset to a fault-free, zero-latency state for each test."""
    sim, _ = simulator_server
    sim.configure(
        token=SIM_TOKEN,
        latency_ms=0,
        fault_rate=0.0,
        scripted_faults=[],
        total_drift=0,
        retry_after=0.01,
        slow_seconds=0.5,
        price_per_record=Config.PRICE_PER_EXPORT,
        total_after_first=None,
        limit_cap=None,
        missing_radar_id_every=0,
        oversize_field=None,
        oversize_length=1000,
        trickle_seconds=0.0,
        rotate_token_after=None,
    )
    sim.reset()
    yield sim
    sim.reset()


@pytest.fixture
def simulator_url(simulator_server: tuple[Simulator, str]) -> str:
    return simulator_server[1]


def _database_url(tmp_path: Path, template: str | None = None) -> Iterator[str]:
    server_url = os.environ.get("TEST_DATABASE_URL")
    if not server_url:
        yield f"sqlite:///{tmp_path / 'radar_test.db'}"
        return
    # One database per test (CTFd's approach): isolation without truncation tricks.
    name = f"radar_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        copy_of = f' TEMPLATE "{template}"' if template else ""
        conn.execute(sa.text(f'CREATE DATABASE "{name}"{copy_of}'))
    try:
        yield (
            sa.engine.make_url(server_url).set(database=name).render_as_string(hide_password=False)
        )
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def schema_template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str | None]:
    """On PostgreSQL, a database holding the app's tables, which each test's database is
    copied from (CREATE DATABASE ... TEMPLATE): 0.1 s a test where create_all took 0.4 s,
    over some 1,500 tests. None on SQLite, where create_all costs next to nothing."""
    server_url = os.environ.get("TEST_DATABASE_URL")
    if not server_url:
        yield None
        return
    databases = _database_url(tmp_path_factory.mktemp("template"))
    url = next(databases)
    engine = sa.create_engine(url)
    db.metadata.create_all(engine)
    engine.dispose()  # a template must have no connection while it is copied
    yield sa.engine.make_url(url).database
    next(databases, None)  # dropped


@pytest.fixture
def database_url(
    request: pytest.FixtureRequest, tmp_path: Path, schema_template: str | None
) -> Iterator[str]:
    # A test that builds the schema itself (migrations, `make run`) or checks that a
    # database is left empty asks for an empty one with the empty_database marker.
    empty = request.node.get_closest_marker("empty_database") is not None
    yield from _database_url(tmp_path, None if empty else schema_template)


@pytest.fixture
def app_config(
    database_url: str, redis_url: str, simulator_url: str, simulator: Simulator
) -> dict[str, Any]:
    # Depends on `simulator` so every app test starts from a fault-free simulator, even
    # when it never touches the simulator itself.
    return {
        "TESTING": True,
        "SECRET_KEY": "test-secret",
        "SQLALCHEMY_DATABASE_URI": database_url,
        "REDIS_URL": redis_url,
        "RQ_QUEUE": "radar-test",
        "PROPERTYRADAR_API_URL": simulator_url,
        "PROPERTYRADAR_API_TOKEN": SIM_TOKEN,
        "PROPERTYRADAR_MAX_ATTEMPTS": 3,
        "PROPERTYRADAR_BACKOFF_BASE": 0.01,
        "PROPERTYRADAR_BACKOFF_MAX": 0.05,
        "PROPERTYRADAR_TIMEOUT": 5.0,
    }


@pytest.fixture
def app(app_config: dict[str, Any], redis_url: str) -> Iterator[Flask]:
    flask_app = create_app(app_config)
    with flask_app.app_context():
        db.create_all()
    redis = Redis.from_url(redis_url)
    redis.flushdb()
    previous, tasks.app = tasks.app, flask_app
    yield flask_app
    tasks.app = previous
    redis.flushdb()
    redis.close()
    with flask_app.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def make_user(app: Flask, email: str, *, admin: bool = False) -> User:
    with app.app_context():
        user = User(email=email, is_admin=admin)
        user.set_password(PASSWORD)
        db.session.add(user)
        db.session.commit()
        db.session.refresh(user)
        db.session.expunge(user)
        return user


def issue_token(app: Flask, email: str) -> str:
    token = new_token()
    with app.app_context():
        user = db.session.scalar(sa.select(User).where(User.email == email))
        user.api_token_hash = hash_token(token)
        db.session.commit()
    return token


@pytest.fixture
def user(app: Flask) -> User:
    return make_user(app, "owner@example.com")


@pytest.fixture
def other_user(app: Flask) -> User:
    return make_user(app, "other@example.com")


@pytest.fixture
def admin(app: Flask) -> User:
    return make_user(app, "admin@example.com", admin=True)


@pytest.fixture
def token(app: Flask, user: User) -> str:
    return issue_token(app, user.email)


@pytest.fixture
def api(client: FlaskClient, token: str) -> ApiClient:
    return ApiClient(client, token)


class ApiClient:
    """The Flask test client with a Bearer token on every request."""

    def __init__(self, client: FlaskClient, token: str) -> None:
        self.client, self.headers = client, {"Authorization": f"Bearer {token}"}

    def get(self, path: str, **kwargs: Any):
        return self.client.get(path, headers=self.headers, **kwargs)

    def post(self, path: str, **kwargs: Any):
        return self.client.post(path, headers=self.headers, **kwargs)


_CSRF_RE = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


def csrf_token_from(html: str) -> str:
    match = _CSRF_RE.search(html)
    assert match, "page has no CSRF token"
    return match.group(1)


class AuthActions:
    """Sign in through the real form, CSRF token included (CSRF stays on in tests)."""

    def __init__(self, client: FlaskClient) -> None:
        self.client = client

    def login(self, email: str = "owner@example.com", password: str = PASSWORD):
        page = self.client.get("/auth/login")
        return self.client.post(
            "/auth/login",
            data={"email": email, "password": password, "csrf_token": csrf_token_from(page.text)},
        )

    def csrf_token(self) -> str:
        # Signed in, the login page redirects to a page whose sign-out form has a token.
        return csrf_token_from(self.client.get("/auth/login", follow_redirects=True).text)


@pytest.fixture
def auth(client: FlaskClient) -> AuthActions:
    return AuthActions(client)


@pytest.fixture
def run_worker(app: Flask, redis_url: str):
    """Process everything queued, in this process (RQ's SimpleWorker, no fork)."""

    def run() -> None:
        connection = Redis.from_url(redis_url)
        try:
            SimpleWorker([app.config["RQ_QUEUE"]], connection=connection).work(
                burst=True, with_scheduler=False
            )
        finally:
            connection.close()

    return run


ROOT = Path(__file__).resolve().parent.parent


def worker_env(app_config: dict[str, Any]) -> dict[str, str]:
    """Environment for a real `worker.py` process pointed at this test's database and Redis."""
    return {
        **os.environ,
        "SECRET_KEY": app_config["SECRET_KEY"],
        "DATABASE_URL": app_config["SQLALCHEMY_DATABASE_URI"],
        "REDIS_URL": app_config["REDIS_URL"],
        "RQ_QUEUE": app_config["RQ_QUEUE"],
        "PROPERTYRADAR_API_URL": app_config["PROPERTYRADAR_API_URL"],
        "PROPERTYRADAR_API_TOKEN": app_config["PROPERTYRADAR_API_TOKEN"],
        "PROPERTYRADAR_MAX_ATTEMPTS": str(app_config["PROPERTYRADAR_MAX_ATTEMPTS"]),
        "PROPERTYRADAR_BACKOFF_BASE": str(app_config["PROPERTYRADAR_BACKOFF_BASE"]),
        "PROPERTYRADAR_BACKOFF_MAX": str(app_config["PROPERTYRADAR_BACKOFF_MAX"]),
    }


@pytest.fixture
def start_worker(app: Flask, app_config: dict[str, Any], tmp_path: Path):
    """Start real `worker.py` processes; all are stopped (SIGKILL if they hang) at teardown.
    Their output goes to worker-N.log in the test's tmp_path."""
    started: list[subprocess.Popen[bytes]] = []

    def start(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        log = open(tmp_path / f"worker-{len(started) + 1}.log", "wb")  # noqa: SIM115
        process = subprocess.Popen(
            [sys.executable, "worker.py", *args],
            cwd=ROOT,
            env={**worker_env(app_config), **(env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.terminate()
    for process in started:
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_until_listening(
    redis_url: str, queue_name: str, process: subprocess.Popen[bytes], workers: int = 1
) -> None:
    """Return once a started worker process (and `workers` in all) listens on the queue
    (fail if it exits)."""
    connection = Redis.from_url(redis_url)
    try:
        queue = Queue(queue_name, connection=connection)
        wait_for(
            lambda: (
                process.poll() is not None
                or Worker.count(connection=connection, queue=queue) >= workers
            ),
            timeout=60,
            what=f"{workers} worker(s) to listen on the queue",
        )
    finally:
        connection.close()
    assert process.poll() is None, "the worker exited at start-up (see its log in tmp_path)"


@pytest.fixture
def worker(app: Flask, redis_url: str, start_worker) -> subprocess.Popen[bytes]:
    """One real `worker.py` process, already listening on the test queue.

    A search submitted with "Process in background" unticked is queued and the request
    waits SEARCH_WAIT_SECONDS for it: long enough here for a slow CI machine, and it
    returns as soon as the job has finished.
    """
    app.config["SEARCH_WAIT_SECONDS"] = 30.0
    process = start_worker()
    wait_until_listening(redis_url, app.config["RQ_QUEUE"], process)
    return process
