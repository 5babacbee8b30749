"""The alerts page (issue 12): a user's email and webhook channels and what was delivered
to them. The page only writes rows; every delivery is made by a worker
(radar_app.tasks.deliver_alert, and the minute check's retries)."""

from __future__ import annotations

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user
from redis.exceptions import RedisError
from werkzeug.wrappers import Response

from radar_app import alerts
from radar_app.extensions import db
from radar_app.jobs.routes import require_login
from radar_app.models import AlertChannel
from radar_app.queue import get_queue

bp = Blueprint("channels", __name__, url_prefix="/alerts")
bp.before_request(require_login)

# The RQ entry point that delivers one alert (views never import radar_app.tasks).
DELIVER_TASK = "radar_app.tasks.deliver_alert"


def _channel_or_404(channel_id: str) -> AlertChannel:
    found = alerts.find_channel(db.session, current_user, channel_id)
    if found is None:
        abort(404, description="There is no alert channel with that id, or it is not yours.")
    return found


def _page(
    errors: dict[str, str] | None = None, status: int = 200, new_secret: str | None = None
) -> tuple[str, int]:
    return render_template(
        "channels/index.html",
        channels=alerts.channels_of(db.session, current_user.id),
        log=alerts.log_of(db.session, current_user.id),
        events=alerts.EVENTS,
        kinds=alerts.KINDS,
        errors=errors or {},
        entered=request.form if request.method == "POST" else {},
        new_secret=new_secret,
    ), status


@bp.get("")
def index() -> tuple[str, int]:
    """The user's channels, the form for a new one, and the latest deliveries."""
    return _page()


@bp.post("")
def create() -> tuple[str, int]:
    """A new channel. A webhook's signing secret is shown on this answer only."""
    try:
        channel = alerts.add_channel(
            db.session,
            current_user,
            request.form.get("kind", ""),
            request.form.get("target", ""),
            request.form.getlist("events"),
        )
    except alerts.InvalidChannel as exc:
        return _page(exc.errors, 400)
    flash(f"Alerts for {channel.target} added.", "success")
    return _page(new_secret=channel.secret, status=201)


@bp.post("/<channel_id>/test")
def send_test(channel_id: str) -> Response:
    """Queue a test event for the channel; a worker delivers it."""
    channel = _channel_or_404(channel_id)
    settings = alerts.AlertSettings.from_config(current_app.config)
    payload = {"name": "Test alert", "message": "radar_app can reach this channel."}
    [delivery_id] = alerts.emit(
        db.session, current_user.id, alerts.TEST_EVENT, payload, settings, channel=channel
    )
    try:
        get_queue().enqueue(DELIVER_TASK, delivery_id, result_ttl=600)
        flash("Test queued: its delivery shows below in a moment (reload).", "success")
    except RedisError:
        flash("The job queue is unavailable; the test is sent by the next minute's check.", "error")
    return redirect(url_for("channels.index"))


@bp.post("/<channel_id>/delete")
def delete(channel_id: str) -> Response:
    """Stop sending alerts to the channel (its delivery log goes with it)."""
    channel = _channel_or_404(channel_id)
    alerts.delete_channel(db.session, channel)
    flash(f"Alerts for {channel.target} removed.", "success")
    return redirect(url_for("channels.index"))
