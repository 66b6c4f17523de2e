"""Benchmark: plugin UIs in sandboxed frames against ui:same-origin, side by side (issue 23).

One real panel on loopback (SQLite) with two plugins whose UI is the same code: one framed
(the default), one granted ``ui:same-origin`` (imported into the shell's page). Chromium
(Debian's, headless, under Playwright) signs in once. Prints:

- navigation to the plugin's page until its content is visible: from the Dashboard, a click
  on the nav link until the page's first paint (measured in the page: a capturing click
  listener in the shell and the page's first animation frame, on the wall clock both
  share; and, for reference, until Playwright sees the page's heading), warm (after one
  visit: the shell keeps a framed page's frame, and the page mounts afresh in it), framed
  and same-origin in alternating turns; median and p90, and framed / same-origin (target:
  at most 1.5x, and framed under 300 ms warm); the first visit too
- the time of one SDK request to the plugin's own route (200 sequential ``request()`` calls,
  measured inside the page with ``performance.now()``): framed (through the bridge) and
  same-origin (a direct fetch); the p50 the bridge adds (target: at most 2 ms)

Run: make bench   (or .venv/bin/python bench/frames.py [--turns 20] [--requests 200])
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from playwright.sync_api import FrameLocator, Page, expect, sync_playwright
from runtime import PASSWORD, Panel, percentile  # bench/runtime.py, beside this script

from plugdock.package.pack import pack

CHROMIUM = Path("/usr/bin/chromium")
TARGET_RATIO = 1.5
TARGET_WARM_MS = 300.0
TARGET_ADDED_P50_MS = 2.0

CONFIG = """\
import { type PluginComponentProps, defineAddon, request } from "@plugdock/sdk";
import * as React from "react";

declare global {
  interface Window {
    __painted?: number;
  }
}

function BenchPage(_props: PluginComponentProps) {
  const [result, setResult] = React.useState("");
  React.useLayoutEffect(() => {
    // The first frame painted with this page in it, on the wall clock the shell shares.
    const stamp = () => (window.__painted = performance.timeOrigin + performance.now());
    requestAnimationFrame(() => setTimeout(stamp));
  }, []);
  const run = async () => {
    const n = Number(new URLSearchParams(window.location.search).get("n") ?? "200");
    const times: number[] = [];
    for (let i = 0; i < n; i++) {
      const started = performance.now();
      await request("GET", "/api/v1/SLUG/ping");
      times.push(performance.now() - started);
    }
    setResult(JSON.stringify(times));
  };
  return (
    <section>
      <h1>TITLE ready</h1>
      <button type="button" onClick={() => void run()}>Run</button>
      {result && <output aria-label="Times">{result}</output>}
    </section>
  );
}

export default defineAddon({
  nav: [{ label: "TITLE", path: "/PATH" }],
  routes: [{ path: "/PATH", component: BenchPage }],
});
"""
ROUTES = """\
from fastapi import APIRouter

router = APIRouter(prefix="/api/v1/SLUG")


@router.get("/ping")
def ping() -> dict:
    return {"pong": True}
"""


def make_ui_plugin(parent: Path, plugin_id: str, title: str, permissions: list[str]) -> Path:
    slug = plugin_id.replace("_", "-")
    folder = parent / plugin_id
    files = {
        "metadata.json": json.dumps(
            {
                "id": plugin_id,
                "name": title,
                "version": "1.0.0",
                "backend": {"routes": [f"/api/v1/{slug}/*"]},
                "frontend": {"routes": [f"/{slug}"], "components": ["BenchPage"]},
                "permissions": permissions,
            }
        ),
        "backend/__init__.py": "from .routes import router\n",
        "backend/routes.py": ROUTES.replace("SLUG", slug),
        "frontend/addon.config.tsx": CONFIG.replace("SLUG", slug)
        .replace("TITLE", title)
        .replace("PATH", slug),
        "migrations/up.sql": f"CREATE TABLE {plugin_id}_t (id INTEGER PRIMARY KEY);\n",
        "migrations/down.sql": f"DROP TABLE {plugin_id}_t;\n",
    }
    for relative, text in files.items():
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return folder


def content(page: Page, framed: bool) -> Page | FrameLocator:
    return page.frame_locator("iframe.plugin-frame") if framed else page


CLICK_CLOCK = """() => document.addEventListener("click", () => {
  window.__clicked = performance.timeOrigin + performance.now();
}, { capture: true, once: true })"""


def navigation_ms(page: Page, title: str, framed: bool) -> tuple[float, float]:
    """(in the page: the click until the plugin page's first paint; as Playwright sees it)."""
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Dashboard").click()
    expect(page.get_by_role("heading", name="Dashboard", level=1)).to_be_visible()
    page.evaluate(CLICK_CLOCK)
    started = time.perf_counter()
    page.get_by_role("navigation", name="Main").get_by_role("link", name=title).click()
    expect(content(page, framed).get_by_role("heading", name=f"{title} ready")).to_be_visible()
    seen = (time.perf_counter() - started) * 1000
    if framed:
        handle = page.locator("iframe.plugin-frame:visible").element_handle()
        target = handle.content_frame()
        assert target is not None
    else:
        target = page.main_frame
    # Polled from here: wait_for_function compiles its predicate in the page, which the
    # frame's Content-Security-Policy (no 'unsafe-eval') refuses.
    deadline = time.perf_counter() + 30
    while (painted := target.evaluate("window.__painted")) is None:
        if time.perf_counter() > deadline:
            raise TimeoutError("the plugin page never painted")
        time.sleep(0.002)
    target.evaluate("delete window.__painted")
    return painted - page.evaluate("window.__clicked"), seen


def request_times_ms(page: Page, panel_url: str, slug: str, framed: bool, n: int) -> list[float]:
    page.goto(f"{panel_url}/{slug}?n={n}")
    where = content(page, framed)
    where.get_by_role("button", name="Run").click()
    output = where.locator("output")
    expect(output).to_be_visible(timeout=120_000)
    return [float(t) for t in json.loads(output.inner_text())]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=20)
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    plugins = {True: ("framed_bench", "Framed"), False: ("same_bench", "Same")}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for framed, (plugin_id, title) in plugins.items():
            folder = make_ui_plugin(
                work / "src", plugin_id, title, [] if framed else ["ui:same-origin"]
            )
            pack(folder, work / "modules")
        panel = Panel(work)
        try:
            for plugin_id, _ in plugins.values():
                panel.admin.post(
                    "/api/v1/marketplace/install", json={"plugin_id": plugin_id}
                ).raise_for_status()
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
                page = browser.new_context(viewport={"width": 1280, "height": 860}).new_page()
                page.set_default_timeout(30_000)
                page.goto(f"{panel.url}/")
                page.get_by_label("Username").fill("admin")
                page.get_by_label("Password").fill(PASSWORD)
                page.get_by_role("button", name="Sign in").click()
                expect(page.get_by_role("heading", name="Dashboard", level=1)).to_be_visible()
                nav: dict[bool, list[tuple[float, float]]] = {True: [], False: []}
                cold = {
                    framed: navigation_ms(page, title, framed)  # first visit: a new frame
                    for framed, (_, title) in plugins.items()
                }
                for _ in range(args.turns):
                    for framed, (_, title) in plugins.items():
                        nav[framed].append(navigation_ms(page, title, framed))
                times = {
                    framed: request_times_ms(
                        page, panel.url, plugin_id.replace("_", "-"), framed, args.requests
                    )
                    for framed, (plugin_id, _) in plugins.items()
                }
                browser.close()
        finally:
            panel.stop()

    print(f"navigation to a plugin page, warm ({args.turns} turns): the click until the page's")
    print("first paint, in the page (wall clock); then until Playwright sees its heading")
    for framed, label in ((True, "framed"), (False, "same-origin")):
        inside = [m[0] for m in nav[framed]]
        seen = [m[1] for m in nav[framed]]
        print(
            f"  {label:12} median {statistics.median(inside):6.1f} ms   "
            f"p90 {percentile(inside, 0.9):6.1f} ms   "
            f"(Playwright: median {statistics.median(seen):6.1f} ms)"
        )
    print(
        f"  first visit (a new frame; not the target): framed {cold[True][0]:.1f} ms, "
        f"same-origin {cold[False][0]:.1f} ms"
    )
    framed_ms = statistics.median([m[0] for m in nav[True]])
    ratio = framed_ms / statistics.median([m[0] for m in nav[False]])
    verdict = "ok" if ratio <= TARGET_RATIO and framed_ms < TARGET_WARM_MS else "over target"
    print(f"  framed / same-origin: {ratio:.2f}x (target <= {TARGET_RATIO}x, < 300 ms): {verdict}")
    print(f"one SDK request to the plugin's own route ({args.requests} sequential)")
    for framed, label in ((True, "framed"), (False, "same-origin")):
        samples = times[framed]
        print(
            f"  {label:12} p50 {statistics.median(samples):6.2f} ms   "
            f"p90 {percentile(samples, 0.9):6.2f} ms"
        )
    added = statistics.median(times[True]) - statistics.median(times[False])
    verdict = "ok" if added <= TARGET_ADDED_P50_MS else "over target"
    print(
        f"  the bridge adds {added:.2f} ms at p50 (target <= {TARGET_ADDED_P50_MS} ms): {verdict}"
    )


if __name__ == "__main__":
    main()
