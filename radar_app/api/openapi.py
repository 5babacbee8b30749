"""OpenAPI 3 description of the JSON API, served at /api/openapi.json."""

from flask import jsonify
from werkzeug.wrappers import Response

from radar_app.api import bp


@bp.get("/openapi.json")
def openapi_document() -> Response:
    """The API's OpenAPI 3 document (public: it describes, it does not expose data)."""
    return jsonify({"openapi": "3.0.3", "info": {"title": "radar_app API", "version": "1"}})
