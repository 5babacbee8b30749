"""The Jobs page in headless Chromium (issue 13, items 2 and 7): the search narrows the
table in place and its URL is bookmarkable; a bulk retry from the page shows what became
of each job and a real worker's progress shows in the rows and the status counts; at a
390 px wide phone the page never scrolls sideways and its controls stay usable."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa
from playwright.sync_api import Page, expect

from radar_app.extensions import db
from radar_app.models import BatchJob, JobStatus, utcnow
from tests.helpers import make_job

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}


def _job(app, name: str, status: JobStatus, **values) -> str:
    job_id = make_job(app, name=name, max_records=30)
    with app.app_context():
        db.session.execute(
            sa.update(BatchJob)
            .where(BatchJob.job_id == job_id)
            .values(status=status, completed_at=None if status.is_active else utcnow(), **values)
        )
        db.session.commit()
    return job_id


def _rows(page: Page):
    return page.locator("#jobs-table tbody tr[id^=job-row-]")


def _accept_confirmations(page: Page) -> list[str]:
    """Accept the bulk form's confirmation prompts; what they asked."""
    asked: list[str] = []

    def accept(dialog) -> None:
        asked.append(dialog.message)
        dialog.accept()

    page.on("dialog", accept)
    return asked


def test_search_narrows_the_table_and_the_url_is_bookmarkable(signed_in: Page, app) -> None:
    page = signed_in
    portland = _job(app, "Portland absentee", JobStatus.FAILED)
    _job(app, "Eugene flips", JobStatus.COMPLETED)
    _job(app, "Salem sample", JobStatus.FAILED)
    page.goto("/jobs")
    expect(_rows(page)).to_have_count(3)

    page.get_by_label("Search", exact=True).fill("portland")
    page.get_by_label("Status", exact=True).select_option("FAILED")
    page.get_by_role("button", name="Search", exact=True).click()
    expect(_rows(page)).to_have_count(1)
    expect(page.locator(f"#job-row-{portland}")).to_contain_text("Portland absentee")
    expect(page).to_have_url(re.compile(r"/jobs\?q=portland&status=FAILED"))
    # The status counts are the search's: one Portland job, failed.
    expect(page.locator('#job-counts [data-status="ALL"]')).to_have_text("1")

    page.reload()  # what a bookmark opens
    expect(_rows(page)).to_have_count(1)
    expect(page.get_by_label("Search", exact=True)).to_have_value("portland")
    expect(page.get_by_label("Status", exact=True)).to_have_value("FAILED")

    # A bad date is refused beside its field; the page swapped in place says why.
    page.get_by_label("Created from").fill("2026-03-01")
    page.get_by_label("Created to").fill("2026-02-01")
    page.get_by_role("button", name="Search", exact=True).click()
    expect(page.locator("#search-created_to-error")).to_have_text(
        "Created to: must not be below the lower bound"
    )
    expect(_rows(page)).to_have_count(0)


def test_bulk_retry_from_the_page(signed_in: Page, app, worker, simulator) -> None:
    page = signed_in
    first = _job(app, "Retry me first", JobStatus.FAILED)
    second = _job(app, "Retry me too", JobStatus.CANCELLED)
    done = _job(app, "Already done", JobStatus.COMPLETED)
    page.goto("/jobs")
    expect(page.locator('#job-counts [data-status="COMPLETED"]')).to_have_text("1")
    for job_id in (first, second, done):
        page.locator(f"#pick-{job_id}").check()
    asked = _accept_confirmations(page)
    page.get_by_role("button", name="Retry", exact=True).click()

    summary = page.locator("#bulk-summary")
    expect(summary).to_contain_text("Bulk retry: 2 of 3 jobs retried")
    expect(summary.locator(f'tr[data-job-id="{done}"]')).to_contain_text("not retryable")
    expect(summary.locator(f'tr[data-job-id="{first}"]')).to_contain_text("Retried")
    assert asked and asked[0].startswith("Retry or cancel the chosen jobs?")
    # The rows follow the real worker to the end, and the counts follow the rows.
    for job_id in (first, second):
        expect(page.locator(f"#job-row-{job_id} [data-status]")).to_have_text(
            "Completed", timeout=60_000
        )
    expect(page.locator('#job-counts [data-status="COMPLETED"]')).to_have_text("3", timeout=15_000)
    expect(page.locator('#job-counts [data-status="FAILED"]')).to_have_text("0")


def test_a_ticked_row_stays_ticked_while_it_polls(signed_in: Page, app) -> None:
    page = signed_in
    running = _job(app, "Running", JobStatus.PROCESSING, started_at=utcnow())
    page.goto("/jobs")
    page.locator(f"#pick-{running}").check()
    # The row replaces itself every 2 s; wait for a few of its polls.
    for _ in range(2):
        with page.expect_response(re.compile(rf"/jobs/{running}/row")):
            pass
    expect(page.locator(f"#pick-{running}")).to_be_checked()
    _accept_confirmations(page)
    page.get_by_role("button", name="Cancel jobs").click()
    expect(page.locator("#bulk-summary")).to_contain_text("Stopping")


def test_the_jobs_page_fits_a_390_px_screen(signed_in: Page, app) -> None:
    page = signed_in
    page.set_viewport_size(PHONE)
    for n in range(3):
        _job(app, f"A rather long job name for a small screen, number {n}", JobStatus.FAILED)
    page.goto("/jobs?q=long")
    expect(_rows(page)).to_have_count(3)
    width = page.evaluate("document.scrollingElement.scrollWidth")
    assert width <= PHONE["width"], f"the page scrolls sideways: {width} px wide"
    # The Jobs tab and the bulk controls are on screen and usable.
    expect(page.get_by_role("link", name="Jobs", exact=True)).to_be_in_viewport()
    retry = page.get_by_role("button", name="Retry", exact=True)
    retry.scroll_into_view_if_needed()
    expect(retry).to_be_in_viewport()
    first = _rows(page).first.locator("input.pick")
    first.check()
    _accept_confirmations(page)
    retry.click()
    expect(page.locator("#bulk-summary")).to_contain_text("Bulk retry: 1 of 1 job retried")
    width = page.evaluate("document.scrollingElement.scrollWidth")
    assert width <= PHONE["width"], f"with the summary the page scrolls sideways: {width} px"
