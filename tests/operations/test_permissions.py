"""Permissions: metadata.json's list validated, granted at install, shown before it, and an
upgrade asking for more refused until the admin confirms (operation, HTTP API and CLI)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from test_recovery import run_cli

from panel import Panel, start_panel
from plugdock.errors import PackageError, PermissionsNotGrantedError
from plugdock.installer import Installer
from plugdock.instance.registry import read_registry
from plugdock.package.metadata import parse_metadata
from plugdock.package.permissions import (
    added,
    describe,
    egress_grants,
    validate_permission,
    wants_network,
)
from support import make_plugin, pack_into, snapshot

MARKET = "/api/v1/marketplace"
HOST = "network:api.example.com"
WEATHER_WORDS = (
    "Open network connections to api.example.com on ports 80 and 443 (HTTP and HTTPS) "
    "(nothing else)"
)
ANY_HOST_WORDS = (
    "Open network connections to any host, including services on this machine (127.0.0.1: "
    "its databases too) and on its private network and cloud metadata"
)


def metadata_with(permissions: object) -> bytes:
    return json.dumps(
        {"id": "weather", "name": "Weather", "version": "1.0.0", "permissions": permissions}
    ).encode()


def offer(modules: Path, tmp_path: Path, version: str, permissions: list[str]) -> None:
    """Put ``weather`` at ``version``, asking for ``permissions``, into the local source."""
    folder = make_plugin(
        tmp_path / "src", "weather", version, metadata={"permissions": permissions}
    )
    pack_into(folder, modules)


# ------------------------------------------------------------------- the vocabulary


def test_an_unknown_permission_is_refused_naming_the_known_ones() -> None:
    with pytest.raises(PackageError) as refused:
        parse_metadata(metadata_with(["network", "fs:root"]))
    assert (
        "permissions: unknown permission 'fs:root'; known: network, network:<host>[:<port>], "
        "core:users:read" in str(refused.value)
    )
    for bad, says in [
        ("network:", "'' is not a host name"),
        ("network:exa mple.com", "is not a host name"),
        ("network:example.com:70000", "'70000' is not a port (1-65535)"),
        ("network:example.com:http", "'http' is not a port"),
    ]:
        with pytest.raises(PackageError, match=re.escape(says)):
            parse_metadata(metadata_with([bad]))
    with pytest.raises(PackageError, match="permissions"):
        parse_metadata(metadata_with("network"))  # a list, not a string


def test_permissions_are_normalised_deduplicated_and_sorted() -> None:
    meta = parse_metadata(
        metadata_with(
            [" Network:API.Example.com:0443 ", "core:users:read", "network:api.example.com:443"]
        )
    )
    assert meta.permissions == ["core:users:read", "network:api.example.com:443"]
    assert parse_metadata(metadata_with([])).permissions == []


def test_descriptions_network_and_added() -> None:
    # The words say what process isolation enforces (tests/isolation/test_egress.py).
    assert describe("network") == ANY_HOST_WORDS
    assert describe("network:api.openai.com") == (
        "Open network connections to api.openai.com on ports 80 and 443 (HTTP and HTTPS) "
        "(nothing else)"
    )
    assert describe("network:db.example:5432") == (
        "Open network connections to db.example on port 5432 (nothing else)"
    )
    assert describe("core:users:read") == "Read the panel's users (names and roles)"
    assert validate_permission("NETWORK") == "network"
    assert wants_network(["network:a.example"]) and wants_network(["network"])
    assert not wants_network(["core:users:read"]) and not wants_network([])
    assert added([], ["network"]) == ["network"]
    assert added(["network:a.example"], ["network:b.example", "network:a.example"]) == [
        "network:b.example"
    ]
    assert added(["network"], ["network:b.example"]) == []  # 'network' covers every host
    assert added(["network:a.example"], ["network"]) == ["network"]
    assert added(["core:users:read", "network"], []) == []
    # network:<host> is ports 80 and 443 of it: naming one of them asks for nothing new.
    assert added(["network:a.example"], ["network:a.example:443"]) == []
    assert added(["network:a.example"], ["network:a.example:25"]) == ["network:a.example:25"]
    assert egress_grants(["network:a.example", "network:b.example:25", "network"]) == [
        ("a.example", 80),
        ("a.example", 443),
        ("b.example", 25),
    ]


def test_network_setting_is_reserved_with_a_clear_error() -> None:
    with pytest.raises(PackageError, match="reserved for a host saved in a plugin setting"):
        parse_metadata(metadata_with(["network:setting:gateway_url"]))


# ------------------------------------------------------------ the operation, 3 databases


def test_the_grant_is_stored_and_an_upgrade_asking_more_changes_nothing_until_granted(
    installer: Installer, tmp_path: Path
) -> None:
    modules = installer.settings.plugin_local_dir
    offer(modules, tmp_path, "1.0.0", [HOST])
    installed = installer.install("weather@1.0.0")
    assert installed.permissions == [HOST]
    assert installer.get("weather").permissions == [HOST]  # type: ignore[union-attr]
    entry = read_registry(installer.settings.registry_path)["weather"]
    assert entry["permissions"] == [HOST]

    offer(modules, tmp_path, "2.0.0", ["core:users:read", HOST])
    assert installer.upgrade_plan("weather").permissions_added == ["core:users:read"]
    before = snapshot(installer.settings, installer.engine)
    with pytest.raises(PermissionsNotGrantedError) as refused:
        installer.upgrade("weather")
    assert refused.value.added == ["core:users:read"]
    assert "core:users:read" in str(refused.value)
    # Granting something else is not granting what it asks for.
    with pytest.raises(PermissionsNotGrantedError):
        installer.upgrade("weather", grant=["network"])
    assert snapshot(installer.settings, installer.engine) == before

    result = installer.upgrade("weather", grant=["core:users:read"])
    assert result.version == "2.0.0"
    assert result.permissions == ["core:users:read", HOST]
    row = installer.get("weather")
    assert row is not None and row.permissions == ["core:users:read", HOST]
    with installer.engine.connect() as conn:  # the column itself, as each database stores it
        stored = conn.execute(
            text("SELECT permissions FROM addon_installations WHERE plugin_id = 'weather'")
        ).scalar()
    assert (json.loads(stored) if isinstance(stored, str) else stored) == [
        "core:users:read",
        HOST,
    ]
    entry = read_registry(installer.settings.registry_path)["weather"]
    assert entry["permissions"] == ["core:users:read", HOST]

    # Asking for less needs no confirmation; the grant follows the package.
    offer(modules, tmp_path, "3.0.0", [])
    assert installer.upgrade("weather").permissions == []
    assert installer.get("weather").permissions == []  # type: ignore[union-attr]


def test_ui_same_origin_is_said_plainly_and_an_upgrade_adding_it_waits_for_the_grant(
    installer: Installer, tmp_path: Path
) -> None:
    """Issue 23: the one permission that lifts the plugin UI's frame is never taken silently."""
    assert describe("UI:Same-Origin") == (
        "Its pages run inside the panel with your rights: it can do anything you can"
    )
    modules = installer.settings.plugin_local_dir
    offer(modules, tmp_path, "1.0.0", [])
    installer.install("weather@1.0.0")
    offer(modules, tmp_path, "2.0.0", ["ui:same-origin"])
    assert installer.upgrade_plan("weather").permissions_added == ["ui:same-origin"]
    with pytest.raises(PermissionsNotGrantedError) as refused:
        installer.upgrade("weather")
    assert refused.value.added == ["ui:same-origin"]
    assert installer.get("weather").permissions == []  # type: ignore[union-attr]
    upgraded = installer.upgrade("weather", grant=["ui:same-origin"])
    assert upgraded.permissions == ["ui:same-origin"]


# ------------------------------------------------------------------- the HTTP API


@pytest.fixture
def panel(tmp_path: Path, database_url: str) -> Iterator[Panel]:
    """A running panel whose source offers weather 1.0.0 (asks for HOST)."""
    offer(tmp_path / "modules", tmp_path, "1.0.0", [HOST])
    running = start_panel(tmp_path, database_url)
    yield running
    running.stop()


def test_api_returns_the_grant_and_a_bigger_upgrade_answers_409_until_granted(
    panel: Panel, tmp_path: Path, database_url: str
) -> None:
    admin = panel.client(panel.login())
    catalog = {p["id"]: p for p in admin.get(f"{MARKET}/plugins").json()}
    assert catalog["weather"]["permissions"] == [HOST]
    assert catalog["weather"]["permission_descriptions"] == [WEATHER_WORDS]
    plan = admin.get(f"{MARKET}/plan/install/weather").json()
    assert plan["steps"][-1]["permissions"] == [HOST]

    answer = admin.post(f"{MARKET}/install", json={"plugin_id": "weather"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["permissions"] == [HOST]
    listed = {p["id"]: p for p in admin.get(f"{MARKET}/installed").json()}
    assert listed["weather"]["permissions"] == [HOST]
    assert listed["weather"]["permission_descriptions"] == [WEATHER_WORDS]

    offer(tmp_path / "modules", tmp_path, "1.1.0", [HOST, "network"])
    plan = admin.get(f"{MARKET}/plan/upgrade/weather").json()
    assert plan["permissions_added"] == ["network"]
    assert plan["permissions_added_descriptions"] == [ANY_HOST_WORDS]

    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            row_before = conn.execute(text("SELECT * FROM addon_installations")).all()
        refused = admin.post(f"{MARKET}/upgrade", json={"plugin_id": "weather"})
        assert refused.status_code == 409, refused.text
        body = refused.json()
        assert body["permissions"] == ["network"]
        assert body["permission_descriptions"] == [ANY_HOST_WORDS]
        # The web UI reads the refused permissions from this sentence (Permissions.tsx).
        assert body["detail"] == (
            "weather 1.1.0 asks for permissions it was not granted: network; "
            "confirm them to upgrade"
        )
        with engine.connect() as conn:
            assert conn.execute(text("SELECT * FROM addon_installations")).all() == row_before
    finally:
        engine.dispose()
    assert admin.get("/api/v1/weather/ping").status_code == 200  # 1.0.0 still serves

    bad = admin.post(f"{MARKET}/upgrade", json={"plugin_id": "weather", "grant": ["fs:root"]})
    assert bad.status_code == 422, bad.text

    done = admin.post(f"{MARKET}/upgrade", json={"plugin_id": "weather", "grant": ["network"]})
    assert done.status_code == 200, done.text
    assert done.json()["version"] == "1.1.0"
    assert done.json()["permissions"] == ["network", HOST]
    listed = {p["id"]: p for p in admin.get(f"{MARKET}/installed").json()}
    assert listed["weather"]["permissions"] == ["network", HOST]

    # An uploaded upgrade is held to the same grant; the form's 'grant' fields confirm.
    folder = make_plugin(
        tmp_path / "upload", "weather", "1.2.0", metadata={"permissions": ["core:users:read"]}
    )
    package = pack_into(folder, tmp_path / "uploads").read_bytes()
    files = {"file": ("weather.zip", package, "application/zip")}
    refused = admin.post(f"{MARKET}/upload", files=files)
    assert refused.status_code == 409, refused.text
    assert refused.json()["permissions"] == ["core:users:read"]
    done = admin.post(f"{MARKET}/upload", files=files, data={"grant": ["core:users:read"]})
    assert done.status_code == 200, done.text
    assert done.json()["operation"] == "upgrade"
    assert done.json()["permissions"] == ["core:users:read"]


# ------------------------------------------------------------------------- the CLI


@pytest.mark.slow  # CLI runs in subprocesses
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_cli_dry_run_lists_permissions_and_upgrade_needs_grant_permissions(
    installer: Installer, tmp_path: Path
) -> None:
    settings = installer.settings
    offer(settings.plugin_local_dir, tmp_path, "1.0.0", [HOST, "core:users:read"])
    plain = make_plugin(tmp_path / "src", "plain_notes")
    pack_into(plain, settings.plugin_local_dir)

    planned = run_cli(settings, "install", "weather", "--dry-run")
    assert planned.returncode == 0, planned.stderr
    assert "weather 1.0.0 asks for these permissions:" in planned.stdout
    assert "core:users:read: Read the panel's users (names and roles)" in planned.stdout
    assert f"{HOST}: Open network connections to api.example.com" in planned.stdout
    quiet = run_cli(settings, "install", "plain_notes", "--dry-run")
    assert "plain_notes 1.0.0 asks for no permissions" in quiet.stdout
    assert installer.get("weather") is None  # a dry run changes nothing

    assert run_cli(settings, "install", "weather").returncode == 0
    offer(settings.plugin_local_dir, tmp_path, "2.0.0", [HOST, "core:users:read", "network"])
    before = snapshot(settings, installer.engine)
    refused = run_cli(settings, "upgrade", "weather")
    assert refused.returncode == 1
    assert "asks for permissions it was not granted: network" in refused.stderr
    assert "network: Open network connections to any host" in refused.stderr
    assert "--grant-permissions" in refused.stderr
    assert snapshot(settings, installer.engine) == before

    granted = run_cli(settings, "upgrade", "weather", "--grant-permissions")
    assert granted.returncode == 0, granted.stderr
    row = installer.get("weather")
    assert row is not None and row.version == "2.0.0"
    assert row.permissions == ["core:users:read", "network", HOST]
