"""Checking a sign-in: the same work whether or not the account exists."""

from __future__ import annotations

import functools
import hashlib
import secrets

import sqlalchemy as sa
from werkzeug.security import check_password_hash, generate_password_hash

from radar_app.accounts import normalize_email
from radar_app.models import DbSession, User


@functools.cache
def _unknown_account_hash() -> str:
    # Hashed like a real password (same KDF and cost), so an unknown email costs as much
    # time as a wrong password: the answer's timing does not reveal who has an account.
    return generate_password_hash(secrets.token_urlsafe(16))


class AccountDisabled(Exception):
    """The account exists and an admin has disabled it."""


def authenticate(session: DbSession, email: str, password: str) -> User | None:
    """The user whose email and password these are, or None.

    Raises AccountDisabled for a disabled account whatever the password, after checking
    it all the same: the answer (and its timing) says nothing about the password."""
    user = session.scalar(sa.select(User).where(User.email == normalize_email(email)))
    if user is None:
        check_password_hash(_unknown_account_hash(), password)
        return None
    right = user.check_password(password)
    if user.disabled_at is not None:
        raise AccountDisabled(user.email)
    return user if right else None


def account_key(email: str | None) -> str:
    """Rate-limit key for sign-in failures against one email address, existing or not.
    Hashed: the key is bounded in size and keeps addresses out of Redis."""
    digest = hashlib.sha256(normalize_email(email).encode("utf-8", "surrogatepass")).hexdigest()
    return f"login-account:{digest}"
