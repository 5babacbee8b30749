"""Start one RQ worker for radar_app's queue: `python worker.py` (run it N times for N workers).

Builds the app and imports the tasks BEFORE forking, so each work horse starts warm
(RQ's "Performance notes"). The worker process itself never opens a database connection
and runs no thread of ours: RQ forks a work horse for every job, and a fork copies
whatever lock another thread holds at that instant into the child, locked for ever (a
reconciler thread inside SQLite once left a horse hung in sqlite3.connect for the
6-hour job timeout). So the reconciler (radar_app/recovery.py) runs in a process of its
own, started with "spawn" (fork+exec, nothing inherited), and stopped with the worker.
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import os
import time
from multiprocessing.process import BaseProcess
from multiprocessing.synchronize import Event

import sqlalchemy as sa
from dotenv import load_dotenv
from flask import Flask
from redis.backoff import ConstantBackoff
from redis.retry import Retry
from sqlalchemy.orm import configure_mappers

from radar_app import create_app, tasks
from radar_app.extensions import db
from radar_app.queue import connect
from radar_app.recovery import ReconcilerSettings, run_reconciler_process
from radar_app.rqworker import RadarWorker

logger = logging.getLogger("radar_app.worker")


class ParentProcessTouchedDatabase(RuntimeError):
    """A bug: the worker process (not a work horse) tried to open a database connection."""


def forbid_database_in_this_process(engine: sa.Engine) -> None:
    """Refuse database connections in this process; its forked horses may connect.

    A connection opened here would be inherited by every horse (two processes on one
    socket), and while it is in use its driver holds locks a fork would copy."""
    owner = os.getpid()

    @sa.event.listens_for(engine, "do_connect")
    def refuse(*_args: object) -> None:
        if os.getpid() == owner:
            raise ParentProcessTouchedDatabase(
                "worker.py's own process must not use the database; only work horses do"
            )


class Reconciler:
    """The reconciler process: started with the worker, restarted if it dies, stopped
    (SIGTERM, then SIGKILL after a grace) when the worker stops. If the worker is killed
    outright, the reconciler notices its parent is gone and exits by itself."""

    # A spawned interpreter imports the app afresh: 1.2-2 CPU s on 2 shared cores.
    READY_TIMEOUT = 60.0

    def __init__(self, settings: ReconcilerSettings) -> None:
        self.settings = settings
        self.context = multiprocessing.get_context("spawn")
        self.process: BaseProcess | None = None
        self.ready: Event | None = None
        self.owner = os.getpid()

    def start(self) -> None:
        self.ready = self.context.Event()
        self.process = self.context.Process(
            target=run_reconciler_process,
            args=(self.settings, os.getpid(), self.ready),
            name="radar-reconciler",
            daemon=False,  # a daemonic child would be killed without finishing its pass
        )
        self.process.start()
        logger.info("reconciler started (pid %s)", self.process.pid)

    def wait_ready(self) -> None:
        """Until the reconciler has imported the app. The worker takes no job before:
        its start-up would otherwise compete for the CPU with the first job's horse
        (4 workers starting on 2 cores spent ~6 CPU s importing beside their jobs)."""
        deadline = time.monotonic() + self.READY_TIMEOUT
        while self.ready is not None and not self.ready.wait(0.1):
            if self.process is None or not self.process.is_alive():
                return  # died starting: the heartbeat's ensure_running restarts it
            if time.monotonic() > deadline:
                logger.warning("reconciler not ready after %ss; taking jobs", self.READY_TIMEOUT)
                return

    def ensure_running(self) -> None:
        # Called from the worker's heartbeat; the horse (a fork) inherits this object.
        if os.getpid() != self.owner or self.process is None:
            return
        if self.process.exitcode is not None:
            logger.warning("reconciler exited (code %s); restarting it", self.process.exitcode)
            try:
                self.start()
            except OSError as exc:  # e.g. out of processes; the next heartbeat retries
                logger.warning("reconciler not restarted: %s", exc)

    def stop(self, timeout: float = 10) -> None:
        if self.process is None or os.getpid() != self.owner:
            return
        if self.process.exitcode is None:
            self.process.terminate()
            self.process.join(timeout)
            if self.process.exitcode is None:
                logger.warning("reconciler did not stop within %ss; killing it", timeout)
                self.process.kill()
                self.process.join()
        self.process = None


def build_app() -> Flask:
    app = create_app()
    tasks.app = app
    with app.app_context():
        # Mapper configuration is lazy; do it once here instead of in every work horse.
        configure_mappers()
        db.engine.dispose()
        forbid_database_in_this_process(db.engine)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--burst", action="store_true", help="Exit when the queue is empty.")
    parser.add_argument("--name", help="Worker name shown by `rq info`.")
    parser.add_argument(
        "--no-recovery", action="store_true", help="Do not run the reconciler process."
    )
    parser.add_argument(
        "--job-monitoring-interval",
        type=int,
        default=30,
        help="Whole seconds between the worker's Redis heartbeats while a job runs (RQ: 30).",
    )
    args = parser.parse_args()

    load_dotenv()
    app = build_app()

    reconciler = None
    if not args.no_recovery and not args.burst:
        reconciler = Reconciler(ReconcilerSettings.from_config(app.config))
        reconciler.start()
        reconciler.wait_ready()

    connection = connect(app.config["REDIS_URL"], socket_timeout=None)
    # The worker handles an unreachable Redis itself (radar_app/rqworker.py); redis-py's
    # default of 3 retries with up to 10 s backoff per command would only slow that down.
    connection.set_retry(Retry(ConstantBackoff(0.2), 2))
    worker = RadarWorker(
        [app.config["RQ_QUEUE"]],
        connection=connection,
        name=args.name,
        job_monitoring_interval=args.job_monitoring_interval,
        supervise=reconciler.ensure_running if reconciler else None,
    )
    logger.info(
        "worker %s on queue %s (%s)",
        worker.name,
        app.config["RQ_QUEUE"],
        connection.get_connection_kwargs().get("host"),
    )
    try:
        worker.work(burst=args.burst, with_scheduler=False)
    finally:
        if reconciler is not None:
            reconciler.stop()


if __name__ == "__main__":
    main()
