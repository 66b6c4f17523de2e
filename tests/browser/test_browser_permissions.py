"""Permissions in the web UI, in Debian's Chromium against a real panel: the marketplace card
says what a plugin asks for before Install, the installed page what it was granted, and an
update asking for more lists it in the confirm dialog and grants it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from browser_support import admin_api, card, nav, sign_in
from panel import ADMIN_PASSWORD, Panel, start_panel
from support import make_plugin, pack_into

OPERATION_MS = 60_000


@pytest.fixture(scope="module")
def panel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Panel]:
    tmp = tmp_path_factory.mktemp("permissions")
    modules, src = tmp / "modules", tmp / "src"
    asks = {"permissions": ["network:api.example.com"]}
    pack_into(make_plugin(src, "weather", "1.0.0", metadata=asks), modules)
    pack_into(make_plugin(src, "plain_notes"), modules)
    running = start_panel(tmp, f"sqlite:///{tmp / 'panel.db'}")
    yield running
    running.stop()


def test_card_shows_what_it_asks_for_and_an_update_asking_more_is_confirmed(
    page: Page, panel: Panel, tmp_path: Path
) -> None:
    sign_in(page, panel, "admin", ADMIN_PASSWORD)
    nav(page).get_by_role("link", name="Marketplace", exact=True).click()
    weather = card(page, "Weather")
    asks = weather.get_by_role("list", name="Permissions it asks for")
    expect(asks).to_contain_text("Open network connections to api.example.com")
    expect(asks).to_contain_text("network:api.example.com")
    expect(card(page, "Plain Notes")).to_contain_text("Asks for no permissions")
    if os.environ.get("PLUGDOCK_ISOLATION", "inprocess") == "inprocess":  # make test's 1st pass
        # What permissions bind nothing in-process: the card says what that means.
        expect(card(page, "Plain Notes")).to_contain_text("with the panel's full rights")

    weather.get_by_role("button", name="Install Weather").click()
    expect(weather).to_contain_text("Installed v1.0.0", timeout=OPERATION_MS)

    nav(page).get_by_role("link", name="Installed plugins", exact=True).click()
    row = page.get_by_role("row").filter(has_text="Weather")
    granted = row.get_by_role("list", name="Granted permissions")
    expect(granted).to_contain_text("Open network connections to api.example.com")

    # 1.1.0 also wants the user list: the update dialog lists it and the button grants it.
    more = {"permissions": ["network:api.example.com", "core:users:read"]}
    pack_into(make_plugin(tmp_path, "weather", "1.1.0", metadata=more), panel_modules(panel))
    page.reload()
    row = page.get_by_role("row").filter(has_text="Weather")
    row.get_by_role("button", name="Update Weather").click()
    dialog = page.get_by_role("dialog", name="Update Weather?")
    adds = dialog.get_by_role("list", name="Permissions the update adds")
    expect(adds).to_contain_text("Read the panel's users (names and roles)")
    expect(adds).not_to_contain_text("api.example.com")  # already granted
    dialog.get_by_role("button", name="Grant and update to 1.1.0").click()
    expect(page.get_by_role("status").or_(page.get_by_role("alert")).first).to_contain_text(
        "upgraded from 1.0.0 to 1.1.0", timeout=OPERATION_MS
    )
    with admin_api(panel) as admin:
        listed = {p["id"]: p for p in admin.get("/api/v1/marketplace/installed").json()}
    assert listed["weather"]["permissions"] == ["core:users:read", "network:api.example.com"]
    row = page.get_by_role("row").filter(has_text="Weather")
    expect(row.get_by_role("list", name="Granted permissions")).to_contain_text(
        "Read the panel's users"
    )


def panel_modules(panel: Panel) -> Path:
    return Path(panel.env["PLUGIN_LOCAL_DIR"])
