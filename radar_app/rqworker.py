"""The RQ worker that worker.py runs: RQ's forking Worker, made to outlive Redis.

Stock RQ 2.12 quits on the first Redis error it meets while a job runs
(monitor_work_horse → set_current_job_working_time → ConnectionError, "unhandled
exception, quitting"), leaving its work horse to run on unsupervised, and after Redis
comes back empty it never registers again, so `rq info` and the admin page count no
worker. Here every piece of Redis bookkeeping in the worker process is best effort:
while Redis is unreachable the worker keeps waiting on its horse, an idle worker waits
and reconnects, and once Redis answers again the worker writes its key and registry
entries back. The job itself never depended on Redis: its row in the database is the
source of truth, and recovery (radar_app/recovery.py) re-enqueues what Redis lost.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any

import redis.exceptions
from rq import Queue, Worker
from rq import worker_registration as registration
from rq.defaults import DEFAULT_LOGGING_DATE_FORMAT, DEFAULT_LOGGING_FORMAT
from rq.exceptions import StopRequested
from rq.job import Job
from rq.logutils import setup_loghandlers
from rq.worker import WorkerStatus

from radar_app import metrics

logger = logging.getLogger(__name__)

# Errors that mean "Redis is not reachable right now" (BusyLoadingError, Redis loading its
# data after a restart, is a ConnectionError). Anything else is a bug and still raises.
REDIS_UNREACHABLE = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)


class RadarWorker(Worker):
    """A forking RQ worker that survives Redis outages of any length."""

    # RQ doubles its reconnect wait after each failed dequeue up to 60 s, so a worker could
    # sit a minute on a Redis that is back. Retrying at most every 5 s is cheap.
    max_connection_wait_time = 5.0
    # Seconds between attempts while Redis is down at start-up.
    redis_retry_interval = 1.0

    def __init__(
        self, *args: Any, supervise: Callable[[], None] | None = None, **kwargs: Any
    ) -> None:
        """`supervise` is called on every heartbeat of the worker process (between jobs
        and every job_monitoring_interval while one runs), e.g. to restart a helper."""
        self._redis_down_since: float | None = None
        self._supervise = supervise
        # What this worker's horses write their metrics under, one after another.
        self._metrics_slot = metrics.horse_slot(os.getpid())
        super().__init__(*args, **kwargs)

    # -- outage bookkeeping -------------------------------------------------------------

    def _redis_unreachable(self, doing: str, exc: BaseException) -> None:
        """One warning when an outage starts; silence while it lasts."""
        if self._redis_down_since is None:
            self._redis_down_since = time.monotonic()
            self.log.warning(
                "Worker %s: Redis unreachable while %s (%s: %s); carrying on without it",
                self.name,
                doing,
                type(exc).__name__,
                exc,
            )

    def _redis_reachable(self) -> None:
        if self._redis_down_since is not None:
            self.log.warning(
                "Worker %s: Redis reachable again after %.0f s",
                self.name,
                time.monotonic() - self._redis_down_since,
            )
            self._redis_down_since = None

    @contextmanager
    def _best_effort(self, doing: str) -> Iterator[None]:
        try:
            yield
        except REDIS_UNREACHABLE as exc:
            self._redis_unreachable(doing, exc)
        else:
            self._redis_reachable()

    def _until_redis_answers(self, call: Callable[[], object], doing: str) -> None:
        """Retry `call` until Redis answers (start-up: there is nothing else to do)."""
        while True:
            try:
                call()
            except REDIS_UNREACHABLE as exc:
                self._redis_unreachable(doing, exc)
                if self._stop_requested:
                    raise StopRequested() from exc
                time.sleep(self.redis_retry_interval)
            else:
                self._redis_reachable()
                return

    def _ensure_registered(self) -> None:
        """Write the worker's hash and registry entries back if Redis lost them (it was
        restarted without persistence): without them `rq info` and the admin page count
        no worker, and `send_stop_job_command` cannot find this worker's job."""
        queue_sets = [registration.WORKERS_BY_QUEUE_KEY % name for name in self.queue_names()]
        busy_with = self.execution.job_id if self.execution is not None and self.horse_pid else None
        with self.connection.pipeline() as pipeline:
            pipeline.hmget(self.key, ["birth", "state", "current_job"])
            pipeline.sismember(self.redis_workers_keys, self.key)
            for key in queue_sets:
                pipeline.sismember(key, self.key)
            (birth, state, current_job), *registered = pipeline.execute()
            # RQ's own heartbeat writes back a bare hash (birth, pid, ...) without state or
            # current job, so check those too: the admin page shows them.
            intact = birth and state and (busy_with is None or current_job)
            if intact and all(registered):
                return
            if self.birth_date is None or self.last_heartbeat is None:
                return  # not born yet: register_birth() will do it
            self.log.warning(
                "Worker %s: registration lost (Redis restarted?); re-registering", self.name
            )
            if not intact:  # the job counters are lost for good: RQ keeps them only here
                fields: dict[str, Any] = {**self.serialize(), "state": self.get_state()}
                if busy_with is not None:
                    fields.update(current_job=busy_with, horse_pid=self.horse_pid)
                pipeline.hset(self.key, mapping={k: v for k, v in fields.items() if v is not None})
            registration.register(self, pipeline)
            pipeline.expire(self.key, self.worker_ttl + 60)
            pipeline.execute()

    # -- start and stop -----------------------------------------------------------------

    def _set_ip_address(self, connection: Any) -> None:
        try:
            super()._set_ip_address(connection)
        except REDIS_UNREACHABLE:
            self.ip_address = "unknown"

    def work(self, *args: Any, **kwargs: Any) -> bool:
        # Installed before bootstrap, so Ctrl-C while waiting for Redis at start-up stops
        # the worker quietly (RQ installs them only after bootstrap).
        self._install_signal_handlers()
        try:
            return super().work(*args, **kwargs)
        except StopRequested:  # asked to stop while waiting for Redis in bootstrap
            self.teardown()
            return False

    def bootstrap(
        self,
        logging_level: str | None = "INFO",
        date_format: str = DEFAULT_LOGGING_DATE_FORMAT,
        log_format: str = DEFAULT_LOGGING_FORMAT,
    ) -> None:
        """RQ's bootstrap, waiting for Redis instead of raising when it is down."""
        setup_loghandlers(logging_level, date_format, log_format, name="rq.worker")
        setup_loghandlers(logging_level, date_format, log_format, name="rq.job")
        self._until_redis_answers(self.register_birth, "registering the worker")
        self.log.info("Worker %s: started with PID %d", self.name, self.pid)
        self._until_redis_answers(self._subscribe_once, "subscribing to commands")
        self._until_redis_answers(lambda: self.set_state(WorkerStatus.STARTED), "starting")
        # Cached now, so the dequeue path does not depend on it later.
        self._until_redis_answers(self.get_redis_server_version, "reading Redis' version")
        self.log.info("*** Listening on %s...", ", ".join(self.queue_names()))

    def _subscribe_once(self) -> None:
        if self.pubsub is not None:
            with suppress(Exception):
                self.pubsub.close()
            self.pubsub = None
        self.subscribe()

    def teardown(self) -> None:
        if self.is_horse:
            return
        if self.scheduler:
            self.stop_scheduler()
        with self._best_effort("unregistering the worker"):
            self.register_death()
        if self.pubsub is not None:
            with suppress(*REDIS_UNREACHABLE):
                self.pubsub.unsubscribe()
            if self.pubsub_thread is not None:
                self.pubsub_thread.stop()
                self.pubsub_thread.join(timeout=1)
            self.pubsub.close()

    def _pubsub_exception_handler(self, exc: Exception, pubsub: Any, pubsub_thread: Any) -> None:
        # RQ's handler retries on ConnectionError only and lets a TimeoutError end the
        # command thread; both mean "Redis is away", and redis-py resubscribes on reconnect.
        if isinstance(exc, REDIS_UNREACHABLE):
            time.sleep(2.0)
            return
        super()._pubsub_exception_handler(exc, pubsub, pubsub_thread)

    def set_shutdown_requested_date(self) -> None:
        with self._best_effort("recording the shutdown request"):
            super().set_shutdown_requested_date()

    # -- the idle loop ------------------------------------------------------------------

    def check_for_suspension(self, burst: bool) -> None:
        with self._best_effort("checking for `rq suspend`"):
            super().check_for_suspension(burst)

    def run_maintenance_tasks(self) -> None:
        with self._best_effort("cleaning registries"):
            super().run_maintenance_tasks()

    def dequeue_job_and_maintain_ttl(
        self, timeout: int | None, max_idle_time: int | None = None
    ) -> tuple[Job, Queue] | None:
        # RQ retries a ConnectionError here itself (with our shorter backoff cap), but
        # quits on a TimeoutError (a frozen Redis): wait that out too.
        while True:
            try:
                return super().dequeue_job_and_maintain_ttl(timeout, max_idle_time)
            except redis.exceptions.TimeoutError as exc:
                self._redis_unreachable("waiting for a job", exc)
                time.sleep(self.redis_retry_interval)

    def heartbeat(self, timeout: int | None = None, pipeline: Any = None) -> None:
        if pipeline is not None:  # part of a transaction whose caller handles errors
            super().heartbeat(timeout, pipeline)
            return
        with self._best_effort("sending the worker heartbeat"):
            super().heartbeat(timeout)
            self._ensure_registered()
        if self._supervise is not None:
            self._supervise()

    def set_state(self, state: str, pipeline: Any = None) -> None:
        if pipeline is not None:
            super().set_state(state, pipeline)
            return
        self._state = state
        with self._best_effort(f"setting the worker state to {state}"):
            super().set_state(state)

    # -- while a job runs ---------------------------------------------------------------

    def execute_job(self, job: Job, queue: Queue) -> None:
        try:
            self.prepare_execution(job)
        except REDIS_UNREACHABLE as exc:
            # Not started, nothing spent: the row is still PENDING and recovery
            # re-enqueues it once Redis is back.
            self._redis_unreachable(f"starting job {job.id}", exc)
            self.log.warning(
                "Worker %s: job %s not started; recovery will requeue it", self.name, job.id
            )
            return
        self.fork_work_horse(job, queue)
        try:
            self.monitor_work_horse(job, queue)
        except REDIS_UNREACHABLE as exc:
            # Every Redis call inside the monitoring loop is best effort, so this comes
            # from filing the result after the horse exited; the database has the outcome.
            self._redis_unreachable(f"filing the end of job {job.id}", exc)
            if self.horse_pid:  # defensive: never leave a horse unsupervised
                self.wait_for_horse()
                self._horse_pid = 0
        # The horse is gone (reaped): its gauges of what was under way go with it.
        metrics.process_dead(self._metrics_slot)
        with self._best_effort("clearing the work horse's pid"):
            self.connection.hdel(self.key, "horse_pid")
        self.set_state(WorkerStatus.IDLE)

    def fork_work_horse(self, job: Job, queue: Queue) -> None:
        super().fork_work_horse(job, queue)  # the horse never returns from this
        # Where operators (and the fault tests) find the horse: RQ does not record it.
        with self._best_effort("recording the work horse's pid"):
            self.connection.hset(self.key, "horse_pid", self.horse_pid)

    def main_work_horse(self, job: Job, queue: Queue) -> None:
        metrics.become(self._metrics_slot)  # first thing in the horse (see metrics.py)
        super().main_work_horse(job, queue)

    def set_current_job_working_time(
        self, current_job_working_time: float, pipeline: Any = None
    ) -> None:
        if pipeline is not None:
            super().set_current_job_working_time(current_job_working_time, pipeline)
            return
        self.current_job_working_time = current_job_working_time
        with self._best_effort("recording the job's working time"):
            super().set_current_job_working_time(current_job_working_time)

    def maintain_heartbeats(self, job: Job) -> None:
        with self._best_effort(f"sending heartbeats for job {job.id}"):
            super().maintain_heartbeats(job)
            self._ensure_registered()
        if self._supervise is not None:
            self._supervise()
