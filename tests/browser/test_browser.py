"""The UI in headless Chromium against a live server and real worker processes.

Every wait is Playwright's auto-waiting `expect(...)` with a timeout: no sleeps. A
`window` marker set after the job page loads proves the page was never reloaded.
"""

from __future__ import annotations

import csv
import os
import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from radar_app.models import JobStatus
from tests.browser.conftest import sign_in
from tests.conftest import ARTIFACTS, PASSWORD, wait_until_listening
from tests.helpers import job_row

pytestmark = pytest.mark.browser

JOB_URL = re.compile(r"/jobs/[0-9a-f]{32}$")
DOCS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


def submit_search(
    page: Page,
    *,
    state: str,
    county: str | None = None,
    name: str | None = None,
    background: bool = True,
) -> str:
    """Fill in the search form, run it and return the id of the job page it lands on."""
    page.goto("/search")
    page.get_by_label("State", exact=True).select_option(state)
    if county:
        page.get_by_label("County", exact=True).fill(county)
    if name:
        page.get_by_label("Job name").fill(name)
    if not background:
        page.get_by_label("Process in background").uncheck()
    page.get_by_role("button", name="Run search").click()
    # A search that buys records asks first; one that buys nothing starts at once.
    confirm = page.locator("#confirm-button")
    expect(page.locator("#confirm-button, #job-progress").first).to_be_visible()
    if confirm.count():
        confirm.click()
    expect(page).to_have_url(JOB_URL)
    return page.url.rsplit("/", 1)[1]


def status_badge(page: Page):
    return page.locator("#job-progress .badge[data-status]")


def mark_page(page: Page) -> None:
    page.evaluate("window.__notReloaded = true")


def assert_not_reloaded(page: Page) -> None:
    assert page.evaluate("window.__notReloaded === true"), "the page was reloaded"


def test_sign_in_and_out(page: Page, user) -> None:
    page.goto("/jobs")
    expect(page).to_have_url(re.compile(r"/auth/login\?next=/jobs$"))
    sign_in(page, user.email, "not the password")
    expect(page.locator(".alert-error")).to_have_text("Wrong email or password.")

    sign_in(page, user.email, PASSWORD)
    expect(page).to_have_url(re.compile(r"/jobs$"))
    expect(page.locator(".topbar")).to_contain_text(user.email)
    expect(page.get_by_role("heading", name="Jobs")).to_be_visible()

    page.get_by_role("button", name="Sign out").click()
    expect(page.locator(".flashes")).to_contain_text("You have been signed out.")
    page.goto("/jobs")
    expect(page).to_have_url(re.compile(r"/auth/login"))


def test_preview_a_search_without_reloading(signed_in: Page, simulator) -> None:
    page = signed_in
    page.goto("/search")
    mark_page(page)
    page.get_by_role("button", name="Preview count").click()
    expect(page.locator("#preview")).to_contain_text("Choose where to search")

    page.get_by_label("State", exact=True).select_option("OR")
    page.get_by_label("County", exact=True).fill("41051")
    page.get_by_role("button", name="Preview count").click()
    expect(page.locator("#preview-count")).to_have_text("2,000")
    expect(page.locator("#preview-pages")).to_have_text("5 pages of 400")
    assert_not_reloaded(page)
    assert [r for r in simulator.stats()["requests"] if r["purchase"] == 1] == []


def test_background_job_runs_live_to_completion_then_csv(
    signed_in: Page, app, simulator, start_worker
) -> None:
    page = signed_in
    # Slow enough (8 requests x 250 ms) that the page opens before the job finishes.
    simulator.configure(latency_ms=250)
    start_worker()
    job_id = submit_search(page, state="OR", county="41051", name="Multnomah, live")
    mark_page(page)
    bar = page.locator("#job-progress-bar")
    assert int(bar.get_attribute("aria-valuenow")) < 100
    expect(page.locator("#job-progress")).to_have_attribute("hx-trigger", "every 2s")

    expect(status_badge(page)).to_have_text("Completed", timeout=30_000)
    expect(bar).to_have_attribute("aria-valuenow", "100")
    expect(page.locator("#job-percent")).to_have_text("100%")
    expect(page.locator("#leads-total")).to_have_text("2,000")  # the leads section refreshed
    expect(page.locator("#job-log")).to_contain_text("Completed: 2,000 leads stored")
    # The finished panel has no trigger left: polling stopped by itself.
    expect(page.locator("#job-progress")).not_to_have_attribute("hx-trigger", re.compile(".*"))
    assert_not_reloaded(page)

    # The notification poll (every 5 s) brings a toast linking to the job; it can be closed.
    toast = page.locator("#toasts .toast")
    expect(toast).to_contain_text("Multnomah, live", timeout=10_000)
    expect(toast.get_by_role("link")).to_have_attribute("href", f"/jobs/{job_id}")
    toast.get_by_role("button", name="Dismiss").click()
    expect(toast).to_have_count(0)

    with page.expect_download() as download_info:
        page.locator("#download-csv").click()
    download = download_info.value
    assert download.suggested_filename == f"radar-{job_id[:8]}-leads.csv"
    with open(download.path(), newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0][:3] == ["RadarID", "Address", "City"]
    assert len(rows) == 1 + 2000


def test_cancel_a_running_job(signed_in: Page, app, simulator, start_worker) -> None:
    page = signed_in
    # 10,000 records: 10 snapshot pages and 25 purchases, 500 ms each.
    simulator.configure(latency_ms=500)
    start_worker()
    job_id = submit_search(page, state="OR", name="Oregon, to cancel")

    # The Jobs tab row of a running job updates itself.
    page.goto("/jobs")
    row = page.locator(f"#job-row-{job_id}")
    expect(row.locator(".badge")).to_have_text("Processing", timeout=15_000)
    # Buying starts after the free snapshot of 10,000 RadarIDs (10 requests).
    expect(row.get_by_role("progressbar")).not_to_have_attribute(
        "aria-valuenow", "0", timeout=20_000
    )

    page.locator(f"#job-row-{job_id} a.job-name").click()
    expect(page).to_have_url(JOB_URL)
    mark_page(page)
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Cancel job").click()
    expect(page.locator("#job-progress")).to_contain_text("Cancel requested")
    expect(status_badge(page)).to_have_text("Cancelled", timeout=15_000)
    expect(page.get_by_role("button", name="Retry")).to_be_visible()
    assert_not_reloaded(page)
    job = job_row(app, job_id)
    assert job.status == JobStatus.CANCELLED and job.processed_records < 10_000


def test_a_failed_job_is_retried_to_completion(
    signed_in: Page, app, simulator, start_worker
) -> None:
    page = signed_in
    # The third purchase (records 801-1,200) answers 503 until the fault is cleared.
    simulator.configure(scripted_faults=[{"kind": "503", "purchase": 1, "after": 2, "times": -1}])
    start_worker()
    submit_search(page, state="OR", county="41051", name="Multnomah, flaky")
    mark_page(page)
    expect(status_badge(page)).to_have_text("Failed", timeout=30_000)
    expect(page.locator("#job-error-details")).to_contain_text("503")
    expect(page.locator("#job-progress-bar")).to_have_attribute("aria-valuenow", "40")

    simulator.configure(scripted_faults=[])
    page.get_by_role("button", name="Retry").click()
    expect(status_badge(page)).to_have_text("Completed", timeout=30_000)
    expect(page.locator("#job-progress-bar")).to_have_attribute("aria-valuenow", "100")
    expect(page.locator("#leads-total")).to_have_text("2,000")
    assert_not_reloaded(page)


def test_screenshots_for_the_docs(
    signed_in: Page, app, redis_url, simulator, start_worker, run_worker
) -> None:
    """The README's screenshots; also checks the pages fit a phone screen.

    Writes to docs/screenshots/ only with UPDATE_SCREENSHOTS=1, else to test-artifacts/.
    """
    page = signed_in
    target = DOCS if os.environ.get("UPDATE_SCREENSHOTS") == "1" else ARTIFACTS
    target.mkdir(parents=True, exist_ok=True)

    # One job in each state: a finished one (a one-page search, which the request waits
    # for a real worker to finish), a cancelled one (no worker left to start it) and a
    # failed one (run in this process), then a slow one on a real worker, caught running.
    app.config["SEARCH_WAIT_SECONDS"] = 30.0
    quick = start_worker()
    wait_until_listening(redis_url, app.config["RQ_QUEUE"], quick)
    submit_search(page, state="ID", county="16027", name="Canyon County, ID", background=False)
    expect(page.locator("#job-notices")).to_contain_text("Done: 100 leads, listed below.")
    quick.terminate()
    quick.wait(timeout=15)
    submit_search(page, state="NV", county="32003", name="Clark County, NV")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Cancel job").click()
    expect(status_badge(page)).to_have_text("Cancelled")
    simulator.configure(scripted_faults=[{"kind": "503", "purchase": 1, "after": 3, "times": -1}])
    submit_search(page, state="WA", county="53033", name="King County, WA")
    run_worker()
    simulator.configure(scripted_faults=[], latency_ms=400)  # 35 requests: about 14 s
    start_worker()
    running = submit_search(page, state="OR", name="All of Oregon")
    # Caught a little way in: the free snapshot is done and some records are bought.
    expect(page.locator("#job-progress-bar")).to_have_attribute(
        "aria-valuenow", re.compile(r"^(1[5-9]|[2-9][0-9])$"), timeout=30_000
    )
    # Slower from here, so the job is still running when it is cancelled at the end
    # (on a loaded machine the pages below took longer than the rest of the job).
    simulator.configure(latency_ms=1500)
    page.goto(f"/jobs/{running}")  # again, without the "queued" message
    expect(status_badge(page)).to_have_text("Processing")
    page.screenshot(path=str(target / "job.png"))

    page.goto("/jobs")
    expect(page.locator(f"#job-row-{running} .badge")).to_have_text("Processing")
    bottom = page.locator("#jobs-table").evaluate("t => t.getBoundingClientRect().bottom")
    page.screenshot(
        path=str(target / "jobs.png"), clip={"x": 0, "y": 0, "width": 1366, "height": bottom + 40}
    )

    page.goto("/search")
    page.get_by_label("State", exact=True).select_option("OR")
    page.get_by_label("County", exact=True).fill("41051")
    page.get_by_text("Single Family").click()
    page.get_by_label("Bedrooms minimum").fill("3")
    page.get_by_text("Absentee owner").click()
    page.get_by_label("Equity minimum", exact=True).fill("40")
    page.get_by_label("Job name").fill("Multnomah absentee SFR, 40%+ equity")
    page.get_by_role("button", name="Preview count").click()
    expect(page.locator("#preview-count")).to_be_visible()
    page.screenshot(path=str(target / "search.png"), full_page=True)

    # Phone width: nothing wider than the screen (tables scroll inside their card).
    page.set_viewport_size({"width": 390, "height": 844})
    for url in ("/search", "/jobs", f"/jobs/{running}"):
        page.goto(url)
        overflow = page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, f"{url} is {overflow}px wider than a phone screen"
        page.screenshot(path=str(ARTIFACTS / f"phone-{url.strip('/').replace('/', '-')}.png"))
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Cancel job").click()
    expect(status_badge(page)).to_have_text("Cancelled", timeout=15_000)
