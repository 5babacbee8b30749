"""What the user is told about a run, in words and figures: each chunk's log line, the
completion summary, and the warning when fewer (or more) leads were stored than the
search first reported."""

from __future__ import annotations

from radar_app.models import BatchJob


def shortfall_warning(job: BatchJob) -> str | None:
    """A warning, with the figures, when the leads stored differ from what the search
    reported at the start; None when they agree."""
    if job.search_total is None:
        return None
    expected = min(job.search_total, job.max_records) if job.max_records else job.search_total
    # Suppressed records were left out on purpose: not a shortfall.
    if job.success_count + job.suppressed_count == expected:
        return None
    cap = f" (capped at {job.max_records:,})" if job.max_records else ""
    reasons = []
    if job.snapshot_count != expected:
        reasons.append(
            f"PropertyRadar listed {job.snapshot_count:,} RadarIDs when paged through "
            "the search (its total changed while the job ran)"
        )
    if job.suppressed_count:
        reasons.append(f"{job.suppressed_count:,} were suppressed (on a suppression list)")
    if job.error_count:
        reasons.append(f"{job.error_count:,} were listed without a RadarID (not bought)")
    if job.vanished_count:
        reasons.append(f"{job.vanished_count:,} no longer matched when bought (not billed)")
    if job.unidentified_count:
        reasons.append(
            f"{job.unidentified_count:,} were bought without a RadarID (billed, not stored)"
        )
    because = "; ".join(reasons) if reasons else "see the log"
    return (
        f"The search matched {job.search_total:,} records when the job started{cap}, "
        f"but {job.success_count:,} leads were stored: {because}"
    )


def completion_summary(job: BatchJob) -> str:
    """The last line of a completed job's log."""
    text = (
        f"Completed: {job.success_count:,} leads stored ({job.purchased_count:,} bought, "
        f"{job.reused_count:,} reused at no cost)"
    )
    if job.suppressed_count:
        text += f", {job.suppressed_count:,} suppressed (not bought)"
    if job.vanished_count:
        text += f", {job.vanished_count:,} no longer matched"
    if job.unidentified_count:
        text += f", {job.unidentified_count:,} bought without a RadarID (billed, not stored)"
    if job.error_count:
        text += f", {job.error_count:,} records skipped"
    return text


def chunk_message(
    number: int,
    records: int,
    *,
    reused: int,
    bought: int,
    requests: int,
    lacking_fields: int,
    missing: int,
    vanished: int,
    suppressed: int = 0,
) -> str:
    """The log line of a stored chunk: what was reused, bought, and why not all of it."""
    parts = [f"Chunk {number}: {records} records"]
    if requests:
        parts.append(f"{bought} bought")
    if requests > 1:
        parts.append(f"in {requests} requests (PropertyRadar returned fewer than asked)")
    if reused:
        parts.append(f"{reused} reused (already stored)")
    if lacking_fields:
        parts.append(
            f"{lacking_fields} stored leads lacked fields this job asks for, "
            "so they were bought again"
        )
    if missing:
        parts.append(
            f"{missing} bought without a RadarID (billed, but a lead cannot be stored without one)"
        )
    if suppressed:
        parts.append(f"{suppressed} suppressed (on a suppression list, not bought)")
    if vanished:
        parts.append(f"{vanished} no longer match the search (not bought)")
    return ", ".join(parts)
