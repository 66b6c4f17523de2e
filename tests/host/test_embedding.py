"""plugdock inside a FastAPI app that is not plugdock's: its users, sign-in, routes, lifespan.

The host below is written the way an existing app is: its own ``accounts`` table and
engine, a session cookie or bearer token of its own, a ``current_user`` dependency that
depends on its own ``get_db`` dependency, its own lifespan and routes. plugdock is added
with the public API only (``from plugdock import PluginHost, HostAuth, HostUser``).
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi import Cookie, Depends, FastAPI, Header, HTTPException
from fastapi.testclient import TestClient
from sqlalchemy import (
    Boolean,
    Column,
    Connection,
    Integer,
    MetaData,
    String,
    Table,
    create_engine,
    insert,
    inspect,
    select,
)

from plugdock import HostAuth, HostUser, PluginHost
from plugdock.config import load_settings
from plugdock.core.db import sync_url
from support import make_plugin, pack_into

host_metadata = MetaData()
accounts = Table(  # the host's users: not plugdock's, and never touched by it
    "accounts",
    host_metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(64), nullable=False),
    Column("is_admin", Boolean, nullable=False),
    Column("token", String(64), nullable=False, unique=True),
)

WHOAMI = (
    "import os\n\nfrom fastapi import APIRouter\n\nfrom plugdock import sdk\n\n"
    "router = APIRouter(prefix='/api/v1/whoami')\n\n\n"
    "@router.get('/me')\ndef me(user: sdk.CurrentUser) -> dict:\n"
    "    return {'username': user.username, 'admin': user.is_admin}\n\n\n"
    "@router.get('/pid')\ndef pid() -> int:\n    return os.getpid()\n\n\n"
    "@router.get('/admin')\ndef admin(user: sdk.AdminUser) -> dict:\n"
    "    return {'admin': user.username}\n\n\n"
    "@router.post('/echo')\ndef echo(body: dict, user: sdk.CurrentUser) -> dict:\n"
    "    return {'echo': body, 'by': user.username}\n"
)


def build_host(
    tmp_path: Path,
    database_url: str,
    events: list[str],
    users: Callable[[], list[HostUser]] | None = None,
) -> FastAPI:
    """A small app with its own auth, as a team would have written it before plugdock."""
    engine = create_engine(database_url)
    host_metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(
            insert(accounts),
            [
                {"name": "alice", "is_admin": True, "token": "alice-token"},
                {"name": "bob", "is_admin": False, "token": "bob-token"},
            ],
        )

    def get_db() -> Iterator[Connection]:
        with engine.connect() as conn:
            yield conn

    def current_user(
        session: str | None = Cookie(None, alias="host_session"),
        authorization: str | None = Header(None),
        db: Connection = Depends(get_db),
    ) -> HostUser | None:
        token = session or (authorization or "").removeprefix("Bearer ") or None
        if token is None:
            return None
        row = db.execute(select(accounts).where(accounts.c.token == token)).first()
        if row is None:
            raise HTTPException(401, "unknown session")
        return HostUser(id=row.id, username=row.name, is_admin=row.is_admin)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        events.append("host started")
        yield
        events.append("host stopped")

    app = FastAPI(lifespan=lifespan)

    @app.get("/host/hello")
    def hello() -> dict[str, str]:
        return {"hello": "from the host"}

    settings = load_settings(home=tmp_path / "instance", plugin_local_dir=tmp_path / "modules")
    host = PluginHost(
        HostAuth(current_user=current_user, users=users),
        settings=settings,
        database_url=database_url,
    )
    host.mount(app)
    return app


@pytest.fixture
def plugin_zip(tmp_path: Path) -> Path:
    folder = make_plugin(
        tmp_path / "src",
        "whoami",
        extra_files={"backend/routes.py": WHOAMI},
        metadata={"backend": {"routes": ["/api/v1/whoami/*"]}},
    )
    return pack_into(folder, tmp_path / "modules")


def _as(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {name}-token"}


def test_a_foreign_app_installs_and_uninstalls_a_plugin_with_its_own_users(
    tmp_path: Path, plugin_zip: Path
) -> None:
    events: list[str] = []
    url = f"sqlite:///{tmp_path / 'host.db'}"
    app = build_host(tmp_path, url, events)
    with TestClient(app) as client:
        assert events == ["host started"]  # the host's lifespan still runs

        hello = client.get("/host/hello")
        assert hello.json() == {"hello": "from the host"}
        # The host's own answers are its own: plugdock adds no headers to them.
        assert "content-security-policy" not in hello.headers

        install = {"plugin_id": "whoami", "version": None}
        assert client.get("/api/v1/marketplace/installed").status_code == 401
        assert client.post("/api/v1/marketplace/install", json=install).status_code == 401
        refused = client.post("/api/v1/marketplace/install", json=install, headers=_as("bob"))
        assert refused.status_code == 403  # the host says bob is no admin
        unknown = client.get("/api/v1/marketplace/installed", headers=_as("mallory"))
        assert unknown.status_code == 401 and unknown.json()["detail"] == "unknown session"

        installed = client.post("/api/v1/marketplace/install", json=install, headers=_as("alice"))
        assert installed.status_code == 200, installed.text
        me = client.get("/api/v1/whoami/me", headers=_as("bob"))
        assert me.json() == {"username": "bob", "admin": False}
        assert "content-security-policy" in me.headers  # plugin routes get plugdock's headers
        assert client.get("/api/v1/whoami/me").status_code == 401
        assert client.get("/api/v1/whoami/admin", headers=_as("bob")).status_code == 403
        assert client.get("/api/v1/whoami/admin", headers=_as("alice")).json() == {"admin": "alice"}
        listed = client.get("/api/v1/marketplace/installed", headers=_as("alice")).json()
        assert [(p["id"], p["installed_by"]) for p in listed] == [("whoami", "alice")]

        gone = client.delete("/api/v1/marketplace/uninstall/whoami", headers=_as("alice"))
        assert gone.status_code == 200, gone.text
        assert client.get("/api/v1/whoami/me", headers=_as("bob")).status_code == 404
    assert events == ["host started", "host stopped"]
    # The host's table is untouched and plugdock created no users table of its own use.
    engine = create_engine(url)
    with engine.connect() as conn:
        assert [r.name for r in conn.execute(select(accounts))] == ["alice", "bob"]
    assert "whoami_notes" not in inspect(engine).get_table_names()


def test_cookie_requests_that_change_state_need_the_csrf_header(
    tmp_path: Path, plugin_zip: Path
) -> None:
    """A cross-site form or script rides the host's cookie; it cannot send a custom header."""
    app = build_host(tmp_path, f"sqlite:///{tmp_path / 'host.db'}", [])
    with TestClient(app) as client:
        client.cookies.set("host_session", "alice-token")
        install = {"plugin_id": "whoami", "version": None}
        forged = client.post("/api/v1/marketplace/install", json=install)
        assert forged.status_code == 403
        assert "X-Plugdock-CSRF" in forged.json()["detail"]
        assert client.get("/api/v1/marketplace/installed").json() == []  # nothing changed
        done = client.post(
            "/api/v1/marketplace/install", json=install, headers={"X-Plugdock-CSRF": "1"}
        )
        assert done.status_code == 200, done.text
        # Plugin routes too: a cookie POST without the header never reaches the plugin.
        assert client.post("/api/v1/whoami/echo", json={"a": 1}).status_code == 403
        echoed = client.post("/api/v1/whoami/echo", json={"a": 1}, headers={"X-Plugdock-CSRF": "1"})
        assert echoed.json() == {"echo": {"a": 1}, "by": "alice"}
        # Reads need nothing, and bearer clients (no cookies) need no header.
        assert client.get("/api/v1/whoami/me").json()["username"] == "alice"
        client.cookies.clear()
        bearer = client.post("/api/v1/whoami/echo", json={"b": 2}, headers=_as("bob"))
        assert bearer.json() == {"echo": {"b": 2}, "by": "bob"}
        # The host's own routes are the host's business: no header asked of them.
        assert client.get("/host/hello").status_code == 200


@pytest.mark.processes
def test_a_plugin_in_its_own_process_sees_the_hosts_user(
    tmp_path: Path, plugin_zip: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The forwarder asks the host's dependency (with its own dependencies) per request."""
    monkeypatch.setenv("PLUGDOCK_ISOLATION", "process")
    app = build_host(tmp_path, f"sqlite:///{tmp_path / 'host.db'}", [])
    with TestClient(app) as client:
        install = {"plugin_id": "whoami", "version": None}
        installed = client.post("/api/v1/marketplace/install", json=install, headers=_as("alice"))
        assert installed.status_code == 200, installed.text
        pid = client.get("/api/v1/whoami/pid")
        assert pid.status_code == 200 and pid.json() != os.getpid()  # its own process
        assert client.get("/api/v1/whoami/me", headers=_as("bob")).json() == {
            "username": "bob",
            "admin": False,
        }
        assert client.get("/api/v1/whoami/admin", headers=_as("bob")).status_code == 403
        unknown = client.get("/api/v1/whoami/me", headers=_as("mallory"))
        assert unknown.status_code == 401
        assert client.get("/api/v1/whoami/me").status_code == 401
        client.cookies.set("host_session", "alice-token")
        assert client.post("/api/v1/whoami/echo", json={}).status_code == 403  # no CSRF header
        client.cookies.clear()
        gone = client.delete("/api/v1/marketplace/uninstall/whoami", headers=_as("alice"))
        assert gone.status_code == 200, gone.text


def test_async_database_urls_get_plugdocks_sync_driver() -> None:
    assert sync_url("postgresql+asyncpg://u:p@db/app") == "postgresql+psycopg://u:p@db/app"
    assert sync_url("sqlite+aiosqlite:////srv/app.db") == "sqlite:////srv/app.db"
    assert sync_url("mysql+aiomysql://root:@db/app") == "mysql+pymysql://root:@db/app"
    assert sync_url("postgresql+psycopg://u:p@db/app") == "postgresql+psycopg://u:p@db/app"


def test_a_host_user_must_be_a_host_user(tmp_path: Path) -> None:
    """A dependency returning anything else is a host bug, said plainly (a 500, not a user)."""

    def current_user() -> dict[str, Any]:
        return {"id": 1, "username": "x", "is_admin": True}

    app = FastAPI()
    settings = load_settings(home=tmp_path / "instance", plugin_local_dir=tmp_path / "modules")
    url = f"sqlite:///{tmp_path / 'host.db'}"
    PluginHost(HostAuth(current_user=current_user), settings=settings, database_url=url).mount(app)
    with TestClient(app, raise_server_exceptions=False) as client:
        answer = client.get("/api/v1/marketplace/installed")
        assert answer.status_code == 500
        assert json.loads(answer.text) == {"detail": "internal error"}


STAFF = (
    "from fastapi import APIRouter\n\nfrom plugdock import sdk\n\n"
    "router = APIRouter(prefix='/api/v1/staff')\n\n\n"
    "@router.get('/names')\ndef names(users: sdk.Users, user: sdk.CurrentUser) -> list:\n"
    "    return [[u.username, u.role] for u in users]\n"
)


@pytest.mark.parametrize(
    "isolation", ["inprocess", pytest.param("process", marks=pytest.mark.processes)]
)
@pytest.mark.parametrize("shares_users", [True, False], ids=["shared", "not-shared"])
def test_sdk_users_are_the_hosts_users_in_either_isolation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, isolation: str, shares_users: bool
) -> None:
    """``sdk.Users`` lists what ``HostAuth.users`` gives, in the panel and in a plugin's own
    process alike (never plugdock's own users table, empty in a host); 501 when the host
    shares no users."""
    monkeypatch.setenv("PLUGDOCK_ISOLATION", isolation)
    folder = make_plugin(
        tmp_path / "src",
        "staff",
        extra_files={"backend/routes.py": STAFF},
        metadata={"backend": {"routes": ["/api/v1/staff/*"]}, "permissions": ["core:users:read"]},
    )
    pack_into(folder, tmp_path / "modules")
    url = f"sqlite:///{tmp_path / 'host.db'}"
    engine = create_engine(url)

    def host_users() -> list[HostUser]:
        with engine.connect() as conn:
            rows = conn.execute(select(accounts).order_by(accounts.c.id)).all()
        return [HostUser(id=r.id, username=r.name, is_admin=r.is_admin) for r in rows]

    app = build_host(tmp_path, url, [], users=host_users if shares_users else None)
    with TestClient(app) as client:
        install = {"plugin_id": "staff", "version": None}
        installed = client.post("/api/v1/marketplace/install", json=install, headers=_as("alice"))
        assert installed.status_code == 200, installed.text
        names = client.get("/api/v1/staff/names", headers=_as("bob"))
        if shares_users:
            assert names.status_code == 200, names.text
            assert names.json() == [["alice", "admin"], ["bob", "user"]]
        else:
            assert names.status_code == 501, names.text
            assert "does not share its users" in names.json()["detail"]


def test_a_host_serves_the_frame_runtime_under_its_own_path_only(tmp_path: Path) -> None:
    """A plugin frame loads in any host: its runtime is under /plugins-ui/_/, not /static/."""
    from plugdock.host.frontend import STATIC_DIR

    if not (STATIC_DIR / "frame.html").is_file():
        pytest.skip("the web UI is not built (make web)")
    app = build_host(tmp_path, f"sqlite:///{tmp_path / 'host.db'}", [])
    frame_html = (STATIC_DIR / "frame.html").read_text(encoding="utf-8")
    assert "/static/" not in frame_html  # the host's /static/ is the host's
    with TestClient(app) as client:
        for name in ("frame.js", "sdk.js", "app.css", "vendor/react.js", "vendor/jsx-runtime.js"):
            answer = client.get(f"/plugins-ui/_/{name}?v=1")
            assert answer.status_code == 200, name
            assert answer.headers["access-control-allow-origin"] == "*"
            assert "immutable" in answer.headers["cache-control"]
            assert f"/plugins-ui/_/{name.split('/')[-1]}" in frame_html or "vendor" in name
        # Only the frame's runtime: not the shell's page, app nor a path out of the folder.
        for name in ("index.html", "app.js", ".build-stamp", "../frontend.py", "%2e%2e/app.py"):
            assert client.get(f"/plugins-ui/_/{name}").status_code == 404, name
        assert client.get("/static/frame.js").status_code == 404  # nothing on the host's path


SETTINGS_ROUTES = (
    "from fastapi import APIRouter\n\nfrom plugdock import sdk\n\n"
    "router = APIRouter(prefix='/api/v1/greeter')\n\n\n"
    "@router.get('/hello')\ndef hello(config: sdk.PluginSettings) -> dict:\n"
    "    return {'greeting': config['greeting'], 'key': config['key']}\n"
)


def test_declared_settings_work_in_a_host_app(tmp_path: Path) -> None:
    schema = {
        "type": "object",
        "required": ["key"],
        "properties": {
            "greeting": {"type": "string", "default": "hello"},
            "key": {"type": "string", "writeOnly": True},
        },
    }
    folder = make_plugin(
        tmp_path / "src",
        "greeter",
        extra_files={"backend/routes.py": SETTINGS_ROUTES},
        metadata={"backend": {"routes": ["/api/v1/greeter/*"]}, "settings": schema},
    )
    pack_into(folder, tmp_path / "modules")
    app = build_host(tmp_path, f"sqlite:///{tmp_path / 'host.db'}", [])
    with TestClient(app) as client:
        installed = client.post(
            "/api/v1/marketplace/install", json={"plugin_id": "greeter"}, headers=_as("alice")
        )
        assert installed.status_code == 200, installed.text
        waiting = client.get("/api/v1/greeter/hello", headers=_as("bob"))
        assert waiting.status_code == 503 and "key: required" in waiting.json()["detail"]
        path = "/api/v1/plugins/greeter/settings"
        change = {"values": {"key": "host-secret", "greeting": "hi"}}
        assert client.put(path, json=change, headers=_as("bob")).status_code == 403
        saved = client.put(path, json=change, headers=_as("alice"))
        assert saved.status_code == 200, saved.text
        assert "host-secret" not in saved.text
        hello = client.get("/api/v1/greeter/hello", headers=_as("bob"))
        assert hello.json() == {"greeting": "hi", "key": "host-secret"}
