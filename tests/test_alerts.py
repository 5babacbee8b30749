"""Alerts (issue 12, item 3) against a real HTTP receiver and a real SMTP server
(aiosmtpd): events of finished jobs, HMAC-signed webhooks retried until they get through,
email, the operators' address, "send test" delivered by a worker, the delivery log."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from datetime import timedelta
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import sqlalchemy as sa
from aiosmtpd.controller import Controller
from flask import Flask

from devstack import free_port
from radar_app import alerts
from radar_app.extensions import db
from radar_app.models import AlertDelivery, User, utcnow
from tests.conftest import ApiClient, csrf_token_from
from tests.helpers import MULTNOMAH, job_row, wait_for


class Receiver:
    """A webhook receiver on a real port: answers `failures` 500s, then 200s."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.received: list[tuple[dict[str, str], bytes]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.received.append((dict(self.headers), body))
                failing = len(outer.received) <= outer.failures
                self.send_response(500 if failing else 200)
                self.end_headers()

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Outbox:
    """aiosmtpd's handler: every message the SMTP server accepted."""

    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"


@pytest.fixture
def smtp(app: Flask) -> Iterator[Outbox]:
    outbox = Outbox()
    controller = Controller(outbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    app.config["ALERT_SMTP_URL"] = f"smtp://127.0.0.1:{controller.port}"
    yield outbox
    controller.stop()


@pytest.fixture
def fast_retries(app: Flask) -> None:
    app.config["ALERT_RETRY_SECONDS"] = "0,0,0"
    app.config["ALERT_TIMEOUT"] = 5.0


def add(app: Flask, user: User, kind: str, target: str, events: list[str]) -> str:
    with app.app_context():
        owner = db.session.get(User, user.id)
        channel = alerts.add_channel(db.session, owner, kind, target, events)
        return str(channel.secret or "")


def deliveries(app: Flask) -> list[AlertDelivery]:
    with app.app_context():
        rows = db.session.scalars(sa.select(AlertDelivery).order_by(AlertDelivery.id)).all()
        db.session.expunge_all()
        return list(rows)


def retry_due(app: Flask) -> int:
    """What the minute check does for alerts."""
    with app.app_context():
        settings = alerts.AlertSettings.from_config(app.config)
        return alerts.deliver_due(db.session, settings, now=utcnow() + timedelta(seconds=1))


def test_a_receiver_failing_three_times_gets_the_event_on_the_fourth_try(
    app, user, api: ApiClient, run_worker, simulator, fast_retries
):
    receiver = Receiver(failures=3)
    try:
        secret = add(app, user, "webhook", receiver.url, ["job.completed"])
        job_id = api.post("/api/batch-jobs", json={"criteria": MULTNOMAH, "max_records": 5}).json[
            "id"
        ]
        run_worker()  # the job, and the first try right after it
        assert job_row(app, job_id).status == "COMPLETED"  # the receiver cannot change that
        assert len(receiver.received) == 1 and deliveries(app)[0].status == "pending"
        for _ in range(3):  # the minute checks
            retry_due(app)
        [delivery] = deliveries(app)
        assert (delivery.status, delivery.attempts, delivery.last_status_code) == (
            "delivered",
            4,
            200,
        )
        assert len(receiver.received) == 4
        headers, body = receiver.received[-1]
        expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        assert headers["X-Radar-Signature"] == expected
        assert headers["X-Radar-Event"] == "job.completed"
        event = json.loads(body)
        assert (event["event"], event["job_id"], event["leads"]) == ("job.completed", job_id, 5)
        assert retry_due(app) == 0  # delivered: not again
    finally:
        receiver.close()


def test_a_receiver_that_never_answers_well_is_given_up_after_the_last_try(
    app, user, api, run_worker, simulator, fast_retries
):
    receiver = Receiver(failures=100)
    try:
        add(app, user, "webhook", receiver.url, ["job.completed"])
        job_id = api.post("/api/batch-jobs", json={"criteria": MULTNOMAH, "max_records": 5}).json[
            "id"
        ]
        run_worker()
        for _ in range(5):
            retry_due(app)
        [delivery] = deliveries(app)
        assert (delivery.status, delivery.attempts, delivery.last_error) == (
            "failed",
            4,
            "HTTP 500",
        )
        assert job_row(app, job_id).status == "COMPLETED"
    finally:
        receiver.close()


def test_email_of_a_failed_job_with_its_reason_and_the_operators_copy(
    app, user, api, run_worker, simulator, smtp: Outbox
):
    app.config["ALERT_ADMIN_EMAIL"] = "ops@example.com"
    add(app, user, "email", "owner@example.com", ["job.failed", "job.completed"])
    simulator.configure(scripted_faults=[{"kind": "502", "purchase": 1, "times": -1}])
    job_id = api.post("/api/batch-jobs", json={"criteria": MULTNOMAH, "max_records": 5}).json["id"]
    run_worker()
    job = job_row(app, job_id)
    assert job.status == "FAILED"
    wait_for(lambda: len(smtp.messages) == 2, timeout=10, what="two emails")
    to = sorted(message["To"] for message in smtp.messages)
    assert to == ["ops@example.com", "owner@example.com"]
    text = smtp.messages[0].get_payload()
    assert "reason:" in text and "resumes_at_record: 1" in text
    assert all(d.status == "delivered" for d in deliveries(app))


def test_send_test_is_delivered_by_a_worker_and_logged(
    app, client, auth, user, run_worker, smtp: Outbox
):
    assert auth.login().status_code == 302
    page = client.get("/alerts")
    token = csrf_token_from(page.text)
    made = client.post(
        "/alerts",
        data={
            "csrf_token": token,
            "kind": "webhook",
            "target": "ftp://nope",
            "events": ["job.failed"],
        },
    )
    assert made.status_code == 400 and "An http:// or https:// URL" in made.text
    made = client.post(
        "/alerts",
        data={
            "csrf_token": token,
            "kind": "email",
            "target": "me@example.com",
            "events": ["job.failed"],
        },
    )
    assert made.status_code == 201
    channel_id = made.text.split('id="channel-', 1)[1].split('"', 1)[0]
    client.post(f"/alerts/{channel_id}/test", data={"csrf_token": token})
    assert smtp.messages == []  # not from the web request
    run_worker()
    assert [message["To"] for message in smtp.messages] == ["me@example.com"]
    assert "delivered" in client.get("/alerts").text


def test_a_webhooks_secret_is_shown_once(app, client, auth, user):
    assert auth.login().status_code == 302
    token = csrf_token_from(client.get("/alerts").text)
    made = client.post(
        "/alerts",
        data={
            "csrf_token": token,
            "kind": "webhook",
            "target": "https://example.com/h",
            "events": ["job.completed"],
        },
    )
    with app.app_context():
        [secret] = db.session.scalars(sa.select(alerts.AlertChannel.secret)).all()
    assert secret and secret in made.text
    assert secret not in client.get("/alerts").text


def test_another_users_channel_is_404(app, client, auth, user, other_user):
    add(app, other_user, "email", "other@example.com", ["job.failed"])
    with app.app_context():
        [theirs] = db.session.scalars(sa.select(alerts.AlertChannel.channel_id)).all()
    auth.login()
    token = auth.csrf_token()
    assert "other@example.com" not in client.get("/alerts").text
    for action in ("test", "delete"):
        assert (
            client.post(f"/alerts/{theirs}/{action}", data={"csrf_token": token}).status_code == 404
        )
    assert deliveries(app) == []


@pytest.mark.slow
def test_a_stuck_job_that_recovery_takes_over_is_mailed_to_the_operators(
    app, user, api, simulator, start_worker, smtp: Outbox
):
    """A SIGKILLed work horse: the next worker's reconciler requeues the job and raises
    "job.stuck"; the operators' address and the owner's channel for it get the mail."""
    from tests.test_recovery import FAST_RECOVERY, create, finished, kill_worker_and_horse

    add(app, user, "email", "owner@example.com", ["job.stuck"])
    mail_env = {
        "ALERT_ADMIN_EMAIL": "ops@example.com",
        "ALERT_SMTP_URL": app.config["ALERT_SMTP_URL"],
    }  # noqa: E501
    simulator.configure(latency_ms=40)
    job_id = create(api, MULTNOMAH)
    doomed = start_worker(env=FAST_RECOVERY | mail_env)
    wait_for(lambda: job_row(app, job_id).processed_records >= 400, what="a page stored")
    kill_worker_and_horse(doomed.pid)
    doomed.wait(timeout=10)
    start_worker(env=FAST_RECOVERY | mail_env)
    wait_for(lambda: any(d.event == "job.stuck" for d in deliveries(app)), timeout=30,
             what="the stuck-job alert")  # fmt: skip
    retry_due(app)  # what the minute's check does, if the worker has not sent it yet
    wait_for(lambda: len(smtp.messages) >= 2, timeout=20, what="two emails")
    stuck = [m for m in smtp.messages if "recovery took it over" in m["Subject"]]
    assert sorted(m["To"] for m in stuck) == ["ops@example.com", "owner@example.com"]
    assert "requeued to resume where it stopped" in stuck[0].get_payload()
    assert (
        wait_for(lambda: finished(app, job_id), timeout=60, what="completion").status == "COMPLETED"
    )
