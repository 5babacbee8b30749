"""Saved searches' pages (issue 12). The search form itself stays in radar_app.jobs: it
opens a saved search (``/search?saved=<id>``) or a job (``/search?job=<id>``, "Run
again") prefilled, and its "Save search" and "Update saved search" buttons post the same
form here."""

from __future__ import annotations

from collections.abc import Callable
from zoneinfo import available_timezones

from flask import (
    Blueprint,
    current_app,
    flash,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user
from werkzeug.wrappers import Response

from radar_app import schedules, searches, services
from radar_app.extensions import db
from radar_app.jobs.forms import SearchForm
from radar_app.jobs.routes import is_htmx, require_login, search_page
from radar_app.models import SavedSearch, utcnow
from radar_app.schedules import ScheduleSpec
from radar_app.searches import InvalidSearch, SearchSpec

bp = Blueprint("saved", __name__, url_prefix="/searches")
bp.before_request(require_login)


@bp.get("")
def index() -> str:
    """The user's saved searches (an admin's: everyone's), with each one's last run."""
    found = db.session.scalars(searches.visible_searches(current_user)).all()
    last_runs = {search.id: searches.last_jobs(db.session, search, limit=1) for search in found}
    return render_template(
        "saved/index.html", searches=found, last_runs=last_runs, describe=schedules.describe
    )


@bp.post("")
def create() -> Response | tuple[str, int]:
    """Keep the search form's search under its name."""
    form = SearchForm()
    if not form.validate_on_submit():
        return search_page(form, 400)
    return _saved(form, lambda spec: searches.save(db.session, current_user, spec), "Saved")


@bp.post("/<search_id>")
def update(search_id: str) -> Response | tuple[str, int]:
    """Replace a saved search with the search form's."""
    search = services.saved_search_or_404(search_id)
    form = SearchForm()
    if not form.validate_on_submit():
        return search_page(form, 400)
    return _saved(form, lambda spec: searches.update(db.session, search, spec), "Updated")


def _saved(
    form: SearchForm, keep: Callable[[SearchSpec], SavedSearch], done: str
) -> Response | tuple[str, int]:
    try:
        search = keep(form.spec())
    except InvalidSearch as exc:
        for key, message in exc.errors.items():
            target = form.name if key == "name" else None
            if target is not None:
                target.errors = [*target.errors, message]
            else:
                form.form_errors.append(message)
        return search_page(form, 400)
    flash(f"{done} “{search.name}”.", "success")
    return redirect(url_for("saved.index"))


@bp.post("/<search_id>/delete")
def delete(search_id: str) -> Response:
    """Forget a saved search; the jobs it ran stay."""
    search = services.saved_search_or_404(search_id)
    name = search.name
    searches.delete(db.session, search)
    flash(f"Deleted “{name}”. Its jobs are still on the Jobs tab.", "success")
    if is_htmx():  # the button asked first (hx-confirm); reload the list with the notice
        response = make_response("", 200)
        response.headers["HX-Redirect"] = url_for("saved.index")
        return response
    return redirect(url_for("saved.index"))


@bp.post("/from-job/<job_id>")
def from_job(job_id: str) -> Response:
    """Keep a job's search (any criteria, those the form cannot show too)."""
    job = services.job_or_404(job_id)
    spec = SearchSpec.of(job)
    name = searches.free_name(db.session, current_user, spec.name)
    try:
        search = searches.save(
            db.session,
            current_user,
            SearchSpec(name, spec.criteria, spec.fields, spec.max_records, spec.refresh_all),
        )
    except InvalidSearch as exc:  # a job from before a catalogue change, say
        flash(f"This job's search could not be saved: {exc}.", "error")
        return redirect(url_for("jobs.detail", job_id=job.job_id))
    flash(f"Saved “{search.name}”.", "success")
    return redirect(url_for("saved.index"))


# -------------------------------------------------------------------------- schedules


def _schedule_page(
    search: SavedSearch,
    spec: ScheduleSpec,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> tuple[str, int]:
    schedule = search.schedule
    now = utcnow()
    return render_template(
        "saved/schedule.html",
        search=search,
        schedule=schedule,
        spec=spec,
        errors=errors or {},
        cadences=schedules.CADENCES,
        weekdays=schedules.WEEKDAYS,
        timezones=sorted(available_timezones()),
        described=schedules.describe(schedule) if schedule else None,
        next_run=schedules.next_slot(schedule, now) if schedule and schedule.enabled else None,
        runs=schedules.runs(db.session, schedule) if schedule else [],
        price=current_app.config["PRICE_PER_EXPORT"],
    ), status


@bp.get("/<search_id>/schedule")
def schedule(search_id: str) -> tuple[str, int]:
    """A saved search's schedule (or the form for one), its next run and its last runs."""
    search = services.saved_search_or_404(search_id)
    existing = search.schedule
    spec = ScheduleSpec.of(existing) if existing else ScheduleSpec("daily", timezone="UTC")
    return _schedule_page(search, spec)


@bp.post("/<search_id>/schedule")
def save_schedule(search_id: str) -> Response | tuple[str, int]:
    """Create or replace the schedule; nothing is stored if any field is wrong."""
    search = services.saved_search_or_404(search_id)
    form = request.form
    errors: dict[str, str] = {}
    try:
        weekday = int(form.get("weekday", "0"))
    except ValueError:
        weekday, errors["weekday"] = -1, "Choose a day of the week"
    max_cost: float | None = None
    if (text := form.get("max_cost", "").strip()) != "":
        try:
            max_cost = float(text)
        except ValueError:
            errors["max_cost"] = "A positive amount of dollars, or empty for no cap"
    spec = ScheduleSpec(
        cadence=form.get("cadence", ""),
        timezone=form.get("timezone", "").strip(),
        at=form.get("at", ""),
        weekday=weekday,
        cron=form.get("cron", ""),
        max_cost=max_cost,
        enabled=form.get("enabled") == "y",
    )
    try:
        if errors:
            raise schedules.InvalidSchedule(errors)
        saved = schedules.save_schedule(db.session, search, spec)
    except schedules.InvalidSchedule as exc:
        return _schedule_page(search, spec, exc.errors, 400)
    flash(f"Scheduled “{search.name}”: {schedules.describe(saved)}.", "success")
    return redirect(url_for("saved.schedule", search_id=search.search_id))


@bp.post("/<search_id>/schedule/delete")
def delete_schedule(search_id: str) -> Response:
    """Stop running the search by itself; its past runs' jobs stay."""
    search = services.saved_search_or_404(search_id)
    if search.schedule is not None:
        schedules.delete_schedule(db.session, search.schedule)
        flash(f"“{search.name}” no longer runs by itself.", "success")
    return redirect(url_for("saved.index"))
