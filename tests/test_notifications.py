"""The notification poll (GET /notifications and base.html's #notification-poll): toasts
for the user's jobs that finished since the last poll, and a poll that runs only while
the user has a job pending or processing (issue 13, item 7).

The server stops an htmx poll by answering 286; a page of a user with nothing to wait
for renders the poll unarmed (no hx-get, no hx-trigger), so it never polls at all.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from radar_app.config import ConfigError, validate
from radar_app.jobs import routes
from radar_app.models import JobStatus
from tests.conftest import AuthActions
from tests.helpers import make_job
from tests.test_pages import set_status

HX = {"HX-Request": "true"}
KEEP_POLLING, STOP_POLLING = 200, 286
POLL = re.compile(r'<div id="notification-poll"[^>]*>')


@pytest.fixture
def signed_in(client: FlaskClient, auth: AuthActions, user) -> FlaskClient:
    assert auth.login().status_code == 302
    return client


def poll(client: FlaskClient) -> tuple[int, str]:
    response = client.get("/notifications", headers=HX)
    return response.status_code, response.get_data(as_text=True).strip()


def toasts_in(text: str) -> int:
    return text.count('class="toast ')


def poll_element(client: FlaskClient, path: str = "/jobs") -> str:
    page = client.get(path).get_data(as_text=True)
    found = POLL.findall(page)
    assert len(found) == 1, found  # one poll per page
    return found[0]


def is_armed(element: str) -> bool:
    return 'hx-get="/notifications"' in element and 'hx-trigger="load, every 5s"' in element


# ------------------------------------------------------------------------------ access


def test_the_poll_needs_a_signed_in_user(client: FlaskClient) -> None:
    htmx = client.get("/notifications", headers=HX)
    assert htmx.status_code == 401 and htmx.headers["HX-Redirect"].startswith("/auth/login")
    plain = client.get("/notifications")
    assert plain.status_code == 302 and "/auth/login" in plain.headers["Location"]
    # The sign-in page has neither the toast region nor the poll.
    page = client.get("/auth/login").get_data(as_text=True)
    assert 'id="toasts"' not in page and "notification-poll" not in page


# -------------------------------------------------------------- when the page polls at all


def test_no_poll_on_the_pages_of_a_user_with_no_active_job(app: Flask, signed_in) -> None:
    done = make_job(app)
    set_status(app, done, JobStatus.COMPLETED)
    for path in ("/jobs", "/search", f"/jobs/{done}"):
        element = poll_element(signed_in, path)
        assert "hx-get" not in element and "hx-trigger" not in element, path
    # The toast region is there all the same: a live region must exist before it speaks.
    page = signed_in.get("/jobs").get_data(as_text=True)
    assert re.search(r'<div id="toasts" class="toasts" aria-live="polite"', page)


@pytest.mark.parametrize("status", [JobStatus.PENDING, JobStatus.PROCESSING])
def test_a_page_polls_once_while_a_job_is_active(app: Flask, signed_in, status) -> None:
    job_id = make_job(app)
    set_status(app, job_id, status)
    for path in ("/jobs", "/search", f"/jobs/{job_id}"):
        assert is_armed(poll_element(signed_in, path)), path
    assert signed_in.get("/jobs").get_data(as_text=True).count('hx-get="/notifications"') == 1
    assert poll(signed_in) == (KEEP_POLLING, "")


def test_the_poll_interval_is_a_setting(app: Flask, signed_in) -> None:
    make_job(app)
    app.config["NOTIFICATION_POLL_SECONDS"] = 2
    assert 'hx-trigger="load, every 2s"' in poll_element(signed_in)


@pytest.mark.parametrize("name", ["NOTIFICATION_POLL_SECONDS", "TOAST_SECONDS"])
def test_the_poll_and_toast_times_are_at_least_a_second(app: Flask, name: str) -> None:
    validate(app.config)
    with pytest.raises(ConfigError, match=name):
        validate({**app.config, name: 0})


def test_the_poll_stops_when_the_last_active_job_finishes(app: Flask, signed_in) -> None:
    first, second = make_job(app, name="First"), make_job(app, name="Second")
    assert poll(signed_in) == (KEEP_POLLING, "")
    set_status(app, first, JobStatus.COMPLETED, success_count=2000)
    status, text = poll(signed_in)
    assert status == KEEP_POLLING and "First" in text and "2,000 leads" in text
    assert poll(signed_in) == (KEEP_POLLING, "")
    # The poll that finds the last job finished still brings its toast, and stops.
    set_status(app, second, JobStatus.FAILED)
    status, text = poll(signed_in)
    assert status == STOP_POLLING and toasts_in(text) == 1 and "Second" in text
    assert "Failed" in text and f"/jobs/{second}" in text
    assert poll(signed_in) == (STOP_POLLING, "")
    # A new job arms the poll again on the next page.
    make_job(app)
    assert is_armed(poll_element(signed_in))
    assert poll(signed_in) == (KEEP_POLLING, "")


def test_a_job_that_finishes_during_the_last_poll_still_gets_its_toast(
    app: Flask, signed_in, monkeypatch
) -> None:
    job_id = make_job(app, name="Just in time")
    assert poll(signed_in) == (KEEP_POLLING, "")
    asked = routes.has_active_job

    def finishing_as_asked(*args: Any) -> bool:
        # The job finishes while the poll runs, just as it asks about active jobs.
        set_status(app, job_id, JobStatus.COMPLETED)
        return asked(*args)

    monkeypatch.setattr(routes, "has_active_job", finishing_as_asked)
    status, text = poll(signed_in)
    assert status == STOP_POLLING and "Just in time" in text


def test_a_page_polls_for_a_toast_not_shown_yet(app: Flask, signed_in) -> None:
    """The job finished after the user's last poll, and they moved to a page of their own
    before the next one: that page polls (once) to show the toast."""
    job_id = make_job(app, name="Unseen")
    assert poll(signed_in) == (KEEP_POLLING, "")
    set_status(app, job_id, JobStatus.COMPLETED)
    assert is_armed(poll_element(signed_in, "/search"))
    status, text = poll(signed_in)
    assert status == STOP_POLLING and "Unseen" in text
    assert not is_armed(poll_element(signed_in, "/search"))


# ------------------------------------------------------------------------------ toasts


def test_each_finished_job_toasts_once_even_many_at_once(app: Flask, signed_in) -> None:
    jobs = [make_job(app, name=f"Job {n}") for n in range(routes.MAX_TOASTS + 2)]
    assert poll(signed_in) == (KEEP_POLLING, "")
    for job_id in jobs:
        set_status(app, job_id, JobStatus.COMPLETED)
    # A full batch of toasts keeps the poll going for the rest, even with no job active.
    status, text = poll(signed_in)
    assert status == KEEP_POLLING and toasts_in(text) == routes.MAX_TOASTS
    status, rest = poll(signed_in)
    assert status == STOP_POLLING and toasts_in(rest) == 2
    shown = text + rest
    assert all(shown.count(f'/jobs/{job_id}"') == 1 for job_id in jobs)
    assert poll(signed_in) == (STOP_POLLING, "")


def test_a_cancelled_job_gets_no_toast_and_stops_the_poll(app: Flask, signed_in) -> None:
    job_id = make_job(app)
    assert poll(signed_in) == (KEEP_POLLING, "")
    set_status(app, job_id, JobStatus.CANCELLED)
    assert poll(signed_in) == (STOP_POLLING, "")


def test_no_toast_for_a_job_finished_before_the_session_began(
    app: Flask, client, auth, user
) -> None:
    old = make_job(app, name="Old news")
    set_status(app, old, JobStatus.FAILED)
    auth.login()
    # The first page starts the clock: the old failure never pops up, and nothing polls.
    assert not is_armed(poll_element(client))
    # A job started from that page that finishes before any poll still gets its toast.
    quick = make_job(app, name="Quick one")
    set_status(app, quick, JobStatus.COMPLETED)
    assert is_armed(poll_element(client))
    status, text = poll(client)
    assert status == STOP_POLLING and "Quick one" in text and "Old news" not in text


def test_another_users_jobs_never_toast_nor_keep_the_poll_going(
    app: Flask, signed_in, other_user
) -> None:
    theirs = make_job(app, email=other_user.email, name="Not yours")
    assert poll(signed_in) == (STOP_POLLING, "")
    assert not is_armed(poll_element(signed_in))
    mine = make_job(app, name="Yours")
    assert poll(signed_in) == (KEEP_POLLING, "")
    set_status(app, theirs, JobStatus.COMPLETED)
    set_status(app, mine, JobStatus.COMPLETED)
    status, text = poll(signed_in)
    assert status == STOP_POLLING and "Yours" in text and "Not yours" not in text


def test_an_admin_is_told_of_their_own_jobs_only(app: Flask, client, user, admin) -> None:
    """An admin sees everyone's jobs on the Jobs page, but toasts are about their own."""
    owners = make_job(app, name="The owner's")
    AuthActions(client).login(admin.email)
    assert not is_armed(poll_element(client))
    set_status(app, owners, JobStatus.COMPLETED)
    assert poll(client) == (STOP_POLLING, "")
