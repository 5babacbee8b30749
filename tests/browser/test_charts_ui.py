"""Charts in Chromium (issue 13, item 4): readable with JavaScript off on a 390 px phone,
and a running job's charts redrawn while the job page polls."""

from __future__ import annotations

import re
from datetime import timedelta

import sqlalchemy as sa
from flask import Flask
from playwright.sync_api import Browser, Page, expect

from radar_app.extensions import db
from radar_app.models import BatchJob, JobStatus, LedgerEntry, User, utcnow
from tests.browser.conftest import sign_in
from tests.helpers import job_row, make_job

PHONE = {"width": 390, "height": 844}


def add_purchase(app: Flask, job_id: str, records: int, cost: float, seconds_ago: float) -> None:
    """A billed chunk as the runner stores it: a ledger row and the job's counters."""
    job = job_row(app, job_id)
    with app.app_context():
        owner = db.session.scalar(sa.select(User.id).where(User.email == "owner@example.com"))
        db.session.add(
            LedgerEntry(
                batch_job_id=job.id,
                user_id=owner,
                created_at=utcnow() - timedelta(seconds=seconds_ago),
                page=1,
                outcome=LedgerEntry.BILLED,
                requested=records,
                result_count=records,
                total_cost=cost,
            )
        )
        db.session.execute(
            sa.update(BatchJob)
            .where(BatchJob.id == job.id)
            .values(
                processed_records=BatchJob.processed_records + records,
                purchased_count=BatchJob.purchased_count + records,
                cost_total=BatchJob.cost_total + cost,
                heartbeat_at=utcnow(),
                updated_at=utcnow(),
            )
        )
        db.session.commit()


def test_charts_read_without_javascript_on_a_phone(
    browser: Browser, live_server: str, app: Flask, user
):
    job_id = make_job(
        app,
        name="Phone check",
        status=JobStatus.COMPLETED,
        started_at=utcnow() - timedelta(minutes=3),
        completed_at=utcnow(),
    )
    add_purchase(app, job_id, 400, 8.0, seconds_ago=120)
    add_purchase(app, job_id, 400, 8.0, seconds_ago=30)
    context = browser.new_context(base_url=live_server, viewport=PHONE, java_script_enabled=False)
    try:
        page = context.new_page()
        sign_in(page)
        expect(page).to_have_url(re.compile(r"/jobs$"))
        page.get_by_role("link", name="Dashboard").click()
        charts = page.locator("svg.chart")
        expect(charts).to_have_count(4)
        for i in range(4):
            box = charts.nth(i).bounding_box()
            assert box is not None and box["width"] > 300 and box["x"] + box["width"] <= 390
        expect(page.locator("#bought-1")).to_have_text("800")
        assert page.evaluate("document.documentElement.scrollWidth") <= 390

        page.goto(f"/jobs/{job_id}")
        job_charts = page.locator("#job-charts svg.chart")
        expect(job_charts).to_have_count(2)
        expect(job_charts.first).to_be_visible()
        expect(page.locator("#job-charts")).to_contain_text("800 bought")
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        page.get_by_role("link", name="cost (SVG)").click()
        expect(page.locator("svg")).to_have_attribute("role", "img")
    finally:
        context.close()


def test_a_running_jobs_charts_redraw_as_it_buys(signed_in: Page, app: Flask):
    job_id = make_job(
        app,
        name="Live charts",
        status=JobStatus.PROCESSING,
        started_at=utcnow() - timedelta(seconds=60),
        run_started_at=utcnow() - timedelta(seconds=60),
        heartbeat_at=utcnow(),
    )
    add_purchase(app, job_id, 400, 8.0, seconds_ago=40)
    signed_in.goto(f"/jobs/{job_id}")
    section = signed_in.locator("#job-charts")
    expect(section).to_contain_text("400 bought · $8.00")
    add_purchase(app, job_id, 400, 9.0, seconds_ago=0)
    # The status panel's poll sees the job changed and announces job-updated.
    expect(section).to_contain_text("800 bought · $17.00", timeout=15_000)
    expect(section.locator("svg.chart desc").nth(1)).to_contain_text("$17.00 spent in all")
