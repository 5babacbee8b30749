"""`make run` (python -m devstack) as a user runs it: in a terminal, stopped with
Ctrl-C typed into that terminal, started again the next day.

Each stack runs under a real pseudo-terminal (pty.fork: the launcher is the terminal's
foreground process group, and writing ^C to the master is exactly what a keyboard does),
with its own instance directory and database.
"""

from __future__ import annotations

import os
import pty
import re
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import requests
import sqlalchemy as sa

from devstack import DevStack, Ports, StartupError, free_port
from devstack.stack import work_horses
from radar_app import alerts
from radar_app.cli import DEMO_LIST_SIZE, DEMO_SEARCH
from radar_app.config import PROJECT_ROOT, Config
from radar_app.extensions import db
from radar_app.models import (
    AlertChannel,
    BatchJob,
    BatchJobLog,
    JobStatus,
    Property,
    SavedSearch,
    SuppressedRecord,
    User,
)
from simulator import Simulator
from tests.conftest import SIM_TOKEN
from tests.helpers import MULTNOMAH, count_rows, job_row

ROOT = Path(__file__).resolve().parent.parent
CTRL_C = b"\x03"
# Settings of the surrounding shell that would point the stack at someone else's services.
_FOREIGN = {
    "REDIS_URL", "DATABASE_URL", "PORT", "REDIS_PORT", "PROPERTYRADAR_API_URL",
    "PROPERTYRADAR_API_TOKEN", "INSTANCE_DIR", "WORKERS", "SECRET_KEY",
}  # fmt: skip

# `make run` migrates its database from zero.
pytestmark = pytest.mark.empty_database


def wait_for(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


class TerminalStack:
    """One `python -m devstack` in a pseudo-terminal; its output is collected."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.log = log
        self.output = b""
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: the terminal's session leader, as a shell's job is
            os.chdir(ROOT)
            os.execve(sys.executable, [sys.executable, "-m", "devstack"], env)
        self.process = psutil.Process(self.pid)
        self.descendants: dict[int, psutil.Process] = {}
        self.returncode: int | None = None
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                chunk = os.read(self.fd, 4096)
            except OSError:  # EIO: every process holding the terminal has closed it
                return
            if not chunk:
                return
            self.output += chunk
            with self.log.open("ab") as handle:
                handle.write(chunk)

    @property
    def text(self) -> str:
        return self.output.decode(errors="replace")

    def banner_value(self, label: str) -> str:
        match = re.search(rf"^\s+{label}:?\s+(.+?)\s*$", self.text, re.MULTILINE)
        assert match, f"no {label!r} line in the output"
        return match.group(1)

    def wait_ready(self, timeout: float = 45) -> None:
        wait_for(
            lambda: "Press Ctrl-C to stop" in self.text or not self.alive(),
            timeout,
            "the stack to start",
        )
        assert self.alive(), f"devstack exited during start-up:\n{self.text}"
        self.remember_descendants()

    def remember_descendants(self) -> None:
        for child in self.process.children(recursive=True):
            self.descendants.setdefault(child.pid, child)

    def alive(self) -> bool:
        if self.returncode is not None:
            return False
        pid, status = os.waitpid(self.pid, os.WNOHANG)
        if pid == 0:
            return True
        self.returncode = os.waitstatus_to_exitcode(status)
        return False

    def ctrl_c(self) -> None:
        self.remember_descendants()
        os.write(self.fd, CTRL_C)

    def wait_stopped(self, timeout: float) -> float:
        started = time.monotonic()
        wait_for(lambda: not self.alive(), timeout, "devstack to exit after Ctrl-C")
        elapsed = time.monotonic() - started
        self._reader.join(timeout=10)
        return elapsed

    def survivors(self) -> list[psutil.Process]:
        left = []
        for process in self.descendants.values():
            try:
                if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                    left.append(process)
            except psutil.NoSuchProcess:
                pass
        return left

    def kill(self) -> None:
        """Teardown of a failed test: nothing may outlive it."""
        if self.alive():
            self.remember_descendants()
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
            self.returncode = -9
        for process in self.survivors():
            process.kill()
        os.close(self.fd)


@pytest.fixture
def stack_env(tmp_path: Path, database_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _FOREIGN}
    env.update(
        INSTANCE_DIR=str(tmp_path / "instance"),
        DATABASE_URL=database_url,
        WORKERS="2",
        TERM="xterm",
        PYTHONUNBUFFERED="1",
    )
    return env


@pytest.fixture
def start_stack(tmp_path: Path) -> Iterator[Callable[[dict[str, str]], TerminalStack]]:
    stacks: list[TerminalStack] = []

    def start(env: dict[str, str]) -> TerminalStack:
        stack = TerminalStack(env, tmp_path / f"devstack-{len(stacks) + 1}.log")
        stacks.append(stack)
        stack.wait_ready()
        return stack

    yield start
    for stack in stacks:
        stack.kill()


def test_ctrl_c_while_a_job_runs_stops_buying_and_the_next_run_finishes_the_job(
    stack_env: dict[str, str],
    start_stack: Callable[[dict[str, str]], TerminalStack],
    simulator: Simulator,
    simulator_url: str,
    database_url: str,
) -> None:
    # An external PropertyRadar (the test's simulator) with real latency: a purchase is in
    # flight most of the time, as with the real API.
    simulator.configure(latency_ms=250)
    env = {
        **stack_env,
        "PROPERTYRADAR_API_URL": simulator_url,
        "PROPERTYRADAR_API_TOKEN": SIM_TOKEN,
        "PORT": str(free_port()),
        "REDIS_PORT": str(free_port()),
        "PROPERTYRADAR_BATCH_SIZE": "20",
        "HEARTBEAT_INTERVAL": "0.5",
        "RECOVERY_INTERVAL": "1",
        "RECOVERY_STALE_AFTER": "3",
    }
    stack = start_stack(env)
    url, token = stack.banner_value("radar_app is running"), stack.banner_value("API token")
    api = requests.Session()
    api.headers["Authorization"] = f"Bearer {token}"
    created = api.post(
        f"{url}/api/batch-jobs", json={"criteria": [{"name": "State", "value": ["ID"]}]}
    )
    assert created.status_code == 201, created.text
    job_url = f"{url}/api/batch-jobs/{created.json()['id']}"
    wait_for(lambda: api.get(job_url).json()["processed_records"] >= 60, 30, "3 chunks stored")

    bought_at_ctrl_c = simulator.stats(tail=0)["purchase_requests"]
    stack.ctrl_c()
    stop_seconds = stack.wait_stopped(timeout=45)
    bought_at_stop = simulator.stats(tail=0)["purchase_requests"]
    time.sleep(1.0)  # longer than a purchase takes here: an orphan would have bought again
    bought_later = simulator.stats(tail=0)["purchase_requests"]

    output = stack.text
    assert stack.returncode == 0, output
    assert "Traceback" not in output
    in_flight = Config.PROPERTYRADAR_CONCURRENCY  # the default: purchases a job has in flight
    assert bought_at_stop <= bought_at_ctrl_c + in_flight, "bought more than those in flight"
    assert bought_later == bought_at_stop, "something kept buying after the stop"
    assert not stack.survivors(), f"left running: {stack.survivors()}"
    assert stop_seconds < 20, f"stopping took {stop_seconds:.1f}s"

    engine = sa.create_engine(database_url)
    job_row = sa.text("SELECT status, processed_records FROM batch_jobs")
    with engine.connect() as conn:
        status, processed = conn.execute(job_row).one()
        stored = conn.scalar(sa.text("SELECT count(*) FROM properties"))
    assert status == "PROCESSING", "left resumable, not FAILED or COMPLETED"
    assert 60 <= processed < 400
    # Everything bought before the stop is stored: at most the chunks in flight are missing.
    billed = simulator.stats(tail=0)["billed_records"]
    assert billed - 20 * in_flight <= stored <= billed

    # The next day: same instance directory and database, a new Redis.
    again = start_stack(env)
    assert again.banner_value("API token") == token
    wait_for(lambda: api.get(job_url).json()["status"] == "COMPLETED", 40, "the job to resume")
    stats = simulator.stats(tail=0)
    with engine.connect() as conn:
        stored = conn.scalar(sa.text("SELECT count(*) FROM properties"))
    engine.dispose()
    assert stored == 400
    assert stats["billed_records"] == len(stats["billed_radar_ids"]) == stored, (
        "a record was bought twice"
    )
    again.ctrl_c()
    again.wait_stopped(timeout=30)
    assert "Traceback" not in again.text
    assert not again.survivors()


def test_idle_ctrl_c_is_clean_and_login_token_ports_survive_a_restart(
    stack_env: dict[str, str], start_stack: Callable[[dict[str, str]], TerminalStack]
) -> None:
    # Demo mode: the stack starts its own simulator and Redis on its remembered ports.
    first = start_stack(stack_env)
    url, token = first.banner_value("radar_app is running"), first.banner_value("API token")
    login = first.banner_value("Sign in")
    rq_info = first.banner_value("Queue")

    # The queue command works exactly as printed, from any directory.
    result = subprocess.run(
        shlex.split(rq_info), cwd="/", capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stderr
    assert "worker" in result.stdout

    token_file = Path(stack_env["INSTANCE_DIR"]) / "demo_api_token"
    assert token_file.stat().st_mode & 0o777 == 0o600
    # The demo inbox is up, and the demo account's alerts go to it.
    inbox = first.banner_value("Alerts").rsplit(" ", 1)[-1]
    assert requests.get(f"{inbox}/", timeout=10).status_code == 200
    first.ctrl_c()
    stop_seconds = first.wait_stopped(timeout=30)
    assert first.returncode == 0
    assert "Traceback" not in first.text, first.text
    assert not first.survivors(), f"left running: {first.survivors()}"
    assert stop_seconds < 15

    second = start_stack(stack_env)
    assert second.banner_value("radar_app is running") == url
    assert second.banner_value("API token") == token
    assert second.banner_value("Sign in") == login
    assert second.banner_value("Queue") == rq_info
    answer = requests.get(f"{url}/api/batch-jobs", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200, "yesterday's token no longer works"
    second.ctrl_c()
    second.wait_stopped(timeout=30)
    assert "Traceback" not in second.text
    assert not second.survivors()
    # The secrets appear in the banner only, never in a log line.
    assert second.text.count(token) == 2  # the "API token" line and the curl example


@pytest.mark.slow
@pytest.mark.parametrize("concurrency", ["1", "2"], ids=["one-purchase-at-a-time", "two"])
def test_sigterm_to_worker_and_horse_stores_the_chunk_in_flight_and_buys_no_more(
    app, api, simulator: Simulator, start_worker, tmp_path: Path, concurrency: str
) -> None:
    """What systemd (or a deploy) does: SIGTERM to the worker and its work horse at once."""
    simulator.configure(latency_ms=150)
    settings = {
        "PROPERTYRADAR_BATCH_SIZE": "100",
        "PROPERTYRADAR_CONCURRENCY": concurrency,
        "HEARTBEAT_INTERVAL": "0.5",
        "RECOVERY_INTERVAL": "0.5",
        "RECOVERY_STALE_AFTER": "2",
    }
    created = api.post("/api/batch-jobs", json={"criteria": MULTNOMAH})
    assert created.status_code == 201, created.json
    job_id = created.json["id"]
    worker = start_worker(env=settings)
    wait_for(lambda: job_row(app, job_id).processed_records >= 300, 30, "3 chunks stored")
    horses = work_horses(worker.pid)
    assert len(horses) == 1
    bought_at_signal = simulator.stats(tail=0)["purchase_requests"]
    worker.send_signal(signal.SIGTERM)
    horses[0].send_signal(signal.SIGTERM)
    worker.wait(timeout=20)
    bought_at_exit = simulator.stats(tail=0)["purchase_requests"]

    job = job_row(app, job_id)
    stats = simulator.stats(tail=0)
    assert not psutil.pid_exists(horses[0].pid) or horses[0].status() == psutil.STATUS_ZOMBIE
    assert bought_at_exit <= bought_at_signal + int(concurrency)  # only those in flight
    assert job.status == JobStatus.PROCESSING and job.processed_records < 2000
    # Nothing paid for is lost: every billed record is stored.
    assert count_rows(app, Property) == stats["billed_records"] == job.processed_records
    assert "Traceback" not in (tmp_path / "worker-1.log").read_text()

    start_worker(env=settings)  # the next start: recovery requeues it from its checkpoint
    wait_for(lambda: job_row(app, job_id).status == JobStatus.COMPLETED, 40, "the job to resume")
    stats = simulator.stats(tail=0)
    assert stats["billed_records"] == len(stats["billed_radar_ids"]) == 2000
    assert count_rows(app, Property) == 2000
    with app.app_context():
        messages = db.session.scalars(
            sa.select(BatchJobLog.message).join(BatchJob).where(BatchJob.job_id == job_id)
        ).all()
    assert any(m.startswith("Stopped after") and "shutting down" in m for m in messages)


def test_a_taken_port_is_reported_and_its_replacement_kept(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ports = Ports(tmp_path / "devstack.json")
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        ports.chosen["web"] = taken
        ports.save()
        replacement = Ports(tmp_path / "devstack.json").pick("web", {})
        assert replacement != taken
        assert f"Port {taken} (web) is in use" in capsys.readouterr().err
        with pytest.raises(StartupError, match=f"PORT={taken} is in use"):
            Ports(tmp_path / "devstack.json").pick("web", {"PORT": str(taken)})
    Ports(tmp_path / "devstack.json", {"web": replacement}).save()
    assert Ports(tmp_path / "devstack.json").pick("web", {}) == replacement


def test_a_second_stack_on_the_same_instance_directory_is_refused(tmp_path: Path) -> None:
    env = {"INSTANCE_DIR": str(tmp_path)}
    first = DevStack(dict(env))
    first.take_lock()
    with pytest.raises(StartupError, match="Another `make run` is using"):
        DevStack(dict(env)).take_lock()
    first.release_lock()
    again = DevStack(dict(env))
    again.take_lock()  # free again once the first one stopped
    again.release_lock()


def test_demo_login_and_token_are_kept_until_revoked(
    app, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("radar_app.cli.INSTANCE_DIR", tmp_path)
    runner = app.test_cli_runner()

    def demo() -> list[str]:
        result = runner.invoke(args=["users", "demo", "--with-token"])
        assert result.exit_code == 0, result.output
        return result.output.split()

    email, password, token = demo()
    assert demo() == [email, password, token]
    for name in ("demo_password", "demo_api_token"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o600
    client = app.test_client()
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/batch-jobs", headers=headers).status_code == 200

    # Revoked on purpose: the next run issues a new one instead of printing a dead token.
    assert runner.invoke(args=["users", "revoke-token", email]).exit_code == 0
    _, _, renewed = demo()
    assert renewed != token
    assert client.get("/api/batch-jobs", headers=headers).status_code == 401
    renewed_headers = {"Authorization": f"Bearer {renewed}"}
    assert client.get("/api/batch-jobs", headers=renewed_headers).status_code == 200


def test_the_demo_account_starts_with_a_saved_search_and_its_suppression_list(
    app, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, simulator
) -> None:
    monkeypatch.setattr("radar_app.cli.INSTANCE_DIR", tmp_path)
    app.config["DEMO_INBOX_URL"] = "http://127.0.0.1:5002"
    runner = app.test_cli_runner()
    for _ in range(2):  # made once, not again on the next start
        assert runner.invoke(args=["users", "demo"]).exit_code == 0
    with app.app_context():
        [search] = db.session.scalars(sa.select(SavedSearch)).all()
        assert search.name == DEMO_SEARCH.name and search.suppression_list_id is not None
        listed = db.session.scalar(
            sa.select(sa.func.count()).where(SuppressedRecord.list_id == search.suppression_list_id)
        )
        assert listed == DEMO_LIST_SIZE
        assert search.schedule is not None and search.schedule.max_cost == 5.0
        channels = db.session.scalars(sa.select(AlertChannel).order_by(AlertChannel.kind)).all()
        assert [(c.kind, c.target) for c in channels] == [
            ("email", "demo@example.com"), ("webhook", "http://127.0.0.1:5002/webhook")
        ]  # fmt: skip


def test_the_demo_inbox_receives_real_mail_and_webhooks(app, user, tmp_path: Path) -> None:
    """devstack.inbox as `make run` starts it: an alert's email over SMTP and its webhook
    over HTTP both show on its page."""
    http_port, smtp_port = free_port(), free_port()
    inbox = subprocess.Popen(
        [sys.executable, "-m", "devstack.inbox", "--http-port", str(http_port),
         "--smtp-port", str(smtp_port)], cwd=PROJECT_ROOT,
    )  # fmt: skip
    base = f"http://127.0.0.1:{http_port}"
    try:
        wait_for(lambda: _answers(f"{base}/messages.json"), 20, "the inbox")
        app.config["ALERT_SMTP_URL"] = f"smtp://127.0.0.1:{smtp_port}"
        with app.app_context():
            owner = db.session.get(User, user.id)
            alerts.add_channel(db.session, owner, "webhook", f"{base}/webhook", ["job.failed"])
            alerts.add_channel(db.session, owner, "email", "me@example.com", ["job.failed"])
            settings = alerts.AlertSettings.from_config(app.config)
            ids = alerts.emit(db.session, user.id, "job.failed", {"name": "Demo <b>job</b>"},
                              settings)  # fmt: skip
            assert all(alerts.deliver(db.session, i, settings) for i in ids)
        received = requests.get(f"{base}/messages.json", timeout=10).json()
        assert [h["event"] for h in received["webhooks"]] == ["job.failed"]
        assert received["webhooks"][0]["signature"].startswith("sha256=")
        assert [m["to"] for m in received["mails"]] == ["me@example.com"]
        page = requests.get(f"{base}/", timeout=10).text
        assert "Demo &lt;b&gt;job&lt;/b&gt;" in page and "<b>job</b>" not in page
    finally:
        inbox.terminate()
        inbox.wait(timeout=10)


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False
