"""RQ entry points. They take ids, open an app context and call the Flask-free importer."""

from __future__ import annotations

from flask import Flask

from radar_app.extensions import db
from radar_app.importer import run_import
from radar_app.propertyradar.client import PropertyRadarClient

# worker.py builds the app before forking so every work horse inherits it. Under the
# stock `rq worker` command there is none yet, and the first job builds it.
app: Flask | None = None


def get_app() -> Flask:
    global app
    if app is None:
        from radar_app import create_app

        app = create_app()
    return app


def build_client(config: dict) -> PropertyRadarClient:
    token = config["PROPERTYRADAR_API_TOKEN"]
    if not token:
        raise RuntimeError("PROPERTYRADAR_API_TOKEN is not set")
    return PropertyRadarClient(
        token,
        config["PROPERTYRADAR_API_URL"],
        timeout=(5.0, config["PROPERTYRADAR_TIMEOUT"]),
        max_attempts=config["PROPERTYRADAR_MAX_ATTEMPTS"],
        backoff_base=config["PROPERTYRADAR_BACKOFF_BASE"],
        backoff_max=config["PROPERTYRADAR_BACKOFF_MAX"],
    )


def run_batch_job(batch_id: int) -> str:
    """Import a batch job's pages; returns its final status."""
    flask_app = get_app()
    with flask_app.app_context():
        with build_client(flask_app.config) as client:
            try:
                return run_import(
                    db.session,
                    client,
                    batch_id,
                    batch_size=flask_app.config["PROPERTYRADAR_BATCH_SIZE"],
                )
            finally:
                db.session.remove()
