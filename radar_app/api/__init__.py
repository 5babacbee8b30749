"""The JSON API: batch jobs (routes) and the OpenAPI document that describes them."""

from radar_app.api import openapi  # serves /api/openapi.json from the routes' bp
from radar_app.api.routes import bp

__all__ = ["bp", "openapi"]
