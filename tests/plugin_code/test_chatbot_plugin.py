"""The AI chatbot example plugin, loaded the way the host loads it, against real databases.

The backend package is imported from ``examples/plugins/ai_chatbot/backend`` under a private
namespace (as the runtime will), its tables come from ``migrations/up.sql`` and its router is
mounted on a real FastAPI app. The "OpenAI" server is a real HTTP server on loopback.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import socket
import sqlite3
import sys
import threading
import types
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import sqlglot
from fastapi import FastAPI, HTTPException, Request
from fastapi.testclient import TestClient
from sqlalchemy import Engine, create_engine, inspect, text

from plugdock import sdk
from plugdock.package.ui_contract import read_ui

PLUGIN_DIR = Path(__file__).resolve().parents[2] / "examples" / "plugins" / "ai_chatbot"
NAMESPACE = "plugdock_addons_test"
PACKAGE = f"{NAMESPACE}.ai_chatbot"
ENV_PREFIX = "PLUGDOCK_PLUGIN_AI_CHATBOT_"


# -- loading the plugin like the host ------------------------------------------------------


@pytest.fixture(scope="module")
def plugin() -> Iterator[types.SimpleNamespace]:
    """The plugin's backend modules, imported under ``plugdock_addons_test.ai_chatbot``."""

    def ours(name: str) -> bool:
        return name == NAMESPACE or name.startswith(f"{NAMESPACE}.")

    saved = {name: sys.modules.pop(name) for name in list(sys.modules) if ours(name)}
    parent = types.ModuleType(NAMESPACE)
    parent.__path__ = []  # a package with no directory: only what we register is importable
    sys.modules[NAMESPACE] = parent
    try:
        backend = PLUGIN_DIR / "backend"
        spec = importlib.util.spec_from_file_location(
            PACKAGE, backend / "__init__.py", submodule_search_locations=[str(backend)]
        )
        assert spec is not None and spec.loader is not None
        package = importlib.util.module_from_spec(spec)
        sys.modules[PACKAGE] = package
        spec.loader.exec_module(package)
        yield types.SimpleNamespace(
            package=package,
            models=sys.modules[f"{PACKAGE}.models"],
            responders=sys.modules[f"{PACKAGE}.responders"],
            services=sys.modules[f"{PACKAGE}.services"],
        )
    finally:
        for name in [n for n in sys.modules if ours(n)]:
            del sys.modules[name]
        sys.modules.update(saved)


@pytest.fixture(autouse=True)
def _no_plugin_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests start from the FAQ responder, whatever the developer's environment says."""
    import os

    for name in list(os.environ):
        if name.startswith(ENV_PREFIX):
            monkeypatch.delenv(name)


def _authenticate(request: Request) -> sdk.User | None:
    role = request.headers.get("X-Test-Role")
    if role is None:
        return None
    return sdk.User(id=1 if role == "admin" else 2, username=f"test-{role}", role=role)


def _make_app(plugin: types.SimpleNamespace, engine: Engine) -> FastAPI:
    app = FastAPI()
    app.state.plugdock = sdk.HostState(engine=engine, authenticate=_authenticate)
    app.include_router(plugin.package.router)
    return app


@pytest.fixture
def db_file(tmp_path: Path) -> Path:
    path = tmp_path / "panel.db"
    with sqlite3.connect(path) as conn:
        conn.executescript((PLUGIN_DIR / "migrations" / "up.sql").read_text())
    return path


@pytest.fixture
def engine(db_file: Path) -> Iterator[Engine]:
    engine = create_engine(f"sqlite:///{db_file}")
    yield engine
    engine.dispose()


@pytest.fixture
def client(plugin: types.SimpleNamespace, engine: Engine) -> Iterator[TestClient]:
    with TestClient(_make_app(plugin, engine)) as client:
        yield client


ADMIN = {"X-Test-Role": "admin"}
USER = {"X-Test-Role": "user"}


def start(client: TestClient, **fields: Any) -> dict[str, Any]:
    body = {"guest_name": "Ada Lovelace", "guest_email": "ada@example.com"} | fields
    response = client.post("/api/v1/chat/sessions", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def say(client: TestClient, chat: dict[str, Any], content: str) -> dict[str, Any]:
    response = client.post(
        f"/api/v1/chat/sessions/{chat['session_id']}/messages",
        json={"content": content},
        headers={"X-Chat-Token": chat["token"]},
    )
    assert response.status_code == 201, response.text
    return response.json()


def transcript(client: TestClient, chat: dict[str, Any]) -> dict[str, Any]:
    response = client.get(
        f"/api/v1/chat/sessions/{chat['session_id']}/messages",
        headers={"X-Chat-Token": chat["token"]},
    )
    assert response.status_code == 200, response.text
    return response.json()


# -- models and migration ------------------------------------------------------------------


def test_models_match_the_migration(plugin: types.SimpleNamespace, engine: Engine) -> None:
    """Base.metadata and up.sql describe the same tables, columns, nullability and indexes."""
    found = inspect(engine)
    metadata = plugin.models.Base.metadata
    assert (
        set(found.get_table_names())
        == set(metadata.tables)
        == {"chat_sessions", "chat_messages", "chat_ratings"}
    )
    for name, table in metadata.tables.items():
        sql_columns = {c["name"]: c["nullable"] for c in found.get_columns(name)}
        model_columns = {c.name: c.nullable for c in table.columns}
        # SQLite reports an INTEGER PRIMARY KEY as nullable; compare the other columns' NULLs.
        sql_columns["id"] = model_columns["id"]
        assert sql_columns == model_columns, name
        sql_indexes = {i["name"]: i["column_names"] for i in found.get_indexes(name)}
        model_indexes = {i.name: [c.name for c in i.columns] for i in table.indexes}
        assert sql_indexes == model_indexes, name
        sql_fks = {
            (tuple(f["constrained_columns"]), f["referred_table"])
            for f in found.get_foreign_keys(name)
        }
        model_fks = {((fk.parent.name,), fk.column.table.name) for fk in table.foreign_keys}
        assert sql_fks == model_fks, name
    assert metadata.tables["chat_sessions"].c.token.unique
    with engine.connect() as conn:  # ...and up.sql makes the token unique too
        unique = [
            [col[2] for col in conn.exec_driver_sql(f"PRAGMA index_info('{index[1]}')")]
            for index in conn.exec_driver_sql("PRAGMA index_list('chat_sessions')")
            if index[2]  # unique
        ]
    assert unique == [["token"]]


def test_down_sql_removes_every_table(db_file: Path) -> None:
    with sqlite3.connect(db_file) as conn:
        conn.executescript((PLUGIN_DIR / "migrations" / "down.sql").read_text())
        left = conn.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'index')")
        assert [row for row in left if not row[0].startswith("sqlite_")] == []


def test_metadata_names_what_the_backend_has(plugin: types.SimpleNamespace) -> None:
    metadata = json.loads((PLUGIN_DIR / "metadata.json").read_text())
    assert metadata["id"] == plugin.package.PLUGIN_ID == "ai_chatbot"
    for model in metadata["backend"]["models"]:
        assert hasattr(plugin.models, model)
    assert all(r.startswith(plugin.package.router.prefix) for r in metadata["backend"]["routes"])
    # The pages and components its addon.config really exposes (what pack checks, too).
    files = {
        path.relative_to(PLUGIN_DIR).as_posix(): path
        for path in PLUGIN_DIR.rglob("*")
        if path.is_file() and "node_modules" not in path.parts
    }
    ui = read_ui(PLUGIN_DIR, files)
    assert ui is not None
    assert sorted(metadata["frontend"]["components"]) == sorted(ui.components)
    assert sorted(metadata["frontend"]["routes"]) == sorted(ui.routes)


# -- visitors ------------------------------------------------------------------------------


def test_start_session_returns_token_and_greeting(client: TestClient, engine: Engine) -> None:
    chat = start(client, guest_phone="+44 (20) 7946-0958")
    assert chat["status"] == "open"
    assert len(chat["token"]) >= 40
    assert chat["created_at"].endswith("Z")
    greeting = chat["greeting"]
    assert greeting["sender"] == "bot"
    assert "Ada Lovelace" in greeting["content"]
    assert greeting["session_id"] == chat["session_id"]
    with engine.connect() as conn:
        row = conn.execute(
            text("SELECT token, guest_phone, status FROM chat_sessions WHERE id = :id"),
            {"id": chat["session_id"]},
        ).one()
    assert tuple(row) == (chat["token"], "+44 (20) 7946-0958", "open")
    assert start(client)["token"] != chat["token"]


def test_empty_phone_is_stored_as_null(client: TestClient, engine: Engine) -> None:
    chat = start(client, guest_phone="  ")
    with engine.connect() as conn:
        phone = conn.execute(
            text("SELECT guest_phone FROM chat_sessions WHERE id = :id"),
            {"id": chat["session_id"]},
        ).scalar_one()
    assert phone is None


@pytest.mark.parametrize(
    ("fields", "bad_field"),
    [
        ({"guest_email": "not-an-email"}, "guest_email"),
        ({"guest_email": "ada@localhost"}, "guest_email"),
        ({"guest_email": "ada lovelace@example.com"}, "guest_email"),
        ({"guest_name": ""}, "guest_name"),
        ({"guest_name": "   "}, "guest_name"),
        ({"guest_name": "x" * 101}, "guest_name"),
        ({"guest_phone": "call me maybe"}, "guest_phone"),
        ({"guest_phone": "12"}, "guest_phone"),
    ],
)
def test_start_session_rejects_bad_input(
    client: TestClient, fields: dict[str, str], bad_field: str
) -> None:
    body = {"guest_name": "Ada", "guest_email": "ada@example.com"} | fields
    response = client.post("/api/v1/chat/sessions", json=body)
    assert response.status_code == 422
    assert [e["loc"][-1] for e in response.json()["detail"]] == [bad_field]


def test_validation_messages_are_for_visitors(client: TestClient) -> None:
    body = {"guest_name": "Ada", "guest_email": "ada@example", "guest_phone": "call me"}
    response = client.post("/api/v1/chat/sessions", json=body)
    assert response.status_code == 422
    assert {e["loc"][-1]: e["msg"] for e in response.json()["detail"]} == {
        "guest_email": "Enter a valid email address, like name@example.com",
        "guest_phone": "Enter a phone number: at least 4 digits; spaces and + - ( ) are fine",
    }


def test_start_session_requires_name_and_email(client: TestClient) -> None:
    response = client.post("/api/v1/chat/sessions", json={"guest_phone": "555 1234"})
    assert response.status_code == 422
    assert {e["loc"][-1] for e in response.json()["detail"]} == {"guest_name", "guest_email"}


def test_pricing_question_gets_the_pricing_answer(client: TestClient) -> None:
    chat = start(client)
    answer = say(client, chat, "Hi! How much does the Pro plan cost?")
    assert answer["message"]["sender"] == "guest"
    assert answer["message"]["content"] == "Hi! How much does the Pro plan cost?"
    assert answer["reply"]["sender"] == "bot"
    assert answer["reply"]["content"].startswith("Pricing:")
    assert "$29" in answer["reply"]["content"]
    # Deterministic: the same question, the same answer.
    again = say(client, chat, "how much does the PRO plan cost")
    assert again["reply"]["content"] == answer["reply"]["content"]


def test_transcript_lists_the_conversation_in_order(client: TestClient) -> None:
    chat = start(client)
    say(client, chat, "Can I get a refund?")
    say(client, chat, "thanks")
    messages = transcript(client, chat)["messages"]
    assert [(m["sender"], m["content"][:12]) for m in messages] == [
        ("bot", "Hi Ada Lovel"),
        ("guest", "Can I get a "),
        ("bot", "Refunds: eve"),
        ("guest", "thanks"),
        ("bot", "You're welco"),
    ]
    assert [m["id"] for m in messages] == sorted(m["id"] for m in messages)


@pytest.mark.parametrize(
    ("message", "topic"),
    [
        ("Hello there", "greeting"),
        ("good morning!", "greeting"),
        ("What are your prices?", "pricing"),
        ("Is there a cheaper subscription?", "pricing"),
        ("I want my money back", "refund"),
        ("hi, please cancel my plan", "refund"),
        ("What are your opening hours?", "hours"),
        ("are you open on weekends", "hours"),
        ("Can I talk to a human?", "human"),
        ("hello, I need a real person", "human"),
        ("thank you so much", "thanks"),
        ("asdf qwerty", "fallback"),
    ],
)
def test_faq_topics(plugin: types.SimpleNamespace, message: str, topic: str) -> None:
    assert plugin.responders.FaqResponder().topic(message) == topic


def test_faq_escalates_after_two_misses(client: TestClient) -> None:
    chat = start(client)
    first = say(client, chat, "asdf qwerty")["reply"]["content"]
    second = say(client, chat, "zxcv")["reply"]["content"]
    assert first.startswith("I'm not sure I understood")
    assert second.startswith("Sorry, I still can't answer")
    assert say(client, chat, "what does it cost?")["reply"]["content"].startswith("Pricing:")


def test_faq_answers_use_the_settings(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(f"{ENV_PREFIX}SUPPORT_EMAIL", "help@acme.test")
    monkeypatch.setenv(f"{ENV_PREFIX}OPENING_HOURS", "every day, 8:00 to 20:00")
    chat = start(client)
    assert "help@acme.test" in say(client, chat, "I need a human")["reply"]["content"]
    assert "every day, 8:00 to 20:00" in say(client, chat, "opening hours?")["reply"]["content"]


@pytest.mark.parametrize("content", ["", "   ", "x" * 4001])
def test_message_content_is_validated(client: TestClient, content: str) -> None:
    chat = start(client)
    response = client.post(
        f"/api/v1/chat/sessions/{chat['session_id']}/messages",
        json={"content": content},
        headers={"X-Chat-Token": chat["token"]},
    )
    assert response.status_code == 422
    assert len(transcript(client, chat)["messages"]) == 1


def test_longest_message_is_accepted(client: TestClient) -> None:
    chat = start(client)
    assert say(client, chat, "y" * 4000)["message"]["content"] == "y" * 4000


def test_visitor_endpoints_need_the_sessions_token(client: TestClient) -> None:
    ada = start(client)
    bob = start(client, guest_name="Bob", guest_email="bob@example.com")
    url = f"/api/v1/chat/sessions/{ada['session_id']}/messages"
    body = {"content": "what does it cost?"}

    missing = client.post(url, json=body)
    assert missing.status_code == 401
    assert "X-Chat-Token" in missing.json()["detail"]
    assert client.get(url).status_code == 401

    for token in ("wrong", bob["token"], ada["token"][:-1]):
        wrong = client.post(url, json=body, headers={"X-Chat-Token": token})
        assert wrong.status_code == 403
        assert wrong.json()["detail"] == (
            f"The X-Chat-Token does not match chat session {ada['session_id']}"
        )
        assert client.get(url, headers={"X-Chat-Token": token}).status_code == 403

    # A signed-in user (even an admin) is still not the visitor.
    assert client.get(url, headers=ADMIN).status_code == 401
    # Nothing was stored by the refused requests.
    assert len(transcript(client, ada)["messages"]) == 1


def test_unknown_session_is_404(client: TestClient) -> None:
    chat = start(client)
    headers = {"X-Chat-Token": chat["token"]} | ADMIN
    missing = 9999
    for method, url in [
        ("POST", f"/api/v1/chat/sessions/{missing}/messages"),
        ("GET", f"/api/v1/chat/sessions/{missing}/messages"),
        ("GET", f"/api/v1/chat/admin/sessions/{missing}"),
        ("POST", f"/api/v1/chat/sessions/{missing}/close"),
    ]:
        response = client.request(method, url, json={"content": "hi"}, headers=headers)
        assert response.status_code == 404, (method, url)
        assert response.json() == {"detail": f"Chat session {missing} not found"}
    assert client.get("/api/v1/chat/sessions/0/messages").status_code == 422
    assert client.get("/api/v1/chat/sessions/abc/messages").status_code == 422


@pytest.mark.parametrize("release", ["1.1.0", "1.0.0"])
def test_ids_and_offsets_past_what_a_database_holds_are_422(
    plugin: types.SimpleNamespace, engine: Engine, release: str
) -> None:
    """Issue 24.4: from 2^63 up, the public and admin routes crashed in the query (a 500)."""
    from plugdock.plugin_code.loader import load_backend, unload_modules

    loaded = None
    router = plugin.package.router
    if release == "1.0.0":  # the frozen release has the same routes (but no rating)
        loaded = load_backend("ai_chatbot", RELEASE_1_0 / "backend", "bounds")
        router = loaded.router
    app = FastAPI()
    app.state.plugdock = sdk.HostState(engine=engine, authenticate=_authenticate)
    app.include_router(router)
    try:
        with TestClient(app) as client:
            chat = start(client)
            token = {"X-Chat-Token": chat["token"]}
            for huge in (2**63, 2**64 + 1, 10**30):
                calls = [
                    ("GET", f"/api/v1/chat/sessions/{huge}/messages", {}),  # no token needed
                    ("POST", f"/api/v1/chat/sessions/{huge}/messages", token),
                    ("GET", f"/api/v1/chat/sessions?offset={huge}", ADMIN),
                    ("GET", f"/api/v1/chat/admin/sessions/{huge}", ADMIN),
                    ("POST", f"/api/v1/chat/sessions/{huge}/close", ADMIN),
                ]
                if release == "1.1.0":
                    calls.append(("POST", f"/api/v1/chat/sessions/{huge}/rating", token))
                for method, url, headers in calls:
                    body = {"content": "hi", "stars": 5}
                    answer = client.request(method, url, json=body, headers=headers)
                    assert answer.status_code == 422, (method, url, answer.text)
                    assert isinstance(answer.json()["detail"], list)
            largest = 2**63 - 1  # still an id: not found, no crash
            assert (
                client.get(f"/api/v1/chat/admin/sessions/{largest}", headers=ADMIN).status_code
                == 404
            )
            page = client.get(f"/api/v1/chat/sessions?offset={largest}", headers=ADMIN)
            assert page.status_code == 200 and page.json()["items"] == []
    finally:
        if loaded is not None:
            unload_modules(loaded.module_name)


# -- admins --------------------------------------------------------------------------------


def test_admin_lists_sessions_newest_first_with_counts(client: TestClient) -> None:
    first = start(client, guest_name="First", guest_email="first@example.com")
    second = start(
        client, guest_name="Second", guest_email="second@example.com", guest_phone="555 0100"
    )
    third = start(client, guest_name="Third", guest_email="third@example.com")
    say(client, first, "hello")
    say(client, first, "prices?")
    say(client, third, "refund please")

    response = client.get("/api/v1/chat/sessions", headers=ADMIN)
    assert response.status_code == 200
    page = response.json()
    assert (page["total"], page["limit"], page["offset"]) == (3, 50, 0)
    assert [(s["guest_name"], s["message_count"]) for s in page["items"]] == [
        ("Third", 3),
        ("Second", 1),
        ("First", 5),
    ]
    listed = page["items"][1]
    assert listed["id"] == second["session_id"]
    assert (listed["guest_email"], listed["guest_phone"], listed["status"]) == (
        "second@example.com",
        "555 0100",
        "open",
    )
    assert "token" not in response.text

    paged = client.get("/api/v1/chat/sessions?limit=2&offset=2", headers=ADMIN).json()
    assert [s["guest_name"] for s in paged["items"]] == ["First"]
    assert paged["total"] == 3
    assert client.get("/api/v1/chat/sessions?limit=0", headers=ADMIN).status_code == 422
    assert client.get("/api/v1/chat/sessions?status=maybe", headers=ADMIN).status_code == 422


def test_admin_reads_a_whole_session(client: TestClient) -> None:
    chat = start(client)
    say(client, chat, "opening hours?")
    response = client.get(f"/api/v1/chat/admin/sessions/{chat['session_id']}", headers=ADMIN)
    assert response.status_code == 200
    detail = response.json()
    assert detail["guest_name"] == "Ada Lovelace"
    assert [m["sender"] for m in detail["messages"]] == ["bot", "guest", "bot"]
    assert detail["messages"] == transcript(client, chat)["messages"]
    assert "token" not in detail


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("GET", "/api/v1/chat/sessions"),
        ("GET", "/api/v1/chat/admin/sessions/1"),
        ("POST", "/api/v1/chat/sessions/1/close"),
    ],
)
def test_admin_endpoints_need_an_admin(client: TestClient, method: str, url: str) -> None:
    start(client)
    anonymous = client.request(method, url)
    assert anonymous.status_code == 401
    assert anonymous.json() == {"detail": "Not authenticated"}
    assert anonymous.headers["WWW-Authenticate"] == "Bearer"
    user = client.request(method, url, headers=USER)
    assert user.status_code == 403
    assert user.json() == {"detail": "Admin privileges required"}
    assert client.request(method, url, headers=ADMIN).status_code == 200


def test_closed_session_refuses_new_messages(client: TestClient) -> None:
    chat = start(client)
    say(client, chat, "hello")
    closed = client.post(f"/api/v1/chat/sessions/{chat['session_id']}/close", headers=ADMIN)
    assert closed.status_code == 200
    assert closed.json()["status"] == "closed"

    refused = client.post(
        f"/api/v1/chat/sessions/{chat['session_id']}/messages",
        json={"content": "are you there?"},
        headers={"X-Chat-Token": chat["token"]},
    )
    assert refused.status_code == 409
    assert "closed" in refused.json()["detail"]
    after = transcript(client, chat)  # the visitor can still read it
    assert after["status"] == "closed"
    assert len(after["messages"]) == 3

    again = client.post(f"/api/v1/chat/sessions/{chat['session_id']}/close", headers=ADMIN)
    assert again.status_code == 200
    listed = client.get("/api/v1/chat/sessions?status=closed", headers=ADMIN).json()
    assert [s["id"] for s in listed["items"]] == [chat["session_id"]]
    assert client.get("/api/v1/chat/sessions?status=open", headers=ADMIN).json()["total"] == 0


# -- the OpenAI-compatible responder against a real HTTP server ----------------------------


class FakeModelServer:
    """A tiny OpenAI-compatible ``/v1/chat/completions`` on 127.0.0.1, in a thread."""

    def __init__(self, mode: str = "ok") -> None:
        self.mode = mode
        self.requests: list[dict[str, Any]] = []
        self.received = threading.Event()
        self.release = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append(
                    {"path": self.path, "auth": self.headers.get("Authorization"), "body": body}
                )
                server.received.set()
                if self.path != "/v1/chat/completions":
                    return self._send(404, b'{"error": "not found"}')
                if server.mode == "error":
                    return self._send(500, b'{"error": {"message": "model overloaded"}}')
                if server.mode == "garbage":
                    return self._send(200, b"<html>surprise</html>")
                if server.mode == "empty":
                    return self._send(200, json.dumps({"choices": []}).encode())
                if server.mode == "slow":
                    server.release.wait(5)
                if server.mode == "hold":
                    server.release.wait(10)
                question = body["messages"][-1]["content"]
                answer = {
                    "id": "chatcmpl-test",
                    "object": "chat.completion",
                    "model": body["model"],
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": f" model: {question} "},
                            "finish_reason": "stop",
                        }
                    ],
                }
                return self._send(200, json.dumps(answer).encode())

            def _send(self, status: int, payload: bytes) -> None:
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:
                    pass  # the client gave up (timeout test)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.block_on_close = False
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def __enter__(self) -> FakeModelServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


def use_model(monkeypatch: pytest.MonkeyPatch, base_url: str, timeout: str = "5") -> None:
    monkeypatch.setenv(f"{ENV_PREFIX}OPENAI_BASE_URL", base_url)
    monkeypatch.setenv(f"{ENV_PREFIX}OPENAI_API_KEY", "sk-test-123")
    monkeypatch.setenv(f"{ENV_PREFIX}OPENAI_MODEL", "tiny-test-model")
    monkeypatch.setenv(f"{ENV_PREFIX}OPENAI_TIMEOUT", timeout)


@pytest.mark.server  # FakeModelServer on loopback
def test_openai_compatible_model_answers(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    with FakeModelServer() as model:
        use_model(monkeypatch, model.base_url + "/")
        chat = start(client)
        first = say(client, chat, "What is plugdock?")
        second = say(client, chat, "And the price?")

    assert first["reply"]["content"] == "model: What is plugdock?"
    assert second["reply"]["content"] == "model: And the price?"
    assert len(model.requests) == 2
    request = model.requests[1]
    assert request["path"] == "/v1/chat/completions"
    assert request["auth"] == "Bearer sk-test-123"
    assert request["body"]["model"] == "tiny-test-model"
    roles = [(m["role"], m["content"]) for m in request["body"]["messages"]]
    assert roles[0][0] == "system"
    assert roles[1:] == [
        ("assistant", chat["greeting"]["content"]),
        ("user", "What is plugdock?"),
        ("assistant", "model: What is plugdock?"),
        ("user", "And the price?"),
    ]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.server  # FakeModelServer on loopback
@pytest.mark.parametrize("mode", ["down", "error", "garbage", "empty", "slow"])
def test_model_failure_falls_back_to_the_faq(
    client: TestClient,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    mode: str,
) -> None:
    caplog.set_level(logging.WARNING, logger="plugdock.plugins.ai_chatbot")
    with FakeModelServer("ok" if mode == "down" else mode) as model:
        base_url = f"http://127.0.0.1:{_closed_port()}/v1" if mode == "down" else model.base_url
        use_model(monkeypatch, base_url, timeout="0.3")
        chat = start(client)
        answer = say(client, chat, "How much does it cost?")
    assert answer["reply"]["content"].startswith("Pricing:")
    warnings = [r for r in caplog.records if r.name == "plugdock.plugins.ai_chatbot"]
    assert len(warnings) == 1
    assert "answering from the FAQ" in warnings[0].getMessage()
    assert "sk-test-123" not in caplog.text
    assert [m["sender"] for m in transcript(client, chat)["messages"]] == ["bot", "guest", "bot"]


@pytest.mark.server  # FakeModelServer on loopback
def test_slow_model_does_not_hold_the_database(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While the model thinks, the visitor's message is saved and others can write."""
    with FakeModelServer("hold") as model:
        use_model(monkeypatch, model.base_url)
        chat = start(client)
        result: dict[str, Any] = {}
        sender = threading.Thread(target=lambda: result.update(say(client, chat, "Tell me more")))
        sender.start()
        assert model.received.wait(10)

        during = transcript(client, chat)["messages"]
        assert [(m["sender"], m["content"]) for m in during][-1] == ("guest", "Tell me more")
        other = start(client, guest_name="Meanwhile")  # a write while the model is busy
        assert other["session_id"] == chat["session_id"] + 1

        model.release.set()
        sender.join(10)
    assert result["reply"]["content"] == "model: Tell me more"


def test_make_responder_reads_the_settings(plugin: types.SimpleNamespace) -> None:
    responders = plugin.responders
    assert isinstance(responders.make_responder({}), responders.FaqResponder)
    assert isinstance(
        responders.make_responder({"openai_base_url": "ftp://nope"}), responders.FaqResponder
    )
    chosen = responders.make_responder(
        {"openai_base_url": "http://127.0.0.1:1/v1/", "openai_timeout": "soon"}
    )
    assert isinstance(chosen, responders.OpenAICompatibleResponder)
    assert chosen.url == "http://127.0.0.1:1/v1/chat/completions"
    assert (chosen.model, chosen.api_key, chosen.timeout) == ("gpt-4o-mini", None, 20.0)


def test_lifecycle_hooks_are_safe(
    plugin: types.SimpleNamespace, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="plugdock.plugins.ai_chatbot")
    app = FastAPI()
    plugin.package.on_install(None)
    plugin.package.on_startup(app)
    plugin.package.on_shutdown(app)
    plugin.package.on_uninstall(None)
    assert "AI chatbot loaded (routes under /api/v1/chat, responder: FaqResponder)" in caplog.text


# -- every database ------------------------------------------------------------------------

DIALECTS = {"sqlite": "sqlite", "postgresql": "postgres", "mysql": "mysql"}


def _run_sql_file(engine: Engine, name: str) -> None:
    sql = (PLUGIN_DIR / "migrations" / name).read_text()
    with engine.begin() as conn:
        for statement in sqlglot.transpile(sql, read="sqlite", write=DIALECTS[engine.dialect.name]):
            conn.exec_driver_sql(statement)


def test_chat_works_on_every_database(plugin: types.SimpleNamespace, database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        _run_sql_file(engine, "up.sql")
        with TestClient(_make_app(plugin, engine)) as client:
            chat = start(client, guest_phone="555 0100")
            assert say(client, chat, "prices?")["reply"]["content"].startswith("Pricing:")
            start(client, guest_name="Later")
            page = client.get("/api/v1/chat/sessions", headers=ADMIN).json()
            assert [(s["guest_name"], s["message_count"]) for s in page["items"]] == [
                ("Later", 1),
                ("Ada Lovelace", 3),
            ]
            closed = client.post(f"/api/v1/chat/sessions/{chat['session_id']}/close", headers=ADMIN)
            assert closed.json()["status"] == "closed"
            assert transcript(client, chat)["status"] == "closed"
        _run_sql_file(engine, "down.sql")
        assert inspect(engine).get_table_names() == []
    finally:
        engine.dispose()


# -- the sdk as plugins use it -------------------------------------------------------------


INSERT_SESSION = text(
    "INSERT INTO chat_sessions (token, guest_name, guest_email) VALUES (:token, 'A', 'a@x.io')"
)


def test_sdk_db_session_commits_or_rolls_back(engine: Engine) -> None:
    app = FastAPI()
    app.state.plugdock = sdk.HostState(engine=engine)

    @app.post("/ok")
    def ok(db: sdk.DbSession) -> int:
        db.execute(INSERT_SESSION, {"token": "a"})
        return 1

    @app.post("/fail")
    def fail(db: sdk.DbSession) -> int:
        db.execute(INSERT_SESSION, {"token": "b"})
        raise HTTPException(418, "no")

    with TestClient(app) as client:
        assert client.post("/ok").status_code == 200
        assert client.post("/fail").status_code == 418
    with engine.connect() as conn:
        tokens = conn.execute(text("SELECT token FROM chat_sessions")).scalars().all()
    assert tokens == ["a"]


def test_sdk_without_host_state() -> None:
    app = FastAPI()

    @app.get("/who")
    def who(user: sdk.OptionalUser) -> str:
        return user.username if user else "nobody"

    @app.get("/db")
    def db(db: sdk.DbSession) -> int:
        return 1

    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.get("/who").json() == "nobody"
        assert client.get("/db").status_code == 500


def test_sdk_settings_and_logger(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLUGDOCK_PLUGIN_AI_CHATBOT_OPENAI_MODEL", "m1")
    monkeypatch.setenv("PLUGDOCK_PLUGIN_AI_CHATBOT_Support_Email", "x@y.z")
    monkeypatch.setenv("PLUGDOCK_PLUGIN_OTHER_KEY", "not mine")
    assert sdk.plugin_settings("ai_chatbot") == {"openai_model": "m1", "support_email": "x@y.z"}
    assert sdk.get_logger("ai_chatbot").name == "plugdock.plugins.ai_chatbot"
    assert sdk.User(id="u1", username="u", role="admin").is_admin
    assert not sdk.User(id=2, username="v", role="user").is_admin


# -- 1.1.0: ratings ------------------------------------------------------------------------


def rate(client: TestClient, chat: dict[str, Any], token: str | None = None, **body: Any) -> Any:
    headers = {"X-Chat-Token": token if token is not None else chat["token"]}
    return client.post(
        f"/api/v1/chat/sessions/{chat['session_id']}/rating", json=body, headers=headers
    )


def test_visitor_rates_and_admin_sees_the_rating(client: TestClient) -> None:
    chat = start(client)
    other = start(client, guest_name="Bob")
    say(client, chat, "prices?")

    first = rate(client, chat, stars=4, comment="  Quick answers  ")
    assert first.status_code == 200, first.text
    assert (first.json()["stars"], first.json()["comment"]) == (4, "Quick answers")
    again = rate(client, chat, stars=5, comment="")  # rating again replaces it
    assert (again.json()["stars"], again.json()["comment"]) == (5, None)

    page = client.get("/api/v1/chat/sessions", headers=ADMIN).json()
    assert [(s["guest_name"], s["rating"], s["message_count"]) for s in page["items"]] == [
        ("Bob", None, 1),
        ("Ada Lovelace", 5, 3),
    ]
    detail = client.get(f"/api/v1/chat/admin/sessions/{chat['session_id']}", headers=ADMIN).json()
    assert detail["rating"] == 5
    assert (detail["feedback"]["stars"], detail["feedback"]["comment"]) == (5, None)
    unrated = client.get(f"/api/v1/chat/admin/sessions/{other['session_id']}", headers=ADMIN)
    assert unrated.json()["feedback"] is None


def test_a_closed_chat_can_still_be_rated(client: TestClient) -> None:
    chat = start(client)
    client.post(f"/api/v1/chat/sessions/{chat['session_id']}/close", headers=ADMIN)
    assert rate(client, chat, stars=2).status_code == 200


@pytest.mark.parametrize(
    "body",
    [{"stars": 0}, {"stars": 6}, {"stars": "five"}, {}, {"stars": 3, "comment": "x" * 501}],
)
def test_rating_is_validated(client: TestClient, body: dict[str, Any]) -> None:
    chat = start(client)
    assert rate(client, chat, **body).status_code == 422


def test_only_the_visitor_can_rate(client: TestClient, engine: Engine) -> None:
    chat = start(client)
    other = start(client, guest_name="Mallory")
    assert rate(client, chat, token=other["token"], stars=1).status_code == 403
    assert rate(client, chat, token="", stars=1).status_code == 401
    missing = client.post(
        "/api/v1/chat/sessions/999/rating", json={"stars": 1}, headers={"X-Chat-Token": "x"}
    )
    assert missing.status_code == 404
    with engine.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM chat_ratings")).scalar() == 0
        assert conn.execute(text("SELECT rating FROM chat_sessions")).scalars().all() == [
            None,
            None,
        ]


def test_deleting_a_session_deletes_its_rating(engine: Engine, client: TestClient) -> None:
    chat = start(client)
    rate(client, chat, stars=3)
    with engine.begin() as conn:
        conn.exec_driver_sql("PRAGMA foreign_keys = ON")
        conn.execute(text("DELETE FROM chat_sessions"))
        assert conn.execute(text("SELECT COUNT(*) FROM chat_ratings")).scalar() == 0


# -- 1.1.0: the visitor rate limit ---------------------------------------------------------


def test_rate_limiter_buckets(plugin: types.SimpleNamespace) -> None:
    ratelimit = sys.modules[f"{PACKAGE}.ratelimit"]
    now = [0.0]
    limiter = ratelimit.RateLimiter(3, max_clients=2, clock=lambda: now[0])
    assert [limiter.wait("a") for _ in range(4)] == [0.0, 0.0, 0.0, 20.0]
    assert limiter.wait("b") == 0.0  # per client
    now[0] = 20.0  # one token back after 60 s / 3
    assert limiter.wait("a") == 0.0
    assert limiter.wait("a") == pytest.approx(20.0)
    # Memory is bounded: a third client pushes out the least recently seen one.
    limiter.wait("c")
    assert len(limiter) == 2
    assert limiter.wait("b") == 0.0  # forgotten, so it starts with a full bucket again


def test_visitor_endpoints_answer_429_with_retry_after(
    client: TestClient, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(f"{ENV_PREFIX}RATE_LIMIT", "5")
    monkeypatch.setenv(f"{ENV_PREFIX}START_LIMIT", "2")
    first = start(client)
    start(client)
    refused = client.post(
        "/api/v1/chat/sessions", json={"guest_name": "C", "guest_email": "c@example.com"}
    )
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) >= 1
    assert "Too many requests" in refused.json()["detail"]
    with engine.connect() as conn:  # the refused start wrote nothing
        assert conn.execute(text("SELECT COUNT(*) FROM chat_sessions")).scalar() == 2

    # 3 of 5 visitor requests used by the starts (the refused one counts): 2 more, then 429
    # on every visitor endpoint.
    for _ in range(2):
        assert say(client, first, "hello")
    sid, headers = first["session_id"], {"X-Chat-Token": first["token"]}
    for response in (
        client.post(
            f"/api/v1/chat/sessions/{sid}/messages", json={"content": "x"}, headers=headers
        ),
        client.get(f"/api/v1/chat/sessions/{sid}/messages", headers=headers),
        client.post(f"/api/v1/chat/sessions/{sid}/rating", json={"stars": 5}, headers=headers),
    ):
        assert response.status_code == 429, response.text
        assert int(response.headers["Retry-After"]) >= 1
    # Admin endpoints are not limited.
    assert client.get("/api/v1/chat/sessions", headers=ADMIN).status_code == 200


def test_rate_limit_is_per_client_address(
    plugin: types.SimpleNamespace, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(f"{ENV_PREFIX}START_LIMIT", "1")
    app = _make_app(plugin, engine)
    body = {"guest_name": "A", "guest_email": "a@example.com"}
    with (
        TestClient(app, client=("203.0.113.1", 1000)) as one,
        TestClient(app, client=("203.0.113.2", 1000)) as two,
    ):
        assert one.post("/api/v1/chat/sessions", json=body).status_code == 201
        assert one.post("/api/v1/chat/sessions", json=body).status_code == 429
        assert two.post("/api/v1/chat/sessions", json=body).status_code == 201


def test_bad_rate_limit_settings_fall_back(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv(f"{ENV_PREFIX}START_LIMIT", "lots")
    with caplog.at_level(logging.WARNING):
        start(client)
    assert "start_limit 'lots'" in caplog.text


# -- 1.1.0: the upgrade from 1.0.0 ---------------------------------------------------------


RELEASE_1_0 = PLUGIN_DIR.parents[1] / "releases" / "ai_chatbot-1.0.0"


def test_upgrade_from_1_0_keeps_chats_and_counts_their_messages(
    plugin: types.SimpleNamespace, database_url: str
) -> None:
    """1.0.0's tables with chats in them, the 1.1.0 step, then 1.1.0's API on the same rows."""
    from plugdock.core.db import dialect_name
    from plugdock.plugin_sql.migrations import load_migration
    from plugdock.plugin_sql.upgrade_steps import load_upgrade_steps

    engine = create_engine(database_url)
    try:
        dialect = dialect_name(engine)
        old = load_migration(RELEASE_1_0 / "migrations", dialect)
        with engine.begin() as conn:
            for statement in old.up:
                conn.exec_driver_sql(statement)
            conn.execute(
                text(
                    "INSERT INTO chat_sessions (token, guest_name, guest_email) "
                    "VALUES ('tok-1', 'Old Ann', 'ann@example.com'), "
                    "('tok-2', 'Old Bob', 'bob@example.com')"
                )
            )
            conn.execute(
                text(
                    "INSERT INTO chat_messages (session_id, sender, content) VALUES "
                    "(1, 'bot', 'hi'), (1, 'guest', 'prices?'), (1, 'bot', 'Pricing: ...')"
                )
            )
        steps = load_upgrade_steps(
            PLUGIN_DIR / "migrations",
            dialect,
            from_version="1.0.0",
            to_version="1.1.0",
            owned_tables=old.tables,
        )
        with engine.begin() as conn:  # no plugin_migrations here: run the statements only
            for step in steps:
                for statement in step.statements:
                    conn.exec_driver_sql(statement.replace("%", "%%"))

        with TestClient(_make_app(plugin, engine)) as client:
            page = client.get("/api/v1/chat/sessions", headers=ADMIN).json()
            counts = {s["guest_name"]: (s["message_count"], s["rating"]) for s in page["items"]}
            assert counts == {"Old Ann": (3, None), "Old Bob": (0, None)}
            old_chat = {"session_id": 1, "token": "tok-1"}
            say(client, old_chat, "thanks")  # the 1.0.0 session goes on
            assert rate(client, old_chat, stars=5, comment="still here").status_code == 200
            detail = client.get("/api/v1/chat/admin/sessions/1", headers=ADMIN).json()
            assert len(detail["messages"]) == 5
            assert (detail["rating"], detail["feedback"]["comment"]) == (5, "still here")
    finally:
        engine.dispose()


# -- 1.1.0 in a real browser: the widget rates, the Chats page shows it --------------------


@pytest.mark.server  # a panel on loopback
def test_visitor_rates_in_the_widget_and_admin_sees_it(page: Any, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    from browser_support import admin_api, nav, plugin_page, sign_in, widget
    from panel import ADMIN_PASSWORD, start_panel
    from support import pack_into

    pack_into(PLUGIN_DIR, tmp_path / "modules")
    panel = start_panel(tmp_path, f"sqlite:///{tmp_path / 'panel.db'}")
    try:
        with admin_api(panel) as api:
            installed = api.post(
                "/api/v1/marketplace/install", json={"plugin_id": "ai_chatbot", "version": "1.1.0"}
            )
            assert installed.status_code == 200, installed.text
        sign_in(page, panel, "admin", ADMIN_PASSWORD)
        bubble = widget(page, "ai_chatbot")  # the widget runs in its sandboxed frame
        bubble.get_by_role("button", name="Open support chat").click()
        dialog = bubble.get_by_role("dialog", name="Chat with us")
        dialog.get_by_label("Name").fill("Ada Lovelace")
        dialog.get_by_label("Email").fill("ada@example.com")
        dialog.get_by_role("button", name="Start chat").click()
        stars = dialog.get_by_role("radiogroup", name="Stars")
        expect(stars).to_have_count(0)  # nothing to rate before the visitor said anything
        dialog.get_by_label("Your message").fill("Can I get a refund?")
        dialog.get_by_role("button", name="Send", exact=True).click()
        expect(dialog.get_by_role("log")).to_contain_text("Refunds:")
        stars.get_by_role("radio", name="4 stars").click()
        dialog.get_by_label("Comment (optional)").fill("Clear answer")
        dialog.get_by_role("button", name="Send rating").click()
        expect(dialog).to_contain_text("Thanks for your rating")
        dialog.get_by_role("textbox", name="Your message").press("Escape")

        nav(page).get_by_role("link", name="Chats").click()
        chats = plugin_page(page)  # the plugin's page, in its frame
        table = chats.get_by_role("table")
        expect(table.get_by_role("columnheader", name="Rating")).to_be_visible()
        expect(table.get_by_label("4 of 5 stars")).to_have_text("★★★★☆")
        chats.get_by_role("button", name="Open the chat with Ada Lovelace").click()
        transcript = chats.get_by_role("complementary", name="Transcript")
        expect(transcript.get_by_label("Visitor's rating")).to_contain_text("“Clear answer”")
    finally:
        panel.stop()
