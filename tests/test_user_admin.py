"""User admin in the web UI (/admin/users): create, disable and enable, reset a password,
issue and revoke the API token, set the role and the budget; bad input stores nothing;
an admin cannot lock themselves out; the CLI's changes are audited too."""

from __future__ import annotations

import re
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from radar_app.extensions import db
from radar_app.models import AuditEvent, User
from tests.conftest import PASSWORD, AuthActions, csrf_token_from, issue_token, make_user
from tests.test_sessions import replay, sign_in, signs_in

SECRET = re.compile(r'<code class="mono" id="secret">([^<]+)</code>')


def admin_client(app: Flask, email: str = "admin@example.com") -> FlaskClient:
    client = app.test_client()
    assert AuthActions(client).login(email).status_code == 302
    return client


def post(client: FlaskClient, path: str, **data: Any):
    """A form post from the admin's own page, with its CSRF token."""
    token = csrf_token_from(client.get("/admin/users").text)
    return client.post(path, data={**data, "csrf_token": token})


def row(app: Flask, email: str) -> User | None:
    with app.app_context():
        user = db.session.scalar(sa.select(User).where(User.email == email))
        if user is not None:
            db.session.expunge(user)
        return user


def audit_rows(app: Flask) -> list[tuple[str, str, str | None, str]]:
    with app.app_context():
        return [
            tuple(r)
            for r in db.session.execute(
                sa.select(
                    AuditEvent.actor, AuditEvent.action, AuditEvent.target_email, AuditEvent.detail
                ).order_by(AuditEvent.id)
            )
        ]


def try_sign_in(app: Flask, email: str, password: str):
    client = app.test_client()
    token = csrf_token_from(client.get("/auth/login").text)
    return client.post(
        "/auth/login", data={"email": email, "password": password, "csrf_token": token}
    )


# ------------------------------------------------------------------------------ create


def test_a_generated_password_is_shown_once_and_signs_the_new_user_in(app, admin):
    client = admin_client(app)
    response = post(client, "/admin/users", email=" New.Person@Example.com ", role="user")

    assert response.status_code == 201
    assert response.headers["Cache-Control"] == "no-store"
    password = SECRET.search(response.text).group(1)
    assert len(password) >= 12
    created = row(app, "new.person@example.com")
    assert created is not None and created.role == "user" and not created.is_admin
    assert password not in created.password_hash
    # Shown once: the user's page does not show it again.
    assert password not in client.get(f"/admin/users/{created.id}").text
    assert try_sign_in(app, "new.person@example.com", password).status_code == 302
    assert audit_rows(app) == [
        (
            "admin@example.com",
            "user_created",
            "new.person@example.com",
            "role user; password generated",
        )
    ]
    listed = client.get("/admin/users").text
    assert "new.person@example.com" in listed and password not in listed


def test_a_typed_password_and_the_read_only_admin_role(app, admin):
    client = admin_client(app)
    response = post(
        client,
        "/admin/users",
        email="viewer@example.com",
        role="admin",
        read_only="y",
        password="typed password 1",
    )
    assert response.status_code == 302
    created = row(app, "viewer@example.com")
    assert response.headers["Location"] == f"/admin/users/{created.id}"
    assert (created.is_admin, created.read_only, created.role) == (True, True, "viewer")
    assert "typed password 1" not in client.get(response.headers["Location"]).text
    assert try_sign_in(app, "viewer@example.com", "typed password 1").status_code == 302
    assert audit_rows(app)[-1][3] == "role viewer; password set by admin@example.com"


@pytest.mark.parametrize(
    ("form", "field", "message"),
    [
        ({"email": "not-an-email"}, "email", "Enter an email address like name@example.com"),
        ({"email": ""}, "email", "Enter an email address."),
        ({"email": "a\x00b@example.com"}, "email", "Enter an email address like"),
        ({"email": "x" * 250 + "@example.com"}, "email", "Use at most 254 characters."),
        ({"email": "owner@example.com"}, "email", "already exists"),
        ({"email": " OWNER@Example.com"}, "email", "already exists"),
        ({"password": "short"}, "password", "Use 8 to 200 characters."),
        ({"password": "x" * 201}, "password", "Use 8 to 200 characters."),
        ({"role": "root"}, "role", "Not a valid choice"),
    ],
)
def test_bad_input_is_a_400_with_the_field_error_and_stores_nothing(
    app, admin, user, form, field, message
):
    client = admin_client(app)
    before = _users(app)
    body = {"email": "fresh@example.com", "role": "user", **form}
    response = post(client, "/admin/users", **body)

    assert response.status_code == 400
    assert message in response.text
    assert f'id="{field}-error"' in response.text
    assert _users(app) == before
    assert audit_rows(app) == []


def _users(app: Flask) -> list[tuple[Any, ...]]:
    with app.app_context():
        return [tuple(r) for r in db.session.execute(sa.select(User.email, User.is_admin))]


def test_an_unknown_user_is_a_404(app, admin):
    client = admin_client(app)
    assert client.get("/admin/users/999999").status_code == 404
    assert post(client, "/admin/users/999999/disable").status_code == 404
    assert client.get("/admin/users/99999999999").status_code == 404


# -------------------------------------------------------------------- disable, enable


def test_disabling_signs_the_user_out_everywhere_and_refuses_their_token(app, admin, user):
    browser = app.test_client()
    sign_in(browser, user.email, remember=True)
    remember = browser.get_cookie("remember_token").value
    token = issue_token(app, user.email)
    bearer = {"Authorization": f"Bearer {token}"}
    assert signs_in(browser) and signs_in(replay(app, remember_token=remember))
    # (A client with a remember-me cookie is never asked for its Bearer token.)
    assert app.test_client().get("/api/batch-jobs", headers=bearer).status_code == 200

    response = post(admin_client(app), f"/admin/users/{user.id}/disable")
    assert response.status_code == 302

    assert row(app, user.email).disabled_at is not None
    # The signed-in browser is signed out on its next request, the remember-me cookie too.
    assert not signs_in(browser)
    assert not signs_in(replay(app, remember_token=remember))
    refused = app.test_client().get("/api/batch-jobs", headers=bearer)
    assert refused.status_code == 401 and refused.json == {"error": "Authentication required"}


def test_a_disabled_user_cannot_sign_in_and_the_answer_ignores_the_password(app, admin, user):
    post(admin_client(app), f"/admin/users/{user.id}/disable")
    right = try_sign_in(app, user.email, PASSWORD)
    wrong = try_sign_in(app, user.email, "not the password")
    for response in (right, wrong):
        assert response.status_code == 403
        assert "This account is disabled. Ask an administrator to enable it." in response.text
    assert _without_csrf(right.text) == _without_csrf(wrong.text)


def _without_csrf(html: str) -> str:
    html = re.sub(r'name="csrf_token"[^>]*value="[^"]+"', "", html)
    return re.sub(r'"X-CSRFToken": "[^"]+"', "", html)


def test_enabling_lets_the_user_sign_in_again_but_revives_no_old_session(app, admin, user):
    browser = app.test_client()
    sign_in(browser, user.email)
    admin = admin_client(app)
    post(admin, f"/admin/users/{user.id}/disable")
    assert post(admin, f"/admin/users/{user.id}/enable").status_code == 302

    assert row(app, user.email).disabled_at is None
    assert not signs_in(browser)
    assert try_sign_in(app, user.email, PASSWORD).status_code == 302
    assert [r[1] for r in audit_rows(app)] == ["user_disabled", "user_enabled"]


# ------------------------------------------------------------- password and API token


def test_a_reset_password_is_shown_once_and_ends_the_users_sessions(app, admin, user):
    browser = app.test_client()
    sign_in(browser, user.email)
    response = post(admin_client(app), f"/admin/users/{user.id}/password")

    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
    password = SECRET.search(response.text).group(1)
    assert not signs_in(browser)
    assert try_sign_in(app, user.email, PASSWORD).status_code == 401
    assert try_sign_in(app, user.email, password).status_code == 302
    assert audit_rows(app) == [
        (
            "admin@example.com",
            "password_reset",
            user.email,
            "new password generated; signed out everywhere",
        )
    ]


def test_an_admin_resetting_their_own_password_stays_signed_in(app, admin):
    client = admin_client(app)
    response = post(client, f"/admin/users/{admin.id}/password")
    assert response.status_code == 200
    assert client.get("/admin/users").status_code == 200
    assert try_sign_in(app, admin.email, SECRET.search(response.text).group(1)).status_code == 302


def test_an_issued_token_is_shown_once_stored_hashed_replaces_the_old_and_can_be_revoked(
    app, admin, user
):
    client = admin_client(app)
    first = SECRET.search(post(client, f"/admin/users/{user.id}/token").text).group(1)
    response = post(client, f"/admin/users/{user.id}/token")
    assert response.headers["Cache-Control"] == "no-store"
    second = SECRET.search(response.text).group(1)
    api = app.test_client()

    def answer(token: str) -> int:
        return api.get("/api/batch-jobs", headers={"Authorization": f"Bearer {token}"}).status_code

    assert (answer(first), answer(second)) == (401, 200)
    stored = row(app, user.email).api_token_hash
    assert stored and second not in stored and second.removeprefix("rdr_") not in stored
    assert second not in client.get(f"/admin/users/{user.id}").text

    assert post(client, f"/admin/users/{user.id}/token/revoke").status_code == 302
    assert answer(second) == 401
    assert row(app, user.email).api_token_hash is None
    assert [r[1:] for r in audit_rows(app)] == [
        ("token_issued", user.email, "new API token"),
        ("token_issued", user.email, "new API token; the previous one revoked"),
        ("token_revoked", user.email, "API token revoked"),
    ]
    assert all(first not in r[3] and second not in r[3] for r in audit_rows(app))


# --------------------------------------------------------------------- role and budget


def test_granting_admin_and_read_only(app, admin, user, other_user):
    client = admin_client(app)
    owner = app.test_client()
    sign_in(owner, user.email)
    assert owner.get("/admin/").status_code == 403

    assert post(client, f"/admin/users/{user.id}/role", role="admin").status_code == 302
    assert owner.get("/admin/").status_code == 200
    post(client, f"/admin/users/{user.id}/role", role="admin", read_only="y")
    assert row(app, user.email).role == "viewer"
    post(client, f"/admin/users/{user.id}/role", role="user")
    assert row(app, user.email).role == "user"
    assert owner.get("/admin/").status_code == 403
    # An admin may demote another admin; nothing changes, nothing is recorded.
    assert post(client, f"/admin/users/{user.id}/role", role="user").status_code == 302
    assert [r[3] for r in audit_rows(app)] == [
        "role user -> admin",
        "role admin -> viewer",
        "role viewer -> user",
    ]
    bad = post(client, f"/admin/users/{user.id}/role", role="superuser")
    assert bad.status_code == 400 and "Not a valid choice" in bad.text
    assert row(app, user.email).role == "user"


@pytest.mark.parametrize(
    ("path", "data", "message"),
    [
        ("disable", {}, "You cannot disable your own account; ask another admin."),
        ("role", {"role": "user"}, "You cannot remove your own admin role"),
        ("role", {"role": "admin", "read_only": "y"}, "You cannot make your own account read-only"),
    ],
)
def test_an_admin_cannot_lock_themselves_out(app, admin, path, data, message):
    client = admin_client(app)
    response = post(client, f"/admin/users/{admin.id}/{path}", **data)
    assert response.status_code == 409
    assert message in response.text
    mine = row(app, admin.email)
    assert (mine.is_admin, mine.read_only, mine.disabled_at) == (True, False, None)
    assert audit_rows(app) == []
    assert client.get("/admin/users").status_code == 200


def test_an_admin_may_disable_another_admin(app, admin):
    second = make_user(app, "second-admin@example.com", admin=True)
    assert post(admin_client(app), f"/admin/users/{second.id}/disable").status_code == 302
    assert row(app, second.email).disabled_at is not None


def test_the_budget_from_the_users_page_is_audited_and_bad_input_stores_nothing(app, admin, user):
    client = admin_client(app)
    response = post(client, f"/admin/users/{user.id}/budget", budget="5,000", back="user")
    assert response.status_code == 302
    assert response.headers["Location"] == f"/admin/users/{user.id}"
    bad = post(client, f"/admin/users/{user.id}/budget", budget="lots", back="user")
    assert bad.status_code == 400
    assert "Enter a whole number of records" in bad.text and 'id="budget-form"' in bad.text
    # The Purchases page's form, the same route.
    assert post(client, f"/admin/users/{user.id}/budget", budget="10000").headers["Location"] == (
        "/admin/usage"
    )
    post(client, f"/admin/users/{user.id}/budget", budget="")
    assert row(app, user.email).monthly_export_budget is None
    assert [r[3] for r in audit_rows(app)] == [
        "budget none -> 5,000 records/month",
        "budget 5,000 -> 10,000 records/month",
        "budget 10,000 records/month -> none",
    ]


def test_the_list_shows_each_users_role_state_budget_and_token(app, admin, user, other_user):
    client = admin_client(app)
    issue_token(app, user.email)
    post(client, f"/admin/users/{user.id}/budget", budget="7000")
    post(client, f"/admin/users/{other_user.id}/disable")
    post(client, f"/admin/users/{other_user.id}/role", role="user", read_only="y")
    page = client.get("/admin/users").text
    owner_row = re.search(rf'<tr id="user-{user.id}">(.*?)</tr>', page, re.S).group(1)
    other_row = re.search(rf'<tr id="user-{other_user.id}">(.*?)</tr>', page, re.S).group(1)
    assert "7,000" in owner_row and ">yes<" in owner_row and "active" in owner_row
    assert 'data-role="read-only"' in other_row and "disabled" in other_row
    assert ">no<" in other_row


# ------------------------------------------------------------------------------- CLI


def test_the_cli_user_commands_are_audited_as_cli(app):
    runner = app.test_cli_runner()
    email = "cli-made@example.com"
    for args in (
        ["create", email, "--password", PASSWORD, "--read-only"],
        ["token", email],
        ["revoke-token", email],
        ["budget", email, "2500"],
        ["disable", email],
        ["enable", email],
    ):
        result = runner.invoke(args=["users", *args])
        assert result.exit_code == 0, result.output
    assert row(app, email).role == "read-only"
    assert audit_rows(app) == [
        ("cli", "user_created", email, "role read-only; password set by the command line"),
        ("cli", "token_issued", email, "new API token"),
        ("cli", "token_revoked", email, "API token revoked; signed out everywhere"),
        ("cli", "budget_changed", email, "budget none -> 2,500 records/month"),
        ("cli", "user_disabled", email, "disabled; signed out everywhere"),
        ("cli", "user_enabled", email, "enabled"),
    ]
    duplicate = runner.invoke(args=["users", "create", email, "--password", PASSWORD])
    assert duplicate.exit_code != 0 and "already exists" in duplicate.output
    assert len(audit_rows(app)) == 6
