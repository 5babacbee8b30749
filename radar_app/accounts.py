"""User accounts as an admin manages them: create, disable and enable, reset a password,
issue and revoke the API token, set the role and the monthly budget. Each change is
audited (radar_app.audit) in its own transaction, and says who made it: an admin (a
User) or the command line (None).

Each function owns its unit of work and commits it, like radar_app.batches. No Flask.
"""

from __future__ import annotations

import re
import secrets

import sqlalchemy as sa

from radar_app import audit
from radar_app.audit import Action
from radar_app.auth.tokens import hash_token, new_token
from radar_app.fielderrors import FieldErrors
from radar_app.models import DbSession, User, utcnow

# Deliberately loose: deliverability checks add nothing for an account an admin makes.
# Control characters are excluded: PostgreSQL cannot even compare a text with a NUL.
EMAIL_PATTERN = r"^[^@\s\x00-\x1f\x7f]+@[^@\s\x00-\x1f\x7f]+$"
EMAIL_MESSAGE = "Enter an email address like name@example.com"
MAX_EMAIL_LENGTH = 254
MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 200


class InvalidAccount(FieldErrors):
    """What is wrong with a new account, by field (email, password)."""


class SelfLockout(ValueError):
    """An admin tried to disable, demote or make read-only their own account."""


def normalize_email(email: str | None) -> str:
    return (email or "").strip().lower()


def new_password() -> str:
    """A password for an admin to hand over (about 96 bits)."""
    return secrets.token_urlsafe(12)


def _actor(by: User | None) -> str:
    return by.email if by is not None else audit.CLI


def _refuse_own(by: User | None, user: User, what: str) -> None:
    # An admin who locks themselves out may leave no one to let them back in.
    if by is not None and by.id == user.id:
        raise SelfLockout(f"You cannot {what}; ask another admin.")


def email_problem(email: str) -> str | None:
    if not email:
        return "Enter an email address."
    if len(email) > MAX_EMAIL_LENGTH:
        return f"Use at most {MAX_EMAIL_LENGTH} characters."
    if not re.match(EMAIL_PATTERN, email):
        return EMAIL_MESSAGE
    return None


def password_problem(password: str) -> str | None:
    if not MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH:
        return f"Use {MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH} characters."
    return None


def find(session: DbSession, email: str) -> User | None:
    return session.scalar(sa.select(User).where(User.email == normalize_email(email)))


def create(
    session: DbSession,
    by: User | None,
    email: str,
    password: str,
    *,
    is_admin: bool = False,
    read_only: bool = False,
    generated: bool = False,
) -> User:
    """A new user; InvalidAccount (nothing stored) for a bad or taken email or password.

    Args:
        generated: the password was made by new_password() (the audit row says so).
    """
    email = normalize_email(email)
    errors = {}
    if problem := email_problem(email):
        errors["email"] = problem
    elif find(session, email) is not None:
        errors["email"] = f"A user with email {email} already exists."
    if problem := password_problem(password):
        errors["password"] = problem
    if errors:
        raise InvalidAccount(errors)
    user = User(email=email, is_admin=is_admin, read_only=read_only)
    user.set_password(password)
    session.add(user)
    how = "generated" if generated else "set by " + ("the command line" if by is None else by.email)
    audit.record(
        session, _actor(by), Action.USER_CREATED, user, f"role {user.role}; password {how}"
    )
    try:
        session.commit()
    except sa.exc.IntegrityError as exc:
        # Another request created the same email between the check and the commit.
        session.rollback()
        raise InvalidAccount({"email": f"A user with email {email} already exists."}) from exc
    return user


def disable(session: DbSession, by: User | None, user: User) -> bool:
    """Stop the user signing in; their sessions and API token stop working at once.
    False if they were disabled already."""
    _refuse_own(by, user, "disable your own account")
    if user.disabled_at is not None:
        return False
    user.disabled_at = utcnow()
    user.end_sessions()
    audit.record(session, _actor(by), Action.USER_DISABLED, user, "disabled; signed out everywhere")
    session.commit()
    return True


def enable(session: DbSession, by: User | None, user: User) -> bool:
    """Let a disabled user sign in again (old sessions stay ended). False if not disabled."""
    if user.disabled_at is None:
        return False
    user.disabled_at = None
    audit.record(session, _actor(by), Action.USER_ENABLED, user, "enabled")
    session.commit()
    return True


def reset_password(session: DbSession, by: User | None, user: User) -> str:
    """Give the user a new generated password, returned to be shown once; every session
    of theirs ends."""
    password = new_password()
    user.set_password(password)
    audit.record(
        session,
        _actor(by),
        Action.PASSWORD_RESET,
        user,
        "new password generated; signed out everywhere",
    )
    session.commit()
    return password


def issue_token(session: DbSession, by: User | None, user: User) -> str:
    """A new API token for the user, returned to be shown once; only its hash is stored,
    and the previous token stops working."""
    token = new_token()
    replaced = user.api_token_hash is not None
    user.api_token_hash = hash_token(token)
    detail = "new API token; the previous one revoked" if replaced else "new API token"
    audit.record(session, _actor(by), Action.TOKEN_ISSUED, user, detail)
    session.commit()
    return token


def revoke_token(
    session: DbSession, by: User | None, user: User, *, sign_out: bool = False
) -> bool:
    """Revoke the user's API token (and, with sign_out, every browser session). False if
    there was nothing to do."""
    if user.api_token_hash is None and not sign_out:
        return False
    details = []
    if user.api_token_hash is not None:
        user.api_token_hash = None
        details.append("API token revoked")
    if sign_out:
        user.end_sessions()
        details.append("signed out everywhere")
    audit.record(session, _actor(by), Action.TOKEN_REVOKED, user, "; ".join(details))
    session.commit()
    return True


def budget_text(budget: int | None) -> str:
    return "none" if budget is None else f"{budget:,}"


def _budget_change(before: int | None, after: int | None) -> str:
    unit = " records/month"
    if after is None:
        return f"budget {budget_text(before)}{unit} -> none"
    return f"budget {budget_text(before)} -> {budget_text(after)}{unit}"


def set_budget(session: DbSession, by: User | None, user: User, budget: int | None) -> bool:
    """Set (None: remove) the user's monthly budget in records. False if unchanged."""
    before = user.monthly_export_budget
    if before == budget:
        return False
    user.monthly_export_budget = budget
    audit.record(
        session,
        _actor(by),
        Action.BUDGET_CHANGED,
        user,
        _budget_change(before, budget),
    )
    session.commit()
    return True


def set_role(
    session: DbSession, by: User | None, user: User, *, is_admin: bool, read_only: bool
) -> bool:
    """Grant or remove admin and read-only. False if unchanged."""
    if (user.is_admin, user.read_only) == (is_admin, read_only):
        return False
    if not is_admin and user.is_admin:
        _refuse_own(by, user, "remove your own admin role")
    if read_only and not user.read_only:
        _refuse_own(by, user, "make your own account read-only")
    before = user.role
    user.is_admin, user.read_only = is_admin, read_only
    audit.record(session, _actor(by), Action.ROLE_CHANGED, user, f"role {before} -> {user.role}")
    session.commit()
    return True
