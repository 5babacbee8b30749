"""The criteria catalogue (radar_app.propertyradar.criteria) as JSON Schema.

The request schemas (radar_app.api.schemas) take ``criteria`` and ``fields`` as they come
and leave them to the catalogue, which validates them, every problem at once by path. These
are the same rules as the document states them: per criterion its name and the shape of its
values, the limits and the closed sets, all read from the catalogue. What JSON Schema cannot
say (a range's min <= max, a date that exists, each criterion at most once) the server
still checks, and tests/schemathesis_checks.py allows for.
"""

from __future__ import annotations

from typing import Any

from radar_app.propertyradar import criteria
from radar_app.propertyradar.coerce import US_STATES
from radar_app.propertyradar.criteria import CRITERIA

Schema = dict[str, Any]

# Value shapes by criterion kind, in canonical form: the server also tolerates some
# variants (surrounding spaces, numbers as strings, any case). PostgreSQL cannot store NUL
# in text or JSONB, so no string the API stores may contain one.
_TEXT = {
    "type": "string",
    "maxLength": criteria.MAX_VALUE_LENGTH,
    "pattern": "^[^\\x00]*[^\\s\\x00][^\\x00]*$",
}
_RANGE_BOUND = {
    "type": "number",
    "minimum": -criteria.MAX_RANGE_NUMBER,
    "maximum": criteria.MAX_RANGE_NUMBER,
    "nullable": True,
}
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
# The multi-value criteria whose values the catalogue checks more closely than any text.
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


CRITERION_INPUT = "CriterionInput"
# The component schemas these descriptions refer to, by name.
COMPONENTS: dict[str, Schema] = {
    CRITERION_INPUT: {
        "description": (
            "One PropertyRadar criterion: its name and a non-empty list of values, which "
            "are OR'd. The values' shape depends on the criterion. The server checks more "
            "than this schema can say (a range needs a min or a max and min <= max, dates "
            "must exist...) and reports every problem at once under `fields`."
        ),
        "oneOf": [_criterion_input(spec) for spec in CRITERIA.values()],
    },
}

# The ``criteria`` of a search.
CRITERIA_INPUT: Schema = {
    "type": "array",
    "minItems": 1,
    "maxItems": criteria.MAX_CRITERIA,
    "items": {"$ref": f"#/components/schemas/{CRITERION_INPUT}"},
    "description": "Each criterion at most once; values within one are OR'd.",
}

# The ``fields`` of a new job (null: the default, the essentials).
JOB_FIELDS: Schema = {
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
