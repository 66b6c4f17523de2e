"""A plugin's life in the web UI (issue 8), in Debian's Chromium against a real panel.

Update with its changelog, disable/enable, uninstall with row counts and a backup, the
dependency plan on install, an update the core cannot take, and uploads of a good and a
tampered ZIP. The panel's source holds ai_chatbot 1.0.0 (examples/releases) and 1.1.0
(examples/plugins), packed with the real ``plugdock pack``, and small generated plugins;
the panel runs two workers.
Screenshots go to ``test-artifacts/``.
"""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect

from browser_support import ARTIFACTS, admin_api, card, nav, plugin_page, sign_in, widget
from panel import ADMIN_PASSWORD, Panel, start_panel
from support import CHATBOT, REPO, make_plugin, pack_into

CHATBOT_1_0 = REPO / "examples" / "releases" / "ai_chatbot-1.0.0"
#: An install, upgrade or uninstall may take a while (import, SQL, health check, every worker).
OPERATION_MS = 60_000
HOSTILE_CHANGELOG = """\
# Changelog

## 1.0.1

- <img src=x onerror="window.__xss = 1"> no longer breaks the list
- See [the docs](javascript:window.__xss=2) and **bold** `code`
<script>window.__xss = 3</script>
"""


@pytest.fixture(scope="module")
def panel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Panel]:
    new = json.loads((CHATBOT / "metadata.json").read_text())["version"]
    old = json.loads((CHATBOT_1_0 / "metadata.json").read_text())["version"]
    assert (old, new) == ("1.0.0", "1.1.0"), (
        f"the source needs ai_chatbot 1.0.0 and 1.1.0; examples hold {old} and {new}"
    )
    tmp = tmp_path_factory.mktemp("lifecycle")
    modules, src = tmp / "modules", tmp / "src"
    pack_into(CHATBOT_1_0, modules)
    pack_into(CHATBOT, modules)
    # invoices needs billing: installing invoices plans billing first.
    pack_into(make_plugin(src, "billing"), modules)
    deps = {"dependencies": {"billing": ">=1.0.0,<2"}}
    pack_into(make_plugin(src, "invoices", metadata=deps), modules)
    # needs_newer 2.0.0 asks for a core this panel is not: never offered as an update.
    pack_into(make_plugin(src, "needs_newer", "1.0.0"), modules)
    pack_into(make_plugin(src, "needs_newer", "2.0.0", metadata={"requires": ">=99.0.0"}), modules)
    # html_notes 1.0.1's changelog carries markup that must stay text.
    pack_into(make_plugin(src, "html_notes", "1.0.0"), modules)
    changelog = {"CHANGELOG.md": HOSTILE_CHANGELOG}
    pack_into(make_plugin(src, "html_notes", "1.0.1", extra_files=changelog), modules)
    # Two workers: after each change the page's next requests may reach either one.
    running = start_panel(tmp, f"sqlite:///{tmp / 'panel.db'}", workers=2)
    yield running
    running.stop()


def install(admin: httpx.Client, plugin_id: str, version: str | None = None) -> None:
    response = admin.post(
        "/api/v1/marketplace/install", json={"plugin_id": plugin_id, "version": version}
    )
    assert response.status_code == 200, response.text


def uninstall_all(admin: httpx.Client, *plugin_ids: str) -> None:
    """Clean up after a test, dependents first; what is not installed is skipped."""
    installed = {p["id"] for p in admin.get("/api/v1/marketplace/installed").json()}
    for plugin_id in plugin_ids:
        if plugin_id in installed:
            response = admin.delete(
                f"/api/v1/marketplace/uninstall/{plugin_id}", params={"backup": "false"}
            )
            assert response.status_code == 200, response.text


def start_chat(panel: Panel, name: str, email: str, question: str) -> dict:
    """A visitor's chat through the public API: greeting, question, the bot's reply.
    Gives ``{"session_id", "token", ...}``."""
    with httpx.Client(base_url=panel.url, timeout=30) as visitor:
        started = visitor.post(
            "/api/v1/chat/sessions", json={"guest_name": name, "guest_email": email}
        )
        assert started.status_code == 201, started.text
        chat = started.json()
        sent = visitor.post(
            f"/api/v1/chat/sessions/{chat['session_id']}/messages",
            json={"content": question},
            headers={"X-Chat-Token": chat["token"]},
        )
        assert sent.status_code == 201, sent.text
    return chat


def open_page(page: Page, label: str) -> None:
    nav(page).get_by_role("link", name=label, exact=True).click()


def test_update_badge_update_and_the_chats_kept(page: Page, panel: Panel) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    with admin_api(panel) as admin:
        install(admin, "ai_chatbot", "1.0.0")
        try:
            chat = start_chat(panel, "Ada Lovelace", "ada@example.com", "How much does it cost?")
            sign_in(page, panel, "admin", ADMIN_PASSWORD)

            open_page(page, "Installed plugins")
            row = page.get_by_role("row").filter(has_text="AI Chatbot")
            expect(row).to_contain_text("Update available 1.1.0")
            expect(row.get_by_role("button", name="Update AI Chatbot")).to_be_visible()

            open_page(page, "Marketplace")
            chatbot = card(page, "AI Chatbot")
            expect(chatbot).to_contain_text("Installed v1.0.0")
            expect(chatbot).to_contain_text("Update available 1.1.0")
            page.evaluate("window.__noReload = true")

            # The confirm step: from → to, the data steps, the changelog as text.
            chatbot.get_by_role("button", name="Update AI Chatbot").click()
            dialog = page.get_by_role("dialog", name="Update AI Chatbot?")
            expect(dialog.get_by_role("button", name="Cancel")).to_be_focused()
            expect(dialog).to_contain_text("From version 1.0.0")
            expect(dialog).to_contain_text("to version 1.1.0")
            expect(dialog).to_contain_text("1.1.0")
            changelog = dialog.get_by_label("Changelog")
            expect(changelog).to_contain_text(_changelog_line())
            assert changelog.locator("script, a, img, iframe").count() == 0
            page.screenshot(path=str(ARTIFACTS / "update-dialog.png"))
            page.keyboard.press("Escape")
            expect(dialog).to_be_hidden()
            expect(chatbot).to_contain_text("Installed v1.0.0")

            chatbot.get_by_role("button", name="Update AI Chatbot").click()
            dialog.get_by_role("button", name="Update to 1.1.0").click()
            expect(page.get_by_role("status").filter(has_text="1.1.0")).to_be_visible(
                timeout=OPERATION_MS
            )
            expect(page.get_by_role("alert")).to_have_count(0)
            expect(chatbot).to_contain_text("Installed v1.1.0")
            expect(chatbot).not_to_contain_text("Update available")
            expect(chatbot.get_by_role("button", name="Update AI Chatbot")).to_have_count(0)
            assert page.evaluate("window.__noReload") is True

            # 1.1.0's new route takes a rating of the chat started on 1.0.0 (its token kept).
            rated = httpx.post(
                f"{panel.url}/api/v1/chat/sessions/{chat['session_id']}/rating",
                json={"stars": 4, "comment": "Quick and helpful"},
                headers={"X-Chat-Token": chat["token"]},
            )
            assert rated.status_code == 200, rated.text

            # The new version's page: the 1.0.0 transcript carried over, and its rating.
            open_page(page, "Chats")
            chats = plugin_page(page)
            table = chats.get_by_role("table")
            expect(table.get_by_role("columnheader", name="Rating")).to_be_visible()
            ada = table.get_by_role("row").filter(has_text="ada@example.com")
            expect(ada.get_by_label("4 of 5 stars")).to_be_visible()
            chats.get_by_role("button", name="Open the chat with Ada Lovelace").click()
            transcript = chats.get_by_role("complementary", name="Transcript")
            expect(transcript).to_contain_text("How much does it cost?")
            expect(transcript.get_by_role("listitem")).to_have_count(3)
            expect(transcript.get_by_label("Visitor's rating")).to_contain_text("Quick and helpful")
            assert page.evaluate("window.__noReload") is True
            page.screenshot(path=str(ARTIFACTS / "chats-1.1.0.png"), full_page=True)
        finally:
            uninstall_all(admin, "ai_chatbot")


def _changelog_line() -> str:
    """A line of 1.1.0's CHANGELOG.md as the dialog shows it (without Markdown marks)."""
    text = (CHATBOT / "CHANGELOG.md").read_text(encoding="utf-8")
    for line in text.splitlines():
        stripped = line.strip().lstrip("-*+ ").replace("`", "").replace("**", "")
        if stripped and not line.startswith("#") and len(stripped) > 12:
            return stripped[:40].strip()
    raise AssertionError("CHANGELOG.md has no text line")


def test_disable_hides_the_chats_page_and_enable_brings_it_back(page: Page, panel: Panel) -> None:
    with admin_api(panel) as admin:
        install(admin, "ai_chatbot")
        try:
            start_chat(panel, "Grace Hopper", "grace@example.com", "Do you have a free plan?")
            sign_in(page, panel, "admin", ADMIN_PASSWORD)
            open_page(page, "Installed plugins")
            page.evaluate("window.__noReload = true")
            switch = page.get_by_role("switch", name="AI Chatbot enabled")
            expect(switch).to_be_checked()
            expect(nav(page).get_by_role("link", name="Chats")).to_be_visible()
            bubble = widget(page, "ai_chatbot").get_by_role("button", name="Open support chat")
            expect(bubble).to_be_visible()

            switch.click()
            expect(page.get_by_role("status").filter(has_text="disabled")).to_be_visible(
                timeout=OPERATION_MS
            )
            expect(switch).not_to_be_checked()
            row = page.get_by_role("row").filter(has_text="AI Chatbot")
            expect(row).to_contain_text("Disabled")
            expect(nav(page).get_by_role("link", name="Chats")).to_have_count(0)
            expect(page.locator("iframe.widget-frame")).to_have_count(0)
            assert admin.get("/api/v1/chat/sessions").status_code == 404
            page.screenshot(path=str(ARTIFACTS / "installed-disabled.png"), full_page=True)
            open_page(page, "Marketplace")
            expect(card(page, "AI Chatbot")).to_contain_text("Disabled")
            assert page.evaluate("window.__noReload") is True

            open_page(page, "Installed plugins")
            switch.click()
            expect(page.get_by_role("status").filter(has_text="enabled")).to_be_visible(
                timeout=OPERATION_MS
            )
            expect(switch).to_be_checked()
            open_page(page, "Chats")  # back without a reload, rows kept
            expect(plugin_page(page).get_by_role("table")).to_contain_text("grace@example.com")
            assert page.evaluate("window.__noReload") is True
        finally:
            uninstall_all(admin, "ai_chatbot")


def test_uninstall_dialog_lists_tables_with_row_counts_and_keeps_a_backup(
    page: Page, panel: Panel
) -> None:
    with admin_api(panel) as admin:
        install(admin, "ai_chatbot")
        try:
            start_chat(panel, "Alan Turing", "alan@example.com", "Where is my invoice?")
            sign_in(page, panel, "admin", ADMIN_PASSWORD)
            open_page(page, "Marketplace")
            chatbot = card(page, "AI Chatbot")
            chatbot.get_by_role("button", name="Uninstall AI Chatbot").click()
            dialog = page.get_by_role("dialog", name="Uninstall AI Chatbot?")
            expect(dialog.get_by_role("button", name="Cancel")).to_be_focused()
            tables = dialog.get_by_role("table", name="Tables to drop")
            # One session; its greeting, the question and the bot's reply.
            expect(tables.get_by_role("row").filter(has_text="chat_sessions")).to_contain_text(
                "1 row"
            )
            expect(tables.get_by_role("row").filter(has_text="chat_messages")).to_contain_text(
                "3 rows"
            )
            backup = dialog.get_by_role("checkbox", name="Keep a backup of its data")
            expect(backup).to_be_checked()
            # Forcing (skip its on_uninstall) is offered, never the default.
            force = dialog.get_by_role(
                "checkbox", name="Force: skip the plugin's own uninstall code"
            )
            expect(force).not_to_be_checked()
            page.screenshot(path=str(ARTIFACTS / "uninstall-dialog.png"))

            dialog.get_by_role("button", name="Uninstall").click()
            notice = page.get_by_role("status").filter(has_text="uninstalled")
            expect(notice).to_contain_text("backup saved as ai_chatbot", timeout=OPERATION_MS)
            name = notice.inner_text().split("backup saved as ")[1].split()[0].rstrip(";.)")
            saved = Path(panel.env["PLUGDOCK_HOME"]) / "backups" / name
            assert saved.is_file() and zipfile.is_zipfile(saved), saved
            expect(chatbot.get_by_role("button", name="Install AI Chatbot")).to_be_enabled()
            expect(nav(page).get_by_role("link", name="Chats")).to_have_count(0)
        finally:
            uninstall_all(admin, "ai_chatbot")


def test_install_shows_the_dependency_plan_and_uninstall_names_dependents(
    page: Page, panel: Panel
) -> None:
    with admin_api(panel) as admin:
        try:
            sign_in(page, panel, "admin", ADMIN_PASSWORD)
            open_page(page, "Marketplace")
            card(page, "Invoices").get_by_role("button", name="Install Invoices").click()
            dialog = page.get_by_role("dialog", name="Install Invoices?")
            steps = dialog.get_by_role("list", name="Install plan").get_by_role("listitem")
            expect(steps).to_have_count(2)
            expect(steps.nth(0)).to_contain_text("billing 1.0.0")
            expect(steps.nth(0)).to_contain_text("needed by invoices")
            expect(steps.nth(1)).to_contain_text("invoices 1.0.0")
            page.screenshot(path=str(ARTIFACTS / "install-plan.png"))
            dialog.get_by_role("button", name="Install 2 plugins").click()
            expect(page.get_by_role("status").filter(has_text="installed")).to_contain_text(
                "billing", timeout=OPERATION_MS
            )
            expect(card(page, "Invoices")).to_contain_text("Installed v1.0.0")
            expect(card(page, "Billing")).to_contain_text("Installed v1.0.0")

            card(page, "Billing").get_by_role("button", name="Uninstall Billing").click()
            refused = page.get_by_role("dialog", name="Uninstall Billing?")
            expect(refused.get_by_role("alert")).to_contain_text("invoices needs it")
            expect(refused.get_by_role("button", name="Uninstall")).to_be_disabled()
            refused.get_by_role("button", name="Cancel").click()
            expect(card(page, "Billing")).to_contain_text("Installed v1.0.0")

            # Without a backup: the dialog says the rows go for good, and none is written.
            card(page, "Invoices").get_by_role("button", name="Uninstall Invoices").click()
            dialog = page.get_by_role("dialog", name="Uninstall Invoices?")
            tables = dialog.get_by_role("table", name="Tables to drop")
            expect(tables.get_by_role("row").filter(has_text="invoices_notes")).to_contain_text(
                "1 row"
            )
            dialog.get_by_role("checkbox", name="Keep a backup of its data").uncheck()
            expect(dialog).to_contain_text("the rows are gone for good")
            dialog.get_by_role("button", name="Uninstall").click()
            notice = page.get_by_role("status").filter(has_text="uninstalled")
            expect(notice).to_contain_text("invoices 1.0.0 uninstalled", timeout=OPERATION_MS)
            expect(notice).not_to_contain_text("backup")
            backups = Path(panel.env["PLUGDOCK_HOME"]) / "backups"
            assert not list(backups.glob("invoices-*")), list(backups.iterdir())
        finally:
            uninstall_all(admin, "invoices", "billing")


def test_an_update_the_core_cannot_take_is_never_offered(page: Page, panel: Panel) -> None:
    with admin_api(panel) as admin:
        install(admin, "needs_newer", "1.0.0")
        try:
            item = admin.get("/api/v1/marketplace/plugins/needs_newer").json()
            assert item["update_available"] == "2.0.0" and item["update_compatible"] is False
            sign_in(page, panel, "admin", ADMIN_PASSWORD)
            open_page(page, "Marketplace")
            needs_newer = card(page, "Needs Newer")
            expect(needs_newer).to_contain_text("2.0.0 cannot be installed here")
            expect(needs_newer).to_contain_text(item["update_problem"])
            expect(needs_newer).not_to_contain_text("Update available")
            expect(needs_newer.get_by_role("button", name="Update Needs Newer")).to_have_count(0)
            open_page(page, "Installed plugins")
            row = page.get_by_role("row").filter(has_text="Needs Newer")
            expect(row).to_contain_text("cannot be installed here")
            expect(row.get_by_role("button", name="Update Needs Newer")).to_have_count(0)
        finally:
            uninstall_all(admin, "needs_newer")


def _tampered_copy(good: Path, target: Path) -> Path:
    """The same package with one byte of its backend changed (its checksums left as they were)."""
    with zipfile.ZipFile(good) as source, zipfile.ZipFile(target, "w") as copy:
        for info in source.infolist():
            data = source.read(info)
            if info.filename == "backend/routes.py":
                assert b"'pong': True" in data
                data = data.replace(b"'pong': True", b"'pong': 1234")
            copy.writestr(info, data)
    return target


def _choose_upload(page: Page) -> None:
    """Upload a package; in inprocess mode the dialog first says what that means."""
    page.get_by_role("button", name="Upload a package").click()
    if os.environ.get("PLUGDOCK_ISOLATION", "inprocess") == "inprocess":  # make test's 1st pass
        dialog = page.get_by_role("dialog", name="Upload a package?")
        expect(dialog).to_contain_text("with the panel's full rights")
        dialog.get_by_role("button", name="Choose a package").click()


def test_upload_installs_a_good_zip_and_refuses_a_tampered_one(
    page: Page, panel: Panel, tmp_path: Path
) -> None:
    good = pack_into(make_plugin(tmp_path / "src", "upload_demo"), tmp_path / "uploads")
    tampered = _tampered_copy(good, tmp_path / "upload_demo_tampered.zip")
    with admin_api(panel) as admin:
        try:
            sign_in(page, panel, "admin", ADMIN_PASSWORD)
            open_page(page, "Marketplace")
            with page.expect_file_chooser() as chooser:
                _choose_upload(page)
            chooser.value.set_files(str(tampered))
            alert = page.get_by_role("alert")
            expect(alert).to_contain_text(
                "Could not install upload_demo_tampered.zip", timeout=OPERATION_MS
            )
            expect(alert).to_contain_text("'backend/routes.py': contents do not match its SHA-256")
            installed = {p["id"] for p in admin.get("/api/v1/marketplace/installed").json()}
            assert "upload_demo" not in installed

            with page.expect_file_chooser() as chooser:
                _choose_upload(page)
            chooser.value.set_files(str(good))
            expect(page.get_by_role("status").filter(has_text="installed")).to_contain_text(
                "Upload Demo 1.0.0 installed", timeout=OPERATION_MS
            )
            expect(page.get_by_role("alert")).to_have_count(0)
            open_page(page, "Installed plugins")
            expect(page.get_by_role("row").filter(has_text="Upload Demo")).to_contain_text("1.0.0")
            pong = admin.get("/api/v1/upload-demo/ping")
            assert pong.status_code == 200 and pong.json() == {"pong": True}
        finally:
            uninstall_all(admin, "upload_demo")


def test_a_changelog_is_shown_as_text_never_as_html(page: Page, panel: Panel) -> None:
    with admin_api(panel) as admin:
        install(admin, "html_notes", "1.0.0")
        try:
            sign_in(page, panel, "admin", ADMIN_PASSWORD)
            open_page(page, "Marketplace")
            notes = card(page, "Html Notes")
            notes.get_by_role("button", name="Update Html Notes").click()
            dialog = page.get_by_role("dialog", name="Update Html Notes?")
            changelog = dialog.get_by_label("Changelog")
            expect(changelog).to_contain_text('<img src=x onerror="window.__xss = 1">')
            expect(changelog).to_contain_text("[the docs](javascript:window.__xss=2)")
            expect(changelog).to_contain_text("<script>window.__xss = 3</script>")
            expect(changelog.locator("strong")).to_have_text("bold")
            expect(changelog.locator("code")).to_have_text("code")
            assert changelog.locator("img, a, script").count() == 0
            expect(dialog).to_contain_text("It needs no data steps")
            dialog.get_by_role("button", name="Update to 1.0.1").click()
            expect(page.get_by_role("status").filter(has_text="1.0.1")).to_be_visible(
                timeout=OPERATION_MS
            )
            expect(notes).to_contain_text("Installed v1.0.1")
            assert page.evaluate("window.__xss") is None
        finally:
            uninstall_all(admin, "html_notes")
