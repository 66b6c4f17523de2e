"""Lifecycle hooks have a time limit, and a forced uninstall wins (issue 22, item 4).

Before, in both isolation modes, a plugin whose ``on_uninstall`` looped forever held the
uninstall (and the instance's lock) for good, and one whose ``on_uninstall`` always raised
could never be removed: nothing forced it.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from panel import Panel, start_panel
from support import detail, make_plugin, pack_into

MARKET = "/api/v1/marketplace"

HOOKS = """
import time
from pathlib import Path

from .routes import router


def on_uninstall(ctx):
    marker = ctx.settings.get('marker')
    if marker:  # tells the test the hook has started
        Path(marker).parent.mkdir(parents=True, exist_ok=True)
        Path(marker).write_text('started')
    {body}
"""
HANG = "while True:\n        time.sleep(0.05)"
REFUSE = "raise RuntimeError('I refuse to leave')"

MODES = [
    pytest.param("inprocess", id="inprocess"),
    pytest.param("process", id="process", marks=pytest.mark.processes),
]
pytestmark = pytest.mark.server


def _plugin(parent: Path, plugin_id: str, body: str) -> Path:
    return make_plugin(
        parent, plugin_id, extra_files={"backend/__init__.py": HOOKS.format(body=body)}
    )


def _marker(mode: str, instance: Path) -> str:
    """Where the hook writes its marker: the plugin's data folder as the hook sees it."""
    if mode == "process":
        return "/plugin/data/started"
    return str(instance / "plugin-data" / "stuck" / "started")


@pytest.fixture
def started() -> Iterator[list[Panel]]:
    panels: list[Panel] = []
    yield panels
    for panel in panels:
        panel.stop()
        print(f"--- panel log {panel.log}:\n{panel.output()[-6000:]}")


def _panel(tmp_path: Path, started: list[Panel], mode: str, hook_timeout: str) -> Panel:
    instance = tmp_path / "instance"
    for plugin_id, body in (("stuck", HANG), ("refuser", REFUSE)):
        pack_into(_plugin(tmp_path / "src", plugin_id, body), tmp_path / "modules")
    panel = start_panel(
        tmp_path,
        f"sqlite:///{instance / 'panel.db'}",
        extra_env={
            "PLUGDOCK_ISOLATION": mode,
            "PLUGDOCK_HOOK_TIMEOUT": hook_timeout,
            "PLUGDOCK_PLUGIN_STUCK_MARKER": _marker(mode, instance),
        },
    )
    started.append(panel)
    return panel


def _install(admin: httpx.Client, plugin_id: str) -> None:
    answer = admin.post(f"{MARKET}/install", json={"plugin_id": plugin_id})
    assert answer.status_code == 200, answer.text


def _installed(admin: httpx.Client) -> set[str]:
    return {p["id"] for p in admin.get(f"{MARKET}/installed").json()}


def _assert_whole_and_gone(tmp_path: Path, admin: httpx.Client, plugin_id: str) -> None:
    """Removed as a normal uninstall removes: routes, row, table, code, data folder."""
    instance = tmp_path / "instance"
    assert plugin_id not in _installed(admin)
    assert admin.get(f"/api/v1/{plugin_id}/ping").status_code == 404
    assert not list((instance / "addons").glob(f"*/{plugin_id}")), "its code is left"
    assert not (instance / "plugin-data" / plugin_id).exists(), "its data folder is left"
    registry = (instance / "addons" / "addon_registry.json").read_text()
    assert f'"{plugin_id}"' not in registry, registry
    with sqlite3.connect(instance / "panel.db") as db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
    assert f"{plugin_id}_notes" not in tables
    page = admin.get("/api/v1/audit", params={"action": "uninstall", "plugin_id": plugin_id})
    entries = page.json()["items"]
    assert len(entries) == 1 and (entries[0]["detail"] or {}).get("forced") is True, entries


@pytest.mark.parametrize("mode", MODES)
def test_a_hook_that_hangs_or_refuses_fails_within_the_bound_and_force_removes_it(
    tmp_path: Path, started: list[Panel], mode: str
) -> None:
    panel = _panel(tmp_path, started, mode, hook_timeout="2")
    admin = panel.client(panel.login())
    _install(admin, "stuck")
    _install(admin, "refuser")

    hung = admin.delete(f"{MARKET}/uninstall/stuck")
    assert hung.status_code == 422, hung.text
    assert "hook time limit of 2 s" in detail(hung), hung.text
    refused = admin.delete(f"{MARKET}/uninstall/refuser")
    assert refused.status_code == 422, refused.text
    assert "I refuse to leave" in detail(refused), refused.text

    # Both still installed, whole, and serving.
    assert {"stuck", "refuser"} <= _installed(admin)
    for plugin_id in ("stuck", "refuser"):
        assert admin.get(f"/api/v1/{plugin_id}/ping").json() == {"pong": True}

    for plugin_id in ("stuck", "refuser"):
        gone = admin.delete(f"{MARKET}/uninstall/{plugin_id}", params={"force": "true"})
        assert gone.status_code == 200, gone.text
        assert "forced" in gone.json()["message"]
        _assert_whole_and_gone(tmp_path, admin, plugin_id)
    assert admin.get("/healthz").status_code == 200


@pytest.mark.parametrize("mode", MODES)
def test_force_does_not_wait_behind_a_hung_hook(
    tmp_path: Path, started: list[Panel], mode: str
) -> None:
    # A bound far past any test's run: only the force can end the hung uninstall.
    panel = _panel(tmp_path, started, mode, hook_timeout="3600")
    admin = panel.client(panel.login())
    _install(admin, "stuck")
    marker = tmp_path / "instance" / "plugin-data" / "stuck" / "started"

    # Signed in first: on SQLite a hook in the panel holds the database's write lock while
    # it runs (its transaction), and signing in writes.
    forced = panel.client(panel.login())
    forced.timeout = httpx.Timeout(120)  # far less than the hook's bound
    outcome: list[httpx.Response] = []
    waiting = panel.client(panel.login())
    waiting.timeout = httpx.Timeout(None)
    normal = threading.Thread(
        target=lambda: outcome.append(waiting.delete(f"{MARKET}/uninstall/stuck")), daemon=True
    )
    normal.start()
    for _ in range(600):  # the hook has started (a deadline, not a bound under test)
        if marker.exists():
            break
        normal.join(0.1)
    assert marker.exists(), "on_uninstall never started"

    gone = forced.delete(f"{MARKET}/uninstall/stuck", params={"force": "true"})
    assert gone.status_code == 200, gone.text
    normal.join(60)
    assert outcome and outcome[0].status_code == 422, outcome and outcome[0].text
    assert "forced uninstall" in detail(outcome[0])
    _assert_whole_and_gone(tmp_path, admin, "stuck")
