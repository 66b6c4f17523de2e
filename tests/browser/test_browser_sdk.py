"""A plugin page that imports ``@plugdock/sdk``, in Chromium against a real panel.

The probe plugin's page uses only the SDK (no copied client, no token): ``request`` with
the signed-in user's cookie session (a POST to the plugin's own route needs the CSRF
header the SDK adds), ``ApiError`` with the status for a call the user may not make,
``useUser`` (the shell sets the one shared instance), ``notify`` (the shell's toasts), and
a 401 from the plugin's own route that must not sign the user out of the panel.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Page, expect

from browser_support import admin_api, nav, plugin_page, sign_in
from panel import ADMIN_PASSWORD, Panel, start_panel
from plugdock.package import frontend_build
from support import make_plugin, pack_into

ROUTES = """\
from fastapi import APIRouter, HTTPException

from plugdock import sdk

router = APIRouter(prefix="/api/v1/sdk-probe")


@router.post("/echo")
def echo(body: dict, user: sdk.CurrentUser) -> dict:
    return {"user": user.username, "echo": body}


@router.get("/own-401")
def own_401() -> dict:
    raise HTTPException(401, "the probe's own token is missing")
"""

PROBE_PAGE = """\
import {
  ApiError,
  type PluginComponentProps,
  api,
  currentUser,
  defineAddon,
  notify,
  request,
  useUser,
} from "@plugdock/sdk";
import * as React from "react";

function describe(error: unknown): string {
  if (error instanceof ApiError) return `ApiError ${error.status}: ${error.message}`;
  return `not an ApiError: ${error}`;
}

function Probe(props: PluginComponentProps) {
  const user = useUser();
  const [lines, setLines] = React.useState<string[] | null>(null);
  React.useEffect(() => {
    (async () => {
      const out: string[] = [];
      try {
        const users = await request<unknown[]>("GET", "/api/v1/users");
        out.push(`users: ${users.length}`);
      } catch (error) {
        out.push(`users: ${describe(error)}`);
      }
      try {
        const echoed = await request<{ user: string; echo: unknown }>(
          "POST",
          "/api/v1/sdk-probe/echo",
          { body: { n: 1 }, headers: { "X-Probe": "yes" } },
        );
        out.push(`echo: ${echoed.user} ${JSON.stringify(echoed.echo)}`);
      } catch (error) {
        out.push(`echo: ${describe(error)}`);
      }
      try {
        await api.get("/api/v1/sdk-probe/own-401");
      } catch (error) {
        out.push(`own: ${describe(error)}`);
      }
      await request("POST", "/api/v1/sdk-probe/echo", { body: { n: 2 } }); // after the check
      out.push(`after 401: ${currentUser()?.username ?? "signed out"}`);
      setLines(out);
    })();
  }, []);
  return (
    <section>
      <h1>SDK probe</h1>
      <p>user: {user ? `${user.username} (${user.role})` : "none"}</p>
      <p>props.api is the SDK's api: {String(props.api === api)}</p>
      {lines && (
        <ul aria-label="Results">
          {lines.map((line) => (
            <li key={line}>{line}</li>
          ))}
        </ul>
      )}
      <button type="button" onClick={() => notify("Hello from the probe", "success")}>
        Notify
      </button>
    </section>
  );
}

export default defineAddon({
  id: "sdk_probe",
  nav: [{ label: "Probe", path: "/sdk-probe" }],
  routes: [{ path: "/sdk-probe", component: Probe, title: "Probe" }],
});
"""


@pytest.fixture(scope="module")
def panel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Panel]:
    tmp = tmp_path_factory.mktemp("browser-sdk")
    probe = make_plugin(
        tmp / "src",
        "sdk_probe",
        metadata={
            "frontend": {"routes": ["/sdk-probe"], "components": ["Probe"]},
            # GET /api/v1/users through the frame's bridge (admins only, as for the shell)
            "permissions": ["core:users:read"],
        },
        extra_files={"backend/routes.py": ROUTES, "frontend/addon.config.tsx": PROBE_PAGE},
    )
    pack_into(probe, tmp / "modules")
    running = start_panel(tmp, f"sqlite:///{tmp / 'panel.db'}")
    created = running.cli(
        "user", "create", "bob", "--role", "user", "--password-stdin", stdin="bob-password\n"
    )
    assert created.returncode == 0, created.stderr
    with admin_api(running) as admin:
        installed = admin.post("/api/v1/marketplace/install", json={"plugin_id": "sdk_probe"})
        assert installed.status_code == 200, installed.text
    yield running
    running.stop()


def results(page: Page):
    return plugin_page(page).get_by_role("list", name="Results")


def test_admin_page_calls_the_api_with_the_session_through_the_sdk(
    page: Page, panel: Panel
) -> None:
    sign_in(page, panel, "admin", ADMIN_PASSWORD)
    nav(page).get_by_role("link", name="Probe").click()
    probe = plugin_page(page)  # framed: the same SDK calls, through the shell's bridge
    expect(probe.get_by_role("heading", name="SDK probe")).to_be_visible()
    expect(probe.get_by_text("user: admin (admin)")).to_be_visible()
    expect(probe.get_by_text("props.api is the SDK's api: true")).to_be_visible()
    found = results(page)
    expect(found).to_contain_text(re.compile(r"users: \d+"))
    expect(found).to_contain_text('echo: admin {"n":1}')  # POST: cookie + CSRF header
    expect(found).to_contain_text("own: ApiError 401: the probe's own token is missing")
    expect(found).to_contain_text("after 401: admin")
    expect(nav(page).get_by_role("link", name="Dashboard")).to_be_visible()  # still signed in

    probe.get_by_role("button", name="Notify").click()
    toasts = page.get_by_role("region", name="Notifications")
    expect(toasts.get_by_role("status")).to_have_text(re.compile("Hello from the probe"))
    toasts.get_by_role("button", name="Dismiss message").click()
    expect(toasts.get_by_role("status")).to_have_count(0)


def test_non_admin_gets_the_typed_error_and_keeps_the_session(page: Page, panel: Panel) -> None:
    sign_in(page, panel, "bob", "bob-password")
    nav(page).get_by_role("link", name="Probe").click()
    expect(plugin_page(page).get_by_text("user: bob (user)")).to_be_visible()
    found = results(page)
    expect(found).to_contain_text(re.compile(r"users: ApiError 403: \S"))
    expect(found).to_contain_text('echo: bob {"n":1}')
    expect(found).to_contain_text("after 401: bob")
    expect(plugin_page(page).get_by_role("heading", name="SDK probe")).to_be_visible()


def test_the_sdk_is_one_import_map_module_the_plugin_bundle_imports(panel: Panel) -> None:
    with httpx.Client(base_url=panel.url) as anonymous:
        html = anonymous.get("/", headers={"Accept": "text/html"}).text
        imports = json.loads(html.split('<script type="importmap">')[1].split("</script>")[0])[
            "imports"
        ]
        # What pack leaves external is exactly what the shell maps: nothing bundled twice,
        # nothing a bundle imports that the page cannot resolve.
        assert set(imports) == set(frontend_build.EXTERNALS)
        sdk = anonymous.get(imports["@plugdock/sdk"])
        assert sdk.status_code == 200 and "javascript" in sdk.headers["content-type"]
        assert "plugdock_csrf" in sdk.text and "X-CSRF-Token" in sdk.text
        shell = anonymous.get(html.split('<script type="module" src="')[1].split('"')[0]).text
        assert 'from"@plugdock/sdk"' in shell and "plugdock_csrf" not in shell  # no 2nd copy
        [entry] = anonymous.get("/api/v1/frontend/plugins").json()
        bundle = anonymous.get(entry["bundle_url"]).text
        assert 'from"@plugdock/sdk"' in bundle and "plugdock_csrf" not in bundle
    # The POST the page made works because of the SDK's CSRF header: without it, refused.
    with httpx.Client(base_url=panel.url) as cookie_session:
        signed = cookie_session.post(
            "/api/v1/auth/session", json={"username": "admin", "password": ADMIN_PASSWORD}
        )
        assert signed.status_code == 200, signed.text
        refused = cookie_session.post("/api/v1/sdk-probe/echo", json={"n": 1})
        assert refused.status_code == 403
        allowed = cookie_session.post(
            "/api/v1/sdk-probe/echo",
            json={"n": 1},
            headers={"X-CSRF-Token": signed.json()["csrf_token"]},
        )
        assert allowed.json() == {"user": "admin", "echo": {"n": 1}}
