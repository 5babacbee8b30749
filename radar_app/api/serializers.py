"""JSON shapes of the API's resources."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from flask import current_app

from radar_app import leads, pace
from radar_app.models import BatchJob, BatchJobLog, LedgerEntry, Property, utcnow


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def job_json(job: BatchJob) -> dict[str, Any]:
    now = utcnow()
    return {
        "id": job.job_id,
        "name": job.name,
        "status": job.status,
        "criteria": job.criteria,
        "max_records": job.max_records,
        "total_records": job.total_records,
        "processed_records": job.processed_records,
        "success_count": job.success_count,
        "error_count": job.error_count,
        "progress_percent": job.progress_percent,
        "records_per_second": job.records_per_second(now),
        # The same estimate as the job page: none until buying has a meaningful rate.
        "eta_seconds": pace.purchase_pace(
            job, now, batch_size=current_app.config["PROPERTYRADAR_BATCH_SIZE"]
        ).seconds_left,
        "duration_seconds": job.duration_seconds(now),
        "pages_fetched": job.pages_fetched,
        "next_start": job.next_start,
        "attempts": job.attempts,
        "phase": job.phase,
        "matched": job.total_records,
        "snapshot_count": job.snapshot_count,
        "reused_count": job.reused_count,
        "purchased_count": job.purchased_count,
        "vanished_count": job.vanished_count,
        "unidentified_count": job.unidentified_count,
        "cost_total": round(job.cost_total, 2),
        "refresh_all": job.refresh_all,
        "fields": job.fields,
        "cancel_requested": job.cancel_requested,
        "error_details": job.error_details,
        # Set when the leads stored differ from what the search first reported, with figures.
        "warning": job.warning,
        "created_by": job.owner.email,
        "created_at": _iso(job.created_at),
        "updated_at": _iso(job.updated_at),
        "started_at": _iso(job.started_at),
        "completed_at": _iso(job.completed_at),
    }


def ledger_json(entry: LedgerEntry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "created_at": _iso(entry.created_at),
        "page": entry.page,
        "outcome": entry.outcome,
        "requested": entry.requested,
        "result_count": entry.result_count,
        "total_cost": entry.total_cost,
        "request_id": entry.request_id,
        "note": entry.note,
    }


def log_json(entry: BatchJobLog) -> dict[str, Any]:
    return {
        "id": entry.id,
        "created_at": _iso(entry.created_at),
        "level": entry.level,
        "page": entry.page,
        "message": entry.message,
    }


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
