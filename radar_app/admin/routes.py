"""Admin tools: queue health, stuck jobs, purchases and the audit trail (admins only;
the user admin is admin/users.py)."""

from __future__ import annotations

import re
from dataclasses import dataclass

import sqlalchemy as sa
from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from redis.exceptions import RedisError
from werkzeug.wrappers import Response

from radar_app import audit, recovery
from radar_app.admin.queue_health import queue_health
from radar_app.extensions import db
from radar_app.jobstate import admin_actor
from radar_app.ledger import records_bought_this_month
from radar_app.models import BatchJob, LedgerEntry, User
from radar_app.queue import get_queue
from radar_app.security import redact_url
from radar_app.services import job_or_404, queue_settings

bp = Blueprint("admin", __name__, url_prefix="/admin")


@bp.before_request
@login_required
def require_admin() -> None:
    if not current_user.is_admin:
        abort(403, description="This page is for administrators.")


@bp.get("/")
def queue() -> str | tuple[str, int]:
    """Queue health next to what `rq info` shows, and jobs by status."""
    by_status = dict(
        db.session.execute(sa.select(BatchJob.status, sa.func.count()).group_by(BatchJob.status))
        .tuples()
        .all()
    )
    try:
        health, redis_error = queue_health(get_queue()), None
    except RedisError as exc:
        health, redis_error = None, f"Redis is not answering ({exc.__class__.__name__})"
    return render_template(
        "admin/queue.html",
        health=health,
        redis_error=redis_error,
        by_status=by_status,
        # Shown for `rq info -u`, so never with the password a URL may carry.
        redis_url=redact_url(current_app.config["REDIS_URL"]),
        database_url=redact_url(current_app.config["SQLALCHEMY_DATABASE_URI"]),
    ), (200 if redis_error is None else 503)


@bp.get("/stuck")
def stuck() -> str:
    """Running jobs whose worker went silent, and queued jobs whose queue entry is gone."""
    config = current_app.config
    stale = recovery.stale_jobs(db.session, config["RECOVERY_STALE_AFTER"])
    try:
        lost = recovery.lost_pending_jobs(db.session, get_queue(), config["RECOVERY_PENDING_GRACE"])
        redis_error = None
    except RedisError as exc:
        lost, redis_error = [], f"Redis is not answering ({exc.__class__.__name__})"
    return render_template(
        "admin/stuck.html",
        stale=stale,
        lost=lost,
        redis_error=redis_error,
        stale_after=config["RECOVERY_STALE_AFTER"],
    )


@bp.post("/jobs/<job_id>/requeue")
def requeue(job_id: str) -> Response:
    """Put a stuck job back in the queue; it resumes from its checkpoint."""
    job = job_or_404(job_id)
    if not job.is_active:
        flash(f"“{job.name}” is {job.status}; use Retry on its page instead.", "error")
        return redirect(url_for("admin.stuck"))
    try:
        done = recovery.requeue(
            db.session,
            get_queue(),
            queue_settings(),
            job,
            f"Requeued by {current_user.email}",
            actor=admin_actor(current_user.email),
        )
    except RedisError:
        flash("Redis is not answering; the job stays queued for automatic recovery.", "error")
        return redirect(url_for("admin.stuck"))
    flash(
        f"Requeued “{job.name}”." if done else "The job changed meanwhile; nothing done.",
        "success" if done else "error",
    )
    return redirect(url_for("admin.stuck"))


@bp.post("/jobs/<job_id>/fail")
def mark_failed(job_id: str) -> Response:
    """Give up on a stuck job; its owner can retry it later."""
    job = job_or_404(job_id)
    done = recovery.mark_failed(
        db.session,
        job,
        f"Marked failed by {current_user.email}",
        actor=admin_actor(current_user.email),
    )
    flash(
        f"Marked “{job.name}” as failed." if done else "The job is not active; nothing done.",
        "success" if done else "error",
    )
    return redirect(url_for("admin.stuck"))


@dataclass(frozen=True)
class BudgetError:
    user_id: int
    submitted: str
    message: str


MAX_BUDGET = 100_000_000
BUDGET_MESSAGE = (
    f"Enter a whole number of records from 0 to {MAX_BUDGET:,}, or leave it empty for none."
)
# ASCII digits only, optionally grouped with commas: str.isdigit() also accepts "²" and
# other Unicode digits, which int() then rejects.
BUDGET_PATTERN = re.compile(r"[0-9]{1,9}|[0-9]{1,3}(?:,[0-9]{3}){1,2}")


def parse_budget(text: str) -> int | None:
    """The budget typed in the form: None for empty; ValueError unless it is a whole
    number of records within range."""
    text = text.strip()
    if not text:
        return None
    if not BUDGET_PATTERN.fullmatch(text):
        raise ValueError(BUDGET_MESSAGE)
    value = int(text.replace(",", ""))
    if value > MAX_BUDGET:
        raise ValueError(BUDGET_MESSAGE)
    return value


@bp.get("/usage")
def usage() -> str:
    """Records bought and cost per user per month, from the purchase ledger."""
    return usage_page()


def usage_page(budget_error: BudgetError | None = None) -> str:
    month = sa.func.strftime("%Y-%m", LedgerEntry.created_at)
    if db.engine.dialect.name == "postgresql":
        month = sa.func.to_char(LedgerEntry.created_at, "YYYY-MM")
    rows = db.session.execute(
        sa.select(
            User.email,
            month.label("month"),
            sa.func.coalesce(sa.func.sum(LedgerEntry.result_count), 0).label("records"),
            sa.func.coalesce(sa.func.sum(LedgerEntry.total_cost), 0).label("cost"),
            sa.func.count()
            .filter(LedgerEntry.outcome == LedgerEntry.POSSIBLY_BILLED)
            .label("possibly_billed"),
        )
        .join(User, User.id == LedgerEntry.user_id)
        .group_by(User.email, month)
        .order_by(month.desc(), User.email)
    ).all()
    users = db.session.scalars(sa.select(User).order_by(User.email)).all()
    bought = {u.id: records_bought_this_month(db.session, u.id) for u in users}
    return render_template(
        "admin/usage.html", rows=rows, users=users, bought=bought, budget_error=budget_error
    )


@bp.get("/audit")
def audit_log() -> tuple[str, int]:
    """Who cancelled, retried, requeued or failed which job, and who changed which user
    or budget: newest first, filtered by actor and kind, a keyset page at a time."""
    try:
        query = audit.parse_query(request.args)
        errors: dict[str, str] = {}
    except audit.InvalidAuditQuery as exc:
        query, errors = audit.AuditQuery(), exc.errors
    found = audit.page(db.session, query) if not errors else None
    return render_template(
        "admin/audit.html",
        query=query,
        found=found,
        errors=errors,
        entered=request.args,
        kinds=audit.KINDS,
        actors=audit.known_actors(db.session),
        first_page=query.after is None,
    ), (400 if errors else 200)
