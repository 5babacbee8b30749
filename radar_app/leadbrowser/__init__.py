"""The leads browser's pages: every lead of the user across jobs (radar_app.leadsearch)."""

from radar_app.leadbrowser.routes import bp

__all__ = ["bp"]
