"""Saved searches in headless Chromium (issue 12, item 1): save a search from the form,
find it in the list, open it prefilled, run it through the cost confirmation (the job
remembers the search), "Run again" from the job, delete with a confirmation prompt."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from radar_app.models import SavedSearch
from tests.helpers import count_rows, job_row

pytestmark = pytest.mark.browser

JOB_URL = re.compile(r"/jobs/[0-9a-f]{32}$")


def test_save_open_run_again_and_delete(signed_in: Page, app, simulator) -> None:
    page = signed_in
    page.goto("/search")
    page.get_by_label("State", exact=True).select_option("OR")
    page.get_by_label("County").fill("41051")
    page.get_by_label("Job name").fill("Multnomah absentee")
    page.get_by_label("Absentee owner").check()
    page.get_by_label("Max records").fill("120")
    page.get_by_role("button", name="Save as new search").click()

    expect(page).to_have_url(re.compile(r"/searches$"))
    expect(page.get_by_text("Saved “Multnomah absentee”.")).to_be_visible()
    row = page.locator("#searches-table tbody tr").filter(has_text="Multnomah absentee")
    expect(row).to_contain_text("up to 120")
    expect(row).to_contain_text("never")

    # Open it: the form shows the search as saved.
    row.get_by_role("link", name="Run or edit").click()
    expect(page.get_by_text("Saved search Multnomah absentee")).to_be_visible()
    expect(page.get_by_label("County")).to_have_value("41051")
    expect(page.get_by_label("Max records")).to_have_value("120")
    expect(page.get_by_label("Absentee owner")).to_be_checked()

    # Run it as it is: the cost first, then the job, which names the search.
    page.get_by_role("button", name="Run search").click()
    page.get_by_role("button", name=re.compile(r"^Confirm and buy 120 records")).click()
    expect(page).to_have_url(JOB_URL)
    expect(page.get_by_text("ran saved search")).to_be_visible()
    job = job_row(app, page.url.rsplit("/", 1)[1])
    assert job.saved_search_id is not None and job.max_records == 120

    # Run again from the job: the same form, filled from the job.
    page.get_by_role("link", name="Run again").click()
    expect(page.get_by_label("Job name")).to_have_value("Multnomah absentee")
    expect(page.get_by_label("County")).to_have_value("41051")

    # The list shows the run; delete asks first, and dismissing keeps the search.
    page.goto("/searches")
    row = page.locator("#searches-table tbody tr").filter(has_text="Multnomah absentee")
    expect(row).to_contain_text("Pending")  # no worker in this test
    page.once("dialog", lambda dialog: dialog.dismiss())
    row.get_by_role("button", name="Delete").click()
    expect(row).to_be_visible()
    assert count_rows(app, SavedSearch) == 1
    page.once("dialog", lambda dialog: dialog.accept())
    row.get_by_role("button", name="Delete").click()
    expect(page.get_by_text("Deleted “Multnomah absentee”.")).to_be_visible()
    expect(page.locator("#searches-table")).to_contain_text("No saved searches yet")
    assert count_rows(app, SavedSearch) == 0


def test_suppression_list_upload_and_a_schedule(signed_in: Page, app, simulator, tmp_path) -> None:
    page = signed_in
    # A suppression list from a CSV file with a RadarID column.
    csv_file = tmp_path / "dnc.csv"
    csv_file.write_text("Owner,RadarID\nAnn,P1A2B3C\nBob,P4D5E6F\n")
    page.get_by_role("link", name="Suppression").click()
    page.get_by_label("Name").fill("Do not call")
    page.get_by_label("CSV file").set_input_files(str(csv_file))
    page.get_by_label("Use for every job").check()
    page.get_by_role("button", name="Save list").click()
    expect(page.get_by_text("Saved “Do not call”: 2 RadarIDs")).to_be_visible()
    row = page.locator("#lists-table tbody tr").filter(has_text="Do not call")
    expect(row).to_contain_text("every job (default)")

    # The search form names the default list; save a search and schedule it.
    page.goto("/search")
    expect(page.get_by_text("Always skipped too: Do not call (default)")).to_be_visible()
    page.get_by_label("State", exact=True).select_option("OR")
    page.get_by_label("Job name").fill("Oregon weekly")
    page.get_by_role("button", name="Save as new search").click()
    row = page.locator("#searches-table tbody tr").filter(has_text="Oregon weekly")
    row.get_by_role("link", name="Add a schedule").click()
    page.get_by_label("Every week").check()
    page.get_by_label("At (daily, weekly)").fill("07:30")
    page.get_by_label("On (weekly)").select_option("Tuesday")
    page.get_by_label("Time zone").fill("Europe/Berlin")
    page.get_by_label("Cost cap per run, $").fill("12.50")
    page.get_by_role("button", name="Save schedule").click()
    expect(page.locator("#schedule-now")).to_contain_text("Every Tuesday at 07:30 (Europe/Berlin)")
    expect(page.locator("#schedule-now")).to_contain_text("next run")
    page.goto("/searches")
    expect(page.locator("#searches-table")).to_contain_text("Every Tuesday at 07:30")
