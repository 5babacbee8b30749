from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required, login_user, logout_user
from limits import parse as parse_limit
from werkzeug.wrappers import Response

from radar_app.auth.forms import LoginForm
from radar_app.auth.passwords import AccountDisabled, account_key, authenticate
from radar_app.extensions import db, limiter

bp = Blueprint("auth", __name__, url_prefix="/auth")


def safe_next(target: str | None) -> str | None:
    """Only same-site relative paths are followed after sign-in (no open redirect)."""
    if not target:
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return None
    return target


def _is_failed_sign_in(response: Response) -> bool:
    return response.status_code == 401


def _account_limit_key() -> str:
    return account_key(request.form.get("email"))


def _wait_text(setting: str) -> str:
    seconds = parse_limit(current_app.config[setting]).get_expiry()
    return f"{seconds // 60} minutes" if seconds >= 120 else f"{seconds} seconds"


def _address_limited() -> str:
    return (
        "Too many sign-in attempts from your network. "
        f"Wait {_wait_text('LOGIN_RATE_LIMIT')} and try again."
    )


def _account_limited() -> str:
    # Worded the same whether or not the account exists; it holds back the right password
    # too, or a sign-in that works during the wait would confirm a guess.
    return (
        "Too many failed sign-ins for this email address. "
        f"Wait {_wait_text('LOGIN_ACCOUNT_RATE_LIMIT')} and try again."
    )


@bp.route("/login", methods=["GET", "POST"])
# Per client address: slows password guessing without locking anyone's account.
@limiter.limit(
    lambda: current_app.config["LOGIN_RATE_LIMIT"], methods=["POST"], error_message=_address_limited
)
# Per email address, from every client address together, counting failed sign-ins only:
# password guessing spread over many addresses.
@limiter.limit(
    lambda: current_app.config["LOGIN_ACCOUNT_RATE_LIMIT"],
    methods=["POST"],
    key_func=_account_limit_key,
    deduct_when=_is_failed_sign_in,
    error_message=_account_limited,
)
def login() -> str | Response | tuple[str, int]:
    """Sign in with email and password."""
    if current_user.is_authenticated:
        return redirect(url_for("jobs.index"))
    form = LoginForm()
    if form.validate_on_submit():
        try:
            user = authenticate(db.session, form.email.data or "", form.password.data or "")
        except AccountDisabled:
            flash("This account is disabled. Ask an administrator to enable it.", "error")
            return render_template("auth/login.html", form=form), 403
        if user is None:
            flash("Wrong email or password.", "error")
            return render_template("auth/login.html", form=form), 401
        login_user(user, remember=form.remember.data)
        return redirect(safe_next(request.args.get("next")) or url_for("jobs.index"))
    status = 400 if request.method == "POST" else 200
    return render_template("auth/login.html", form=form), status


@bp.post("/logout")
@login_required
def logout() -> Response:
    """Sign out here and everywhere else: copies of this browser's cookies stop working."""
    current_user.end_sessions()
    db.session.commit()
    logout_user()
    flash("You have been signed out.", "info")
    return redirect(url_for("auth.login"))
