"""Flask-Login wiring: session users for pages, Bearer tokens for the API."""

from __future__ import annotations

import hmac

import sqlalchemy as sa
from flask import Flask, Request, jsonify, redirect, request, url_for
from werkzeug.wrappers import Response

from radar_app.auth.tokens import hash_token
from radar_app.extensions import db, login_manager
from radar_app.models import User


def init_app(app: Flask) -> None:
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.login_message = "Please sign in to continue."
    login_manager.login_message_category = "info"
    # The remember-me cookie signs its holder in for REMEMBER_COOKIE_DURATION: Secure
    # whenever the session cookie is (an HTTPS deployment), unless set explicitly.
    app.config.setdefault("REMEMBER_COOKIE_SECURE", app.config["SESSION_COOKIE_SECURE"])


@login_manager.user_loader
def load_user(user_id: str) -> User | None:
    # A request carrying a Bearer token is that token's user alone (load_user_from_request):
    # a session cookie riding along must neither stand in for a bad token nor let the
    # call skip the API's CSRF check, which exempts Bearer calls.
    if bearer_token(request) is not None:
        return None
    # user_id is User.get_id(): "<id>:<session token>". A cookie from before a sign-out
    # (or from before the token existed: a bare id) carries a token that no longer matches.
    raw_id, _, token = user_id.partition(":")
    if not raw_id.isascii() or not raw_id.isdigit() or not token:
        return None
    user = db.session.get(User, int(raw_id))
    if user is None or not user.session_token:
        return None
    if not hmac.compare_digest(user.session_token.encode(), token.encode()):
        return None
    return user


def bearer_token(req: Request) -> str | None:
    header = req.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


@login_manager.request_loader
def load_user_from_request(req: Request) -> User | None:
    token = bearer_token(req)
    if token is None:
        return None
    return db.session.scalar(sa.select(User).where(User.api_token_hash == hash_token(token)))


@login_manager.unauthorized_handler
def unauthorized() -> Response:
    if request.blueprint == "api":
        response = jsonify(error="Authentication required")
        response.status_code = 401
        response.headers["WWW-Authenticate"] = 'Bearer realm="radar_app"'
        return response
    return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
