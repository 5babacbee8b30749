"""The admin audit page (/admin/audit): people's cancels, retries, requeues and
mark-faileds read from the jobs' state history, and every user and budget change from
audit_events; newest first, keyset pages, filtered by actor and kind."""

from __future__ import annotations

import html
import re
from datetime import timedelta

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from radar_app import recovery
from radar_app.batches import QueueSettings
from radar_app.extensions import db
from radar_app.jobstate import RECOVERY
from radar_app.models import AuditEvent, BatchJob, JobTransition, User, utcnow
from radar_app.queue import get_queue
from tests.conftest import AuthActions, csrf_token_from, make_user
from tests.helpers import make_job

ROW = re.compile(r'<tr data-action="([a-z_]+)">(.*?)</tr>', re.S)
CELL = re.compile(r"<td[^>]*>(.*?)</td>", re.S)
TAG = re.compile(r"<[^>]+>")


def signed_in(app: Flask, email: str) -> FlaskClient:
    client = app.test_client()
    assert AuthActions(client).login(email).status_code == 302
    return client


def post(client: FlaskClient, path: str, **data: str):
    token = csrf_token_from(client.get("/jobs").text)
    return client.post(path, data={**data, "csrf_token": token})


def audit(client: FlaskClient, **args: str) -> list[dict[str, str]]:
    """The audit page's rows: action code, actor, label, target (and its link), detail."""
    response = client.get("/admin/audit", query_string=args)
    assert response.status_code == 200, response.text[:500]
    rows = []
    for action, body in ROW.findall(response.text):
        when, actor, label, target, detail = CELL.findall(body)
        link = re.search(r'href="([^"]+)"', target)
        rows.append(
            {
                "action": action,
                "actor": html.unescape(actor),
                "label": label,
                "target": html.unescape(TAG.sub("", target)),
                "link": link.group(1) if link else "",
                "detail": html.unescape(detail),
            }
        )
    return rows


@pytest.fixture
def admin_client(app, admin) -> FlaskClient:
    return signed_in(app, admin.email)


def test_every_user_change_shows_with_its_actor_and_detail(app, admin_client, user):
    path = f"/admin/users/{user.id}"
    created = post(admin_client, "/admin/users", email="made@example.com", role="user")
    secrets = [re.search(r'id="secret">([^<]+)<', created.text).group(1)]
    post(admin_client, f"{path}/disable")
    post(admin_client, f"{path}/enable")
    reset = post(admin_client, f"{path}/password")
    secrets.append(re.search(r'id="secret">([^<]+)<', reset.text).group(1))
    token = post(admin_client, f"{path}/token")
    secrets.append(re.search(r'id="secret">([^<]+)<', token.text).group(1))
    post(admin_client, f"{path}/token/revoke")
    post(admin_client, f"{path}/budget", budget="5000")
    post(admin_client, f"{path}/budget", budget="10,000")
    post(admin_client, f"{path}/role", role="admin", read_only="y")

    rows = audit(admin_client)
    assert [(r["action"], r["actor"], r["target"], r["detail"]) for r in rows] == [
        ("role_changed", "admin@example.com", user.email, "role user -> viewer"),
        ("budget_changed", "admin@example.com", user.email, "budget 5,000 -> 10,000 records/month"),
        ("budget_changed", "admin@example.com", user.email, "budget none -> 5,000 records/month"),
        ("token_revoked", "admin@example.com", user.email, "API token revoked"),
        ("token_issued", "admin@example.com", user.email, "new API token"),
        (
            "password_reset",
            "admin@example.com",
            user.email,
            "new password generated; signed out everywhere",
        ),
        ("user_enabled", "admin@example.com", user.email, "enabled"),
        ("user_disabled", "admin@example.com", user.email, "disabled; signed out everywhere"),
        ("user_created", "admin@example.com", "made@example.com", "role user; password generated"),
    ]
    assert rows[0]["label"] == "Role changed" and rows[0]["link"] == path
    page = admin_client.get("/admin/audit").text
    assert all(secret not in page for secret in secrets)
    # Filters: by kind, and by actor.
    assert {r["action"] for r in audit(admin_client, kind="budget")} == {"budget_changed"}
    assert len(audit(admin_client, kind="user")) == 7
    assert audit(admin_client, actor="owner@example.com") == []
    assert len(audit(admin_client, actor=" Admin@Example.com ")) == 9


def _queue_settings(app: Flask) -> QueueSettings:
    return QueueSettings.from_config(app.config)


def test_peoples_job_actions_come_from_the_state_history_and_link_to_the_job(
    app, admin_client, user, run_worker
):
    job_id = make_job(app, name="Audited job")
    owner = signed_in(app, user.email)
    assert post(owner, f"/jobs/{job_id}/cancel").status_code == 302
    assert post(admin_client, f"/jobs/{job_id}/retry").status_code == 302
    assert post(admin_client, f"/admin/jobs/{job_id}/requeue").status_code == 302
    with app.app_context():
        job = db.session.scalar(sa.select(BatchJob).where(BatchJob.job_id == job_id))
        assert recovery.requeue(
            db.session, get_queue(), _queue_settings(app), job, "Worker lost", actor=RECOVERY
        )
    assert post(admin_client, f"/admin/jobs/{job_id}/fail").status_code == 302
    # A job a worker runs start to end: its claim and completion are nobody's action.
    done_id = make_job(app, name="Run by a worker", max_records=5)
    with app.app_context():
        done = db.session.scalar(sa.select(BatchJob).where(BatchJob.job_id == done_id))
        recovery.requeue(db.session, get_queue(), _queue_settings(app), done, "Start it")
    run_worker()

    rows = audit(admin_client)
    assert [(r["action"], r["actor"], r["detail"]) for r in rows] == [
        ("mark_failed", "admin:admin@example.com", "Marked failed by admin@example.com"),
        ("requeue", "admin:admin@example.com", "Requeued by admin@example.com"),
        ("retry", "admin@example.com", "Retry requested; resuming at record 1"),
        ("cancel_queued", "owner@example.com", "Cancelled before it started"),
    ]
    assert {(r["target"], r["link"]) for r in rows} == {("Audited job", f"/jobs/{job_id}")}
    # Read from job_transitions: nothing was copied into audit_events.
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(AuditEvent)) == 0

    automatic = audit(admin_client, automatic="1")
    assert [(r["action"], r["actor"]) for r in automatic if r["actor"] == RECOVERY] == [
        ("requeue", RECOVERY),
        ("requeue", RECOVERY),
    ]
    assert {r["action"] for r in automatic} <= {
        "mark_failed",
        "requeue",
        "retry",
        "cancel_queued",
    }
    assert [r["action"] for r in audit(admin_client, kind="cancel")] == ["cancel_queued"]
    assert [r["actor"] for r in audit(admin_client, actor="admin@example.com")] == [
        "admin:admin@example.com",
        "admin:admin@example.com",
        "admin@example.com",
    ]


def test_pages_walk_every_row_once_newest_first_even_with_equal_times(app, admin_client, user):
    """60 user changes and 60 job cancels, all at one instant: the keyset (time, source,
    id) still pages through each exactly once."""
    job_id = make_job(app)
    at = utcnow() - timedelta(hours=1)
    with app.app_context():
        job = db.session.scalar(sa.select(BatchJob).where(BatchJob.job_id == job_id))
        target = db.session.get(User, user.id)
        for n in range(60):
            db.session.add(
                AuditEvent(
                    created_at=at,
                    actor="cli",
                    action="budget_changed",
                    target=target,
                    target_email=target.email,
                    detail=f"user change {n}",
                )
            )
            db.session.add(
                JobTransition(
                    batch_job_id=job.id,
                    created_at=at,
                    from_status="PENDING",
                    to_status="PENDING",
                    event="request_cancel",
                    actor=user.email,
                    reason=f"job change {n}",
                )
            )
        db.session.commit()

    seen: list[str] = []
    url = "/admin/audit"
    pages = 0
    while url:
        response = admin_client.get(url)
        assert response.status_code == 200
        seen += [html.unescape(CELL.findall(body)[4]) for _, body in ROW.findall(response.text)]
        more = re.search(r'id="next-page" rel="next" href="([^"]+)"', response.text)
        url = html.unescape(more.group(1)) if more else ""
        pages += 1
    assert pages == 3
    expected = [f"user change {n}" for n in reversed(range(60))] + [
        f"job change {n}" for n in reversed(range(60))
    ]
    assert seen == expected


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"kind": "everything"}, "Pick one of the kinds in the list."),
        ({"after": "not-a-cursor"}, "Not a page of the audit list"),
        ({"after": "999999999999999999-j-1"}, "Not a page of the audit list"),
        ({"after": "1-x-1"}, "Not a page of the audit list"),
        ({"after": "1-u-2147483648"}, "Not a page of the audit list"),
        ({"actor": "a\x00b"}, "Enter an email address, or cli"),
    ],
)
def test_bad_filters_are_a_400_that_says_why(app, admin_client, args, message):
    response = admin_client.get("/admin/audit", query_string=args)
    assert response.status_code == 400
    assert message in response.text


def test_only_admins_and_viewers_see_the_audit_and_users_pages(app, user, admin):
    owner = signed_in(app, user.email)
    for path in ("/admin/audit", "/admin/users", f"/admin/users/{admin.id}"):
        assert owner.get(path).status_code == 403
        anonymous = app.test_client().get(path)
        assert anonymous.status_code == 302 and "/auth/login" in anonymous.headers["Location"]
    make_user(app, "viewer@example.com", admin=True)
    with app.app_context():
        db.session.execute(
            sa.update(User).where(User.email == "viewer@example.com").values(read_only=True)
        )
        db.session.commit()
    viewer = signed_in(app, "viewer@example.com")
    assert viewer.get("/admin/audit").status_code == 200
    assert viewer.get("/admin/users").status_code == 200


@pytest.mark.parametrize("cursor", ["99999999999999999-u-2147483647", "0-j-0"])
def test_a_cursor_at_either_end_of_its_range_is_a_page(app, admin_client, cursor):
    response = admin_client.get("/admin/audit", query_string={"after": cursor})
    assert response.status_code == 200
