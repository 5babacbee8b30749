"""Sign-in, sign-out, passwords and API tokens.

The blueprint is looked up lazily (as radar_app.create_app is): the domain uses this
package's tokens and passwords (radar_app.accounts), and the views import the domain."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from radar_app.auth.routes import bp

__all__ = ["bp"]


def __getattr__(name: str) -> Any:
    if name == "bp":
        from radar_app.auth.routes import bp

        return bp
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
