"""Start one RQ worker for radar_app's queue: `python worker.py` (run it N times for N workers).

Builds the app and imports the tasks BEFORE forking, so each work horse starts warm
(RQ's "Performance notes"), and disposes the database engine so no pooled connection
is shared across fork(). A background thread reconciles stranded jobs (see
radar_app/recovery.py) on its own unpooled engine, for the same reason.
"""

from __future__ import annotations

import argparse
import logging
import threading

import sqlalchemy as sa
from dotenv import load_dotenv
from flask import Flask
from rq import Queue, Worker
from sqlalchemy.orm import Session, configure_mappers
from sqlalchemy.pool import NullPool

from radar_app import create_app, tasks
from radar_app.batches import QueueSettings
from radar_app.extensions import db, sqlite_pragmas
from radar_app.queue import connect
from radar_app.recovery import safe_reconcile

logger = logging.getLogger("radar_app.worker")


def reconcile_forever(app: Flask, stop: threading.Event) -> None:
    """Every RECOVERY_INTERVAL seconds, requeue jobs that no worker is running."""
    config = app.config
    engine = sa.create_engine(config["SQLALCHEMY_DATABASE_URI"], poolclass=NullPool)
    if engine.dialect.name == "sqlite":
        sa.event.listen(engine, "connect", sqlite_pragmas)
    queue = Queue(config["RQ_QUEUE"], connection=connect(config["REDIS_URL"]))
    settings = QueueSettings.from_config(config)
    while not stop.wait(config["RECOVERY_INTERVAL"]):
        with Session(engine) as session:
            safe_reconcile(
                session,
                queue,
                settings,
                stale_after=config["RECOVERY_STALE_AFTER"],
                pending_grace=config["RECOVERY_PENDING_GRACE"],
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--burst", action="store_true", help="Exit when the queue is empty.")
    parser.add_argument("--name", help="Worker name shown by `rq info`.")
    parser.add_argument(
        "--no-recovery", action="store_true", help="Do not run the reconciliation thread."
    )
    args = parser.parse_args()

    load_dotenv()
    app = create_app()
    tasks.app = app
    with app.app_context():
        # Mapper configuration is lazy; do it once here instead of in every work horse.
        configure_mappers()
        db.engine.dispose()

    stop = threading.Event()
    if not args.no_recovery and not args.burst:
        threading.Thread(
            target=reconcile_forever, args=(app, stop), name="reconciler", daemon=True
        ).start()

    connection = connect(app.config["REDIS_URL"], socket_timeout=None)
    worker = Worker([app.config["RQ_QUEUE"]], connection=connection, name=args.name)
    logger.info(
        "worker %s on queue %s (%s)", worker.name, app.config["RQ_QUEUE"], app.config["REDIS_URL"]
    )
    try:
        worker.work(burst=args.burst, with_scheduler=False)
    finally:
        stop.set()


if __name__ == "__main__":
    main()
