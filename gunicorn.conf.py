"""gunicorn's settings for radar_app, read from the working directory by `gunicorn wsgi:app`.

Only the metrics' bookkeeping lives here (radar_app/metrics.py); everything else comes from
the command line. With PROMETHEUS_MULTIPROC_DIR set, each web worker writes its counts to
files of its own there; when one exits (a restart, a crash, --max-requests), its gauges of
what was under way must go with it, while its counters stay counted. The directory is
emptied by whoever starts the whole app, not here: the work horses write to it too.
"""

from __future__ import annotations

import os
from typing import Any

from dotenv import load_dotenv

load_dotenv()  # as wsgi.py does: the variable may come from .env


def child_exit(server: Any, worker: Any) -> None:
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid, directory)
