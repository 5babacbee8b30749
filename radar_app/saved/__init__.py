"""Saved searches' pages: the list, saving from the search form or a job, delete."""

from radar_app.saved.routes import bp

__all__ = ["bp"]
