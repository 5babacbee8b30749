"""Alerts (issue 12, item 3): a user's email addresses and webhooks hear about their jobs.

Events: a job completed, a job failed (with the reason and where a retry resumes), a
budget or a run's cost cap reached, a scheduled run's summary, and "test". An event
becomes one AlertDelivery row per channel that wants it (and, for failures, one to the
operators' ALERT_ADMIN_EMAIL), written by the worker, never by a web request. Delivering
is tried at once by the worker that made the event; a failed try is retried by the
schedules' check (radar_app.schedules, every minute) after ALERT_RETRY_SECONDS, and every
try is logged on the row. A receiver that fails never touches the job.

Webhooks get the event as JSON with `X-Radar-Signature: sha256=<hex>`, the HMAC-SHA256 of
the body under the channel's secret.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import secrets
import smtplib
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from typing import Any
from urllib.parse import urlsplit

import requests
import sqlalchemy as sa

from radar_app.fielderrors import FieldErrors
from radar_app.models import (
    AlertChannel,
    AlertDelivery,
    BatchJob,
    DbSession,
    JobStatus,
    User,
    utcnow,
)

logger = logging.getLogger(__name__)

EVENTS = {
    "job.completed": "A job completed",
    "job.failed": "A job failed",
    "budget.reached": "A budget or a run's cost cap stopped a job",
    "schedule.run": "A scheduled run's summary",
    "job.stuck": "A job got stuck and recovery took it over",
}
# What the operators' ALERT_ADMIN_EMAIL hears about, whoever owns the job.
OPERATOR_EVENTS = ("job.failed", "budget.reached", "job.stuck")
TEST_EVENT = "test"
KINDS = {"email": "Email", "webhook": "Webhook"}
SIGNATURE_HEADER = "X-Radar-Signature"
EVENT_HEADER = "X-Radar-Event"
# How many delivery rows the alerts page lists.
LOG_SIZE = 50
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


class InvalidChannel(FieldErrors):
    """What is wrong with a channel, by field (kind, target, events)."""


@dataclass(frozen=True)
class AlertSettings:
    smtp_url: str | None
    sender: str
    admin_email: str | None
    retry_seconds: tuple[float, ...]
    timeout: float

    @classmethod
    def from_config(cls, config: Any) -> AlertSettings:
        retries = tuple(
            float(part) for part in str(config["ALERT_RETRY_SECONDS"]).split(",") if part.strip()
        )
        return cls(
            smtp_url=config["ALERT_SMTP_URL"],
            sender=config["ALERT_FROM"],
            admin_email=config["ALERT_ADMIN_EMAIL"],
            retry_seconds=retries,
            timeout=config["ALERT_TIMEOUT"],
        )

    @property
    def attempts(self) -> int:
        return 1 + len(self.retry_seconds)


# -------------------------------------------------------------------------- channels


def add_channel(
    session: DbSession, owner: User, kind: str, target: str, events: list[str]
) -> AlertChannel:
    """A new channel of `owner`'s (a webhook gets a fresh signing secret).

    Raises:
        InvalidChannel: every problem, by field.
    """
    target = target.strip()
    errors: dict[str, str] = {}
    if kind not in KINDS:
        errors["kind"] = "Choose email or webhook"
    elif kind == "email" and not _EMAIL.fullmatch(target):
        errors["target"] = "An email address like you@example.com"
    elif kind == "webhook":
        parts = urlsplit(target)
        if parts.scheme not in ("http", "https") or not parts.netloc or len(target) > 500:
            errors["target"] = "An http:// or https:// URL"
    unknown = [event for event in events if event not in EVENTS]
    if unknown or not events:
        errors["events"] = "Choose at least one event"
    if errors:
        raise InvalidChannel(errors)
    channel = AlertChannel(
        channel_id=uuid.uuid4().hex,
        created_by=owner.id,
        kind=kind,
        target=target,
        events=sorted(set(events)),
        secret=secrets.token_hex(32) if kind == "webhook" else None,
    )
    session.add(channel)
    session.commit()
    return channel


def delete_channel(session: DbSession, channel: AlertChannel) -> None:
    session.delete(channel)
    session.commit()


def channels_of(session: DbSession, owner_id: int) -> list[AlertChannel]:
    return list(
        session.scalars(
            sa.select(AlertChannel)
            .where(AlertChannel.created_by == owner_id)
            .order_by(AlertChannel.id)
        )
    )


def find_channel(session: DbSession, user: User, channel_id: str) -> AlertChannel | None:
    """The user's channel with this public id; None otherwise (a 404)."""
    if "\x00" in channel_id:
        return None
    channel = session.scalar(sa.select(AlertChannel).where(AlertChannel.channel_id == channel_id))
    if channel is None or channel.created_by != user.id:
        return None
    return channel


def log_of(session: DbSession, owner_id: int) -> list[AlertDelivery]:
    """The newest deliveries to the user's channels."""
    return list(
        session.scalars(
            sa.select(AlertDelivery)
            .join(AlertChannel, AlertChannel.id == AlertDelivery.channel_id)
            .where(AlertChannel.created_by == owner_id)
            .order_by(AlertDelivery.id.desc())
            .limit(LOG_SIZE)
        )
    )


# ---------------------------------------------------------------------------- events


def stuck_event(job: BatchJob, what: str) -> dict[str, Any]:
    """The payload of "job.stuck": recovery found the job's worker gone or hung and
    ``what`` it did (requeued it, or ended it when it was being cancelled)."""
    return {
        "job_id": job.job_id,
        "name": job.name,
        "status": job.status,
        "recovery": what,
        "attempts": job.attempts,
        "resumes_at_record": job.next_start + 1,
    }


def job_events(job: BatchJob) -> list[tuple[str, dict[str, Any]]]:
    """The events a finished job raises, with their payloads."""
    payload: dict[str, Any] = {
        "job_id": job.job_id,
        "name": job.name,
        "status": job.status,
        "leads": job.success_count,
        "bought": job.purchased_count,
        "reused": job.reused_count,
        "suppressed": job.suppressed_count,
        "cost": round(job.cost_total, 2),
    }
    events: list[tuple[str, dict[str, Any]]] = []
    if job.status == JobStatus.COMPLETED:
        events.append(("job.completed", payload))
        if job.saved_search is not None and job.saved_search.schedule is not None:
            summary = payload | {"search": job.saved_search.name, "new_leads": job.purchased_count}
            events.append(("schedule.run", summary))
    elif job.status == JobStatus.FAILED:
        failed = payload | {"reason": job.error_details, "resumes_at_record": job.next_start + 1}
        reason = job.error_details or ""
        capped = reason.startswith(("Monthly export budget reached", "This run's cost cap"))
        events.append(("budget.reached" if capped else "job.failed", failed))
    return events


def emit(
    session: DbSession,
    owner_id: int,
    event: str,
    payload: dict[str, Any],
    settings: AlertSettings,
    *,
    channel: AlertChannel | None = None,
) -> list[int]:
    """Queue the event for every channel of the owner's that wants it (or just `channel`),
    and for the operators when a job failed; the deliveries' ids (committed)."""
    now = utcnow()
    body = {"event": event, "at": now.isoformat(), **payload}
    targets = (
        [channel]
        if channel is not None
        else [found for found in channels_of(session, owner_id) if event in found.events]
    )
    rows = [
        AlertDelivery(channel_id=found.id, event=event, payload=body, next_attempt_at=now)
        for found in targets
    ]
    if settings.admin_email and event in OPERATOR_EVENTS:
        rows.append(
            AlertDelivery(
                admin_email=settings.admin_email, event=event, payload=body, next_attempt_at=now
            )
        )
    session.add_all(rows)
    session.commit()
    return [row.id for row in rows]


# ------------------------------------------------------------------------ delivering


class DeliveryFailed(Exception):
    def __init__(self, message: str, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def deliver(session: DbSession, delivery_id: int, settings: AlertSettings) -> bool:
    """Try one delivery now (if it is still due); whether it got through. A failure is
    recorded on the row with when to try again, or as final after the last attempt."""
    # Locked, so two checks cannot send it twice; OF: the channel comes outer-joined,
    # and PostgreSQL cannot lock the nullable side of an outer join.
    delivery = session.scalar(
        sa.select(AlertDelivery)
        .where(AlertDelivery.id == delivery_id)
        .with_for_update(of=AlertDelivery)
    )
    if delivery is None or delivery.status != AlertDelivery.PENDING:
        session.rollback()
        return False
    delivery.attempts += 1
    delivery.last_attempt_at = utcnow()
    try:
        delivery.last_status_code = _send(delivery, settings)
    except DeliveryFailed as exc:
        delivery.last_status_code = exc.status_code
        delivery.last_error = str(exc)[:500]
        if delivery.attempts >= settings.attempts:
            delivery.status = AlertDelivery.FAILED
            delivery.next_attempt_at = None
        else:
            wait = settings.retry_seconds[delivery.attempts - 1]
            delivery.next_attempt_at = utcnow() + timedelta(seconds=wait)
        session.commit()
        logger.warning(
            "alert %s (%s): try %d failed: %s", delivery.id, delivery.event, delivery.attempts, exc
        )
        return False
    delivery.status = AlertDelivery.DELIVERED
    delivery.last_error = None
    delivery.next_attempt_at = None
    delivery.delivered_at = utcnow()
    session.commit()
    return True


def deliver_due(session: DbSession, settings: AlertSettings, now: datetime | None = None) -> int:
    """Try every delivery whose next attempt is due; how many got through."""
    due = session.scalars(
        sa.select(AlertDelivery.id).where(
            AlertDelivery.status == AlertDelivery.PENDING,
            AlertDelivery.next_attempt_at <= (now or utcnow()),
        )
    ).all()
    session.commit()
    return sum(deliver(session, delivery_id, settings) for delivery_id in due)


def _send(delivery: AlertDelivery, settings: AlertSettings) -> int | None:
    channel = delivery.channel
    body = json.dumps(delivery.payload, sort_keys=True).encode()
    if channel is not None and channel.kind == "webhook":
        assert channel.secret is not None
        try:
            response = requests.post(
                channel.target,
                data=body,
                headers={
                    "Content-Type": "application/json",
                    EVENT_HEADER: delivery.event,
                    SIGNATURE_HEADER: signature(channel.secret, body),
                },
                timeout=settings.timeout,
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            raise DeliveryFailed(f"{type(exc).__name__}: {exc}"[:300]) from exc
        if not 200 <= response.status_code < 300:
            raise DeliveryFailed(f"HTTP {response.status_code}", response.status_code)
        return response.status_code
    address = channel.target if channel is not None else delivery.admin_email
    _mail(settings, address or "", delivery.event, delivery.payload)
    return None


def _mail(settings: AlertSettings, address: str, event: str, payload: dict[str, Any]) -> None:
    if not settings.smtp_url:
        raise DeliveryFailed("No SMTP server is configured (ALERT_SMTP_URL)")
    parts = urlsplit(settings.smtp_url)
    message = EmailMessage()
    message["From"] = settings.sender
    message["To"] = address
    message["Subject"] = f"radar_app: {EVENTS.get(event, event)}: {payload.get('name', '')}"
    message.set_content(
        "\n".join(f"{key}: {value}" for key, value in payload.items() if key != "event")
    )
    try:
        smtp_class = smtplib.SMTP_SSL if parts.scheme == "smtps" else smtplib.SMTP
        with smtp_class(
            parts.hostname or "localhost", parts.port or 25, timeout=settings.timeout
        ) as smtp:
            if parts.username:
                smtp.login(parts.username, parts.password or "")
            smtp.send_message(message)
    except (OSError, smtplib.SMTPException) as exc:
        raise DeliveryFailed(f"{type(exc).__name__}: {exc}"[:300]) from exc
