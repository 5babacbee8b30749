"""Searching the Jobs list (issue 13, item 2): q= (name and criteria text), status, owner
(admins), created from / to, on the Jobs page and GET /api/batch-jobs; bad values are
field errors (400, 422 for htmx), a user never finds another's jobs, the status counts
follow the search and refresh while jobs are active."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from radar_app.extensions import db
from radar_app.models import BatchJob, JobStatus
from tests.conftest import AuthActions, issue_token
from tests.helpers import MULTNOMAH, OREGON, make_job

HX = {"HX-Request": "true"}
LANE = [{"name": "State", "value": ["OR"]}, {"name": "County", "value": ["41039"]}]


def _set(app: Flask, job_id: str, **values: object) -> None:
    with app.app_context():
        db.session.execute(sa.update(BatchJob).where(BatchJob.job_id == job_id).values(values))
        db.session.commit()


@pytest.fixture
def jobs(app: Flask, user, other_user) -> dict[str, str]:
    """The owner's jobs, named, in three months and several statuses; and one of the
    other user's whose name and criteria match every text search below."""
    made = {
        "portland": make_job(app, name="Portland absentee", criteria=MULTNOMAH),
        "eugene": make_job(app, name="Eugene flips", criteria=LANE),
        "statewide": make_job(app, name="Statewide 100%_done", criteria=OREGON),
        "theirs": make_job(
            app, email=other_user.email, name="Portland absentee too", criteria=MULTNOMAH
        ),
    }
    _set(app, made["portland"], status=JobStatus.FAILED, created_at=_at(2026, 1, 15))
    _set(app, made["eugene"], status=JobStatus.COMPLETED, created_at=_at(2026, 2, 10))
    _set(app, made["statewide"], status=JobStatus.FAILED, created_at=_at(2026, 3, 5))
    _set(app, made["theirs"], status=JobStatus.FAILED, created_at=_at(2026, 2, 10))
    return made


def _at(year: int, month: int, day: int) -> datetime:
    return datetime(year, month, day, 23, 30, tzinfo=UTC)


def _signed_in(client: FlaskClient, email: str) -> FlaskClient:
    assert AuthActions(client).login(email).status_code == 302
    return client


def _found(app: Flask, client: FlaskClient, query: str, every: dict[str, str]) -> set[str]:
    """The jobs (by fixture key) the Jobs page lists for the query; the API must agree."""
    page = client.get(f"/jobs?{query}")
    assert page.status_code == 200, page.text
    listed = {key for key, job_id in every.items() if f'id="job-row-{job_id}"' in page.text}
    return listed


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", {"portland", "eugene", "statewide"}),
        ("q=portland", {"portland"}),  # the name, any case
        ("q=ABSENTEE", {"portland"}),
        ("q=41039", {"eugene"}),  # the criteria's text: Lane County's FIPS code
        ("q=county", {"portland", "eugene"}),  # a criterion's name
        ("q=100%25_", {"statewide"}),  # % and _ are plain characters, not wildcards
        ("q=S%25done", set()),  # as wildcards they would match Statewide's name
        ("q=e_f", set()),  # and Eugene's ("Eugene flips")
        ("status=FAILED", {"portland", "statewide"}),
        ("status=failed", {"portland", "statewide"}),
        ("created_from=2026-02-10", {"eugene", "statewide"}),  # from the day's start
        ("created_to=2026-02-10", {"portland", "eugene"}),  # to the day's end
        ("created_from=2026-02-01&created_to=2026-02-28", {"eugene"}),
        ("q=or&status=FAILED&created_from=2026-02-01", {"statewide"}),  # combined
        ("q=nothing+like+this", set()),
        ("q=+&status=", {"portland", "eugene", "statewide"}),  # blank fields: no filter
    ],
)
def test_each_filter_narrows_the_page_and_the_api(app, client, user, jobs, query, expected):
    _signed_in(client, user.email)
    assert _found(app, client, query, jobs) == expected
    api = client.get(f"/api/batch-jobs?{query}&per_page=100")
    assert api.status_code == 200
    assert {item["id"] for item in api.json["items"]} == {jobs[key] for key in expected}
    assert api.json["total"] == len(expected)


def test_links_keep_the_search(app, client, user):
    _signed_in(client, user.email)
    for n in range(23):
        make_job(app, name=f"Portland {n:02d}")
    make_job(app, name="Salem")
    page = client.get("/jobs?q=portland&created_from=2020-01-01").text
    assert "Page 1 of 2 · 23 jobs" in page
    assert 'href="/jobs?page=2&amp;q=portland&amp;created_from=2020-01-01"' in page
    # The form shows the search; the status links keep the rest of it.
    assert 'name="q" value="portland"' in page
    assert 'href="/jobs?q=portland&amp;created_from=2020-01-01&amp;status=FAILED"' in page
    second = client.get("/jobs?page=2&q=portland&created_from=2020-01-01").text
    assert "Page 2 of 2" in second and "Salem" not in second
    # htmx swaps the page's search and results in place (the URL is pushed by the form).
    fragment = client.get("/jobs?q=salem", headers=HX)
    assert fragment.status_code == 200
    assert 'id="jobs-main"' in fragment.text and "<html" not in fragment.text
    assert "Salem" in fragment.text and "Portland 00" not in fragment.text


@pytest.mark.parametrize(
    ("query", "field", "message"),
    [
        ("status=bogus", "status", "Status: one of PENDING"),
        ("created_from=2026-13-01", "created_from", "Created from: a date as YYYY-MM-DD"),
        ("created_to=yesterday", "created_to", "Created to: a date as YYYY-MM-DD"),
        (
            "created_from=2026-03-01&created_to=2026-02-01",
            "created_to",
            "Created to: must not be below the lower bound",
        ),
        ("q=" + "x" * 201, "q", "Search: at most 200 characters"),
        ("q=a%00b", "q", "Search: contains a NUL character"),
        ("page=0", "page", "page must be between 1"),
    ],
)
def test_bad_input_is_a_field_error_never_a_500(app, client, user, jobs, query, field, message):
    _signed_in(client, user.email)
    page = client.get(f"/jobs?{query}")
    assert page.status_code == 400
    assert message in page.text
    if field != "page":
        # Beside its field, which is marked invalid.
        assert f'aria-describedby="search-{field}-error"' in page.text
        assert f'<span class="error" id="search-{field}-error">{message}' in page.text
    assert jobs["portland"] not in page.text  # nothing listed until the search is right
    fragment = client.get(f"/jobs?{query}", headers=HX)
    assert fragment.status_code == 422 and message in fragment.text
    if field != "page":
        api = client.get(f"/api/batch-jobs?{query}")
        assert api.status_code == 400
        assert api.json["fields"][field].startswith(message)


def test_a_user_never_finds_another_users_jobs(app, client, user, other_user, jobs):
    _signed_in(client, user.email)
    for query in ("q=too", f"owner={other_user.email}", "q=portland&status=FAILED"):
        page = client.get(f"/jobs?{query}")
        assert page.status_code == 200 and jobs["theirs"] not in page.text
        assert "Portland absentee too" not in page.text
        api = client.get(f"/api/batch-jobs?{query}").json
        assert jobs["theirs"] not in {item["id"] for item in api["items"]}
    # Another user's email finds nothing, like an email no one has: no way to tell them apart.
    theirs = client.get(f"/api/batch-jobs?owner={other_user.email}").json
    nobody = client.get("/api/batch-jobs?owner=nobody@example.com").json
    assert theirs == nobody and theirs["total"] == 0
    # Their own email narrows nothing; the page offers no owner field to a non-admin.
    assert client.get(f"/api/batch-jobs?owner={user.email.upper()}").json["total"] == 3
    assert 'name="owner"' not in client.get("/jobs").text


def test_an_admin_searches_everyone_and_by_owner(app, client, admin, user, other_user, jobs):
    _signed_in(client, admin.email)
    assert _found(app, client, "q=portland", jobs) == {"portland", "theirs"}
    assert _found(app, client, f"owner={other_user.email}", jobs) == {"theirs"}
    assert _found(app, client, f"owner={user.email.upper()}&status=FAILED", jobs) == {
        "portland",
        "statewide",
    }
    assert _found(app, client, "owner=nobody@example.com", jobs) == set()
    page = client.get(f"/jobs?owner={other_user.email}").text
    assert f'name="owner" value="{other_user.email}"' in page
    token = issue_token(app, admin.email)
    api = client.get(
        f"/api/batch-jobs?owner={other_user.email}", headers={"Authorization": f"Bearer {token}"}
    ).json
    assert [item["id"] for item in api["items"]] == [jobs["theirs"]]


def test_status_counts_follow_the_search(app, client, user, jobs):
    _signed_in(client, user.email)
    page = client.get("/jobs?q=or&status=FAILED").text
    # Every status's count is of the search without its status: Oregon's three jobs.
    assert 'data-status="ALL">3<' in page
    assert 'data-status="FAILED">2<' in page and 'data-status="COMPLETED">1<' in page
    counts = client.get("/jobs/counts?q=portland", headers=HX)
    assert 'data-status="ALL">1<' in counts.text and 'data-status="FAILED">1<' in counts.text


def test_status_counts_refresh_while_jobs_are_active(app, client, user, jobs):
    _signed_in(client, user.email)
    # Nothing active: the counts do not poll, and a poll already running is stopped (286).
    assert 'hx-trigger="jobs-changed from:body">' in client.get("/jobs").text
    assert client.get("/jobs/counts", headers=HX).status_code == 286
    running = make_job(app, name="Running now")
    _set(app, running, status=JobStatus.PROCESSING)
    page = client.get("/jobs").text
    assert 'hx-trigger="jobs-changed from:body, every 5s"' in page
    counts = client.get("/jobs/counts", headers=HX)
    assert counts.status_code == 200 and 'data-status="PROCESSING">1<' in counts.text
    # The row polls with the status it shows; once the job has changed, its answer tells
    # the page (HX-Trigger), and the counts refresh at once.
    row_url = f"/jobs/{running}/row?shown=PROCESSING"
    assert f'hx-get="{row_url}"' in page
    assert "HX-Trigger" not in client.get(row_url, headers=HX).headers
    _set(app, running, status=JobStatus.COMPLETED)
    assert client.get(row_url, headers=HX).headers["HX-Trigger"] == "jobs-changed"
    after = client.get("/jobs/counts", headers=HX)
    assert after.status_code == 286 and 'data-status="PROCESSING">0<' in after.text
    assert 'data-status="COMPLETED">2<' in after.text


def test_an_admin_text_search_reads_a_bounded_number_of_jobs(app, client, admin, user, jobs):
    """Everyone's jobs are unbounded: an admin's text search without an owner reads the
    newest SCAN_LIMIT of them (a user's own are read through the owner index)."""
    from radar_app import jobsearch

    _signed_in(client, admin.email)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(jobsearch, "SCAN_LIMIT", 2)  # the two newest: statewide and a Feb job
        assert _found(app, client, "q=o", jobs) <= {"statewide", "eugene", "theirs"}
        assert "portland" not in _found(app, client, "q=portland", jobs)
        # With an owner, that user's jobs are all searched.
        assert _found(app, client, f"q=portland&owner={user.email}", jobs) == {"portland"}
