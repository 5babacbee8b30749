"""Alert channels' page: email addresses and webhooks, "send test", the delivery log."""

from radar_app.channels.routes import bp

__all__ = ["bp"]
