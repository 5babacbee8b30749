"""Start one RQ worker for radar_app's queue: `python worker.py` (run it N times for N workers).

Builds the app and imports the tasks BEFORE forking, so each work horse starts warm
(RQ's "Performance notes"), and disposes the database engine so no pooled connection
is shared across fork().
"""

from __future__ import annotations

import argparse
import logging

from dotenv import load_dotenv
from rq import Worker
from sqlalchemy.orm import configure_mappers

from radar_app import create_app, tasks
from radar_app.extensions import db
from radar_app.queue import connect


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--burst", action="store_true", help="Exit when the queue is empty.")
    parser.add_argument("--name", help="Worker name shown by `rq info`.")
    args = parser.parse_args()

    load_dotenv()
    app = create_app()
    tasks.app = app
    with app.app_context():
        # Mapper configuration is lazy; do it once here instead of in every work horse.
        configure_mappers()
        db.engine.dispose()

    connection = connect(app.config["REDIS_URL"], socket_timeout=None)
    worker = Worker([app.config["RQ_QUEUE"]], connection=connection, name=args.name)
    logging.getLogger(__name__).info(
        "worker %s on queue %s (%s)", worker.name, app.config["RQ_QUEUE"], app.config["REDIS_URL"]
    )
    worker.work(burst=args.burst, with_scheduler=False)


if __name__ == "__main__":
    main()
