"""Operator commands: `flask --app wsgi users ...`."""

from __future__ import annotations

import logging
import os
import secrets

import click
import sqlalchemy as sa
from flask import Flask, current_app
from flask.cli import AppGroup
from redis.exceptions import RedisError

from radar_app import accounts, alerts, schedules, searches, suppression
from radar_app.auth.tokens import hash_token, new_token
from radar_app.config import INSTANCE_DIR
from radar_app.extensions import db
from radar_app.models import SavedSearch, User
from radar_app.propertyradar.errors import PropertyRadarError
from radar_app.queue import get_redis
from radar_app.schedules import ScheduleSpec
from radar_app.searches import SearchSpec
from radar_app.services import build_client

logger = logging.getLogger(__name__)

users_cli = AppGroup("users", help="Manage users and their API tokens.")

DEMO_EMAIL = "demo@example.com"
# In INSTANCE_DIR, readable by their owner only.
DEMO_PASSWORD_FILE = "demo_password"
DEMO_TOKEN_FILE = "demo_api_token"


def _find_user(email: str) -> User:
    user = accounts.find(db.session, email)
    if user is None:
        raise click.ClickException(f"No user with email {email}")
    return user


# Each command changes users through radar_app.accounts, which audits the change with
# the command line as its actor (audit.CLI).


@users_cli.command("create")
@click.argument("email")
@click.option("--admin", is_flag=True, help="Let this user see and manage every job.")
@click.option("--read-only", is_flag=True, help="Let this user look but change nothing.")
@click.option("--password", help="Prompted for (hidden) when not given.")
def create_user(email: str, admin: bool, read_only: bool, password: str | None) -> None:
    """Create a user."""
    if problem := accounts.email_problem(accounts.normalize_email(email)):
        raise click.BadParameter(problem, param_hint="EMAIL")
    if accounts.find(db.session, email) is not None:
        raise click.ClickException(f"A user with email {email.strip().lower()} already exists")
    if password is None:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        user = accounts.create(
            db.session, None, email, password, is_admin=admin, read_only=read_only
        )
    except accounts.InvalidAccount as exc:
        field, problem = next(iter(exc.errors.items()))
        hint = "--password" if field == "password" else "EMAIL"
        raise click.BadParameter(problem, param_hint=hint) from None
    click.echo(f"Created {user.role} {user.email}")


@users_cli.command("token")
@click.argument("email")
def issue_token(email: str) -> None:
    """Issue a new API token (revoking the old one); printed once, on the last line."""
    user = _find_user(email)
    token = accounts.issue_token(db.session, None, user)
    click.echo(f"New API token for {user.email} (the previous one no longer works):")
    click.echo(token)


@users_cli.command("revoke-token")
@click.argument("email")
def revoke_token(email: str) -> None:
    """Revoke a user's API token and sign them out of every browser."""
    user = _find_user(email)
    accounts.revoke_token(db.session, None, user, sign_out=True)
    click.echo(f"Revoked the API token of {user.email} and signed them out everywhere")


@users_cli.command("budget")
@click.argument("email")
@click.argument("records", required=False, type=click.IntRange(min=0))
def set_budget(email: str, records: int | None) -> None:
    """Set a user's monthly export budget in records (omit RECORDS to remove it)."""
    user = _find_user(email)
    accounts.set_budget(db.session, None, user, records)
    click.echo(
        f"Monthly budget of {user.email}: {accounts.budget_text(records)}"
        + (" records" if records is not None else "")
    )


@users_cli.command("disable")
@click.argument("email")
def disable_user(email: str) -> None:
    """Disable a user: no sign-in, their sessions and API token stop working."""
    user = _find_user(email)
    done = accounts.disable(db.session, None, user)
    click.echo(f"Disabled {user.email}" if done else f"{user.email} was already disabled")


@users_cli.command("enable")
@click.argument("email")
def enable_user(email: str) -> None:
    """Let a disabled user sign in again."""
    user = _find_user(email)
    done = accounts.enable(db.session, None, user)
    click.echo(f"Enabled {user.email}" if done else f"{user.email} was not disabled")


def _write_secret(name: str, value: str) -> None:
    """A file in instance/ only its owner can read (created 0600, never world-readable)."""
    INSTANCE_DIR.mkdir(parents=True, exist_ok=True)
    path = INSTANCE_DIR / name
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(value)
    path.chmod(0o600)  # an older file may have been created with looser permissions


def _read_secret(name: str) -> str | None:
    path = INSTANCE_DIR / name
    return path.read_text().strip() if path.exists() else None


@users_cli.command("demo")
@click.option(
    "--with-token",
    is_flag=True,
    help="Also print the demo API token, kept in instance/ so it survives restarts.",
)
def ensure_demo_user(with_token: bool) -> None:
    """Create the demo admin if missing and print its login (development only).

    The password and the API token are kept in instance/ (0600) and reused on every run,
    so a curl line from yesterday still works; only a database without the demo user (or
    a token that no longer matches) gets new ones.
    """
    user = db.session.scalar(sa.select(User).where(User.email == DEMO_EMAIL))
    password = _read_secret(DEMO_PASSWORD_FILE)
    if user is None or not password or not user.check_password(password):
        password = secrets.token_urlsafe(9)
        if user is None:
            user = User(email=DEMO_EMAIL, is_admin=True)
            db.session.add(user)
        user.set_password(password)
        db.session.commit()
        _write_secret(DEMO_PASSWORD_FILE, password)
    _seed_demo(user)
    fields = [DEMO_EMAIL, password]
    if with_token:
        token = _read_secret(DEMO_TOKEN_FILE)
        if not token or user.api_token_hash != hash_token(token):
            token = new_token()
            user.api_token_hash = hash_token(token)
            db.session.commit()
            _write_secret(DEMO_TOKEN_FILE, token)
        fields.append(token)
    click.echo(" ".join(fields))


# What a new demo account starts with: a saved search, with a suppression list of some of
# its matches (read from PropertyRadar, the simulator in demo mode, by a free request).
DEMO_SEARCH = SearchSpec(
    name="Multnomah County, absentee owners (demo)",
    criteria=[
        {"name": "State", "value": ["OR"]},
        {"name": "County", "value": ["41051"]},
        {"name": "isSameMailingOrExempt", "value": [0]},
    ],
    max_records=500,
)
# Weekly, capped: it shows a next run and, once a week has passed, what a run bought.
DEMO_SCHEDULE = ScheduleSpec("weekly", "America/Los_Angeles", at="07:00", max_cost=5.0)
DEMO_LIST = "Do not contact (demo)"
DEMO_LIST_SIZE = 25


def _seed_demo(user: User) -> None:
    if db.session.scalar(sa.select(SavedSearch.id).where(SavedSearch.created_by == user.id)):
        return
    list_id = None
    try:
        with build_client(current_app.config, get_redis()) as client:
            page = client.radar_ids(DEMO_SEARCH.criteria, 0, DEMO_LIST_SIZE)
        radar_ids = [str(record["RadarID"]) for record in page.results if record.get("RadarID")]
        list_id = suppression.create_list(
            db.session, user, DEMO_LIST, radar_ids, is_default=False
        ).id
    except (PropertyRadarError, RedisError, OSError, RuntimeError, suppression.InvalidList) as exc:
        # PropertyRadar unreachable, or no token: the demo search comes without a list.
        db.session.rollback()
        logger.warning("demo suppression list not made: %s", exc)
    spec = DEMO_SEARCH
    saved = searches.save(
        db.session,
        user,
        SearchSpec(
            spec.name, spec.criteria, max_records=spec.max_records, suppression_list_id=list_id
        ),
    )
    schedules.save_schedule(db.session, saved, DEMO_SCHEDULE)
    if inbox := current_app.config.get("DEMO_INBOX_URL"):
        # The demo inbox (devstack.inbox) shows what these send.
        every_event = list(alerts.EVENTS)
        alerts.add_channel(db.session, user, "webhook", f"{inbox}/webhook", every_event)
        alerts.add_channel(db.session, user, "email", user.email, every_event)


jobs_cli = AppGroup("jobs", help="Operate on batch jobs.")


@jobs_cli.command("recover")
@click.option(
    "--stale-after",
    type=float,
    help="Seconds without a heartbeat before a running job counts as stranded "
    "(default: RECOVERY_STALE_AFTER).",
)
def recover_jobs(stale_after: float | None) -> None:
    """Requeue jobs whose worker died and jobs whose queue entry was lost."""
    from flask import current_app

    from radar_app.alerts import AlertSettings
    from radar_app.batches import QueueSettings
    from radar_app.queue import get_queue
    from radar_app.recovery import reconcile

    config = current_app.config
    report = reconcile(
        db.session,
        get_queue(),
        QueueSettings.from_config(config),
        stale_after=config["RECOVERY_STALE_AFTER"] if stale_after is None else stale_after,
        pending_grace=config["RECOVERY_PENDING_GRACE"],
        alert_settings=AlertSettings.from_config(config),
    )
    click.echo(f"Requeued (worker lost): {len(report.requeued_stale)}")
    for job_id in report.requeued_stale:
        click.echo(f"  {job_id}")
    click.echo(f"Cancelled (worker lost while cancelling): {len(report.cancelled_stale)}")
    click.echo(f"Re-enqueued (queue entry lost): {len(report.reenqueued_lost)}")
    for job_id in report.reenqueued_lost:
        click.echo(f"  {job_id}")
    click.echo(f"Requeued (work horse never claimed it): {len(report.requeued_unclaimed)}")
    for job_id in report.requeued_unclaimed:
        click.echo(f"  {job_id}")


def init_app(app: Flask) -> None:
    app.cli.add_command(users_cli)
    app.cli.add_command(jobs_cli)
