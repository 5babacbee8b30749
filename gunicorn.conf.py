"""gunicorn's settings for radar_app, read from the working directory by `gunicorn wsgi:app`.

The metrics' bookkeeping lives here (radar_app/metrics.py), and the keep-alive; everything
else comes from the command line. With PROMETHEUS_MULTIPROC_DIR set, each web worker
writes its counts to files of its own there; when one exits (a restart, a crash,
--max-requests), its gauges of what was under way must go with it, while its counters stay
counted. The directory is emptied by whoever starts the whole app, not here: the work
horses write to it too.
"""

from __future__ import annotations

import os
from typing import Any

from dotenv import load_dotenv

load_dotenv()  # as wsgi.py does: the variable may come from .env

# Seconds an idle connection is kept open. The pages poll every 2 s (htmx); gunicorn's
# default of 2 closed a poller's connection just as its next request went out (a reset or
# a connection error in bench row e's pollers, and a new connection for every poll).
keepalive = 5


def child_exit(server: Any, worker: Any) -> None:
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid, directory)
