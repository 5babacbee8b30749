"""Extension singletons, bound to an app in create_app()."""

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

from flask import Flask, request
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf.csrf import CSRFProtect
from sqlalchemy import Table, event
from sqlalchemy.orm import DeclarativeBase


class Base(DeclarativeBase):
    if TYPE_CHECKING:
        # Every model here declares its columns, so its __table__ is a Table, not just the
        # FromClause that DeclarativeBase promises for any kind of mapping.
        __table__: ClassVar[Table]


db = SQLAlchemy(model_class=Base)
migrate = Migrate()
login_manager = LoginManager()
csrf = CSRFProtect()
# Storage is Redis (RATELIMIT_STORAGE_URI, defaulting to REDIS_URL), so the limits hold
# across every web process. While Redis is down or frozen the limits still hold, counted
# in each process's memory (in_memory_fallback_enabled); Flask-Limiter probes Redis again
# at growing intervals and goes back to it once it answers.
limiter = Limiter(
    key_func=get_remote_address,
    headers_enabled=True,
    in_memory_fallback_enabled=True,
    # Only if the in-memory fallback itself failed: a request is not refused for that.
    swallow_errors=True,
)


@limiter.request_filter
def _reads_are_never_limited() -> bool:
    # Every limit in the app is on a POST (sign-in, job creation). Exempting reads keeps
    # them off the limiter's storage altogether: while Redis is down, Flask-Limiter's
    # periodic "is Redis back?" probe would otherwise land on, and hold up by one
    # timeout, whichever page is asked for next.
    return request.method in ("GET", "HEAD", "OPTIONS")


def init_limiter(app: Flask) -> None:
    app.config.setdefault("RATELIMIT_STORAGE_URI", app.config["REDIS_URL"])
    if app.config["RATELIMIT_STORAGE_URI"].startswith(("redis://", "rediss://", "unix://")):
        # The Redis storage has no timeout of its own: a frozen Redis would hold every
        # rate-limited request (sign-in, job creation) for as long as it stays frozen.
        timeout = app.config["REDIS_WEB_TIMEOUT"]
        options = {"socket_timeout": timeout, "socket_connect_timeout": timeout}
        app.config.setdefault("RATELIMIT_STORAGE_OPTIONS", options)
    limiter.init_app(app)
    # The limiter is one object for every app built in this process (the decorators
    # need it at import time); a fallback that an earlier app's Redis outage switched on
    # must not carry over to the new app's storage.
    limiter._storage_dead = False


def sqlite_pragmas_with(busy_timeout_ms: int) -> Callable[[Any, Any], None]:
    """A connect listener setting SQLite's pragmas, waiting up to busy_timeout_ms for locks."""

    def sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:  # DB-API objects
        # WAL lets the web read while a worker writes; busy_timeout waits out the short
        # write locks instead of failing with "database is locked"; SQLite leaves FKs off.
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    return sqlite_pragmas


# With the default busy timeout (Config.SQLITE_BUSY_TIMEOUT_MS), for engines built outside
# the app (worker.py's reconciler).
sqlite_pragmas = sqlite_pragmas_with(15000)


def init_db(app: Flask) -> None:
    db.init_app(app)
    with app.app_context():
        if db.engine.dialect.name == "sqlite":
            listener = sqlite_pragmas_with(app.config.get("SQLITE_BUSY_TIMEOUT_MS", 15000))
            event.listen(db.engine, "connect", listener)
