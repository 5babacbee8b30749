"""Tag every log line written while a job runs with `job=<id>`, whichever module writes it
(the importer, the PropertyRadar client, SQLAlchemy), so one job's story can be grepped."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_current_job_id: ContextVar[str | None] = ContextVar("current_job_id", default=None)


@contextmanager
def job_context(job_id: str) -> Iterator[None]:
    token = _current_job_id.set(job_id)
    try:
        yield
    finally:
        _current_job_id.reset(token)


class JobIdFilter(logging.Filter):
    """Adds `job_id` to each record ("-" outside a job) for the `%(job_id)s` format field."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.job_id = _current_job_id.get() or "-"
        return True


LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s job=%(job_id)s %(message)s"


def configure(level: int = logging.INFO) -> None:
    """Root logging for our processes, unless the host (gunicorn, pytest) configured it."""
    root = logging.getLogger()
    if root.handlers:
        return
    handler = logging.StreamHandler()
    handler.addFilter(JobIdFilter())
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    root.addHandler(handler)
    root.setLevel(level)
