"""Jinja filters for numbers, money, durations, times and job statuses."""

from __future__ import annotations

from datetime import datetime

# The sansio App: a blueprint's setup state hands over the app as that type.
from flask.sansio.app import App

from radar_app.models import JobStatus
from radar_app.propertyradar.criteria import describe_criteria

# The API's status names, in words: "PROCESSING" -> "Processing".
STATUS_LABELS = {status: status.value.title() for status in JobStatus}


def number(value: float | int | None, places: int = 0) -> str:
    """1234567 -> "1,234,567"; None -> an en dash."""
    if value is None:
        return "–"
    return f"{value:,.{places}f}"


def money(value: float | int | None, unit_price: bool = False, cents: bool = True) -> str:
    """Dollars with cents: 1234.5 -> "$1,234.50"; None -> an en dash.

    The one way money is shown, in pages and messages alike. A unit price keeps up to four
    decimals, so 0.025 shows as "$0.025", not "$0.03"; ``cents=False`` rounds to whole
    dollars, for property values ("$850,000").
    """
    if value is None:
        return "–"
    sign = "-" if value < 0 else ""
    if not cents:
        return f"{sign}${abs(value):,.0f}"
    text = f"{abs(value):,.4f}" if unit_price else f"{abs(value):,.2f}"
    if unit_price:
        whole, decimals = text.split(".")
        text = f"{whole}.{decimals.rstrip('0').ljust(2, '0')}"
    return f"{sign}${text}"


def duration(seconds: float | None) -> str:
    """Seconds as "45 s", "3 min 05 s" or "2 h 07 min"; None -> an en dash."""
    if seconds is None:
        return "–"
    total = round(seconds)
    if total < 60:
        return f"{max(total, 0)} s"
    minutes, secs = divmod(total, 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def timestamp(value: datetime | None) -> str:
    """UTC times as "2026-03-01 14:05 UTC" (the server does not know the viewer's zone)."""
    if value is None:
        return "–"
    return value.strftime("%Y-%m-%d %H:%M UTC")


def status_label(status: str) -> str:
    try:
        return STATUS_LABELS[JobStatus(status)]
    except ValueError:
        return status.title()


def criteria_summary(criteria: object) -> str:
    """The search in a line, e.g. "State OR · County 41051 · Single Family"."""
    return describe_criteria(criteria)


def init_app(app: App) -> None:
    app.add_template_filter(number)
    app.add_template_filter(money)
    app.add_template_filter(duration)
    app.add_template_filter(timestamp)
    app.add_template_filter(status_label)
    app.add_template_filter(criteria_summary)
