"""Charts drawn on the server (issue 13, item 4): the /dashboard page of jobs and purchases
per hour, and a job's records per second and cost, on its page and as SVG files.

A plain user's charts count their own jobs; an admin's, everyone's (as the Jobs tab).
A job's charts follow the job page's ownership (services.job_or_404: 404 for another
user's job)."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, render_template
from flask_login import current_user

from radar_app import activity, services
from radar_app.dashboard import figures
from radar_app.dashboard.figures import JobCharts
from radar_app.extensions import db
from radar_app.jobs.routes import require_login
from radar_app.models import BatchJob, utcnow

bp = Blueprint("dashboard", __name__)
bp.before_request(require_login)


@bp.get("/dashboard")
def index() -> str:
    """Jobs created, completed and failed, and records bought, over 24 hours and 7 days."""
    owner_id = None if current_user.is_admin else current_user.id
    settled = current_app.extensions.setdefault("settled_buckets", activity.SettledBuckets())
    panels = figures.dashboard(db.session, utcnow(), owner_id, settled)
    return render_template("dashboard/index.html", panels=panels, everyone=owner_id is None)


@bp.app_template_global()
def job_charts(job: BatchJob) -> JobCharts:
    """The job's charts, for templates/dashboard/_job_charts.html (on the job page)."""
    return figures.job_charts(db.session, job, utcnow())


@bp.get("/jobs/<job_id>/charts")
def job_charts_fragment(job_id: str) -> str:
    """htmx fragment: the job's charts, redrawn when the job page's status panel says the
    job changed."""
    return render_template("dashboard/_job_charts.html", job=services.job_or_404(job_id))


@bp.get("/jobs/<job_id>/charts/rate.svg")
def job_rate_svg(job_id: str) -> Response:
    """The job's records bought per second, as an SVG file."""
    return _svg(job_charts(services.job_or_404(job_id)).rate)


@bp.get("/jobs/<job_id>/charts/cost.svg")
def job_cost_svg(job_id: str) -> Response:
    """The job's cost so far, as an SVG file."""
    return _svg(job_charts(services.job_or_404(job_id)).cost)


def _svg(svg: str) -> Response:
    response = Response(svg, mimetype="image/svg+xml")
    # The user's own figures: not for shared caches, and always current.
    response.headers["Cache-Control"] = "private, no-cache"
    return response
