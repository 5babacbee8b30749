"""Admin tools: queue health, stuck jobs, spending, users and the audit trail (admins
only; a viewer, a read-only admin, sees them all and changes nothing)."""

from radar_app.admin import users  # noqa: F401  (its views register on bp)
from radar_app.admin.routes import bp

__all__ = ["bp"]
