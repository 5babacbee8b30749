"""What the views (pages, API, admin) and the RQ worker share below the web layer.

The views import this module, never the RQ entry module (radar_app.tasks): a view that
needs a PropertyRadar client, the queue settings or a job by its public id gets it here,
so the web and the worker build the client in one way, always behind the shared
rate limiter.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flask import abort, current_app, request
from flask_login import current_user
from redis import Redis
from redis.exceptions import RedisError

from radar_app import batches, searches, waits
from radar_app.extensions import db
from radar_app.metrics import MeasuredClient
from radar_app.models import BatchJob, JobStatus, SavedSearch, utcnow
from radar_app.propertyradar.client import PropertyRadarClient
from radar_app.propertyradar.throttle import SharedRateLimiter
from radar_app.queue import connect, get_redis

# Every poll of a running job's page asks Redis what the job waits for: a frozen Redis
# costs the poll this long at most (and the page shows no wait), well under
# REDIS_WEB_TIMEOUT, which the job page would otherwise pay every 2 s. After a failure
# the process asks again only WAIT_READ_PAUSE s later, so a Jobs page of running jobs
# costs one timeout, not one per job.
WAIT_READ_TIMEOUT = 0.25
WAIT_READ_PAUSE = 5.0


def build_client(config: Mapping[str, Any], redis: Redis) -> PropertyRadarClient:
    """A PropertyRadar client configured from the app's settings.

    With PROPERTYRADAR_RATE_LIMIT set, every request it makes (the web's free counts and
    previews as much as the worker's purchases) waits its turn in the rate limit that all
    processes share through ``redis``.

    Raises:
        RuntimeError: PROPERTYRADAR_API_TOKEN is not set.
    """
    token = config["PROPERTYRADAR_API_TOKEN"]
    if not token:
        raise RuntimeError("PROPERTYRADAR_API_TOKEN is not set")
    limiter = None
    if config["PROPERTYRADAR_RATE_LIMIT"]:
        limiter = SharedRateLimiter(redis, config["PROPERTYRADAR_RATE_LIMIT"])
    # Counts and times each HTTP attempt for /metrics (radar_app/metrics.py).
    return MeasuredClient(
        token,
        config["PROPERTYRADAR_API_URL"],
        timeout=(5.0, config["PROPERTYRADAR_TIMEOUT"]),
        max_attempts=config["PROPERTYRADAR_MAX_ATTEMPTS"],
        backoff_base=config["PROPERTYRADAR_BACKOFF_BASE"],
        backoff_max=config["PROPERTYRADAR_BACKOFF_MAX"],
        rate_limiter=limiter,
    )


def client() -> PropertyRadarClient:
    """The current app's PropertyRadar client, on the web's Redis connection."""
    return build_client(current_app.config, get_redis())


def queue_settings() -> batches.QueueSettings:
    """The current app's RQ timeouts and TTLs for a job it enqueues."""
    return batches.QueueSettings.from_config(current_app.config)


def job_or_404(job_id: str) -> BatchJob:
    """The job with this public id if the current user may see it (an admin: any job).

    :raise 404: no such job, or it belongs to someone else (indistinguishable on purpose).
    """
    job = batches.find_job(db.session, current_user, job_id)
    if job is None:
        abort(404, description="There is no job with that id, or it is not yours.")
    return job


def saved_search_or_404(search_id: str) -> SavedSearch:
    """The saved search with this public id if the current user may see it (an admin:
    any); 404 otherwise, like job_or_404."""
    search = searches.find_search(db.session, current_user, search_id)
    if search is None:
        abort(404, description="There is no saved search with that id, or it is not yours.")
    return search


def user_key() -> str:
    """The rate-limit key of a request: the signed-in user, else the client address."""
    if current_user.is_authenticated:
        return f"user:{current_user.id}"
    return request.remote_addr or "unknown"


def job_waiting(job: BatchJob) -> waits.Waiting | None:
    """What a running job is waiting for (radar_app/waits.py): its worker's silence, or
    the most telling wait its worker posted. None when it is not running, not waiting,
    or Redis did not answer in time."""
    if job.status != JobStatus.PROCESSING:
        return None
    config = current_app.config
    silent = waits.no_heartbeat(
        job.heartbeat_at,
        utcnow(),
        interval=config["HEARTBEAT_INTERVAL"],
        stale_after=config["RECOVERY_STALE_AFTER"],
    )
    if silent is not None:
        return silent
    reader = _wait_reader()
    if time.monotonic() < reader.quiet_until:
        return None
    try:
        return waits.most_telling(reader.board.read(job.id), time.time())
    except RedisError:
        reader.quiet_until = time.monotonic() + WAIT_READ_PAUSE
        return None


@dataclass
class _WaitReader:
    """The app's reader of posted waits: a connection of its own with a short timeout,
    and until when (time.monotonic) it leaves Redis alone after a failure."""

    board: waits.WaitBoard
    quiet_until: float = 0.0


def _wait_reader() -> _WaitReader:
    reader: _WaitReader | None = current_app.extensions.get("wait_reader")
    if reader is None:
        timeout = min(WAIT_READ_TIMEOUT, current_app.config["REDIS_WEB_TIMEOUT"])
        redis = connect(current_app.config["REDIS_URL"], timeout, connect_timeout=timeout)
        reader = current_app.extensions.setdefault(
            "wait_reader", _WaitReader(waits.WaitBoard(redis))
        )
    return reader
