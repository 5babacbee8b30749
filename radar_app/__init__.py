"""radar_app: batch imports of PropertyRadar leads, processed by RQ workers.

The application factory lives in radar_app.app. It is looked up lazily here, so that
``from radar_app import create_app`` works while ``import radar_app.propertyradar`` (the
HTTP client, usable from a plain script) still does not import Flask.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from radar_app.app import create_app

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from radar_app.app import create_app

        return create_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
