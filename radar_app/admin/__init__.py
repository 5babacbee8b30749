"""Admin tools: queue health, stuck jobs and spending (admins only)."""

from radar_app.admin.routes import bp

__all__ = ["bp"]
