"""Pages and htmx fragments: search, the Jobs tab, a job's page, notifications.

Live updates follow the self-replacing fragment pattern (Hypermedia Systems' contact-app,
``archive_ui.html``): a fragment that shows an active job carries ``hx-trigger="every
2s"`` and replaces itself with the server's latest rendering; a finished job is rendered
without the trigger, so polling stops by omission. The job page polls one fragment
(``progress``); when the job has changed it also sends ``HX-Trigger: job-updated``,
which the log and leads sections listen for, so they refresh only when there is
something new.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, cast
from urllib.parse import urlsplit

import sqlalchemy as sa
from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    make_response,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import current_user
from redis.exceptions import RedisError

# Werkzeug's Response: what redirect() returns, and the base of Flask's.
from werkzeug.wrappers import Response

from radar_app import batches, bulk, jobsearch, pace, searches, services
from radar_app.export import csv_download, leads_in_search_order, outcomes_download
from radar_app.extensions import db, limiter, login_manager
from radar_app.jobs import filters, search
from radar_app.jobs.confirm import Confirmations
from radar_app.jobs.filters import money
from radar_app.jobs.forms import (
    PROPERTY_RANGES,
    STATE_NAMES,
    VALUE_RANGES,
    SearchForm,
    prefill,
)
from radar_app.jobstate import log_newest_first
from radar_app.models import BatchJob, JobStatus, LedgerEntry, SavedSearch, utcnow
from radar_app.notifications import finished_since, has_active_job, worth_polling
from radar_app.pagination import PageArgs, page_args, paginate
from radar_app.preview import PreviewSettings
from radar_app.propertyradar.counties import by_fips, counties_in
from radar_app.propertyradar.errors import CriteriaError, PropertyRadarError
from radar_app.queue import get_queue, get_redis
from radar_app.searches import SearchSpec
from radar_app.suppression import suppressed_radar_ids

bp = Blueprint("jobs", __name__)
bp.record_once(lambda state: filters.init_app(state.app))

JOBS_PER_PAGE = 20
LOG_PER_PAGE = 15
LEADS_PER_PAGE = 25
PURCHASES_PER_PAGE = 10
# Pages of "possibly billed" purchases named in the ledger's summary line.
MAX_UNSURE_PAGES = 5
# Toasts shown per poll; the rest follow on the next polls.
MAX_TOASTS = 5
NOTIFIED_KEY = "notified_until"
# htmx stops an "every" poll when the answer has this status (its content is still shown).
STOP_POLLING = 286


def is_htmx() -> bool:
    return request.headers.get("HX-Request") == "true"


@bp.before_request
def require_login() -> Response | None:
    """Every page and fragment here needs a signed-in user."""
    if current_user.is_authenticated:
        return None
    if is_htmx():
        # Following a redirect would swap the sign-in page into a fragment; ask htmx
        # to load it as a whole page instead, coming back to the page the user was on.
        here = urlsplit(request.headers.get("HX-Current-URL", "")).path or url_for("jobs.index")
        response = make_response("", 401)
        response.headers["HX-Redirect"] = url_for("auth.login", next=here)
        return response
    return login_manager.unauthorized()


def _paging(name: str = "page", per_page: int = 25) -> PageArgs:
    try:
        return page_args({"page": request.args.get(name, "1")}, default_per_page=per_page)
    except ValueError as exc:
        abort(400, description=str(exc))


# ---------------------------------------------------------------------------- Jobs tab


@bp.get("/")
def home() -> Response:
    """The Jobs tab is the home page."""
    return redirect(url_for("jobs.index"))


@bp.get("/jobs")
def index() -> tuple[str, int]:
    """The user's jobs (an admin's: everyone's), newest first, searchable by name and
    criteria text, status, owner (admins) and creation date; htmx gets only the results
    as the search changes."""
    return _jobs_page(request.args)


def _jobs_page(
    args: Mapping[str, str],
    *,
    summary: bulk.Summary | None = None,
    bulk_errors: Mapping[str, str] | None = None,
) -> tuple[str, int]:
    """The Jobs page for the search in `args` (for htmx: its results only), with a bulk
    action's summary or problems; 400 (htmx: 422) when anything asked is wrong."""
    errors: dict[str, str] = {}
    try:
        query = jobsearch.parse_query(db.session, current_user, args)
    except jobsearch.InvalidJobQuery as exc:
        query, errors = jobsearch.JobQuery(), dict(exc.errors)
    try:
        paging = page_args({"page": args.get("page") or "1"}, default_per_page=JOBS_PER_PAGE)
    except ValueError as exc:
        paging, errors["page"] = PageArgs(1, JOBS_PER_PAGE), str(exc)
    counts = jobsearch.status_counts(db.session, current_user, query)
    status = query.get("status") or ""
    total = counts.get(status, 0) if status else sum(counts.values())
    jobs = paginate(jobsearch.matching(current_user, query), paging, total=total)
    context = {
        "jobs": [] if errors else jobs.items,
        "query": query,
        "entered": args,
        "errors": errors,
        "bulk_errors": bulk_errors or {},
        "summary": summary,
        "filters": jobsearch.FILTERS,
        "status": status,
        "counts": counts,
        "counts_active": _any_active(counts),
        "total": total,
        "page": jobs.page,
        "pages": jobs.pages,
        "statuses": list(JobStatus),
        "bulk_limit": bulk.BULK_LIMIT,
        "now": utcnow(),
    }
    wrong = bool(errors or bulk_errors)
    if is_htmx():
        # 422: the fragment explaining the problem is swapped in (base.html's htmx-config).
        return render_template("jobs/_jobs.html", **context), 422 if wrong else 200
    return render_template("jobs/index.html", **context), 400 if wrong else 200


def _any_active(counts: Mapping[str, int]) -> bool:
    return any(counts.get(s, 0) for s in JobStatus if s.is_active)


@bp.get("/jobs/counts")
def status_counts() -> tuple[str, int]:
    """htmx fragment: the status filter with its counts for the search in the URL. It polls
    itself while any job counted is pending or processing (then stops: STOP_POLLING), and
    refreshes when a row on the page changes status (the row's HX-Trigger: jobs-changed)."""
    try:
        query = jobsearch.parse_query(db.session, current_user, request.args)
    except jobsearch.InvalidJobQuery as exc:
        abort(400, description="; ".join(exc.errors.values()))
    found = jobsearch.status_counts(db.session, current_user, query)
    active = _any_active(found)
    fragment = render_template(
        "jobs/_counts.html",
        query=query,
        status=query.get("status") or "",
        counts=found,
        counts_active=active,
        statuses=list(JobStatus),
    )
    return fragment, 200 if active else STOP_POLLING


@bp.post("/jobs/bulk")
def bulk_action() -> tuple[str, int]:
    """Retry or cancel the ticked jobs, every job on the page, or every job matching the
    search (at most bulk.BULK_LIMIT), each on its own: the Jobs page (for htmx: its
    results) with what happened to each job."""
    form = request.form
    try:
        action = bulk.parse_action(form.get("action"))
        scope = form.get("scope", "ticked")
        if scope == "matching":
            query = jobsearch.parse_query(db.session, current_user, form)
            summary = bulk.by_query(
                db.session, get_queue(), services.queue_settings(), current_user, action, query
            )
        else:
            ids = form.getlist("page_job" if scope == "page" else "job")
            summary = bulk.by_ids(
                db.session, get_queue(), services.queue_settings(), current_user, action, ids
            )
    except bulk.InvalidBulkAction as exc:
        return _jobs_page(form, bulk_errors=exc.errors)
    except jobsearch.InvalidJobQuery:
        return _jobs_page(form)  # which shows the search's problems by its fields
    return _jobs_page(form, summary=summary)


@bp.get("/jobs/<job_id>/row")
def row(job_id: str) -> Response:
    """One row of the Jobs tab; polls itself while the job is active. When the job's status
    is no longer the one the row showed (?shown=), the answer says so (HX-Trigger:
    jobs-changed), and the status filter's counts refresh."""
    job = services.job_or_404(job_id)
    response = make_response(render_template("jobs/_row.html", job=job, now=utcnow()))
    if request.args.get("shown", job.status) != job.status:
        response.headers["HX-Trigger"] = "jobs-changed"
    return response


# ------------------------------------------------------------------------------ search


def search_page(
    form: SearchForm, status: int = 200, unshown: list[str] | None = None
) -> tuple[str, int]:
    """The search form; `unshown`: criteria of the opened search the form cannot show."""
    return render_template(
        "jobs/search.html",
        form=form,
        saved=_saved_search_of(form),
        unshown=unshown or [],
        property_ranges=PROPERTY_RANGES,
        value_ranges=VALUE_RANGES,
        batch_size=current_app.config["PROPERTYRADAR_BATCH_SIZE"],
        freshness_days=current_app.config["LEAD_FRESHNESS_DAYS"],
        **_county_choices(form.state.data or []),
    ), status


def _saved_search_of(form: SearchForm) -> SavedSearch | None:
    """The saved search the form was opened from, if it names one the user may see."""
    search_id = form.saved_search.data
    return searches.find_search(db.session, current_user, search_id) if search_id else None


def _opened_search() -> tuple[SearchForm, list[str]]:
    """The form for GET /search: empty, or prefilled from ?saved=<id> (a saved search) or
    ?job=<id> ("Run again"), with the criteria it cannot show."""
    source: SavedSearch | BatchJob
    if saved_id := request.args.get("saved"):
        source = services.saved_search_or_404(saved_id)
    elif job_id := request.args.get("job"):
        source = services.job_or_404(job_id)
    else:
        return SearchForm(), []
    spec = SearchSpec.of(source)
    data, unshown = prefill(spec)
    if isinstance(source, SavedSearch):
        data["saved_search"] = source.search_id
    form = SearchForm(formdata=None, data=data)
    form.choose_list(spec.suppression_list_id)
    return form, unshown


def _county_choices(states: list[str]) -> dict[str, Any]:
    """The county suggestions for the chosen states, and those states' names."""
    chosen = [code for code in states if code in STATE_NAMES]  # the select may send anything
    return {"counties": counties_in(chosen), "chosen": [STATE_NAMES[code] for code in chosen]}


def _is_back_to_form() -> bool:
    return request.method == "POST" and request.form.get("action") == "edit"


def _confirmations() -> Confirmations:
    # Never None: the app refuses to start without a SECRET_KEY (config.validate).
    secret_key = cast(str | bytes, current_app.secret_key)
    return Confirmations(secret_key, get_redis(), current_app.config["SEARCH_CONFIRM_SECONDS"])


def _search_spec(form: SearchForm) -> str:
    return search.fingerprint(
        form.criteria(),
        fields=form.chosen_fields(),
        max_records=form.max_records.data,
        refresh_all=form.refresh_all.data,
        suppression_list_id=form.suppression_list_id(),
    )


def _suppressed(form: SearchForm) -> set[str]:
    """The RadarIDs a job of this search would skip."""
    return suppressed_radar_ids(db.session, current_user.id, form.suppression_list_id())


def _confirmation(form: SearchForm) -> str | None:
    """The id of the user's confirmation of the cost of exactly this search, if the POST
    carries a valid one (signed, theirs, not expired)."""
    token = request.form.get("confirm_token")
    if not token or request.form.get("action") != "confirm":
        return None
    return _confirmations().verify(token, current_user.id, _search_spec(form))


def _confirm_page(form: SearchForm, priced: search.CostPreview, *, stale: bool) -> str:
    """The cost of the search and a Confirm button; Back returns to the form, values kept."""
    token = _confirmations().issue(current_user.id, _search_spec(form))
    names = {f.name for f in form} - {"csrf_token"}
    # What the browser sent, as sent: Back and Confirm post the same form again.
    carried = [(key, value) for key in names for value in request.form.getlist(key)]
    counties = [
        f"{county.label} ({code})" if (county := by_fips(code)) else code
        for code in form.county_fips()
    ]
    batch_size = current_app.config["PROPERTYRADAR_BATCH_SIZE"]
    return render_template(
        "jobs/confirm.html",
        form=form,
        estimate=priced,
        preview=priced.preview,
        carried=sorted(carried),
        confirm_token=token,
        counties=counties,
        criteria=form.criteria(),
        runs_now=not form.background.data and priced.preview.matches <= batch_size,
        stale=stale,
    )


@bp.route("/search", methods=["GET", "POST"])
# The same per-user budget as job creation through the API. Pricing a search and
# confirming it are both counted (each makes PropertyRadar requests); Back is not.
@limiter.limit(
    lambda: current_app.config["JOB_CREATE_RATE_LIMIT"],
    key_func=services.user_key,
    methods=["POST"],
    exempt_when=_is_back_to_form,
)
def new_search() -> tuple[str, int] | Response | str:
    """The search form; submitting it shows the cost and asks before buying anything.

    A search that would buy records needs a confirmation naming exactly that search
    (signed, per user, for SEARCH_CONFIRM_SECONDS); one that would buy nothing starts at
    once. Either way the job is created by :func:`search.submit`.
    """
    if (
        request.method == "GET"
        and is_htmx()
        and request.headers.get("HX-Target") == ("county-options")
    ):
        return render_template(
            "jobs/_county_options.html", oob=True, **_county_choices(request.args.getlist("state"))
        )
    if request.method == "GET":
        opened, unshown = _opened_search()
        return search_page(opened, 200, unshown)
    form = SearchForm()
    if _is_back_to_form():
        return search_page(form, 200)
    if not form.validate_on_submit():
        return search_page(form, 400)

    confirmation = _confirmation(form)
    if confirmation is not None:
        return _start_confirmed(form, confirmation)
    # Not confirmed: price it (free requests) and ask, unless it buys nothing.
    try:
        get_redis().ping()  # no use asking to confirm a job that could not be queued
        with services.client() as client:
            priced = search.preview_cost(
                db.session,
                client,
                form.criteria(),
                PreviewSettings.from_config(current_app.config),
                max_records=form.max_records.data,
                refresh_all=form.refresh_all.data,
                suppressed=_suppressed(form),
            )
    except RedisError:
        form.form_errors.append(
            f"{batches.QUEUE_DOWN}. Your search is still here; nothing was created."
        )
        return search_page(form, 503)
    except PropertyRadarError as exc:
        form.form_errors.append(f"Could not price this search: {exc.message}. Nothing was bought.")
        return search_page(form, 502)
    if priced.preview.to_buy > 0:
        return _confirm_page(form, priced, stale="confirm_token" in request.form), 200
    return _start_search(form)[0]  # buys nothing: no need to ask


def _start_confirmed(form: SearchForm, confirmation: str) -> tuple[str, int] | Response:
    """Start the confirmed search, once: one confirmation starts one job, however often a
    double click or a browser's resend posts it."""
    confirmations = _confirmations()
    try:
        started = confirmations.claim(confirmation)
    except RedisError:
        form.form_errors.append(
            f"{batches.QUEUE_DOWN}. Your search is still here; nothing was created."
        )
        return search_page(form, 503)
    if started is not None:
        flash("This search was already started; here it is.", "info")
        if started:
            return redirect(url_for("jobs.detail", job_id=started))
        return redirect(url_for("jobs.index"))
    response, job_id = _start_search(form)
    try:
        confirmations.settle(confirmation, job_id)
    except RedisError:
        pass  # the job is created; a resend would only be told it was started
    return response


def _start_search(form: SearchForm) -> tuple[tuple[str, int] | Response, str | None]:
    """Create the job (and, for a one-page search, wait a moment for it); the response and
    the new job's id, if any."""
    batch_size = current_app.config["PROPERTYRADAR_BATCH_SIZE"]
    saved = _saved_search_of(form)
    if saved is not None and not SearchSpec.of(saved).same_search(form.spec()):
        saved = None  # changed in the form since: a new search, not that one
    try:
        result = search.submit(
            db.session,
            get_queue(),
            services.queue_settings(),
            client_factory=services.client,
            owner=current_user,
            criteria=form.criteria(),
            name=form.name.data,
            max_records=form.max_records.data,
            background=form.background.data,
            batch_size=batch_size,
            seconds_per_page=current_app.config["ESTIMATED_SECONDS_PER_PAGE"],
            refresh_all=form.refresh_all.data,
            fields=form.chosen_fields(),
            saved_search=saved,
            suppression_list_id=form.suppression_list_id(),
        )
    except CriteriaError as exc:  # validated above; only a catalogue change could get here
        form.form_errors.extend(exc.errors.values())
        return search_page(form, 400), None
    except batches.QueueUnavailable as exc:
        form.form_errors.append(f"{exc}. Your search is still here; nothing was created.")
        return search_page(form, 503), None
    except PropertyRadarError as exc:
        form.form_errors.append(f"Could not count the matching records: {exc.message}")
        return search_page(form, 502), None

    job = result.job
    # A queued job needs no message: its status panel says "queued" while it is (and only
    # then). The messages below go in the job page's notices, which the panel clears once
    # the job has finished (see _progress).
    if result.mode is search.Mode.TOO_BIG:
        sized = result.estimate
        assert sized is not None
        flash(
            f"This search matches {sized.records:,} records, more than fit in one page of "
            f"{batch_size:,}, so it is running in the background. This page updates as it runs.",
            "info",
        )
    elif result.mode is search.Mode.WAIT:
        seconds = current_app.config["SEARCH_WAIT_SECONDS"]
        if not search.wait_briefly(db.session, job, seconds):
            flash("This is taking longer than expected; it continues in the background.", "info")
        elif job.status == JobStatus.COMPLETED:
            flash(
                f"Done: {job.success_count:,} leads, listed below. {job.purchased_count:,} "
                f"bought for {money(job.cost_total)}, {job.reused_count:,} reused at no cost.",
                "success",
            )
        elif job.status == JobStatus.FAILED:
            reason = job.error_details or "see the log below"
            flash(f"The search failed: {reason}. You can retry it below.", "error")
    return redirect(url_for("jobs.detail", job_id=job.job_id)), job.job_id


@bp.post("/search/preview")
def preview() -> tuple[str, int]:
    """htmx fragment: matches, already owned, records to buy and estimated cost, all free."""
    form = SearchForm()
    if not form.validate_on_submit():
        return render_template("jobs/_preview.html", form=form), 422
    config = current_app.config
    try:
        with services.client() as client:
            result = search.preview_cost(
                db.session,
                client,
                form.criteria(),
                PreviewSettings.from_config(config),
                max_records=form.max_records.data,
                refresh_all=form.refresh_all.data,
                suppressed=_suppressed(form),
            )
    except PropertyRadarError as exc:
        return render_template("jobs/_preview.html", form=form, error=exc), 200
    except RedisError:
        return render_template("jobs/_preview.html", form=form, error=batches.QUEUE_DOWN), 200
    return render_template(
        "jobs/_preview.html", form=form, estimate=result, preview=result.preview
    ), 200


# ---------------------------------------------------------------------------- job page


def _log_page(job: BatchJob, paging: PageArgs) -> dict[str, Any]:
    entries = paginate(log_newest_first(job), paging)
    return {
        "entries": entries.items,
        "log_page": entries.page,
        "log_pages": entries.pages,
        "log_total": entries.total,
    }


def _leads_page(job: BatchJob, paging: PageArgs) -> dict[str, Any]:
    leads = paginate(
        leads_in_search_order(job),
        paging,
        # success_count is the number of links, kept with each page: no COUNT(*) needed.
        total=job.success_count,
    )
    return {
        "leads": leads.items,
        "leads_page": leads.page,
        "leads_pages": leads.pages,
        "leads_total": leads.total,
        "leads_offset": (leads.page - 1) * leads.per_page,
    }


def _purchases_page(job: BatchJob, paging: PageArgs) -> dict[str, Any]:
    """One page of the job's purchase ledger, newest first, with its totals."""
    where = LedgerEntry.batch_job_id == job.id
    total, possibly_billed = db.session.execute(
        sa.select(
            sa.func.count(),
            sa.func.count().filter(LedgerEntry.outcome == LedgerEntry.POSSIBLY_BILLED),
        ).where(where)
    ).one()
    # Which pages may have been billed twice: worth finding without paging through.
    unsure_pages = (
        db.session.scalars(
            sa.select(LedgerEntry.page)
            .where(where, LedgerEntry.outcome == LedgerEntry.POSSIBLY_BILLED)
            .order_by(LedgerEntry.id)
            .limit(MAX_UNSURE_PAGES + 1)
        ).all()
        if possibly_billed
        else []
    )
    entries = paginate(
        sa.select(LedgerEntry).where(where).order_by(LedgerEntry.id.desc()), paging, total=total
    )
    return {
        "purchases": entries.items,
        "purchases_page": entries.page,
        "purchases_pages": entries.pages,
        "purchases_total": total,
        "possibly_billed": possibly_billed,
        "unsure_pages": unsure_pages[:MAX_UNSURE_PAGES],
    }


def job_version(job: BatchJob) -> str:
    """Changes whenever anything the job page shows about the job changes."""
    stamp = job.updated_at.isoformat() if job.updated_at else ""
    return f"{job.status}.{job.processed_records}.{int(job.cancel_requested)}.{stamp}"


def _pace(job: BatchJob, now: datetime) -> pace.Pace:
    """The purchase rate and time left of a running job (see radar_app/pace.py)."""
    return pace.purchase_pace(job, now, batch_size=current_app.config["PROPERTYRADAR_BATCH_SIZE"])


def _finished_since_shown(job: BatchJob) -> bool:
    """Whether the page polling this fragment last showed the job still active."""
    shown = request.args.get("v", "").split(".", 1)[0]
    return shown in {s.value for s in JobStatus if s.is_active} and not job.is_active


def _progress(
    job: BatchJob,
    *,
    notice: str | None = None,
    level: str = "info",
    status: int = 200,
    acted: bool = False,
) -> Response:
    now = utcnow()
    response = make_response(
        render_template(
            "jobs/_progress.html",
            job=job,
            now=now,
            pace=_pace(job, now),
            version=job_version(job),
            notice=notice,
            notice_level=level,
            # The page's notices ("running in the background…", "the search failed…")
            # describe the job as it was: gone once it has finished, or the user acted.
            clear_notices=acted or _finished_since_shown(job),
        ),
        status,
    )
    if request.args.get("v") != job_version(job):
        response.headers["HX-Trigger"] = "job-updated"
    return response


@bp.get("/jobs/<job_id>")
def detail(job_id: str) -> str:
    """A job's progress, timings, log and leads."""
    job = services.job_or_404(job_id)
    now = utcnow()
    return render_template(
        "jobs/detail.html",
        job=job,
        now=now,
        pace=_pace(job, now),
        version=job_version(job),
        **_log_page(job, _paging("log_page", LOG_PER_PAGE)),
        **_leads_page(job, _paging("leads_page", LEADS_PER_PAGE)),
        **_purchases_page(job, _paging("purchases_page", PURCHASES_PER_PAGE)),
    )


@bp.get("/jobs/<job_id>/progress")
def progress(job_id: str) -> Response:
    """htmx fragment: the job's status panel; polls itself while the job is active."""
    return _progress(services.job_or_404(job_id))


@bp.get("/jobs/<job_id>/log")
def log(job_id: str) -> str:
    """htmx fragment: one page of the job's log, newest first."""
    job = services.job_or_404(job_id)
    return render_template(
        "jobs/_log.html", job=job, **_log_page(job, _paging("page", LOG_PER_PAGE))
    )


@bp.get("/jobs/<job_id>/leads")
def leads(job_id: str) -> str:
    """htmx fragment: one page of the job's leads, in search order."""
    job = services.job_or_404(job_id)
    return render_template(
        "jobs/_leads.html", job=job, **_leads_page(job, _paging("page", LEADS_PER_PAGE))
    )


@bp.get("/jobs/<job_id>/purchases")
def purchases(job_id: str) -> str:
    """htmx fragment: one page of the job's purchase ledger, newest first."""
    job = services.job_or_404(job_id)
    return render_template(
        "jobs/_purchases.html",
        job=job,
        **_purchases_page(job, _paging("page", PURCHASES_PER_PAGE)),
    )


@bp.get("/jobs/<job_id>/leads.csv")
def leads_csv(job_id: str) -> Response:
    """Every lead of the job as a CSV download, streamed."""
    return csv_download(db.session, services.job_or_404(job_id))


@bp.get("/jobs/<job_id>/outcomes.csv")
def outcomes_csv(job_id: str) -> Response:
    """What became of every matching record (bought, reused, suppressed...), streamed."""
    job = services.job_or_404(job_id)
    return outcomes_download(db.session, job, current_app.config["PROPERTYRADAR_BATCH_SIZE"])


def _action_done(job: BatchJob, message: str) -> Response:
    if is_htmx():
        return _progress(job, notice=message, level="success", acted=True)
    flash(message, "success")
    return redirect(url_for("jobs.detail", job_id=job.job_id))


def _action_refused(job: BatchJob, message: str, status: int) -> Response:
    """The action was not possible (409) or the queue is down (503): say so, change nothing."""
    db.session.refresh(job)
    if is_htmx():
        return _progress(job, notice=message, level="error", status=status, acted=True)
    flash(message, "error")
    return make_response(detail(job.job_id), status)


@bp.post("/jobs/<job_id>/cancel")
def cancel(job_id: str) -> Response:
    """Cancel a queued job, or stop a running one after the page in flight."""
    job = services.job_or_404(job_id)
    try:
        job = batches.request_cancel(db.session, get_queue(), job, by=current_user)
    except batches.InvalidTransition as exc:
        return _action_refused(job, f"{exc}.", 409)
    if job.status == JobStatus.CANCELLED:
        return _action_done(job, "Cancelled before it started.")
    return _action_done(job, "Cancel requested: the job stops after the page in flight.")


@bp.post("/jobs/<job_id>/retry")
def retry(job_id: str) -> Response:
    """Queue a failed or cancelled job again; it resumes where it stopped."""
    job = services.job_or_404(job_id)
    try:
        job = batches.retry_job(
            db.session, get_queue(), services.queue_settings(), job, by=current_user
        )
    except batches.InvalidTransition as exc:
        return _action_refused(job, f"{exc}.", 409)
    except batches.QueueUnavailable as exc:
        return _action_refused(job, str(exc), 503)
    return _action_done(job, f"Queued again; it resumes at record {job.next_start + 1:,}.")


# ----------------------------------------------------------------------- notifications


def _notified_until() -> datetime | None:
    """Until when this browser's user has been told of their finished jobs (None: not yet)."""
    seen = session.get(NOTIFIED_KEY)
    # Keyed by user: whoever signs in next in this browser starts afresh.
    if isinstance(seen, dict) and seen.get("user") == current_user.id:
        return datetime.fromisoformat(seen["until"])
    return None


def _notify_until(moment: datetime) -> None:
    # ISO text, not a float: a rounded timestamp could show the last toast twice.
    session[NOTIFIED_KEY] = {"user": current_user.id, "until": moment.isoformat()}


@bp.app_template_global()
def notification_poll_armed() -> bool:
    """Whether a page polls for toasts (base.html): only while the user has a job pending
    or processing, or one finished that they have not been told of yet.

    The first page of a session starts the clock, so a job started from it and finished
    before the first poll still gets its toast, and older ones don't pop up.
    """
    if not current_user.is_authenticated:
        return False
    try:
        until = _notified_until()
        if until is None:
            until = utcnow()
            _notify_until(until)
        return worth_polling(db.session, current_user.id, until)
    except sa.exc.SQLAlchemyError:
        # Error pages render this layout too, also when the database is what failed: the
        # page must still render, without the poll.
        return False


@bp.get("/notifications")
def notifications() -> tuple[str, int]:
    """htmx fragment: toasts for the user's jobs that finished since the last poll, then
    STOP_POLLING once the user has no job pending or processing and no toast left.

    The first poll of a session (if no page started the clock) only records the time. The
    session is written only when something is shown: a poll that writes the cookie could
    otherwise race a page request and drop its flash message.
    """
    # Asked before the toasts are: a job that finishes between the two queries is then
    # among them, so the poll that finds no job running still shows the last one's toast.
    running = has_active_job(db.session, current_user.id)
    until = _notified_until()
    if until is None:
        _notify_until(utcnow())
        return "", 200 if running else STOP_POLLING
    finished = finished_since(db.session, current_user.id, until, MAX_TOASTS)
    # A full batch of toasts may leave more for the next poll.
    keep_polling = running or len(finished) == MAX_TOASTS
    status = 200 if keep_polling else STOP_POLLING
    if not finished:
        return "", status
    # (The query asks for completed_at past `until`, so every one has a completed_at.)
    _notify_until(max(job.completed_at for job in finished if job.completed_at is not None))
    return render_template("jobs/_toasts.html", jobs=finished), status
