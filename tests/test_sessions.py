"""Signing out revokes the session and remember-me cookies server-side.

Each test copies a signed-in browser's cookies into a second, fresh client first: the
copy works before the sign-out (so the test can fail), and signs nobody in after it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from flask_migrate import upgrade

from radar_app import create_app
from radar_app.extensions import db
from radar_app.models import User
from tests.conftest import PASSWORD, AuthActions, csrf_token_from


def sign_in(client: FlaskClient, email: str, *, remember: bool = False):
    token = csrf_token_from(client.get("/auth/login").text)
    data = {"email": email, "password": PASSWORD, "csrf_token": token}
    if remember:
        data["remember"] = "y"
    response = client.post("/auth/login", data=data)
    assert response.status_code == 302, response.text
    return response


def sign_out(client: FlaskClient) -> None:
    token = AuthActions(client).csrf_token()
    assert client.post("/auth/logout", data={"csrf_token": token}).status_code == 302


def replay(app: Flask, **cookies: str) -> FlaskClient:
    """A fresh browser holding only these cookies."""
    thief = app.test_client()
    for name, value in cookies.items():
        thief.set_cookie(name, value)
    return thief


def signs_in(client: FlaskClient) -> bool:
    """Does the client get its jobs page and API list (True), or the sign-in (False)?"""
    page = client.get("/jobs")
    api = client.get("/api/batch-jobs")
    if page.status_code == 200 and api.status_code == 200:
        return True
    assert page.status_code == 302 and "/auth/login" in page.headers["Location"]
    assert api.status_code == 401
    return False


def test_a_copied_session_cookie_stops_working_at_sign_out(app, client, user):
    sign_in(client, user.email)
    session = client.get_cookie("session").value
    assert signs_in(replay(app, session=session))

    sign_out(client)
    assert not signs_in(replay(app, session=session))
    assert not signs_in(client)


def test_a_replayed_remember_me_cookie_stops_working_at_sign_out(app, client, user):
    sign_in(client, user.email, remember=True)
    remember = client.get_cookie("remember_token").value
    assert signs_in(replay(app, remember_token=remember))

    sign_out(client)
    assert not signs_in(replay(app, remember_token=remember))
    session = client.get_cookie("session")
    assert not signs_in(replay(app, remember_token=remember, session=session.value))


def test_remember_me_lasts_two_weeks_not_a_year(client, user):
    response = sign_in(client, user.email, remember=True)
    cookie = next(c for c in response.headers.getlist("Set-Cookie") if "remember_token=" in c)
    expires = parsedate_to_datetime(cookie.split("Expires=")[1].split(";")[0])
    assert abs(expires - (datetime.now(UTC) + timedelta(days=14))) < timedelta(minutes=5)


def test_a_password_change_ends_every_session(app, client, user):
    sign_in(client, user.email, remember=True)
    cookies = {
        "session": client.get_cookie("session").value,
        "remember_token": client.get_cookie("remember_token").value,
    }
    with app.app_context():
        db.session.get(User, user.id).set_password("a brand new password")
        db.session.commit()
    assert not signs_in(replay(app, **cookies))
    assert not signs_in(client)


def test_revoking_the_api_token_also_signs_the_user_out(app, client, user):
    sign_in(client, user.email, remember=True)
    remember = client.get_cookie("remember_token").value
    result = app.test_cli_runner().invoke(args=["users", "revoke-token", user.email])
    assert result.exit_code == 0, result.output
    assert "signed them out" in result.output
    assert not signs_in(replay(app, remember_token=remember))
    assert not signs_in(client)


def test_signing_out_leaves_other_users_signed_in(app, client, user, other_user):
    other = app.test_client()
    sign_in(other, other_user.email)
    sign_in(client, user.email)
    sign_out(client)
    assert signs_in(other)


def test_a_cookie_with_a_bare_user_id_signs_nobody_in(app, client, user):
    # What sessions issued before migration 0004 carry.
    with client.session_transaction() as session:
        session["_user_id"] = str(user.id)
        session["_fresh"] = True
    assert not signs_in(client)


@pytest.mark.empty_database  # migrated from zero
def test_migration_gives_every_existing_user_their_own_session_token(app_config):
    migrated = create_app(app_config)  # a fresh database: no create_all
    with migrated.app_context():
        upgrade(revision="0003")
        for email in ("a@example.com", "b@example.com"):
            db.session.execute(
                sa.text(
                    "INSERT INTO users (email, password_hash, is_admin, created_at)"
                    " VALUES (:email, 'x', false, CURRENT_TIMESTAMP)"
                ),
                {"email": email},
            )
        db.session.commit()
        upgrade()
        tokens = db.session.scalars(sa.select(User.session_token)).all()
        db.session.remove()
        db.engine.dispose()
    assert len(tokens) == 2 and all(len(t) == 32 for t in tokens) and tokens[0] != tokens[1]
