"""``plugdock dev FOLDER``: a real subprocess on a loopback port follows the plugin's files.

Each test makes a plugin with ``plugdock new``, starts ``plugdock dev`` on it, edits the
source and polls (bounded) until the panel answers with the change: a backend edit is
re-mounted, a frontend edit re-bundled, a migrations edit reinstalls, a version bump with
an upgrade step upgrades. Broken edits leave the last good version serving.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from panel import RUNNING, Panel

# Every test runs `plugdock dev` on loopback.
pytestmark = pytest.mark.server

T = TypeVar("T")
PLUGIN_ID = "hello_dev"
HELLO = "/api/v1/hello-dev/hello"
TABLE = f"{PLUGIN_ID}_items"

#: Appended to the scaffold's routes.py: what the tests edit and read back.
HELLO_ROUTE = f"""

from sqlalchemy import text as _sql


@router.get("/hello")
def hello(db: sdk.DbSession) -> dict[str, object]:
    rows = db.execute(_sql("SELECT title FROM {TABLE} ORDER BY id")).scalars().all()
    return {{"text": "first answer", "rows": list(rows)}}
"""

#: Appended to backend/__init__.py: the exported router also serves an undeclared path.
SNEAKY = """

from fastapi import APIRouter as _APIRouter

_outer = _APIRouter()
_outer.include_router(router)


@_outer.get("/api/v1/elsewhere")
def sneaky() -> str:
    return "undeclared"


router = _outer
"""

PAGE = """export default function {name}() {{
  return <h1>{{"dev page: {mark}"}}</h1>;
}}
"""


@dataclass
class DevPanel(Panel):
    """``plugdock dev`` as a subprocess (``stop()`` and ``output()`` are the panel's)."""

    def wait_for(self, probe: Callable[[], T | None], what: str, timeout: float = 60) -> T:
        """Poll ``probe`` until it returns something truthy; fail with the log after ``timeout``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"plugdock dev exited ({self.process.returncode}):\n{self.output()}")
            try:
                result = probe()
            except httpx.TransportError:  # not listening yet
                result = None
            if result:
                return result
            time.sleep(0.1)
        pytest.fail(f"timed out waiting for {what}:\n{self.output()}")

    def hello(self) -> dict[str, Any] | None:
        response = httpx.get(self.url + HELLO, timeout=10)
        return response.json() if response.status_code == 200 else None

    def answer_is(self, text: str, rows: list[str] | None = None) -> dict[str, Any]:
        def probe() -> dict[str, Any] | None:
            body = self.hello()
            if body and body["text"] == text and (rows is None or body["rows"] == rows):
                return body
            return None

        return self.wait_for(probe, f"{HELLO} to answer {text!r} with rows {rows}")

    def logged(self, text: str, times: int = 1) -> None:
        self.wait_for(lambda: self.output().count(text) >= times, f"{text!r} in the log")


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "plugdock", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A ``plugdock new`` plugin with a /hello route and a page the tests edit."""
    _cli("new", PLUGIN_ID, "--dir", str(tmp_path), cwd=tmp_path)
    folder = tmp_path / PLUGIN_ID
    assert TABLE in (folder / "migrations" / "up.sql").read_text()
    with (folder / "backend" / "routes.py").open("a", encoding="utf-8") as routes:
        routes.write(HELLO_ROUTE)
    [page] = (folder / "frontend" / "pages").glob("*.tsx")  # the one the addon.config names
    page.write_text(PAGE.format(name=page.stem, mark="one"), encoding="utf-8")
    return folder


@pytest.fixture
def start_dev(tmp_path: Path) -> Iterator[Callable[..., DevPanel]]:
    panels: list[DevPanel] = []

    def start(folder: Path, *args: str) -> DevPanel:
        log = tmp_path / f"dev-{len(panels)}.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PLUGDOCK_", "PLUGIN_"))}
        env["DATABASE_URL"] = "postgresql://nobody@127.0.0.1:1/not-this-one"  # dev ignores it
        with log.open("wb") as out:
            process = subprocess.Popen(
                # Port 0, then the port uvicorn got from its log: never one another test holds.
                [sys.executable, "-m", "plugdock", "dev", str(folder), "--port", "0", *args],
                cwd=tmp_path,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        panel = DevPanel("", process, env, log)
        panels.append(panel)
        bound = panel.wait_for(lambda: RUNNING.search(panel.output()), "uvicorn to listen")
        panel.url = f"http://127.0.0.1:{bound.group(1)}"
        return panel

    yield start
    for panel in panels:
        panel.stop()


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new), encoding="utf-8")


def test_backend_edits_are_served_and_broken_ones_are_not(
    folder: Path, start_dev: Callable[..., DevPanel]
) -> None:
    panel = start_dev(folder)
    routes = folder / "backend" / "routes.py"
    panel.answer_is("first answer", rows=[])

    _edit(routes, '"first answer"', '"second answer"')
    panel.answer_is("second answer")
    panel.logged("reloaded hello_dev backend")

    # Code that does not import: logged, and the last good code keeps answering.
    routes.write_text(routes.read_text() + "\ndef broken(:\n", encoding="utf-8")
    panel.logged("importing its backend failed")
    assert panel.hello() == {"text": "second answer", "rows": []}

    # Code that serves a path metadata.json does not declare: refused like an install.
    _edit(routes, "\ndef broken(:\n", "")
    panel.logged("reloaded hello_dev backend", times=2)
    init = folder / "backend" / "__init__.py"
    scaffold_init = init.read_text(encoding="utf-8")
    init.write_text(scaffold_init + SNEAKY, encoding="utf-8")
    panel.logged("which is outside its declared routes")
    assert panel.hello() == {"text": "second answer", "rows": []}
    assert httpx.get(panel.url + "/api/v1/elsewhere", timeout=10).status_code == 404
    assert panel.output().count("reloaded hello_dev backend") == 2

    init.write_text(scaffold_init, encoding="utf-8")
    _edit(routes, '"second answer"', '"third answer"')
    panel.answer_is("third answer")


def test_a_frontend_edit_is_rebundled_and_served_fresh(
    folder: Path, start_dev: Callable[..., DevPanel]
) -> None:
    panel = start_dev(folder)
    panel.answer_is("first answer")

    def bundle_url() -> str | None:
        plugins = httpx.get(panel.url + "/api/v1/frontend/plugins", timeout=10).json()
        return next((p["bundle_url"] for p in plugins if p["id"] == PLUGIN_ID), None)

    url = panel.url + panel.wait_for(bundle_url, "the plugin's bundle in the manifest")
    first = httpx.get(url, timeout=10)
    assert "dev page: one" in first.text
    # A real panel says immutable; here a reload must fetch the rebuilt bundle.
    assert first.headers["cache-control"] == "no-cache"

    [page] = (folder / "frontend" / "pages").glob("*.tsx")
    page.write_text(PAGE.format(name=page.stem, mark="two"), encoding="utf-8")
    rebuilt = panel.wait_for(
        lambda: (
            (r := httpx.get(url, timeout=10)).status_code == 200 and "dev page: two" in r.text and r
        ),
        "the rebuilt bundle",
    )
    assert "dev page: one" not in rebuilt.text

    # A UI that does not compile: logged, and the last good bundle stays.
    page.write_text("export default function Page( {\n", encoding="utf-8")
    panel.logged("frontend build failed")
    assert "dev page: two" in httpx.get(url, timeout=10).text


def test_schema_edits_reinstall_and_a_version_bump_upgrades(
    folder: Path, start_dev: Callable[..., DevPanel]
) -> None:
    panel = start_dev(folder)  # a scratch instance, removed at exit
    panel.answer_is("first answer", rows=[])
    match = re.search(r"\(instance (\S+), removed at exit\)", panel.output())
    assert match, panel.output()
    home = Path(match.group(1))
    assert home.is_dir() and not home.is_relative_to(folder)

    # up.sql changed, same version: reinstalled from the folder (up.sql's row appears).
    up = folder / "migrations" / "up.sql"
    up.write_text(up.read_text() + f"INSERT INTO {TABLE} (title) VALUES ('from up.sql');\n")
    panel.answer_is("first answer", rows=["from up.sql"])
    assert "reinstalling hello_dev" in panel.output()

    # An up.sql the installer refuses is refused before the uninstall: the last good serves.
    good_up = up.read_text()
    up.write_text(good_up + "CREATE TABLE hello_dev_broken (\n")
    panel.logged("not applied")
    assert panel.hello() == {"text": "first answer", "rows": ["from up.sql"]}
    up.write_text(good_up)  # as installed again: nothing to do

    # A new version with an upgrade step: upgraded, so the rows are kept and the step runs.
    step = folder / "migrations" / "versions" / "0.2.0" / "up.sql"
    step.parent.mkdir(parents=True)
    step.write_text(f"INSERT INTO {TABLE} (title) VALUES ('from the 0.2.0 step');\n")
    metadata = json.loads((folder / "metadata.json").read_text())
    (folder / "metadata.json").write_text(json.dumps(metadata | {"version": "0.2.0"}, indent=2))
    panel.answer_is("first answer", rows=["from up.sql", "from the 0.2.0 step"])
    panel.logged("upgraded hello_dev to 0.2.0")  # not a reinstall that happened to match

    # A save that changes nothing the install recorded does not reinstall (rows stay).
    up.write_text(up.read_text())
    _edit(folder / "backend" / "routes.py", '"first answer"', '"after touching up.sql"')
    panel.answer_is("after touching up.sql", rows=["from up.sql", "from the 0.2.0 step"])

    panel.stop()
    assert not home.exists()
