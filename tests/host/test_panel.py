"""The panel over real HTTP: auth, the marketplace, and plugin routes appearing and disappearing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect

from panel import Panel, free_port, start_panel
from support import CHATBOT, CHATBOT_TABLES, CHATBOT_VERSION, detail, make_plugin, pack_into

# Every test talks to a `plugdock serve` on loopback.
pytestmark = pytest.mark.server


@pytest.fixture
def panel(tmp_path: Path, database_url: str) -> Iterator[Panel]:
    pack_into(CHATBOT, tmp_path / "modules")
    running = start_panel(tmp_path, database_url)
    yield running
    running.stop()


def router_serving(prefix: str, path: str) -> str:
    """Source of a backend/routes.py whose router serves GET prefix+path."""
    return (
        f"from fastapi import APIRouter\n\nrouter = APIRouter(prefix={prefix!r})\n\n\n"
        f"@router.get({path!r})\ndef served() -> dict:\n    return {{}}\n"
    )


def tables(database_url: str) -> set[str]:
    engine = create_engine(database_url)
    try:
        return {t.lower() for t in inspect(engine).get_table_names()}
    finally:
        engine.dispose()


def test_chatbot_lifecycle_over_http(panel: Panel, database_url: str) -> None:
    admin = panel.client(panel.login())
    visitor = panel.client()

    [item] = admin.get("/api/v1/marketplace/plugins").json()
    assert (item["id"], item["installed"], item["latest"]) == ("ai_chatbot", False, CHATBOT_VERSION)
    assert visitor.post("/api/v1/chat/sessions", json={}).status_code == 404
    assert "/api/v1/chat/sessions" not in admin.get("/openapi.json").json()["paths"]

    installed = admin.post("/api/v1/marketplace/install", json={"plugin_id": "ai_chatbot"})
    assert installed.status_code == 200, installed.text
    body = installed.json()
    assert body["version"] == CHATBOT_VERSION
    assert set(body["tables"]) == CHATBOT_TABLES
    assert "/api/v1/chat/sessions" in body["routes"]
    assert tables(database_url) >= CHATBOT_TABLES

    # The route answers at once, without a restart.
    started = visitor.post(
        "/api/v1/chat/sessions",
        json={"guest_name": "Ada", "guest_email": "ada@example.com", "guest_phone": "+44 20 7946"},
    )
    assert started.status_code == 201, started.text
    session = started.json()
    assert session["greeting"]
    reply = visitor.post(
        f"/api/v1/chat/sessions/{session['session_id']}/messages",
        json={"content": "How much does it cost?"},
        headers={"X-Chat-Token": session["token"]},
    )
    assert reply.status_code == 201, reply.text
    assert reply.json()["reply"]["content"]
    listed = admin.get("/api/v1/chat/sessions").json()
    assert listed["total"] == 1 and listed["items"][0]["guest_email"] == "ada@example.com"
    assert "/api/v1/chat/sessions" in admin.get("/openapi.json").json()["paths"]
    [row] = admin.get("/api/v1/marketplace/installed").json()
    assert (row["id"], row["state"], row["installed_by"]) == ("ai_chatbot", "mounted", "admin")
    assert (
        admin.post("/api/v1/marketplace/install", json={"plugin_id": "ai_chatbot"}).status_code
        == 409
    )

    removed = admin.delete("/api/v1/marketplace/uninstall/ai_chatbot")
    assert removed.status_code == 200, removed.text
    assert set(removed.json()["tables_dropped"]) == CHATBOT_TABLES
    assert visitor.post("/api/v1/chat/sessions", json={}).status_code == 404
    assert admin.get("/api/v1/chat/sessions").status_code == 404
    assert "/api/v1/chat/sessions" not in admin.get("/openapi.json").json()["paths"]
    assert not CHATBOT_TABLES & tables(database_url)
    assert admin.get("/api/v1/marketplace/installed").json() == []

    again = admin.post(
        "/api/v1/marketplace/install", json={"plugin_id": "ai_chatbot", "version": CHATBOT_VERSION}
    )
    assert again.status_code == 200, again.text
    assert (
        visitor.post(
            "/api/v1/chat/sessions", json={"guest_name": "B", "guest_email": "b@example.com"}
        ).status_code
        == 201
    )


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_who_may_install(panel: Panel) -> None:
    created = panel.cli(
        "user", "create", "bob", "--role", "user", "--password-stdin", stdin="bob-password\n"
    )
    assert created.returncode == 0, created.stderr
    bob = panel.client(panel.login("bob", "bob-password"))
    anonymous = panel.client()

    for client, status in ((anonymous, 401), (bob, 403)):
        response = client.post("/api/v1/marketplace/install", json={"plugin_id": "ai_chatbot"})
        assert response.status_code == status
        assert response.json()["detail"]
        response = client.delete("/api/v1/marketplace/uninstall/ai_chatbot")
        assert response.status_code == status
    assert bob.get("/api/v1/marketplace/plugins").status_code == 200  # browsing is fine
    assert anonymous.get("/api/v1/marketplace/plugins").status_code == 401


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_bad_requests_get_clear_4xx(panel: Panel, tmp_path: Path) -> None:
    admin = panel.client(panel.login())
    modules = tmp_path / "modules"
    cases = {
        "unknown plugin": ({"plugin_id": "no_such_plugin"}, 404),
        "unknown version": ({"plugin_id": "ai_chatbot", "version": "9.9.9"}, 404),
        "bad id": ({"plugin_id": "../etc"}, 422),
        "bad version": ({"plugin_id": "ai_chatbot", "version": "latest; rm"}, 422),
        "missing id": ({}, 422),
    }
    for name, (payload, status) in cases.items():
        response = admin.post("/api/v1/marketplace/install", json=payload)
        assert response.status_code == status, (name, response.text)
        assert "detail" in response.json()
    assert admin.delete("/api/v1/marketplace/uninstall/ai_chatbot").status_code == 404
    assert admin.delete("/api/v1/marketplace/uninstall/BAD..id").status_code == 422

    # A package that fails its checks is a 422 naming the problem.
    evil = make_plugin(
        tmp_path / "src",
        "evil",
        up_sql="CREATE TABLE evil_t (id INTEGER);\nDROP TABLE plugdock_users;\n",
    )
    pack_into(evil, modules)
    response = admin.post("/api/v1/marketplace/install", json={"plugin_id": "evil"})
    assert response.status_code == 422 and "DROP TABLE plugdock_users" in detail(response)


@pytest.mark.parametrize("database_url", ["sqlite", "mariadb"], indirect=True)
def test_routes_must_be_declared_and_free(panel: Panel, tmp_path: Path, database_url: str) -> None:
    admin = panel.client(panel.login())
    modules = tmp_path / "modules"
    assert (
        admin.post("/api/v1/marketplace/install", json={"plugin_id": "ai_chatbot"}).status_code
        == 200
    )
    before = admin.get("/openapi.json").json()["paths"]

    undeclared = make_plugin(
        tmp_path / "src", "sneaky", metadata={"backend": {"routes": ["/api/v1/other/*"]}}
    )
    squatter = make_plugin(
        tmp_path / "src",
        "squatter",
        metadata={"backend": {"routes": ["/api/v1/chat/*"]}},
        extra_files={"backend/routes.py": router_serving("/api/v1/chat", "/sessions")},
    )
    hijacker = make_plugin(
        tmp_path / "src",
        "hijacker",
        metadata={"backend": {"routes": ["/api/v1/marketplace/*"]}},
        extra_files={"backend/routes.py": router_serving("/api/v1/marketplace", "/installed")},
    )
    crashing = make_plugin(
        tmp_path / "src",
        "crashing",
        extra_files={
            "backend/__init__.py": "from .routes import router\n\n\n"
            "def on_install(ctx):\n    raise RuntimeError('no thanks')\n"
        },
    )
    broken = make_plugin(
        tmp_path / "src", "broken", extra_files={"backend/__init__.py": "import no_such_module\n"}
    )
    for folder, expected in (
        (undeclared, "outside its declared routes"),
        (squatter, "overlaps ai_chatbot's /api/v1/chat/*"),
        (hijacker, "overlaps the panel's own /api/v1/marketplace/*"),
        (crashing, "no thanks"),
        (broken, "no_such_module"),
    ):
        pack_into(folder, modules)
        plugin_id = folder.name.split("-")[0]
        response = admin.post("/api/v1/marketplace/install", json={"plugin_id": plugin_id})
        assert response.status_code == 422, response.text
        assert expected in detail(response)
        assert f"{plugin_id}_notes" not in tables(database_url)  # its up.sql was undone
    assert admin.get("/openapi.json").json()["paths"] == before
    assert [p["id"] for p in admin.get("/api/v1/marketplace/installed").json()] == ["ai_chatbot"]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_broken_plugin_does_not_stop_the_panel(tmp_path: Path, database_url: str) -> None:
    pack_into(CHATBOT, tmp_path / "modules")
    pack_into(make_plugin(tmp_path / "src", "fragile"), tmp_path / "modules")
    panel = start_panel(tmp_path, database_url)
    try:
        admin = panel.client(panel.login())
        for plugin_id in ("ai_chatbot", "fragile"):
            assert (
                admin.post("/api/v1/marketplace/install", json={"plugin_id": plugin_id}).status_code
                == 200
            )
    finally:
        panel.stop()
    # Someone breaks the installed code; the panel must still start and say what is wrong.
    (tmp_path / "instance" / "addons" / "backend" / "fragile" / "routes.py").write_text(
        "def broken(:\n"
    )
    panel = start_panel(tmp_path, database_url)
    try:
        admin = panel.client(panel.login())
        states = {p["id"]: p for p in admin.get("/api/v1/marketplace/installed").json()}
        assert states["ai_chatbot"]["state"] == "mounted"
        assert states["fragile"]["state"] == "failed"
        assert "SyntaxError" in states["fragile"]["error"]
        assert admin.get("/api/v1/fragile/ping").status_code == 404
        assert admin.get("/api/v1/chat/sessions").status_code == 200
    finally:
        panel.stop()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_unreachable_plugin_server_is_a_502(tmp_path: Path, database_url: str) -> None:
    dead = f"http://bob:s3cret@127.0.0.1:{free_port()}"  # nothing listens here
    panel = start_panel(
        tmp_path,
        database_url,
        extra_env={
            "PLUGIN_SOURCE": "remote",
            "PLUGIN_SERVER_URL": dead,
            "PLUGDOCK_DOWNLOAD_RETRIES": "1",
        },
    )
    try:
        admin = panel.client(panel.login())
        for response in (
            admin.get("/api/v1/marketplace/plugins"),
            admin.post("/api/v1/marketplace/install", json={"plugin_id": "ai_chatbot"}),
        ):
            assert response.status_code == 502, response.text
            assert "127.0.0.1" in detail(response)
            assert "s3cret" not in response.text  # any signed-in user sees this detail
        assert admin.get("/api/v1/marketplace/installed").json() == []
    finally:
        panel.stop()
