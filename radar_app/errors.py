"""Error pages for people, JSON errors for the API."""

from __future__ import annotations

import logging

from flask import Flask, jsonify, render_template, request
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException, InternalServerError, RequestEntityTooLarge
from werkzeug.wrappers import Response

from radar_app.propertyradar.criteria import MAX_VALUES_PER_CRITERION

logger = logging.getLogger(__name__)


def wants_json() -> bool:
    return request.path.startswith("/api/") or request.path == "/api"


def _size(limit: int) -> str:
    return f"{limit / 2**20:g} MB" if limit >= 2**20 else f"{limit / 2**10:g} KB"


def _too_large() -> RequestEntityTooLarge:
    """A 413 that says what the limit is and what to do, instead of werkzeug's text."""
    # The body limit (MAX_CONTENT_LENGTH), or, for a form under it, Flask's
    # MAX_FORM_MEMORY_SIZE, which caps the form's fields.
    body_limit = request.max_content_length
    length = request.content_length
    limit = body_limit if length is None or not body_limit or length > body_limit else None
    limit = limit or request.max_form_memory_size
    size = f"at most {_size(limit)} is accepted" if limit else "it is over the limit"
    return RequestEntityTooLarge(
        f"The request is too large: {size}. Shorten the lists in the search (at most "
        f"{MAX_VALUES_PER_CRITERION:,} values per criterion) or split it into several jobs."
    )


def handle_http_error(exc: HTTPException) -> Response | tuple[str | Response, int]:
    if isinstance(exc, RequestEntityTooLarge):
        exc = _too_large()
    code = exc.code or 500
    if wants_json():
        response = jsonify(error=exc.description or exc.name)
        if code == 405 and exc.valid_methods:  # type: ignore[attr-defined]
            response.headers["Allow"] = ", ".join(exc.valid_methods)  # type: ignore[attr-defined]
        return response, code
    template = f"errors/{code}.html" if code in (403, 404, 500) else "errors/generic.html"
    return render_template(template, error=exc), code


def handle_csrf_error(exc: CSRFError) -> tuple[str | Response, int]:
    if wants_json():
        return jsonify(error=f"CSRF check failed: {exc.description}"), 400
    return render_template("errors/generic.html", error=exc), 400


def handle_unexpected(exc: Exception) -> Response | tuple[str | Response, int]:
    logger.exception("unhandled error on %s %s", request.method, request.path)
    return handle_http_error(InternalServerError())


def init_app(app: Flask) -> None:
    app.register_error_handler(CSRFError, handle_csrf_error)
    app.register_error_handler(HTTPException, handle_http_error)
    app.register_error_handler(Exception, handle_unexpected)
