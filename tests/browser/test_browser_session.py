"""The web UI's session in a real browser: out of reach of the page's scripts, and revocable.

Uses the shared Chromium fixtures (tests/conftest.py) and a ``plugdock serve`` on loopback. The
session is an HttpOnly, SameSite=Strict cookie: ``localStorage`` holds no token,
``document.cookie`` cannot see it, a script's POST without the CSRF token is refused,
and signing out ends the session on the server too.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Page, expect

from browser_support import ARTIFACTS, nav, sign_in
from panel import ADMIN_PASSWORD, Panel, start_panel

SESSION_COOKIE = "plugdock_session"


@pytest.fixture(scope="module")
def panel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Panel]:
    tmp = tmp_path_factory.mktemp("browser-session")
    (tmp / "modules").mkdir()
    running = start_panel(tmp, f"sqlite:///{tmp / 'panel.db'}")
    yield running
    running.stop()


def _session_cookie(page: Page) -> dict | None:
    return next((c for c in page.context.cookies() if c["name"] == SESSION_COOKIE), None)


def test_session_is_out_of_reach_of_scripts_and_sign_out_ends_it(page: Page, panel: Panel) -> None:
    page.goto(f"{panel.url}/")
    page.evaluate("() => localStorage.setItem('plugdock_token', 'left-by-an-older-shell')")
    sign_in(page, panel, "admin", ADMIN_PASSWORD)

    cookie = _session_cookie(page)
    assert cookie is not None
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Strict"
    token = cookie["value"]
    assert token.count(".") == 2  # the JWT, held by the browser only

    storage = page.evaluate("() => JSON.stringify(Object.entries(localStorage))")
    assert token not in storage
    assert "plugdock_token" not in storage  # the old shell's token is removed on start
    visible = page.evaluate("() => document.cookie")
    assert SESSION_COOKIE not in visible
    assert token not in visible

    # What an injected script can still try: a state-changing call without the CSRF token.
    status = page.evaluate(
        """async () => (await fetch('/api/v1/users', {method: 'POST',
            headers: {'Content-Type': 'application/json'},
            body: JSON.stringify({username: 'mallory', password: 'mallory-pass-1'})})).status"""
    )
    assert status == 403
    me = page.evaluate("async () => (await fetch('/api/v1/auth/me')).status")
    assert me == 200  # reads work with the cookie alone

    ARTIFACTS.mkdir(exist_ok=True)
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in to the panel")).to_be_visible()
    assert _session_cookie(page) is None
    replayed = httpx.get(
        f"{panel.url}/api/v1/auth/me", headers={"Cookie": f"{SESSION_COOKIE}={token}"}
    )
    assert replayed.status_code == 401  # ended on the server, not just forgotten
    assert replayed.json() == {"detail": "Session ended; sign in again"}


def test_admin_manages_users_in_the_users_page(page: Page, panel: Panel) -> None:
    admin = panel.client(panel.login())
    created = admin.post(
        "/api/v1/users", json={"username": "walt", "password": "walt-password-1", "role": "user"}
    )
    assert created.status_code == 201, created.text
    walt = panel.client(panel.login("walt", "walt-password-1"))
    assert walt.get("/api/v1/auth/me").status_code == 200

    sign_in(page, panel, "admin", ADMIN_PASSWORD)
    nav(page).get_by_role("link", name="Users").click()
    expect(page.get_by_role("heading", name="Users", level=1)).to_be_visible()
    row = page.get_by_role("row").filter(has=page.get_by_role("rowheader", name="walt"))
    row.get_by_role("button", name="Make walt admin").click()
    expect(page.get_by_role("status").filter(has_text="walt is now admin")).to_be_visible()
    assert walt.get("/api/v1/users").status_code == 200  # the role applies at once

    row.get_by_role("button", name="Deactivate walt").click()
    expect(page.get_by_role("status").filter(has_text="signed out everywhere")).to_be_visible()
    expect(row.get_by_role("cell", name="Deactivated")).to_be_visible()
    assert walt.get("/api/v1/auth/me").status_code == 401  # the token died with the session

    me = page.get_by_role("row").filter(has=page.get_by_role("rowheader", name="admin (you)"))
    me.get_by_role("button", name="Deactivate admin").click()
    expect(page.get_by_role("alert").filter(has_text="last active admin")).to_be_visible()
    page.screenshot(path=str(ARTIFACTS / "users-page.png"), full_page=True)
    walt.close()
    admin.close()
