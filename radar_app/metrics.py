"""Prometheus metrics (GET /metrics, radar_app/metrics_endpoint.py): what they are and where
their values come from. No Flask here.

Two kinds of figure, read two ways:

* Facts the database or Redis already hold (jobs by status, records bought and reused,
  heartbeat ages, queue depths, workers) are read when Prometheus scrapes
  (``database_families``, ``redis_families``): nothing to keep in step, nothing lost
  when a process dies.
* What only the process that did it can see (each PropertyRadar HTTP attempt: its
  outcome and latency, and the attempts in flight) is counted there, by the client that
  ``services.build_client`` returns (``MeasuredClient``). Web processes and work horses
  both make requests, so with PROMETHEUS_MULTIPROC_DIR set every process writes its
  values to a file of its own in that directory (prometheus_client's multiprocess mode)
  and a scrape, answered by any web process, sums them all. Unset, the values stay in the
  process's memory (one process: development and tests).

Work horses: RQ forks one per job. prometheus_client notices the new pid and opens new
files, so a horse never writes into its worker's files. Named by pid, every job would
leave its three files behind (counters, histogram, gauge), and a scrape reads every file:
after 10,000 jobs, 30,000 of them.
So a horse takes the name of its worker's horse slot instead (``horse<worker pid>``):
a worker runs one horse at a time, and each horse carries on in the files of the one
before, whose counts (a dead horse's too) stay counted. After each horse ends the worker
calls ``process_dead``, which drops the slot's live gauges (attempts in flight), so a
horse killed mid-request does not leave them counting forever. gunicorn does the same
for its web workers (gunicorn.conf.py, ``child_exit``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import redis.exceptions
import sqlalchemy as sa
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    multiprocess,
    values,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from redis import Redis
from rq import Queue
from rq import worker_registration as registration
from rq.registry import (
    DeferredJobRegistry,
    FailedJobRegistry,
    ScheduledJobRegistry,
    StartedJobRegistry,
)

from radar_app.models import BatchJob, DbSession, JobStatus, utcnow
from radar_app.propertyradar.client import Page, PropertyRadarClient
from radar_app.propertyradar.errors import (
    AuthenticationError,
    BadRequestError,
    MalformedResponseError,
    PropertyRadarError,
    RateLimitedError,
    ServerError,
    TransportError,
)

# -- what each process counts ---------------------------------------------------------

# Each is registered with no registry: a scrape builds its own (scrape_registry), from these or,
# in multiprocess mode, from the files every process writes.
REQUESTS = Counter(
    "radar_propertyradar_requests",
    "PropertyRadar HTTP attempts (each retry counts), by kind (free: counts, previews and "
    "snapshots; purchase: Purchase=1) and outcome",
    ["kind", "outcome"],
    registry=None,
)
LATENCY = Histogram(
    "radar_propertyradar_request_duration_seconds",
    "Seconds per PropertyRadar HTTP attempt, headers and body, whatever its outcome",
    ["kind"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0),
    registry=None,
)
IN_FLIGHT = Gauge(
    "radar_propertyradar_requests_in_flight",
    "PropertyRadar HTTP attempts under way, in every live process",
    ["kind"],
    # Summed over live processes only: a dead process's attempts are not under way.
    multiprocess_mode="livesum",
    registry=None,
)
PROCESS_METRICS = (REQUESTS, LATENCY, IN_FLIGHT)

# Every outcome label, so a rate() over one that has not happened yet reads 0, not nothing.
OUTCOMES = ("ok", "429", "5xx", "timeout", "connection", "malformed", "auth", "4xx", "error")
KINDS = ("free", "purchase")


def outcome_of(error: BaseException) -> str:
    """The outcome label of a failed attempt."""
    if isinstance(error, RateLimitedError):
        return "429"
    if isinstance(error, ServerError):
        return "5xx"
    if isinstance(error, TransportError):
        # The client's words for its timeouts (connect, read, or the whole-attempt
        # deadline); anything else is a refused, dropped or cut-off connection.
        return "timeout" if error.message.startswith("Timed out") else "connection"
    if isinstance(error, MalformedResponseError):
        return "malformed"
    if isinstance(error, AuthenticationError):
        return "auth"
    if isinstance(error, BadRequestError):
        return "4xx"
    return "error"


class MeasuredClient(PropertyRadarClient):
    """The PropertyRadar client, counting each HTTP attempt by outcome and timing it.

    It wraps the client's one-attempt method (each retry is an attempt of its own). A
    requests response hook would see less: the client streams, so a body that times out
    or arrives garbled fails after the hook has run.
    """

    def _attempt(
        self,
        params: dict[str, str],
        body: dict[str, Any],
        headers: dict[str, str],
        *,
        start: int,
        limit: int,
    ) -> Page:
        kind = "purchase" if params.get("Purchase") == "1" else "free"
        with measured(kind):
            return super()._attempt(params, body, headers, start=start, limit=limit)


@contextmanager
def measured(kind: str) -> Iterator[None]:
    """Count and time one attempt of this kind, its outcome told by what it raises."""
    in_flight = IN_FLIGHT.labels(kind)
    in_flight.inc()
    started = time.perf_counter()
    outcome = "ok"
    try:
        yield
    except BaseException as error:
        outcome = outcome_of(error) if isinstance(error, PropertyRadarError) else "error"
        raise
    finally:
        LATENCY.labels(kind).observe(time.perf_counter() - started)
        REQUESTS.labels(kind, outcome).inc()
        in_flight.dec()


# -- where this process writes them -----------------------------------------------------


@dataclass
class _Process:
    directory: str | None = None
    # (pid, name): the name this process writes its files under, when not its pid.
    named: tuple[int, str] | None = None


_process = _Process()


def _identity() -> str:
    """The name of this process's metric files; called on every update, so cheap.
    prometheus_client reopens its files when it changes (a fork)."""
    pid = os.getpid()
    named = _process.named
    return named[1] if named is not None and named[0] == pid else str(pid)


def use_directory(directory: str | None) -> None:
    """Keep this process's values in `directory` (multiprocess mode), or in memory (None).

    Called by every app the factory builds (PROMETHEUS_MULTIPROC_DIR), before a worker
    forks and before anything is counted. prometheus_client itself reads the variable once,
    at import, which may be before .env is loaded, and it would name a work horse's files
    by pid; so the value class is chosen here, and the variable set for the library (it
    reads it when it opens a file) and for the processes this one starts."""
    if directory == _process.directory and _multiprocess() == bool(directory):
        return
    os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)  # clear() refuses while it is set
    for metric in PROCESS_METRICS:
        metric.clear()  # label children made with the previous value class
    values.close_all_multiprocess_files()
    if directory:
        os.makedirs(directory, exist_ok=True)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
        values.ValueClass = values.MultiProcessValue(_identity)
    else:
        values.ValueClass = values.MutexValue
    _process.directory = directory or None
    drop_dead_processes()


def _multiprocess() -> bool:
    return bool(getattr(values.ValueClass, "_multiprocess", False))


def horse_slot(worker_pid: int) -> str:
    """The name a work horse of this worker writes its files under (no underscore:
    prometheus_client splits file names on it)."""
    return f"horse{worker_pid}"


def become(name: str) -> None:
    """From now on this process writes its values under `name` (a forked work horse:
    call it before counting anything)."""
    _process.named = (os.getpid(), name)


def process_dead(name: str | int) -> None:
    """A process that wrote under `name` has ended: drop its live gauges (its counters
    and histograms stay counted)."""
    if _process.directory:
        multiprocess.mark_process_dead(name, _process.directory)


def drop_dead_processes() -> None:
    """Drop the live gauges of processes that ended with no one to say so (a worker or
    gunicorn killed outright, with their horses or web workers), as each process starts.
    A horse slot lives as long as its worker; a pid taken again by another process only
    keeps the old figures a while longer."""
    if not _process.directory:
        return
    for path in Path(_process.directory).glob("gauge_live*_*.db"):
        name = path.stem.split("_", 2)[2]
        pid = name.removeprefix("horse")
        if pid.isdigit() and not _alive(int(pid)):
            process_dead(name)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


# -- what a scrape reads from the database and Redis ------------------------------------


def database_families(session: DbSession, stale_after: float) -> list[Metric]:
    """Jobs by status, records bought and reused, heartbeat ages of running jobs."""
    by_status = dict(
        session.execute(sa.select(BatchJob.status, sa.func.count()).group_by(BatchJob.status))
        .tuples()
        .all()
    )
    jobs = GaugeMetricFamily("radar_jobs", "Batch jobs by status", labels=["status"])
    for status in JobStatus:
        jobs.add_metric([status.value], by_status.get(status.value, 0))

    # Bought and reused are read from the jobs' own counts, not counted by the work horses
    # as they go: each job's counts are committed in the transaction that stores its
    # chunk, so these are exact whatever crashed (a horse killed after counting but before
    # committing would have over-counted) and survive restarts and a wiped metrics
    # directory. Jobs are only ever deleted before they run (a withdrawn job), so the sums
    # only grow, as a counter must.
    bought, reused = session.execute(
        sa.select(
            sa.func.coalesce(sa.func.sum(BatchJob.purchased_count), 0),
            sa.func.coalesce(sa.func.sum(BatchJob.reused_count), 0),
        )
    ).one()
    families: list[Metric] = [
        jobs,
        CounterMetricFamily(
            "radar_records_bought", "Records bought (billed and stored), all jobs", bought
        ),
        CounterMetricFamily(
            "radar_records_reused",
            "Records reused from earlier purchases instead of bought, all jobs",
            reused,
        ),
    ]

    # Running jobs are few (one per worker): their beats are read one by one.
    beats = session.scalars(
        sa.select(sa.func.coalesce(BatchJob.heartbeat_at, BatchJob.started_at)).where(
            BatchJob.status == JobStatus.PROCESSING
        )
    ).all()
    ages = [_age(beat) for beat in beats]
    families.append(
        GaugeMetricFamily(
            "radar_running_job_heartbeat_age_seconds_max",
            "Seconds since the most silent running job's last heartbeat (0: none running)",
            max(ages, default=0.0),
        )
    )
    families.append(
        GaugeMetricFamily(
            "radar_running_jobs_stale",
            f"Running jobs silent for more than RECOVERY_STALE_AFTER ({stale_after:g} s): "
            "recovery requeues them",
            sum(1 for age in ages if age > stale_after),
        )
    )
    return families


def _age(moment: datetime | None) -> float:
    # A job claimed but not yet beating has no heartbeat and no start: count it as fresh.
    return 0.0 if moment is None else max(0.0, (utcnow() - moment).total_seconds())


# RQ's registries a queue's jobs sit in, by the state label they get here.
REGISTRIES = {
    "started": StartedJobRegistry,
    "failed": FailedJobRegistry,
    "deferred": DeferredJobRegistry,
    "scheduled": ScheduledJobRegistry,
}


def redis_families(connection: Redis) -> list[Metric]:
    """Jobs per RQ queue and state, and workers per queue, in two round trips.

    Raises RedisError: the caller reports Redis as down and carries on."""
    names = sorted(Queue.all(connection=connection), key=lambda queue: queue.name)
    with connection.pipeline(transaction=False) as pipeline:
        for queue in names:
            pipeline.llen(queue.key)
            for registry in REGISTRIES.values():
                pipeline.zcard(registry(queue=queue).key)
            pipeline.scard(registration.WORKERS_BY_QUEUE_KEY % queue.name)
        replies: Iterator[int] = iter(pipeline.execute())
    jobs = GaugeMetricFamily(
        "radar_rq_jobs",
        "RQ jobs per queue: waiting (queued), running (started), and in RQ's registries",
        labels=["queue", "state"],
    )
    workers = GaugeMetricFamily(
        "radar_rq_workers", "RQ workers listening on each queue", labels=["queue"]
    )
    for queue in names:
        jobs.add_metric([queue.name, "queued"], next(replies))
        for state in REGISTRIES:
            jobs.add_metric([queue.name, state], next(replies))
        workers.add_metric([queue.name], next(replies))
    return [jobs, workers]


class _Families:
    """A collector of families read once per scrape."""

    def __init__(self, families: Iterable[Metric]) -> None:
        self.families = list(families)

    def collect(self) -> Iterable[Metric]:
        return self.families


def scrape_registry(session: DbSession, connection: Redis, stale_after: float) -> CollectorRegistry:
    """Every metric, read now, for one scrape. A database or Redis that does not answer
    costs only its own figures: radar_database_up / radar_redis_up say 0, the rest stays."""
    _zero_every_outcome()
    registry = CollectorRegistry()
    if _process.directory and _multiprocess():
        multiprocess.MultiProcessCollector(registry, path=_process.directory)
    else:
        for metric in PROCESS_METRICS:
            registry.register(metric)
    families: list[Metric] = []
    try:
        families += database_families(session, stale_after)
        database_up = 1
    except sa.exc.SQLAlchemyError:
        session.rollback()
        database_up = 0
    try:
        families += redis_families(connection)
        redis_up = 1
    except (redis.exceptions.RedisError, OSError):
        redis_up = 0
    families.append(
        GaugeMetricFamily("radar_database_up", "Did the database answer this scrape", database_up)
    )
    families.append(GaugeMetricFamily("radar_redis_up", "Did Redis answer this scrape", redis_up))
    registry.register(_Families(families))
    return registry


def _zero_every_outcome() -> None:
    # A label child is exported (at 0) once made; in multiprocess mode, once this
    # process's file holds it.
    for kind in KINDS:
        LATENCY.labels(kind)
        IN_FLIGHT.labels(kind)
        for outcome in OUTCOMES:
            REQUESTS.labels(kind, outcome)
