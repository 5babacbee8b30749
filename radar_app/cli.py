"""Operator commands: `flask --app wsgi users ...`."""

from __future__ import annotations

import secrets

import click
import sqlalchemy as sa
from flask import Flask
from flask.cli import AppGroup

from radar_app.auth.tokens import hash_token, new_token
from radar_app.config import INSTANCE_DIR
from radar_app.extensions import db
from radar_app.models import User

users_cli = AppGroup("users", help="Manage users and their API tokens.")

DEMO_EMAIL = "demo@example.com"


def _find_user(email: str) -> User:
    user = db.session.scalar(sa.select(User).where(User.email == email.strip().lower()))
    if user is None:
        raise click.ClickException(f"No user with email {email}")
    return user


@users_cli.command("create")
@click.argument("email")
@click.option("--admin", is_flag=True, help="Let this user see and manage every job.")
@click.option("--password", help="Prompted for (hidden) when not given.")
def create_user(email: str, admin: bool, password: str | None) -> None:
    """Create a user."""
    email = email.strip().lower()
    if "@" not in email:
        raise click.BadParameter("not an email address", param_hint="EMAIL")
    if db.session.scalar(sa.select(User.id).where(User.email == email)) is not None:
        raise click.ClickException(f"A user with email {email} already exists")
    if password is None:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    if len(password) < 8:
        raise click.BadParameter("must be at least 8 characters", param_hint="--password")
    user = User(email=email, is_admin=admin)
    user.set_password(password)
    db.session.add(user)
    db.session.commit()
    click.echo(f"Created {'admin ' if admin else ''}user {email}")


@users_cli.command("token")
@click.argument("email")
def issue_token(email: str) -> None:
    """Issue a new API token (revoking the old one); printed once, on the last line."""
    user = _find_user(email)
    token = new_token()
    user.api_token_hash = hash_token(token)
    db.session.commit()
    click.echo(f"New API token for {user.email} (the previous one no longer works):")
    click.echo(token)


@users_cli.command("revoke-token")
@click.argument("email")
def revoke_token(email: str) -> None:
    """Revoke a user's API token and sign them out of every browser."""
    user = _find_user(email)
    user.api_token_hash = None
    user.end_sessions()
    db.session.commit()
    click.echo(f"Revoked the API token of {user.email} and signed them out everywhere")


@users_cli.command("budget")
@click.argument("email")
@click.argument("records", required=False, type=click.IntRange(min=0))
def set_budget(email: str, records: int | None) -> None:
    """Set a user's monthly export budget in records (omit RECORDS to remove it)."""
    user = _find_user(email)
    user.monthly_export_budget = records
    db.session.commit()
    click.echo(
        f"Monthly budget of {user.email}: "
        + (f"{records:,} records" if records is not None else "none")
    )


@users_cli.command("demo")
def ensure_demo_user() -> None:
    """Create the demo admin if missing and print its login (development only)."""
    password_file = INSTANCE_DIR / "demo_password"
    user = db.session.scalar(sa.select(User).where(User.email == DEMO_EMAIL))
    if user is None or not password_file.exists():
        password = secrets.token_urlsafe(9)
        if user is None:
            user = User(email=DEMO_EMAIL, is_admin=True)
            db.session.add(user)
        user.set_password(password)
        db.session.commit()
        INSTANCE_DIR.mkdir(parents=True, exist_ok=True)
        password_file.write_text(password)
        password_file.chmod(0o600)
    click.echo(f"{DEMO_EMAIL} {password_file.read_text().strip()}")


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
    )
    click.echo(f"Requeued (worker lost): {len(report.requeued_stale)}")
    for job_id in report.requeued_stale:
        click.echo(f"  {job_id}")
    click.echo(f"Cancelled (worker lost while cancelling): {len(report.cancelled_stale)}")
    click.echo(f"Re-enqueued (queue entry lost): {len(report.reenqueued_lost)}")
    for job_id in report.reenqueued_lost:
        click.echo(f"  {job_id}")


def init_app(app: Flask) -> None:
    app.cli.add_command(users_cli)
    app.cli.add_command(jobs_cli)
