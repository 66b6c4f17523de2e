"""@plugdock/react in host apps that are not plugdock's: a Vite + React app and a Next.js app.

Each host is built for real from its committed template (tests/browser/hosts/<name>/, exact
versions in package.json and package-lock.json) with @plugdock/react unpacked from the
``npm pack`` tarball of packages/react, and served by a small FastAPI app of its own: its own
accounts and cookie sign-in (``HostAuth(current_user=...)``), ``PluginHost(...).mount(app)``,
a SQLite file, real uvicorn on loopback. No ``/static/`` anywhere: plugin frames load their
runtime from plugdock's ``/plugins-ui/_/``.

The hosts' node_modules are cached in tests/browser/hosts/.cache/ (gitignored), keyed by
each template's package.json and lock file, so only the first run installs.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tarfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn
from fastapi import Cookie, FastAPI, Form, Header, HTTPException, Request
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response
from playwright.sync_api import Browser, FrameLocator, Locator, Page, expect
from starlette.exceptions import HTTPException as StarletteHTTPException

from browser_support import ARTIFACTS, TIMEOUT_MS
from plugdock import HostAuth, HostUser, PluginHost
from plugdock.config import load_settings
from support import CHATBOT, CHATBOT_VERSION, REPO, make_plugin, pack_into

PACKAGE = REPO / "packages" / "react"
HOSTS = Path(__file__).resolve().parent / "hosts"
CACHE = HOSTS / ".cache"
#: npm and a build may take a while on a fresh machine (the whole module stays under 3 min).
NPM_TIMEOUT_S = 150
OPERATION_MS = 60_000
#: The host's accounts: session cookie value → (id, name, admin).
ACCOUNTS = {"alice-session": (1, "alice", True), "bob-session": (2, "bob", False)}


def _run(args: list[str], cwd: Path, **env: str) -> None:
    done = subprocess.run(
        args,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=NPM_TIMEOUT_S,
        env={**os.environ, **env, "NEXT_TELEMETRY_DISABLED": "1"},
    )
    assert done.returncode == 0, f"{' '.join(args)} in {cwd}:\n{done.stdout}\n{done.stderr}"


@pytest.fixture(scope="module")
def package_tarball(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``npm pack`` of packages/react (its prepack builds dist/), as a host would install it."""
    if not (PACKAGE / "node_modules" / ".package-lock.json").is_file():
        _run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], PACKAGE)
    out = tmp_path_factory.mktemp("package")
    _run(["npm", "pack", "--pack-destination", str(out), "--loglevel=error"], PACKAGE)
    (tarball,) = out.glob("plugdock-react-*.tgz")
    with tarfile.open(tarball) as packed:
        names = set(packed.getnames())
    # What `files` and `exports` promise: the module, its types, the stylesheet; no sources.
    expected = {"package/dist/index.js", "package/dist/types/index.d.ts", "package/dist/styles.css"}
    assert expected <= names and "package/README.md" in names
    assert not any(name.startswith("package/src/") for name in names)
    return tarball


def build_host(name: str, tarball: Path, out: Path) -> Path:
    """Build the host template ``name`` with the package; returns the folder of its built site."""
    template = HOSTS / name
    key = hashlib.sha256(
        (template / "package.json").read_bytes() + (template / "package-lock.json").read_bytes()
    ).hexdigest()[:16]
    project = CACHE / f"{name}-{key}"
    if not (project / "node_modules" / ".package-lock.json").is_file():
        shutil.rmtree(project, ignore_errors=True)
        project.mkdir(parents=True)
        for manifest in ("package.json", "package-lock.json"):
            shutil.copy2(template / manifest, project / manifest)
        _run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], project)
    # The sources afresh each run (the cache holds node_modules, not a stale app).
    for entry in template.iterdir():
        if entry.name in ("package.json", "package-lock.json", "node_modules", ".cache"):
            continue
        target = project / entry.name
        if entry.is_dir():
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(entry, target)
        else:
            shutil.copy2(entry, target)
    # @plugdock/react as `npm install <tarball>` lays it out (it has no dependencies).
    installed = project / "node_modules" / "@plugdock" / "react"
    shutil.rmtree(installed, ignore_errors=True)
    unpacked = out / "unpacked"
    with tarfile.open(tarball) as packed:
        packed.extractall(unpacked, filter="data")
    installed.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(unpacked / "package", installed)
    site = out / "site"
    _run(["npm", "run", "--silent", "build"], project, HOST_OUT_DIR=str(site))
    if not site.is_dir():  # Next.js exports into the project's out/
        shutil.copytree(project / "out", site)
    return site


# -- the host's backend ------------------------------------------------------------------------


def host_app(
    tmp: Path, site: Path, plugins: tuple[Path, ...] = (), *, bearer: bool = False
) -> FastAPI:
    """A host app with its own sign-in, serving its built frontend and plugdock.

    Its source offers the chatbot and ``plugins`` (plugin folders, packed here). ``bearer``:
    the session cookie is sent to ``/host/`` only, and the frontend calls plugdock with the
    bearer token ``/host/me`` gives it (through PlugdockProvider's ``fetch``).
    """

    def current_user(
        host_session: str | None = Cookie(None), authorization: str | None = Header(None)
    ) -> HostUser | None:
        if authorization and authorization.startswith("Bearer "):
            host_session = authorization.removeprefix("Bearer ")
        if host_session is None:
            return None
        if host_session not in ACCOUNTS:
            raise HTTPException(401, "unknown session")
        uid, name, admin = ACCOUNTS[host_session]
        return HostUser(id=uid, username=name, is_admin=admin)

    app = FastAPI()

    @app.post("/host/login")
    def login(username: str = Form(...)) -> Response:
        session = f"{username}-session"
        if session not in ACCOUNTS:
            raise HTTPException(401, "no such account")
        answer = RedirectResponse("/", status_code=303)
        path = "/host" if bearer else "/"
        answer.set_cookie("host_session", session, httponly=True, samesite="lax", path=path)
        return answer

    @app.get("/host/me")
    def me(host_session: str | None = Cookie(None)) -> JSONResponse:
        user = current_user(host_session, None)
        if user is None:
            raise HTTPException(401, "signed out")
        token = {"token": host_session} if bearer else {}
        return JSONResponse(user.model_dump(mode="json") | token)

    modules = tmp / "modules"
    for folder in (CHATBOT, *plugins):
        pack_into(folder, modules)
    settings = load_settings(home=tmp / "instance", plugin_local_dir=modules)
    PluginHost(
        HostAuth(current_user=current_user),
        settings=settings,
        database_url=f"sqlite:///{tmp / 'host.db'}",
    ).mount(app)

    # The built site: any file of it, else the HTML the build made for the path (Next.js: one
    # file per route), else the app's index.html (a client-side router). A 404 handler, not a
    # catch-all route or mount: plugin routes mounted later must not be shadowed.
    root = site.resolve()

    async def page_or_404(request: Request, exc: Exception) -> Response:
        path = request.url.path.strip("/")
        if request.method == "GET" and not path.startswith(("api/", "plugins")):
            for candidate in (site / path, site / f"{path}.html", site / "index.html"):
                if candidate.is_file() and candidate.resolve().is_relative_to(root):
                    return FileResponse(candidate, headers={"Cache-Control": "no-cache"})
        assert isinstance(exc, StarletteHTTPException)
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code)

    app.add_exception_handler(404, page_or_404)
    return app


@dataclass
class Host:
    url: str


@pytest.fixture
def serve() -> Iterator[object]:
    """Start a host app with real uvicorn on a free loopback port, in a thread."""
    servers: list[tuple[uvicorn.Server, threading.Thread]] = []

    def start(app: FastAPI) -> Host:
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        servers.append((server, thread))
        deadline = time.monotonic() + 60
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "the host did not start"
            time.sleep(0.05)
        port = server.servers[0].sockets[0].getsockname()[1]
        return Host(f"http://127.0.0.1:{port}")

    yield start
    for server, thread in servers:
        server.should_exit = True
        thread.join(timeout=30)


# -- what a user does in the host ----------------------------------------------------------------


def sign_in(page: Page, host: Host, account: str) -> None:
    page.goto(f"{host.url}/")
    page.get_by_label("Account").fill(account)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_text(f"Signed in to Acme as {account}")).to_be_visible()


def widget(page: Page) -> FrameLocator:
    return page.frame_locator('iframe.widget-frame[data-plugin-frame="ai_chatbot"] >> nth=0')


def plugin_page(page: Page) -> FrameLocator:
    return page.frame_locator("iframe.plugin-frame")


def chatbot_lifecycle(
    page: Page, browser: Browser, host: Host, name: str, *, bearer: bool = False
) -> None:
    """Install, use and uninstall the chatbot in the host's own UI; bob may not install.

    ``bearer``: the host's frontend calls plugdock with a bearer token, not the cookie.
    """
    ARTIFACTS.mkdir(exist_ok=True)
    nav = page.get_by_role("navigation", name="Acme")
    sign_in(page, host, "alice")
    page.evaluate("window.__noReload = true")  # the plugin must appear without a reload
    nav.get_by_role("link", name="Plugins").click()
    expect(page.get_by_role("heading", name="Marketplace", level=1)).to_be_visible()
    chatbot = page.get_by_role("listitem").filter(
        has=page.get_by_role("heading", name="AI Chatbot")
    )
    expect(chatbot).to_contain_text(f"v{CHATBOT_VERSION}")
    expect(nav.get_by_role("link", name="Chats")).to_have_count(0)

    # A cross-site form cannot send plugdock's header: with the host's cookie alone, refused.
    forged = page.request.post(
        f"{host.url}/api/v1/marketplace/install", data={"plugin_id": "ai_chatbot"}
    )
    if bearer:  # the cookie never reaches plugdock's paths: only the token signs in
        assert forged.status == 401, forged.text()
    else:
        assert forged.status == 403 and "X-Plugdock-CSRF" in forged.text()

    chatbot.get_by_role("button", name="Install AI Chatbot").click()
    installed = page.get_by_role("status").filter(has_text="installed")
    expect(installed).to_contain_text(
        f"AI Chatbot {CHATBOT_VERSION} installed", timeout=OPERATION_MS
    )
    expect(chatbot).to_contain_text(f"Installed v{CHATBOT_VERSION}")
    chats_link = nav.get_by_role("link", name="Chats")  # usePluginNav, in the host's own nav
    expect(chats_link).to_be_visible()
    bubble = widget(page).get_by_role("button", name="Open support chat")
    expect(bubble).to_be_visible()
    assert page.evaluate("window.__noReload") is True
    page.screenshot(path=str(ARTIFACTS / f"host-{name}-marketplace.png"), full_page=True)

    # The plugin's page in the host's UI: framed, its requests through the host's fetch.
    chats_link.click()
    expect(page).to_have_url(re.compile(r"/support/chats|path=%2Fsupport%2Fchats"))
    chats = plugin_page(page)
    expect(chats.get_by_role("heading", name="Chats", level=1)).to_be_visible()
    frame = page.locator("iframe.plugin-frame")
    expect(frame).to_have_attribute("sandbox", "allow-scripts allow-forms")

    # A visitor's chat through the bubble: its POSTs go through the host's bridge.
    bubble.click()
    dialog = widget(page).get_by_role("dialog", name="Chat with us")
    dialog.get_by_label("Name").fill("Ada Lovelace")
    dialog.get_by_label("Email").fill("ada@example.com")
    dialog.get_by_role("button", name="Start chat").click()
    log = dialog.get_by_role("log", name="Conversation")
    expect(log).to_contain_text("Assistant said:")
    dialog.get_by_label("Your message").fill("How much does it cost?")
    dialog.get_by_role("button", name="Send").click()
    expect(log).to_contain_text("You said: How much does it cost?")
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    chats.get_by_role("button", name="Refresh").click()
    expect(chats.get_by_role("table")).to_contain_text("ada@example.com")
    page.screenshot(path=str(ARTIFACTS / f"host-{name}-chats.png"), full_page=True)

    nav.get_by_role("link", name="Installed").click()
    expect(page.get_by_role("heading", name="Installed plugins", level=1)).to_be_visible()
    expect(page.get_by_role("row").filter(has_text="AI Chatbot")).to_contain_text("Running")

    # bob is no admin to the host: no install or uninstall buttons, and the API says no.
    other = browser.new_context()
    other.set_default_timeout(TIMEOUT_MS)
    try:
        bob = other.new_page()
        sign_in(bob, host, "bob")
        bob.get_by_role("navigation", name="Acme").get_by_role("link", name="Plugins").click()
        expect(bob.get_by_text("Only administrators can install")).to_be_visible()
        expect(bob.get_by_role("button", name=re.compile(r"^(Install|Uninstall)"))).to_have_count(0)
        # The chats page is for admins: usePluginNav leaves it out for bob.
        bob_nav = bob.get_by_role("navigation", name="Acme")
        expect(bob_nav.get_by_role("link", name="Plugins")).to_be_visible()
        expect(bob_nav.get_by_role("link", name="Chats")).to_have_count(0)
        refused = bob.request.delete(
            f"{host.url}/api/v1/marketplace/uninstall/ai_chatbot",
            headers={"X-Plugdock-CSRF": "1"}
            | ({"Authorization": "Bearer bob-session"} if bearer else {}),
        )
        assert refused.status == 403, refused.text()
    finally:
        other.close()

    # Uninstall with its confirm dialog: the nav item, the page and the bubble go.
    nav.get_by_role("link", name="Plugins").click()
    chatbot.get_by_role("button", name="Uninstall AI Chatbot").click()
    confirm = page.get_by_role("dialog", name="Uninstall AI Chatbot?")
    expect(confirm).to_be_visible()
    confirm.get_by_role("button", name="Cancel").click()
    expect(confirm).to_be_hidden()
    chatbot.get_by_role("button", name="Uninstall AI Chatbot").click()
    confirm.get_by_role("button", name="Uninstall").click()
    removed = page.get_by_role("status").filter(has_text="uninstalled")
    expect(removed).to_contain_text(
        f"ai_chatbot {CHATBOT_VERSION} uninstalled", timeout=OPERATION_MS
    )
    expect(nav.get_by_role("link", name="Chats")).to_have_count(0)
    expect(page.locator("iframe.widget-frame")).to_have_count(0)
    assert page.evaluate("window.__noReload") is True


@pytest.fixture(scope="module")
def vite_site(package_tarball: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    site = build_host("vite", package_tarball, tmp_path_factory.mktemp("vite"))
    assert not (site / "static").exists()  # nothing of the panel's: the host's own assets
    return site


def test_a_vite_react_host_installs_uses_and_uninstalls_the_chatbot(
    page: Page, browser: Browser, serve, vite_site: Path, tmp_path: Path
) -> None:
    host = serve(host_app(tmp_path, vite_site))
    chatbot_lifecycle(page, browser, host, "vite")


def test_a_framed_plugin_cannot_use_the_host_users_session(
    page: Page, serve, vite_site: Path, tmp_path: Path
) -> None:
    """test_browser_frames.py's hostile plugin, in the host's frontend: the package's bridge
    sends its own routes with the host's cookie and refuses everything else."""
    from test_browser_frames import hostile

    src = tmp_path / "src"
    host = serve(
        host_app(tmp_path, vite_site, (make_plugin(src, "victim"), hostile(src, "hostile_ui", [])))
    )
    sign_in(page, host, "alice")
    admin = {"X-Plugdock-CSRF": "1"}  # alice's cookie comes with page.request
    for plugin_id in ("victim", "hostile_ui"):
        done = page.request.post(
            f"{host.url}/api/v1/marketplace/install",
            data={"plugin_id": plugin_id},
            headers=admin,
            timeout=OPERATION_MS,
        )
        assert done.status == 200, done.text()

    def victim_enabled() -> bool:
        listed = page.request.get(f"{host.url}/api/v1/marketplace/installed").json()
        return {p["id"]: p["enabled"] for p in listed}["victim"]

    assert victim_enabled()
    page.reload()
    page.get_by_role("navigation", name="Acme").get_by_role("link", name="Hostile").click()
    expect(page).to_have_url(f"{host.url}/hostile/1")
    for attacks in (
        plugin_page(page).get_by_role("list", name="Attacks from the page"),
        page.frame_locator(
            'iframe.widget-frame[data-plugin-frame="hostile_ui"] >> nth=0'
        ).get_by_role("list", name="Attacks from the widget"),
    ):
        expect(attacks).to_contain_text("own route: done")  # its own route, with alice's cookie
        for attack in ("disable victim", "read users", "dot-dot", "encoded", "fetch", "cookie"):
            expect(attacks.get_by_text(f"{attack}: refused")).to_have_count(1)
        for attack in ("storage", "parent DOM", "popup", "top navigation"):
            expect(attacks.get_by_text(f"{attack}: refused")).to_have_count(1)
    # The form posts through the bridge as alice; the host's page stayed where it was.
    plugin_page(page).get_by_label("Note").fill("hello")
    plugin_page(page).get_by_role("button", name="Save").click()
    expect(plugin_page(page).get_by_text("sent hello by alice")).to_be_visible()
    expect(page.get_by_role("region", name="Notifications")).to_contain_text("Saved hello by alice")
    plugin_page(page).get_by_role("button", name="Next item").click()  # the host's navigate
    expect(page).to_have_url(f"{host.url}/hostile/2")
    expect(plugin_page(page).get_by_text("item 2")).to_be_visible()
    assert len(page.context.pages) == 1
    assert victim_enabled()


def test_a_nextjs_app_router_host_installs_uses_and_uninstalls_the_chatbot(
    page: Page, browser: Browser, serve, package_tarball: Path, tmp_path: Path
) -> None:
    """The same in a Next.js app (app router, static export): plugin pages at /ext?path=, and
    every call to plugdock (the bridge's too) with a bearer token through the provider's fetch."""
    site = build_host("next", package_tarball, tmp_path / "build")
    assert (
        site / "admin" / "plugins.html"
    ).is_file()  # prerendered: the package renders on a server
    host = serve(host_app(tmp_path, site, bearer=True))
    chatbot_lifecycle(page, browser, host, "next", bearer=True)


def test_the_lifecycle_dialogs_work_in_a_host(
    page: Page, serve, vite_site: Path, tmp_path: Path
) -> None:
    """<Marketplace /> and <InstalledPlugins /> in the Vite host: the install plan, the update
    granting a new permission, the disable/enable switch, uninstall with force."""
    src = tmp_path / "src"
    asks = {"permissions": ["network:api.example.com"]}
    more = {"permissions": ["network:api.example.com", "core:users:read"]}
    plugins = (
        make_plugin(src, "billing"),
        make_plugin(src, "invoices", metadata={"dependencies": {"billing": ">=1.0.0,<2"}}),
        make_plugin(src / "old", "weather", "1.0.0", metadata=asks),
        make_plugin(src / "new", "weather", "1.1.0", metadata=more),
    )
    host = serve(host_app(tmp_path, vite_site, plugins))
    sign_in(page, host, "alice")
    nav = page.get_by_role("navigation", name="Acme")
    nav.get_by_role("link", name="Plugins").click()

    def card(name: str) -> Locator:
        return page.get_by_role("listitem").filter(has=page.get_by_role("heading", name=name))

    # The install plan: invoices brings billing along.
    card("Invoices").get_by_role("button", name="Install Invoices").click()
    plan = page.get_by_role("dialog", name="Install Invoices?")
    steps = plan.get_by_role("list", name="Install plan").get_by_role("listitem")
    expect(steps).to_have_count(2)
    expect(steps.nth(0)).to_contain_text("needed by invoices")
    plan.get_by_role("button", name="Install 2 plugins").click()
    expect(card("Billing")).to_contain_text("Installed v1.0.0", timeout=OPERATION_MS)
    expect(card("Invoices")).to_contain_text("Installed v1.0.0")

    # An update asking for more: the dialog lists it, the button grants it.
    weather = card("Weather")
    expect(weather.get_by_role("list", name="Permissions it asks for")).to_contain_text(
        "network:api.example.com"
    )
    done = page.request.post(
        f"{host.url}/api/v1/marketplace/install",
        data={"plugin_id": "weather", "version": "1.0.0"},
        headers={"X-Plugdock-CSRF": "1"},
        timeout=OPERATION_MS,
    )
    assert done.status == 200, done.text()
    nav.get_by_role("link", name="Installed").click()
    row = page.get_by_role("row").filter(has_text="Weather")
    row.get_by_role("button", name="Update Weather").click()
    update = page.get_by_role("dialog", name="Update Weather?")
    adds = update.get_by_role("list", name="Permissions the update adds")
    expect(adds).to_contain_text("core:users:read")
    update.get_by_role("button", name="Grant and update to 1.1.0").click()
    expect(page.get_by_role("status").or_(page.get_by_role("alert")).first).to_contain_text(
        "upgraded from 1.0.0 to 1.1.0", timeout=OPERATION_MS
    )
    granted = page.get_by_role("row").filter(has_text="Weather")
    expect(granted.get_by_role("list", name="Granted permissions")).to_contain_text(
        "core:users:read"
    )

    # Disable and enable again.
    switch = page.get_by_role("switch", name="Weather enabled")
    switch.click()
    expect(switch).not_to_be_checked(timeout=OPERATION_MS)
    expect(page.get_by_role("row").filter(has_text="Weather")).to_contain_text("Disabled")
    switch.click()
    expect(switch).to_be_checked(timeout=OPERATION_MS)

    # Uninstall, forced, without a backup.
    nav.get_by_role("link", name="Plugins").click()
    card("Weather").get_by_role("button", name="Uninstall Weather").click()
    remove = page.get_by_role("dialog", name="Uninstall Weather?")
    remove.get_by_role("checkbox", name="Keep a backup of its data").uncheck()
    remove.get_by_role("checkbox", name="Force: skip the plugin's own uninstall code").check()
    remove.get_by_role("button", name="Uninstall").click()
    expect(card("Weather").get_by_role("button", name="Install Weather")).to_be_enabled(
        timeout=OPERATION_MS
    )
    listed = page.request.get(f"{host.url}/api/v1/marketplace/installed").json()
    assert sorted(p["id"] for p in listed) == ["billing", "invoices"]


SERVER_RENDER = """
import { createElement as h } from "react";
import { renderToString } from "react-dom/server";
import * as plugdock from "./dist/index.js";

const tree = h(plugdock.PlugdockProvider, { user: null },
  h(plugdock.PluginWidgets),
  h(plugdock.PluginPage, { plugin: "ai_chatbot", path: "/support/chats" }),
  h(plugdock.Marketplace), h(plugdock.InstalledPlugins), h(plugdock.Slot, { name: "a.b" }),
  h(plugdock.PlugdockNotices));
console.log(renderToString(tree));
"""


def test_the_package_renders_on_a_server(package_tarball: Path) -> None:
    """A server render (Next.js, Remix) of every component: no window, no fetch, no error."""
    assert package_tarball.is_file()  # its prepack built packages/react/dist
    done = subprocess.run(
        ["node", "--input-type=module", "-e", SERVER_RENDER],
        cwd=PACKAGE,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert 'aria-labelledby="market-title"' in done.stdout and "Loading" in done.stdout
