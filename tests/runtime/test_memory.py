"""A plugin that is gone leaves nothing alive in the panel.

A long-running panel installs and removes plugins for months; anything that keeps an old
plugin's code, models or reflected tables reachable grows its memory with every change.
These tests install and uninstall through the panel's HTTP API (``TestClient`` with the
app's lifespan, SQLite) and then look for the old objects with the garbage collector.
"""

from __future__ import annotations

import gc
import types
import weakref
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Table

from plugdock.config import load_settings
from plugdock.host.app import create_app
from support import make_plugin, pack_into

ADMIN_PASSWORD = "admin-password-1"


def _endpoints(plugin_id: str) -> list[weakref.ref]:
    """Weak references to the plugin's route functions loaded in this process."""
    return [
        weakref.ref(o)
        for o in gc.get_objects()
        if isinstance(o, types.FunctionType)
        and (o.__module__ or "").startswith(f"plugdock_addons.{plugin_id}_")
    ]


def _tables(name: str) -> list[Table]:
    return [o for o in gc.get_objects() if isinstance(o, Table) and o.name == name]


@pytest.mark.slow  # installs and full garbage collections
def test_uninstalled_plugin_code_and_backup_tables_are_freed(tmp_path: Path) -> None:
    pack_into(make_plugin(tmp_path / "src", "keeper"), tmp_path / "modules")
    settings = load_settings(
        home=tmp_path / "instance",
        plugin_local_dir=tmp_path / "modules",
        database_url=f"sqlite:///{tmp_path / 'panel.db'}",
        admin_password=ADMIN_PASSWORD,
    )
    app = create_app(settings)
    lifespan = app.router.lifespan_context
    with TestClient(app) as client:
        login = {"username": "admin", "password": ADMIN_PASSWORD}
        token = client.post("/api/v1/auth/login", json=login).json()["access_token"]
        admin = {"Authorization": f"Bearer {token}"}
        generations = []
        for _ in range(2):  # a reinstall must not keep the first copy alive either
            added = client.post(
                "/api/v1/marketplace/install", json={"plugin_id": "keeper"}, headers=admin
            )
            assert added.is_success, added.text
            assert client.get("/api/v1/keeper/ping", headers=admin).json() == {"pong": True}
            generations.append(_endpoints("keeper"))
            # backup=true (the default) reflects the plugin's tables to write their rows
            gone = client.delete("/api/v1/marketplace/uninstall/keeper", headers=admin)
            assert gone.is_success, gone.text
        gc.collect()
        assert all(generations) and len(generations[0]) == 1
        alive = [ref() for generation in generations for ref in generation if ref() is not None]
        assert alive == [], f"uninstalled plugin code still reachable: {alive}"
        assert _tables("keeper_notes") == []
        # include_router would chain each plugin's lifespan onto the app's, pinning it
        assert app.router.lifespan_context is lifespan
