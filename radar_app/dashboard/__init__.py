"""The dashboard: the system's charts (/dashboard) and a job's charts (its page, SVGs)."""

from radar_app.dashboard.routes import bp

__all__ = ["bp"]
