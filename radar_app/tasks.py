"""RQ entry points. They take ids, open an app context and call the Flask-free importer."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from flask import Flask
from rq import get_current_job

from radar_app import alerts, leadsearch, schedules
from radar_app.batches import QueueSettings
from radar_app.extensions import db
from radar_app.importer import ImportSettings, run_import, shutdown_requested
from radar_app.jobstate import beat
from radar_app.models import BatchJob, utcnow
from radar_app.queue import get_queue, get_redis
from radar_app.services import build_client
from radar_app.waits import WaitBoard

logger = logging.getLogger(__name__)

# worker.py builds the app before forking so every work horse inherits it. Under the
# stock `rq worker` command there is none yet, and the first job builds it.
app: Flask | None = None


def get_app() -> Flask:
    global app
    if app is None:
        from radar_app import create_app

        app = create_app()
    return app


class Heartbeat(threading.Thread):
    """Refreshes batch_jobs.heartbeat_at while the job runs, independently of how long a
    page takes (backoff can hold the page loop for a minute). When the work horse dies,
    the heartbeat stops with it, and recovery notices the stale timestamp."""

    def __init__(self, engine: sa.Engine, batch_id: int, run_id: str, interval: float) -> None:
        super().__init__(name=f"heartbeat-{batch_id}", daemon=True)
        self.engine, self.batch_id, self.run_id, self.interval = engine, batch_id, run_id, interval
        self.stopped = threading.Event()

    def run(self) -> None:
        failing = False
        while not self.stopped.wait(self.interval):
            try:
                with self.engine.begin() as conn:
                    beat(conn, self.batch_id, self.run_id, utcnow())
            except Exception as exc:  # noqa: BLE001 - a missed beat must not kill the import
                # Once per outage, not every beat: a database down for a minute would
                # otherwise print a traceback twelve times a minute per running job.
                if not failing:
                    logger.warning(
                        "heartbeat for batch %s failed (%s); retrying every %ss",
                        self.batch_id,
                        type(exc).__name__,
                        self.interval,
                    )
                failing = True
            else:
                if failing:
                    logger.warning("heartbeat for batch %s running again", self.batch_id)
                failing = False

    def stop(self) -> None:
        self.stopped.set()
        self.join(timeout=5)


@contextmanager
def stop_after_the_chunk_on_sigterm() -> Iterator[None]:
    """While a job runs, SIGTERM (`make run` stopping, systemd, a deploy) asks the import to
    store the chunk it has paid for and buy nothing more, instead of killing the work horse
    with a purchase in flight (RQ's horse default). A previous Python handler (a
    SimpleWorker's warm shutdown) still runs."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread
        return
    shutdown_requested.clear()
    previous = signal.getsignal(signal.SIGTERM)

    def request_shutdown(signum: int, frame: Any) -> None:
        shutdown_requested.set()
        if callable(previous):
            previous(signum, frame)

    signal.signal(signal.SIGTERM, request_shutdown)
    try:
        yield
    finally:
        # None: a handler not set from Python; the default is the closest we can restore.
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)


def run_batch_job(batch_id: int) -> str:
    """Import a batch job's pages; returns its final status."""
    flask_app = get_app()
    current = get_current_job()
    run_id = current.id if current is not None else None
    with flask_app.app_context(), stop_after_the_chunk_on_sigterm():
        heartbeat = None
        if run_id is not None:
            heartbeat = Heartbeat(
                db.engine, batch_id, run_id, flask_app.config["HEARTBEAT_INTERVAL"]
            )
            heartbeat.start()
        try:
            with build_client(flask_app.config, get_redis()) as client:
                try:
                    return run_import(
                        db.session,
                        client,
                        batch_id,
                        settings=ImportSettings.from_config(flask_app.config),
                        run_id=run_id,
                        waits=WaitBoard(get_redis()),
                    )
                finally:  # a failure that raises (for RQ's failed registry) is told too
                    _alert_finished(batch_id)
        finally:
            if heartbeat is not None:
                heartbeat.stop()
            db.session.remove()


def _alert_finished(batch_id: int) -> None:
    """Tell the owner's channels how the job ended, and try delivering at once. Whatever
    a receiver does, the job's outcome stands: nothing here may fail it."""
    try:
        db.session.rollback()
        job = db.session.get(BatchJob, batch_id)
        if job is None or job.is_active:
            return
        settings = alerts.AlertSettings.from_config(get_app().config)
        made = [
            delivery_id
            for event, payload in alerts.job_events(job)
            for delivery_id in alerts.emit(db.session, job.created_by, event, payload, settings)
        ]
        for delivery_id in made:
            alerts.deliver(db.session, delivery_id, settings)
    except Exception:  # noqa: BLE001 - alerts never fail the job (retried by the minute check)
        db.session.rollback()
        logger.exception("alerts for batch %s not sent", batch_id)


def deliver_alert(delivery_id: int) -> bool:
    """Deliver one alert now (a "send test" from the alerts page)."""
    flask_app = get_app()
    with flask_app.app_context():
        try:
            settings = alerts.AlertSettings.from_config(flask_app.config)
            return alerts.deliver(db.session, delivery_id, settings)
        finally:
            db.session.remove()


def fire_schedules() -> int:
    """Make the jobs of the schedules that are due (radar_app.schedules), and retry the
    alerts that are due; how many jobs were made."""
    flask_app = get_app()
    with flask_app.app_context():
        made = schedules.fire_due(
            db.session,
            get_queue(),
            QueueSettings.from_config(flask_app.config),
            price_per_export=flask_app.config["PRICE_PER_EXPORT"],
        )
        # The same minute's check retries the alerts whose delivery failed.
        alerts.deliver_due(db.session, alerts.AlertSettings.from_config(flask_app.config))
        return len(made)


def refresh_planner_statistics() -> str:
    """Refresh the query planner's statistics, hourly (radar_app.cron_config).

    Without them SQLite's planner cannot tell a ZIP (a few hundred leads) from a state (a
    quarter of them) and the leads browser walks the wrong index."""
    flask_app = get_app()
    with flask_app.app_context():
        return leadsearch.refresh_statistics(db.session)
