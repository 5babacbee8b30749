"""Extension singletons, bound to an app in create_app()."""

from collections.abc import Callable
from typing import Any

from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf.csrf import CSRFProtect
from sqlalchemy import event
from sqlalchemy.orm import DeclarativeBase


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)
migrate = Migrate()
login_manager = LoginManager()
csrf = CSRFProtect()
# Storage is Redis (RATELIMIT_STORAGE_URI, defaulting to REDIS_URL), so the limits hold
# across every web process. If Redis is down the limit is skipped (swallow_errors), so
# the request can still answer its own clear 503.
limiter = Limiter(key_func=get_remote_address, headers_enabled=True, swallow_errors=True)


def sqlite_pragmas_with(busy_timeout_ms: int) -> Callable[[Any, Any], None]:
    """A connect listener setting SQLite's pragmas, waiting up to busy_timeout_ms for locks."""

    def sqlite_pragmas(dbapi_connection, _record) -> None:  # noqa: ANN001 - DB-API objects
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


def init_db(app) -> None:  # noqa: ANN001 - flask.Flask, imported lazily by the factory
    db.init_app(app)
    with app.app_context():
        if db.engine.dialect.name == "sqlite":
            listener = sqlite_pragmas_with(app.config.get("SQLITE_BUSY_TIMEOUT_MS", 15000))
            event.listen(db.engine, "connect", listener)
