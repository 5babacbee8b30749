"""Charts (issue 13, item 4): a job's records per second and cost, the system's jobs and
records per hour over 24 hours and 7 days, drawn on the server as SVG.

The figures are read back from the SVG a user gets (each bar's and point's data-* and
<title>), after putting jobs, transitions and ledger rows at known times; every SVG is
parsed as XML, so a chart a browser could not draw fails here.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from radar_app import activity, charts
from radar_app.extensions import db
from radar_app.models import BatchJob, JobStatus, JobTransition, LedgerEntry, User, utcnow
from tests.conftest import csrf_token_from
from tests.helpers import job_row, make_job, wait_for
from tests.search_helpers import run_search

SVG = "{http://www.w3.org/2000/svg}"
HX = {"HX-Request": "true"}


# ------------------------------------------------------------------------- helpers


def parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg"
    return root


def inline_svgs(html: str) -> list[ET.Element]:
    """The SVG charts inside a page, each parsed on its own."""
    return [parse(match) for match in re.findall(r"<svg\b.*?</svg>", html, re.S)]


def title_of(svg: ET.Element) -> str:
    return svg.findtext(f"{SVG}title") or ""


def chart(svgs: list[ET.Element], title: str) -> ET.Element:
    found = [svg for svg in svgs if title_of(svg) == title]
    assert len(found) == 1, [title_of(svg) for svg in svgs]
    return found[0]


def bars(svg: ET.Element) -> dict[str, dict[str, float]]:
    """{bucket start (ISO, UTC): {series: value}} from the bars drawn (zero: no bar)."""
    found: dict[str, dict[str, float]] = {}
    for bucket in svg.iter(f"{SVG}g"):
        if bucket.get("class") != "bucket":
            continue
        values = found.setdefault(bucket.attrib["data-start"], {})
        for rect in bucket.iter(f"{SVG}rect"):
            if "data-series" in rect.attrib:
                values[rect.attrib["data-series"]] = float(rect.attrib["data-value"])
    return found


def bucket_titles(svg: ET.Element) -> dict[str, str]:
    return {
        g.attrib["data-start"]: g.findtext(f"{SVG}title") or ""
        for g in svg.iter(f"{SVG}g")
        if g.get("class") == "bucket"
    }


def points(svg: ET.Element) -> list[tuple[str, float, str]]:
    """(time, value, tooltip) of each point of a line chart."""
    return [
        (g.attrib["data-at"], float(g.attrib["data-value"]), g.findtext(f"{SVG}title") or "")
        for g in svg.iter(f"{SVG}g")
        if g.get("class") == "point"
    ]


def iso(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


def user_id(app: Flask, email: str) -> int:
    with app.app_context():
        found = db.session.scalar(sa.select(User.id).where(User.email == email))
        assert found is not None
        return found


def batch_id(app: Flask, job_id: str) -> int:
    return job_row(app, job_id).id


def add_rows(app: Flask, *rows: Any) -> None:
    with app.app_context():
        db.session.add_all(rows)
        db.session.commit()


def bought(job: int, owner: int, at: datetime, records: int | None, cost: float | None) -> Any:
    """A ledger row: billed (records and cost known) or, with None, possibly billed."""
    return LedgerEntry(
        batch_job_id=job,
        user_id=owner,
        created_at=at,
        page=1,
        outcome=LedgerEntry.BILLED if records is not None else LedgerEntry.POSSIBLY_BILLED,
        requested=records or 400,
        result_count=records,
        total_cost=cost,
    )


def moved(job: int, at: datetime, to: JobStatus) -> JobTransition:
    return JobTransition(
        batch_job_id=job,
        created_at=at,
        from_status=JobStatus.PROCESSING,
        to_status=to,
        event="complete" if to == JobStatus.COMPLETED else "fail",
        actor="worker",
        reason="test",
    )


@pytest.fixture
def signed_in(client: FlaskClient, auth, user) -> FlaskClient:
    assert auth.login().status_code == 302
    return client


# --------------------------------------------------------------- the system's charts


@pytest.fixture
def history(app: Flask, user, other_user) -> dict[str, Any]:
    """Jobs, state changes and purchases of two users at known times in the last hours.

    The hour H is the one before now's; everything sits in H-1 ... H-5, so the bars
    asserted stay inside the 24-hour window even if the clock passes an hour meanwhile.
    """
    hour = utcnow().replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    h = {k: hour - timedelta(hours=k) for k in range(6)}
    mine = [
        make_job(app, name=f"mine {i}", created_at=h[2] + timedelta(minutes=m))
        for i, m in enumerate((5, 10, 50))
    ]
    old = make_job(app, name="older", created_at=h[5] + timedelta(minutes=1))
    theirs = make_job(app, "other@example.com", name="theirs", created_at=h[2])
    owner, other = user_id(app, "owner@example.com"), user_id(app, "other@example.com")
    first, second, third = (batch_id(app, j) for j in mine)
    add_rows(
        app,
        moved(first, h[2] + timedelta(minutes=20), JobStatus.COMPLETED),
        moved(second, h[2] + timedelta(minutes=40), JobStatus.COMPLETED),
        # Failed, retried, failed again: two failures, each in its own hour.
        moved(batch_id(app, old), h[3] + timedelta(minutes=30), JobStatus.FAILED),
        moved(batch_id(app, old), h[1] + timedelta(minutes=1), JobStatus.FAILED),
        moved(third, h[1], JobStatus.FAILED),  # on the hour: the hour it starts
        moved(batch_id(app, theirs), h[2] + timedelta(minutes=5), JobStatus.FAILED),
        bought(first, owner, h[2] + timedelta(minutes=30), 400, 8.0),
        # The last microsecond of H-2 is still H-2.
        bought(first, owner, h[2] + timedelta(minutes=59, seconds=59.999999), 250, 5.0),
        bought(second, owner, h[1], 100, 2.0),
        bought(second, owner, h[2] + timedelta(minutes=31), None, None),  # possibly billed
        bought(batch_id(app, theirs), other, h[2] + timedelta(minutes=3), 1000, 20.0),
        # Outside both windows.
        bought(first, owner, hour - timedelta(days=8), 7000, 140.0),
    )
    return {"h": h, "owner": owner, "other": other}


def test_a_users_hourly_bars_count_exactly_their_jobs_and_purchases(
    signed_in: FlaskClient, history
):
    h = history["h"]
    page = signed_in.get("/dashboard")
    assert page.status_code == 200
    svgs = inline_svgs(page.text)
    jobs = bars(chart(svgs, "Jobs per hour"))
    records = bars(chart(svgs, "Records bought per hour"))
    assert len(bucket_titles(chart(svgs, "Jobs per hour"))) == 24
    assert jobs[iso(h[2])] == {"Created": 3, "Completed": 2}
    assert jobs[iso(h[1])] == {"Failed": 2}
    assert jobs[iso(h[3])] == {"Failed": 1}
    assert jobs[iso(h[5])] == {"Created": 1}
    assert records[iso(h[2])] == {"Bought": 650}
    assert records[iso(h[1])] == {"Bought": 100}
    # Nothing else anywhere: the other user's job and purchases are not theirs.
    assert sum(sum(v.values()) for v in jobs.values()) == 3 + 2 + 2 + 1 + 1
    assert sum(sum(v.values()) for v in records.values()) == 750
    # Each bucket's tooltip names its hour and every series' figure.
    tip = bucket_titles(chart(svgs, "Jobs per hour"))[iso(h[2])]
    assert f"{h[2]:%H:%M}–{h[1]:%H:%M} UTC" in tip
    assert "Created 3, Completed 2, Failed 0" in tip
    assert "$15.00" in page.text  # spent in 24 h: 8 + 5 + 2 (not the possibly billed)


def test_an_admin_sees_every_users_jobs_and_purchases(client: FlaskClient, auth, admin, history):
    h = history["h"]
    assert auth.login("admin@example.com").status_code == 302
    page = client.get("/dashboard")
    svgs = inline_svgs(page.text)
    jobs = bars(chart(svgs, "Jobs per hour"))
    assert jobs[iso(h[2])] == {"Created": 4, "Completed": 2, "Failed": 1}
    assert bars(chart(svgs, "Records bought per hour"))[iso(h[2])] == {"Bought": 1650}
    assert "Every user's jobs" in page.text


def test_settled_buckets_are_read_once_for_a_while_and_the_open_one_every_time(app: Flask, history):
    """The dashboard keeps the buckets that ended 15 minutes ago for a while (twenty
    operators polling read the same week again and again) and reads the open bucket at
    every request: a job created now shows at once; a row stamped into a settled hour
    (nothing in the app writes one) shows once the kept buckets expire."""
    h, owner = history["h"], history["owner"]
    settled = activity.SettledBuckets(ttl=1.0)
    now = utcnow()

    def read(kept: activity.SettledBuckets | None) -> activity.SystemActivity:
        with app.app_context():
            return activity.system_activity(db.session, activity.DAY, now, owner, kept)

    whole = read(None)
    assert read(settled) == whole  # the settled part, read and kept, plus the open one
    make_job(app, name="just now", created_at=now)
    make_job(app, name="stamped late", created_at=h[3] + timedelta(minutes=7))
    fresh = read(None)
    assert fresh.created[-1] == whole.created[-1] + 1
    assert sum(fresh.created) == sum(whole.created) + 2
    kept = read(settled)
    assert kept.created[-1] == fresh.created[-1]  # the open bucket: read again
    assert kept.created[:-2] == whole.created[:-2]  # H-3 as it was kept
    assert wait_for(lambda: read(settled) == fresh, timeout=10, what="the kept buckets to expire")


def test_the_week_is_counted_in_six_hour_buckets(app: Flask, history):
    h, owner = history["h"], history["owner"]
    now = utcnow()
    with app.app_context():
        week = activity.system_activity(db.session, activity.WEEK, now, owner)
        everyone = activity.system_activity(db.session, activity.WEEK, now, None)
    assert week.step == timedelta(hours=6)
    assert len(week.starts) == 28
    assert all(start.hour % 6 == 0 and start.minute == 0 for start in week.starts)
    assert week.starts[-1] <= now < week.starts[-1] + week.step

    def in_bucket(at: datetime) -> int:
        return next(i for i, s in enumerate(week.starts) if s <= at < s + week.step)

    expected_created = [0] * 28
    for at in (h[2], h[2], h[2], h[5]):
        expected_created[in_bucket(at)] += 1
    assert week.created == expected_created
    assert sum(week.completed) == 2 and sum(week.failed) == 3
    assert sum(week.bought) == 750  # the 7,000 of eight days ago are outside
    assert sum(week.spent) == pytest.approx(15.0)
    assert sum(everyone.bought) == 1750 and sum(everyone.failed) == 4


def test_no_activity_draws_an_empty_chart_that_says_so(signed_in: FlaskClient):
    page = signed_in.get("/dashboard")
    svgs = inline_svgs(page.text)
    assert len(svgs) == 4  # jobs and records, for 24 hours and 7 days
    empty = chart(svgs, "Jobs per hour")
    assert "No jobs in the last 24 hours" in "".join(empty.itertext())
    assert not bars(empty)


def test_the_dashboard_needs_a_sign_in_and_is_in_the_navigation(client: FlaskClient, auth, user):
    response = client.get("/dashboard")
    assert response.status_code == 302
    assert "/auth/login" in response.headers["Location"]
    assert auth.login().status_code == 302
    page = client.get("/dashboard").text
    assert re.search(r'<a href="/dashboard" aria-current="page">Dashboard</a>', page)
    assert '<a href="/dashboard"' in client.get("/jobs").text


# --------------------------------------------------------------------- a job's charts


@pytest.fixture
def finished_job(app: Flask, user) -> dict[str, Any]:
    """A job that ran two minutes and bought two chunks (and lost one response)."""
    start = datetime(2026, 3, 2, 9, 0, 0, tzinfo=UTC)
    job_id = make_job(
        app,
        name="Portland flips",
        status=JobStatus.COMPLETED,
        started_at=start,
        completed_at=start + timedelta(seconds=120),
        reused_count=150,
    )
    job, owner = batch_id(app, job_id), user_id(app, "owner@example.com")
    add_rows(
        app,
        bought(job, owner, start + timedelta(seconds=30), 400, 8.0),
        bought(job, owner, start + timedelta(seconds=60), None, None),
        bought(job, owner, start + timedelta(seconds=91), 400, 8.5),
    )
    return {"job_id": job_id, "start": start}


def test_a_jobs_rate_and_cost_come_from_its_ledger(signed_in: FlaskClient, finished_job):
    job_id, start = finished_job["job_id"], finished_job["start"]
    response = signed_in.get(f"/jobs/{job_id}/charts/rate.svg")
    assert response.status_code == 200
    assert response.mimetype == "image/svg+xml"
    rate = points(parse(response.text))
    # Two minutes in 5-second intervals. Each chunk's 400 records count over the time
    # since the chunk before (the first: since the start), so the rate is the pace: 400
    # in the first 30 s, 400 in the 60 s from 0:31 to 1:31, nothing after.
    assert len(rate) == 24
    by_time = {at: value for at, value, _ in rate}
    assert by_time[iso(start + timedelta(seconds=5))] == pytest.approx(400 / 30)
    assert by_time[iso(start + timedelta(seconds=35))] == pytest.approx(4 * 400 / 60 / 5)
    assert by_time[iso(start + timedelta(seconds=60))] == pytest.approx(400 / 60)
    assert by_time[iso(start + timedelta(seconds=95))] == pytest.approx(1 * 400 / 60 / 5)
    assert by_time[iso(start + timedelta(seconds=100))] == 0
    assert sum(value for _, value, _ in rate) * 5 == pytest.approx(800)
    assert "09:00:05 UTC: 13.3/s" in [tip for _, _, tip in rate]

    cost = parse(signed_in.get(f"/jobs/{job_id}/charts/cost.svg").text)
    cumulative = points(cost)
    assert cumulative[0][:2] == (iso(start), 0)
    assert cumulative[-1][:2] == (iso(start + timedelta(seconds=120)), 16.5)
    assert [v for _, v, _ in cumulative] == sorted(v for _, v, _ in cumulative)
    assert "$16.50" in cumulative[-1][2]
    desc = cost.findtext(f"{SVG}desc") or ""
    assert "$16.50 spent in all" in desc and "Portland flips" in desc
    rate_desc = parse(response.text).findtext(f"{SVG}desc") or ""
    assert "800 records bought in all" in rate_desc and "Reused records (150)" in rate_desc


def test_a_real_runs_charts_add_up_to_what_it_bought(signed_in: FlaskClient, app, run_worker):
    """A job run by a worker through the simulator: its charts and the dashboard count
    exactly the records and money its counters say it bought."""
    token = csrf_token_from(signed_in.get("/search").text)
    form = {"csrf_token": token, "background": "y", "field_set": "essentials"}
    response = run_search(signed_in, {**form, "state": "OR", "county": "41051"})
    assert response.status_code == 302, response.text
    job_id = response.headers["Location"].rsplit("/", 1)[1]
    run_worker()
    job = job_row(app, job_id)
    assert job.status == JobStatus.COMPLETED and job.purchased_count == 2000
    svg = parse(signed_in.get(f"/jobs/{job_id}/charts/cost.svg").text)
    assert points(svg)[-1][1] == pytest.approx(job.cost_total)
    desc = svg.findtext(f"{SVG}desc") or ""
    assert f"${job.cost_total:,.2f} spent in all" in desc
    rate = parse(signed_in.get(f"/jobs/{job_id}/charts/rate.svg").text)
    assert f"{job.purchased_count:,} records bought in all" in (rate.findtext(f"{SVG}desc") or "")
    assert any(value > 0 for _, value, _ in points(rate))
    records = bars(chart(inline_svgs(signed_in.get("/dashboard").text), "Records bought per hour"))
    assert sum(v.get("Bought", 0) for v in records.values()) == job.purchased_count


def test_the_job_page_shows_its_charts_inline(signed_in: FlaskClient, finished_job):
    job_id = finished_job["job_id"]
    page = signed_in.get(f"/jobs/{job_id}").text
    section = re.search(r'<section id="job-charts".*?</section>', page, re.S)
    assert section, "the job page has no charts section"
    svgs = inline_svgs(section.group(0))
    assert [title_of(svg) for svg in svgs] == ["Records bought per second", "Cost so far"]
    assert "<script" not in section.group(0)
    # Redrawn by htmx when the status panel says the job changed: the fragment alone.
    fragment = signed_in.get(f"/jobs/{job_id}/charts", headers=HX)
    assert fragment.status_code == 200
    assert 'id="job-charts"' in fragment.text and "<html" not in fragment.text
    assert 'hx-trigger="job-updated from:body"' in fragment.text


def test_a_job_that_bought_nothing_yet_has_empty_charts(signed_in: FlaskClient, app, user):
    job_id = make_job(app, name="queued")
    for name in ("rate", "cost"):
        svg = parse(signed_in.get(f"/jobs/{job_id}/charts/{name}.svg").text)
        assert "No purchases yet" in "".join(svg.itertext())
        assert points(svg) == []
    reused = make_job(app, name="all reused", status=JobStatus.COMPLETED, reused_count=400)
    svg = parse(signed_in.get(f"/jobs/{reused}/charts/rate.svg").text)
    assert "every record so far was reused" in "".join(svg.itertext())


def test_another_users_job_charts_are_not_found(app, client: FlaskClient, auth, user, other_user):
    job_id = make_job(app, name="mine")
    anonymous = client.get(f"/jobs/{job_id}/charts/rate.svg")
    assert anonymous.status_code == 302 and "/auth/login" in anonymous.headers["Location"]
    assert auth.login("other@example.com").status_code == 302
    for path in ("charts/rate.svg", "charts/cost.svg", "charts"):
        response = client.get(f"/jobs/{job_id}/{path}")
        assert response.status_code == 404, path
        assert "mine" not in response.text


def test_a_hostile_job_name_is_escaped(signed_in: FlaskClient, app, finished_job):
    name = "<script>alert(1)</script>\"' & ]]> \x01end"
    with app.app_context():
        db.session.execute(
            sa.update(BatchJob).where(BatchJob.job_id == finished_job["job_id"]).values(name=name)
        )
        db.session.commit()
    for path in ("rate.svg", "cost.svg"):
        text = signed_in.get(f"/jobs/{finished_job['job_id']}/charts/{path}").text
        svg = parse(text)  # well-formed: the control character is dropped, the rest escaped
        assert "<script" not in text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;&quot;&#x27; &amp; ]]&gt; end" in text
        assert "<script>alert(1)</script>\"' & ]]> end" in (svg.findtext(f"{SVG}desc") or "")
        assert svg.find(f".//{SVG}script") is None


# ----------------------------------------------------------------- charts.py on its own


def test_every_text_is_escaped_and_the_svg_is_well_formed():
    hostile = '<script>x</script>" onload="alert(1)'
    start = datetime(2026, 1, 1, tzinfo=UTC)
    svg = charts.bar_chart(
        'id" onload="x',
        hostile,
        [start, start + timedelta(hours=1)],
        timedelta(hours=1),
        [charts.Series(hostile, [1, 2], charts.PRIMARY)],
        charts.COUNT,
        note=hostile,
    )
    root = parse(svg)
    assert "<script" not in svg and root.find(f".//{SVG}script") is None
    assert all(not key.startswith("on") for el in root.iter() for key in el.attrib)
    assert title_of(root) == hostile
    # The accessible name points at the chart's own title and description.
    labelled = root.attrib["aria-labelledby"].split()
    ids = {el.get("id") for el in root.iter()}
    assert set(labelled) <= ids and root.attrib["role"] == "img"


def test_a_line_chart_has_a_tooltip_per_point_and_scales_by_viewbox():
    start = datetime(2026, 1, 1, 12, tzinfo=UTC)
    series = [charts.Point(start + timedelta(minutes=i), float(i * 100)) for i in range(6)]
    root = parse(charts.line_chart("c", "Rate", series, charts.PER_SECOND))
    assert root.attrib["viewBox"] == f"0 0 {charts.WIDTH} {charts.HEIGHT}"
    assert root.attrib["width"] == "100%" and root.attrib["height"] == str(charts.MAX_HEIGHT)
    assert [tip for _, _, tip in points(root)][-1] == "12:05:00 UTC: 500.0/s"
    labels = [t.text for t in root.iter(f"{SVG}text")]
    assert "600/s" in labels and "12:00" in labels  # a round top tick, a round time tick
    assert "highest 500.0/s at 12:05:00 UTC" in (root.findtext(f"{SVG}desc") or "")


@pytest.mark.parametrize(
    ("value", "count", "money"),
    [
        (0, "0", "$0.00"),
        (3.4, "3.4", "$3.40"),
        (12, "12", "$12.00"),
        (999, "999", "$999.00"),
        (1234, "1.2k", "$1.2k"),
        (25_000, "25k", "$25k"),
        (2_500_000, "2.5M", "$2.5M"),
    ],
)
def test_tick_labels_read_in_short_units(value: float, count: str, money: str):
    assert charts.COUNT.tick(value) == count
    assert charts.MONEY.tick(value) == money


def test_counts_get_whole_ticks():
    start = datetime(2026, 1, 1, tzinfo=UTC)
    root = parse(
        charts.bar_chart(
            "c",
            "Jobs",
            [start],
            timedelta(hours=1),
            [charts.Series("A", [3], "#000")],
            charts.COUNT,
        )
    )
    ticks = [t.text for t in root.iter(f"{SVG}text") if t.get("text-anchor") == "end"]
    assert ticks[:4] == ["0", "1", "2", "3"]
