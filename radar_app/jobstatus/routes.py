"""A job's state on its pages (issue 13, items 1 and 3): its timeline of state changes
(radar_app/timeline.py) and what it is waiting for (radar_app/waits.py).

Both are template globals, so every page that shows a job (its page, its progress panel,
its Jobs row) reads them the same way; the timeline also has its own fragment, for its
pager and for refreshing when the job changes. Ownership as the job page
(services.job_or_404: 404 for another user's job)."""

from __future__ import annotations

from flask import Blueprint, abort, render_template, request

from radar_app import services, timeline, waits
from radar_app.extensions import db
from radar_app.jobs.routes import require_login
from radar_app.models import BatchJob
from radar_app.pagination import page_args

bp = Blueprint("jobstatus", __name__)
bp.before_request(require_login)

TIMELINE_PER_PAGE = 15
# The job page's query argument for the timeline's page (its own fragment takes `page`).
TIMELINE_PAGE_ARG = "timeline_page"


@bp.app_template_global()
def job_timeline(job: BatchJob, page: str | None = None) -> timeline.TimelinePage:
    """One page of the job's timeline, newest first (templates/jobs/_timeline.html);
    `page` defaults to the job page's ?timeline_page=."""
    text = request.args.get(TIMELINE_PAGE_ARG, "1") if page is None else page
    try:
        paging = page_args({"page": text}, default_per_page=TIMELINE_PER_PAGE)
    except ValueError as exc:
        abort(400, description=str(exc))
    return timeline.timeline_page(db.session, job, paging.page, paging.per_page)


@bp.app_template_global()
def job_waiting(job: BatchJob) -> waits.Waiting | None:
    """What the job is waiting for right now, if anything (templates/jobs/_progress.html
    and _row.html)."""
    return services.job_waiting(job)


@bp.get("/jobs/<job_id>/timeline")
def job_timeline_fragment(job_id: str) -> str:
    """htmx fragment: one page of the job's timeline, newest first."""
    job = services.job_or_404(job_id)
    return render_template(
        "jobs/_timeline.html", job=job, timeline=job_timeline(job, request.args.get("page", "1"))
    )
