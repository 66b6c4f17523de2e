"""Host events end to end in an embedding app: declared, emitted in the host's transaction,
handled by a plugin in the panel or in its own sandboxed process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fastapi import FastAPI, Header, HTTPException
from fastapi.testclient import TestClient
from pydantic import BaseModel
from sqlalchemy import create_engine, text, update

from plugdock import HostAuth, HostUser, PluginHost
from plugdock.config import load_settings
from plugdock.core.db import event_deliveries
from support import make_plugin, pack_into


class Other(BaseModel):
    invoice_id: int


class InvoicePaid(BaseModel):
    """An invoice was paid in full."""

    invoice_id: int
    amount: str


HANDLERS = (
    "from sqlalchemy import text\n\nfrom plugdock import sdk\n\n\n"
    "def on_paid(event: sdk.Event) -> None:\n"
    "    if event.payload['invoice_id'] == 13:\n"
    "        raise RuntimeError('unlucky invoice')\n"
    "    with sdk.session() as db:\n"
    "        db.execute(text('INSERT INTO receipts_sent (delivery, invoice, version) "
    "VALUES (:d, :i, :v)'), {'d': event.delivery_id, 'i': event.payload['invoice_id'],"
    " 'v': event.version})\n"
)
TABLE = (
    "CREATE TABLE receipts_sent (id INTEGER PRIMARY KEY AUTOINCREMENT, delivery INTEGER NOT NULL,"
    " invoice INTEGER NOT NULL, version INTEGER NOT NULL);\n"
)
USERS = {
    "alice-token": HostUser(id=1, username="alice", is_admin=True),
    "bob-token": HostUser(id=2, username="bob"),
}


def current_user(authorization: str | None = Header(None)) -> HostUser | None:
    if authorization is None:
        return None
    user = USERS.get(authorization.removeprefix("Bearer "))
    if user is None:
        raise HTTPException(401, "unknown token")
    return user


def build(tmp_path: Path, url: str) -> tuple[FastAPI, PluginHost]:
    app = FastAPI()
    settings = load_settings(home=tmp_path / "instance", plugin_local_dir=tmp_path / "modules")
    host = PluginHost(HostAuth(current_user=current_user), settings=settings, database_url=url)
    host.events.declare("invoice.paid", InvoicePaid)
    host.mount(app)
    return app, host


def receipts(url: str) -> list[tuple[int, int]]:
    """(invoice, version) of every receipt, by invoice: events without a key have no order."""
    with create_engine(url).connect() as conn:
        rows = conn.execute(text("SELECT invoice, version FROM receipts_sent ORDER BY invoice"))
        return [tuple(r) for r in rows]


def wait_for(check: object, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError("not delivered in time")


ALICE = {"Authorization": "Bearer alice-token"}


def plugdock(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "plugdock", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    "isolation", ["inprocess", pytest.param("process", marks=pytest.mark.processes)]
)
def test_a_committed_event_reaches_the_plugin_and_a_rolled_back_one_never(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, isolation: str
) -> None:
    monkeypatch.setenv("PLUGDOCK_ISOLATION", isolation)
    receipts_plugin = make_plugin(
        tmp_path / "src",
        "receipts",
        up_sql=TABLE,
        down_sql="DROP TABLE receipts_sent;\n",
        extra_files={"backend/handlers.py": HANDLERS},
        metadata={"events": {"invoice.paid": "handlers:on_paid"}},
    )
    pack_into(receipts_plugin, tmp_path / "modules")
    url = f"sqlite:///{tmp_path / 'host.db'}"
    app, host = build(tmp_path, url)
    with TestClient(app) as client:
        done = client.post(
            "/api/v1/marketplace/install", json={"plugin_id": "receipts"}, headers=ALICE
        )
        assert done.status_code == 200, done.text

        engine = host.engine  # the host's own connection would do the same
        with engine.begin() as conn:
            host.events.emit("invoice.paid", InvoicePaid(invoice_id=1, amount="9.99"), conn=conn)
        with pytest.raises(RuntimeError), engine.begin() as conn:
            host.events.emit("invoice.paid", InvoicePaid(invoice_id=2, amount="1"), conn=conn)
            raise RuntimeError("the host's transaction fails after the emit")
        with engine.begin() as conn:
            host.events.emit("invoice.paid", InvoicePaid(invoice_id=13, amount="1"), conn=conn)
            host.events.emit("invoice.paid", InvoicePaid(invoice_id=3, amount="1"), conn=conn)

        try:
            wait_for(lambda: receipts(url) == [(1, 1), (3, 1)])
        except AssertionError:
            raise AssertionError(receipts(url)) from None
        time.sleep(0.5)
        assert receipts(url) == [(1, 1), (3, 1)]  # never invoice 2 (rolled back), never twice

        points = client.get("/api/v1/extension-points", headers=ALICE)
        assert points.status_code == 200, points.text
        by_name = {point["name"]: point for point in points.json()}
        assert set(by_name) == {
            "invoice.paid",
            "plugin.installed",
            "plugin.upgraded",
            "plugin.uninstalled",
            "plugin.enabled",
            "plugin.disabled",
        }
        paid = by_name["invoice.paid"]
        assert (
            paid["name"] == "invoice.paid" and paid["description"] == "An invoice was paid in full."
        )
        assert paid["subscribers"] == [
            {"plugin_id": "receipts", "handler": "handlers:on_paid", "priority": None}
        ]
        assert "invoice_id" in paid["payload_schema"]["properties"]
        assert (
            client.get(
                "/api/v1/extension-points", headers={"Authorization": "Bearer bob-token"}
            ).status_code
            == 403
        )

        from plugdock.instance import outbox

        with engine.connect() as conn:
            failing = [d for d in outbox.list_deliveries(conn) if d["status"] != "done"]
        assert len(failing) == 1 and "unlucky invoice" in (failing[0]["last_error"] or "")

        # The API the deliveries page reads: admins only; a retry only of a dead one.
        listed = client.get("/api/v1/events/deliveries", headers=ALICE)
        assert listed.status_code == 200, listed.text
        by_id = {d["id"]: d for d in listed.json()}
        unlucky = by_id[failing[0]["id"]]
        assert unlucky["event"] == "invoice.paid" and unlucky["status"] in ("pending", "running")
        assert unlucky["emitted_at"].endswith(("Z", "+00:00"))  # said as UTC
        done_only = client.get("/api/v1/events/deliveries?status=done", headers=ALICE).json()
        assert {d["status"] for d in done_only} == {"done"} and len(done_only) == 2
        bob = {"Authorization": "Bearer bob-token"}
        assert client.get("/api/v1/events/deliveries", headers=bob).status_code == 403
        not_dead = client.post(f"/api/v1/events/deliveries/{unlucky['id']}/retry", headers=ALICE)
        assert not_dead.status_code == 404
        assert client.get("/api/v1/events/deliveries?status=lost", headers=ALICE).status_code == 422

        # The CLI sees what the running host declared, and an admin retries a dead delivery.
        env = os.environ | {
            "PLUGDOCK_HOME": str(tmp_path / "instance"),
            "PLUGIN_LOCAL_DIR": str(tmp_path / "modules"),
            "DATABASE_URL": url,
            "COLUMNS": "250",  # rich's tables, unwrapped
        }
        listed = plugdock(env, "events", "list")
        assert "invoice.paid" in listed.stdout and "receipts" in listed.stdout, listed.stdout
        with engine.begin() as conn:  # as if its retries were used up
            conn.execute(
                update(event_deliveries)
                .where(event_deliveries.c.id == failing[0]["id"])
                .values(status="dead", claimed_until=None)
            )
        dead = plugdock(env, "events", "deliveries", "--dead")
        assert "unlucky invoice" in dead.stdout and str(failing[0]["id"]) in dead.stdout
        assert plugdock(env, "events", "retry", str(failing[0]["id"])).returncode == 0
        with engine.connect() as conn:  # the audit log says who retried what (the CLI: nobody)
            audited = conn.execute(
                text("SELECT actor, detail FROM plugdock_audit_log WHERE action = 'event_retry'")
            ).all()
        assert [(actor, json.loads(detail)) for actor, detail in audited] == [
            (None, {"delivery": failing[0]["id"]})
        ]
        unknown = plugdock(env, "events", "retry", "999999")
        assert unknown.returncode == 1 and "no dead delivery" in unknown.stderr


def test_a_subscription_to_an_undeclared_event_is_refused_at_install(tmp_path: Path) -> None:
    nosy = make_plugin(
        tmp_path / "src",
        "nosy",
        extra_files={"backend/handlers.py": "def on_x(event):\n    pass\n"},
        metadata={"events": {"invoice.paid": "handlers:on_x", "user.deleted": "handlers:on_x"}},
    )
    pack_into(nosy, tmp_path / "modules")
    app, _host = build(tmp_path, f"sqlite:///{tmp_path / 'host.db'}")
    with TestClient(app) as client:
        refused = client.post(
            "/api/v1/marketplace/install", json={"plugin_id": "nosy"}, headers=ALICE
        )
        assert refused.status_code in (400, 422), refused.text
        assert "user.deleted" in refused.text and "does not declare" in refused.text
        assert client.get("/api/v1/marketplace/installed", headers=ALICE).json() == []


def test_emit_checks_what_it_is_given(tmp_path: Path) -> None:
    from plugdock.errors import PlugdockError

    _app, host = build(tmp_path, f"sqlite:///{tmp_path / 'host.db'}")
    with pytest.raises(PlugdockError, match="not declared"):
        host.events.emit("invoice.void", InvoicePaid(invoice_id=1, amount="1"), conn=None)
    with pytest.raises(PlugdockError, match="must be a InvoicePaid"):
        host.events.emit("invoice.paid", Other(invoice_id=1), conn=None)
    with pytest.raises(PlugdockError, match="declared twice"):
        host.events.declare("invoice.paid", InvoicePaid)
    with pytest.raises(PlugdockError, match="not an event name"):
        host.events.declare("Invoice Paid", InvoicePaid)


WATCHER = (
    "from sqlalchemy import text\n\nfrom plugdock import sdk\n\n\n"
    "def on_installed(event: sdk.Event) -> None:\n"
    "    with sdk.session() as db:\n"
    "        db.execute(text('INSERT INTO watcher_seen (plugin, version, actor) "
    "VALUES (:plugin_id, :version, :actor)'), event.payload)\n"
)


def test_plugdock_tells_plugins_what_was_installed(tmp_path: Path) -> None:
    """plugin.installed & co. are plugdock's own events, in every host, emitted in the
    operation's own transaction."""
    watcher = make_plugin(
        tmp_path / "src",
        "watcher",
        up_sql="CREATE TABLE watcher_seen (plugin TEXT, version TEXT, actor TEXT);\n",
        down_sql="DROP TABLE watcher_seen;\n",
        extra_files={"backend/handlers.py": WATCHER},
        metadata={"events": {"plugin.installed": "handlers:on_installed"}},
    )
    pack_into(watcher, tmp_path / "modules")
    pack_into(make_plugin(tmp_path / "src", "other"), tmp_path / "modules")
    url = f"sqlite:///{tmp_path / 'host.db'}"
    app, _host = build(tmp_path, url)
    with TestClient(app) as client:
        for plugin_id in ("watcher", "other"):
            done = client.post(
                "/api/v1/marketplace/install", json={"plugin_id": plugin_id}, headers=ALICE
            )
            assert done.status_code == 200, done.text

        def seen() -> list[tuple[str, str, str]]:
            with create_engine(url).connect() as conn:
                rows = conn.execute(text("SELECT plugin, version, actor FROM watcher_seen"))
                return sorted(tuple(r) for r in rows)

        # Its own install committed with the event, before it was served to handle it.
        wait_for(lambda: seen() == [("other", "1.0.0", "alice"), ("watcher", "1.0.0", "alice")])


AUDITOR = (
    "from sqlalchemy import text\n\nfrom plugdock import sdk\n\n\n"
    "def on_user(event: sdk.Event) -> None:\n"
    "    with sdk.session() as db:\n"
    "        db.execute(text('INSERT INTO auditor_seen (event, username) VALUES (:e, :u)'),"
    " {'e': event.name, 'u': event.payload['username']})\n"
)


def test_the_panel_emits_its_users_events(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The reference panel is a host that declares user.created and user.signed_in."""
    from plugdock.host.app import create_app
    from support import instance_settings

    monkeypatch.setenv("PLUGDOCK_ADMIN_PASSWORD", "admin-pass-for-tests")
    auditor = make_plugin(
        tmp_path / "src",
        "auditor",
        up_sql="CREATE TABLE auditor_seen (event TEXT, username TEXT);\n",
        down_sql="DROP TABLE auditor_seen;\n",
        extra_files={"backend/handlers.py": AUDITOR},
        metadata={
            "events": {"user.created": "handlers:on_user", "user.signed_in": "handlers:on_user"}
        },
    )
    pack_into(auditor, tmp_path / "modules")
    url = f"sqlite:///{tmp_path / 'panel.db'}"
    with TestClient(create_app(instance_settings(tmp_path, url))) as client:
        login = {"username": "admin", "password": "admin-pass-for-tests"}
        token = client.post("/api/v1/auth/login", json=login).json()["access_token"]
        admin = {"Authorization": f"Bearer {token}"}
        done = client.post(
            "/api/v1/marketplace/install", json={"plugin_id": "auditor"}, headers=admin
        )
        assert done.status_code == 200, done.text
        made = client.post(
            "/api/v1/users",
            json={"username": "carol", "password": "carol-password-1", "role": "user"},
            headers=admin,
        )
        assert made.status_code in (200, 201), made.text
        signed_in = client.post(
            "/api/v1/auth/login", json={"username": "carol", "password": "carol-password-1"}
        )
        assert signed_in.status_code == 200, signed_in.text

        def seen() -> list[tuple[str, str]]:
            with create_engine(url).connect() as conn:
                rows = conn.execute(text("SELECT event, username FROM auditor_seen"))
                return sorted(tuple(r) for r in rows)

        # (The admin's sign-in, a moment before the install, may reach it too: an event goes
        # to the plugins installed when a worker fans it out, a moment after its commit.)
        carol = [("user.created", "carol"), ("user.signed_in", "carol")]
        wait_for(lambda: [row for row in seen() if row[1] == "carol"] == carol)
