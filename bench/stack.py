"""The processes a benchmark run needs: Redis, the simulator, RQ workers, gunicorn.

Everything listens on 127.0.0.1 only, and every child is started by this module and
stopped by it (by its own pid), never by name.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import psutil
import redis
import requests
from rq import Worker

from devstack import RedisServer, free_port, stop, wait_until
from radar_app.config import PROJECT_ROOT

PYTHON = sys.executable
TOKEN = "bench-token"


def _json_request(url: str, payload: dict | None = None) -> Any:
    data = None if payload is None else json.dumps(payload).encode()
    request = urllib.request.Request(url, data=data, method="GET" if data is None else "POST")
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - loopback only
        return json.loads(response.read())


class Simulator:
    """The PropertyRadar simulator in its own process (its CPU is not ours to measure)."""

    def __init__(self, scale: float, log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = log.open("ab")
        self.process = subprocess.Popen(
            [
                PYTHON, "-m", "simulator",
                "--host", "127.0.0.1", "--port", str(self.port),
                "--token", TOKEN, "--scale", str(scale),
            ],
            cwd=PROJECT_ROOT, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        # Building a 1.2M-record dataset takes ~20 s on a busy 2-core machine.
        wait_until(self.healthy, 180, "simulator", interval=0.2)

    def healthy(self) -> bool:
        if self.process.poll() is not None:
            raise RuntimeError(f"simulator exited with {self.process.returncode}")
        return bool(_json_request(f"{self.url}/_sim/health").get("ok"))

    def configure(self, **changes: Any) -> None:
        _json_request(f"{self.url}/_sim/config", changes)

    def reset(self) -> None:
        # Also frees the simulator's per-record billing log between scenarios.
        _json_request(f"{self.url}/_sim/reset", {})

    def stats(self) -> dict[str, Any]:
        """What was served and billed since the last reset, without the request log."""
        stats: dict[str, Any] = _json_request(f"{self.url}/_sim/stats?tail=0")
        return stats

    def stop(self) -> None:
        stop(self.process)
        self._log.close()


class Stack:
    """Redis + simulator, shared by every database; workers and web per database."""

    def __init__(self, workdir: Path, scale: float) -> None:
        self.workdir = workdir
        self.redis = RedisServer().start()
        self.simulator = Simulator(scale, workdir / "simulator.log")
        self.workers: list[subprocess.Popen[bytes]] = []
        self.worker_names: list[str] = []
        self.web: subprocess.Popen[bytes] | None = None
        self.web_url = ""
        self.env: dict[str, str] = {}

    def use_database(self, database_url: str, queue: str) -> None:
        self.env = {
            **os.environ,
            "SECRET_KEY": "bench-secret-key",
            "DATABASE_URL": database_url,
            "REDIS_URL": self.redis.url,
            "RQ_QUEUE": queue,
            "PROPERTYRADAR_API_URL": self.simulator.url,
            "PROPERTYRADAR_API_TOKEN": TOKEN,
            "PROPERTYRADAR_BATCH_SIZE": "400",
            # PROPERTYRADAR_CONCURRENCY comes from the caller's environment like everything
            # else (unset: the app's default); scenarios that measure another value pass it
            # to start_workers.
            "LOGIN_RATE_LIMIT": "1000 per minute",
            "JOB_CREATE_RATE_LIMIT": "1000 per minute",
            "PYTHONUNBUFFERED": "1",
        }

    def flask(self, *args: str) -> str:
        return subprocess.run(
            [PYTHON, "-m", "flask", "--app", "wsgi", *args],
            cwd=PROJECT_ROOT, env=self.env, check=True, capture_output=True, text=True,
        ).stdout  # fmt: skip

    def _spawn(
        self, args: list[str], log: str, env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        with (self.workdir / log).open("ab") as out:
            return subprocess.Popen(
                args, cwd=PROJECT_ROOT, env=env or self.env, stdout=out,
                stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip

    def start_workers(self, count: int, settings: dict[str, str] | None = None) -> None:
        """`count` fresh worker.py processes; `settings` are environment variables for
        them alone (e.g. PROPERTYRADAR_CONCURRENCY), on top of the stack's."""
        self.stop_workers()
        env = {**self.env, **(settings or {})}
        for number in range(count):
            name = f"bench-{os.getpid()}-{number + 1}-{time.monotonic_ns()}"
            self.worker_names.append(name)
            self.workers.append(
                self._spawn([PYTHON, "worker.py", "--name", name], f"worker-{number + 1}.log", env)
            )
        self.wait_workers_idle()

    def wait_workers_idle(self, timeout: float = 120) -> None:
        """Until every worker is registered with RQ and waiting for a job: a scenario
        that times from job creation must not count a worker's start-up, nor the end of
        the previous job (the horse reporting back), as the new job's time."""
        connection = redis.Redis.from_url(self.redis.url)

        def idle() -> bool:
            for worker in self.workers:
                if worker.poll() is not None:
                    raise RuntimeError(f"worker exited with {worker.returncode}")
            states = {w.name: w.get_state() for w in Worker.all(connection=connection)}
            return all(states.get(name) == "idle" for name in self.worker_names)

        try:
            wait_until(idle, timeout, "idle RQ workers", interval=0.02)
        finally:
            connection.close()

    def stop_workers(self) -> None:
        for worker in self.workers:
            stop(worker)
        self.workers = []
        self.worker_names = []

    def start_web(self) -> None:
        port = free_port()
        self.web = self._spawn(
            [
                PYTHON, "-m", "gunicorn", "wsgi:app",
                "--bind", f"127.0.0.1:{port}",
                "--workers", "2", "--threads", "8",
            ],
            "web.log",
        )  # fmt: skip
        self.web_url = f"http://127.0.0.1:{port}"

        def up() -> bool:
            return requests.get(f"{self.web_url}/auth/login", timeout=2).status_code == 200

        wait_until(lambda: self.web.poll() is None and up(), 60, "gunicorn", interval=0.2)

    def stop_web(self) -> None:
        if self.web is not None:
            stop(self.web)
            self.web = None

    def login(self, email: str, password: str) -> requests.Session:
        session = requests.Session()
        page = session.get(f"{self.web_url}/auth/login", timeout=10).text
        token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page)
        if token is None:
            raise RuntimeError("no CSRF token on the login page")
        response = session.post(
            f"{self.web_url}/auth/login",
            data={"email": email, "password": password, "csrf_token": token.group(1)},
            timeout=10,
            allow_redirects=False,
        )
        if response.status_code != 302:
            raise RuntimeError(f"login failed: HTTP {response.status_code}")
        return session

    def api_token(self, email: str) -> str:
        """A new API token for `email` (`flask users token` prints it on its last line)."""
        return self.flask("users", "token", email).strip().splitlines()[-1]

    def close(self) -> None:
        self.stop_web()
        self.stop_workers()
        self.simulator.stop()
        self.redis.stop()


def cpu_seconds(pids: Iterable[int]) -> float:
    """CPU time (user + system) these processes have used so far, with their children
    that have exited and been waited for (a worker's work horses, once it is idle)."""
    total = 0.0
    for pid in pids:
        try:
            times = psutil.Process(pid).cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system + times.children_user + times.children_system
    return total


class PeakRss:
    """Samples the RSS of some processes and their children every `interval` seconds;
    `peak` is the largest single process seen (a work horse is a forked child)."""

    def __init__(self, pids: Iterable[int], interval: float = 0.05) -> None:
        self.pids = list(pids)
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _processes(self) -> list[psutil.Process]:
        found = []
        for pid in self.pids:
            try:
                parent = psutil.Process(pid)
                found.append(parent)
                found.extend(parent.children(recursive=True))
            except psutil.NoSuchProcess:
                continue
        return found

    def sample(self) -> None:
        for process in self._processes():
            try:
                self.peak = max(self.peak, process.memory_info().rss)
            except psutil.NoSuchProcess:
                continue

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def __enter__(self) -> PeakRss:
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()

    @property
    def peak_mb(self) -> float:
        return round(self.peak / 2**20, 1)
