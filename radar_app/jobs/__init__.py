"""The web UI: search, the Jobs tab, job pages and their htmx fragments."""

from radar_app.jobs.routes import bp

__all__ = ["bp"]
