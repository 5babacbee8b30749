"""Configuration: defaults, read from the environment once, overridable by the factory."""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from radar_app import jsoncodec
from radar_app.defaults import (
    DEFAULT_API_URL,
    DEFAULT_BATCH_SIZE,
    DEFAULT_QUEUE,
    MAX_BATCH_SIZE,
    MAX_CONCURRENCY,
    MAX_ROWS_PER_REQUEST,
)

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# INSTANCE_DIR in the environment moves the local state (SQLite database, secret key, demo
# login and token) elsewhere, e.g. a second `make run` stack or a test's temporary directory.
INSTANCE_DIR = Path(os.environ.get("INSTANCE_DIR") or PROJECT_ROOT / "instance").resolve()


class ConfigError(RuntimeError):
    """A setting is missing or out of range; the message names it."""


class Config:
    """Every setting with its default. Environment variables of the same name override them."""

    SECRET_KEY: str | None = None
    SQLALCHEMY_DATABASE_URI = f"sqlite:///{INSTANCE_DIR / 'radar_app.db'}"
    SQLALCHEMY_ENGINE_OPTIONS: dict[str, Any] = {
        "pool_pre_ping": True,
        "json_serializer": jsoncodec.dumps,
        # A connection is replaced after an hour: SQLite reads the planner's statistics
        # when a connection opens, so the hourly ANALYZE (tasks.refresh_planner_statistics)
        # reaches every process within the hour after.
        "pool_recycle": 3600,
    }
    REDIS_URL = "redis://127.0.0.1:6379/0"
    # Alerts (radar_app.alerts): the SMTP server for email ("smtp://host:port", with
    # user:password@ if it needs a login; smtps:// for TLS), the sender, the operators'
    # address that hears of every failed job, the waits before each retry of a delivery
    # that failed (seconds; one more try than waits), and each try's timeout.
    ALERT_SMTP_URL: str | None = None
    ALERT_FROM = "radar_app@localhost"
    ALERT_ADMIN_EMAIL: str | None = None
    # `make run`'s demo inbox (devstack.inbox): the demo account's alert channels go there.
    DEMO_INBOX_URL: str | None = None
    ALERT_RETRY_SECONDS = "60,300,1800"
    ALERT_TIMEOUT = 10.0
    # Seconds any Redis call made while answering a web request may take (connect, and each
    # reply): queueing a job, /healthz, the admin pages and the sign-in and job-creation
    # rate limits. Redis answers in milliseconds; a frozen Redis must cost a request this
    # long at most, never a server thread for as long as Redis stays frozen.
    REDIS_WEB_TIMEOUT = 1.0
    # GET /metrics (Prometheus): the scraper's `Authorization: Bearer` token (admins may
    # look without it); unset, only admins can. PROMETHEUS_MULTIPROC_DIR: the directory
    # where every process (web workers, work horses) writes its counts, so a scrape sums
    # them all; empty it before the processes start. Unset, each process counts in memory.
    METRICS_TOKEN: str | None = None
    PROMETHEUS_MULTIPROC_DIR: str | None = None
    RQ_QUEUE = DEFAULT_QUEUE
    # RQ's default job_timeout is 180 s; an import of 100,000+ records at real API speed takes
    # far longer. Each request has its own timeout, so this only catches a truly hung job.
    RQ_JOB_TIMEOUT = 6 * 60 * 60
    RQ_RESULT_TTL = 24 * 60 * 60
    RQ_FAILURE_TTL = 7 * 24 * 60 * 60
    PROPERTYRADAR_API_URL = DEFAULT_API_URL
    PROPERTYRADAR_API_TOKEN: str | None = None
    PROPERTYRADAR_BATCH_SIZE = DEFAULT_BATCH_SIZE
    # Purchase=0 RadarID snapshot pages are free: take as many per request as allowed.
    PROPERTYRADAR_SNAPSHOT_PAGE_SIZE = MAX_ROWS_PER_REQUEST
    # Purchase=1 requests in flight per job (1: one after another). Each in flight at a
    # crash may have been billed without its response arriving (see the README).
    PROPERTYRADAR_CONCURRENCY = 2
    # A stored lead younger than this many days is reused instead of bought again.
    LEAD_FRESHNESS_DAYS = 30
    # For cost estimates only; PropertyRadar's price per export depends on the plan.
    PRICE_PER_EXPORT = 0.10
    # The preview counts how many matches are already owned from a free snapshot of at most
    # this many RadarIDs; beyond it, the figure is extrapolated and labelled an estimate.
    PREVIEW_SNAPSHOT_LIMIT = 5000
    # Processing-time estimates in the preview: seconds per PropertyRadar request.
    ESTIMATED_SECONDS_PER_PAGE = 1.0
    # A job that finds a RadarID being bought by another job waits for it (checking every
    # PURCHASE_CLAIM_POLL_INTERVAL s) and reuses it instead of buying it too. A claim
    # whose job stopped (not PROCESSING, or its heartbeat older than RECOVERY_STALE_AFTER)
    # or older than PURCHASE_CLAIM_STALE_AFTER s is taken over.
    PURCHASE_CLAIM_POLL_INTERVAL = 1.0
    PURCHASE_CLAIM_STALE_AFTER = 900.0
    # SQLite waits this long for another connection's write lock before "database is locked".
    SQLITE_BUSY_TIMEOUT_MS = 15000
    # A busy or unreachable database does not lose a bought chunk: the import keeps it in
    # memory and retries the transaction, with backoff, for up to this many seconds.
    DATABASE_RETRY_SECONDS = 600.0
    # Deadline for one whole PropertyRadar request (connect, headers, body), not per read:
    # a body that trickles in must not hold a worker for minutes.
    PROPERTYRADAR_TIMEOUT = 30.0
    PROPERTYRADAR_MAX_ATTEMPTS = 5
    PROPERTYRADAR_BACKOFF_BASE = 0.5
    PROPERTYRADAR_BACKOFF_MAX = 30.0
    # Requests per second to PropertyRadar across ALL workers (held in Redis); 0 = no limit.
    PROPERTYRADAR_RATE_LIMIT = 0.0
    # Crash recovery: a running job refreshes its heartbeat every HEARTBEAT_INTERVAL s;
    # one silent for RECOVERY_STALE_AFTER s is requeued. Workers check every
    # RECOVERY_INTERVAL s, so a killed worker's job is requeued within STALE_AFTER+INTERVAL.
    HEARTBEAT_INTERVAL = 5.0
    RECOVERY_STALE_AFTER = 30.0
    RECOVERY_INTERVAL = 10.0
    # A PENDING job whose RQ job is missing (Redis flushed or restarted) is re-enqueued
    # once it has waited this long; the grace covers the moment between commit and enqueue.
    RECOVERY_PENDING_GRACE = 15.0
    # Flask-Limiter syntax; per user for job creation, per client address for sign-in.
    JOB_CREATE_RATE_LIMIT = "30 per minute"
    LOGIN_RATE_LIMIT = "10 per minute"
    # Largest request body, in bytes: a 413 beyond it, before anything is parsed. A search at
    # the criteria catalogue's own limits (MAX_VALUES_PER_CRITERION...) fits well inside;
    # without a cap a 20 MB criteria list was stored and sent with every request of the job.
    MAX_CONTENT_LENGTH = 1024 * 1024
    # Failed sign-ins per email address, from all client addresses together: stops password
    # guessing spread over many addresses. Counted the same for unknown addresses, so the
    # answer never says whether an account exists.
    LOGIN_ACCOUNT_RATE_LIMIT = "10 per 15 minutes"
    # How long a "Confirm and buy" button on the search form stays good; after that the
    # search is priced and asked again.
    SEARCH_CONFIRM_SECONDS = 15 * 60
    # A one-page search submitted with "Process in background" unticked is queued like any
    # other; the request then waits up to this many seconds for a worker to finish it and
    # shows its leads at once, else opens the job page, which follows it as it runs.
    SEARCH_WAIT_SECONDS = 5.0
    # Pages poll for "job finished" toasts this often, only while the user has a job pending
    # or processing; a toast closes itself after TOAST_SECONDS (not while hovered or focused).
    NOTIFICATION_POLL_SECONDS = 5
    TOAST_SECONDS = 8
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    SESSION_COOKIE_SECURE = False
    REMEMBER_COOKIE_HTTPONLY = True
    # REMEMBER_COOKIE_SECURE follows SESSION_COOKIE_SECURE (see auth/login.py).
    REMEMBER_COOKIE_SAMESITE = "Lax"
    # "Keep me signed in" lasts this many seconds (Flask-Login's default is a year). Signing
    # out, a password change or `flask users revoke-token` ends it earlier, server-side.
    REMEMBER_COOKIE_DURATION = 14 * 24 * 60 * 60


# Environment names that differ from the Flask setting they feed.
_ENV_ALIASES = {"DATABASE_URL": "SQLALCHEMY_DATABASE_URI"}


def settings_from_env(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Read every known setting that is present in the environment, typed."""
    environ = os.environ if environ is None else environ
    names = {name for name in vars(Config) if name.isupper()}
    settings: dict[str, Any] = {}
    for env_name, value in environ.items():
        name = _ENV_ALIASES.get(env_name, env_name)
        if name not in names or value == "":
            continue
        # The default's type says how to read the text (None defaults are strings).
        default = getattr(Config, name)
        try:
            if isinstance(default, bool):
                settings[name] = value.strip().lower() in {"1", "true", "yes", "on"}
            elif isinstance(default, int):
                settings[name] = int(value)
            elif isinstance(default, float):
                settings[name] = float(value)
            else:
                settings[name] = value
        except ValueError as exc:
            raise ConfigError(f"{env_name}={value!r} is not a valid number") from exc
    uri = settings.get("SQLALCHEMY_DATABASE_URI", "")
    # Heroku-style URLs say postgres://; SQLAlchemy wants an explicit driver.
    if uri.startswith(("postgres://", "postgresql://")):
        settings["SQLALCHEMY_DATABASE_URI"] = "postgresql+psycopg://" + uri.split("://", 1)[1]
    return settings


def local_secret_key() -> str:
    """A per-checkout secret kept in instance/ (git-ignored), for development runs only."""
    path = INSTANCE_DIR / "secret_key"
    if not path.exists():
        INSTANCE_DIR.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    return path.read_text().strip()


def validate(config: Mapping[str, Any]) -> None:
    """Fail at start-up, not on the first job, when a setting is out of range."""
    if not config.get("SECRET_KEY"):
        raise ConfigError("SECRET_KEY must be set")
    batch_size = config["PROPERTYRADAR_BATCH_SIZE"]
    if not 1 <= batch_size <= MAX_BATCH_SIZE:
        raise ConfigError(f"PROPERTYRADAR_BATCH_SIZE must be between 1 and {MAX_BATCH_SIZE}")
    if not 1 <= config["PROPERTYRADAR_CONCURRENCY"] <= MAX_CONCURRENCY:
        raise ConfigError(f"PROPERTYRADAR_CONCURRENCY must be between 1 and {MAX_CONCURRENCY}")
    for name in ("NOTIFICATION_POLL_SECONDS", "TOAST_SECONDS"):
        if config[name] < 1:
            raise ConfigError(f"{name} must be at least 1")
