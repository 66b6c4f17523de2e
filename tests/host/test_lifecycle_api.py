"""A plugin's life over real HTTP: disable/enable, who may change things, uploads (good,
tampered, oversized, not a zip), the plans, and update offers in the catalog."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, inspect, text

from panel import Panel, start_panel
from plugdock.config import INPROCESS_NOTICE
from plugdock.instance import scratch
from support import CHATBOT, CHATBOT_1_0, CHATBOT_1_0_TABLES, detail, make_plugin, pack_into

# Every test talks to a `plugdock serve` on loopback.
pytestmark = pytest.mark.server

SQLITE = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
MARKET = "/api/v1/marketplace"
PACKAGE_LIMIT = 1_000_000  # PLUGDOCK_MAX_PACKAGE_BYTES of the panel under test


@pytest.fixture
def panel(tmp_path: Path, database_url: str) -> Iterator[Panel]:
    """A running panel whose source offers the chatbot 1.0.0 and 1.1.0."""
    pack_into(CHATBOT_1_0, tmp_path / "modules")
    pack_into(CHATBOT, tmp_path / "modules")
    running = start_panel(
        tmp_path, database_url, extra_env={"PLUGDOCK_MAX_PACKAGE_BYTES": str(PACKAGE_LIMIT)}
    )
    yield running
    running.stop()


def query(database_url: str, sql: str) -> list[tuple]:
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text(sql))]
    finally:
        engine.dispose()


def tables(database_url: str) -> set[str]:
    engine = create_engine(database_url)
    try:
        return {t.lower() for t in inspect(engine).get_table_names()}
    finally:
        engine.dispose()


def frontend_ids(client: httpx.Client) -> list[str]:
    answer = client.get("/api/v1/frontend/plugins")
    assert answer.status_code == 200, answer.text
    return [p["id"] for p in answer.json()]


def start_chat(visitor: httpx.Client) -> httpx.Response:
    return visitor.post(
        "/api/v1/chat/sessions",
        json={"guest_name": "Zoë", "guest_email": "zoe@example.com", "guest_phone": None},
    )


def installed(admin: httpx.Client) -> dict[str, dict]:
    answer = admin.get(f"{MARKET}/installed")
    assert answer.status_code == 200, answer.text
    return {p["id"]: p for p in answer.json()}


def test_disable_hides_routes_and_pages_keeps_rows_and_enable_runs_no_sql(
    panel: Panel, database_url: str
) -> None:
    admin, visitor = panel.client(panel.login()), panel.client()
    assert admin.post(f"{MARKET}/install", json={"plugin_id": "ai_chatbot"}).status_code == 200
    chat = start_chat(visitor)
    assert chat.status_code == 201, chat.text
    session = chat.json()
    said = visitor.post(
        f"/api/v1/chat/sessions/{session['session_id']}/messages",
        json={"content": "Still there after a disable?"},
        headers={"X-Chat-Token": session["token"]},
    )
    assert said.status_code == 201, said.text
    assert "ai_chatbot" in frontend_ids(visitor)
    data_sql = "SELECT id, guest_name FROM chat_sessions ORDER BY id"
    kept = query(database_url, data_sql)
    messages = query(database_url, "SELECT id, content FROM chat_messages ORDER BY id")
    applied = query(database_url, "SELECT * FROM plugdock_plugin_migrations ORDER BY version")
    assert kept and len(messages) >= 2 and applied  # the greeting, the question, the reply

    off = admin.post(f"{MARKET}/disable/ai_chatbot")

    assert off.status_code == 200, off.text
    assert off.json() | {"message": ""} == {
        "message": "",
        "plugin_id": "ai_chatbot",
        "enabled": False,
        "replicas": {"converged": 1, "total": 1},  # the answer waited for every replica
    }
    assert start_chat(visitor).status_code == 404
    assert admin.get("/api/v1/chat/sessions").status_code == 404
    assert "/api/v1/chat/sessions" not in admin.get("/openapi.json").json()["paths"]
    assert "ai_chatbot" not in frontend_ids(visitor)
    row = installed(admin)["ai_chatbot"]
    assert (row["enabled"], row["state"], row["routes"]) == (False, "disabled", [])
    [item] = [i for i in admin.get(f"{MARKET}/plugins").json() if i["id"] == "ai_chatbot"]
    assert (item["installed"], item["enabled"], item["state"]) == (True, False, "disabled")
    assert query(database_url, data_sql) == kept  # tables and rows stay
    assert tables(database_url) >= CHATBOT_1_0_TABLES | {"chat_ratings"}
    again = admin.post(f"{MARKET}/disable/ai_chatbot")
    assert again.status_code == 409 and "already disabled" in detail(again)

    on = admin.post(f"{MARKET}/enable/ai_chatbot")

    assert on.status_code == 200, on.text
    assert on.json()["enabled"] is True
    assert "ai_chatbot" in frontend_ids(visitor)
    listed = admin.get("/api/v1/chat/sessions")
    assert listed.status_code == 200, listed.text
    assert [s["id"] for s in listed.json()["items"]] == [session["session_id"]]
    assert installed(admin)["ai_chatbot"]["state"] == "mounted"
    # No SQL of the plugin ran: its migrations are as before, its old rows untouched.
    assert (
        query(database_url, "SELECT * FROM plugdock_plugin_migrations ORDER BY version") == applied
    )
    assert query(database_url, "SELECT id, content FROM chat_messages ORDER BY id") == messages
    assert start_chat(visitor).status_code == 201
    actions = query(
        database_url,
        "SELECT action FROM plugdock_audit_log WHERE plugin_id = 'ai_chatbot' ORDER BY id",
    )
    assert [a for (a,) in actions][-2:] == ["disable", "enable"]


@SQLITE
def test_only_admins_may_change_or_plan(panel: Panel, tmp_path: Path, database_url: str) -> None:
    admin = panel.client(panel.login())
    made = panel.cli(
        "user", "create", "bob", "--role", "user", "--password-stdin", stdin="bob-password\n"
    )
    assert made.returncode == 0, made.stderr
    bob = panel.client(panel.login("bob", "bob-password"))
    nobody = panel.client()
    assert (
        admin.post(f"{MARKET}/install", json={"plugin_id": "ai_chatbot", "version": "1.0.0"})
    ).status_code == 200
    package = pack_into(make_plugin(tmp_path / "src", "uploaded"), tmp_path / "zips").read_bytes()
    before = installed(admin)

    attempts = [
        ("POST", f"{MARKET}/install", {"json": {"plugin_id": "ai_chatbot"}}),
        ("POST", f"{MARKET}/upgrade", {"json": {"plugin_id": "ai_chatbot", "version": None}}),
        ("POST", f"{MARKET}/disable/ai_chatbot", {}),
        ("POST", f"{MARKET}/enable/ai_chatbot", {}),
        ("DELETE", f"{MARKET}/uninstall/ai_chatbot", {}),
        ("DELETE", f"{MARKET}/uninstall/ai_chatbot?backup=false", {}),
        ("POST", f"{MARKET}/upload", {"files": {"file": ("u.zip", package, "application/zip")}}),
        ("GET", f"{MARKET}/plan/install/ai_chatbot", {}),
        ("GET", f"{MARKET}/plan/upgrade/ai_chatbot", {}),
        ("GET", f"{MARKET}/plan/uninstall/ai_chatbot", {}),
    ]
    for method, url, kwargs in attempts:
        forbidden = bob.request(method, url, **kwargs)
        assert forbidden.status_code == 403, (method, url, forbidden.text)
        assert "detail" in forbidden.json()
        assert nobody.request(method, url, **kwargs).status_code == 401, (method, url)

    after = installed(admin)
    changed = {
        (plugin_id, field): (was, after.get(plugin_id, {}).get(field))
        for plugin_id, fields in before.items()
        for field, was in fields.items()
        if after.get(plugin_id, {}).get(field) != was
    }
    assert after.keys() == before.keys() and not changed, changed
    assert start_chat(panel.client()).status_code == 201  # still served, still 1.0.0
    assert not list((tmp_path / "instance" / "backups").glob("*.zip"))
    # A signed-in user may read the catalog (no change there).
    assert bob.get(f"{MARKET}/plugins").status_code == 200


def tamper(package: Path, target: Path, member: str) -> Path:
    """A copy of ``package`` with one byte of ``member`` changed (its checksum kept)."""
    with zipfile.ZipFile(package) as old, zipfile.ZipFile(target, "w") as new:
        for info in old.infolist():
            data = old.read(info)
            if info.filename == member:
                data = data[:10] + bytes([data[10] ^ 0x01]) + data[11:]
            new.writestr(info, data)
    return target


def upload(admin: httpx.Client, data: bytes, name: str = "package.zip") -> httpx.Response:
    return admin.post(f"{MARKET}/upload", files={"file": (name, data, "application/zip")})


def staging_uploads(tmp_path: Path) -> list[str]:
    staging = tmp_path / "instance" / "staging"
    return sorted(p.name for p in staging.iterdir()) if staging.exists() else []


@SQLITE
def test_upload_installs_upgrades_and_refuses_bad_packages(
    panel: Panel, tmp_path: Path, database_url: str
) -> None:
    admin = panel.client(panel.login())
    zips = tmp_path / "uploads"  # not the panel's source: the upload is all it gets
    old = pack_into(CHATBOT_1_0, zips / "old")
    new = pack_into(CHATBOT, zips / "new")

    # A tampered package: one byte of a file changed, the checksums file left as it was.
    bad = tamper(new, tmp_path / "tampered.zip", "backend/routes.py")
    refused = upload(admin, bad.read_bytes())
    assert refused.status_code == 422, refused.text
    assert "backend/routes.py" in detail(refused)
    assert "checksum" in detail(refused).lower() or "sha256" in detail(refused)
    assert installed(admin) == {}
    assert not tables(database_url) & CHATBOT_1_0_TABLES

    # Not a zip at all.
    junk = upload(admin, b"this is not a zip\n" * 10, "notes.zip")
    assert 400 <= junk.status_code < 500, junk.text
    assert "zip" in detail(junk)
    no_file = admin.post(f"{MARKET}/upload", data={"other": "x"})
    assert no_file.status_code == 422
    assert installed(admin) == {}
    assert staging_uploads(tmp_path) == []

    # A good package installs, a newer one upgrades in place.
    first = upload(admin, old.read_bytes())
    assert first.status_code == 200, first.text
    assert (first.json()["operation"], first.json()["version"]) == ("install", "1.0.0")
    assert "/api/v1/chat/sessions" in first.json()["routes"]
    assert start_chat(panel.client()).status_code == 201
    second = upload(admin, new.read_bytes())
    assert second.status_code == 200, second.text
    body = second.json()
    assert (body["operation"], body["from_version"], body["version"]) == (
        "upgrade",
        "1.0.0",
        "1.1.0",
    )
    assert body["steps"] == ["1.1.0"]
    # The chat begun on 1.0.0 (its greeting) is counted by 1.1.0's upgrade step.
    assert query(database_url, "SELECT message_count FROM chat_sessions") == [(1,)]
    assert installed(admin)["ai_chatbot"]["version"] == "1.1.0"
    # The same version again, and an older one, are refused; 1.1.0 stays.
    assert upload(admin, new.read_bytes()).status_code == 409
    downgrade = upload(admin, old.read_bytes())
    assert downgrade.status_code == 422 and "downgrade" in detail(downgrade)
    assert installed(admin)["ai_chatbot"]["version"] == "1.1.0"
    assert staging_uploads(tmp_path) == []


@SQLITE
def test_a_worker_killed_during_an_upload_leaves_nothing_behind(
    panel: Panel, tmp_path: Path, database_url: str
) -> None:
    """The upload is saved before its install takes the operation lock, outside staging; a
    worker killed then (here: while a CLI install holds the lock) left it for good. The next
    command removes it, and only once its process is gone; doctor is clean."""
    admin = panel.client(panel.login())
    package = pack_into(make_plugin(tmp_path / "src", "notes"), tmp_path / "zips")
    uploads = tmp_path / "instance" / "uploads"
    release = tmp_path / "release"
    holder = subprocess.Popen(  # holds the operation lock until released
        [sys.executable, "-m", "plugdock", "install", "ai_chatbot"],
        env=panel.env | {"PLUGDOCK_FAILPOINTS": f"install.staging_created=wait:{release}"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )

    def send() -> None:
        with contextlib.suppress(httpx.HTTPError):  # no answer comes: the worker dies
            upload(admin, package.read_bytes())

    sender = threading.Thread(target=send, daemon=True)
    try:
        deadline = time.monotonic() + 60
        while not Path(f"{release}.reached").exists():
            assert holder.poll() is None and time.monotonic() < deadline, holder.stdout
            time.sleep(0.02)
        sender.start()
        while not list(uploads.glob("*/package.zip")):  # saved; the install waits for the lock
            assert time.monotonic() < deadline, panel.output()
            time.sleep(0.02)
        assert scratch.dead(uploads) == []  # a live worker's upload is not debris
        panel.process.kill()
        panel.process.wait()
        assert len(scratch.dead(uploads)) == 1
    finally:
        release.touch()
        assert holder.wait(timeout=120) == 0, holder.stdout.read() if holder.stdout else ""

    doctor = panel.cli("doctor")
    assert doctor.returncode == 0, doctor.stderr
    assert "removed 1 upload" in doctor.stderr
    assert list(uploads.iterdir()) == []


@SQLITE
def test_oversized_uploads_are_413_and_install_nothing(
    panel: Panel, tmp_path: Path, database_url: str
) -> None:
    admin = panel.client(panel.login())
    big = make_plugin(tmp_path / "src", "bulky", extra_files={"backend/blob.py": "# padding\n"})
    (big / "backend" / "blob.py").write_bytes(b"#" + os.urandom(PACKAGE_LIMIT).hex().encode())
    package = pack_into(big, tmp_path / "zips").read_bytes()
    assert len(package) > PACKAGE_LIMIT + 64 * 1024

    declared = upload(admin, package)
    assert declared.status_code == 413, declared.text
    assert "too large" in detail(declared)

    # Without a Content-Length (chunked), cut as it streams.
    boundary = "plugdockboundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="b.zip"\r\n'
        "Content-Type: application/zip\r\n\r\n"
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()

    def chunks() -> Iterator[bytes]:
        yield head
        for start in range(0, len(package), 64 * 1024):
            yield package[start : start + 64 * 1024]
        yield tail

    streamed = admin.post(
        f"{MARKET}/upload",
        content=chunks(),
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert streamed.status_code == 413, streamed.text

    # Just over the package limit, inside the multipart slack: still 413, not accepted.
    just_over = io.BytesIO(package[: PACKAGE_LIMIT + 1]).getvalue()
    over = upload(admin, just_over)
    assert over.status_code == 413, over.text
    assert str(PACKAGE_LIMIT) in detail(over)

    assert installed(admin) == {}
    assert "bulky_notes" not in tables(database_url)
    assert staging_uploads(tmp_path) == []
    assert start_chat(panel.client()).status_code == 404
    assert admin.get("/healthz").status_code == 200


@SQLITE
def test_plans_answer_as_the_contract_says(panel: Panel, tmp_path: Path) -> None:
    admin = panel.client(panel.login())
    needy = make_plugin(
        tmp_path / "src", "needy", metadata={"dependencies": {"ai_chatbot": ">=1.0.0,<2"}}
    )
    pack_into(needy, tmp_path / "modules")

    plan = admin.get(f"{MARKET}/plan/install/needy")
    assert plan.status_code == 200, plan.text
    inprocess = os.environ.get("PLUGDOCK_ISOLATION", "inprocess") == "inprocess"
    assert plan.json() == {
        "full_rights": INPROCESS_NOTICE if inprocess else None,  # what inprocess means
        "plugin_id": "needy",
        "version": "1.0.0",
        "steps": [
            {
                "plugin_id": "ai_chatbot",
                "version": "1.1.0",
                "reason": "needed by needy (>=1.0.0,<2)",
                "permissions": [],
                "permission_descriptions": [],
            },
            {
                "plugin_id": "needy",
                "version": "1.0.0",
                "reason": "requested",
                "permissions": [],
                "permission_descriptions": [],
            },
        ],
    }
    pinned = admin.get(f"{MARKET}/plan/install/ai_chatbot", params={"version": "1.0.0"}).json()
    assert pinned["version"] == "1.0.0"
    assert pinned["steps"] == [
        {
            "plugin_id": "ai_chatbot",
            "version": "1.0.0",
            "reason": "requested",
            "permissions": [],
            "permission_descriptions": [],
        }
    ]
    assert admin.get(f"{MARKET}/plan/install/nothing_here").status_code == 404
    assert admin.get(f"{MARKET}/plan/install/Bad-Id").status_code == 422
    assert admin.get(f"{MARKET}/plan/install/needy", params={"version": "x"}).status_code == 422
    assert admin.get(f"{MARKET}/plan/upgrade/ai_chatbot").status_code == 404  # not installed
    assert admin.get(f"{MARKET}/plan/uninstall/ai_chatbot").status_code == 404
    assert installed(admin) == {}  # plans change nothing

    # Dependencies first, one call.
    both = admin.post(f"{MARKET}/install", json={"plugin_id": "ai_chatbot", "version": "1.0.0"})
    assert both.status_code == 200, both.text
    chat = start_chat(panel.client())
    assert chat.status_code == 201
    done = admin.post(f"{MARKET}/install", json={"plugin_id": "needy"})
    assert done.status_code == 200, done.text
    assert done.json()["installed"] == ["needy"]  # ai_chatbot 1.0.0 was there already

    upgrade = admin.get(f"{MARKET}/plan/upgrade/ai_chatbot")
    assert upgrade.status_code == 200, upgrade.text
    body = upgrade.json()
    assert {k: body[k] for k in ("plugin_id", "from_version", "version", "steps")} == {
        "plugin_id": "ai_chatbot",
        "from_version": "1.0.0",
        "version": "1.1.0",
        "steps": ["1.1.0"],
    }
    assert (body["compatible"], body["problem"]) == (True, None)
    assert "1.1.0" in body["changelog"]
    assert admin.get(f"{MARKET}/plan/upgrade/needy").status_code in (400, 409)  # newest already

    gone = admin.get(f"{MARKET}/plan/uninstall/ai_chatbot")
    assert gone.status_code == 200, gone.text
    body = gone.json()
    assert sorted(body["tables"], key=lambda t: t["name"]) == [
        {"name": "chat_messages", "rows": 1},  # the bot's greeting
        {"name": "chat_sessions", "rows": 1},
    ]
    assert body | {"tables": []} == {
        "plugin_id": "ai_chatbot",
        "version": "1.0.0",
        "tables": [],
        "dependents": ["needy"],
        "backup": True,
    }
    blocked = admin.delete(f"{MARKET}/uninstall/ai_chatbot")
    assert blocked.status_code in (400, 409) and "needy" in detail(blocked)
    assert set(installed(admin)) == {"ai_chatbot", "needy"}


@SQLITE
def test_catalog_offers_updates_and_says_when_the_core_cannot_take_one(
    panel: Panel, tmp_path: Path
) -> None:
    admin = panel.client(panel.login())
    modules = tmp_path / "modules"
    pack_into(make_plugin(tmp_path / "src", "widget", "1.0.0"), modules)
    pack_into(
        make_plugin(tmp_path / "src", "widget", "2.0.0", metadata={"requires": ">=99.0.0"}), modules
    )
    for plugin_id, version in (("ai_chatbot", "1.0.0"), ("widget", "1.0.0")):
        answer = admin.post(f"{MARKET}/install", json={"plugin_id": plugin_id, "version": version})
        assert answer.status_code == 200, answer.text

    catalog = {i["id"]: i for i in admin.get(f"{MARKET}/plugins").json()}
    chatbot = catalog["ai_chatbot"]
    assert (chatbot["installed_version"], chatbot["latest"]) == ("1.0.0", "1.1.0")
    assert (chatbot["update_available"], chatbot["update_compatible"]) == ("1.1.0", True)
    assert chatbot["update_problem"] is None
    widget = catalog["widget"]
    assert (widget["update_available"], widget["update_compatible"]) == ("2.0.0", False)
    assert "needs plugdock >=99.0.0" in widget["update_problem"]
    assert admin.get(f"{MARKET}/plugins/widget").json() == widget
    rows = installed(admin)
    assert (rows["ai_chatbot"]["update_available"], rows["ai_chatbot"]["update_compatible"]) == (
        "1.1.0",
        True,
    )
    assert rows["widget"]["update_compatible"] is False
    assert "needs plugdock" in rows["widget"]["update_problem"]
    plan = admin.get(f"{MARKET}/plan/upgrade/widget").json()
    assert (plan["compatible"], plan["version"]) == (False, "2.0.0")
    assert "needs plugdock >=99.0.0" in plan["problem"]

    refused = admin.post(f"{MARKET}/upgrade", json={"plugin_id": "widget", "version": None})
    assert refused.status_code == 422, refused.text
    assert "needs plugdock >=99.0.0" in detail(refused)
    assert installed(admin)["widget"]["version"] == "1.0.0"

    # The offered update goes through; afterwards nothing is offered.
    upgraded = admin.post(f"{MARKET}/upgrade", json={"plugin_id": "ai_chatbot"})
    assert upgraded.status_code == 200, upgraded.text
    after = admin.get(f"{MARKET}/plugins/ai_chatbot").json()
    assert (after["installed_version"], after["update_available"]) == ("1.1.0", None)
    assert after["update_compatible"] is False and after["update_problem"] is None
    refusals = {
        ("ai_chatbot", None): 409,  # the newest is installed
        ("ai_chatbot", "1.0.0"): 422,  # a downgrade
        ("ai_chatbot", "9.9.9"): 404,  # not offered
        ("needy_x", None): 404,  # not installed
    }
    for (plugin_id, version), status in refusals.items():
        answer = admin.post(f"{MARKET}/upgrade", json={"plugin_id": plugin_id, "version": version})
        assert answer.status_code == status, (plugin_id, version, answer.text)
        assert answer.json()["detail"]
    assert installed(admin)["ai_chatbot"]["version"] == "1.1.0"


@SQLITE
def test_a_failed_dependency_plan_serves_nothing_and_can_be_retried(
    panel: Panel, tmp_path: Path, database_url: str
) -> None:
    admin = panel.client(panel.login())
    modules = tmp_path / "modules"
    pack_into(make_plugin(tmp_path / "src", "widget"), modules)
    failing = make_plugin(
        tmp_path / "src",
        "needs_widget",
        metadata={"dependencies": {"widget": ">=1.0.0"}},
        extra_files={
            "backend/__init__.py": "from .routes import router\n\n\n"
            "def on_install(ctx):\n    raise RuntimeError('on_install refuses')\n"
        },
    )
    pack_into(failing, modules)

    refused = admin.post(f"{MARKET}/install", json={"plugin_id": "needs_widget"})

    assert refused.status_code == 422, refused.text
    assert "on_install refuses" in detail(refused)
    assert installed(admin) == {}
    assert panel.client().get("/api/v1/widget/ping").status_code == 404
    assert not tables(database_url) & {"widget_notes", "needs_widget_notes"}
    # Another plugin needing it installs both in one call, and both serve at once
    # (nothing stale was left by the failed plan).
    uses = make_plugin(
        tmp_path / "src", "uses_widget", metadata={"dependencies": {"widget": ">=1.0.0"}}
    )
    pack_into(uses, modules)
    both = admin.post(f"{MARKET}/install", json={"plugin_id": "uses_widget"})
    assert both.status_code == 200, both.text
    assert both.json()["installed"] == ["widget", "uses_widget"]
    assert "with widget" in both.json()["message"]
    assert panel.client().get("/api/v1/widget/ping").json() == {"pong": True}
    assert panel.client().get("/api/v1/uses-widget/ping").json() == {"pong": True}


@SQLITE
def test_a_disabled_plugin_upgrades_stays_disabled_and_uninstalls_with_a_backup(
    panel: Panel, tmp_path: Path
) -> None:
    admin, visitor = panel.client(panel.login()), panel.client()
    answer = admin.post(f"{MARKET}/install", json={"plugin_id": "ai_chatbot", "version": "1.0.0"})
    assert answer.status_code == 200, answer.text
    chat = start_chat(visitor).json()
    assert admin.post(f"{MARKET}/disable/ai_chatbot").status_code == 200

    upgraded = admin.post(f"{MARKET}/upgrade", json={"plugin_id": "ai_chatbot"})

    assert upgraded.status_code == 200, upgraded.text
    assert (upgraded.json()["version"], upgraded.json()["routes"]) == ("1.1.0", [])
    row = installed(admin)["ai_chatbot"]
    assert (row["version"], row["enabled"], row["state"]) == ("1.1.0", False, "disabled")
    rate = f"/api/v1/chat/sessions/{chat['session_id']}/rating"
    stars = {"json": {"stars": 5}, "headers": {"X-Chat-Token": chat["token"]}}
    assert visitor.post(rate, **stars).status_code == 404
    assert "ai_chatbot" not in frontend_ids(visitor)

    assert admin.post(f"{MARKET}/enable/ai_chatbot").status_code == 200
    rated = visitor.post(rate, **stars)  # a 1.1.0 route, on the chat begun on 1.0.0
    assert rated.status_code in (200, 201), rated.text
    shells = {p["id"]: p for p in admin.get("/api/v1/frontend/plugins").json()}
    assert shells["ai_chatbot"]["version"] == "1.1.0"

    gone = admin.delete(f"{MARKET}/uninstall/ai_chatbot")  # a backup by default
    assert gone.status_code == 200, gone.text
    name = gone.json()["backup"]
    assert name and name.startswith("ai_chatbot-1.1.0-") and name in gone.json()["message"]
    assert (tmp_path / "instance" / "backups" / name).is_file()
    assert visitor.post(rate, **stars).status_code == 404
    again = admin.post(f"{MARKET}/install", json={"plugin_id": "ai_chatbot"})
    assert again.status_code == 200, again.text
    assert admin.post(f"{MARKET}/disable/ai_chatbot").status_code == 200  # uninstalled disabled
    without = admin.delete(f"{MARKET}/uninstall/ai_chatbot", params={"backup": "false"})
    assert without.status_code == 200 and without.json()["backup"] is None
    assert [p.name for p in (tmp_path / "instance" / "backups").iterdir()] == [name]


@SQLITE
def test_disable_and_enable_reach_every_worker(tmp_path: Path, database_url: str) -> None:
    """Two workers: from the moment disable answers (API) or returns (CLI), no worker serves
    the plugin's routes or lists its page; enable brings both back everywhere."""
    from panel import fresh_get, whoami_panel

    panel = whoami_panel(tmp_path, database_url, workers=2)
    try:
        pack_into(CHATBOT, tmp_path / "modules")
        admin = panel.client(panel.login())
        for plugin_id in ("whoami", "ai_chatbot"):
            answer = admin.post(f"{MARKET}/install", json={"plugin_id": plugin_id})
            assert answer.status_code == 200, answer.text

        def served() -> tuple[set[int], set[bool]]:
            pids, listed = set(), set()
            for _ in range(20):
                pid = fresh_get(f"{panel.url}/api/v1/whoami/pid")
                if pid.status_code == 200:
                    pids.add(pid.json()["pid"])
                else:
                    assert pid.status_code == 404, pid.text
                    pids.add(0)
                pages = fresh_get(f"{panel.url}/api/v1/frontend/plugins").json()
                listed.add(any(p["id"] == "ai_chatbot" for p in pages))
            return pids, listed

        pids, listed = served()
        assert len(pids) == 2 and 0 not in pids and listed == {True}, pids

        for plugin_id in ("whoami", "ai_chatbot"):
            assert admin.post(f"{MARKET}/disable/{plugin_id}").status_code == 200
        assert served() == ({0}, {False})

        for plugin_id in ("whoami", "ai_chatbot"):  # the CLI, with the panel running
            enabled = panel.cli("enable", plugin_id)
            assert enabled.returncode == 0, enabled.stderr
        pids, listed = served()
        assert len(pids) == 2 and 0 not in pids and listed == {True}, pids

        disabled = panel.cli("disable", "whoami")
        assert disabled.returncode == 0, disabled.stderr
        assert served()[0] == {0}
    finally:
        panel.stop()


def answer_to_a_partial_upload(panel: Panel, token: str | None) -> bytes:
    """Send an upload's headers and 100 kB of a declared 900 kB body (under the limit); wait.

    Refused callers must be answered without the panel reading (and spooling to disk) a
    body of up to the package limit first; a panel that waits for the rest never answers.
    """
    import socket

    host, port = panel.url.removeprefix("http://").split(":")
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(
            f"POST {MARKET}/upload HTTP/1.1\r\nHost: {host}\r\n{auth}"
            "Content-Type: multipart/form-data; boundary=b\r\nContent-Length: 900000\r\n\r\n"
            '--b\r\nContent-Disposition: form-data; name="file"; filename="a.zip"\r\n\r\n'.encode()
            + b"x" * 100_000
        )
        sock.settimeout(30)  # generous for a loaded machine; a panel reading first never answers
        try:
            return sock.recv(100)
        except TimeoutError:
            return b"no answer: the panel waits for the whole body"


@SQLITE
def test_an_upload_is_refused_before_its_body_is_read(panel: Panel) -> None:
    made = panel.cli(
        "user", "create", "bob", "--role", "user", "--password-stdin", stdin="bob-password\n"
    )
    assert made.returncode == 0, made.stderr
    assert answer_to_a_partial_upload(panel, None).startswith(b"HTTP/1.1 401")
    bob = panel.login("bob", "bob-password")
    assert answer_to_a_partial_upload(panel, bob).startswith(b"HTTP/1.1 403")
