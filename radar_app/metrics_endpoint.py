"""GET /metrics: the metrics of radar_app/metrics.py, for an admin or a scraper.

A scraper sends ``Authorization: Bearer <METRICS_TOKEN>``; a signed-in admin (session or
API token) may look too. Anyone else: 401 without credentials (or with a wrong token),
403 for a signed-in user who is not an admin. Plain-text answers: a scraper has no use
for an HTML error page.
"""

from __future__ import annotations

import hmac

from flask import Blueprint, current_app, request
from flask.blueprints import BlueprintSetupState
from flask_login import current_user
from prometheus_client.exposition import choose_encoder
from werkzeug.wrappers import Response

from radar_app import metrics
from radar_app.auth.login import bearer_token
from radar_app.extensions import db
from radar_app.queue import get_redis

bp = Blueprint("metrics", __name__)


@bp.record
def _configure_process(state: BlueprintSetupState) -> None:
    # Before a worker forks its horses and before anything is counted (see metrics.py).
    metrics.use_directory(state.app.config["PROMETHEUS_MULTIPROC_DIR"])


def _scrape_token_matches(token: str) -> bool:
    expected = current_app.config["METRICS_TOKEN"]
    # Compared in constant time, as bytes (compare_digest refuses non-ASCII str).
    return bool(expected) and hmac.compare_digest(token.encode(), expected.encode())


def _denied(status: int, message: str) -> Response:
    response = Response(message + "\n", status=status, mimetype="text/plain")
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="metrics"'
    return response


@bp.get("/metrics")
def scrape() -> Response:
    token = bearer_token(request)
    # The scrape token is checked first: it needs no database, so a scraper still hears
    # radar_database_up 0 when the database is down.
    if token is None or not _scrape_token_matches(token):
        if not current_user.is_authenticated:
            return _denied(401, "Send Authorization: Bearer <METRICS_TOKEN>, or sign in.")
        if not current_user.is_admin:
            return _denied(403, "Metrics are for administrators.")
    registry = metrics.scrape_registry(
        db.session, get_redis(), stale_after=current_app.config["RECOVERY_STALE_AFTER"]
    )
    # The format the scraper asks for (Prometheus' text format, or OpenMetrics), as
    # prometheus_client's own exporters answer.
    encode, content_type = choose_encoder(request.headers.get("Accept", ""))
    response = Response(encode(registry), mimetype=None, content_type=content_type)
    response.headers["Cache-Control"] = "no-store"
    return response
