"""The JSON API's operations, each declared once, on its view.

``bp.operation(...)`` (an :class:`ApiBlueprint`) registers a view under its rule and makes
the view do what the declaration says; radar_app.api.openapi turns the same declarations
into the document's paths, so the document cannot promise what the view does not do:

- sign-in unless ``public`` (401), and the CSRF check of a cookie-authenticated call that
  is not a GET (400), which a read-only user may not make (403);
- ``rate_limit``: a limit per user (429);
- ``<job_id>`` (``<search_id>``) in the rule: the view gets ``job`` (``search``), the
  caller's job (saved search) by that id (404);
- ``query``: the view gets ``query``, the query string loaded by that schema (400);
- ``body``: the view gets ``body``, the JSON body loaded by that schema (400, 413);
- ``reply``: what the view returns is dumped by the reply's schema, with its status and
  the headers the view returns beside it (a view that builds its own Response, a CSV
  download, returns that);
- ``errors``: the view's other replies, which it raises as ``ApiError(reply, message)``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from flask import Blueprint, Response, jsonify, request
from flask.typing import ResponseReturnValue
from flask_login import current_user, login_required
from marshmallow import Schema, ValidationError

from radar_app import services
from radar_app.api.schemas import ERROR, VALIDATION_ERROR, field_problems
from radar_app.auth.login import bearer_token
from radar_app.extensions import csrf, limiter

JSON = "application/json"
_STRING = {"type": "string"}


@dataclass(frozen=True, eq=False)
class Reply:
    """One response an operation gives: its status, what it means, its body and headers."""

    status: int
    description: str
    # The body's schema: a marshmallow schema dumps it; a JSON Schema only describes the
    # body of a view that builds its own Response.
    schema: Schema | Mapping[str, Any]
    media_type: str = JSON
    headers: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    # The name of the document's response component, for a reply many operations give.
    component: str | None = None
    # The body is a job: the document links it to the operations on that job.
    links_to_job: bool = False

    def dump(self, body: Any) -> dict[str, Any]:
        if not isinstance(self.schema, Schema):
            raise TypeError(f"{self.description!r} has no marshmallow schema to dump with")
        dumped: dict[str, Any] = self.schema.dump(body)
        return dumped

    def make(self, result: Any) -> ResponseReturnValue:
        """The response for what a view returned: a Response as it is; else a body, or a
        body and headers, dumped as JSON with this reply's status."""
        if isinstance(result, Response):
            return result
        body, headers = result if isinstance(result, tuple) else (result, {})
        return jsonify(self.dump(body)), self.status, headers


# The replies that follow from a declaration (the list in the module docstring).
UNAUTHORIZED = Reply(
    401,
    "No valid Bearer token or session",
    ERROR,
    headers={
        # Set by radar_app.auth.login.unauthorized.
        "WWW-Authenticate": {
            "required": True,
            "schema": _STRING,
            "description": 'Bearer realm="radar_app"',
        }
    },
    component="Unauthorized",
)
# radar_app.security.refuse_read_only_writes, for every call that is not a GET.
READ_ONLY = Reply(
    403, "The caller's account is read-only: it can look, not change", ERROR, component="ReadOnly"
)
CSRF_FAILED = Reply(
    400,
    "Cookie-authenticated call without a valid X-CSRFToken header (no `fields`)",
    ERROR,
    component="CsrfFailed",
)
RATE_LIMITED = Reply(
    429,
    "Too many of these requests by this user recently",
    ERROR,
    headers={
        "Retry-After": {"schema": _STRING, "description": "Seconds to wait before trying again"}
    },
    component="RateLimited",
)
NOT_FOUND = Reply(
    404,
    "No such job, saved search or suppression list visible to the caller",
    ERROR,
    component="NotFound",
)
BAD_QUERY = Reply(
    400,
    "Invalid query parameters (every problem under `fields`)",
    VALIDATION_ERROR,
    component="BadQuery",
)
BAD_BODY = Reply(
    400,
    "Invalid body or criteria (every problem under `fields`)",
    VALIDATION_ERROR,
    component="BadBody",
)
TOO_LARGE = Reply(
    413,
    "The request body is larger than the server accepts (MAX_CONTENT_LENGTH)",
    ERROR,
    component="TooLarge",
)


@dataclass(frozen=True)
class PathObject:
    """A path parameter naming one of the caller's objects: the view gets the object."""

    parameter: str  # in the rule and the document, e.g. job_id
    argument: str  # the view's keyword, e.g. job
    load: Callable[[str], Any]  # the caller's object with that id, or abort(404)
    description: str

    @property
    def document_parameter(self) -> dict[str, Any]:
        return {
            "name": self.parameter,
            "in": "path",
            "required": True,
            "description": self.description,
            "schema": {"type": "string", "minLength": 1},
        }


JOB_ID = "job_id"
PATH_OBJECTS = {
    path_object.parameter: path_object
    for path_object in [
        PathObject(JOB_ID, "job", services.job_or_404, "The job's `id`"),
        PathObject("search_id", "search", services.saved_search_or_404, "The saved search's `id`"),
    ]
}
_RULE_PARAMETER = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")


class ApiError(Exception):
    """Answer with ``reply`` (one the operation declares): ``message`` as its ``error``,
    ``extra`` as its other keys (a ValidationError's ``fields``, a Conflict's ``status``)."""

    def __init__(self, reply: Reply, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.reply, self.message, self.extra = reply, message, extra


@dataclass(frozen=True, eq=False)
class Operation:
    """One declared operation: what its view takes and what it answers."""

    view: Callable[..., Any]
    method: str
    path: str  # the OpenAPI path template, e.g. /api/batch-jobs/{job_id}
    tag: str
    reply: Reply
    body: Schema | None = None
    body_example: Mapping[str, Any] | None = None
    query: Schema | None = None
    public: bool = False
    rate_limited: bool = False
    errors: tuple[Reply, ...] = ()

    @property
    def operation_id(self) -> str:
        """The view's name in camelCase: create_batch_job is createBatchJob."""
        first, *rest = self.view.__name__.split("_")
        return first + "".join(word.title() for word in rest)

    @property
    def summary(self) -> str:
        """The first line of the view's docstring."""
        return (self.view.__doc__ or "").strip().splitlines()[0].rstrip(".")

    @property
    def path_objects(self) -> list[PathObject]:
        return [o for name, o in PATH_OBJECTS.items() if f"{{{name}}}" in self.path]

    @property
    def takes_job(self) -> bool:
        return f"{{{JOB_ID}}}" in self.path

    def replies(self) -> list[Reply]:
        """Every reply the operation may give: its own, those its declaration implies, its
        errors."""
        implied = [
            (not self.public, UNAUTHORIZED),
            (self.rate_limited, RATE_LIMITED),
            (bool(self.path_objects), NOT_FOUND),
            (self.query is not None, BAD_QUERY),
            (self.body is not None, BAD_BODY),
            (self.body is not None, TOO_LARGE),
            (not self.public and self.method != "GET", CSRF_FAILED),
            (not self.public and self.method != "GET", READ_ONLY),
        ]
        listed = [self.reply, *(reply for applies, reply in implied if applies), *self.errors]
        return list(dict.fromkeys(listed))  # an error implied and declared is one reply


class ApiBlueprint(Blueprint):
    """A blueprint whose views are declared operations (:meth:`operation`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.operations: list[Operation] = []
        self.before_request(_protect_cookie_sessions)
        self.register_error_handler(ApiError, _handle_api_error)

    def operation(
        self,
        method: str,
        rule: str,
        *,
        tag: str,
        reply: Reply,
        body: Schema | None = None,
        body_example: Mapping[str, Any] | None = None,
        query: Schema | None = None,
        public: bool = False,
        rate_limit: Callable[[], str] | None = None,
        errors: tuple[Reply, ...] = (),
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Register the decorated view as this operation (see the module docstring)."""
        unknown = set(_RULE_PARAMETER.findall(rule)) - set(PATH_OBJECTS)
        if unknown:
            raise ValueError(f"{rule}: no declaration describes the path parameters {unknown}")

        def register(view: Callable[..., Any]) -> Callable[..., Any]:
            if not (view.__doc__ or "").strip():
                raise ValueError(f"{view.__name__}: its docstring is the operation's summary")
            operation = Operation(
                view=view,
                method=method.upper(),
                path=_RULE_PARAMETER.sub(r"{\1}", f"{self.url_prefix or ''}{rule}"),
                tag=tag,
                reply=reply,
                body=body,
                body_example=body_example,
                query=query,
                public=public,
                rate_limited=rate_limit is not None,
                errors=errors,
            )
            self.operations.append(operation)
            self.add_url_rule(
                rule, view_func=_view_func(operation, rate_limit), methods=[operation.method]
            )
            return view

        return register


def _view_func(operation: Operation, rate_limit: Callable[[], str] | None) -> Callable[..., Any]:
    """The view as Flask calls it, doing what ``operation`` declares: sign-in first, then the
    rate limit, then the job, the query and the body, so each fails as early as it can."""
    view = operation.view

    @functools.wraps(view)
    def run(**path: str) -> ResponseReturnValue:
        kwargs: dict[str, Any] = {}
        for path_object in operation.path_objects:
            kwargs[path_object.argument] = path_object.load(path.pop(path_object.parameter))
        if operation.query is not None:
            kwargs["query"] = _load_query(operation.query)
        if operation.body is not None:
            kwargs["body"] = _load_body(operation.body)
        return operation.reply.make(view(**path, **kwargs))

    wrapped: Callable[..., Any] = run
    if rate_limit is not None:
        wrapped = limiter.limit(rate_limit, key_func=services.user_key)(wrapped)
    return wrapped if operation.public else login_required(wrapped)


def _protect_cookie_sessions() -> None:
    # Bearer-token calls cannot be forged cross-site; cookie-authenticated ones can.
    # Anonymous calls fall through to login_required and get a 401.
    if (
        request.method not in ("GET", "HEAD", "OPTIONS")
        and bearer_token(request) is None
        and current_user.is_authenticated
    ):
        csrf.protect()


def _handle_api_error(exc: ApiError) -> tuple[Response, int]:
    return jsonify(exc.reply.dump({"error": exc.message, **exc.extra})), exc.reply.status


def _load_body(schema: Schema) -> dict[str, Any]:
    """The JSON body as ``schema`` loads it, or a 400 listing every problem at once."""
    try:
        body = request.get_json(silent=True)
    except RecursionError:
        # json.loads recurses once per level: 100,000 "[" exhaust the stack. No request
        # this API takes is nested more than a few levels.
        raise ApiError(BAD_BODY, "Request body is nested too deeply", fields={}) from None
    if not isinstance(body, dict):
        raise ApiError(BAD_BODY, "Request body must be a JSON object", fields={})
    try:
        loaded: dict[str, Any] = schema.load(body)
    except ValidationError as exc:
        raise ApiError(BAD_BODY, "Invalid request", fields=field_problems(exc)) from exc
    return loaded


def _load_query(schema: Schema) -> dict[str, Any]:
    try:
        args: dict[str, Any] = schema.load(request.args)
    except ValidationError as exc:
        raise ApiError(BAD_QUERY, "Invalid query", fields=field_problems(exc)) from exc
    return args
