"""The read-only role: a read-only user sees their own jobs and leads, a viewer (a
read-only admin) sees everyone's and the admin pages, and neither can change anything.

Every state-changing route of the app (read from its url_map, so a new route cannot be
forgotten) is sent by a read-only user and by a viewer, with the body and CSRF token the
authorization matrix (tests/test_authz_matrix.py) sends it with: each is a 403 that says
why, and the database is unchanged. Only signing in and out is let through.
"""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from markupsafe import escape

from radar_app.api.openapi import openapi_spec
from radar_app.extensions import db
from radar_app.models import JobStatus, User
from radar_app.security import READ_ONLY_MESSAGE
from tests.conftest import PASSWORD, AuthActions, csrf_token_from, issue_token, make_user
from tests.helpers import job_row
from tests.test_authz_matrix import (
    API,
    BODIES,
    EMAILS,
    HTMX,
    MATRIX,
    SECRET_NAME,
    Row,
    _endpoint,
    _fingerprint,
    _make_channel,
    _make_job,
    _make_list,
    _make_search,
    _signed_in_client,
)

WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
WRITES = [row for row in MATRIX if row.method in WRITE_METHODS]
# Signing in and out acts on nothing; a read-only user may do both.
SIGN_IN_AND_OUT = {"/auth/login", "/auth/logout"}
ROLES = {"read-only": "owner", "viewer": "admin"}
NAME_IN_HTML = str(escape(SECRET_NAME))  # as Jinja writes it


def set_read_only(app: Flask, email: str, read_only: bool = True) -> None:
    with app.app_context():
        db.session.execute(sa.update(User).where(User.email == email).values(read_only=read_only))
        db.session.commit()


def test_every_state_changing_route_is_checked(app: Flask) -> None:
    """Every (route, method) that can change something is among the rows sent below."""
    routes = {
        (rule.endpoint, method)
        for rule in app.url_map.iter_rules()
        for method in rule.methods & WRITE_METHODS
    }
    checked = {(_endpoint(app, row), row.method) for row in WRITES}
    assert routes - checked == set(), "state-changing routes no read-only test sends"


def test_the_api_document_lists_the_read_only_refusal_of_every_write() -> None:
    for path, item in openapi_spec()["paths"].items():
        for method, operation in item.items():
            if method.upper() in WRITE_METHODS:
                assert "403" in operation["responses"], f"{method} {path}"


def _cells() -> list[Any]:
    cells = []
    for row in WRITES:
        label = f"{row.method} {row.path}" + (" (htmx)" if row.via == HTMX else "")
        for role in ROLES:
            for auth in ("session", "bearer") if row.via == API else ("session",):
                cells.append(pytest.param(row, role, auth, id=f"{label}-{role}-{auth}"))
    return cells


@pytest.mark.parametrize(("row", "role", "auth"), _cells())
def test_a_read_only_user_changes_nothing(
    app: Flask, user: User, run_worker, row: Row, role: str, auth: str
) -> None:
    make_user(app, EMAILS["admin"], admin=True)
    # What the route acts on exists, and would let the user act, were they not read-only.
    job_id = _make_job(app, row.job, run_worker) if row.job else None
    search_id = _make_search(app) if "{search}" in row.path else None
    list_id = _make_list(app) if "{list}" in row.path else ""
    channel_id = _make_channel(app) if "{channel}" in row.path else ""
    path = row.url(job_id, user.id, search_id, list_id, channel_id)
    client, headers = _signed_in_client(app, ROLES[role], auth)
    set_read_only(app, EMAILS[ROLES[role]])  # after signing in: it holds at once

    body = dict(BODIES.get(row.path, {}))
    if row.path == "/auth/login":
        body["password"] = PASSWORD
    kwargs: dict[str, Any] = {}
    if row.via == API:
        if row.method in ("POST", "PUT", "PATCH"):
            kwargs["json"] = body
    else:
        csrf = headers.pop("X-CSRFToken")
        if row.via == HTMX:
            headers.update({"HX-Request": "true", "HX-Current-URL": "http://localhost/jobs"})
            headers["X-CSRFToken"] = csrf
        else:
            body["csrf_token"] = csrf
        kwargs["data"] = body

    before = _fingerprint(app)
    response = client.open(path, method=row.method, headers=headers, **kwargs)
    text = response.get_data(as_text=True)
    response.close()

    if row.path in SIGN_IN_AND_OUT:
        assert response.status_code == 302
        return
    assert response.status_code == 403, text[:500]
    if row.via == API:
        assert response.json == {"error": READ_ONLY_MESSAGE}
    else:
        assert READ_ONLY_MESSAGE in text
        assert NAME_IN_HTML not in text
    assert _fingerprint(app) == before


# ------------------------------------------------------------------------------ reads


def signed_in(app: Flask, email: str) -> FlaskClient:
    client = app.test_client()
    assert AuthActions(client).login(email).status_code == 302
    return client


def test_a_read_only_user_reads_their_own_jobs_and_leads_and_sees_no_actions(
    app, user, other_user, run_worker
):
    done = _make_job(app, "done", run_worker)
    pending = _make_job(app, "pending", run_worker)
    set_read_only(app, user.email)
    client = signed_in(app, user.email)
    bearer = {"Authorization": f"Bearer {issue_token(app, user.email)}"}

    assert NAME_IN_HTML in client.get("/jobs").text
    job_page = client.get(f"/jobs/{done}")
    assert job_page.status_code == 200
    # The page offers no action to be refused (the owner's own page has it).
    assert 'id="save-as-search"' not in job_page.text
    set_read_only(app, user.email, False)
    assert 'id="save-as-search"' in client.get(f"/jobs/{done}").text
    set_read_only(app, user.email)
    assert client.get(f"/jobs/{done}/leads.csv").status_code == 200
    assert client.get("/leads").status_code == 200
    listed = app.test_client().get("/api/batch-jobs", headers=bearer)
    assert listed.status_code == 200 and {done, pending} <= {j["id"] for j in listed.json["items"]}
    # Still their own jobs only.
    theirs = _other_users_job(app, other_user, run_worker)
    assert client.get(f"/jobs/{theirs}").status_code == 404
    assert (
        client.post(
            f"/jobs/{pending}/cancel",
            data={"csrf_token": csrf_token_from(client.get("/jobs").text)},
        ).status_code
        == 403
    )
    assert job_row(app, pending).status == JobStatus.PENDING


def _other_users_job(app: Flask, other: User, run_worker) -> str:
    headers = {"Authorization": f"Bearer {issue_token(app, other.email)}"}
    body = {"criteria": [{"name": "State", "value": ["OR"]}], "max_records": 5}
    response = app.test_client().post("/api/batch-jobs", json=body, headers=headers)
    assert response.status_code == 201
    return str(response.json["id"])


def test_a_viewer_sees_every_users_jobs_and_the_admin_pages_without_their_actions(
    app, user, run_worker
):
    job_id = _make_job(app, "pending", run_worker)
    make_user(app, "viewer@example.com", admin=True)
    set_read_only(app, "viewer@example.com")
    viewer = signed_in(app, "viewer@example.com")

    assert NAME_IN_HTML in viewer.get("/jobs").text
    assert viewer.get(f"/jobs/{job_id}").status_code == 200
    for path in ("/admin/", "/admin/stuck", "/admin/usage", "/admin/users", "/admin/audit"):
        assert viewer.get(path).status_code == 200, path
    users = viewer.get("/admin/users").text
    assert user.email in users and 'id="new-user"' not in users
    page = viewer.get(f"/admin/users/{user.id}").text
    for action in ("Disable", "Reset password", "Issue API token", 'id="role-form"'):
        assert action not in page
    assert 'name="budget"' not in viewer.get("/admin/usage").text


def test_a_read_only_user_can_sign_out(app, user):
    set_read_only(app, user.email)
    client = signed_in(app, user.email)
    token = AuthActions(client).csrf_token()
    response = client.post("/auth/logout", data={"csrf_token": token})
    assert response.status_code == 302 and response.headers["Location"] == "/auth/login"
    assert client.get("/jobs").status_code == 302


def test_lifting_read_only_lets_the_user_act_again(app, user, run_worker):
    job_id = _make_job(app, "pending", run_worker)
    set_read_only(app, user.email)
    client = signed_in(app, user.email)
    token = csrf_token_from(client.get("/jobs").text)
    assert client.post(f"/jobs/{job_id}/cancel", data={"csrf_token": token}).status_code == 403
    set_read_only(app, user.email, False)
    assert client.post(f"/jobs/{job_id}/cancel", data={"csrf_token": token}).status_code == 302
    assert job_row(app, job_id).status == JobStatus.CANCELLED
