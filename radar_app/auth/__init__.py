"""Sign-in, sign-out, passwords and API tokens."""

from radar_app.auth.routes import bp

__all__ = ["bp"]
