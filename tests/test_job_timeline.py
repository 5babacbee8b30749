"""A job's state timeline (issue 13, item 1): every change of its state, when, who made it
(a person, an admin, the worker, recovery, a schedule) and why, on its page and in the API
(GET /api/batch-jobs/<id>/transitions), newest first."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from flask import Flask

from radar_app import schedules, searches, timeline
from radar_app.batches import QueueSettings
from radar_app.extensions import db
from radar_app.jobstate import Event, admin_actor, transition
from radar_app.models import BatchJob, JobStatus, SavedSearch, User, utcnow
from radar_app.queue import get_queue
from radar_app.recovery import mark_failed, requeue
from radar_app.schedules import ScheduleSpec
from radar_app.searches import SearchSpec
from tests.helpers import MULTNOMAH, job_row, make_job


def create(api) -> str:
    response = api.post("/api/batch-jobs", json={"criteria": MULTNOMAH, "name": "Multnomah"})
    assert response.status_code == 201, response.json
    return response.json["id"]


def transitions(api, job_id: str, **query) -> dict:
    response = api.get(f"/api/batch-jobs/{job_id}/transitions", query_string=query)
    assert response.status_code == 200, response.json
    return response.json


def shown_entries(html: str) -> list[tuple[str, str]]:
    """(event, who) of each timeline entry on a page, top to bottom."""
    section = html[html.index('id="job-timeline"') :]
    events = re.findall(r'<li data-event="([a-z_]+)"', section)
    people = re.findall(r'class="timeline-who"[^>]*>([^<]+)<', section)
    return list(zip(events, people, strict=True))


def test_every_event_has_words():
    assert set(Event) <= set(timeline.EVENT_WORDS)


def test_a_run_and_the_owners_cancel_and_retry_read_newest_first(
    app, client, auth, api, user, run_worker, simulator
):
    job_id = create(api)
    assert api.post(f"/api/batch-jobs/{job_id}/cancel").status_code == 202
    assert api.post(f"/api/batch-jobs/{job_id}/retry").status_code == 202
    run_worker()
    assert job_row(app, job_id).status == JobStatus.COMPLETED

    body = transitions(api, job_id)
    assert body["total"] == 5 and body["page"] == 1
    assert [(i["event"], i["actor"]) for i in body["items"]] == [
        ("complete", "worker"),
        ("claim", "worker"),
        ("retry", user.email),
        ("cancel_queued", user.email),
        ("create", user.email),
    ]
    complete, claim, retry, cancel, created = body["items"]
    assert (complete["from_status"], complete["to_status"]) == ("PROCESSING", "COMPLETED")
    assert complete["description"] == "Completed: every record stored"
    assert retry["description"] == "Retried: queued again to resume from its checkpoint"
    assert retry["reason"] == "Retry requested; resuming at record 1"
    assert cancel["reason"] == "Cancelled before it started"
    assert (created["from_status"], created["to_status"]) == (None, "PENDING")
    times = [datetime.fromisoformat(i["at"]) for i in body["items"]]
    assert times == sorted(times, reverse=True)

    auth.login()
    page = client.get(f"/jobs/{job_id}").text
    assert shown_entries(page) == [
        ("complete", "worker"),
        ("claim", "worker"),
        ("retry", user.email),
        ("cancel_queued", user.email),
        ("create", user.email),
    ]
    assert "Cancelled before a worker took it" in page
    assert "(Pending → Cancelled)" in page
    assert "5 entries" in page


def test_admin_and_recovery_read_as_such(app, client, auth, admin, user):
    job_id = make_job(app, status=JobStatus.PROCESSING, heartbeat_at=utcnow())
    with app.app_context():
        job = db.session.scalar(sa.select(BatchJob).where(BatchJob.job_id == job_id))
        assert requeue(
            db.session,
            get_queue(),
            QueueSettings.from_config(app.config),
            job,
            "Worker stopped answering",
        )
        assert mark_failed(db.session, job, "Stuck for an hour", actor=admin_actor(admin.email))

    auth.login(admin.email)
    page = client.get(f"/jobs/{job_id}").text
    assert shown_entries(page) == [
        ("mark_failed", "admin@example.com (admin)"),
        ("requeue", "recovery"),
        ("create", user.email),
    ]
    assert "Stuck for an hour" in page and "Worker stopped answering" in page


def test_a_job_made_by_a_schedule_reads_as_made_by_a_schedule(app, client, auth, api, user):
    with app.app_context():
        owner = db.session.get(User, user.id)
        saved = searches.save(db.session, owner, SearchSpec(name="Weekly pull", criteria=MULTNOMAH))
        schedule = schedules.save_schedule(db.session, saved, ScheduleSpec("daily", "UTC"))
        schedule.created_at = datetime(2026, 1, 1, tzinfo=UTC)
        db.session.commit()
        (job,) = schedules.fire_due(
            db.session,
            get_queue(),
            QueueSettings.from_config(app.config),
            price_per_export=app.config["PRICE_PER_EXPORT"],
            now=datetime(2026, 1, 2, 10, tzinfo=UTC),
        )
        job_id = job.job_id

    (created,) = transitions(api, job_id)["items"]
    assert (created["event"], created["actor"]) == ("create", "schedule")
    assert created["actor_description"] == "a schedule"
    assert created["reason"] == "Scheduled run of the saved search “Weekly pull”"

    auth.login()
    page = client.get(f"/jobs/{job_id}").text
    assert shown_entries(page) == [("create", "a schedule")]

    # The same saved search run by hand is the owner's.
    response = api.post(f"/api/searches/{saved_id(app, 'Weekly pull')}/jobs")
    assert response.status_code == 201, response.json
    (by_hand,) = transitions(api, response.json["id"])["items"]
    assert by_hand["actor"] == user.email
    assert by_hand["reason"] == "Ran the saved search “Weekly pull”"


def saved_id(app: Flask, name: str) -> str:
    with app.app_context():
        return db.session.scalar(sa.select(SavedSearch.search_id).where(SavedSearch.name == name))


def test_a_long_history_is_paged_newest_first_on_the_page_and_in_the_api(
    app, client, auth, api, user
):
    job_id = make_job(app, status=JobStatus.PROCESSING, heartbeat_at=utcnow())
    with app.app_context():
        job = db.session.scalar(sa.select(BatchJob).where(BatchJob.job_id == job_id))
        for n in range(20):
            assert transition(
                db.session, job, Event.REQUEST_CANCEL, actor=user.email, reason=f"ask {n}"
            )

    first = transitions(api, job_id, per_page=10)
    assert (first["total"], first["per_page"]) == (21, 10)
    assert [i["reason"] for i in first["items"]] == [f"ask {n}" for n in range(19, 9, -1)]
    last = transitions(api, job_id, per_page=10, page=3)
    assert [i["event"] for i in last["items"]] == ["create"]
    assert transitions(api, job_id, per_page=10, page=4)["items"] == []
    assert api.get(f"/api/batch-jobs/{job_id}/transitions?page=0").status_code == 400

    auth.login()
    page = client.get(f"/jobs/{job_id}").text
    assert len(shown_entries(page)) == 15
    assert "Page 1 of 2 · 21 entries" in page
    older = client.get(f"/jobs/{job_id}?timeline_page=2").text
    assert [e for e, _ in shown_entries(older)] == ["request_cancel"] * 5 + ["create"]
    fragment = client.get(f"/jobs/{job_id}/timeline?page=2").text
    assert fragment.lstrip().startswith('<section id="job-timeline"')
    assert [e for e, _ in shown_entries(fragment)] == ["request_cancel"] * 5 + ["create"]
    # A state that does not change is not shown as a change.
    assert "(Processing → Processing)" not in page
    assert client.get(f"/jobs/{job_id}?timeline_page=x").status_code == 400
    assert client.get(f"/jobs/{job_id}/timeline?page=0").status_code == 400


@pytest.mark.parametrize("path", ["/jobs/{}/timeline", "/api/batch-jobs/{}/transitions"])
def test_another_users_timeline_is_not_found_and_an_admin_sees_it(
    app, client, auth, user, other_user, admin, path
):
    job_id = make_job(app)
    auth.login(other_user.email)
    assert client.get(path.format(job_id)).status_code == 404
    client.post("/auth/logout", data={"csrf_token": auth.csrf_token()})
    auth.login(admin.email)
    assert client.get(path.format(job_id)).status_code == 200


def test_signed_out_gets_no_timeline(app, client, user):
    job_id = make_job(app)
    assert client.get(f"/jobs/{job_id}/timeline").status_code in (302, 401)
    assert client.get(f"/api/batch-jobs/{job_id}/transitions").status_code == 401
