"""JSON API for batch jobs. Authenticated by the session cookie or a Bearer token."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from flask import (
    Blueprint,
    Response,
    current_app,
    jsonify,
    request,
    url_for,
)
from flask_login import current_user, login_required
from flask_sqlalchemy.pagination import Pagination
from marshmallow import Schema, ValidationError

from radar_app import batches, services
from radar_app.api.schemas import (
    JOB,
    JOB_CREATE,
    JOB_PAGE,
    JOB_QUERY,
    LEDGER,
    LOG_PAGE,
    PAGE_QUERY,
    PREVIEW,
    SEARCH,
    field_problems,
)
from radar_app.api.serializers import lead_json
from radar_app.auth.login import bearer_token
from radar_app.export import csv_download, custom_fields
from radar_app.extensions import csrf, db, limiter
from radar_app.models import (
    BatchJob,
    BatchJobLog,
    JobProperty,
    LedgerEntry,
    Property,
)
from radar_app.pagination import PageArgs, paginate
from radar_app.preview import PreviewSettings, preview_search
from radar_app.propertyradar.criteria import validate_criteria
from radar_app.propertyradar.errors import BadRequestError, CriteriaError, PropertyRadarError
from radar_app.queue import get_queue

bp = Blueprint("api", __name__, url_prefix="/api")


class ApiError(Exception):
    def __init__(self, http_status: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.http_status, self.message, self.extra = http_status, message, extra


def _page_json(page: Pagination, item_json: Callable[[Any], dict[str, Any]]) -> Response:
    """One page of a list resource, in the shape every list endpoint answers with."""
    return jsonify(
        items=[item_json(item) for item in page.items],
        page=page.page,
        per_page=page.per_page,
        total=page.total,
    )


@bp.errorhandler(ApiError)
def handle_api_error(exc: ApiError) -> tuple[Response, int]:
    return jsonify(error=exc.message, **exc.extra), exc.http_status


@bp.before_request
def protect_cookie_sessions() -> None:
    # Bearer-token calls cannot be forged cross-site; cookie-authenticated ones can.
    # Anonymous calls fall through to login_required and get a 401.
    if (
        request.method not in ("GET", "HEAD", "OPTIONS")
        and bearer_token(request) is None
        and current_user.is_authenticated
    ):
        csrf.protect()


def _load_body(schema: Schema) -> dict[str, Any]:
    """The JSON body as ``schema`` loads it, or a 400 listing every problem at once."""
    try:
        body = request.get_json(silent=True)
    except RecursionError:
        # json.loads recurses once per level: 100,000 "[" exhaust the stack. No request
        # this API takes is nested more than a few levels.
        raise ApiError(400, "Request body is nested too deeply", fields={}) from None
    if not isinstance(body, dict):
        raise ApiError(400, "Request body must be a JSON object", fields={})
    try:
        loaded: dict[str, Any] = schema.load(body)
    except ValidationError as exc:
        raise ApiError(400, "Invalid request", fields=field_problems(exc)) from exc
    return loaded


@bp.post("/batch-jobs")
@login_required
@limiter.limit(lambda: current_app.config["JOB_CREATE_RATE_LIMIT"], key_func=services.user_key)
def create_batch_job() -> tuple[Response, int, dict[str, str]]:
    """Create a batch job and queue it for a worker."""
    body = _load_body(JOB_CREATE)
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
        )
    except CriteriaError as exc:
        raise ApiError(400, "Invalid criteria", fields=exc.errors) from exc
    except batches.QueueUnavailable as exc:
        raise ApiError(503, str(exc)) from exc
    location = url_for("api.get_batch_job", job_id=job.job_id)
    return jsonify(JOB.dump(job)), 201, {"Location": location}


@bp.post("/batch-jobs/preview")
@login_required
def preview_batch_job() -> Response:
    """What a search would match, reuse and cost, from free requests only."""
    body = _load_body(SEARCH)
    config = current_app.config
    try:
        criteria = validate_criteria(body["criteria"])
        with services.client() as client:
            result = preview_search(
                db.session,
                client,
                criteria,
                PreviewSettings.from_config(config),
                max_records=body["max_records"],
                refresh_all=body["refresh_all"],
            )
    except CriteriaError as exc:
        raise ApiError(400, "Invalid criteria", fields=exc.errors) from exc
    except BadRequestError as exc:
        # PropertyRadar answered that the search itself is wrong: the caller's to fix.
        raise ApiError(
            400, "PropertyRadar rejected the search", fields={"criteria": str(exc)}
        ) from exc
    except PropertyRadarError as exc:
        raise ApiError(502, f"PropertyRadar could not answer: {exc}") from exc
    return jsonify(PREVIEW.dump(result))


@bp.get("/batch-jobs")
@login_required
def list_batch_jobs() -> Response:
    """The caller's jobs (an admin's: everyone's), newest first, optionally by status."""
    args = _load_query(JOB_QUERY)
    query = batches.visible_jobs(current_user)
    if status := args.get("status"):
        query = query.where(BatchJob.status == status)
    return jsonify(JOB_PAGE.dump(paginate(query, _paging(args))))


@bp.get("/batch-jobs/<job_id>")
@login_required
def get_batch_job(job_id: str) -> Response:
    """One job with its progress, rate and ETA."""
    return jsonify(JOB.dump(services.job_or_404(job_id)))


@bp.post("/batch-jobs/<job_id>/cancel")
@login_required
def cancel_batch_job(job_id: str) -> tuple[Response, int]:
    """Cancel a queued job, or stop a running one after its page in flight."""
    job = services.job_or_404(job_id)
    try:
        job = batches.request_cancel(db.session, get_queue(), job, by=current_user)
    except batches.InvalidTransition as exc:
        raise ApiError(409, str(exc), status=job.status) from exc
    return jsonify(JOB.dump(job)), 202


@bp.post("/batch-jobs/<job_id>/retry")
@login_required
def retry_batch_job(job_id: str) -> tuple[Response, int]:
    """Resume a failed or cancelled job from its checkpoint."""
    job = services.job_or_404(job_id)
    try:
        job = batches.retry_job(
            db.session, get_queue(), services.queue_settings(), job, by=current_user
        )
    except batches.InvalidTransition as exc:
        raise ApiError(409, str(exc), status=job.status) from exc
    except batches.QueueUnavailable as exc:
        raise ApiError(503, str(exc)) from exc
    return jsonify(JOB.dump(job)), 202


@bp.get("/batch-jobs/<job_id>/logs")
@login_required
def batch_job_logs(job_id: str) -> Response:
    """The job's log, newest first."""
    job = services.job_or_404(job_id)
    entries = paginate(
        sa.select(BatchJobLog)
        .where(BatchJobLog.batch_job_id == job.id)
        .order_by(BatchJobLog.id.desc()),
        _paging(_load_query(PAGE_QUERY)),
    )
    return jsonify(LOG_PAGE.dump(entries))


@bp.get("/batch-jobs/<job_id>/ledger")
@login_required
def batch_job_ledger(job_id: str) -> Response:
    """Every purchase request of the job: billed records and cost, or 'possibly billed'."""
    job = services.job_or_404(job_id)
    entries = db.session.scalars(
        sa.select(LedgerEntry).where(LedgerEntry.batch_job_id == job.id).order_by(LedgerEntry.id)
    ).all()
    return jsonify(
        LEDGER.dump(
            {
                "items": entries,
                "purchased_records": job.purchased_count,
                "reused_records": job.reused_count,
                "total_cost": round(job.cost_total, 2),
                "possibly_billed_requests": sum(
                    e.outcome == LedgerEntry.POSSIBLY_BILLED for e in entries
                ),
            }
        )
    )


@bp.get("/batch-jobs/<job_id>/leads")
@login_required
def batch_job_leads(job_id: str) -> Response:
    """The job's leads in search order."""
    job = services.job_or_404(job_id)
    leads = paginate(
        sa.select(Property)
        .join(JobProperty, JobProperty.property_id == Property.id)
        .where(JobProperty.batch_job_id == job.id)
        .order_by(JobProperty.position),
        _paging(_load_query(PAGE_QUERY)),
        total=job.success_count,  # the number of links, kept with each page
    )
    custom = custom_fields(job)
    return _page_json(leads, lambda p: lead_json(p, custom))


@bp.get("/batch-jobs/<job_id>/leads.csv")
@login_required
def batch_job_leads_csv(job_id: str) -> Response:
    """Every lead of the job as CSV, streamed."""
    return csv_download(db.session, services.job_or_404(job_id))


def _load_query(schema: Schema) -> dict[str, Any]:
    try:
        args: dict[str, Any] = schema.load(request.args)
    except ValidationError as exc:
        raise ApiError(400, "Invalid query", fields=field_problems(exc)) from exc
    return args


def _paging(args: dict[str, Any]) -> PageArgs:
    return PageArgs(args["page"], args["per_page"])
