"""OpenAPI 3 description of the JSON API, served at /api/openapi.json.

The document is built once, from the same declarations the API serializes and validates
with: the response schemas are generated from radar_app.api.schemas (marshmallow, through
apispec), the Lead schema from radar_app.leads, the criterion schemas from the criteria
catalogue (names and value shapes, page limits, field sets), so it follows them.
tests/test_openapi.py (in-process, over WSGI) and tests/test_schemathesis_live.py (the
schemathesis CLI against a live server) hold the API to it: no 5xx, every status, content
type, header and body as documented, and every request the document calls valid accepted
(tests/schemathesis_checks.py). A new route or status must be added here.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import jsonify
from werkzeug.wrappers import Response

from radar_app import leads
from radar_app.api.routes import bp
from radar_app.api.schemas import QUERY_PARAMETERS, REQUEST_SCHEMAS, RESPONSE_SCHEMAS
from radar_app.models import JobStatus
from radar_app.pagination import MAX_PER_PAGE
from radar_app.propertyradar import criteria
from radar_app.propertyradar.coerce import US_STATES
from radar_app.propertyradar.criteria import CRITERIA

JSON = "application/json"
Schema = dict[str, Any]


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(schema: Schema) -> Schema:
    return {**schema, "nullable": True}


def _json_response(description: str, schema: Schema, **extra: Any) -> Schema:
    return {"description": description, "content": {JSON: {"schema": schema}}, **extra}


STRING = {"type": "string"}
INTEGER = {"type": "integer"}
COUNT = {"type": "integer", "minimum": 0}
NUMBER = {"type": "number"}
BOOLEAN = {"type": "boolean"}
TIMESTAMP = {"type": "string", "format": "date-time"}

_STATUSES = [status.value for status in JobStatus]

# Value shapes by criterion kind (radar_app.propertyradar.criteria), in canonical form: the
# server also tolerates some variants (surrounding spaces, numbers as strings, any case).
# PostgreSQL cannot store NUL in text or JSONB, so no string the API stores may contain one.
_NO_NUL = "^[^\\x00]*$"
_TEXT = {
    "type": "string",
    "maxLength": criteria.MAX_VALUE_LENGTH,
    "pattern": "^[^\\x00]*[^\\s\\x00][^\\x00]*$",
}
_RANGE_BOUND = _nullable(
    {
        "type": "number",
        "minimum": -criteria.MAX_RANGE_NUMBER,
        "maximum": criteria.MAX_RANGE_NUMBER,
    }
)
# M/D/YYYY. Whether the day exists in its month, and a from-date before its to-date, the
# server checks (criteria[i].value in the 400) beyond what a pattern can say.
_DATE = "(0?[1-9]|1[0-2])/(0?[1-9]|[12][0-9]|3[01])/[1-9][0-9]{3}"
_KIND_ITEMS: dict[str, Schema] = {
    criteria.MULTI: _TEXT,
    criteria.PREFIX: _TEXT,
    criteria.BOOLEAN: {"type": "integer", "enum": [0, 1]},
    criteria.RANGE: {
        "type": "array",
        "description": "[min, max]; null for an open end",
        "minItems": 2,
        "maxItems": 2,
        "items": _RANGE_BOUND,
    },
    criteria.DATE: {
        "anyOf": [
            {"type": "string", "enum": criteria.DATE_PRESETS},
            # Either end may be empty, not both.
            {"type": "string", "pattern": f"^from: ?({_DATE} to: ?({_DATE})?| to: ?{_DATE})$"},
            {"type": "string", "pattern": f"^{_DATE}$"},
        ]
    },
    criteria.PROPERTY_TYPE: {
        "type": "object",
        "required": ["name", "value"],
        "additionalProperties": False,
        "properties": {
            "name": {"type": "string", "enum": ["PType"]},
            "value": {
                "type": "array",
                "minItems": 1,
                "maxItems": len(criteria.PROPERTY_TYPES),
                "items": {"type": "string", "enum": list(criteria.PROPERTY_TYPES)},
            },
        },
    },
    criteria.LIST: {
        "anyOf": [
            {"type": "integer", "minimum": 1, "maximum": 10**18 - 1},
            {"type": "string", "pattern": "^[1-9][0-9]{0,17}$"},
        ]
    },
}
_MULTI_ITEMS: dict[str, Schema] = {
    "State": {
        "type": "string",
        "enum": sorted(US_STATES.values()),
        "description": "US state or territory code (any case)",
    },
    "County": {
        "anyOf": [
            {"type": "integer", "minimum": 1000, "maximum": 99999},
            {"type": "string", "pattern": "^[0-9]{4,5}$"},
        ]
    },
    "ZipFive": {
        "anyOf": [
            {"type": "integer", "minimum": 0, "maximum": 99999},
            {"type": "string", "pattern": "^[0-9]{5}$"},
        ]
    },
    "RadarID": {"type": "string", "pattern": "^[A-Za-z0-9]+$"},
    "ForeclosureStage": {"type": "string", "enum": criteria.FORECLOSURE_STAGES},
    "OwnershipType": {"type": "string", "enum": criteria.OWNERSHIP_TYPES},
    "ListingStatus": {"type": "string", "enum": criteria.LISTING_STATUSES},
}


def _criterion_input(spec: criteria.CriterionSpec) -> Schema:
    items = _MULTI_ITEMS.get(spec.name) if spec.kind == criteria.MULTI else None
    return {
        "type": "object",
        "title": spec.name,
        "description": spec.hint,
        "required": ["name", "value"],
        "additionalProperties": False,
        "properties": {
            "name": {"type": "string", "enum": [spec.name]},
            "value": {
                "type": "array",
                "minItems": 1,
                "maxItems": criteria.max_values(spec),
                "items": items or _KIND_ITEMS[spec.kind],
            },
        },
    }


def _lead_property(lead_field: leads.LeadField) -> Schema:
    schema: Schema = {"type": lead_field.json_type}
    if lead_field.description:
        schema["description"] = lead_field.description
    return schema if lead_field.identifies else _nullable(schema)


# Lead keys in serializer order (radar_app.leads.JSON_KEYS): (name, schema).
_LEAD_PROPERTIES: list[tuple[str, Schema]] = [
    *((f.name, _lead_property(f)) for f in leads.FIELDS),
    (
        leads.CUSTOM_FIELDS_KEY,
        {
            "type": "object",
            "description": "The job's custom fields (its `fields` beyond the essentials), by "
            "PropertyRadar name, with the values PropertyRadar sent (null when it sent none). "
            "Empty for a job that bought the essentials.",
            "additionalProperties": {},
        },
    ),
]

_CRITERIA_INPUT: Schema = {
    "type": "array",
    "minItems": 1,
    "maxItems": criteria.MAX_CRITERIA,
    "items": _ref("CriterionInput"),
    "description": "Each criterion at most once; values within one are OR'd.",
}
_SCHEMAS: dict[str, Schema] = {
    "JobStatus": {"type": "string", "enum": _STATUSES},
    "CriterionInput": {
        "description": (
            "One PropertyRadar criterion: its name and a non-empty list of values, which "
            "are OR'd. The values' shape depends on the criterion. The server checks more "
            "than this schema can say (a range needs a min or a max and min <= max, dates "
            "must exist...) and reports every problem at once under `fields`."
        ),
        "oneOf": [_criterion_input(spec) for spec in CRITERIA.values()],
    },
    "Lead": {
        "type": "object",
        "required": [name for name, _ in _LEAD_PROPERTIES],
        "properties": dict(_LEAD_PROPERTIES),
    },
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {"error": {**STRING, "description": "What went wrong, for people"}},
    },
    "ValidationError": {
        "allOf": [
            _ref("Error"),
            {
                "type": "object",
                "required": ["fields"],
                "properties": {
                    "fields": {
                        "type": "object",
                        "description": "Problem per input path, e.g. criteria[0].value",
                        "additionalProperties": STRING,
                    }
                },
            },
        ]
    },
    "Conflict": {
        "allOf": [
            _ref("Error"),
            {
                "type": "object",
                "required": ["status"],
                "properties": {"status": _ref("JobStatus")},
            },
        ]
    },
}


def _page_of(item: str) -> Schema:
    return {
        "type": "object",
        "required": ["items", "page", "per_page", "total"],
        "properties": {
            "items": {"type": "array", "items": _ref(item)},
            "page": {"type": "integer", "minimum": 1},
            "per_page": {"type": "integer", "minimum": 1, "maximum": MAX_PER_PAGE},
            "total": COUNT,
        },
    }


_SCHEMAS["LeadList"] = _page_of("Lead")


# What the request schemas leave to the catalogue (a Raw field there), described from it.
_JOB_FIELDS: Schema = _nullable(
    {
        "description": (
            "What to buy per record: 'essentials' (the default) or a list of PropertyRadar "
            f"field names, to which the essentials are added; at most {criteria.MAX_FIELDS} "
            "fields in all."
        ),
        "oneOf": [
            {"type": "string", "enum": sorted(criteria.FIELD_SETS)},
            {"type": "array", "items": {"type": "string", "enum": sorted(criteria.KNOWN_FIELDS)}},
        ],
    }
)
_EXAMPLE_SEARCH = {"criteria": [{"name": "State", "value": ["OR"]}], "max_records": 50}


def _declared_schemas() -> dict[str, Schema]:
    """The component schemas of radar_app.api.schemas, as apispec describes them, with the
    criteria and field lists the catalogue validates described from the catalogue."""
    spec = APISpec("radar_app API", "1", "3.0.3", plugins=[MarshmallowPlugin()])
    for name, declared in {**RESPONSE_SCHEMAS, **REQUEST_SCHEMAS}.items():
        spec.components.schema(name, schema=declared)
    generated: dict[str, Schema] = spec.to_dict()["components"]["schemas"]
    for name in RESPONSE_SCHEMAS:
        # Responses carry every property (null where nullable).
        generated[name]["required"] = list(generated[name]["properties"])
    for name in REQUEST_SCHEMAS:
        generated[name]["properties"]["criteria"] = _CRITERIA_INPUT
    generated["JobCreate"]["properties"]["fields"] = _JOB_FIELDS
    generated["JobCreate"]["example"] = {"name": "Oregon sample", **_EXAMPLE_SEARCH}
    generated["PreviewRequest"]["example"] = _EXAMPLE_SEARCH
    return generated


_SCHEMAS.update(_declared_schemas())

_RESPONSES: dict[str, Schema] = {
    "Unauthorized": _json_response(
        "No valid Bearer token or session",
        _ref("Error"),
        headers={
            "WWW-Authenticate": {
                "required": True,
                "schema": STRING,
                "description": 'Bearer realm="radar_app"',
            }
        },
    ),
    "NotFound": _json_response("No such job visible to the caller", _ref("Error")),
    "BadQuery": _json_response("Invalid page, per_page or status", _ref("ValidationError")),
    "BadBody": _json_response(
        "Invalid body or criteria (every problem under `fields`), or a failed CSRF check "
        "for a cookie-authenticated call (no `fields`)",
        {"anyOf": [_ref("ValidationError"), _ref("Error")]},
    ),
    "CsrfFailed": _json_response(
        "Cookie-authenticated call without a valid X-CSRFToken header", _ref("Error")
    ),
    "Conflict": _json_response("The job's state does not allow this", _ref("Conflict")),
    "QueueUnavailable": _json_response("The job queue (Redis) is unavailable", _ref("Error")),
    "UpstreamFailed": _json_response("PropertyRadar could not answer", _ref("Error")),
    "TooLarge": _json_response(
        "The request body is larger than the server accepts (MAX_CONTENT_LENGTH)", _ref("Error")
    ),
}

_PARAMETERS: dict[str, Schema] = {
    "JobId": {
        "name": "job_id",
        "in": "path",
        "required": True,
        "description": "The job's `id`",
        "schema": {"type": "string", "minLength": 1},
    },
}


def _query_parameters() -> dict[str, Schema]:
    """The query parameters of radar_app.api.schemas, as apispec describes them."""
    plugin = MarshmallowPlugin()
    APISpec("radar_app API", "1", "3.0.3", plugins=[plugin])
    assert plugin.converter is not None  # set by the spec above
    described: dict[str, Schema] = {}
    for component, (schema, field) in QUERY_PARAMETERS.items():
        params = plugin.converter.schema2parameters(schema, location="query")
        described[component] = next(p for p in params if p["name"] == field)
    return described


_PARAMETERS.update(_query_parameters())


def _param(name: str) -> Schema:
    return {"$ref": f"#/components/parameters/{name}"}


def _response(name: str) -> Schema:
    return {"$ref": f"#/components/responses/{name}"}


def _job_links() -> dict[str, Schema]:
    """Links from a response carrying a Job to the operations on that job."""
    by_id = {"job_id": "$response.body#/id"}
    return {
        name: {"operationId": operation_id, "parameters": by_id}
        for name, operation_id in [
            ("GetJob", "getBatchJob"),
            ("CancelJob", "cancelBatchJob"),
            ("RetryJob", "retryBatchJob"),
            ("JobLogs", "listBatchJobLogs"),
            ("JobLedger", "getBatchJobLedger"),
            ("JobLeads", "listBatchJobLeads"),
            ("JobLeadsCsv", "exportBatchJobLeadsCsv"),
        ]
    }


def _job_response(description: str) -> Schema:
    return _json_response(description, _ref("Job"), links=_job_links())


_PATHS: dict[str, Schema] = {
    "/api/openapi.json": {
        "get": {
            "operationId": "getOpenApiDocument",
            "summary": "This document",
            "tags": ["meta"],
            "security": [],
            "responses": {"200": _json_response("The OpenAPI document", {"type": "object"})},
        }
    },
    "/api/batch-jobs": {
        "get": {
            "operationId": "listBatchJobs",
            "summary": "The caller's jobs (an admin's: everyone's), newest first",
            "tags": ["jobs"],
            "parameters": [_param("Status"), _param("Page"), _param("PerPage")],
            "responses": {
                "200": _json_response("A page of jobs", _ref("JobList")),
                "400": _response("BadQuery"),
                "401": _response("Unauthorized"),
            },
        },
        "post": {
            "operationId": "createBatchJob",
            "summary": "Create a batch job and queue it for a worker",
            "tags": ["jobs"],
            "requestBody": {"required": True, "content": {JSON: {"schema": _ref("JobCreate")}}},
            "responses": {
                "201": {
                    **_job_response("The job, PENDING"),
                    "headers": {
                        "Location": {
                            "required": True,
                            "schema": STRING,
                            "description": "The job's URL",
                        },
                    },
                },
                "400": _response("BadBody"),
                "401": _response("Unauthorized"),
                "413": _response("TooLarge"),
                "429": _json_response(
                    "Too many jobs created by this user recently",
                    _ref("Error"),
                    headers={
                        "Retry-After": {
                            "schema": STRING,
                            "description": "Seconds to wait before trying again",
                        }
                    },
                ),
                "503": _response("QueueUnavailable"),
            },
        },
    },
    "/api/batch-jobs/preview": {
        "post": {
            "operationId": "previewBatchJob",
            "summary": "What a search would match, reuse and cost, before buying anything",
            "tags": ["jobs"],
            "requestBody": {
                "required": True,
                "content": {JSON: {"schema": _ref("PreviewRequest")}},
            },
            "responses": {
                "200": _json_response("The estimate", _ref("Preview")),
                "400": _response("BadBody"),
                "401": _response("Unauthorized"),
                "413": _response("TooLarge"),
                "502": _response("UpstreamFailed"),
            },
        }
    },
    "/api/batch-jobs/{job_id}": {
        "parameters": [_param("JobId")],
        "get": {
            "operationId": "getBatchJob",
            "summary": "One job with its progress, rate and ETA",
            "tags": ["jobs"],
            "responses": {
                "200": _job_response("The job"),
                "401": _response("Unauthorized"),
                "404": _response("NotFound"),
            },
        },
    },
    "/api/batch-jobs/{job_id}/cancel": {
        "parameters": [_param("JobId")],
        "post": {
            "operationId": "cancelBatchJob",
            "summary": "Cancel a queued job, or stop a running one after its page in flight",
            "tags": ["jobs"],
            "responses": {
                "202": _job_response("CANCELLED, or still PROCESSING with cancel_requested"),
                "400": _response("CsrfFailed"),
                "401": _response("Unauthorized"),
                "404": _response("NotFound"),
                "409": _response("Conflict"),
            },
        },
    },
    "/api/batch-jobs/{job_id}/retry": {
        "parameters": [_param("JobId")],
        "post": {
            "operationId": "retryBatchJob",
            "summary": "Resume a FAILED or CANCELLED job from its checkpoint",
            "tags": ["jobs"],
            "responses": {
                "202": _job_response("The job, PENDING again"),
                "400": _response("CsrfFailed"),
                "401": _response("Unauthorized"),
                "404": _response("NotFound"),
                "409": _response("Conflict"),
                "503": _response("QueueUnavailable"),
            },
        },
    },
    "/api/batch-jobs/{job_id}/logs": {
        "parameters": [_param("JobId")],
        "get": {
            "operationId": "listBatchJobLogs",
            "summary": "The job's log, newest first",
            "tags": ["jobs"],
            "parameters": [_param("Page"), _param("PerPage")],
            "responses": {
                "200": _json_response("A page of log lines", _ref("LogList")),
                "400": _response("BadQuery"),
                "401": _response("Unauthorized"),
                "404": _response("NotFound"),
            },
        },
    },
    "/api/batch-jobs/{job_id}/ledger": {
        "parameters": [_param("JobId")],
        "get": {
            "operationId": "getBatchJobLedger",
            "summary": "Every purchase request of the job: billed records and cost",
            "tags": ["jobs"],
            "responses": {
                "200": _json_response("The job's purchases", _ref("Ledger")),
                "401": _response("Unauthorized"),
                "404": _response("NotFound"),
            },
        },
    },
    "/api/batch-jobs/{job_id}/leads": {
        "parameters": [_param("JobId")],
        "get": {
            "operationId": "listBatchJobLeads",
            "summary": "The job's leads in search order",
            "tags": ["leads"],
            "parameters": [_param("Page"), _param("PerPage")],
            "responses": {
                "200": _json_response(
                    "A page of leads; `total` is the job's success_count", _ref("LeadList")
                ),
                "400": _response("BadQuery"),
                "401": _response("Unauthorized"),
                "404": _response("NotFound"),
            },
        },
    },
    "/api/batch-jobs/{job_id}/leads.csv": {
        "parameters": [_param("JobId")],
        "get": {
            "operationId": "exportBatchJobLeadsCsv",
            "summary": "Every lead of the job as CSV (header row first), streamed",
            "tags": ["leads"],
            "responses": {
                "200": {
                    "description": "CSV attachment",
                    "headers": {
                        "Content-Disposition": {
                            "required": True,
                            "schema": {"type": "string", "pattern": "^attachment; filename="},
                        }
                    },
                    "content": {"text/csv": {"schema": {"type": "string"}}},
                },
                "401": _response("Unauthorized"),
                "404": _response("NotFound"),
            },
        },
    },
}


@cache
def openapi_spec() -> dict[str, Any]:
    """The OpenAPI 3.0 document of the JSON API (built once; treat as read-only)."""
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "radar_app API",
            "version": "1",
            "description": (
                "Batch imports of PropertyRadar leads. Authenticate with "
                "`Authorization: Bearer <token>` (issued on the account page) or the web "
                "session cookie; cookie-authenticated POSTs also need an `X-CSRFToken` "
                "header. Errors are JSON objects with an `error` message."
            ),
        },
        "servers": [{"url": "/"}],
        "tags": [
            {"name": "jobs", "description": "Batch jobs"},
            {"name": "leads", "description": "Leads a job stored"},
            {"name": "meta", "description": "About the API"},
        ],
        "security": [{"bearerAuth": []}, {"cookieAuth": []}],
        "paths": _PATHS,
        "components": {
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "The personal API token",
                },
                "cookieAuth": {
                    "type": "apiKey",
                    "in": "cookie",
                    "name": "session",
                    "description": "The signed-in web session",
                },
            },
            "schemas": _SCHEMAS,
            "parameters": _PARAMETERS,
            "responses": _RESPONSES,
        },
    }


@bp.get("/openapi.json")
def openapi_document() -> Response:
    """The API's OpenAPI 3 document (public: it describes, it does not expose data)."""
    return jsonify(openapi_spec())
