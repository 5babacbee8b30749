"""OpenAPI 3 description of the JSON API, served at /api/openapi.json.

Built once, by apispec, from what the views declare and run on: each operation of
radar_app.api.routes (radar_app.api.operations) gives its path, parameters, request body
and responses; radar_app.api.schemas (through apispec's marshmallow plugin) gives every
body's schema. Written here is only what no view declares: the title, the tags and the
security schemes. tests/test_openapi.py (in-process, over WSGI) and
tests/test_schemathesis_live.py (the schemathesis CLI against a live server) hold the API
to it: no 5xx, every status, content type, header and body as documented, and every
request the document calls valid accepted (tests/schemathesis_checks.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache
from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin, OpenAPIConverter
from apispec.ext.marshmallow.common import resolve_schema_instance
from flask import jsonify
from werkzeug.wrappers import Response

from radar_app.api import criteria_schema
from radar_app.api.operations import JOB_ID, JSON, PATH_OBJECTS, Operation, Reply
from radar_app.api.routes import bp
from radar_app.api.schemas import ResponseSchema

_TAGS = {
    "jobs": "Batch jobs",
    "searches": "Saved searches, to run again",
    "leads": "Leads a job stored",
    "meta": "About the API",
}
_DESCRIPTION = (
    "Batch imports of PropertyRadar leads. Authenticate with `Authorization: Bearer "
    "<token>` (issued on the account page) or the web session cookie; cookie-authenticated "
    "POSTs also need an `X-CSRFToken` header. Errors are JSON objects with an `error` message."
)
_SECURITY_SCHEMES = {
    "bearerAuth": {"type": "http", "scheme": "bearer", "description": "The personal API token"},
    "cookieAuth": {
        "type": "apiKey",
        "in": "cookie",
        "name": "session",
        "description": "The signed-in web session",
    },
}


class _Converter(OpenAPIConverter):
    """apispec's, with every property of a response schema required: every dump carries
    every field (null where nullable)."""

    def schema2jsonschema(self, schema: Any) -> dict[str, Any]:
        json_schema: dict[str, Any] = super().schema2jsonschema(schema)
        if isinstance(resolve_schema_instance(schema), ResponseSchema):
            json_schema["required"] = list(json_schema["properties"])
        return json_schema


class _Plugin(MarshmallowPlugin):
    Converter = _Converter


def _component_name(parameter: str) -> str:
    return "".join(word.title() for word in parameter.split("_"))  # per_page: PerPage


class _Document:
    """The apispec document being built from the operations."""

    def __init__(self, operations: list[Operation]) -> None:
        self.operations = operations
        self.plugin = _Plugin()
        self.spec = APISpec(
            "radar_app API",
            "1",
            "3.0.3",
            plugins=[self.plugin],
            info={"description": _DESCRIPTION},
            servers=[{"url": "/"}],
            security=[{name: []} for name in _SECURITY_SCHEMES],
        )
        for name, scheme in _SECURITY_SCHEMES.items():
            self.spec.components.security_scheme(name, scheme)
        for tag, description in _TAGS.items():
            self.spec.tag({"name": tag, "description": description})
        for name, schema in criteria_schema.COMPONENTS.items():
            self.spec.components.schema(name, schema)
        for name, path_object in PATH_OBJECTS.items():
            self.spec.components.parameter(
                _component_name(name), "path", path_object.document_parameter
            )

    def build(self) -> dict[str, Any]:
        for operation in self.operations:
            self.spec.path(
                operation.path,
                operations={operation.method.lower(): self._operation(operation)},
            )
        return self.spec.to_dict()

    def _operation(self, operation: Operation) -> dict[str, Any]:
        if operation.tag not in _TAGS:
            raise ValueError(f"{operation.operation_id}: no tag {operation.tag!r} in _TAGS")
        described: dict[str, Any] = {
            "operationId": operation.operation_id,
            "summary": operation.summary,
            "tags": [operation.tag],
            "responses": self._responses(operation.replies()),
        }
        parameters = [_component_name(o.parameter) for o in operation.path_objects]
        if operation.query is not None:
            parameters += self._query_parameters(operation.query)
        if parameters:
            described["parameters"] = parameters
        if operation.body is not None:
            media: dict[str, Any] = {"schema": operation.body}
            if operation.body_example is not None:
                media["example"] = operation.body_example
            described["requestBody"] = {"required": True, "content": {JSON: media}}
        if operation.public:
            described["security"] = []
        return described

    def _query_parameters(self, query: Any) -> list[str]:
        """The query schema's fields as parameter components, by name."""
        assert self.plugin.converter is not None  # set when the spec was made
        names = []
        for parameter in self.plugin.converter.schema2parameters(query, location="query"):
            name = _component_name(parameter["name"])
            registered = self.spec.components.parameters.get(name)
            if registered is not None and registered != parameter:
                # One name, two meanings (q: a leads search, a jobs search): the later
                # schema's is named after it, e.g. LeadQueryQ.
                name = type(query).__name__.removesuffix("Schema") + name
                registered = self.spec.components.parameters.get(name)
            if registered is None:
                self.spec.components.parameter(name, "query", parameter)
            elif registered != parameter:
                raise ValueError(f"Two query schemas describe the parameter {name} differently")
            names.append(name)
        return names

    def _responses(self, replies: Iterable[Reply]) -> dict[int, Any]:
        """By status; two replies with one status (a 400 for the body or the CSRF check)
        are one response that says both."""
        by_status: dict[int, list[Reply]] = {}
        for reply in replies:
            by_status.setdefault(reply.status, []).append(reply)
        return {status: self._response(same) for status, same in by_status.items()}

    def _response(self, replies: list[Reply]) -> dict[str, Any] | str:
        """A reply many operations give is a component, referred to by its name."""
        component = replies[0].component if len(replies) == 1 else None
        if component is None:
            return self._described(replies)
        if component not in self.spec.components.responses:
            self.spec.components.response(component, self._described(replies))
        return component

    def _described(self, replies: list[Reply]) -> dict[str, Any]:
        media_types = {reply.media_type for reply in replies}
        if len(media_types) != 1:
            raise ValueError(f"Replies {replies} with one status differ in media type")
        schemas = [reply.schema for reply in replies]
        described: dict[str, Any] = {
            "description": "; or ".join(reply.description for reply in replies),
            "content": {
                media_types.pop(): {
                    "schema": schemas[0] if len(schemas) == 1 else {"anyOf": schemas}
                }
            },
        }
        headers = {name: header for reply in replies for name, header in reply.headers.items()}
        if headers:
            described["headers"] = headers
        if any(reply.links_to_job for reply in replies):
            described["links"] = {
                target.operation_id: {
                    "operationId": target.operation_id,
                    "parameters": {JOB_ID: "$response.body#/id"},
                }
                for target in self.operations
                if target.takes_job
            }
        return described


@bp.operation(
    "GET",
    "/openapi.json",
    tag="meta",
    public=True,  # it describes, it does not expose data
    reply=Reply(200, "The OpenAPI document", {"type": "object"}),
)
def get_openapi_document() -> Response:
    """This document."""
    return jsonify(openapi_spec())


@cache
def openapi_spec() -> dict[str, Any]:
    """The OpenAPI 3.0 document of the JSON API (built once; treat as read-only)."""
    return _Document(bp.operations).build()
