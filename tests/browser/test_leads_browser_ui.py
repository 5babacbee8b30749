"""The leads browser in headless Chromium (issue 12, item 6): the Leads tab lists every
lead across jobs; typing and choosing filters swaps the results in place (and into the
address bar); pages follow by cursor; the export downloads the columns ticked."""

from __future__ import annotations

import csv
import io
import re

import pytest
from playwright.sync_api import Page, expect

from tests.test_leads_browser import record, store

pytestmark = pytest.mark.browser


def test_filter_page_and_export(signed_in: Page, app, user) -> None:
    store(app, user, [record(1, Owner="Smith John"), record(2, Owner="Smithers Ann",
          isSameMailingOrExempt=0)], name="Portland pull")  # fmt: skip
    store(app, user, [record(3, Owner="Jones Kim", AVM=950_000)], name="Second pull")
    page = signed_in
    page.get_by_role("link", name="Leads").click()
    expect(page).to_have_url(re.compile(r"/leads$"))
    rows = page.locator("#leads-table tbody tr")
    expect(rows).to_have_count(3)
    expect(page.locator("#leads-count")).to_have_text("3")
    expect(rows.filter(has_text="Jones Kim")).to_contain_text("Second pull")

    # Typing filters in place: the page is not reloaded, the address bar follows.
    page.evaluate("window.notReloaded = true")
    page.get_by_label("Owner or address").fill("smith")
    expect(rows).to_have_count(2)
    expect(page).to_have_url(re.compile(r"q=smith"))
    page.get_by_label("Occupancy").select_option("absentee")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("Smithers Ann")
    expect(rows.first).to_contain_text("Absentee")
    assert page.evaluate("window.notReloaded") is True

    # A filter's bad value is named beside it, and no results are shown.
    zip_box = page.get_by_role("textbox", name="ZIP")
    zip_box.fill("abc")
    zip_box.press("Enter")
    expect(page.get_by_role("alert")).to_contain_text("ZIP: a 5-digit ZIP")
    page.get_by_role("link", name="Clear").click()
    expect(rows).to_have_count(3)

    # Pages by cursor, in the chosen order.
    page.goto("/leads?sort=value&per_page=2")
    expect(rows.first).to_contain_text("Jones Kim")  # dearest first
    page.get_by_role("link", name="Next page »").click()
    expect(rows).to_have_count(1)
    page.get_by_role("link", name="« First page").click()
    expect(rows).to_have_count(2)

    # The export: the columns ticked, for the filter shown.
    page.goto("/leads?q=smith")
    page.get_by_text("Export CSV…").click()
    picker = page.locator("#export-picker")
    picker.get_by_label("Mailing Address").uncheck()
    picker.get_by_label("Owner Occupied").check()
    with page.expect_download() as download_info:
        picker.get_by_role("button", name=re.compile(r"^Download 2 leads")).click()
    text = download_info.value.path().read_text(encoding="utf-8")
    table = list(csv.reader(io.StringIO(text)))
    assert "Mailing Address" not in table[0] and "Owner Occupied" in table[0]
    assert sorted(row[table[0].index("Owner")] for row in table[1:]) == [
        "Smith John", "Smithers Ann"
    ]  # fmt: skip
