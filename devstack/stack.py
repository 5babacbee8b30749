"""The stack ``make run`` starts and stops: Redis, the simulator (demo mode), RQ workers
and the web server, on ports remembered in the instance directory."""

from __future__ import annotations

import fcntl
import json
import os
import shlex
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from devstack.processes import RedisServer, free_port, port_is_free, stop, wait_until
from radar_app.config import PROJECT_ROOT, Config, settings_from_env

SIMULATOR_TOKEN = "demo-token"
# Preferred ports of a fresh instance directory: (environment override, default).
DEFAULT_PORTS = {
    "web": ("PORT", 5000),
    "redis": ("REDIS_PORT", 6380),
    "simulator": (None, 5001),
    "inbox": (None, 5002),  # the demo inbox's page and webhook receiver (devstack.inbox)
    "smtp": (None, 5025),  # its SMTP server
}
# How long a work horse may take to store the chunk it is buying before it is killed
# (that chunk is then bought again on resume). Covers a purchase at the default read timeout.
DEFAULT_STOP_TIMEOUT = Config.PROPERTYRADAR_TIMEOUT + 10


def _http_ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310 - loopback only
        return response.status < 500


def redacted(url: str) -> str:
    """The URL without its password, for display."""
    parts = urllib.parse.urlsplit(url)
    if not parts.password:
        return url
    netloc = f"{parts.username or ''}:***@{parts.hostname}" + (
        f":{parts.port}" if parts.port else ""
    )
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def say(message: str) -> None:
    # One write: children share the terminal, and print() writes the newline separately.
    sys.stderr.write(message + "\n")
    sys.stderr.flush()


class StartupError(RuntimeError):
    """The stack cannot start; the message says why and what to do."""


@dataclass
class Ports:
    """The stack's ports, kept in INSTANCE_DIR/devstack.json so they survive restarts."""

    path: Path
    chosen: dict[str, int] = field(default_factory=dict)

    def pick(self, name: str, env: dict[str, str]) -> int:
        env_name, default = DEFAULT_PORTS[name]
        if env_name and env.get(env_name):
            port = int(env[env_name])
            if not port_is_free(port):
                raise StartupError(
                    f"{env_name}={port} is in use by another program; choose another"
                )
            self.chosen[name] = port
            return port
        stored = self._stored().get(name, default)
        port = stored if port_is_free(stored) else free_port()
        if port != stored:
            hint = f" (set {env_name} to choose one)" if env_name else ""
            say(
                f"Port {stored} ({name}) is in use by another program; using {port} instead, "
                f"and next time too{hint}."
            )
        self.chosen[name] = port
        return port

    def save(self) -> None:
        self.path.write_text(json.dumps({**self._stored(), **self.chosen}, indent=2) + "\n")

    def _stored(self) -> dict[str, int]:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        return {k: v for k, v in data.items() if isinstance(v, int) and 0 < v < 65536}


@dataclass
class _Child:
    name: str
    process: subprocess.Popen[bytes]


class DevStack:
    """The processes of one `make run`, started and stopped in order."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.python = sys.executable
        self.instance_dir = Path(env.get("INSTANCE_DIR") or PROJECT_ROOT / "instance").resolve()
        self.env["INSTANCE_DIR"] = str(self.instance_dir)
        self.settings: dict[str, Any] = {
            name: getattr(Config, name) for name in vars(Config) if name.isupper()
        } | settings_from_env(env)
        self.stop_timeout = _number(env, "DEVSTACK_STOP_TIMEOUT", DEFAULT_STOP_TIMEOUT)
        self.worker_count = int(_number(env, "WORKERS", 2))
        self.redis: RedisServer | None = None
        self.simulator: _Child | None = None
        self.inbox: _Child | None = None
        self.inbox_url = ""
        self.workers: list[_Child] = []
        self.scheduler: _Child | None = None
        self.web: _Child | None = None
        self.url = ""
        self.demo = False
        self._lock: IO[str] | None = None
        self._told: set[int] = set()  # work horses sent SIGTERM
        self._signalled_at = 0.0
        self._seen: dict[int, Any] = {}  # pid -> psutil.Process of everything we started

    # -- starting -------------------------------------------------------------------

    def start(self) -> None:
        self.instance_dir.mkdir(parents=True, exist_ok=True)
        self.take_lock()
        ports = Ports(self.instance_dir / "devstack.json")
        own_redis = not self.env.get("REDIS_URL")
        if own_redis:
            self.redis = RedisServer(ports.pick("redis", self.env)).start()
            self.env["REDIS_URL"] = self.redis.url
        self.demo = not self.env.get("PROPERTYRADAR_API_TOKEN")
        if self.demo:
            self._start_simulator(ports.pick("simulator", self.env))
            self._start_inbox(ports.pick("inbox", self.env), ports.pick("smtp", self.env))
        web_port = ports.pick("web", self.env)
        ports.save()
        self._fresh_metrics_directory()

        self._flask("db", "upgrade")
        login = self._flask("users", "demo", "--with-token").strip().splitlines()
        try:
            self.email, self.password, self.token = login[-1].split()
        except (IndexError, ValueError):
            raise StartupError("flask users demo printed no login") from None
        if own_redis:
            self._resume_interrupted_jobs()

        for number in range(self.worker_count):
            name = f"radar-worker-{os.getpid()}-{number + 1}"
            self.workers.append(self._spawn(name, self.python, "worker.py", "--name", name))
        # RQ's cron scheduler: queues the schedules' check every minute (radar_app.schedules).
        rq = str(Path(self.python).parent / "rq")
        self.scheduler = self._spawn(
            "scheduler", rq, "cron", "radar_app/cron_config.py",
            "-u", self.env["REDIS_URL"], "--logging-level", "WARNING",
        )  # fmt: skip
        self.web = self._spawn(
            "web server",
            self.python, "-m", "gunicorn", "wsgi:app",
            "--bind", f"127.0.0.1:{web_port}",
            "--workers", "2", "--threads", "8",
            # Requests still running get this long after Ctrl-C.
            "--graceful-timeout", "5",
            "--access-logfile", "-",
            # Its default socket, ~/.gunicorn/gunicorn.ctl, is shared by every gunicorn of
            # this user: a second stack would take it over.
            "--no-control-socket",
        )  # fmt: skip
        self.url = f"http://127.0.0.1:{web_port}"
        wait_until(lambda: _http_ok(f"{self.url}/auth/login"), 30, "web server")

    def take_lock(self) -> None:
        """One stack per instance directory: two would share its database and ports."""
        self._lock = open(self.instance_dir / "devstack.lock", "a+")  # noqa: SIM115
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._lock.close()
            self._lock = None
            raise StartupError(
                f"Another `make run` is using {self.instance_dir}; stop it first "
                "(or set INSTANCE_DIR to run a second, separate stack)"
            ) from None

    def release_lock(self) -> None:
        if self._lock:
            self._lock.close()
            self._lock = None

    def _start_simulator(self, port: int) -> None:
        self.env["PROPERTYRADAR_API_URL"] = f"http://127.0.0.1:{port}"
        self.env["PROPERTYRADAR_API_TOKEN"] = SIMULATOR_TOKEN
        args = [
            "--port", str(port),
            "--token", SIMULATOR_TOKEN,
            "--latency-ms", self.env.get("SIMULATOR_LATENCY_MS", "250"),
            # The simulator bills at the price the app estimates with: one price, not two.
            "--price", str(self.settings["PRICE_PER_EXPORT"]),
        ]  # fmt: skip
        self.simulator = self._spawn("simulator", self.python, "-m", "simulator", *args)
        api = self.env["PROPERTYRADAR_API_URL"]
        wait_until(lambda: _http_ok(f"{api}/_sim/config"), 30, "simulator")

    def _start_inbox(self, http_port: int, smtp_port: int) -> None:
        """The demo's SMTP server and webhook receiver: alerts go there unless the
        environment names a real SMTP server, and the demo account's channels point there
        (radar_app.cli's demo seeding reads DEMO_INBOX_URL)."""
        self.inbox_url = f"http://127.0.0.1:{http_port}"
        self.env["DEMO_INBOX_URL"] = self.inbox_url
        if not self.env.get("ALERT_SMTP_URL"):
            self.env["ALERT_SMTP_URL"] = f"smtp://127.0.0.1:{smtp_port}"
            self.env.setdefault("ALERT_ADMIN_EMAIL", "ops@radar.local")
        self.inbox = self._spawn(
            "demo inbox", self.python, "-m", "devstack.inbox",
            "--http-port", str(http_port), "--smtp-port", str(smtp_port),
        )  # fmt: skip
        wait_until(lambda: _http_ok(f"{self.inbox_url}/messages.json"), 30, "demo inbox")

    def _fresh_metrics_directory(self) -> None:
        """Where the web workers and work horses write their counts for /metrics
        (radar_app/metrics.py), emptied: the files of a previous run name processes that
        are gone, and new ones could take their pids."""
        directory = Path(
            self.env.get("PROMETHEUS_MULTIPROC_DIR") or self.instance_dir / "prometheus"
        )
        directory.mkdir(parents=True, exist_ok=True)
        for stale in directory.glob("*.db"):
            stale.unlink()
        self.env["PROMETHEUS_MULTIPROC_DIR"] = str(directory)

    def _resume_interrupted_jobs(self) -> None:
        """Requeue what the last stop left PROCESSING (or queued in the Redis that went away
        with it) now, instead of after RECOVERY_STALE_AFTER. This Redis is brand new, so no
        worker can hold those jobs; two missed heartbeats guard against one on another host."""
        stale_after = 2 * float(self.settings["HEARTBEAT_INTERVAL"])
        report = self._flask("jobs", "recover", "--stale-after", str(stale_after))
        resumed = sum(
            int(line.rsplit(":", 1)[1])
            for line in report.splitlines()
            if line.startswith(("Requeued", "Re-enqueued"))
        )
        if resumed:
            say(f"Resuming {resumed} job(s) that the last stop interrupted.")

    def _flask(self, *args: str) -> str:
        result = subprocess.run(
            [self.python, "-m", "flask", "--app", "wsgi", *args],
            cwd=PROJECT_ROOT, env=self.env, capture_output=True, text=True,
            start_new_session=True,  # Ctrl-C is the launcher's to handle
        )  # fmt: skip
        if result.returncode != 0:
            raise StartupError(f"flask {' '.join(args[:2])} failed:\n{result.stderr.strip()}")
        return result.stdout

    def _spawn(self, name: str, *args: str) -> _Child:
        # Own session: Ctrl-C reaches only this launcher, which then stops the children in
        # order (web, workers, simulator, Redis) instead of all at once.
        process = subprocess.Popen(
            list(args), cwd=PROJECT_ROOT, env=self.env, start_new_session=True
        )
        return _Child(name, process)

    def banner(self) -> str:
        redis_url = self.env["REDIS_URL"]
        rq = Path(self.python).parent / "rq"
        if urllib.parse.urlsplit(redis_url).password:
            rq_info = f'{shlex.quote(str(rq))} info -u "$REDIS_URL"'
        else:
            rq_info = shlex.join([str(rq), "info", "-u", redis_url])
        api_label = self.env.get("PROPERTYRADAR_API_URL", "https://api.propertyradar.com")
        if self.demo:
            api_label = f"PropertyRadar simulator at {api_label}"
        inbox = (
            f"\n  Alerts:    demo inbox (email and webhooks) at {self.inbox_url}"
            if self.inbox
            else ""
        )
        return f"""
  radar_app is running: {self.url}
  Sign in:   {self.email} / {self.password}
  API token: {self.token}
  Redis:     {redacted(redis_url)}
  Queue:     {rq_info}
  API:       {api_label}{inbox}
  Metrics:   {self.url}/metrics (Prometheus: the demo admin's sign-in or API token)
  Data:      {self.instance_dir} (login, token and ports stay the same next time)

  curl -X POST -H "Authorization: Bearer {self.token}" -H 'Content-Type: application/json' \\
       -d '{{"criteria":[{{"name":"State","value":["CA"]}}]}}' {self.url}/api/batch-jobs

  Press Ctrl-C to stop.
"""

    def children(self) -> list[_Child]:
        started = [self.simulator, self.inbox, *self.workers, self.scheduler, self.web]
        return [child for child in started if child is not None]

    def wait(self) -> int:
        """Until a child exits (1); Ctrl-C raises KeyboardInterrupt out of here."""
        while True:
            self._remember_descendants()
            for child in self.children():
                if child.process.poll() is not None:
                    say(f"The {child.name} exited (code {child.process.returncode}); stopping.")
                    return 1
            if self.redis and self.redis.process and self.redis.process.poll() is not None:
                say("Redis exited; stopping.")
                return 1
            time.sleep(0.5)

    def _remember_descendants(self) -> None:
        import psutil

        try:
            for process in psutil.Process().children(recursive=True):
                self._seen.setdefault(process.pid, process)
        except psutil.Error:
            pass

    # -- stopping -------------------------------------------------------------------

    def stop(self, hurry: Callable[[], bool]) -> None:
        """Stop in order; `hurry()` turns true on a second Ctrl-C: kill work horses now.

        The workers and their horses are told first, since a horse with purchases in flight
        sends the next one as each is answered: every step before their signal (finding
        the other processes, telling the web server and the scheduler, which only stop
        new jobs) was time to buy more, enough on a busy machine for a purchase beyond
        those in flight at the Ctrl-C. Nothing waits for anything to exit until all are
        told.
        """
        if self.workers:
            say("Stopping the workers...")
            self._signal_workers()
        self._remember_descendants()
        if self.web:
            say("Stopping the web server...")
            _signal(self.web.process.pid, signal.SIGTERM)
        if self.scheduler:
            _signal(self.scheduler.process.pid, signal.SIGTERM)  # queue no more checks
        if self.web:
            stop(self.web.process, grace=10)
        if self.workers:
            self._wait_for_workers(hurry)
        if self.scheduler:
            stop(self.scheduler.process, grace=5)
        if self.simulator:
            say("Stopping the simulator...")
            stop(self.simulator.process)
        if self.inbox:
            stop(self.inbox.process)
        if self.redis:
            say("Stopping Redis...")
            self.redis.stop()
        self._kill_leftovers()
        self.release_lock()
        say("Stopped.")

    def _signal_workers(self) -> None:
        """SIGTERM to every worker (RQ's warm shutdown: take no new job) and to every work
        horse (tasks.run_batch_job: store the chunk paid for, buy no more, return)."""
        self._signalled_at = time.monotonic()
        for worker in self.workers:
            if worker.process.poll() is None:
                _signal(worker.process.pid, signal.SIGTERM)
        horses = _horses([w.process for w in self.workers])
        for horse in horses:
            self._told.add(horse.pid)
            _signal(horse.pid, signal.SIGTERM)
        if horses:
            self._say_waiting(len(horses))

    def _say_waiting(self, running: int) -> None:
        say(
            f"Waiting for {running} running job(s) to store the chunk already paid for "
            f"(at most {self.stop_timeout:.0f} s; Ctrl-C again to stop them at once)."
        )

    def _wait_for_workers(self, hurry: Callable[[], bool]) -> None:
        """Until workers and horses have exited; SIGKILL for horses after stop_timeout."""
        workers = [w.process for w in self.workers]
        started = self._signalled_at
        told = self._told
        killed = False
        while any(worker.poll() is None for worker in workers):
            # RQ forks each horse into its own process group, so the worker's signal does
            # not reach it. A worker may fork one more right after its signal: look again.
            horses = _horses(workers)
            new = [horse for horse in horses if horse.pid not in told]
            for horse in new:
                told.add(horse.pid)
                _signal(horse.pid, signal.SIGTERM)
            if new:
                self._say_waiting(len(new))
            overdue = time.monotonic() - started > self.stop_timeout
            if horses and not killed and (hurry() or overdue):
                say(
                    f"Killing {len(horses)} work horse(s); the chunk they were buying is "
                    "bought again when the job resumes."
                )
                for horse in horses:
                    _signal(horse.pid, signal.SIGKILL)
                killed = True
            if not horses and time.monotonic() - started > self.stop_timeout + 10:
                break  # a worker that ignores SIGTERM without a job: killed below
            time.sleep(0.1)
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
            worker.wait()

    def _kill_leftovers(self) -> None:
        import psutil

        for process in self._seen.values():
            try:
                if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                    say(f"Killing leftover process {process.pid} ({process.name()}).")
                    process.kill()
            except psutil.Error:
                pass


def _horses(workers: list[subprocess.Popen[bytes]]) -> list[Any]:
    return [horse for worker in workers for horse in work_horses(worker.pid)]


def work_horses(worker_pid: int) -> list[Any]:
    """The work horses of a worker.py process: its children forked with the worker's own
    command line. Its other children (the spawned reconciler, multiprocessing's resource
    tracker) run `python -c …` and stop with the worker."""
    import psutil

    try:
        worker = psutil.Process(worker_pid)
        command, children = worker.cmdline(), worker.children()
    except psutil.Error:
        return []
    horses = []
    for child in children:
        try:
            if child.cmdline() == command:
                horses.append(child)
        except psutil.Error:  # it has just exited
            continue
    return horses


def _number(env: dict[str, str], name: str, default: float) -> float:
    try:
        return float(env.get(name) or default)
    except ValueError:
        raise StartupError(f"{name}={env[name]!r} is not a number") from None


def _signal(pid: int, sig: signal.Signals) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass
