"""Charts drawn on the server as SVG text: a line (or area) chart over time and a bar chart
of time buckets, readable without JavaScript.

Pure functions of their series: no Flask, no database (radar_app.activity computes the
series). Every chart has a visible title, an SVG <title> and <desc> that say what it shows
and summarise the figures for a screen reader, a tooltip (<title>) on each point or bucket,
and an empty state. Every text is escaped, since job names are user input. A viewBox,
width="100%" and a fixed height let a chart shrink to a 390 px phone's column without
growing past its own size on a desktop.

Colours are written as presentation attributes, not classes or style attributes: an SVG
opened on its own (an <img>, a download) cannot read app.css, and the Content-Security-
Policy forbids inline styles. They are app.css's palette (:root), legible on its light
surface.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

# static/css/app.css's palette.
TEXT = "#1b2330"  # --text
MUTED = "#637083"  # --muted
GRID = "#dfe4ea"  # --border
AXIS = "#c6cdd6"  # --border-strong
SURFACE = "#ffffff"  # --surface
PRIMARY = "#2456d6"  # --primary
PRIMARY_SOFT = "#e6edfd"  # --primary-soft
OK = "#1c7c3a"  # --ok
DANGER = "#c42b2b"  # --danger
INFO = "#1d4ea8"  # --info
NEUTRAL = "#4a5563"  # --neutral
FONT = "system-ui, -apple-system, Segoe UI, Roboto, Helvetica Neue, Arial, sans-serif"

# The drawing's own units. Narrow on purpose: at 360 wide, 11-unit text is still about
# 10 px on a phone's 330 px column, and a desktop column scales it up.
WIDTH, HEIGHT = 360, 200
LEFT, RIGHT, BOTTOM = 46, 12, 30
# The element's height on a page: as wide as its column, but never drawn more than 1.1
# times its own size (a stylesheet may set height: auto instead). On a phone the drawing
# is narrower than that and sits in the middle of the element's height.
MAX_HEIGHT = 220
TITLE_Y, LEGEND_Y = 15, 31
FONT_SIZE, SMALL = 11, 10
MAX_X_TICKS = 5
Y_TICKS = 4


# ------------------------------------------------------------------------------- units


@dataclass(frozen=True)
class Unit:
    """How a value reads: short on an axis ("1.2k"), in full in a tooltip ("1,234")."""

    tick: Callable[[float], str]
    exact: Callable[[float], str]
    whole: bool  # counts: no axis tick between whole numbers


def compact(value: float) -> str:
    """1234 -> "1.2k", 2500000 -> "2.5M", 12 -> "12", 2.5 -> "2.5"."""
    size = abs(value)
    for limit, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if size >= limit:
            return f"{_trim(value / limit)}{suffix}"
    return _trim(value)


def _trim(value: float) -> str:
    """One decimal at most, and none when it is .0 ("12", "2.5", "10")."""
    text = f"{value:.1f}" if abs(value) < 100 else f"{value:.0f}"
    return text[:-2] if text.endswith(".0") else text


def _money_tick(value: float) -> str:
    return f"${compact(value)}" if abs(value) >= 1000 else f"${value:,.2f}"


COUNT = Unit(tick=compact, exact=lambda v: f"{v:,.0f}", whole=True)
MONEY = Unit(tick=_money_tick, exact=lambda v: f"${v:,.2f}", whole=False)
PER_SECOND = Unit(tick=lambda v: f"{compact(v)}/s", exact=lambda v: f"{v:,.1f}/s", whole=False)


# ------------------------------------------------------------------------------ series


@dataclass(frozen=True)
class Series:
    """One named row of values, one per bucket (bar chart), drawn in `colour`."""

    name: str
    values: Sequence[float]
    colour: str


@dataclass(frozen=True)
class Point:
    at: datetime
    value: float


# ------------------------------------------------------------------------------ charts


def line_chart(
    chart_id: str,
    title: str,
    points: Sequence[Point],
    unit: Unit,
    *,
    colour: str = PRIMARY,
    fill: str | None = None,
    empty: str = "No data yet",
    note: str = "",
) -> str:
    """A line through `points` (in time order) on a time axis; with `fill`, an area.

    Args:
        chart_id: unique on the page (the ids of the title and description derive from it).
        note: a sentence appended to the description (what the figures leave out).
    """
    if not points:
        return _empty(chart_id, title, empty, note)
    start, end = points[0].at, points[-1].at
    if end <= start:
        end = start + timedelta(seconds=1)
    peak = max(points, key=lambda point: point.value)
    last = points[-1]
    desc = (
        f"{title}, {_span(start, end)}: highest {unit.exact(peak.value)} at "
        f"{_moment(peak.at, start, end)}, last {unit.exact(last.value)} at "
        f"{_moment(last.at, start, end)}."
    )
    plot = _Plot(peak.value, unit, start, end, legend=False)
    parts = _frame(chart_id, title, _join(desc, note), plot)
    xy = [(plot.x(point.at), plot.y(point.value)) for point in points]
    line = " ".join(f"{x:.1f},{y:.1f}" for x, y in xy)
    if fill is not None:
        base = plot.y(0)
        area = f"{xy[0][0]:.1f},{base:.1f} {line} {xy[-1][0]:.1f},{base:.1f}"
        parts.append(f'<polygon points="{area}" fill="{fill}" stroke="none"/>')
    parts.append(
        f'<polyline points="{line}" fill="none" stroke="{colour}" stroke-width="2" '
        'stroke-linejoin="round" stroke-linecap="round"/>'
    )
    for point, (x, y) in zip(points, xy, strict=True):
        label = f"{_moment(point.at, start, end)}: {unit.exact(point.value)}"
        parts.append(
            f'<g class="point" data-at="{_iso(point.at)}" data-value="{point.value:.10g}">'
            f"<title>{_esc(label)}</title>"
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="7" fill="{SURFACE}" fill-opacity="0"/>'
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="{colour}"/></g>'
        )
    parts.append("</svg>")
    return "".join(parts)


def bar_chart(
    chart_id: str,
    title: str,
    starts: Sequence[datetime],
    step: timedelta,
    series: Sequence[Series],
    unit: Unit,
    *,
    empty: str = "No data yet",
    note: str = "",
) -> str:
    """Bars per time bucket (from each of `starts`, `step` long), the series side by side
    within a bucket, with a legend when there is more than one series."""
    if not starts or not any(value for row in series for value in row.values):
        return _empty(chart_id, title, empty, note)
    start, end = starts[0], starts[-1] + step
    top = max(value for row in series for value in row.values)
    totals = []
    for row in series:
        busiest = max(range(len(starts)), key=lambda i: row.values[i])
        totals.append(
            f"{row.name}: {unit.exact(sum(row.values))} in total"
            + (
                f", most {unit.exact(row.values[busiest])} in {_bucket(starts[busiest], step)}"
                if row.values[busiest]
                else ""
            )
        )
    desc = f"{title}, {_span(start, end)}, per {duration(step)}. " + "; ".join(totals) + "."
    plot = _Plot(top, unit, start, end, legend=len(series) > 1)
    parts = _frame(chart_id, title, _join(desc, note), plot)
    if len(series) > 1:
        parts.append(_legend(series))
    slot = plot.width / len(starts)
    gap = min(2.0, slot * 0.2)
    bar = (slot - gap) / len(series)
    for i, bucket in enumerate(starts):
        x0 = plot.left + i * slot
        values = ", ".join(f"{row.name} {unit.exact(row.values[i])}" for row in series)
        parts.append(
            f'<g class="bucket" data-start="{_iso(bucket)}">'
            f"<title>{_esc(_bucket(bucket, step))}: {_esc(values)}</title>"
            f'<rect x="{x0:.2f}" y="{plot.top}" width="{slot:.2f}" height="{plot.height}" '
            f'fill="{SURFACE}" fill-opacity="0"/>'
        )
        for j, row in enumerate(series):
            value = row.values[i]
            if not value:
                continue
            y = plot.y(value)
            parts.append(
                f'<rect data-series="{_esc(row.name)}" data-value="{value:.10g}" '
                f'x="{x0 + gap / 2 + j * bar:.2f}" y="{y:.2f}" width="{bar:.2f}" '
                f'height="{plot.y(0) - y:.2f}" fill="{row.colour}"/>'
            )
        parts.append("</g>")
    parts.append("</svg>")
    return "".join(parts)


# ------------------------------------------------------------------------------ layout


class _Plot:
    """The plotting area and its scales: time across, 0..a round top up."""

    def __init__(self, top: float, unit: Unit, start: datetime, end: datetime, legend: bool):
        self.ticks = _value_ticks(top, unit.whole)
        self.unit = unit
        self.start, self.end = start, end
        self.left = LEFT
        self.top = LEGEND_Y + 12 if legend else TITLE_Y + 13
        self.width = WIDTH - LEFT - RIGHT
        self.height = HEIGHT - BOTTOM - self.top

    def x(self, at: datetime) -> float:
        span = (self.end - self.start).total_seconds()
        return self.left + self.width * (at - self.start).total_seconds() / span

    def y(self, value: float) -> float:
        return self.top + self.height * (1 - value / self.ticks[-1])


def _frame(chart_id: str, title: str, desc: str, plot: _Plot) -> list[str]:
    """The opening tag, title, description, gridlines, axes and their labels."""
    parts = _open(chart_id, title, desc)
    bottom = plot.y(0)
    for value in plot.ticks:
        y = plot.y(value)
        parts.append(
            f'<line x1="{plot.left}" y1="{y:.1f}" x2="{plot.left + plot.width}" y2="{y:.1f}" '
            f'stroke="{AXIS if value == 0 else GRID}" stroke-width="1"/>'
            f'<text x="{plot.left - 5}" y="{y + 3.5:.1f}" text-anchor="end" '
            f'font-size="{SMALL}" fill="{MUTED}">{_esc(plot.unit.tick(value))}</text>'
        )
    step = round_step(plot.end - plot.start, MAX_X_TICKS)
    for tick in _time_ticks(plot.start, plot.end, step):
        x = plot.x(tick)
        parts.append(
            f'<line x1="{x:.1f}" y1="{bottom:.1f}" x2="{x:.1f}" y2="{bottom + 4:.1f}" '
            f'stroke="{AXIS}" stroke-width="1"/>'
            f'<text x="{x:.1f}" y="{bottom + 15:.1f}" text-anchor="middle" '
            f'font-size="{SMALL}" fill="{MUTED}">{_esc(_tick_label(tick, step, plot))}</text>'
        )
    parts.append(
        f'<text x="{WIDTH - RIGHT}" y="{HEIGHT - 3}" text-anchor="end" font-size="{SMALL}" '
        f'fill="{MUTED}">UTC</text>'
    )
    return parts


def _open(chart_id: str, title: str, desc: str) -> list[str]:
    ident = _esc(re.sub(r"[^A-Za-z0-9_-]", "-", chart_id))
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" width="100%" '
        f'height="{MAX_HEIGHT}" preserveAspectRatio="xMinYMid meet" '
        f'role="img" aria-labelledby="{ident}-title {ident}-desc" class="chart" '
        f'font-family="{FONT}" font-size="{FONT_SIZE}">'
        f'<title id="{ident}-title">{_esc(title)}</title>'
        f'<desc id="{ident}-desc">{_esc(desc)}</desc>'
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="{SURFACE}"/>'
        f'<text x="0" y="{TITLE_Y}" font-weight="600" fill="{TEXT}">{_esc(title)}</text>'
    ]


def _legend(series: Sequence[Series]) -> str:
    parts, x = [], float(LEFT)
    for row in series:
        parts.append(
            f'<rect x="{x:.1f}" y="{LEGEND_Y - 8}" width="9" height="9" fill="{row.colour}"/>'
            f'<text x="{x + 13:.1f}" y="{LEGEND_Y}" font-size="{SMALL}" fill="{TEXT}">'
            f"{_esc(row.name)}</text>"
        )
        # Legend names are ours ("Created", "Failed"): a rough width per character is enough.
        x += 13 + 6 * len(row.name) + 12
    return "".join(parts)


def _empty(chart_id: str, title: str, empty: str, note: str) -> str:
    parts = _open(chart_id, title, _join(f"{title}: {empty}.", note))
    parts.append(
        f'<rect x="{LEFT}" y="{TITLE_Y + 13}" width="{WIDTH - LEFT - RIGHT}" '
        f'height="{HEIGHT - BOTTOM - TITLE_Y - 13}" fill="none" stroke="{GRID}" '
        f'stroke-dasharray="4 3"/>'
        f'<text class="empty" x="{LEFT + (WIDTH - LEFT - RIGHT) / 2}" '
        f'y="{(HEIGHT - BOTTOM + TITLE_Y + 13) / 2 + 4}" text-anchor="middle" fill="{MUTED}">'
        f"{_esc(empty)}</text></svg>"
    )
    return "".join(parts)


# ------------------------------------------------------------------------------- ticks


def _value_ticks(top: float, whole: bool) -> list[float]:
    """0 and round steps (1, 2, 2.5 or 5 times a power of ten) up to at least `top`."""
    if top <= 0:
        return [0.0, 1.0]
    raw = top / Y_TICKS
    magnitude = 10 ** math.floor(math.log10(raw))
    multiples = (1, 2, 5, 10) if whole else (1, 2, 2.5, 5, 10)
    step = next(m * magnitude for m in multiples if m * magnitude >= raw)
    if whole:
        step = max(1.0, step)
    return [i * step for i in range(math.ceil(top / step - 1e-9) + 1)]


# Round steps for the time axis, shortest first.
_TIME_STEPS = [
    timedelta(seconds=s)
    for s in (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 14400,
              21600, 43200, 86400, 172800, 604800)
]  # fmt: skip
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def round_step(span: timedelta, most: int) -> timedelta:
    """The shortest round duration (1 s, 2 s, 5 s ... 1 h, 2 h ... 1 week) that cuts
    `span` into at most `most` pieces."""
    return next((s for s in _TIME_STEPS if span / s <= most), _TIME_STEPS[-1])


def _time_ticks(start: datetime, end: datetime, step: timedelta) -> list[datetime]:
    """The multiples of `step` (whole minutes, hours, days in UTC) from start to end."""
    first = _EPOCH + math.ceil((start - _EPOCH) / step) * step
    ticks = []
    while first <= end:
        ticks.append(first)
        first += step
    return ticks


def _tick_label(at: datetime, step: timedelta, plot: _Plot) -> str:
    if plot.end - plot.start > timedelta(days=2) and at.hour == 0:
        return f"{at:%b} {at.day}"
    if step >= timedelta(minutes=1):
        return f"{at:%H:%M}"
    return f"{at:%H:%M:%S}"


# ------------------------------------------------------------------------------- words


def _span(start: datetime, end: datetime) -> str:
    if start.date() == end.date() or end - start < timedelta(days=1):
        return f"{start:%b} {start.day}, {start:%H:%M}–{end:%H:%M} UTC"
    return f"{start:%b} {start.day} {start:%H:%M} to {end:%b} {end.day} {end:%H:%M} UTC"


def _moment(at: datetime, start: datetime, end: datetime) -> str:
    if end - start < timedelta(days=1):
        return f"{at:%H:%M:%S} UTC"
    return f"{at:%b} {at.day} {at:%H:%M} UTC"


def _bucket(start: datetime, step: timedelta) -> str:
    end = start + step
    return f"{start:%b} {start.day} {start:%H:%M}–{end:%H:%M} UTC"


def duration(step: timedelta) -> str:
    """A bucket's length in words: "hour", "6 hours"."""
    hours = step / timedelta(hours=1)
    if hours == 1:
        return "hour"
    if hours.is_integer():
        return f"{hours:.0f} hours"
    return f"{step.total_seconds():.0f} seconds"


def _join(desc: str, note: str) -> str:
    return f"{desc} {note}".strip()


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# Characters XML 1.0 does not allow at all (a job name is user input, and one of them would
# make the whole SVG unreadable); the rest is escaped.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")


def _esc(text: str) -> str:
    return html.escape(_NOT_XML.sub("", text), quote=True)
