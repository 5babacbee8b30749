"""The JSON shape of a lead (the other resources: radar_app.api.schemas)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from radar_app import leads
from radar_app.models import Property

# A lead's JSON keys, in order (the OpenAPI Lead schema follows them).
LEAD_KEYS: list[str] = leads.JSON_KEYS


def lead_json(prop: Property, custom: Sequence[str] = ()) -> dict[str, Any]:
    """One lead with every field its job bought: each essential by its key (from its column,
    or parsed from the raw record when it has none), then the custom fields by
    PropertyRadar name, as sent (``custom``: radar_app.export.custom_fields)."""
    raw = prop.raw if isinstance(prop.raw, dict) else {}
    lead: dict[str, Any] = {
        f.name: getattr(prop, f.name) if f.sql_type is not None else leads.raw_value(raw, f)
        for f in leads.FIELDS
    }
    lead[leads.CUSTOM_FIELDS_KEY] = {field: raw.get(field) for field in custom}
    return lead
