"""radar_app: batch imports of PropertyRadar leads, processed by RQ workers."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from radar_app import config as config_module
from radar_app.config import PROJECT_ROOT

if TYPE_CHECKING:
    # Imported lazily so that `import radar_app.propertyradar` (client, simulator) does not
    # pull in Flask.
    from flask import Flask


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the application.

    Args:
        config: settings that override the defaults. When None, settings come from the
            environment (and an optional .env, loaded by the entry points).
    """
    from flask import Flask

    app = Flask(
        __name__,
        template_folder=str(PROJECT_ROOT / "templates"),
        static_folder=str(PROJECT_ROOT / "static"),
        instance_path=str(config_module.INSTANCE_DIR),
    )
    app.config.from_object(config_module.Config)
    if config is None:
        app.config.update(config_module.settings_from_env())
        if not app.config["SECRET_KEY"]:
            app.config["SECRET_KEY"] = config_module.local_secret_key()
    else:
        app.config.update(config)
    config_module.validate(app.config)

    configure_logging(app)
    register_extensions(app)
    register_blueprints(app)
    register_errorhandlers(app)
    register_commands(app)
    return app


def configure_logging(app: Flask) -> None:
    from radar_app import joblog

    joblog.configure()
    # Alembic announces every plugin it loads at INFO, in every process that builds the app.
    logging.getLogger("alembic").setLevel(logging.WARNING)


def register_extensions(app: Flask) -> None:
    from radar_app import queue, security
    from radar_app.auth import login
    from radar_app.extensions import csrf, db, init_db, init_limiter, migrate

    init_db(app)
    migrate.init_app(app, db, directory=str(PROJECT_ROOT / "migrations"))
    csrf.init_app(app)
    init_limiter(app)
    login.init_app(app)
    queue.init_app(app)
    security.init_app(app)


def register_blueprints(app: Flask) -> None:
    from radar_app.admin import bp as admin_bp
    from radar_app.api import bp as api_bp
    from radar_app.auth import bp as auth_bp
    from radar_app.extensions import csrf
    from radar_app.health import bp as health_bp
    from radar_app.jobs import bp as jobs_bp

    # The API authenticates bearer-token clients, which carry no CSRF token; the API's
    # own before_request enforces CSRF for cookie-authenticated calls instead.
    csrf.exempt(api_bp)
    app.register_blueprint(api_bp)
    app.register_blueprint(auth_bp)
    app.register_blueprint(jobs_bp)
    app.register_blueprint(health_bp)
    app.register_blueprint(admin_bp)


def register_errorhandlers(app: Flask) -> None:
    from radar_app import errors

    errors.init_app(app)


def register_commands(app: Flask) -> None:
    from radar_app import cli

    cli.init_app(app)
