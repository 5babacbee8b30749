"""A job's state on its pages: what it has been through (its timeline) and what it is
waiting for right now."""

from radar_app.jobstatus.routes import bp

__all__ = ["bp"]
