"""The application factory: what a radar_app web or worker process is made of."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from flask import Flask

from radar_app import cli, config, errors, joblog, queue, security
from radar_app.admin import bp as admin_bp
from radar_app.api import bp as api_bp
from radar_app.auth import bp as auth_bp
from radar_app.auth import login
from radar_app.channels import bp as channels_bp
from radar_app.config import PROJECT_ROOT
from radar_app.dashboard import bp as dashboard_bp
from radar_app.extensions import csrf, db, init_db, init_limiter, migrate
from radar_app.health import bp as health_bp
from radar_app.jobs import bp as jobs_bp
from radar_app.jobstatus import bp as jobstatus_bp
from radar_app.leadbrowser import bp as leadbrowser_bp
from radar_app.lists import bp as lists_bp
from radar_app.metrics_endpoint import bp as metrics_bp
from radar_app.saved import bp as saved_bp


def create_app(settings: Mapping[str, Any] | None = None) -> Flask:
    """Build the application.

    Args:
        settings: settings that override the defaults. When None, settings come from the
            environment (and an optional .env, loaded by the entry points).
    """
    app = Flask(
        __name__,
        template_folder=str(PROJECT_ROOT / "templates"),
        static_folder=str(PROJECT_ROOT / "static"),
        instance_path=str(config.INSTANCE_DIR),
    )
    configure(app, settings)
    configure_logging(app)
    register_extensions(app)
    register_blueprints(app)
    register_errorhandlers(app)
    register_commands(app)
    return app


def configure(app: Flask, settings: Mapping[str, Any] | None) -> None:
    app.config.from_object(config.Config)
    if settings is None:
        app.config.update(config.settings_from_env())
        if not app.config["SECRET_KEY"]:
            app.config["SECRET_KEY"] = config.local_secret_key()
    else:
        app.config.update(settings)
    config.validate(app.config)


def configure_logging(app: Flask) -> None:
    joblog.configure()
    # Alembic announces every plugin it loads at INFO, in every process that builds the app.
    logging.getLogger("alembic").setLevel(logging.WARNING)


def register_extensions(app: Flask) -> None:
    init_db(app)
    migrate.init_app(app, db, directory=str(PROJECT_ROOT / "migrations"))
    csrf.init_app(app)
    init_limiter(app)
    login.init_app(app)
    queue.init_app(app)
    security.init_app(app)


def register_blueprints(app: Flask) -> None:
    # The API authenticates bearer-token clients, which carry no CSRF token; the API's
    # own before_request enforces CSRF for cookie-authenticated calls instead.
    csrf.exempt(api_bp)
    app.register_blueprint(api_bp)
    app.register_blueprint(auth_bp)
    app.register_blueprint(jobs_bp)
    app.register_blueprint(jobstatus_bp)
    app.register_blueprint(leadbrowser_bp)
    app.register_blueprint(saved_bp)
    app.register_blueprint(lists_bp)
    app.register_blueprint(channels_bp)
    app.register_blueprint(dashboard_bp)
    app.register_blueprint(health_bp)
    app.register_blueprint(metrics_bp)
    app.register_blueprint(admin_bp)


def register_errorhandlers(app: Flask) -> None:
    errors.init_app(app)


def register_commands(app: Flask) -> None:
    cli.init_app(app)
