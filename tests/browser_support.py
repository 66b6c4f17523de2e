"""Shared parts of the browser tests: Debian's Chromium under Playwright, and page helpers.

The ``browser`` and ``page`` fixtures (tests/conftest.py) run ``launch_browser`` and
``new_page``; each browser test module brings its own ``panel`` fixture.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
from playwright.sync_api import Browser, FrameLocator, Locator, Page, expect, sync_playwright

from panel import Panel
from support import REPO

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = REPO / "test-artifacts"
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TIMEOUT_MS = 15_000


def launch_browser() -> Iterator[Browser]:
    assert CHROMIUM.exists(), "no /usr/bin/chromium: run scripts/ensure-browser.sh (make test)"
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=LAUNCH_ARGS
        )
        yield launched
        launched.close()


def new_page(browser: Browser) -> Iterator[Page]:
    """A fresh context (no cookies, no storage); fails the test on an uncaught page error."""
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    context.set_default_timeout(TIMEOUT_MS)
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    yield opened
    context.close()
    assert not errors, f"uncaught errors in the page: {errors}"


def sign_in(page: Page, panel: Panel, username: str, password: str) -> None:
    page.goto(f"{panel.url}/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Dashboard", level=1)).to_be_visible()


def nav(page: Page) -> Locator:
    return page.get_by_role("navigation", name="Main")


def plugin_page(page: Page) -> FrameLocator:
    """The sandboxed frame of the plugin page the shell shows now (docs/frontend.md)."""
    return page.frame_locator("iframe.plugin-frame:not([hidden])")


def widget(page: Page, plugin_id: str) -> FrameLocator:
    """The sandboxed frame of a plugin's (first) widget."""
    return page.frame_locator(f'iframe.widget-frame[data-plugin-frame="{plugin_id}"] >> nth=0')


def admin_api(panel: Panel) -> httpx.Client:
    return panel.client(panel.login())


def card(page: Page, name: str) -> Locator:
    return page.get_by_role("listitem").filter(has=page.get_by_role("heading", name=name))
