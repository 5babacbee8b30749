"""JSON API for batch jobs and saved searches. Authenticated by the session cookie or a
Bearer token.

Each view is declared with ``bp.operation``: what it takes and what it answers, which
radar_app.api.operations both does for it and hands to the OpenAPI document."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import Response, current_app, jsonify, url_for
from flask_login import current_user

from radar_app import (
    batches,
    bulk,
    jobsearch,
    leadsearch,
    searches,
    services,
    suppression,
    timeline,
)
from radar_app.api.operations import BAD_BODY, BAD_QUERY, NOT_FOUND, ApiBlueprint, ApiError, Reply
from radar_app.api.schemas import (
    BROWSED_LEAD_PAGE,
    BULK_ACTION,
    BULK_SUMMARY,
    CONFLICT,
    ERROR,
    JOB,
    JOB_CREATE,
    JOB_PAGE,
    JOB_QUERY,
    LEAD_PAGE,
    LEAD_QUERY,
    LEDGER,
    LOG_PAGE,
    PAGE_QUERY,
    PREVIEW,
    SAVED_SEARCH,
    SAVED_SEARCH_IN,
    SAVED_SEARCH_PAGE,
    SEARCH,
    TRANSITION_PAGE,
    VALIDATION_ERROR,
)
from radar_app.api.serializers import lead_json
from radar_app.export import (
    csv_download,
    custom_fields,
    leads_in_search_order,
    outcomes_download,
)
from radar_app.extensions import db
from radar_app.jobstate import log_newest_first
from radar_app.leadsearch import InvalidLeadQuery
from radar_app.models import BatchJob, LedgerEntry, SavedSearch
from radar_app.pagination import PageArgs, paginate
from radar_app.preview import PreviewSettings, preview_search
from radar_app.propertyradar.criteria import validate_criteria
from radar_app.propertyradar.errors import BadRequestError, CriteriaError, PropertyRadarError
from radar_app.queue import get_queue
from radar_app.searches import InvalidSearch, NameTaken, SearchSpec
from radar_app.suppression import suppressed_radar_ids

bp = ApiBlueprint("api", __name__, url_prefix="/api")

# The errors views raise beyond those their declarations imply (radar_app.api.operations).
STATE_CONFLICT = Reply(409, "The job's state does not allow this", CONFLICT, component="Conflict")
QUEUE_UNAVAILABLE = Reply(
    503, "The job queue (Redis) is unavailable", ERROR, component="QueueUnavailable"
)
UPSTREAM_FAILED = Reply(502, "PropertyRadar could not answer", ERROR, component="UpstreamFailed")

_EXAMPLE_SEARCH = {"criteria": [{"name": "State", "value": ["OR"]}], "max_records": 50}


def _job(status: int, description: str, **kwargs: Any) -> Reply:
    """A reply whose body is the job."""
    return Reply(status, description, JOB, links_to_job=True, **kwargs)


@bp.operation(
    "POST",
    "/batch-jobs",
    tag="jobs",
    body=JOB_CREATE,
    body_example={"name": "Oregon sample", **_EXAMPLE_SEARCH},
    rate_limit=lambda: current_app.config["JOB_CREATE_RATE_LIMIT"],
    reply=_job(
        201,
        "The job, PENDING",
        headers={
            "Location": {
                "required": True,
                "schema": {"type": "string"},
                "description": "The job's URL",
            }
        },
    ),
    errors=(
        NOT_FOUND,
        QUEUE_UNAVAILABLE,
    ),
)
def create_batch_job(body: dict[str, Any]) -> tuple[BatchJob, dict[str, str]]:
    """Create a batch job and queue it for a worker."""
    try:
        job = batches.create_job(
            db.session,
            get_queue(),
            services.queue_settings(),
            owner=current_user,
            criteria=body["criteria"],
            name=body["name"],
            max_records=body["max_records"],
            refresh_all=body["refresh_all"],
            fields=body["fields"],
            suppression_list_id=_own_list(body["suppression_list"]),
        )
    except CriteriaError as exc:
        raise ApiError(BAD_BODY, "Invalid criteria", fields=exc.errors) from exc
    except batches.QueueUnavailable as exc:
        raise ApiError(QUEUE_UNAVAILABLE, str(exc)) from exc
    return job, {"Location": url_for("api.get_batch_job", job_id=job.job_id)}


@bp.operation(
    "POST",
    "/batch-jobs/preview",
    tag="jobs",
    body=SEARCH,
    body_example=_EXAMPLE_SEARCH,
    reply=Reply(200, "The estimate", PREVIEW),
    errors=(
        NOT_FOUND,
        UPSTREAM_FAILED,
    ),
)
def preview_batch_job(body: dict[str, Any]) -> Any:
    """What a search would match, reuse and cost, before buying anything.

    From free requests only."""
    try:
        criteria = validate_criteria(body["criteria"])
        with services.client() as client:
            return preview_search(
                db.session,
                client,
                criteria,
                PreviewSettings.from_config(current_app.config),
                max_records=body["max_records"],
                refresh_all=body["refresh_all"],
                suppressed=suppressed_radar_ids(
                    db.session, current_user.id, _own_list(body["suppression_list"])
                ),
            )
    except CriteriaError as exc:
        raise ApiError(BAD_BODY, "Invalid criteria", fields=exc.errors) from exc
    except BadRequestError as exc:
        # PropertyRadar answered that the search itself is wrong: the caller's to fix.
        raise ApiError(
            BAD_BODY, "PropertyRadar rejected the search", fields={"criteria": str(exc)}
        ) from exc
    except PropertyRadarError as exc:
        raise ApiError(UPSTREAM_FAILED, f"PropertyRadar could not answer: {exc}") from exc


@bp.operation(
    "GET", "/batch-jobs", tag="jobs", query=JOB_QUERY, reply=Reply(200, "A page of jobs", JOB_PAGE)
)
def list_batch_jobs(query: dict[str, Any]) -> Any:
    """The caller's jobs (an admin's: everyone's), newest first, searched like the Jobs
    page: by name and criteria text, status, owner and creation date.

    `owner` narrows an admin's list to one user's jobs; anyone else sees only their own
    jobs whatever it says (another user's email finds nothing, like an unknown one)."""
    return paginate(jobsearch.matching(current_user, _job_search(query)), _paging(query))


def _job_search(filters: dict[str, Any]) -> jobsearch.JobQuery:
    try:
        return jobsearch.parse_query(db.session, current_user, filters)
    except jobsearch.InvalidJobQuery as exc:
        raise ApiError(BAD_QUERY, "Invalid query", fields=exc.errors) from exc


@bp.operation(
    "POST",
    "/batch-jobs/bulk",
    tag="jobs",
    body=BULK_ACTION,
    body_example={"action": "retry", "filter": {"status": "FAILED", "q": "Oregon"}},
    reply=Reply(200, "What happened to each job", BULK_SUMMARY),
)
def bulk_batch_jobs(body: dict[str, Any]) -> bulk.Summary:
    """Retry or cancel many jobs at once, each on its own, with what became of each.

    The jobs are those named by `ids`, or the newest matching `filter` that the action
    applies to (at most 1,000: `left_over` says how many more match), or the named ones
    the filter matches. An id the caller may not see is skipped as `not yours`."""
    action = bulk.Action(body["action"])
    try:
        query = jobsearch.parse_query(db.session, current_user, body["filter"])
    except jobsearch.InvalidJobQuery as exc:
        problems = {f"filter.{key}": message for key, message in exc.errors.items()}
        raise ApiError(BAD_BODY, "Invalid filter", fields=problems) from exc
    queue, settings = get_queue(), services.queue_settings()
    try:
        if body["ids"] is not None:
            return bulk.by_ids(
                db.session, queue, settings, current_user, action, body["ids"], query
            )
        return bulk.by_query(db.session, queue, settings, current_user, action, query)
    except bulk.InvalidBulkAction as exc:
        raise ApiError(BAD_BODY, "Invalid request", fields=exc.errors) from exc


@bp.operation("GET", "/batch-jobs/<job_id>", tag="jobs", reply=_job(200, "The job"))
def get_batch_job(job: BatchJob) -> BatchJob:
    """One job with its progress, rate and ETA."""
    return job


@bp.operation(
    "POST",
    "/batch-jobs/<job_id>/cancel",
    tag="jobs",
    reply=_job(202, "CANCELLED, or still PROCESSING with cancel_requested"),
    errors=(STATE_CONFLICT,),
)
def cancel_batch_job(job: BatchJob) -> BatchJob:
    """Cancel a queued job, or stop a running one after its page in flight."""
    try:
        return batches.request_cancel(db.session, get_queue(), job, by=current_user)
    except batches.InvalidTransition as exc:
        raise ApiError(STATE_CONFLICT, str(exc), status=job.status) from exc


@bp.operation(
    "POST",
    "/batch-jobs/<job_id>/retry",
    tag="jobs",
    reply=_job(202, "The job, PENDING again"),
    errors=(STATE_CONFLICT, QUEUE_UNAVAILABLE),
)
def retry_batch_job(job: BatchJob) -> BatchJob:
    """Resume a FAILED or CANCELLED job from its checkpoint."""
    try:
        return batches.retry_job(
            db.session, get_queue(), services.queue_settings(), job, by=current_user
        )
    except batches.InvalidTransition as exc:
        raise ApiError(STATE_CONFLICT, str(exc), status=job.status) from exc
    except batches.QueueUnavailable as exc:
        raise ApiError(QUEUE_UNAVAILABLE, str(exc)) from exc


@bp.operation(
    "GET",
    "/batch-jobs/<job_id>/logs",
    tag="jobs",
    query=PAGE_QUERY,
    reply=Reply(200, "A page of log lines", LOG_PAGE),
)
def list_batch_job_logs(job: BatchJob, query: dict[str, Any]) -> Any:
    """The job's log, newest first."""
    return paginate(log_newest_first(job), _paging(query))


@bp.operation(
    "GET",
    "/batch-jobs/<job_id>/transitions",
    tag="jobs",
    query=PAGE_QUERY,
    reply=Reply(200, "A page of the job's state changes", TRANSITION_PAGE),
)
def list_batch_job_transitions(job: BatchJob, query: dict[str, Any]) -> Any:
    """The job's state history, newest first: each change of state, who made it and why.

    The oldest entry is the job's creation (event `create`); `actor` is `schedule` when a
    saved search's schedule made the job."""
    return timeline.timeline_page(db.session, job, query["page"], query["per_page"])


@bp.operation(
    "GET",
    "/batch-jobs/<job_id>/ledger",
    tag="jobs",
    reply=Reply(200, "The job's purchases", LEDGER),
)
def get_batch_job_ledger(job: BatchJob) -> dict[str, Any]:
    """Every purchase request of the job: billed records and cost, or 'possibly billed'."""
    entries = db.session.scalars(
        sa.select(LedgerEntry).where(LedgerEntry.batch_job_id == job.id).order_by(LedgerEntry.id)
    ).all()
    return {
        "items": entries,
        "purchased_records": job.purchased_count,
        "reused_records": job.reused_count,
        "total_cost": round(job.cost_total, 2),
        "possibly_billed_requests": sum(e.outcome == LedgerEntry.POSSIBLY_BILLED for e in entries),
    }


@bp.operation(
    "GET",
    "/batch-jobs/<job_id>/leads",
    tag="leads",
    query=PAGE_QUERY,
    reply=Reply(200, "A page of leads; `total` is the job's success_count", LEAD_PAGE),
)
def list_batch_job_leads(job: BatchJob, query: dict[str, Any]) -> dict[str, Any]:
    """The job's leads in search order."""
    page = paginate(
        leads_in_search_order(job),
        _paging(query),
        total=job.success_count,  # the number of links, kept with each page
    )
    custom = custom_fields(job)
    return {
        "items": [lead_json(prop, custom) for prop in page.items],
        "page": page.page,
        "per_page": page.per_page,
        "total": page.total,
    }


_CSV_HEADERS = {
    # Set by radar_app.export's downloads.
    "Content-Disposition": {
        "required": True,
        "schema": {"type": "string", "pattern": "^attachment; filename="},
    }
}


@bp.operation(
    "GET",
    "/batch-jobs/<job_id>/leads.csv",
    tag="leads",
    reply=Reply(
        200,
        "CSV attachment",
        {"type": "string"},
        media_type="text/csv",
        headers=_CSV_HEADERS,
    ),
)
def export_batch_job_leads_csv(job: BatchJob) -> Response:
    """Every lead of the job as CSV (header row first), streamed."""
    return csv_download(db.session, job)


@bp.operation(
    "GET",
    "/batch-jobs/<job_id>/outcomes.csv",
    tag="leads",
    reply=Reply(
        200,
        "CSV attachment: position, radar_id, outcome, reason, chunk, cost",
        {"type": "string"},
        media_type="text/csv",
        headers=_CSV_HEADERS,
    ),
)
def export_batch_job_outcomes_csv(job: BatchJob) -> Response:
    """What became of every record the search matched, one CSV row each, streamed."""
    return outcomes_download(db.session, job, current_app.config["PROPERTYRADAR_BATCH_SIZE"])


@bp.operation(
    "GET",
    "/leads",
    tag="leads",
    query=LEAD_QUERY,
    reply=Reply(200, "A page of the caller's leads across jobs", BROWSED_LEAD_PAGE),
    errors=(NOT_FOUND,),
)
def list_leads(query: dict[str, Any]) -> dict[str, Any]:
    """Every lead the caller's jobs stored (an admin's: every lead), filtered and sorted,
    a page at a time by cursor: the leads browser's query."""
    try:
        parsed = leadsearch.parse_query(db.session, current_user, query)
    except InvalidLeadQuery as exc:
        if missing := [exc.errors[key] for key in ("job", "search") if key in exc.errors]:
            # An id that names nothing of the caller's is a 404, like one in a path.
            raise ApiError(NOT_FOUND, "; ".join(missing)) from exc
        raise ApiError(BAD_QUERY, "Invalid query", fields=exc.errors) from exc
    found = leadsearch.page(db.session, current_user, parsed)
    jobs = leadsearch.jobs_of(db.session, current_user, [p.id for p in found.items])
    count = leadsearch.count(db.session, current_user, parsed)
    return {
        "items": [
            {
                **lead_json(prop),
                "first_seen_at": prop.first_seen_at,
                "last_seen_at": prop.last_seen_at,
                "job_ids": [job.job_id for job in jobs.get(prop.id, [])],
            }
            for prop in found.items
        ],
        "count": min(count, leadsearch.COUNT_CAP),
        "count_is_capped": count > leadsearch.COUNT_CAP,
        "next_cursor": found.next_cursor,
    }


# ------------------------------------------------------------------- saved searches


def _saved_search(status: int, description: str, **kwargs: Any) -> Reply:
    return Reply(status, description, SAVED_SEARCH, **kwargs)


_SEARCH_LOCATION = {
    "Location": {"required": True, "schema": {"type": "string"}, "description": "Its URL"}
}
_EXAMPLE_SAVED = {"name": "Oregon, absentee", **_EXAMPLE_SEARCH}


def _own_list(list_id: str | None) -> int | None:
    """The row id of the caller's suppression list with this public id (None: none).

    Raises:
        ApiError: not a list of the caller's: 404, like an id in the path.
    """
    if list_id is None:
        return None
    found = suppression.find_list(db.session, current_user, list_id)
    if found is None or found.created_by != current_user.id:
        raise ApiError(NOT_FOUND, "No such suppression list of yours (suppression_list)")
    return found.id


def _spec(body: dict[str, Any]) -> SearchSpec:
    return SearchSpec(
        name=body["name"],
        criteria=body["criteria"],
        fields=body["fields"],
        max_records=body["max_records"],
        refresh_all=body["refresh_all"],
        suppression_list_id=_own_list(body["suppression_list"]),
    )


NAME_TAKEN = Reply(
    409,
    "The owner has another saved search of that name (under `fields`)",
    VALIDATION_ERROR,
    component="NameTaken",
)


def _invalid(exc: InvalidSearch) -> ApiError:
    if isinstance(exc, NameTaken):
        return ApiError(NAME_TAKEN, "Name already used", fields=exc.errors)
    return ApiError(BAD_BODY, "Invalid search", fields=exc.errors)


@bp.operation(
    "POST",
    "/searches",
    tag="searches",
    body=SAVED_SEARCH_IN,
    body_example=_EXAMPLE_SAVED,
    reply=_saved_search(201, "The saved search", headers=_SEARCH_LOCATION),
    errors=(
        NOT_FOUND,
        NAME_TAKEN,
    ),
)
def create_saved_search(body: dict[str, Any]) -> tuple[SavedSearch, dict[str, str]]:
    """Save a search under a name, to run it again later."""
    try:
        search = searches.save(db.session, current_user, _spec(body))
    except InvalidSearch as exc:
        raise _invalid(exc) from exc
    return search, {"Location": url_for("api.get_saved_search", search_id=search.search_id)}


@bp.operation(
    "GET",
    "/searches",
    tag="searches",
    query=PAGE_QUERY,
    reply=Reply(200, "A page of saved searches", SAVED_SEARCH_PAGE),
)
def list_saved_searches(query: dict[str, Any]) -> Any:
    """The caller's saved searches (an admin's: everyone's), by name."""
    return paginate(searches.visible_searches(current_user), _paging(query))


@bp.operation(
    "GET", "/searches/<search_id>", tag="searches", reply=_saved_search(200, "The saved search")
)
def get_saved_search(search: SavedSearch) -> SavedSearch:
    """One saved search."""
    return search


@bp.operation(
    "PUT",
    "/searches/<search_id>",
    tag="searches",
    body=SAVED_SEARCH_IN,
    body_example=_EXAMPLE_SAVED,
    reply=_saved_search(200, "The saved search, replaced"),
    errors=(
        NOT_FOUND,
        NAME_TAKEN,
    ),
)
def replace_saved_search(search: SavedSearch, body: dict[str, Any]) -> SavedSearch:
    """Replace what a saved search holds; the jobs it ran keep what they ran."""
    try:
        return searches.update(db.session, search, _spec(body))
    except InvalidSearch as exc:
        raise _invalid(exc) from exc


@bp.operation(
    "DELETE",
    "/searches/<search_id>",
    tag="searches",
    reply=_saved_search(200, "The saved search as it was"),
)
def delete_saved_search(search: SavedSearch) -> Response:
    """Delete a saved search; the jobs it ran stay."""
    gone = jsonify(SAVED_SEARCH.dump(search))  # dumped while it still exists
    searches.delete(db.session, search)
    return gone


@bp.operation(
    "POST",
    "/searches/<search_id>/jobs",
    tag="searches",
    rate_limit=lambda: current_app.config["JOB_CREATE_RATE_LIMIT"],
    reply=_job(201, "The new job, PENDING", headers={"Location": _SEARCH_LOCATION["Location"]}),
    errors=(QUEUE_UNAVAILABLE,),
)
def run_saved_search(search: SavedSearch) -> tuple[BatchJob, dict[str, str]]:
    """Run a saved search: a new batch job, queued, that remembers the search."""
    try:
        job = batches.create_job(
            db.session,
            get_queue(),
            services.queue_settings(),
            owner=current_user,
            saved_search=search,
            **SearchSpec.of(search).job_arguments(),
        )
    except CriteriaError as exc:  # saved before a catalogue change
        raise ApiError(
            BAD_BODY, "The saved criteria are no longer valid", fields=exc.errors
        ) from exc
    except batches.QueueUnavailable as exc:
        raise ApiError(QUEUE_UNAVAILABLE, str(exc)) from exc
    return job, {"Location": url_for("api.get_batch_job", job_id=job.job_id)}


def _paging(query: dict[str, Any]) -> PageArgs:
    return PageArgs(query["page"], query["per_page"])
