"""Plugin UIs in sandboxed frames (issue 23), in Chromium against a real panel.

A hostile plugin's page and widget try what a plugin UI on the panel's origin could do with
the admin's session: disable another plugin, create an admin, read the shell's cookies and
storage, reach ``window.parent``'s DOM, navigate the top window, open a popup, call the panel
directly or through the bridge outside its grant. Framed (the default) all of it is refused
and the server's state is unchanged afterwards; the same code with ``ui:same-origin`` granted
(the admin was told what that means before installing) can. Before this change every plugin
UI ran in the shell's page, so the framed half failed: the victim was disabled and the admin
created. The chatbot's framed page and bubble are in test_browser.py; deep links, history,
navigation and toasts through the bridge are here.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from browser_support import admin_api, card, nav, plugin_page, sign_in, widget
from panel import ADMIN_PASSWORD, Panel, start_panel
from plugdock.package.scaffold import scaffold
from support import make_plugin, pack_into

OPERATION_MS = 60_000

#: Every attack, run by the page and by the widget; each line says what happened.
ATTACKS = """\
import { type PluginComponentProps, api, defineAddon, notify, request } from "@plugdock/sdk";
import * as React from "react";

async function attempt(name: string, run: () => unknown): Promise<string> {
  try {
    const value = await run();
    return `${name}: done ${JSON.stringify(value ?? null)?.slice(0, 80)}`;
  } catch (error) {
    const why = error instanceof Error ? error.message : String(error);
    return `${name}: refused ${why}`.slice(0, 200);
  }
}

async function attacks(where: string): Promise<string[]> {
  const framed = window.top !== window;
  const out = [
    await attempt("own route", () => request("GET", "/api/v1/hostile-ui/ping")),
    await attempt("disable victim", () => request("POST", "/api/v1/marketplace/disable/victim")),
    await attempt("create admin", () =>
      api.post("/api/v1/users", {
        username: `mallory_${where}`,
        password: "mallory-password-1",
        role: "admin",
      }),
    ),
    await attempt("read users", () => request("GET", "/api/v1/users")),
    await attempt("dot-dot", () =>
      request("POST", "/api/v1/hostile-ui/../marketplace/disable/victim"),
    ),
    await attempt("encoded", () =>
      request("POST", "/api/v1/hostile-ui/..%2f..%2fmarketplace/disable/victim"),
    ),
    await attempt("fetch", async () => {
      const answer = await fetch("/api/v1/marketplace/disable/victim", { method: "POST" });
      return answer.status;
    }),
    await attempt("cookie", () => {
      if (!document.cookie.includes("plugdock_csrf")) throw new Error("no csrf cookie");
      return "csrf cookie read";
    }),
    await attempt("storage", () => window.localStorage.getItem("plugdock_known_plugin_pages")),
    await attempt("parent DOM", () => window.parent.document.title),
  ];
  if (framed) {
    out.push(
      await attempt("popup", () => {
        if (!window.open("https://example.com/", "_blank")) throw new Error("no window");
        return "opened";
      }),
      await attempt("top navigation", () => {
        window.top!.location.href = "https://example.com/";
        return "navigating";
      }),
    );
  }
  return out;
}

function Results({ where }: { where: string }) {
  const [lines, setLines] = React.useState<string[] | null>(null);
  React.useEffect(() => {
    void attacks(where).then(setLines);
  }, [where]);
  return lines ? (
    <ul aria-label={`Attacks from the ${where}`}>
      {lines.map((line) => <li key={line}>{line}</li>)}
    </ul>
  ) : null;
}

function HostilePage(props: PluginComponentProps) {
  const [sent, setSent] = React.useState("");
  return (
    <section>
      <h1>Hostile</h1>
      <p>item {props.params.item ?? "none"}</p>
      <form
        onSubmit={(event) => {
          event.preventDefault();
          const text = new FormData(event.currentTarget).get("note") as string;
          void api.post<{ echo: string }>("/api/v1/hostile-ui/echo", { note: text }).then((r) => {
            setSent(r.echo);
            notify(`Saved ${r.echo}`, "success");
          });
        }}
      >
        <label>
          Note <input name="note" />
        </label>
        <button type="submit">Save</button>
      </form>
      {sent && <p>sent {sent}</p>}
      <button type="button" onClick={() => props.navigate("/hostile/2")}>Next item</button>
      <button type="button" onClick={() => props.navigate("/installed")}>Installed plugins</button>
      <Results where="page" />
    </section>
  );
}

function HostileWidget(_props: PluginComponentProps) {
  return (
    <aside aria-label="Hostile widget">
      <Results where="widget" />
    </aside>
  );
}

export default defineAddon({
  id: "hostile_ui",
  nav: [{ label: "Hostile", path: "/hostile/1" }],
  routes: [{ path: "/hostile/:item", component: HostilePage, title: "Hostile" }],
  widgets: [HostileWidget],
});
"""

ROUTES = """\
from fastapi import APIRouter

from plugdock import sdk

router = APIRouter(prefix="/api/v1/hostile-ui")


@router.get("/ping")
def ping() -> dict:
    return {"pong": True}


@router.post("/echo")
def echo(body: dict, user: sdk.CurrentUser) -> dict:
    return {"echo": f"{body.get('note')} by {user.username}"}
"""

SAME_ORIGIN_WORDS = "Its pages run inside the panel with your rights: it can do anything you can"


def hostile(parent: Path, plugin_id: str, permissions: list[str]) -> Path:
    """The attacking plugin as ``plugin_id``: its pages under /<word>/, its API /api/v1/<slug>/."""
    word, slug = plugin_id.split("_")[0], plugin_id.replace("_", "-")
    source = (
        ATTACKS.replace('id: "hostile_ui"', f'id: "{plugin_id}"')
        .replace("/hostile/", f"/{word}/")
        .replace('label: "Hostile"', f'label: "{word.title()}"')
        .replace("/api/v1/hostile-ui/", f"/api/v1/{slug}/")
    )
    return make_plugin(
        parent,
        plugin_id,
        metadata={
            "name": f"{word.title()} UI",
            "backend": {"routes": [f"/api/v1/{slug}/*"]},
            "frontend": {
                "routes": [f"/{word}/:item"],
                "components": ["HostilePage", "HostileWidget"],
            },
            "permissions": permissions,
        },
        extra_files={
            "backend/routes.py": ROUTES.replace("/api/v1/hostile-ui", f"/api/v1/{slug}"),
            "frontend/addon.config.tsx": source,
        },
    )


@pytest.fixture(scope="module")
def panel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Panel]:
    tmp = tmp_path_factory.mktemp("browser-frames")
    modules, src = tmp / "modules", tmp / "src"
    pack_into(make_plugin(src, "victim"), modules)
    pack_into(hostile(src, "hostile_ui", []), modules)
    pack_into(hostile(src / "trusted", "trusted_ui", ["ui:same-origin"]), modules)
    pack_into(scaffold("field_notes", src / "new"), modules)  # what `plugdock new` writes
    running = start_panel(tmp, f"sqlite:///{tmp / 'panel.db'}")
    with admin_api(running) as admin:
        for plugin_id in ("victim", "hostile_ui", "field_notes"):
            installed = admin.post("/api/v1/marketplace/install", json={"plugin_id": plugin_id})
            assert installed.status_code == 200, installed.text
    yield running
    running.stop()


def server_state(panel: Panel) -> tuple[bool, list[str]]:
    """Whether the victim is enabled, and the users' names: what the attacks aim at."""
    with admin_api(panel) as admin:
        installed = {p["id"]: p for p in admin.get("/api/v1/marketplace/installed").json()}
        users = sorted(u["username"] for u in admin.get("/api/v1/users").json())
    return installed["victim"]["enabled"], users


def test_a_framed_plugin_ui_cannot_use_the_admins_session(page: Page, panel: Panel) -> None:
    before = server_state(panel)
    assert before[0] is True
    console: list[tuple[str, str, str]] = []
    page.on("console", lambda m: console.append((m.type, m.location.get("url", ""), m.text)))
    sign_in(page, panel, "admin", ADMIN_PASSWORD)
    nav(page).get_by_role("link", name="Hostile").click()
    expect(page).to_have_url(f"{panel.url}/hostile/1")
    frame = plugin_page(page)
    for attacks in (
        frame.get_by_role("list", name="Attacks from the page"),
        widget(page, "hostile_ui").get_by_role("list", name="Attacks from the widget"),
    ):
        expect(attacks).to_contain_text("own route: done")  # the bridge works for its own routes
        for attack in (
            "disable victim",
            "create admin",
            "read users",
            "dot-dot",
            "encoded",
            "fetch",
            "cookie",
            "storage",
            "parent DOM",
            "popup",
            "top navigation",
        ):
            expect(attacks.get_by_text(f"{attack}: refused")).to_have_count(1)
        expect(attacks).to_contain_text(
            "disable victim: refused plugdock: the panel refused "
            "POST /api/v1/marketplace/disable/victim"
        )
    # Nothing changed: the shell is where it was, alone, and the server's state is as before.
    expect(page).to_have_url(f"{panel.url}/hostile/1")
    assert len(page.context.pages) == 1
    assert server_state(panel) == before
    # The plugin's console (frame.js, which runs only in frames) says why; so does the
    # panel's log, naming the plugin.
    assert any(
        kind == "error" and "/plugins-ui/_/frame.js" in where and "the panel refused POST" in text
        for kind, where, text in console
    ), [c for c in console if "refused" in c[2]]
    log = panel.output()
    refused = "plugin UI hostile_ui: the shell refused 'POST'"
    assert f"{refused} '/api/v1/marketplace/disable/victim'" in log
    assert f"{refused} '/api/v1/users'" in log


def test_the_frame_is_served_with_its_own_policy(panel: Panel) -> None:
    with admin_api(panel) as admin:
        entries = admin.get("/api/v1/frontend/plugins").json()
        [entry] = [e for e in entries if e["id"] == "hostile_ui"]
        assert entry["same_origin"] is False and entry["core_reads"] == []
        assert entry["api_routes"] == ["/api/v1/hostile-ui/*"]
        answer = admin.get(entry["frame_url"])
        assert answer.status_code == 200
        csp = answer.headers["content-security-policy"]
        for directive in ("connect-src 'none'", "form-action 'none'", "frame-ancestors 'self'"):
            assert directive in csp, csp
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
        assert answer.headers["x-frame-options"] == "SAMEORIGIN"
        # Every other page of the panel still refuses to be framed.
        assert admin.get("/", headers={"Accept": "text/html"}).headers["x-frame-options"] == "DENY"
        # Another installation's address, or a plugin that is not installed: 404.
        other = entry["frame_url"].replace(entry["operation_id"], "0" * 32)
        assert admin.get(other).status_code == 404
        victim = f"/plugins-ui/victim/{entry['operation_id']}/frame.html"
        assert admin.get(victim).status_code == 404


def test_deep_links_history_navigation_forms_and_toasts_through_the_bridge(
    page: Page, panel: Panel
) -> None:
    sign_in(page, panel, "admin", ADMIN_PASSWORD)
    page.goto(f"{panel.url}/hostile/7")  # a deep link: the shell, then the plugin's frame
    frame = plugin_page(page)
    expect(frame.get_by_text("item 7")).to_be_visible()
    expect(page).to_have_title(re.compile("^Hostile"))

    frame.get_by_label("Note").fill("hello")
    frame.get_by_role("button", name="Save").click()
    expect(frame.get_by_text("sent hello by admin")).to_be_visible()  # a POST with the session
    toasts = page.get_by_role("region", name="Notifications")
    expect(toasts).to_contain_text("Saved hello by admin")

    frame.get_by_role("button", name="Next item").click()  # the frame's navigation: the shell's URL
    expect(page).to_have_url(f"{panel.url}/hostile/2")
    expect(frame.get_by_text("item 2")).to_be_visible()
    page.reload()
    expect(plugin_page(page).get_by_text("item 2")).to_be_visible()
    page.go_back()
    expect(page).to_have_url(f"{panel.url}/hostile/7")
    expect(plugin_page(page).get_by_text("item 7")).to_be_visible()
    page.go_forward()
    expect(plugin_page(page).get_by_text("item 2")).to_be_visible()
    plugin_page(page).get_by_label("Note").fill("draft")
    plugin_page(page).get_by_role("button", name="Installed plugins").click()  # a core page
    expect(page.get_by_role("heading", name="Installed plugins", level=1)).to_be_visible()
    # Back to the plugin: its kept frame shows the page mounted afresh, as in the shell.
    page.go_back()
    expect(plugin_page(page).get_by_text("item 2")).to_be_visible()
    expect(plugin_page(page).get_by_label("Note")).to_have_value("")
    expect(page.locator("iframe.plugin-frame")).to_have_count(1)


def test_a_scaffolded_plugin_works_framed(page: Page, panel: Panel) -> None:
    sign_in(page, panel, "admin", ADMIN_PASSWORD)
    nav(page).get_by_role("link", name="Field Notes").click()
    expect(page).to_have_url(f"{panel.url}/field-notes")
    notes = plugin_page(page)
    expect(notes.get_by_role("heading", name="Field Notes", level=1)).to_be_visible()
    notes.get_by_label("Title").fill("first light")
    notes.get_by_role("button", name="Add").click()
    expect(notes.get_by_role("listitem")).to_have_text(["first light"])
    expect(page.get_by_role("region", name="Notifications")).to_contain_text("Added first light")
    nav(page).get_by_role("link", name="Dashboard").click()
    page.go_back()
    expect(plugin_page(page).get_by_role("listitem")).to_have_text(["first light"])
    page.reload()
    expect(plugin_page(page).get_by_role("listitem")).to_have_text(["first light"])


def test_with_ui_same_origin_granted_the_same_code_can(page: Page, panel: Panel) -> None:
    """The control: the attacks are real. Granted ui:same-origin, after the admin was told."""
    sign_in(page, panel, "admin", ADMIN_PASSWORD)
    nav(page).get_by_role("link", name="Marketplace", exact=True).click()
    trusted = card(page, "Trusted UI")
    expect(trusted.get_by_role("list", name="Permissions it asks for")).to_contain_text(
        SAME_ORIGIN_WORDS
    )
    with admin_api(panel) as admin:
        plan = admin.get("/api/v1/marketplace/plan/install/trusted_ui").json()
    assert SAME_ORIGIN_WORDS in str(plan), plan
    trusted.get_by_role("button", name="Install Trusted UI").click()
    expect(trusted).to_contain_text("Installed v1.0.0", timeout=OPERATION_MS)
    try:
        nav(page).get_by_role("link", name="Trusted").click()
        attacks = page.get_by_role("list", name="Attacks from the page")  # in the shell's page
        expect(attacks).to_contain_text("create admin: done")
        expect(attacks).to_contain_text("cookie: done")
        expect(attacks).to_contain_text("parent DOM: done")
        # The widget (on every page) or the page disabled the victim, whichever ran first.
        already = re.compile("disable victim: (done|refused victim is already disabled)")
        expect(attacks).to_contain_text(already)
        enabled, users = server_state(panel)
        assert enabled is False and "mallory_page" in users
    finally:
        with admin_api(panel) as admin:
            admin.delete("/api/v1/marketplace/uninstall/trusted_ui").raise_for_status()
