"""Declared plugin settings over a real panel: the API and CLI round trip, secrets never
answered nor stored in clear, the key's failures, needs-configuration 503s, a change reaching
every worker, ``on_settings_changed``, upgrades keeping values."""

from __future__ import annotations

import base64
import json
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from panel import ADMIN_PASSWORD, INPROCESS, Panel, fresh_get, start_panel, wait_for_startups
from plugdock.errors import PackageError, SecretKeyError
from plugdock.instance.secret_box import SecretBox, new_key, parse_key
from plugdock.package.pack import pack
from support import make_plugin, pack_into

pytestmark = pytest.mark.server

SQLITE = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
SECRET = "sk-live-9f8e7d6c5b4a-never-in-clear"
SCHEMA = {
    "type": "object",
    "required": ["gateway_url", "api_key"],
    "properties": {
        "gateway_url": {"type": "string", "format": "uri", "title": "Gateway URL"},
        "api_key": {"type": "string", "writeOnly": True, "description": "Bearer token"},
        "sender": {"type": "string", "default": "plugdock", "maxLength": 11},
        "retries": {"type": "integer", "minimum": 0, "maximum": 5, "default": 1},
    },
}
ROUTES = """\
import os

from fastapi import APIRouter

from plugdock import sdk

router = APIRouter(prefix="/api/v1/cfg")


@router.get("/values")
def values(config: sdk.PluginSettings) -> dict:
    return {"pid": os.getpid(), "config": config}


HOOKED = []


@router.get("/hooked")
def hooked() -> list:
    return HOOKED


def on_settings_changed(settings):
    HOOKED.append(settings.get("sender"))
    if "CFG_HOOK_LOG" in os.environ:  # one line per serving process and change: counted
        with open(os.environ["CFG_HOOK_LOG"], "a") as log:
            log.write(f"{os.getpid()} {settings.get('sender')}\\n")
"""


def cfg_plugin(parent: Path, version: str = "1.0.0", schema: dict | None = None) -> Path:
    return make_plugin(
        parent,
        "cfg",
        version,
        metadata={"backend": {"routes": ["/api/v1/cfg/*"]}, "settings": schema or SCHEMA},
        extra_files={
            "backend/__init__.py": "from .routes import on_settings_changed, router\n",
            "backend/routes.py": ROUTES,
        },
    )


@pytest.fixture
def panel(tmp_path: Path, database_url: str) -> Iterator[Panel]:
    pack_into(cfg_plugin(tmp_path / "src"), tmp_path / "modules")
    running = start_panel(
        tmp_path,
        database_url,
        workers=2,
        extra_env=INPROCESS | {"CFG_HOOK_LOG": str(tmp_path / "hook.log")},
    )
    wait_for_startups(running, 2)
    yield running
    running.stop()


def settings_of(admin: httpx.Client) -> dict[str, dict]:
    answer = admin.get("/api/v1/plugins/cfg/settings")
    assert answer.status_code == 200, answer.text
    return {s["name"]: s for s in answer.json()["settings"]}


def db_bytes(tmp_path: Path) -> bytes:
    folder = tmp_path
    return b"".join(p.read_bytes() for p in folder.glob("scratch.db*"))


# -- the schema --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("schema", "says"),
    [
        ({"type": "object", "properties": {"a": {"type": "array"}}}, "'type' must be one of"),
        ({"type": "object", "properties": {"a": {"type": "string", "format": "date"}}}, "date"),
        (
            {
                "type": "object",
                "properties": {"k": {"type": "string", "writeOnly": True, "default": "x"}},
            },
            "secret cannot have",
        ),
        ({"type": "object", "properties": {"a": {"type": "string", "$ref": "#/x"}}}, "'$ref'"),
        ({"type": "object", "required": ["b"], "properties": {}}, "'b' is not a property"),
        ({"type": "array"}, "'type' must be 'object'"),
        ({"type": "object", "properties": {"n": {"type": "integer", "default": "x"}}}, "default"),
    ],
)
def test_a_schema_outside_the_subset_is_refused_by_pack(
    tmp_path: Path, schema: dict, says: str
) -> None:
    with pytest.raises(PackageError, match="settings") as refused:
        pack(cfg_plugin(tmp_path / "src", schema=schema), tmp_path / "out")
    assert says in str(refused.value)


def test_the_secret_box_refuses_another_key_another_row_and_tampering() -> None:
    box = SecretBox(parse_key(new_key()))
    sealed = box.seal("cfg", "api_key", SECRET)
    assert SECRET not in sealed and box.open("cfg", "api_key", sealed) == SECRET
    with pytest.raises(SecretKeyError, match="does not open with this key"):
        SecretBox(parse_key(new_key())).open("cfg", "api_key", sealed)
    with pytest.raises(SecretKeyError, match="does not open"):
        box.open("other", "api_key", sealed)  # moved to another plugin
    with pytest.raises(SecretKeyError, match="does not open"):
        box.open("cfg", "sender", sealed)  # moved to another setting
    raw = bytearray(base64.b64decode(sealed))
    raw[-1] ^= 1
    with pytest.raises(SecretKeyError, match="does not open"):
        box.open("cfg", "api_key", base64.b64encode(bytes(raw)).decode())
    with pytest.raises(SecretKeyError, match="32 bytes"):
        parse_key(base64.b64encode(b"short").decode())
    with pytest.raises(SecretKeyError, match="not base64"):
        parse_key("not base64 at all!")


# -- the API, workers, the hook -----------------------------------------------------------


@SQLITE
def test_settings_round_trip_over_the_api_on_every_worker(
    panel: Panel, tmp_path: Path, database_url: str
) -> None:
    admin = panel.client(panel.login())
    assert admin.post("/api/v1/marketplace/install", json={"plugin_id": "cfg"}).status_code == 200

    # Required settings missing: the plugin's routes say so with a 503, everywhere.
    refused = admin.get("/api/v1/cfg/values")
    assert refused.status_code == 503, refused.text
    assert "needs configuration" in refused.json()["detail"]
    assert "gateway_url: required" in refused.json()["detail"]
    listed = {p["id"]: p for p in admin.get("/api/v1/marketplace/installed").json()}
    assert listed["cfg"]["needs_configuration"] and listed["cfg"]["has_settings"]
    both_serve(admin)  # so both have settings to see change (the hook's "once per process")

    before = settings_of(admin)
    assert before["api_key"] | {"property_schema": None} == before["api_key"] | {
        "secret": True,
        "set": False,
        "value": None,
        "source": "unset",
        "required": True,
        "property_schema": None,
    }
    assert before["sender"]["value"] == "plugdock" and before["sender"]["source"] == "default"

    # A message per field, nothing stored.
    bad = admin.put(
        "/api/v1/plugins/cfg/settings",
        json={"values": {"gateway_url": "not a url", "retries": 9, "api_key": SECRET, "nope": 1}},
    )
    assert bad.status_code == 422, bad.text
    fields = {d["loc"][-1]: d["msg"] for d in bad.json()["detail"]}
    assert fields == {"nope": "not a setting of this plugin"}
    bad = admin.put(
        "/api/v1/plugins/cfg/settings",
        json={"values": {"gateway_url": "not a url", "retries": 9, "api_key": SECRET}},
    )
    assert bad.status_code == 422
    fields = {d["loc"][-1]: d["msg"] for d in bad.json()["detail"]}
    assert set(fields) == {"gateway_url", "retries"}, fields
    assert SECRET not in bad.text
    assert settings_of(admin)["api_key"]["set"] is False

    saved = admin.put(
        "/api/v1/plugins/cfg/settings",
        json={
            "values": {
                "gateway_url": "https://sms.example/send",
                "api_key": SECRET,
                "sender": "ACME",
            }
        },
    )
    assert saved.status_code == 200, saved.text
    assert SECRET not in saved.text
    assert saved.json()["needs_configuration"] is False
    after = {s["name"]: s for s in saved.json()["settings"]}
    assert after["api_key"]["set"] is True and after["api_key"]["value"] is None
    assert after["sender"]["value"] == "ACME" and after["sender"]["source"] == "stored"

    # Every worker serves the new values within a second, without a restart.
    deadline = time.monotonic() + 1.0
    seen: dict[int, dict] = {}
    while time.monotonic() < deadline and len(seen) < 2:
        answer = fresh_get(f"{panel.url}/api/v1/cfg/values")
        if answer.status_code == 200 and answer.json()["config"].get("sender") == "ACME":
            seen[answer.json()["pid"]] = answer.json()["config"]
    assert len(seen) == 2, seen  # two workers, both with the new values
    for config in seen.values():  # the plugin itself gets the secret, decrypted
        assert config == {
            "gateway_url": "https://sms.example/send",
            "api_key": SECRET,
            "sender": "ACME",
            "retries": 1,
        }

    # on_settings_changed: once per serving process, with the new values.
    hook_log = tmp_path / "hook.log"
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and len(_lines(hook_log)) < 2:
        time.sleep(0.05)
    time.sleep(0.5)  # a second run in one worker would show up by now
    lines = _lines(hook_log)
    assert sorted(lines) == sorted(f"{pid} ACME" for pid in seen), (lines, panel.output())

    # Keep a secret (left out), replace it, clear it.
    assert (
        admin.put("/api/v1/plugins/cfg/settings", json={"values": {"sender": "Bob"}}).status_code
        == 200
    )
    assert fresh_get(f"{panel.url}/api/v1/cfg/values").json()["config"]["api_key"] == SECRET
    cleared = admin.put("/api/v1/plugins/cfg/settings", json={"values": {"api_key": None}})
    assert cleared.status_code == 422  # a required secret cannot be cleared
    assert {d["loc"][-1] for d in cleared.json()["detail"]} == {"api_key"}

    # Never in an answer, the audit log nor in clear in the database file.
    audit = admin.get("/api/v1/audit", params={"limit": 100})
    assert audit.status_code == 200
    assert "settings_change" in audit.text and SECRET not in audit.text
    assert SECRET.encode() not in db_bytes(tmp_path)
    for path in (
        "/api/v1/marketplace/installed",
        "/api/v1/plugins/cfg/settings",
        "/api/v1/frontend/plugins",
    ):
        assert SECRET not in admin.get(path).text

    # Non-admins may neither read nor change settings; anonymous callers neither.
    made = panel.cli(
        "user", "create", "bob", "--role", "user", "--password-stdin", stdin="bob-password\n"
    )
    assert made.returncode == 0, made.stderr
    bob = panel.client(panel.login("bob", "bob-password"))
    assert bob.get("/api/v1/plugins/cfg/settings").status_code == 403
    assert (
        bob.put("/api/v1/plugins/cfg/settings", json={"values": {"sender": "x"}}).status_code == 403
    )
    assert httpx.get(f"{panel.url}/api/v1/plugins/cfg/settings").status_code == 401

    # The web UI's cookie session: a change needs the session's CSRF token, as the marketplace.
    with httpx.Client(base_url=panel.url) as browser:
        signed = browser.post(
            "/api/v1/auth/session", json={"username": "admin", "password": ADMIN_PASSWORD}
        )
        assert signed.status_code == 200, signed.text
        change = {"values": {"sender": "Cookie"}}
        forged = browser.put("/api/v1/plugins/cfg/settings", json=change)
        assert forged.status_code == 403, forged.text
        csrf = {"X-CSRF-Token": signed.json()["csrf_token"]}
        fine = browser.put("/api/v1/plugins/cfg/settings", json=change, headers=csrf)
        assert fine.status_code == 200, fine.text
    assert admin.get("/api/v1/plugins/nothere/settings").status_code == 404


def both_serve(admin: httpx.Client) -> None:
    """Wait until both workers serve the installed plugin (their heartbeat says so)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        replicas = {p["id"]: p for p in admin.get("/api/v1/marketplace/installed").json()}
        counts = replicas["cfg"]["replicas"]
        if counts and counts["converged"] == counts["total"] == 2:
            return
        time.sleep(0.05)
    raise AssertionError(f"the workers did not both serve cfg: {counts}")


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


@SQLITE
def test_a_tampered_secret_or_another_key_says_so_and_the_plugin_waits(
    panel: Panel, tmp_path: Path, database_url: str
) -> None:
    admin = panel.client(panel.login())
    admin.post("/api/v1/marketplace/install", json={"plugin_id": "cfg"}).raise_for_status()
    admin.put(
        "/api/v1/plugins/cfg/settings",
        json={"values": {"gateway_url": "https://sms.example/", "api_key": SECRET}},
    ).raise_for_status()
    assert fresh_get(f"{panel.url}/api/v1/cfg/values").status_code == 200
    key_file = tmp_path / "instance" / "settings.key"
    assert key_file.stat().st_mode & 0o777 == 0o600

    engine = create_engine(database_url)
    try:  # someone with the database only swaps in a ciphertext of their own
        with engine.begin() as conn:
            conn.execute(
                text("UPDATE plugdock_plugin_settings SET value = :v WHERE name = 'api_key'"),
                {"v": SecretBox(parse_key(new_key())).seal("cfg", "api_key", "attacker")},
            )
            conn.execute(text("UPDATE plugdock_plugin_state SET generation = generation + 1"))
    finally:
        engine.dispose()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        answer = fresh_get(f"{panel.url}/api/v1/cfg/values")
        if answer.status_code == 503:
            break
    assert answer.status_code == 503, answer.text
    assert "does not open with this key" in answer.json()["detail"]
    shown = settings_of(admin)
    assert "does not open with this key" in shown["api_key"]["problem"]
    # Setting it again repairs it.
    admin.put("/api/v1/plugins/cfg/settings", json={"values": {"api_key": "new"}})
    assert fresh_get(f"{panel.url}/api/v1/cfg/values").json()["config"]["api_key"] == "new"


@SQLITE
def test_cli_round_trip_environment_override_and_key_rotation(
    panel: Panel, tmp_path: Path, database_url: str
) -> None:
    admin = panel.client(panel.login())
    admin.post("/api/v1/marketplace/install", json={"plugin_id": "cfg"}).raise_for_status()
    assert panel.cli("config", "cfg", "gateway_url", "https://gw.example/").returncode == 0
    asked = panel.cli("config", "cfg", "api_key", stdin=f"{SECRET}\n{SECRET}\n")
    assert asked.returncode == 0, asked.stderr
    assert SECRET not in asked.stdout + asked.stderr
    wrong = panel.cli("config", "cfg", "retries", "7")
    assert wrong.returncode == 1 and "retries" in wrong.stderr + wrong.stdout
    listed = panel.cli("config", "cfg")
    assert listed.returncode == 0, listed.stderr
    assert "api_key = set" in listed.stdout and SECRET not in listed.stdout
    assert 'gateway_url = "https://gw.example/"' in listed.stdout
    assert panel.cli("config", "cfg", "sender").stdout.startswith('sender = "plugdock"')
    answer = fresh_get(f"{panel.url}/api/v1/cfg/values")
    assert answer.status_code == 200 and answer.json()["config"]["api_key"] == SECRET

    # Rotation: the old key in an env var, the new one as PLUGDOCK_SETTINGS_KEY.
    old = (tmp_path / "instance" / "settings.key").read_text().strip()
    fresh = new_key()
    rotated = panel.cli_env(
        {"PLUGDOCK_OLD_SETTINGS_KEY": old, "PLUGDOCK_SETTINGS_KEY": fresh},
        "config",
        "--rotate-key",
    )
    assert rotated.returncode == 0 and "re-encrypted 1 secret" in rotated.stdout, rotated.stderr
    with_new = panel.cli_env({"PLUGDOCK_SETTINGS_KEY": fresh}, "config", "cfg")
    assert "api_key = set" in with_new.stdout and "needs configuration" not in with_new.stdout
    with_old = panel.cli("config", "cfg")  # this panel still has the old key file
    assert "does not open with this key" in with_old.stdout

    # The environment overrides a stored value, and the API says so.
    override = panel.cli_env({"PLUGDOCK_PLUGIN_CFG_SENDER": "ENV"}, "config", "cfg", "sender")
    assert override.stdout.startswith('sender = "ENV"  [environment')


@SQLITE
def test_an_upgrade_keeps_values_adds_defaults_and_a_stricter_schema_waits(
    panel: Panel, tmp_path: Path, database_url: str
) -> None:
    admin = panel.client(panel.login())
    admin.post("/api/v1/marketplace/install", json={"plugin_id": "cfg"}).raise_for_status()
    admin.put(
        "/api/v1/plugins/cfg/settings",
        json={
            "values": {
                "gateway_url": "https://gw.example/",
                "api_key": SECRET,
                "sender": "LONGSENDER",
            }
        },
    ).raise_for_status()
    stricter = json.loads(json.dumps(SCHEMA))
    stricter["properties"]["sender"] |= {"maxLength": 4, "default": "ACME"}
    stricter["properties"]["region"] = {"type": "string", "enum": ["eu", "us"], "default": "eu"}
    pack_into(cfg_plugin(tmp_path / "src2", "1.1.0", stricter), tmp_path / "modules")
    upgraded = admin.post("/api/v1/marketplace/upgrade", json={"plugin_id": "cfg"})
    assert upgraded.status_code == 200, upgraded.text
    shown = settings_of(admin)
    assert shown["api_key"]["set"] and shown["region"]["value"] == "eu"
    assert shown["sender"]["value"] == "LONGSENDER" and shown["sender"]["problem"]
    refused = admin.get("/api/v1/cfg/values")
    assert refused.status_code == 503 and "sender: its value is not valid" in refused.text
    assert "LONGSENDER" not in refused.text  # any caller reads it: names, never values
    admin.put("/api/v1/plugins/cfg/settings", json={"values": {"sender": "ACME"}})
    config = admin.get("/api/v1/cfg/values").json()["config"]
    assert config["api_key"] == SECRET and config["region"] == "eu" and config["sender"] == "ACME"

    # Uninstall removes the values; its backup keeps them, the secret still sealed.
    gone = admin.delete("/api/v1/marketplace/uninstall/cfg")
    assert gone.status_code == 200, gone.text
    backup = tmp_path / "instance" / "backups" / gone.json()["backup"]
    with zipfile.ZipFile(backup) as archive:
        kept = {r["name"]: r for r in json.loads(archive.read("settings.json"))}
        assert SECRET not in archive.read("settings.json").decode()
    assert kept["api_key"]["secret"] is True and json.loads(kept["sender"]["value"]) == "ACME"
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT COUNT(*) FROM plugdock_plugin_settings")).scalar()
    finally:
        engine.dispose()
    assert rows == 0

    # install --restore puts the values back: the sealed key opens again.
    restored = panel.cli("install", "cfg", "--restore", str(backup))
    assert restored.returncode == 0, restored.stderr
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        answer = admin.get("/api/v1/cfg/values")
        if answer.status_code == 200:
            break
        time.sleep(0.05)
    assert answer.status_code == 200, answer.text
    assert answer.json()["config"]["api_key"] == SECRET


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
@pytest.mark.processes
def test_a_plugin_process_reads_its_own_settings_through_the_panel(
    tmp_path: Path, database_url: str
) -> None:
    pack_into(cfg_plugin(tmp_path / "src"), tmp_path / "modules")
    panel = start_panel(tmp_path, database_url, extra_env={"PLUGDOCK_ISOLATION": "process"})
    try:
        admin = panel.client(panel.login())
        installed = admin.post("/api/v1/marketplace/install", json={"plugin_id": "cfg"})
        assert installed.status_code == 200, installed.text
        assert admin.get("/api/v1/cfg/values").status_code == 503
        admin.put(
            "/api/v1/plugins/cfg/settings",
            json={"values": {"gateway_url": "https://gw.example/", "api_key": SECRET}},
        ).raise_for_status()
        answer = admin.get("/api/v1/cfg/values")
        assert answer.status_code == 200, answer.text
        assert answer.json()["config"] == {
            "gateway_url": "https://gw.example/",
            "api_key": SECRET,
            "sender": "plugdock",
            "retries": 1,
        }
        # on_settings_changed runs in the plugin's process, once per change (the first
        # configuration may or may not have been seen as a change: the process started
        # then, and its first look may have come after it).
        admin.put("/api/v1/plugins/cfg/settings", json={"values": {"sender": "ACME"}})
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and "ACME" not in admin.get("/api/v1/cfg/hooked").json():
            time.sleep(0.1)
        time.sleep(1.0)  # a second run for the same change would show by now
        hooked = admin.get("/api/v1/cfg/hooked").json()
        assert hooked[-1] == "ACME" and hooked.count("ACME") == 1, hooked
    finally:
        panel.stop()
