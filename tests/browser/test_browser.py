"""The web UI in a real browser: Debian's Chromium driven by Playwright against a real panel.

One panel (``plugdock serve`` on loopback, SQLite) and one browser serve the whole module;
each test signs in in a fresh browser context. The chatbot is packed with the real
``plugdock pack``, so its UI bundle is built by esbuild exactly as for users.
Screenshots go to ``test-artifacts/``. ``make test`` installs Chromium when it is missing
(``scripts/ensure-browser.sh``); here a missing browser is a failure, never a skip.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Page, expect

from browser_support import ARTIFACTS, admin_api, card, nav, plugin_page, sign_in, widget
from panel import ADMIN_PASSWORD, Panel, start_panel
from support import CHATBOT, make_plugin, pack_into

CHATBOT_VERSION = json.loads((CHATBOT / "metadata.json").read_text())["version"]

BROKEN_CONFIG = """\
import Boom from "./pages/Boom";

function BrokenWidget(): never {
  throw new Error("widget failure");
}

export default {
  id: "broken_page",
  nav: [{ label: "Boom", path: "/boom" }],
  routes: [{ path: "/boom", component: Boom }],
  widgets: [BrokenWidget],
};
"""
BROKEN_PAGE = """\
export default function Boom(): JSX.Element {
  throw new Error("boom from the plugin page");
}
"""


@pytest.fixture(scope="module")
def panel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Panel]:
    tmp = tmp_path_factory.mktemp("browser")
    modules = tmp / "modules"
    pack_into(CHATBOT, modules)
    broken = make_plugin(
        tmp / "src",
        "broken_page",
        metadata={"frontend": {"routes": ["/boom"], "components": ["Boom", "BrokenWidget"]}},
        extra_files={
            "frontend/addon.config.tsx": BROKEN_CONFIG,
            "frontend/pages/Boom.tsx": BROKEN_PAGE,
        },
    )
    pack_into(broken, modules)
    running = start_panel(tmp, f"sqlite:///{tmp / 'panel.db'}")
    yield running
    running.stop()


def test_admin_installs_uses_and_uninstalls_the_chatbot(page: Page, panel: Panel) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    sign_in(page, panel, "admin", ADMIN_PASSWORD)
    nav(page).get_by_role("link", name="Marketplace").click()
    expect(page).to_have_url(f"{panel.url}/marketplace")
    chatbot = card(page, "AI Chatbot")
    for text in (f"v{CHATBOT_VERSION}", "by plugdock", "Support", "Free", "support chat bubble"):
        expect(chatbot).to_contain_text(text)
    expect(chatbot).not_to_contain_text("Installed")
    expect(nav(page).get_by_role("link", name="Chats")).to_have_count(0)
    # A marker that a reload would wipe: the plugin must appear without one.
    page.evaluate("window.__noReload = true")

    chatbot.get_by_role("button", name="Install AI Chatbot").click()
    expect(page.get_by_role("status").filter(has_text="installed")).to_contain_text(
        f"AI Chatbot {CHATBOT_VERSION} installed"
    )
    expect(chatbot).to_contain_text(f"Installed v{CHATBOT_VERSION}")
    chats_link = nav(page).get_by_role("link", name="Chats")
    expect(chats_link).to_be_visible()
    bubble = widget(page, "ai_chatbot").get_by_role("button", name="Open support chat")
    expect(bubble).to_be_visible()
    assert page.evaluate("window.__noReload") is True
    page.screenshot(path=str(ARTIFACTS / "marketplace.png"), full_page=True)

    chats_link.click()
    expect(page).to_have_url(f"{panel.url}/support/chats")
    chats = plugin_page(page)  # the plugin's page, in its sandboxed frame
    expect(chats.get_by_role("heading", name="Chats", level=1)).to_be_visible()
    expect(chats_link).to_have_attribute("aria-current", "page")

    # A visitor's chat through the widget: name and email, a question, the bot's reply.
    bubble.click()
    dialog = widget(page, "ai_chatbot").get_by_role("dialog", name="Chat with us")
    dialog.get_by_label("Name").fill("Ada Lovelace")
    dialog.get_by_label("Email").fill("ada@example.com")
    dialog.get_by_role("button", name="Start chat").click()
    log = dialog.get_by_role("log", name="Conversation")
    expect(log).to_contain_text("Assistant said:")
    dialog.get_by_label("Your message").fill("How much does it cost?")
    dialog.get_by_role("button", name="Send").click()
    expect(log).to_contain_text("You said: How much does it cost?")
    expect(log.get_by_text("Assistant said:")).to_have_count(2)  # greeting + the reply

    # The admin page lists the session with the visitor's details and transcript.
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    chats.get_by_role("button", name="Refresh").click()
    expect(chats.get_by_role("table")).to_contain_text("ada@example.com")
    chats.get_by_role("button", name="Open the chat with Ada Lovelace").click()
    transcript = chats.get_by_role("complementary", name="Transcript")
    expect(transcript).to_contain_text("How much does it cost?")
    expect(transcript.get_by_role("listitem")).to_have_count(3)
    page.screenshot(path=str(ARTIFACTS / "chats.png"), full_page=True)

    # Uninstall: a confirm step (cancel first), then the page, nav item and widget go.
    nav(page).get_by_role("link", name="Marketplace").click()
    chatbot.get_by_role("button", name="Uninstall AI Chatbot").click()
    confirm = page.get_by_role("dialog", name="Uninstall AI Chatbot?")
    expect(confirm).to_be_visible()
    expect(confirm.get_by_role("button", name="Cancel")).to_be_focused()  # the safe choice
    page.keyboard.press("Escape")
    expect(confirm).to_be_hidden()
    chatbot.get_by_role("button", name="Uninstall AI Chatbot").click()
    confirm.get_by_role("button", name="Cancel").click()
    expect(confirm).to_be_hidden()
    expect(chatbot).to_contain_text(f"Installed v{CHATBOT_VERSION}")
    chatbot.get_by_role("button", name="Uninstall AI Chatbot").click()
    confirm.get_by_role("button", name="Uninstall").click()
    expect(page.get_by_role("status").filter(has_text="uninstalled")).to_contain_text(
        f"ai_chatbot {CHATBOT_VERSION} uninstalled"
    )
    expect(chatbot.get_by_role("button", name="Install AI Chatbot")).to_be_enabled()
    expect(nav(page).get_by_role("link", name="Chats")).to_have_count(0)
    expect(page.locator("iframe.widget-frame")).to_have_count(0)
    assert page.evaluate("window.__noReload") is True

    page.goto(f"{panel.url}/support/chats")
    expect(page.get_by_role("heading", level=1)).to_have_text("AI Chatbot is not installed")
    expect(nav(page).get_by_role("link", name="Dashboard")).to_be_visible()


def test_non_admin_sees_no_install_buttons(page: Page, panel: Panel) -> None:
    created = panel.cli(
        "user", "create", "bob", "--role", "user", "--password-stdin", stdin="bob-password\n"
    )
    assert created.returncode == 0, created.stderr
    with admin_api(panel) as admin:
        response = admin.post("/api/v1/marketplace/install", json={"plugin_id": "ai_chatbot"})
        assert response.status_code == 200, response.text
        try:
            # Widgets are on every page, the sign-in page too (a visitor may chat).
            page.goto(f"{panel.url}/")
            bubble = widget(page, "ai_chatbot").get_by_role("button", name="Open support chat")
            expect(bubble).to_be_visible()
            sign_in(page, panel, "bob", "bob-password")
            nav(page).get_by_role("link", name="Marketplace").click()
            chatbot = card(page, "AI Chatbot")
            expect(chatbot).to_contain_text(f"Installed v{CHATBOT_VERSION}")
            expect(page.get_by_text("Only administrators can install")).to_be_visible()
            expect(
                page.get_by_role("button", name=re.compile(r"^(Install|Uninstall)"))
            ).to_have_count(0)
            # The chats page is for admins: no nav item, and the URL says so.
            expect(bubble).to_be_visible()
            expect(nav(page).get_by_role("link", name="Chats")).to_have_count(0)
            page.goto(f"{panel.url}/support/chats")
            expect(page.get_by_role("heading", name="Not allowed")).to_be_visible()
        finally:
            admin.delete("/api/v1/marketplace/uninstall/ai_chatbot").raise_for_status()


def test_a_plugin_page_that_throws_leaves_the_shell_usable(page: Page, panel: Panel) -> None:
    with admin_api(panel) as admin:
        response = admin.post("/api/v1/marketplace/install", json={"plugin_id": "broken_page"})
        assert response.status_code == 200, response.text
        try:
            sign_in(page, panel, "admin", ADMIN_PASSWORD)
            nav(page).get_by_role("link", name="Boom").click()
            alert = plugin_page(page).get_by_role("alert")
            expect(alert).to_contain_text("The page of Broken Page stopped working")
            expect(alert).to_contain_text("boom from the plugin page")
            nav(page).get_by_role("link", name="Installed plugins").click()
            expect(page.get_by_role("heading", name="Installed plugins", level=1)).to_be_visible()
            expect(page.get_by_role("table")).to_contain_text("Broken Page")
            nav(page).get_by_role("link", name="Boom").click()
            plugin_page(page).get_by_role("button", name="Try again").click()
            expect(alert).to_contain_text("boom from the plugin page")
            nav(page).get_by_role("link", name="Marketplace").click()
            expect(card(page, "Broken Page")).to_contain_text("Installed v1.0.0")
        finally:
            admin.delete("/api/v1/marketplace/uninstall/broken_page").raise_for_status()


def test_manifest_and_bundles_over_http(panel: Panel) -> None:
    """The frontend endpoints without a browser: manifest, bundle, SPA fallback, 404s."""
    with httpx.Client(base_url=panel.url) as anonymous, admin_api(panel) as admin:
        assert anonymous.get("/api/v1/frontend/plugins").json() == []
        html = anonymous.get("/support/chats", headers={"Accept": "text/html"})
        assert html.status_code == 200 and '<script type="importmap">' in html.text
        imports = json.loads(html.text.split('<script type="importmap">')[1].split("</script>")[0])[
            "imports"
        ]
        assert set(imports) == {
            "react",
            "react-dom",
            "react-dom/client",
            "react/jsx-runtime",
            "@plugdock/sdk",
        }
        for url in imports.values():
            vendor = anonymous.get(url)
            assert vendor.status_code == 200 and "javascript" in vendor.headers["content-type"]
        api_404 = anonymous.get("/api/v1/nothing", headers={"Accept": "text/html"})
        assert api_404.status_code == 404 and api_404.json() == {"detail": "Not Found"}
        assert anonymous.get("/no-such-page").status_code == 404  # not a browser navigation

        assert admin.post(
            "/api/v1/marketplace/install", json={"plugin_id": "ai_chatbot"}
        ).is_success
        try:
            [entry] = anonymous.get("/api/v1/frontend/plugins").json()
            assert entry["id"] == "ai_chatbot" and entry["version"] == CHATBOT_VERSION
            assert entry["bundle_url"] == f"/plugins/ai_chatbot/{entry['operation_id']}/addon.js"
            bundle = anonymous.get(entry["bundle_url"])
            assert bundle.status_code == 200
            assert bundle.headers["content-type"].startswith("application/javascript")
            assert "immutable" in bundle.headers["cache-control"]
            assert anonymous.head(entry["bundle_url"]).status_code == 200
            assert 'from"react"' in bundle.text and "createRoot" not in bundle.text
            for bad in (
                f"/plugins/ai_chatbot/{'0' * 32}/addon.js",
                f"/plugins/Bad-Id/{entry['operation_id']}/addon.js",
                "/plugins/ai_chatbot/..%2F..%2Fbackend/addon.js",
            ):
                assert anonymous.get(bad).status_code == 404, bad
        finally:
            admin.delete("/api/v1/marketplace/uninstall/ai_chatbot").raise_for_status()
        assert anonymous.get(entry["bundle_url"]).status_code == 404
        assert anonymous.get("/api/v1/frontend/plugins").json() == []


def test_root_is_the_shell_for_any_client(panel: Panel) -> None:
    """`curl http://host/` (Accept: */*) gets the panel, not a JSON 404."""
    response = httpx.get(f"{panel.url}/", headers={"Accept": "*/*"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert httpx.get(f"{panel.url}/nowhere", headers={"Accept": "*/*"}).status_code == 404
