"""Issue 9's first-time-user findings, in headless Chromium against a live server.

Cost confirmation before buying, an outdated preview marked as such, counties by name
with suggestions per chosen state, notices that end with the job, and a Jobs tab that
fits a phone. Every wait is Playwright's auto-waiting `expect(...)`: no sleeps.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from radar_app.models import BatchJob, JobStatus, utcnow
from tests.browser.conftest import sign_in
from tests.conftest import ARTIFACTS
from tests.helpers import count_rows, job_row, make_job, purchase_requests

pytestmark = pytest.mark.browser

JOB_URL = re.compile(r"/jobs/[0-9a-f]{32}$")
PHONE = {"width": 390, "height": 844}


def test_run_search_without_preview_asks_before_buying(signed_in: Page, app, simulator) -> None:
    page = signed_in
    page.goto("/search")
    page.get_by_label("State", exact=True).select_option("OR")
    page.get_by_label("Job name").fill("All of Oregon")
    page.get_by_label("Max records").fill("4000")
    page.get_by_role("button", name="Run search").click()  # Preview was skipped

    # The cost, before anything is bought: 4,000 records at the configured price.
    expect(page.get_by_role("heading", name="Confirm the purchase")).to_be_visible()
    price = app.config["PRICE_PER_EXPORT"]
    expect(page.locator("#confirm-to-buy")).to_have_text("4,000 records")
    expect(page.locator("#confirm-cost")).to_have_text(f"${4000 * price:,.2f}")
    assert count_rows(app, BatchJob) == 0
    assert purchase_requests(simulator.stats(), status=None) == []
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "confirm.png"), full_page=True)

    # Back to the form: every value is kept, still nothing created.
    page.get_by_role("button", name="Back to the form").click()
    expect(page.get_by_label("Job name")).to_have_value("All of Oregon")
    expect(page.get_by_label("Max records")).to_have_value("4000")
    assert page.get_by_label("State", exact=True).evaluate(
        "s => [...s.selectedOptions].map(o => o.value)"
    ) == ["OR"]
    assert count_rows(app, BatchJob) == 0

    page.get_by_role("button", name="Run search").click()
    page.get_by_role("button", name=re.compile(r"^Confirm and buy 4,000 records")).click()
    expect(page).to_have_url(JOB_URL)
    job = job_row(app, page.url.rsplit("/", 1)[1])
    assert job.name == "All of Oregon" and job.max_records == 4000
    assert purchase_requests(simulator.stats(), status=None) == []  # queued, no worker yet


def test_preview_is_marked_outdated_when_the_search_changes(signed_in: Page, simulator) -> None:
    page = signed_in
    page.goto("/search")
    page.get_by_label("State", exact=True).select_option("OR")
    page.get_by_label("County", exact=True).fill("Multnomah")
    page.get_by_role("button", name="Preview count").click()
    expect(page.locator("#preview-count")).to_have_text("2,000")
    stale = page.locator("#preview-stale")
    expect(stale).to_be_hidden()

    page.get_by_label("Job name").fill("Only the name changed")  # changes no figure
    expect(stale).to_be_hidden()
    page.get_by_label("Bedrooms minimum").fill("3")
    expect(page.locator("#preview")).to_have_class(re.compile(r"\bis-stale\b"))
    expect(stale).to_be_visible()
    expect(stale).to_contain_text("Criteria changed — preview again")
    page.locator("aside .card").screenshot(path=str(ARTIFACTS / "preview-stale.png"))

    page.get_by_role("button", name="Preview count").click()
    expect(page.locator("#preview")).not_to_have_class(re.compile(r"\bis-stale\b"))
    expect(stale).to_be_hidden()
    assert page.locator("#preview-count").inner_text() != "2,000"  # fewer with 3+ beds

    page.get_by_text("Absentee owner").click()  # a radio button counts too
    expect(stale).to_be_visible()


def test_counties_by_name_with_suggestions_for_the_chosen_states(
    signed_in: Page, app, simulator
) -> None:
    page = signed_in
    page.goto("/search")
    options = page.locator("#county-options option")
    expect(options).to_have_count(0)  # no state chosen: nothing to suggest
    expect(page.locator("#state-chosen")).to_have_text("No state chosen: any state")
    page.get_by_label("State", exact=True).select_option(["OR", "WA"])
    # Oregon's 36 counties and Washington's 39, values as the field accepts them.
    expect(options).to_have_count(36 + 39)
    values = options.evaluate_all("os => os.map(o => o.value)")
    assert "Multnomah County, OR" in values and "King County, WA" in values
    assert not any(value.endswith(", CA") for value in values)
    expect(page.locator("#state-chosen")).to_have_text("Chosen: Oregon, Washington")
    page.get_by_label("State", exact=True).select_option(["OR"])
    expect(options).to_have_count(36)
    expect(page.locator("#state-chosen")).to_have_text("Chosen: Oregon")

    # Typed by name, two states: the search sends FIPS codes.
    page.get_by_label("State", exact=True).select_option(["OR", "WA"])
    expect(options).to_have_count(36 + 39)  # before typing: a new list can open suggestions
    county = page.get_by_label("County", exact=True)
    county.fill("Nowhere")
    page.get_by_role("button", name="Preview count").click()
    expect(page.locator("#preview")).to_contain_text("No county named 'Nowhere' in OR, WA")
    county.fill("Multnomah County, OR, King")
    page.get_by_role("button", name="Preview count").click()
    expect(page.locator("#preview-count")).to_have_text("5,500")  # 2,000 + 3,500
    page.screenshot(path=str(ARTIFACTS / "search-counties.png"), full_page=True)
    page.get_by_role("button", name="Run search").click()
    expect(page.locator("#confirm-counties")).to_have_text(
        "Multnomah County, OR (41051); King County, WA (53033)"
    )
    page.get_by_role("button", name=re.compile("^Confirm and buy")).click()
    expect(page).to_have_url(JOB_URL)
    job = job_row(app, page.url.rsplit("/", 1)[1])
    assert job.criteria == [
        {"name": "State", "value": ["OR", "WA"]},
        {"name": "County", "value": ["41051", "53033"]},
    ]


def test_job_notices_go_when_the_job_finishes(
    signed_in: Page, app, simulator, start_worker
) -> None:
    page = signed_in
    # Unticked but 2,000 records: more than one page, so it runs in the background.
    page.goto("/search")
    page.get_by_label("State", exact=True).select_option("OR")
    page.get_by_label("County", exact=True).fill("41051")
    page.get_by_label("Process in background").uncheck()
    page.get_by_role("button", name="Run search").click()
    page.get_by_role("button", name=re.compile("^Confirm and buy")).click()
    expect(page).to_have_url(JOB_URL)
    notices = page.locator("#job-notices")
    expect(notices).to_contain_text("so it is running in the background")
    expect(page.locator("#job-queued")).to_have_text(
        "Your job is queued. This page updates as it runs."
    )

    start_worker()
    expect(page.locator("#job-progress .badge[data-status]")).to_have_text(
        "Completed", timeout=30_000
    )
    expect(page.locator("#job-queued")).to_have_count(0)
    expect(notices).to_be_empty()
    expect(notices).to_be_hidden()


def test_jobs_tab_fits_a_phone_screen(page: Page, app, user, admin, simulator) -> None:
    long_name = "Absentee owners with 40%+ equity in Multnomah, Washington and Clackamas"
    now = utcnow()
    for n in range(6):
        make_job(app, user.email, name=f"{long_name} #{n}", criteria=[
            {"name": "State", "value": ["OR", "WA"]},
            {"name": "County", "value": ["41051", "41067", "41005", "53033", "53053"]},
            {"name": "City", "value": ["Portland", "Lake Oswego", "Beaverton", "Gresham"]},
        ])  # fmt: skip
    failed = make_job(
        app,
        user.email,
        name="x" * 80,  # no spaces to wrap at
        status=JobStatus.FAILED,
        total_records=40_000,
        processed_records=12_400,
        error_count=3,
        started_at=now,
        completed_at=now,
    )
    page.set_viewport_size(PHONE)
    for email in (user.email, admin.email):  # an admin's table has an Owner column
        page.context.clear_cookies()
        sign_in(page, email)
        expect(page).to_have_url(re.compile(r"/jobs$"))
        expect(page.locator(f"#job-row-{failed}")).to_be_visible()
        widths = page.evaluate(
            "({doc: document.documentElement.scrollWidth,"
            " table: document.getElementById('jobs-table').scrollWidth})"
        )
        assert widths["doc"] <= PHONE["width"], widths
        assert widths["table"] <= PHONE["width"], widths  # no sideways scrolling either
        row = page.locator(f"#job-row-{failed}")
        expect(row).to_contain_text("12,400 / 40,000")
        expect(row.locator("[data-label='Errors']")).to_have_text("3")

    # The confirmation step fits too.
    page.goto("/search")
    page.get_by_label("State", exact=True).select_option("OR")
    page.get_by_role("button", name="Run search").click()
    expect(page.locator("#confirm-button")).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
