"""Fixtures for the browser tests: the test app on a real HTTP port, headless Chromium.

The live server serves the same `app` fixture (its database, Redis and simulator) that
the `start_worker` fixture points real worker processes at, so a job submitted in the
browser is picked up by a real worker.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from playwright.sync_api import Browser, Page, expect, sync_playwright
from werkzeug.serving import make_server

from tests.conftest import ARTIFACTS, PASSWORD

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
LAPTOP = {"width": 1366, "height": 900}


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """One headless Chromium for the session; each test gets a fresh context."""
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing (apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def live_server(app: Flask) -> Iterator[str]:
    """The test app on a free loopback port, one thread per request (htmx polls in parallel)."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    # Non-daemon request threads, so server_close() waits for requests still in flight:
    # otherwise one can return its DB connection after the app's engine is disposed.
    server.daemon_threads = False
    thread = threading.Thread(target=server.serve_forever, name="live-server", daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


@pytest.fixture
def page(browser: Browser, live_server: str, request: pytest.FixtureRequest) -> Iterator[Page]:
    """A fresh browser tab; its final state is saved as test-artifacts/<test name>.png."""
    context = browser.new_context(base_url=live_server, viewport=LAPTOP, accept_downloads=True)
    context.set_default_timeout(10_000)
    tab = context.new_page()
    # The CSP blocks inline scripts, styles and eval; a violation means part of the UI
    # silently does nothing, so it fails the test like a JavaScript error does.
    problems: list[str] = []
    tab.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    tab.on(
        "console",
        lambda message: (
            problems.append(f"console: {message.text}")
            if "Content Security Policy" in message.text
            else None
        ),
    )
    yield tab
    ARTIFACTS.mkdir(exist_ok=True)
    try:
        tab.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
    finally:
        context.close()
    assert not problems, "\n".join(problems)


def sign_in(page: Page, email: str = "owner@example.com", password: str = PASSWORD) -> None:
    page.goto("/auth/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


@pytest.fixture
def signed_in(page: Page, user) -> Page:
    """A tab signed in as the `user` fixture, on the Jobs tab."""
    sign_in(page, user.email)
    expect(page).to_have_url(re.compile(r"/jobs$"))
    return page
