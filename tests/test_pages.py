"""The server-rendered UI through Flask's test client: pages, htmx fragments, forms.

CSRF stays on: forms get their token from the page, htmx-style requests send it in the
X-CSRFToken header exactly as base.html's hx-headers does.
"""

from __future__ import annotations

import csv
import html
import io
import re
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from devstack import free_port
from radar_app import create_app
from radar_app.extensions import db
from radar_app.jobstate import add_log
from radar_app.models import BatchJob, JobPhase, JobStatus, User, utcnow
from radar_app.pagination import MAX_PAGE
from radar_app.queue import get_queue
from tests.conftest import PASSWORD, csrf_token_from
from tests.helpers import MULTNOMAH, OREGON, count_rows, job_row, make_job
from tests.search_helpers import confirmation_form, is_confirmation, run_search

HX = {"HX-Request": "true"}
POLLS = 'hx-trigger="every 2s"'


# ----------------------------------------------------------------------------- helpers


def set_status(app: Flask, job_id: str, status: JobStatus, **fields: Any) -> None:
    with app.app_context():
        job = db.session.scalar(sa.select(BatchJob).where(BatchJob.job_id == job_id))
        job.status = status
        if status is JobStatus.PROCESSING:
            job.started_at = job.run_started_at = utcnow() - timedelta(seconds=10)
            job.total_records, job.processed_records = 2000, 800
        if not status.is_active:
            job.completed_at = utcnow()
        for key, value in fields.items():
            setattr(job, key, value)
        db.session.commit()


def job_row_ids(app: Flask) -> list[str]:
    with app.app_context():
        return list(db.session.scalars(sa.select(BatchJob.job_id).order_by(BatchJob.id)))


def queued(app: Flask) -> int:
    with app.app_context():
        return get_queue().count


def search_form(client: FlaskClient, **fields: Any) -> dict[str, Any]:
    """The search form's data as a browser would post it: background ticked by default."""
    token = csrf_token_from(client.get("/search").text)
    data: dict[str, Any] = {"csrf_token": token, "background": "y"}
    data.update({k: v for k, v in fields.items() if v is not None})
    if fields.get("background") is False:
        data.pop("background")
    return data


@pytest.fixture
def signed_in(client: FlaskClient, auth, user: User) -> FlaskClient:
    response = auth.login()
    assert response.status_code == 302
    return client


@pytest.fixture
def csrf(signed_in: FlaskClient, auth) -> dict[str, str]:
    """Headers of an htmx request from a signed-in page (hx-headers on <body>)."""
    return {**HX, "X-CSRFToken": auth.csrf_token()}


# ------------------------------------------------------------------- pages and access


def job_urls(job_id: str) -> list[str]:
    return [
        f"/jobs/{job_id}",
        f"/jobs/{job_id}/progress",
        f"/jobs/{job_id}/row",
        f"/jobs/{job_id}/log",
        f"/jobs/{job_id}/leads",
        f"/jobs/{job_id}/leads.csv",
    ]


def test_every_page_and_fragment_renders_for_the_owner(app, signed_in):
    job_id = make_job(app, name="Multnomah leads")
    for url in ["/jobs", "/search", "/notifications", *job_urls(job_id)]:
        response = signed_in.get(url)
        assert response.status_code == 200, url
    page = signed_in.get(f"/jobs/{job_id}").text
    assert "Multnomah leads" in page
    assert 'role="progressbar"' in page and 'aria-valuenow="0"' in page
    assert 'id="job-progress-bar"' in page
    # htmx is vendored and the CSRF header is on <body>.
    assert "/static/js/htmx-2.0.11.min.js" in page
    assert re.search(r"<body hx-headers='\{\"X-CSRFToken\": \"[^\"]+\"\}'>", page)
    with signed_in.get("/static/js/htmx-2.0.11.min.js") as script:
        assert script.status_code == 200
    assert signed_in.get("/").headers["Location"].endswith("/jobs")


def test_pages_need_no_inline_script_or_style(app, signed_in, run_worker, simulator):
    # The CSP (script-src 'self'; style-src 'self') would block them in the browser.
    run_search(signed_in, search_form(signed_in, state="ID", county="16027"))
    run_worker()
    job_id = job_row_ids(app)[0]
    make_job(app)
    signed_in.get("/notifications")
    set_status(app, job_id, JobStatus.COMPLETED)
    for url in ("/jobs", "/search", f"/jobs/{job_id}", "/notifications", "/auth/login"):
        text = signed_in.get(url).text
        assert not re.search(r"<script(?![^>]*\bsrc=)", text), url
        assert " style=" not in text and "hx-on" not in text and "<style" not in text, url


@pytest.mark.parametrize(
    "path", ["/", "/jobs", "/search", "/notifications", "/jobs/abc", "/jobs/abc/progress"]
)
def test_anonymous_visitors_are_sent_to_sign_in(client, path):
    response = client.get(path)
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/auth/login?next=")


def test_anonymous_htmx_request_redirects_the_whole_page(client):
    # Following a 302 would swap the sign-in page into the fragment.
    response = client.get(
        "/jobs/abc/progress", headers={**HX, "HX-Current-URL": "http://localhost/jobs/abc"}
    )
    assert response.status_code == 401
    assert response.headers["HX-Redirect"] == "/auth/login?next=/jobs/abc"


def test_another_users_job_is_404_everywhere(app, signed_in, other_user, csrf):
    job_id = make_job(app, email=other_user.email)
    for url in job_urls(job_id):
        response = signed_in.get(url)
        assert response.status_code == 404, url
    assert "Not Found" in signed_in.get(f"/jobs/{job_id}").text
    for action in ("cancel", "retry"):
        assert signed_in.post(f"/jobs/{job_id}/{action}", headers=csrf).status_code == 404
    assert job_id not in signed_in.get("/jobs").text


def test_admin_sees_everyones_jobs_with_the_owner(app, client, auth, user, admin):
    job_id = make_job(app, name="Owner's job")
    auth.login(admin.email)
    page = client.get("/jobs").text
    assert "Owner" in page and "owner@example.com" in page and job_id in page
    assert client.get(f"/jobs/{job_id}").status_code == 200
    assert "owner@example.com" in client.get(f"/jobs/{job_id}/row").text


def test_only_admins_get_the_admin_link(client, auth, user, admin):
    auth.login()
    assert 'href="/admin/"' not in client.get("/jobs").text
    client.post("/auth/logout", data={"csrf_token": auth.csrf_token()})
    auth.login(admin.email)
    page = client.get("/jobs").text
    assert 'href="/admin/"' in page and ">Admin</a>" in page


def test_error_pages_use_the_layout_and_the_api_keeps_json(signed_in):
    page = signed_in.get("/no/such/page")
    assert page.status_code == 404
    assert "Not Found" in page.text and 'class="topbar"' in page.text
    api = signed_in.get("/api/batch-jobs/nope")
    assert api.status_code == 404 and api.is_json


def test_unexpected_errors_get_a_friendly_500_page(app, client, auth, user):
    @app.get("/boom")
    def boom() -> str:
        raise RuntimeError("kaboom")

    auth.login()
    response = client.get("/boom")
    assert response.status_code == 500
    assert "Internal Server Error" in response.text and 'class="topbar"' in response.text
    assert "kaboom" not in response.text


# ---------------------------------------------------------------------------- sign-in


def test_sign_in_messages_and_sign_out(client, user):
    page = client.get("/auth/login")
    bad = client.post(
        "/auth/login",
        data={
            "email": user.email,
            "password": "wrong",
            "csrf_token": csrf_token_from(page.text),
        },
    )
    assert bad.status_code == 401
    assert "Wrong email or password." in bad.text
    assert 'value="owner@example.com"' in bad.text  # what was typed is kept

    good = client.post(
        "/auth/login?next=/search",
        data={"email": user.email, "password": PASSWORD, "csrf_token": csrf_token_from(page.text)},
    )
    assert good.headers["Location"] == "/search"
    jobs = client.get("/jobs").text
    assert user.email in jobs and "Sign out" in jobs

    out = client.post(
        "/auth/logout", data={"csrf_token": csrf_token_from(jobs)}, follow_redirects=True
    )
    assert "You have been signed out." in out.text
    assert client.get("/jobs").status_code == 302


def test_sign_in_ignores_an_offsite_next(client, user):
    token = csrf_token_from(client.get("/auth/login").text)
    response = client.post(
        "/auth/login?next=//evil.example/x",
        data={"email": user.email, "password": PASSWORD, "csrf_token": token},
    )
    assert response.headers["Location"] == "/jobs"


# ----------------------------------------------------------------------------- search


def test_search_form_has_every_criterion_and_background_ticked(signed_in):
    page = signed_in.get("/search").text
    labels = [
        "State", "County", "City", "ZIP codes", "Property type", "Bedrooms", "Bathrooms",
        "Square feet", "Year built", "Estimated value", "Equity", "Available equity",
        "In foreclosure", "Foreclosure stage", "Tax delinquent", "Listed for sale",
        "Owner-occupied", "Absentee", "Job name", "Max records",
    ]  # fmt: skip
    for label in labels:
        assert label in page, label
    assert re.search(r'<input checked id="background" name="background" type="checkbox"', page)


def test_search_without_a_location_is_refused_with_the_input_kept(app, signed_in):
    response = signed_in.post("/search", data=search_form(signed_in, name="My search"))
    assert response.status_code == 400
    assert "Choose where to search" in response.text
    assert 'value="My search"' in response.text
    assert count_rows(app, BatchJob) == 0


def test_field_errors_show_next_to_the_fields(app, signed_in):
    data = search_form(
        signed_in, county="123", zips="9720", beds_min="5", beds_max="2", avm_min="lots"
    )
    response = signed_in.post("/search", data=data)
    assert response.status_code == 400
    text = response.text
    assert "County FIPS codes have 4 or 5 digits" in text
    assert 'id="county-error"' in text and 'value="123"' in text
    assert "ZIP codes have 5 digits" in text
    assert "Must not be below the minimum" in text
    assert 'value="lots"' in text and "Not a valid integer value" in text
    assert count_rows(app, BatchJob) == 0


def test_search_builds_the_criteria(app, signed_in):
    data = search_form(
        signed_in,
        state="OR",
        county="41051",
        city="Portland, Lake Oswego",
        zips="97202 97211",
        property_types=["SFR", "CND"],
        occupancy="0",
        beds_min="3",
        baths_min="1.5",
        equity_percent_min="40",
        available_equity_max="500000",
        in_foreclosure="1",
        foreclosure_stages=["Preforeclosure", "Auction"],
        tax_delinquent="0",
        listed_for_sale="1",
        name="Everything",
        max_records="100",
    )
    response = run_search(signed_in, data)
    assert response.status_code == 302, response.text
    job = job_row(app, response.headers["Location"].rsplit("/", 1)[1])
    assert job.name == "Everything" and job.max_records == 100
    assert job.criteria == [
        {"name": "State", "value": ["OR"]},
        {"name": "County", "value": ["41051"]},
        {"name": "City", "value": ["Portland", "Lake Oswego"]},
        {"name": "ZipFive", "value": [97202, 97211]},
        {"name": "PropertyType", "value": [{"name": "PType", "value": ["SFR", "CND"]}]},
        {"name": "Beds", "value": [[3, None]]},
        {"name": "Baths", "value": [[1.5, None]]},
        {"name": "isSameMailingOrExempt", "value": [0]},
        {"name": "EquityPercent", "value": [[40, None]]},
        {"name": "AvailableEquity", "value": [[None, 500000]]},
        {"name": "inForeclosure", "value": [1]},
        {"name": "ForeclosureStage", "value": ["Preforeclosure", "Auction"]},
        {"name": "inTaxDelinquency", "value": [0]},
        {"name": "isListedForSale", "value": [1]},
    ]


def test_preview_shows_the_free_count_pages_and_time(app, signed_in, simulator):
    data = search_form(signed_in, state="OR", county="41051")
    response = signed_in.post("/search/preview", data=data, headers=HX)
    assert response.status_code == 200
    assert 'id="preview"' in response.text and "<html" not in response.text
    assert ">2,000<" in response.text
    assert "5 pages of 400" in response.text
    assert "about 7 s" in response.text  # 5 purchases and 2 free snapshot pages, 1 s each
    assert count_rows(app, BatchJob) == 0
    purchases = [r for r in simulator.stats()["requests"] if r["purchase"] == 1]
    assert purchases == []


def test_preview_respects_the_record_cap(signed_in):
    data = search_form(signed_in, state="OR", max_records="1000")
    text = signed_in.post("/search/preview", data=data, headers=HX).text
    assert ">10,000<" in text and "1,000 (your cap)" in text and "3 pages of 400" in text


def test_preview_lists_validation_errors(signed_in):
    data = search_form(signed_in, county="12")
    response = signed_in.post("/search/preview", data=data, headers=HX)
    assert response.status_code == 422
    assert "Fix these first" in response.text
    assert "County: County FIPS codes have 4 or 5 digits" in response.text


def test_preview_shows_an_api_failure_as_a_message(signed_in, simulator):
    simulator.configure(scripted_faults=[{"kind": "503", "purchase": 0, "times": -1}])
    data = search_form(signed_in, state="OR")
    response = signed_in.post("/search/preview", data=data, headers=HX)
    assert response.status_code == 200
    assert "PropertyRadar could not count this search." in response.text
    assert "HTTP 503" in response.text


def test_background_submit_creates_a_queued_job_and_opens_it(app, signed_in):
    data = search_form(signed_in, state="OR", county="41051", name="Multnomah")
    response = run_search(signed_in, data)
    assert response.status_code == 302
    job_id = response.headers["Location"].rsplit("/", 1)[1]
    job = job_row(app, job_id)
    assert job.status == JobStatus.PENDING and job.criteria == MULTNOMAH
    assert queued(app) == 1
    page = signed_in.get(response.headers["Location"]).text
    assert "Your job is queued." in page and POLLS in page


def test_unticked_small_search_waits_for_the_worker_and_shows_the_leads(
    app, signed_in, simulator, worker
):
    data = search_form(signed_in, state="ID", county="16027", background=False)
    response = run_search(signed_in, data)
    assert response.status_code == 302
    job = job_row(app, response.headers["Location"].rsplit("/", 1)[1])
    assert job.status == JobStatus.COMPLETED and job.success_count == 100
    # It ran on the worker like any job: queued under its RQ id, with a heartbeat.
    assert job.rq_job_id.startswith("batch-") and job.heartbeat_at is not None
    assert queued(app) == 0
    page = signed_in.get(response.headers["Location"]).text
    assert "Done: 100 leads, listed below." in page
    assert page.count("<tr>") >= 25 and 'id="leads-table"' in page
    assert POLLS not in page


def test_unticked_big_search_goes_to_the_background_and_says_why(app, signed_in, simulator):
    data = search_form(signed_in, state="OR", background=False)
    response = run_search(signed_in, data, follow_redirects=True)
    assert "matches 10,000 records, more than fit in one page of 400" in response.text
    assert queued(app) == 1
    assert [r for r in simulator.stats()["requests"] if r["purchase"] == 1] == []


def test_unticked_search_whose_count_fails_keeps_the_form(app, signed_in, simulator):
    simulator.configure(scripted_faults=[{"kind": "503", "purchase": 0, "times": -1}])
    data = search_form(signed_in, state="ID", county="16027", name="Canyon", background=False)
    response = signed_in.post("/search", data=data)
    assert response.status_code == 502
    assert "Could not price this search" in response.text
    assert 'value="Canyon"' in response.text
    assert count_rows(app, BatchJob) == 0


def test_unticked_small_search_not_done_in_a_moment_opens_its_job_page(app, signed_in):
    app.config["SEARCH_WAIT_SECONDS"] = 0.2  # and no worker runs
    data = search_form(signed_in, state="ID", county="16027", background=False)
    response = run_search(signed_in, data, follow_redirects=True)
    assert "This is taking longer than expected; it continues in the background." in (response.text)
    assert 'data-status="PENDING"' in response.text and POLLS in response.text
    assert queued(app) == 1


def test_unticked_search_whose_purchase_fails_opens_the_failed_job(
    app, signed_in, simulator, worker
):
    simulator.configure(scripted_faults=[{"kind": "503", "purchase": 1, "times": -1}])
    data = search_form(signed_in, state="ID", county="16027", background=False)
    response = run_search(signed_in, data, follow_redirects=True)
    assert "The search failed" in response.text and "You can retry it below." in response.text
    assert 'data-status="FAILED"' in response.text and 'id="retry-button"' in response.text
    assert queued(app) == 0


def dead_redis_client(app_config: dict[str, Any], user: User, **config: Any):
    """A signed-in client of an app whose Redis refuses connections (nothing listens)."""
    dead = create_app({**app_config, "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0", **config})
    client = dead.test_client()
    page = client.get("/auth/login")
    client.post(
        "/auth/login",
        data={"email": user.email, "password": PASSWORD, "csrf_token": csrf_token_from(page.text)},
    )
    return dead, client


def dispose(flask_app: Flask) -> None:
    with flask_app.app_context():  # its own engine: close its pooled connections now
        db.engine.dispose()


def test_queue_down_is_a_form_error_and_nothing_is_lost(app, app_config, user):
    dead, client = dead_redis_client(app_config, user)
    try:
        response = client.post("/search", data=search_form(client, state="OR", name="Keep me"))
    finally:
        dispose(dead)
    assert response.status_code == 503
    assert "queue is unavailable" in response.text and 'value="Keep me"' in response.text
    assert count_rows(app, BatchJob) == 0


def test_shared_rate_limit_without_redis_is_a_message_not_a_500(app, app_config, user):
    # With a rate limit the web's own requests pace through Redis like the workers' do.
    dead, client = dead_redis_client(app_config, user, PROPERTYRADAR_RATE_LIMIT=50.0)
    try:
        preview = client.post("/search/preview", data=search_form(client, state="OR"), headers=HX)
        inline = client.post(
            "/search", data=search_form(client, state="ID", name="Keep me", background=False)
        )
    finally:
        dispose(dead)
    assert preview.status_code == 200 and "The job queue is unavailable" in preview.text
    assert inline.status_code == 503 and 'value="Keep me"' in inline.text
    assert count_rows(app, BatchJob) == 0


def test_job_creation_from_the_form_is_rate_limited_per_user(app, signed_in):
    # Pricing a search and confirming it count; going back to the form does not.
    app.config["JOB_CREATE_RATE_LIMIT"] = "3 per minute"
    assert run_search(signed_in, search_form(signed_in, state="OR")).status_code == 302
    asked = signed_in.post("/search", data=search_form(signed_in, state="OR"))
    assert is_confirmation(asked)
    back = signed_in.post("/search", data=confirmation_form(asked.text, "edit"))
    assert back.status_code == 200
    refused = signed_in.post("/search", data=confirmation_form(asked.text))
    assert refused.status_code == 429 and "Too Many Requests" in refused.text
    assert signed_in.get("/search").status_code == 200  # only submissions count
    assert count_rows(app, BatchJob) == 1


def test_sign_in_attempts_are_rate_limited(app, client, user):
    app.config["LOGIN_RATE_LIMIT"] = "2 per minute"
    token = csrf_token_from(client.get("/auth/login").text)
    wrong = {"email": user.email, "password": "wrong", "csrf_token": token}
    statuses = [client.post("/auth/login", data=wrong).status_code for _ in range(3)]
    assert statuses == [401, 401, 429]


def test_csrf_is_enforced_on_forms_and_htmx_posts(app, signed_in):
    job_id = make_job(app)
    assert signed_in.post("/search", data={"state": "OR", "background": "y"}).status_code == 400
    assert signed_in.post("/search/preview", data={"state": "OR"}, headers=HX).status_code == 400
    assert signed_in.post(f"/jobs/{job_id}/cancel", headers=HX).status_code == 400
    set_status(app, job_id, JobStatus.FAILED)
    assert signed_in.post(f"/jobs/{job_id}/retry", data={}).status_code == 400
    assert job_row(app, job_id).status == JobStatus.FAILED
    assert queued(app) == 0


# ------------------------------------------------------------------------- Jobs tab


def test_jobs_tab_lists_newest_first_with_summary_and_progress(app, signed_in):
    first = make_job(app, name="Older")
    second = make_job(app, criteria=OREGON, name="Newer")
    set_status(app, first, JobStatus.COMPLETED, total_records=2000, processed_records=2000)
    page = signed_in.get("/jobs").text
    assert page.index(second) < page.index(first)
    assert "State OR · County 41051" in page
    assert 'aria-valuenow="100"' in page and "2,000 / 2,000" in page


def test_jobs_tab_filters_by_status_and_paginates(app, signed_in):
    ids = [make_job(app, name=f"job {n}") for n in range(23)]
    set_status(app, ids[0], JobStatus.FAILED)
    failed = signed_in.get("/jobs?status=FAILED").text
    assert ids[0] in failed and ids[1] not in failed
    first_page = signed_in.get("/jobs").text
    second_page = signed_in.get("/jobs?page=2").text
    assert "Page 1 of 2" in first_page and "Page 2 of 2" in second_page
    assert ids[-1] in first_page and ids[0] in second_page and ids[0] not in first_page
    assert signed_in.get("/jobs?status=NOPE").status_code == 400
    assert signed_in.get("/jobs?page=0").status_code == 400
    # Past MAX_PAGE the OFFSET would overflow the database's integer: a 400, never a 500.
    assert signed_in.get(f"/jobs?page={MAX_PAGE + 1}").status_code == 400
    assert signed_in.get(f"/jobs/{ids[0]}?leads_page={10**20}").status_code == 400
    assert signed_in.get("/jobs?page=3").status_code == 200  # past the end: an empty page


def test_jobs_tab_query_count_does_not_grow_with_jobs(app, signed_in):
    def statements_for_jobs_page() -> int:
        seen: list[str] = []
        with app.app_context():
            engine = db.engine

        def count(*_args: Any) -> None:
            seen.append("x")

        sa.event.listen(engine, "before_cursor_execute", count)
        try:
            assert signed_in.get("/jobs").status_code == 200
        finally:
            sa.event.remove(engine, "before_cursor_execute", count)
        return len(seen)

    make_job(app)
    few = statements_for_jobs_page()
    for _ in range(10):
        make_job(app)
    assert statements_for_jobs_page() == few


@pytest.mark.parametrize("status", list(JobStatus))
def test_fragments_poll_only_while_the_job_is_active(app, signed_in, status):
    job_id = make_job(app)
    set_status(app, job_id, status)
    for url in (f"/jobs/{job_id}/progress", f"/jobs/{job_id}/row", f"/jobs/{job_id}"):
        text = signed_in.get(url, headers=HX).text
        assert (POLLS in text) is status.is_active, (url, status)
    assert (POLLS in signed_in.get("/jobs").text) is status.is_active


def test_progress_announces_changes_only(app, signed_in):
    job_id = make_job(app)
    first = signed_in.get(f"/jobs/{job_id}/progress", headers=HX)
    assert first.headers["HX-Trigger"] == "job-updated"
    # The URL the fragment polls next carries the version it shows.
    poll_url = html.unescape(re.search(r'hx-get="([^"]+)" hx-trigger="every 2s"', first.text)[1])
    assert "HX-Trigger" not in signed_in.get(poll_url, headers=HX).headers
    set_status(app, job_id, JobStatus.PROCESSING, phase=JobPhase.PURCHASE)
    changed = signed_in.get(poll_url, headers=HX)
    assert changed.headers["HX-Trigger"] == "job-updated"
    assert "800 of 2,000 records" in changed.text and "rec/s" in changed.text


# -------------------------------------------------------------------- cancel and retry


@pytest.mark.parametrize(
    ("status", "can_cancel", "can_retry"),
    [
        (JobStatus.PENDING, True, False),
        (JobStatus.PROCESSING, True, False),
        (JobStatus.COMPLETED, False, False),
        (JobStatus.FAILED, False, True),
        (JobStatus.CANCELLED, False, True),
    ],
)
def test_cancel_and_retry_buttons_only_when_allowed(app, signed_in, status, can_cancel, can_retry):
    job_id = make_job(app)
    set_status(app, job_id, status)
    text = signed_in.get(f"/jobs/{job_id}").text
    assert ('id="cancel-button"' in text) is can_cancel
    assert ('id="retry-button"' in text) is can_retry
    if can_cancel:
        assert "hx-confirm=" in text


def test_cancel_a_queued_job_then_retry_it(app, signed_in, csrf):
    job_id = make_job(app)
    cancelled = signed_in.post(f"/jobs/{job_id}/cancel", headers=csrf)
    assert cancelled.status_code == 200
    assert "Cancelled before it started." in cancelled.text
    assert 'data-status="CANCELLED"' in cancelled.text and POLLS not in cancelled.text
    assert cancelled.headers["HX-Trigger"] == "job-updated"

    again = signed_in.post(f"/jobs/{job_id}/cancel", headers=csrf)
    assert again.status_code == 409
    assert "cannot be cancelled" in again.text and 'id="job-progress"' in again.text

    retried = signed_in.post(f"/jobs/{job_id}/retry", headers=csrf)
    assert retried.status_code == 200
    assert 'data-status="PENDING"' in retried.text and POLLS in retried.text
    assert queued(app) == 1


def test_cancel_a_running_job_asks_it_to_stop(app, signed_in, csrf):
    job_id = make_job(app)
    set_status(app, job_id, JobStatus.PROCESSING)
    response = signed_in.post(f"/jobs/{job_id}/cancel", headers=csrf)
    assert "stops after the page in flight" in response.text and "Stopping" in response.text
    assert 'id="cancel-button"' not in response.text and POLLS in response.text
    assert job_row(app, job_id).cancel_requested


def test_plain_form_posts_flash_and_redirect(app, signed_in, auth):
    job_id = make_job(app)
    set_status(app, job_id, JobStatus.COMPLETED)
    token = auth.csrf_token()
    refused = signed_in.post(f"/jobs/{job_id}/retry", data={"csrf_token": token})
    assert refused.status_code == 409
    assert "A COMPLETED job cannot be retried." in refused.text and "<html" in refused.text

    other = make_job(app)
    done = signed_in.post(f"/jobs/{other}/cancel", data={"csrf_token": token})
    assert done.status_code == 302
    assert "Cancelled before it started." in signed_in.get(done.headers["Location"]).text


def test_failed_job_shows_why(app, signed_in):
    job_id = make_job(app)
    set_status(
        app,
        job_id,
        JobStatus.FAILED,
        error_details="PropertyRadar returned 503: Service Unavailable",
        next_start=800,
    )
    text = signed_in.get(f"/jobs/{job_id}").text
    assert "Why it failed" in text and "PropertyRadar returned 503" in text
    assert "Retry resumes at record 801" in text


# ---------------------------------------------------------------- log, leads and CSV


def test_log_leads_and_csv_after_a_run(app, signed_in, run_worker, simulator):
    response = run_search(signed_in, search_form(signed_in, state="OR", county="41051"))
    job_id = response.headers["Location"].rsplit("/", 1)[1]
    run_worker()
    assert job_row(app, job_id).status == JobStatus.COMPLETED

    page = signed_in.get(f"/jobs/{job_id}").text
    assert "Completed: 2,000 leads stored" in page
    assert "Page 1 of 80 · 2,000 leads" in page
    log = signed_in.get(f"/jobs/{job_id}/log", headers=HX).text
    assert log.index("Completed: 2,000 leads stored") < log.index("Job created")  # newest first
    leads = signed_in.get(f"/jobs/{job_id}/leads?page=80", headers=HX).text
    assert ">2000<" in leads and "Page 80 of 80" in leads

    download = signed_in.get(f"/jobs/{job_id}/leads.csv")
    assert download.mimetype == "text/csv"
    assert "attachment" in download.headers["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(download.text)))
    assert rows[0][0] == "RadarID" and len(rows) == 2001


def test_log_is_paginated_newest_first(app, signed_in):
    job_id = make_job(app)
    with app.app_context():
        job = db.session.scalar(sa.select(BatchJob).where(BatchJob.job_id == job_id))
        for n in range(1, 31):
            add_log(db.session, job.id, "INFO", f"entry {n:02d}")
        db.session.commit()
    first = signed_in.get(f"/jobs/{job_id}/log", headers=HX).text
    assert "Page 1 of 3 · 31 entries" in first
    assert "entry 30" in first and "entry 16" in first and "entry 15" not in first
    third = signed_in.get(f"/jobs/{job_id}/log?page=3", headers=HX).text
    assert "Job created" in third and "entry 01" not in third
    # Without JavaScript the pager links reload the job page at that log page.
    assert f"/jobs/{job_id}?log_page=2" in first
    assert "entry 15" in signed_in.get(f"/jobs/{job_id}?log_page=2").text


# ---------------------------------------------------------------------- notifications


def test_a_toast_appears_once_when_a_job_finishes(app, signed_in):
    job_id = make_job(app, name="Toast me")
    assert signed_in.get("/notifications", headers=HX).text.strip() == ""  # records the time
    assert signed_in.get("/notifications", headers=HX).text.strip() == ""
    set_status(app, job_id, JobStatus.COMPLETED, success_count=2000)
    toast = signed_in.get("/notifications", headers=HX).text
    assert "Toast me" in toast and f"/jobs/{job_id}" in toast and "2,000 leads" in toast
    assert signed_in.get("/notifications", headers=HX).text.strip() == ""


def test_no_toast_for_jobs_finished_before_the_first_poll_or_by_others(app, signed_in, other_user):
    old = make_job(app)
    set_status(app, old, JobStatus.FAILED)
    assert signed_in.get("/notifications").text.strip() == ""
    theirs = make_job(app, email=other_user.email)
    set_status(app, theirs, JobStatus.COMPLETED)
    assert signed_in.get("/notifications").text.strip() == ""
    mine = make_job(app, name="Mine")
    set_status(app, mine, JobStatus.FAILED)
    toast = signed_in.get("/notifications").text
    assert "Mine" in toast and "Failed" in toast and old not in toast and theirs not in toast


def test_the_next_user_in_the_same_browser_starts_afresh(app, signed_in, auth, admin):
    admins_job = make_job(app, email=admin.email)
    signed_in.get("/notifications")  # the owner's first poll
    set_status(app, admins_job, JobStatus.COMPLETED)
    signed_in.post("/auth/logout", data={"csrf_token": auth.csrf_token()})
    auth.login(admin.email)
    # Finished before the admin's first poll in this session: no toast.
    assert signed_in.get("/notifications").text.strip() == ""
    later = make_job(app, email=admin.email, name="Admin's later job")
    set_status(app, later, JobStatus.COMPLETED)
    assert "Admin&#39;s later job" in signed_in.get("/notifications").text


def test_layout_polls_for_notifications_when_signed_in(app, signed_in, client):
    make_job(app)  # it polls while a job is active (tests/test_notifications.py)
    page = signed_in.get("/jobs").text
    assert 'hx-get="/notifications"' in page and 'hx-trigger="load, every 5s"' in page
    signed_in.post("/auth/logout", data={"csrf_token": csrf_token_from(page)})
    assert "/notifications" not in client.get("/auth/login").text


# ---------------------------------------------------------------------------- escaping


def test_user_text_is_escaped_everywhere(app, signed_in):
    evil = "<script>alert(1)</script>"
    job_id = make_job(app, name=evil, criteria=[{"name": "City", "value": [evil]}])
    signed_in.get("/notifications")
    set_status(app, job_id, JobStatus.COMPLETED, error_details=evil)
    for url in ("/jobs", f"/jobs/{job_id}", f"/jobs/{job_id}/row", "/notifications"):
        text = signed_in.get(url).text
        assert evil not in text, url
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text, url
