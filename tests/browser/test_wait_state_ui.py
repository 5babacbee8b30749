"""Live throttling state and the state timeline in headless Chromium (issue 13, items 1
and 3): a PropertyRadar 429 storm shows "paused by PropertyRadar" on the job page while a
real worker waits it out, then the job completes and the timeline says so; the owner's
cancel and retry appear on the timeline as they happen."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.conftest import ARTIFACTS, wait_until_listening
from tests.helpers import MULTNOMAH, job_row, make_job, stored_radar_ids

pytestmark = pytest.mark.browser


def test_a_429_storm_shows_the_pause_then_the_job_completes(
    signed_in: Page, app, api, simulator, start_worker, redis_url
) -> None:
    page = signed_in
    # Every purchase is refused three times over with Retry-After: 3 (two in flight at
    # once): about nine seconds of pauses, several polls of the job page.
    simulator.configure(retry_after=3, scripted_faults=[{"kind": "429", "purchase": 1, "times": 6}])
    worker = start_worker(
        env={
            "PROPERTYRADAR_BACKOFF_MAX": "10",
            "PROPERTYRADAR_MAX_ATTEMPTS": "5",
            "PROPERTYRADAR_RATE_LIMIT": "100",
        }
    )
    wait_until_listening(redis_url, app.config["RQ_QUEUE"], worker)
    response = api.post("/api/batch-jobs", json={"criteria": MULTNOMAH, "name": "Storm"})
    assert response.status_code == 201, response.json
    job_id = response.json["id"]
    page.goto(f"/jobs/{job_id}")

    waiting = page.locator("#job-waiting")
    expect(waiting).to_contain_text(
        re.compile(r"paused by PropertyRadar \(429, Retry-After 3 s\), next try in \d+ s"),
        timeout=20_000,
    )
    expect(waiting).to_contain_text("Paused")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "wait_state_paused.png"), full_page=True)

    expect(page.locator("#job-progress [data-status]").first).to_have_attribute(
        "data-status", "COMPLETED", timeout=60_000
    )
    expect(waiting).to_have_count(0)
    # The timeline, refreshed by the panel's job-updated, ends with the worker's completion.
    newest = page.locator("#job-timeline li").first
    expect(newest).to_contain_text("Completed: every record stored")
    expect(newest).to_contain_text("by worker")

    job = job_row(app, job_id)
    stats = simulator.stats()
    assert stats["faults"]["429"] == 6
    assert stats["billed_records"] == job.purchased_count == 2000
    ids = stored_radar_ids(app, job_id)
    assert len(ids) == len(set(ids)) == 2000


def test_the_owners_cancel_and_retry_appear_on_the_timeline(signed_in: Page, app, user) -> None:
    page = signed_in
    job_id = make_job(app, name="No worker here")  # stays queued: nothing runs it
    page.goto(f"/jobs/{job_id}")
    entries = page.locator("#job-timeline li")
    expect(entries).to_have_count(1)
    expect(entries.first).to_contain_text("Created and queued")
    expect(entries.first).to_contain_text(f"by {user.email}")

    page.once("dialog", lambda dialog: dialog.accept())
    page.locator("#cancel-button").click()
    expect(entries).to_have_count(2)
    expect(entries.first).to_contain_text("Cancelled before a worker took it")
    expect(entries.first).to_contain_text("(Pending → Cancelled)")
    expect(entries.first).to_contain_text(f"by {user.email}")

    page.locator("#retry-button").click()
    expect(entries).to_have_count(3)
    expect(entries.first).to_contain_text("Retried: queued again to resume from its checkpoint")
    expect(entries.first).to_contain_text("(Cancelled → Pending)")
    expect(page.locator("#job-timeline")).to_contain_text("3 entries")
