"""The panel's Content-Security-Policy in a real browser: the shell and plugin UIs run,
injected scripts do not, and no other site may frame the panel.

Uses the shared Chromium fixtures (tests/conftest.py) and a ``plugdock serve`` on loopback
with the chatbot packed (its UI bundle built by esbuild, as for users). Violations are
collected by a listener Playwright installs before any page script runs.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from browser_support import admin_api, sign_in, widget
from panel import ADMIN_PASSWORD, Panel, start_panel
from support import CHATBOT, pack_into

COLLECT_VIOLATIONS = """
window.__violations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__violations.push(event.violatedDirective + " " + (event.blockedURI || ""));
});
"""

INJECT = """() => {
  const script = document.createElement("script");
  script.textContent = "window.__injected = 'inline script ran'";
  document.body.appendChild(script);
  const holder = document.createElement("div");
  holder.innerHTML = '<img src="data:," onerror="window.__handler = \\'handler ran\\'">';
  document.body.appendChild(holder);
}"""


@pytest.fixture(scope="module")
def panel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Panel]:
    tmp = tmp_path_factory.mktemp("browser-headers")
    pack_into(CHATBOT, tmp / "modules")
    running = start_panel(tmp, f"sqlite:///{tmp / 'panel.db'}")
    yield running
    running.stop()


def test_the_shell_and_a_plugin_ui_run_but_injected_scripts_do_not(
    page: Page, panel: Panel
) -> None:
    """Before: no policy, so an injected script (stored XSS in a plugin page) could run."""
    page.add_init_script(COLLECT_VIOLATIONS)
    with admin_api(panel) as admin:
        installed = admin.post("/api/v1/marketplace/install", json={"plugin_id": "ai_chatbot"})
        assert installed.status_code == 200, installed.text
        try:
            response = page.goto(f"{panel.url}/")
            assert response is not None
            csp = response.headers["content-security-policy"]
            assert "frame-ancestors 'none'" in csp and "'sha256-" in csp
            assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
            # The shell (import map → React → app.js) and the chatbot's bundle both run.
            sign_in(page, panel, "admin", ADMIN_PASSWORD)
            bubble = widget(page, "ai_chatbot").get_by_role("button", name="Open support chat")
            expect(bubble).to_be_visible()
            assert page.evaluate("window.__violations") == []
            # The chatbot's frame (its own, stricter policy) loads React, the SDK and its
            # bundle without a violation either.
            [frame] = [f for f in page.frames if "/plugins-ui/ai_chatbot/" in f.url]
            assert frame.evaluate("window.__violations") == []

            # (Playwright's own evaluate is exempt from the policy; what it adds is not.)
            page.evaluate(INJECT)
            page.wait_for_function("window.__violations.length >= 2")
            assert page.evaluate("window.__injected") is None
            assert page.evaluate("window.__handler") is None
            violations = page.evaluate("window.__violations")
            assert any(v.startswith("script-src") for v in violations), violations
        finally:
            admin.delete("/api/v1/marketplace/uninstall/ai_chatbot").raise_for_status()


def test_another_site_cannot_frame_the_panel(page: Page, panel: Panel) -> None:
    """Before: the panel could be framed (clickjacking the Install button)."""
    page.set_content(
        f'<iframe id="panel" src="{panel.url}/" width="800" height="600"></iframe>',
        wait_until="load",  # the frame's load event: the panel's page, or the browser's error page
    )
    child = page.frames[1]
    assert child.evaluate("document.querySelector('#root') === null"), child.url
