"""User admin: list and create users, disable and enable them, reset a password, issue
and revoke the API token, grant or remove admin and read-only. The rules and the audit
rows are radar_app.accounts'; these views parse, call and render.

A password or token made here is shown once, in the answer to the request that made it
(never in a flash message, which rides in the session cookie), and never stored."""

from __future__ import annotations

import sqlalchemy as sa
from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_user
from werkzeug.wrappers import Response

from radar_app import accounts
from radar_app.admin.forms import CreateUserForm, RoleForm
from radar_app.admin.routes import BudgetError, bp, parse_budget, usage_page
from radar_app.extensions import db
from radar_app.ledger import records_bought_this_month
from radar_app.models import User

# Larger ids would overflow the database integer (a 500) instead of finding no user (404).
USER_ID = "<int(max=2147483647):user_id>"


def _user_or_404(user_id: int) -> User:
    return db.session.get(User, user_id) or abort(404, description="User not found")


def _shown_once(body: str, status: int = 200) -> tuple[str, int, dict[str, str]]:
    # A page with a password or token in it is kept by no cache, the browser's included.
    return body, status, {"Cache-Control": "no-store"}


@bp.get("/users")
def users() -> str:
    """Every user, with their role and state, and the form to add one."""
    return _users_page(CreateUserForm())


def _users_page(form: CreateUserForm) -> str:
    listed = db.session.scalars(sa.select(User).order_by(User.email)).all()
    return render_template("admin/users.html", users=listed, form=form)


@bp.post("/users")
def create_user() -> Response | tuple[str, int] | tuple[str, int, dict[str, str]]:
    """Add a user, with the password the admin typed or a generated one (shown once)."""
    form = CreateUserForm()
    if not form.validate_on_submit():
        return _users_page(form), 400
    password = form.password.data or accounts.new_password()
    try:
        user = accounts.create(
            db.session,
            current_user,
            form.email.data or "",
            password,
            is_admin=form.is_admin,
            read_only=form.read_only.data,
            generated=not form.password.data,
        )
    except accounts.InvalidAccount as exc:
        for name, message in exc.errors.items():
            getattr(form, name).errors = [message]
        return _users_page(form), 400
    flash(f"Created {user.role} {user.email}.", "success")
    if form.password.data:
        return redirect(url_for("admin.user", user_id=user.id))
    return _shown_once(_user_page(user, secret=("password", password)), 201)


@bp.get(f"/users/{USER_ID}")
def user(user_id: int) -> str:
    """One user: what they are and may do, and the admin's actions on them."""
    return _user_page(_user_or_404(user_id))


def _user_page(
    user: User,
    *,
    secret: tuple[str, str] | None = None,
    role_form: RoleForm | None = None,
    budget_error: BudgetError | None = None,
) -> str:
    if role_form is None:
        role_form = RoleForm(
            formdata=None, role="admin" if user.is_admin else "user", read_only=user.read_only
        )
    return render_template(
        "admin/user.html",
        user=user,
        secret=secret,
        role_form=role_form,
        budget_error=budget_error,
        bought=records_bought_this_month(db.session, user.id),
        is_self=user.id == current_user.id,
    )


def _back(user: User) -> Response:
    return redirect(url_for("admin.user", user_id=user.id))


def _refused(user: User, exc: accounts.SelfLockout) -> tuple[str, int]:
    flash(str(exc), "error")
    return _user_page(user), 409


@bp.post(f"/users/{USER_ID}/disable")
def disable_user(user_id: int) -> Response | tuple[str, int]:
    """Disable a user: no sign-in; their sessions and API token stop working at once."""
    user = _user_or_404(user_id)
    try:
        done = accounts.disable(db.session, current_user, user)
    except accounts.SelfLockout as exc:
        return _refused(user, exc)
    flash(
        f"Disabled {user.email}: signed out everywhere, API token refused."
        if done
        else f"{user.email} was already disabled.",
        "success" if done else "info",
    )
    return _back(user)


@bp.post(f"/users/{USER_ID}/enable")
def enable_user(user_id: int) -> Response:
    """Let a disabled user sign in again."""
    user = _user_or_404(user_id)
    done = accounts.enable(db.session, current_user, user)
    flash(
        f"Enabled {user.email}; they can sign in again."
        if done
        else f"{user.email} was not disabled.",
        "success" if done else "info",
    )
    return _back(user)


@bp.post(f"/users/{USER_ID}/password")
def reset_password(user_id: int) -> tuple[str, int, dict[str, str]]:
    """Give the user a new generated password, shown once; their sessions end."""
    user = _user_or_404(user_id)
    password = accounts.reset_password(db.session, current_user, user)
    if user.id == current_user.id:
        # The reset ended every session, this one too: carry on under the new one.
        login_user(user)
    flash(f"New password for {user.email}; they have been signed out everywhere.", "success")
    return _shown_once(_user_page(user, secret=("password", password)))


@bp.post(f"/users/{USER_ID}/token")
def issue_token(user_id: int) -> tuple[str, int, dict[str, str]]:
    """Issue a new API token (shown once); the previous one stops working."""
    user = _user_or_404(user_id)
    token = accounts.issue_token(db.session, current_user, user)
    flash(f"New API token for {user.email}.", "success")
    return _shown_once(_user_page(user, secret=("API token", token)))


@bp.post(f"/users/{USER_ID}/token/revoke")
def revoke_token(user_id: int) -> Response:
    """Revoke the user's API token."""
    user = _user_or_404(user_id)
    done = accounts.revoke_token(db.session, current_user, user)
    flash(
        f"Revoked the API token of {user.email}." if done else f"{user.email} had no API token.",
        "success" if done else "info",
    )
    return _back(user)


@bp.post(f"/users/{USER_ID}/role")
def set_role(user_id: int) -> Response | tuple[str, int]:
    """Grant or remove admin and read-only."""
    user = _user_or_404(user_id)
    form = RoleForm()
    if not form.validate_on_submit():
        return _user_page(user, role_form=form), 400
    before = user.role
    try:
        done = accounts.set_role(
            db.session, current_user, user, is_admin=form.is_admin, read_only=form.read_only.data
        )
    except accounts.SelfLockout as exc:
        return _refused(user, exc)
    flash(
        f"{user.email}: {before} -> {user.role}." if done else "Nothing changed.",
        "success" if done else "info",
    )
    return _back(user)


@bp.post(f"/users/{USER_ID}/budget")
def set_budget(user_id: int) -> Response | tuple[str, int]:
    """Set or clear a user's monthly export budget (records per calendar month), from the
    Purchases page or the user's page (back=user), whichever the form is on."""
    user = _user_or_404(user_id)
    submitted = request.form.get("budget") or ""
    on_user_page = request.form.get("back") == "user"
    try:
        budget = parse_budget(submitted)
    except ValueError as exc:
        error = BudgetError(user.id, submitted, str(exc))
        if on_user_page:
            return _user_page(user, budget_error=error), 400
        return usage_page(error), 400
    done = accounts.set_budget(db.session, current_user, user, budget)
    flash(
        f"Monthly budget of {user.email}: {accounts.budget_text(budget)}"
        + (" records." if budget is not None else ".")
        + ("" if done else " (unchanged)"),
        "success",
    )
    return _back(user) if on_user_page else redirect(url_for("admin.usage"))
