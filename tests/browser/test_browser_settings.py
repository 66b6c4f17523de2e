"""The generated settings form of an installed plugin, in Debian's Chromium against a real
panel: sms_notifications' gateway URL and key set in the UI, the key then shown only as
"set", a wrong value's message under its field. Screenshots go to ``test-artifacts/``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from browser_support import ARTIFACTS, admin_api, nav, sign_in
from panel import ADMIN_PASSWORD, INPROCESS, Panel, start_panel
from support import REPO, pack_into

SMS = REPO / "examples" / "plugins" / "sms_notifications"
KEY = "gw-key-browser-0123456789"


@pytest.fixture(scope="module")
def panel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Panel]:
    tmp: Path = tmp_path_factory.mktemp("settings")
    pack_into(SMS, tmp / "modules")
    running = start_panel(tmp, f"sqlite:///{tmp / 'panel.db'}", extra_env=INPROCESS)
    yield running
    running.stop()


def test_the_settings_form_sets_the_gateway_and_shows_the_key_only_as_set(
    page: Page, panel: Panel
) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    with admin_api(panel) as admin:
        installed = admin.post(
            "/api/v1/marketplace/install", json={"plugin_id": "sms_notifications"}
        )
        assert installed.status_code == 200, installed.text
    sign_in(page, panel, "admin", ADMIN_PASSWORD)
    nav(page).get_by_role("link", name="Installed plugins", exact=True).click()
    row = page.get_by_role("row").filter(has_text="SMS Notifications")
    expect(row).to_contain_text("Needs configuration")
    row.get_by_role("button", name="Settings of SMS Notifications").click()

    form = page.locator("section.plugin-settings")
    expect(form).to_contain_text("Needs configuration")
    expect(form).to_contain_text("Where messages are POSTed")  # the description
    url = form.get_by_label("Gateway URL")
    key = form.get_by_label("API key")
    expect(form.get_by_label("Sender name")).to_have_value("plugdock")  # the default

    # A wrong value: the server's message under its field, nothing saved.
    url.fill("not a url")
    key.fill(KEY)
    form.get_by_role("button", name="Save settings").click()
    expect(form.locator('[data-setting="gateway_url"]')).to_contain_text("is not a 'uri'")

    url.fill("https://sms-gateway.example/v1/messages")
    key.fill(KEY)
    form.get_by_role("button", name="Save settings").click()
    expect(form.get_by_role("status").filter(has_text="Saved.")).to_be_visible()
    secret = form.locator('[data-setting="api_key"]')
    expect(secret).to_contain_text("set")
    expect(secret.get_by_role("button", name="Replace")).to_be_visible()
    expect(secret.get_by_role("button", name="Clear")).to_be_visible()
    expect(form).not_to_contain_text("Needs configuration")
    assert KEY not in page.content()
    page.screenshot(path=str(ARTIFACTS / "plugin-settings.png"), full_page=True)

    with admin_api(panel) as admin:
        shown = admin.get("/api/v1/plugins/sms_notifications/settings").json()
        values = {s["name"]: s for s in shown["settings"]}
        assert values["gateway_url"]["value"] == "https://sms-gateway.example/v1/messages"
        assert values["api_key"]["set"] is True and KEY not in str(shown)
        assert shown["needs_configuration"] is False
