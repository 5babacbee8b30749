"""GET /healthz: do the database and Redis answer? For load balancers and monitors."""

from __future__ import annotations

import time
from collections.abc import Callable

import sqlalchemy as sa
from flask import Blueprint, jsonify
from redis.exceptions import RedisError
from werkzeug.wrappers import Response

from radar_app.extensions import db
from radar_app.queue import get_redis

bp = Blueprint("health", __name__)


def _timed(check: Callable[[], object]) -> dict[str, object]:
    started = time.perf_counter()
    try:
        check()
    except (sa.exc.SQLAlchemyError, RedisError, OSError) as exc:
        return {"ok": False, "error": exc.__class__.__name__}
    return {"ok": True, "latency_ms": round((time.perf_counter() - started) * 1000, 1)}


@bp.get("/healthz")
def healthz() -> tuple[Response, int]:
    """200 when the database and Redis both answer, 503 otherwise."""

    def database() -> None:
        db.session.execute(sa.text("SELECT 1"))
        db.session.rollback()

    checks = {"database": _timed(database), "redis": _timed(lambda: get_redis().ping())}
    healthy = all(check["ok"] for check in checks.values())
    return jsonify(status="ok" if healthy else "unavailable", checks=checks), (
        200 if healthy else 503
    )
