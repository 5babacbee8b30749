"""Toasts and the notification poll in headless Chromium (issue 13, item 7).

A page polls /notifications only while its user has a job pending or processing, with one
poll per page; a toast appears when a job finishes, is read out (aria-live), closes itself
(not while hovered) and never covers the Run search button or the Jobs page's controls,
at laptop and phone sizes. Every "no request" claim is measured over a window of a few
poll intervals (page.wait_for_timeout is that window); everything else waits on a
condition with a timeout.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from flask import Flask
from playwright.sync_api import Locator, Page, Request, expect

from radar_app.models import JobStatus
from tests.browser.test_browser import status_badge, submit_search
from tests.helpers import make_job, wait_for
from tests.test_pages import set_status

pytestmark = pytest.mark.browser

POLL_SECONDS = 1
TOAST_SECONDS = 3
# A toast has closed by itself well within twice its time (timers run late on a loaded machine).
TOAST_CLOSE_MS = (2 * TOAST_SECONDS + 2) * 1000
# A window of several poll intervals: long enough that a running poll shows up in it.
WINDOW_MS = 3_500
LAPTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


@pytest.fixture(autouse=True)
def quick_timing(app: Flask) -> None:
    """Poll every second and let a toast live 3 s, so the test needs no long waits."""
    app.config.update(NOTIFICATION_POLL_SECONDS=POLL_SECONDS, TOAST_SECONDS=TOAST_SECONDS)


@dataclass
class PollCounter:
    """The page's requests to /notifications, counted as the browser sends them."""

    urls: list[str] = field(default_factory=list)

    def __call__(self, request: Request) -> None:
        if request.url.split("?")[0].endswith("/notifications"):
            self.urls.append(request.url)

    def during(self, page: Page, milliseconds: int = WINDOW_MS) -> int:
        before = len(self.urls)
        page.wait_for_timeout(milliseconds)
        return len(self.urls) - before


@pytest.fixture
def polls(signed_in: Page) -> Iterator[PollCounter]:
    counter = PollCounter()
    signed_in.on("request", counter)
    yield counter
    signed_in.remove_listener("request", counter)


def toasts(page: Page) -> Locator:
    return page.locator("#toasts .toast")


def hover_without_scrolling(page: Page, toast: Locator) -> None:
    """The pointer onto a toast, every toast in view. Locator.hover() scrolls when its
    first try finds the toast still sliding in (toast-in): that scrolled the top toast out
    of view, which holds its clock, as it should (a user who never saw it still has it to
    read), and it stayed after the pointer left."""
    page.evaluate("window.scrollTo(0, 0)")
    # Polled from here: wait_for_function evaluates a string, which the page's CSP forbids.
    wait_for(
        lambda: page.evaluate("document.getAnimations().length") == 0,
        timeout=10,
        what="the toasts to stop sliding in",
    )
    box = toast.bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)


def poller(page: Page) -> Locator:
    return page.locator("#notification-poll")


def assert_uncovered(page: Page, controls: Locator) -> int:
    """No toast's box meets any of the visible controls, and each control's centre is the
    control itself to the browser's hit test (nothing lies on top of it)."""
    boxes = [toast.bounding_box() for toast in toasts(page).all()]
    assert boxes and all(boxes)
    checked = 0
    for control in controls.all():
        if not control.is_visible():
            continue
        control.scroll_into_view_if_needed()
        box = control.bounding_box()
        assert box is not None
        for toast in toasts(page).all():
            other = toast.bounding_box()
            assert other is not None
            overlap = (
                box["x"] < other["x"] + other["width"]
                and other["x"] < box["x"] + box["width"]
                and box["y"] < other["y"] + other["height"]
                and other["y"] < box["y"] + box["height"]
            )
            assert not overlap, (control.evaluate("e => e.outerHTML.slice(0, 120)"), box, other)
        # Scrolled and hit-tested in one task: a toast closing in between shifts the
        # page, which could carry the control out of the viewport.
        on_top = control.evaluate(
            """element => {
                element.scrollIntoView({block: "center", inline: "center"});
                const box = element.getBoundingClientRect();
                const [x, y] = [box.x + box.width / 2, box.y + box.height / 2];
                const hit = document.elementFromPoint(x, y);
                // A styled checkbox or radio may sit under its own label.
                const mine = [element, ...(element.labels || [])];
                return mine.some(own => own === hit || own.contains(hit));
            }"""
        )
        assert on_top, control.evaluate("e => e.outerHTML.slice(0, 120)")
        checked += 1
    return checked


# ------------------------------------------------------------------------- the poll


def test_no_poll_without_an_active_job(signed_in: Page, polls: PollCounter, app) -> None:
    page = signed_in
    finished = make_job(app, name="Finished long ago")
    set_status(app, finished, JobStatus.COMPLETED)
    for path in ("/search", "/jobs", f"/jobs/{finished}"):
        page.goto(path)
        expect(page.locator("#toasts")).to_have_attribute("aria-live", "polite")
        expect(poller(page)).not_to_have_attribute("hx-trigger", re.compile(".*"))
        assert polls.during(page) == 0, path
    # An htmx action that shows no running job (a free preview) does not poll either.
    page.goto("/search")
    polls.urls.clear()
    page.get_by_role("button", name="Preview count").click()
    expect(page.locator("#preview")).to_contain_text("Choose where to search")
    page.wait_for_timeout(WINDOW_MS)
    assert polls.urls == []


def test_one_poll_per_page_while_a_job_is_active(signed_in: Page, polls: PollCounter, app) -> None:
    page = signed_in
    job_id = make_job(app, name="Still queued")  # pending: no worker in this test
    # The Jobs page (whose row polls too) and the job's page (whose progress panel does).
    for path in ("/jobs", f"/jobs/{job_id}"):
        page.goto(path)
        expect(page.locator('[hx-get="/notifications"]')).to_have_count(1)
        expect(poller(page)).to_have_attribute("hx-trigger", f"load, every {POLL_SECONDS}s")
        # One poll a second: 3.5 s hold 3 or 4 (2 if the server is slow: htmx drops a
        # poll while the last is in flight); two pollers would make 6 or more.
        assert 2 <= polls.during(page) <= 4, (path, polls.urls)

    set_status(app, job_id, JobStatus.COMPLETED, success_count=12)  # as a worker would
    expect(toasts(page).filter(has_text="Still queued")).to_be_visible()
    # Nothing is left to wait for: the server answered 286 and the poll stopped.
    expect(poller(page)).not_to_have_attribute("hx-trigger", re.compile(".*"))
    assert polls.during(page) == 0


def test_a_job_run_by_a_worker_toasts_when_it_finishes(
    signed_in: Page, polls: PollCounter, app, simulator, start_worker
) -> None:
    page = signed_in
    start_worker()
    job_id = submit_search(page, state="OR", county="41051", name="Multnomah, toasted")
    toast = toasts(page).filter(has_text="Multnomah, toasted")
    expect(toast).to_be_visible(timeout=30_000)
    assert polls.urls, "the job page polled"
    expect(toast.get_by_role("link")).to_have_attribute("href", f"/jobs/{job_id}")
    expect(toast).to_contain_text("2,000 leads ready to download")
    # In the live region, read out as it arrives.
    expect(page.locator("#toasts[aria-live=polite] .toast")).to_have_count(1)
    expect(poller(page)).not_to_have_attribute("hx-trigger", re.compile(".*"))
    # The toast closes itself in its time (the pointer is elsewhere).
    page.mouse.move(0, 0)
    expect(toast).to_have_count(0, timeout=TOAST_CLOSE_MS)
    assert polls.during(page) == 0


def test_retrying_a_job_arms_the_poll_again(signed_in: Page, polls: PollCounter, app) -> None:
    page = signed_in
    job_id = make_job(app, name="Try again")
    set_status(app, job_id, JobStatus.FAILED)
    page.goto(f"/jobs/{job_id}")
    expect(poller(page)).not_to_have_attribute("hx-trigger", re.compile(".*"))
    assert polls.during(page, 2_000) == 0

    page.locator("#retry-button").click()  # an htmx action: the page stays
    expect(status_badge(page)).to_have_text("Pending")
    expect(poller(page)).to_have_attribute("hx-trigger", f"load, every {POLL_SECONDS}s")
    assert polls.during(page, 2_500) >= 2
    expect(page.locator('[hx-get="/notifications"]')).to_have_count(1)

    set_status(app, job_id, JobStatus.COMPLETED, success_count=7)  # as a worker would
    expect(toasts(page).filter(has_text="Try again")).to_be_visible()
    expect(poller(page)).not_to_have_attribute("hx-trigger", re.compile(".*"))


# ----------------------------------------------------------------------------- toasts


def finish_jobs_on(page: Page, app, path: str, names: list[str]) -> None:
    """Jobs of the signed-in user finish while `path` is open: their toasts arrive."""
    jobs = [make_job(app, name=name) for name in names]
    page.goto(path)
    expect(poller(page)).to_have_attribute("hx-trigger", re.compile("every"))
    for job_id in jobs:
        set_status(app, job_id, JobStatus.COMPLETED, success_count=400)
    expect(toasts(page)).to_have_count(len(names))


@pytest.mark.parametrize("viewport", [LAPTOP, PHONE], ids=["1280x800", "390x844"])
def test_toasts_never_cover_the_controls(signed_in: Page, app, viewport) -> None:
    page = signed_in
    page.set_viewport_size(viewport)
    page.mouse.move(0, 0)
    app.config["TOAST_SECONDS"] = 60  # they stay while the boxes are measured
    finish_jobs_on(page, app, "/search", ["First of three", "Second of three", "Third of three"])
    run = page.get_by_role("button", name="Run search")
    assert assert_uncovered(page, run) == 1
    # Every control of the search form, top to bottom.
    assert assert_uncovered(page, page.locator("main").locator("button, input, select, a")) > 10

    finish_jobs_on(page, app, "/jobs", ["On the Jobs page"])
    # The row and the status counts swap themselves in as they learn of it: measured after.
    expect(page.locator('#job-counts .count[data-status="COMPLETED"]')).to_have_text("4")
    expect(page.locator('#job-counts .count[data-status="PENDING"]')).to_have_text("0")
    assert assert_uncovered(page, page.locator("main").locator("button, input, select, a")) > 3


def test_several_toasts_each_stay_their_time_and_pause_while_hovered(signed_in: Page, app) -> None:
    page = signed_in
    page.mouse.move(0, 0)
    finish_jobs_on(page, app, "/search", ["Alpha", "Beta", "Gamma"])
    # None is lost: all three are there together, each with its link.
    for name in ("Alpha", "Beta", "Gamma"):
        expect(toasts(page).filter(has_text=name).get_by_role("link")).to_be_visible()
    # The pointer on one holds them all past their time (none moves from under it).
    hover_without_scrolling(page, toasts(page).filter(has_text="Beta"))
    page.wait_for_timeout((TOAST_SECONDS + 1) * 1000)
    expect(toasts(page)).to_have_count(3)
    page.mouse.move(0, 0)
    expect(toasts(page)).to_have_count(0, timeout=TOAST_CLOSE_MS)

    # Keyboard focus holds a toast too; its close button closes it at once.
    finish_jobs_on(page, app, "/search", ["Delta"])
    delta = toasts(page).filter(has_text="Delta")
    delta.get_by_role("link").focus()
    page.wait_for_timeout((TOAST_SECONDS + 1) * 1000)
    expect(delta).to_be_visible()
    delta.get_by_role("button", name="Dismiss").click()
    expect(delta).to_have_count(0)


def test_a_toast_scrolled_out_of_view_waits_to_be_seen(signed_in: Page, app) -> None:
    page = signed_in
    page.mouse.move(0, 0)
    page.set_viewport_size({"width": PHONE["width"], "height": 400})
    finish_jobs_on(page, app, "/search", ["Read it later"])
    # Scrolled past before it could be read: it does not close out of sight...
    page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
    toast = toasts(page).filter(has_text="Read it later")
    expect(toast).not_to_be_in_viewport()
    page.wait_for_timeout((TOAST_SECONDS + 1) * 1000)
    expect(toast).to_have_count(1)
    # ...and back in view it gets its time, then closes.
    page.evaluate("window.scrollTo(0, 0)")
    expect(toast).to_be_in_viewport()
    expect(toast).to_have_count(0, timeout=TOAST_CLOSE_MS)
