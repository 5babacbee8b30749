"""Bulk retry and cancel (issue 13, item 2): ticked jobs, a page, or every job matching a
search (at most bulk.BULK_LIMIT), each through the single-job services and each on its
own, answered with what became of every job; on the Jobs page (POST /jobs/bulk, CSRF) and
in the API (POST /api/batch-jobs/bulk)."""

from __future__ import annotations

import re
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from redis.exceptions import RedisError

from radar_app import batches, bulk
from radar_app.extensions import db
from radar_app.models import BatchJob, JobStatus, JobTransition, utcnow
from radar_app.queue import get_queue
from tests.conftest import AuthActions, issue_token
from tests.helpers import job_row, make_job, wait_for

HX = {"HX-Request": "true"}


def _job(app: Flask, name: str, status: JobStatus, email: str = "owner@example.com", **kw: Any):
    """A job of `email`'s in `status` (never run), buying at most 30 records if retried."""
    job_id = make_job(app, email=email, name=name, max_records=30, **kw)
    finished = None if status.is_active else utcnow()
    with app.app_context():
        db.session.execute(
            sa.update(BatchJob)
            .where(BatchJob.job_id == job_id)
            .values(status=status, completed_at=finished)
        )
        db.session.commit()
    return job_id


def _signed_in(client: FlaskClient, email: str = "owner@example.com") -> str:
    """Sign in; the CSRF token of the session."""
    auth = AuthActions(client)
    assert auth.login(email).status_code == 302
    return auth.csrf_token()


def _bulk(client: FlaskClient, token: str | None, htmx: bool = False, **form: Any):
    data = {**form, **({"csrf_token": token} if token else {})}
    return client.post("/jobs/bulk", data=data, headers=HX if htmx else {})


def _summary(html: str) -> dict[str, tuple[str, str]]:
    """The summary table: job id -> (result, why)."""
    rows = re.findall(
        r'<tr data-job-id="([^"]+)" data-result="[^"]+">\s*<td>.*?</td>\s*<td>([^<]*)</td>\s*'
        r"<td>([^<]*)</td>",
        html,
        re.S,
    )
    return {job_id: (result, why) for job_id, result, why in rows}


def _statuses(app: Flask, *job_ids: str) -> list[str]:
    return [job_row(app, job_id).status for job_id in job_ids]


def test_bulk_retry_of_failed_and_cancelled_jobs_a_worker_completes(
    app, client, user, worker, simulator
):
    failed = _job(app, "Failed one", JobStatus.FAILED)
    cancelled = _job(app, "Cancelled one", JobStatus.CANCELLED)
    done = _job(app, "Done one", JobStatus.COMPLETED)
    token = _signed_in(client)
    page = _bulk(client, token, action="retry", scope="ticked", job=[failed, cancelled, done])
    assert page.status_code == 200
    assert "Bulk retry: 2 of 3 jobs retried" in page.text
    assert _summary(page.text) == {
        failed: ("Retried", ""),
        cancelled: ("Retried", ""),
        done: ("Skipped", bulk.NOT_RETRYABLE),
    }
    # A real worker runs both to the end; the completed one was left alone.
    wait_for(
        lambda: _statuses(app, failed, cancelled) == [JobStatus.COMPLETED] * 2,
        timeout=60,
        what="the worker to complete both retried jobs",
    )
    assert job_row(app, failed).success_count == 30
    assert job_row(app, done).attempts == 0
    with app.app_context():
        retries = db.session.scalars(
            sa.select(JobTransition).where(JobTransition.event == "retry")
        ).all()
    assert len(retries) == 2
    assert {(t.actor, t.reason.split(";")[0]) for t in retries} == {
        (user.email, f"Bulk retry by {user.email}")
    }


def test_a_mixed_selection_is_summarised_job_by_job(app, client, user, other_user):
    failed = _job(app, "Failed", JobStatus.FAILED)
    done = _job(app, "Done", JobStatus.COMPLETED)
    queued = _job(app, "Queued", JobStatus.PENDING)
    running = _job(app, "Running", JobStatus.PROCESSING)
    stopping = _job(app, "Stopping", JobStatus.PROCESSING, cancel_requested=True)
    theirs = _job(app, "Their secret job", JobStatus.FAILED, email=other_user.email)
    missing = "f" * 32
    headers = {"Authorization": f"Bearer {issue_token(app, user.email)}"}
    ids = [failed, done, queued, theirs, missing, failed]  # a repeat counts once
    retried = client.post(
        "/api/batch-jobs/bulk", json={"action": "retry", "ids": ids}, headers=headers
    )
    assert retried.status_code == 200
    body = retried.json
    assert (body["action"], body["changed"], body["skipped"]) == ("retry", 1, 4)
    assert body["matching"] is None and body["left_over"] == 0
    assert [(r["id"], r["result"], r["reason"]) for r in body["results"]] == [
        (failed, "retried", None),
        (done, "skipped", bulk.NOT_RETRYABLE),
        (queued, "skipped", bulk.NOT_RETRYABLE),
        (theirs, "skipped", bulk.NOT_YOURS),
        (missing, "skipped", bulk.NOT_YOURS),
    ]
    # Another user's job is answered exactly like one that does not exist: nothing of it.
    theirs_out, missing_out = body["results"][3], body["results"][4]
    assert {**theirs_out, "id": "x"} == {**missing_out, "id": "x"}
    assert theirs_out["name"] is None and "secret" not in retried.text
    assert job_row(app, theirs).status == JobStatus.FAILED

    cancel_ids = [queued, running, stopping, done, theirs]
    cancelled = client.post(
        "/api/batch-jobs/bulk", json={"action": "cancel", "ids": cancel_ids}, headers=headers
    ).json
    assert [(r["result"], r["reason"], r["status"]) for r in cancelled["results"]] == [
        ("cancelled", None, "CANCELLED"),
        ("cancel_requested", None, "PROCESSING"),
        ("skipped", bulk.ALREADY_CANCELLING, "PROCESSING"),
        ("skipped", bulk.ALREADY_FINISHED, "COMPLETED"),
        ("skipped", bulk.NOT_YOURS, None),
    ]
    assert job_row(app, running).cancel_requested
    assert job_row(app, theirs).status == JobStatus.FAILED


def test_another_users_ids_are_skipped_on_the_page_too_and_admins_act_on_any(
    app, client, user, other_user, admin
):
    theirs = _job(app, "Their secret job", JobStatus.FAILED, email=other_user.email)
    token = _signed_in(client)
    page = _bulk(client, token, htmx=True, action="retry", scope="ticked", job=[theirs])
    assert page.status_code == 200
    assert _summary(page.text) == {theirs: ("Skipped", bulk.NOT_YOURS)}
    assert "Their secret job" not in page.text
    assert job_row(app, theirs).status == JobStatus.FAILED
    admin_client = app.test_client()
    admin_token = _signed_in(admin_client, admin.email)
    page = _bulk(admin_client, admin_token, action="retry", scope="ticked", job=[theirs])
    assert _summary(page.text) == {theirs: ("Retried", "")}
    assert job_row(app, theirs).status == JobStatus.PENDING


def test_every_matching_job_is_bounded(app, client, user, monkeypatch):
    monkeypatch.setattr(bulk, "BULK_LIMIT", 3)
    failed = [_job(app, f"Oregon {n}", JobStatus.FAILED) for n in range(5)]
    other = _job(app, "Washington", JobStatus.FAILED)
    done = _job(app, "Oregon done", JobStatus.COMPLETED)
    token = _signed_in(client)
    page = _bulk(client, token, action="retry", scope="matching", q="oregon")
    assert page.status_code == 200
    # The newest three of the five failed Oregon jobs; the completed one is not a match
    # for a retry, and Washington's does not match the search.
    assert set(_summary(page.text)) == set(failed[2:])
    assert "2 more matching jobs were left as they are: at most 3 in one action" in page.text
    assert _statuses(app, *failed) == [JobStatus.FAILED] * 2 + [JobStatus.PENDING] * 3
    assert _statuses(app, other, done) == [JobStatus.FAILED, JobStatus.COMPLETED]
    # The page keeps the search, and says how many match.
    assert 'name="q" value="oregon"' in page.text
    # Again: the next ones.
    again = _bulk(client, token, action="retry", scope="matching", q="oregon")
    assert set(_summary(again.text)) == set(failed[:2]) and "more matching" not in again.text

    # The API: the same bound, and what is left over.
    headers = {"Authorization": f"Bearer {issue_token(app, user.email)}"}
    cancel = client.post(
        "/api/batch-jobs/bulk",
        json={"action": "cancel", "filter": {"q": "oregon", "status": "PENDING"}},
        headers=headers,
    ).json
    assert (cancel["matching"], cancel["left_over"], cancel["limit"]) == (5, 2, 3)
    assert len(cancel["results"]) == 3
    # More ids than the bound: refused whole, nothing changed.
    ids = [failed[0], failed[1], other, done]
    too_many = client.post(
        "/api/batch-jobs/bulk", json={"action": "cancel", "ids": ids}, headers=headers
    )
    assert too_many.status_code == 400
    assert too_many.json["fields"] == {"ids": "Jobs: at most 3 in one action"}
    page = _bulk(client, token, action="retry", scope="ticked", job=ids)
    assert page.status_code == 400 and "Jobs: at most 3 in one action" in page.text
    assert _statuses(app, other, done) == [JobStatus.FAILED, JobStatus.COMPLETED]


def test_bad_requests_are_field_errors(app, client, user):
    failed = _job(app, "Failed", JobStatus.FAILED)
    token = _signed_in(client)
    assert _bulk(client, token, action="delete", job=[failed]).status_code == 400
    nothing = _bulk(client, token, htmx=True, action="retry", scope="ticked")
    assert nothing.status_code == 422 and "Jobs: tick at least one job" in nothing.text
    bad_search = _bulk(client, token, action="retry", scope="matching", created_from="soon")
    assert bad_search.status_code == 400 and "Created from: a date as YYYY-MM-DD" in bad_search.text
    headers = {"Authorization": f"Bearer {issue_token(app, user.email)}"}
    for body, field in [
        ({"action": "delete", "ids": [failed]}, "action"),
        ({"action": "retry", "ids": []}, "ids"),
        ({"action": "retry", "filter": {"status": "bogus"}}, "filter.status"),
        ({"action": "retry", "filter": {"colour": "red"}}, "filter"),
    ]:
        answer = client.post("/api/batch-jobs/bulk", json=body, headers=headers)
        assert answer.status_code == 400, body
        assert any(key.startswith(field) for key in answer.json["fields"]), answer.json
    assert job_row(app, failed).status == JobStatus.FAILED


def test_csrf_is_refused(app, client, user):
    failed = _job(app, "Failed", JobStatus.FAILED)
    _signed_in(client)
    for htmx in (False, True):
        refused = _bulk(client, None, htmx=htmx, action="retry", scope="ticked", job=[failed])
        assert refused.status_code == 400
    forged = _bulk(client, "not-the-token", action="retry", scope="ticked", job=[failed])
    assert forged.status_code == 400
    api = client.post("/api/batch-jobs/bulk", json={"action": "retry", "ids": [failed]})
    assert api.status_code == 400 and api.json["error"].startswith("CSRF check failed")
    assert job_row(app, failed).status == JobStatus.FAILED
    with app.app_context():
        assert get_queue().count == 0


def test_one_failing_job_does_not_stop_the_others(app, client, user, monkeypatch):
    first, second, third = (_job(app, f"Job {n}", JobStatus.FAILED) for n in range(3))
    retry = batches.retry_job

    def broken_for_the_second(session, queue, settings, job, **kwargs):
        if job.job_id == second:
            raise RuntimeError("something unexpected")
        return retry(session, queue, settings, job, **kwargs)

    monkeypatch.setattr(batches, "retry_job", broken_for_the_second)
    token = _signed_in(client)
    page = _bulk(client, token, action="retry", scope="page", page_job=[first, second, third])
    assert _summary(page.text) == {
        first: ("Retried", ""),
        second: ("Skipped", bulk.FAILED_UNEXPECTEDLY),
        third: ("Retried", ""),
    }
    assert "something unexpected" not in page.text
    assert _statuses(app, first, second, third) == [
        JobStatus.PENDING,
        JobStatus.FAILED,
        JobStatus.PENDING,
    ]


def test_jobs_that_could_not_be_queued_are_put_back(app, client, user, monkeypatch):
    jobs = [_job(app, f"Job {n}", JobStatus.FAILED) for n in range(3)]
    attempts: list[str] = []

    def redis_down(queue, job, settings):
        attempts.append(job.job_id)
        raise RedisError("connection refused")

    monkeypatch.setattr(batches, "enqueue_job", redis_down)
    token = _signed_in(client)
    page = _bulk(client, token, action="retry", scope="ticked", job=jobs)
    assert _summary(page.text) == {job_id: ("Skipped", bulk.NOT_QUEUED) for job_id in jobs}
    assert _statuses(app, *jobs) == [JobStatus.FAILED] * 3
    assert len(attempts) == 1  # one refusal is enough: the others are not tried


@pytest.mark.parametrize("scope", ["ticked", "page"])
def test_the_page_offers_ticks_and_scopes(app, client, user, scope):
    failed = _job(app, "Failed", JobStatus.FAILED)
    token = _signed_in(client)
    page = client.get("/jobs").text
    assert f'id="pick-{failed}" name="job" value="{failed}"' in page
    assert f'name="page_job" value="{failed}"' in page
    assert 'name="scope" value="matching"' in page
    form = {"job": [failed]} if scope == "ticked" else {"page_job": [failed]}
    done = _bulk(client, token, htmx=True, action="retry", scope=scope, **form)
    assert done.status_code == 200 and 'id="jobs-main"' in done.text
    assert _summary(done.text) == {failed: ("Retried", "")}


def test_a_read_only_user_gets_no_bulk_controls_and_is_refused(app, client, user):
    failed = _job(app, "Failed", JobStatus.FAILED)
    token = _signed_in(client)
    with app.app_context():
        db.session.execute(
            sa.update(type(user)).where(type(user).id == user.id).values(read_only=True)
        )
        db.session.commit()
    page = client.get("/jobs").text
    assert failed in page  # sees the job
    assert 'id="bulk-form"' not in page and f'id="pick-{failed}"' not in page
    refused = _bulk(client, token, action="retry", scope="ticked", job=[failed])
    assert refused.status_code == 403
    assert job_row(app, failed).status == JobStatus.FAILED
