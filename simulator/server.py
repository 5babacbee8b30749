"""Serving the simulator: in the foreground (the command line) or in a daemon thread
(tests)."""

from __future__ import annotations

import threading
from collections.abc import Callable

from werkzeug.serving import WSGIRequestHandler, make_server

from simulator.app import Simulator
from simulator.config import SimulatorConfig
from simulator.dataset import Dataset, get_dataset


class _QuietHandler(WSGIRequestHandler):
    """Request handler that does not log every request (tests page thousands of times)."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


def serve(
    host: str = "127.0.0.1",
    port: int = 5001,
    config: SimulatorConfig | None = None,
    *,
    scale: float = 1.0,
) -> None:
    """Serve the simulator with a threaded Werkzeug server until interrupted."""
    cfg = config or SimulatorConfig()
    sim = Simulator(cfg, get_dataset(scale, cfg.seed))
    server = make_server(host, port, sim, threaded=True)
    print(
        f"PropertyRadar simulator: {len(sim.dataset):,} records on "
        f"http://{host}:{server.server_port} (token: {cfg.token or 'any'})",
        flush=True,
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def start_in_thread(
    host: str = "127.0.0.1",
    port: int = 0,
    config: SimulatorConfig | None = None,
    *,
    dataset: Dataset | None = None,
) -> tuple[Simulator, str, Callable[[], None]]:
    """Start a threaded server in a daemon thread; returns (simulator, base_url, stop).

    ``port=0`` picks a free port. ``stop()`` shuts the server down and closes its socket;
    calling it twice is harmless.
    """
    sim = Simulator(config, dataset)
    server = make_server(host, port, sim, threaded=True, request_handler=_QuietHandler)
    thread = threading.Thread(
        target=server.serve_forever, name="propertyradar-simulator", daemon=True
    )
    thread.start()
    stopped = threading.Event()

    def stop() -> None:
        if stopped.is_set():
            return
        stopped.set()
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()

    return sim, f"http://{host}:{server.server_port}", stop
