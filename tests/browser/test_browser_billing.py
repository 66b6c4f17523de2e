"""The billing example host's own UI in Chromium: its sign-in, customers, invoices, payments,
and plugdock inside it through @plugdock/react (examples/hosts/billing/web/src/plugdock.tsx):
the marketplace and installed screens under /addons, plugin pages in billing's layout, the
chatbot's bubble on every page.

The UI is the Vite build ``make billing-web`` makes (``make test`` does it first).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from billing_host import ADMIN, BILLING, CLERK, CSRF, billing_client, start_billing
from browser_support import ARTIFACTS, TIMEOUT_MS, card, plugin_page, widget
from panel import Panel
from support import CHATBOT, CHATBOT_1_0, REPO, pack_into

DIST = BILLING / "web" / "dist" / "index.html"
SMS = REPO / "examples" / "plugins" / "sms_notifications"
SMS_KEY = "gw-key-billing-0123456789"
#: An install, upgrade or uninstall may take a while (import, SQL, health check, both workers).
OPERATION_MS = 60_000


@pytest.fixture(scope="module")
def billing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Panel]:
    assert DIST.is_file(), "the billing UI is not built: make billing-web"
    tmp = tmp_path_factory.mktemp("browser-billing")
    pack_into(CHATBOT_1_0, tmp / "modules")  # 1.1.0 is published during the lifecycle test
    pack_into(SMS, tmp / "modules")
    running = start_billing(tmp, f"sqlite:///{tmp / 'billing.db'}", workers=2)
    yield running
    running.stop()


def sign_in(page: Page, billing: Panel, who: tuple[str, str]) -> None:
    page.goto(f"{billing.url}/customers")
    page.get_by_label("Email").fill(who[0])
    page.get_by_label("Password").fill(who[1])
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_test_id("me")).to_have_text(who[0])


def test_an_admin_signs_in_reads_customers_and_marks_an_invoice_paid(
    page: Page, billing: Panel
) -> None:
    page.goto(f"{billing.url}/customers")
    page.get_by_label("Email").fill(ADMIN[0])
    page.get_by_label("Password").fill("wrong password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_text("wrong email or password")).to_be_visible()

    sign_in(page, billing, ADMIN)
    customers = page.get_by_test_id("customers")
    expect(customers).to_contain_text("Acme Tools")
    expect(customers.locator("tbody tr")).to_have_count(3)

    page.get_by_role("link", name="Invoices").click()
    invoices = page.get_by_test_id("invoices")
    expect(invoices.locator("tbody tr")).to_have_count(3)
    open_row = invoices.locator("tbody tr", has_text="Blue Harbor Café")
    expect(open_row).to_contain_text("open")
    open_row.get_by_role("link").click()
    expect(page.get_by_test_id("total")).to_have_text("€180.00")
    page.get_by_role("button", name="Mark paid").click()
    expect(page.get_by_test_id("status")).to_have_text("paid")

    page.get_by_role("link", name="Payments").click()
    expect(page.get_by_test_id("payments").locator("tbody tr")).to_have_count(2)
    page.reload()  # a deep link: the billing app serves its UI for it
    expect(page.get_by_test_id("payments").locator("tbody tr")).to_have_count(2)


def test_an_admin_installs_uses_upgrades_and_uninstalls_the_chatbot_in_billings_ui(
    page: Page, browser: Browser, billing: Panel
) -> None:
    """@plugdock/react in billing's own UI (web/src/plugdock.tsx): the marketplace under
    /addons, the chatbot's nav item in billing's menu, its page framed in billing's layout, its
    bubble on every page, an update from the installed screen, uninstall; a clerk may not."""
    ARTIFACTS.mkdir(exist_ok=True)
    modules = Path(billing.env["PLUGIN_LOCAL_DIR"])
    newer = None
    try:
        sign_in(page, billing, ADMIN)
        page.evaluate("window.__noReload = true")  # every change below happens without a reload
        menu = page.get_by_role("navigation", name="Billing")
        menu.get_by_role("link", name="Add-ons").click()
        expect(page).to_have_url(f"{billing.url}/addons")
        expect(page.get_by_role("heading", name="Marketplace", level=1)).to_be_visible()
        chatbot = card(page, "AI Chatbot")
        expect(chatbot).to_contain_text("v1.0.0")
        expect(menu.get_by_role("link", name="Chats")).to_have_count(0)

        # A cross-site form cannot send plugdock's header: billing's cookie alone is refused.
        forged = page.request.post(
            f"{billing.url}/api/v1/marketplace/install", data={"plugin_id": "ai_chatbot"}
        )
        assert forged.status == 403 and "X-Plugdock-CSRF" in forged.text(), forged.text()

        # The chatbot has no dependencies: its install plan is one step, so no plan dialog.
        chatbot.get_by_role("button", name="Install AI Chatbot").click()
        expect(page.get_by_role("status").filter(has_text="installed")).to_contain_text(
            "AI Chatbot 1.0.0 installed", timeout=OPERATION_MS
        )
        expect(chatbot).to_contain_text("Installed v1.0.0")
        chats_link = menu.get_by_role("link", name="Chats")  # usePluginNav, in billing's menu
        expect(chats_link).to_be_visible()
        bubble = widget(page, "ai_chatbot").get_by_role("button", name="Open support chat")
        expect(bubble).to_be_visible()
        page.screenshot(path=str(ARTIFACTS / "billing-addons.png"), full_page=True)

        # The plugin's page inside billing's layout: billing's menu beside its sandboxed frame.
        chats_link.click()
        expect(page).to_have_url(f"{billing.url}/support/chats")
        expect(page.locator("main.page iframe.plugin-frame")).to_have_attribute(
            "sandbox", "allow-scripts allow-forms"
        )
        chats = plugin_page(page)
        expect(chats.get_by_role("heading", name="Chats", level=1)).to_be_visible()
        expect(chats_link).to_have_class("active")

        # A visitor's chat as 1.0.0's widget starts it (1.0.0's widget calls the chat API with
        # the frame's own fetch, which the frame's CSP blocks; 1.1.0's goes through the bridge,
        # below): the page lists it and shows its transcript.
        start_chat(billing, "Ada Lovelace", "ada@example.com", "Can I pay by card?")
        chats.get_by_role("button", name="Refresh").click()
        expect(chats.get_by_role("table")).to_contain_text("ada@example.com")
        chats.get_by_role("button", name="Open the chat with Ada Lovelace").click()
        transcript = chats.get_by_role("complementary", name="Transcript")
        expect(transcript).to_contain_text("Can I pay by card?")

        # The bubble on billing's own pages too.
        menu.get_by_role("link", name="Invoices").click()
        expect(page.get_by_test_id("invoices")).to_be_visible()
        expect(bubble).to_be_visible()

        # 1.1.0 is published: the installed screen offers it; its dialog updates.
        newer = pack_into(CHATBOT, modules)
        menu.get_by_role("link", name="Add-ons").click()
        page.get_by_role("navigation", name="Add-ons").get_by_role("link", name="Installed").click()
        expect(page.get_by_role("heading", name="Installed plugins", level=1)).to_be_visible()
        row = page.get_by_role("row").filter(has_text="AI Chatbot")
        expect(row).to_contain_text("Running")
        expect(row).to_contain_text("Update available 1.1.0")
        row.get_by_role("button", name="Update AI Chatbot").click()
        update = page.get_by_role("dialog", name="Update AI Chatbot?")
        expect(update).to_contain_text("From version 1.0.0")
        update.get_by_role("button", name="Update to 1.1.0").click()
        expect(page.get_by_role("status").filter(has_text="1.1.0")).to_be_visible(
            timeout=OPERATION_MS
        )
        expect(page.get_by_role("alert")).to_have_count(0)
        expect(row).not_to_contain_text("Update available")

        # 1.1.0's bubble: a chat through billing's fetch (the package's bridge), in the page.
        bubble.click()
        dialog = widget(page, "ai_chatbot").get_by_role("dialog", name="Chat with us")
        dialog.get_by_label("Name").fill("Grace Hopper")
        dialog.get_by_label("Email").fill("grace@example.com")
        dialog.get_by_role("button", name="Start chat").click()
        log = dialog.get_by_role("log", name="Conversation")
        expect(log).to_contain_text("Assistant said:")
        dialog.get_by_label("Your message").fill("Do you send reminders?")
        dialog.get_by_role("button", name="Send").click()
        expect(log).to_contain_text("You said: Do you send reminders?")
        page.keyboard.press("Escape")
        expect(dialog).to_be_hidden()
        chats_link.click()
        table = plugin_page(page).get_by_role("table")
        expect(table).to_contain_text("grace@example.com")
        expect(table).to_contain_text("ada@example.com")  # the 1.0.0 chat, kept by the update
        page.screenshot(path=str(ARTIFACTS / "billing-chats.png"), full_page=True)

        # A clerk: the marketplace read-only, no admin screens, no Chats (admin-only), and
        # plugdock's API refuses the clerk's change.
        clerk_context = browser.new_context()
        clerk_context.set_default_timeout(TIMEOUT_MS)
        try:
            clerk = clerk_context.new_page()
            sign_in(clerk, billing, CLERK)
            clerk_menu = clerk.get_by_role("navigation", name="Billing")
            clerk_menu.get_by_role("link", name="Add-ons").click()
            expect(clerk.get_by_text("Only administrators can install")).to_be_visible()
            expect(card(clerk, "AI Chatbot")).to_contain_text("Installed v1.1.0")
            buttons = clerk.get_by_role("button", name=re.compile(r"^(Install|Uninstall|Update)"))
            expect(buttons).to_have_count(0)
            tabs = clerk.get_by_role("navigation", name="Add-ons")
            expect(tabs.get_by_role("link")).to_have_text(["Marketplace"])
            expect(clerk_menu.get_by_role("link", name="Chats")).to_have_count(0)
            refused = clerk.request.delete(
                f"{billing.url}/api/v1/marketplace/uninstall/ai_chatbot", headers=CSRF
            )
            assert refused.status == 403, refused.text()
        finally:
            clerk_context.close()

        # Uninstall from the marketplace: the menu item, the page and the bubble go.
        menu.get_by_role("link", name="Add-ons").click()
        chatbot.get_by_role("button", name="Uninstall AI Chatbot").click()
        confirm = page.get_by_role("dialog", name="Uninstall AI Chatbot?")
        confirm.get_by_role("button", name="Uninstall").click()
        expect(page.get_by_role("status").filter(has_text="uninstalled")).to_contain_text(
            "ai_chatbot 1.1.0 uninstalled", timeout=OPERATION_MS
        )
        expect(menu.get_by_role("link", name="Chats")).to_have_count(0)
        expect(page.locator("iframe.widget-frame")).to_have_count(0)
        assert page.evaluate("window.__noReload") is True
    finally:
        admin = billing_client(billing, ADMIN)
        try:  # leave the module's billing as the test found it, even after a failure
            installed = {p["id"] for p in admin.get("/api/v1/marketplace/installed").json()}
            if "ai_chatbot" in installed:
                admin.delete("/api/v1/marketplace/uninstall/ai_chatbot", headers=CSRF)
        finally:
            admin.close()
        if newer is not None:
            newer.unlink()


def test_an_admin_sets_a_plugins_settings_from_billings_installed_screen(
    page: Page, billing: Panel
) -> None:
    """<InstalledPlugins />'s settings form in billing's UI: its PUT goes with billing's cookie
    and X-Plugdock-CSRF; the secret is shown only as set."""
    admin = billing_client(billing, ADMIN)
    try:
        done = admin.post(
            "/api/v1/marketplace/install",
            json={"plugin_id": "sms_notifications"},
            headers=CSRF,
            timeout=OPERATION_MS / 1000,
        )
        assert done.status_code == 200, done.text
        sign_in(page, billing, ADMIN)
        page.get_by_role("navigation", name="Billing").get_by_role("link", name="Add-ons").click()
        page.get_by_role("navigation", name="Add-ons").get_by_role("link", name="Installed").click()
        expect(page).to_have_url(f"{billing.url}/addons/installed")
        row = page.get_by_role("row").filter(has_text="SMS Notifications")
        expect(row).to_contain_text("Needs configuration")
        row.get_by_role("button", name="Settings of SMS Notifications").click()
        form = page.locator("section.plugin-settings")
        form.get_by_label("Gateway URL").fill("https://sms-gateway.example/v1/messages")
        form.get_by_label("API key").fill(SMS_KEY)
        form.get_by_role("button", name="Save settings").click()
        expect(form.get_by_role("status").filter(has_text="Saved.")).to_be_visible()
        expect(form.locator('[data-setting="api_key"]')).to_contain_text("set")
        assert SMS_KEY not in page.content()
        shown = admin.get("/api/v1/plugins/sms_notifications/settings").json()
        values = {s["name"]: s for s in shown["settings"]}
        assert values["gateway_url"]["value"] == "https://sms-gateway.example/v1/messages"
        assert values["api_key"]["set"] is True and shown["needs_configuration"] is False
    finally:
        admin.delete(
            "/api/v1/marketplace/uninstall/sms_notifications",
            params={"backup": "false"},
            headers=CSRF,
            timeout=OPERATION_MS / 1000,
        )
        admin.close()


def start_chat(billing: Panel, name: str, email: str, question: str) -> None:
    """A visitor's chat through the chatbot's public API (no billing cookie): started, asked."""
    with httpx.Client(base_url=billing.url, timeout=30) as visitor:
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


def test_a_clerk_sees_invoices_but_no_admin_actions(page: Page, billing: Panel) -> None:
    sign_in(page, billing, CLERK)
    expect(page.get_by_test_id("customers")).to_contain_text("Northwind Traders")
    expect(page.get_by_role("button", name="Add customer")).to_have_count(0)
    page.get_by_role("link", name="Invoices").click()
    page.get_by_test_id("invoices").get_by_role("link", name="Draft #3").click()
    expect(page.get_by_test_id("status")).to_have_text("draft")
    expect(page.get_by_role("button", name="Issue invoice")).to_have_count(0)
