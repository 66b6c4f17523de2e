"""Sessions and accounts: sign-out, deactivation, role changes, the browser cookie and CSRF.

Through the panel's HTTP API (``TestClient`` with the app's lifespan) on real databases,
and the ``plugdock user`` CLI in a subprocess.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from plugdock.config import Settings, load_settings
from plugdock.core.db import auth_sessions, make_engine
from plugdock.host import users as user_store
from plugdock.host.app import create_app
from plugdock.host.auth import CSRF_COOKIE, CSRF_HEADER, SESSION_COOKIE
from plugdock.host.state import panel_state
from plugdock.instance import audit

ADMIN_PASSWORD = "admin-password-1"
LOGIN = "/api/v1/auth/login"
SESSION = "/api/v1/auth/session"
LOGOUT = "/api/v1/auth/logout"
ME = "/api/v1/auth/me"


def _settings(tmp_path: Path, database_url: str, **overrides: Any) -> Settings:
    values = {
        "home": tmp_path / "instance",
        "plugin_local_dir": tmp_path / "modules",
        "database_url": database_url,
        "admin_password": ADMIN_PASSWORD,
    }
    return load_settings(**(values | overrides))


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    settings = _settings(tmp_path, f"sqlite:///{tmp_path / 'panel.db'}")
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def _bearer(client: TestClient, username: str, password: str) -> dict[str, str]:
    response = client.post(LOGIN, json={"username": username, "password": password})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def _add_user(
    client: TestClient, admin: dict[str, str], name: str, role: str = "user"
) -> dict[str, Any]:
    body = {"username": name, "password": f"{name}-password-1", "role": role}
    response = client.post("/api/v1/users", json=body, headers=admin)
    assert response.status_code == 201, response.text
    return response.json()


def test_logout_revokes_the_token_at_once_and_only_that_session(
    tmp_path: Path, database_url: str
) -> None:
    with TestClient(create_app(_settings(tmp_path, database_url))) as client:
        laptop = _bearer(client, "admin", ADMIN_PASSWORD)
        phone = _bearer(client, "admin", ADMIN_PASSWORD)
        assert client.post(LOGOUT, headers=laptop).status_code == 204
        revoked = client.get(ME, headers=laptop)
        assert revoked.status_code == 401
        assert revoked.json() == {"detail": "Session ended; sign in again"}
        assert client.get(ME, headers=phone).status_code == 200  # the other session lives
        assert client.post(LOGOUT, headers=laptop).status_code == 204  # again: harmless

        tablet = _bearer(client, "admin", ADMIN_PASSWORD)
        everywhere = client.post(LOGOUT, params={"everywhere": "true"}, headers=phone)
        assert everywhere.status_code == 204
        assert client.get(ME, headers=phone).status_code == 401
        assert client.get(ME, headers=tablet).status_code == 401
        engine = panel_state(client.app).engine
        with engine.connect() as conn:
            assert conn.execute(select(func.count()).select_from(auth_sessions)).scalar() == 0
            assert audit.count(conn, action=user_store.LOGOUT) == 2


def test_deactivation_revokes_tokens_and_reactivation_does_not_revive_them(
    tmp_path: Path, database_url: str
) -> None:
    with TestClient(create_app(_settings(tmp_path, database_url))) as client:
        admin = _bearer(client, "admin", ADMIN_PASSWORD)
        bob_id = _add_user(client, admin, "bob")["id"]
        bob = _bearer(client, "bob", "bob-password-1")
        assert client.get(ME, headers=bob).status_code == 200

        off = client.patch(f"/api/v1/users/{bob_id}", json={"is_active": False}, headers=admin)
        assert off.status_code == 200, off.text
        assert off.json()["is_active"] is False
        assert client.get(ME, headers=bob).status_code == 401  # at once, no expiry wait
        login = client.post(LOGIN, json={"username": "bob", "password": "bob-password-1"})
        assert login.status_code == 401

        on = client.patch(f"/api/v1/users/{bob_id}", json={"is_active": True}, headers=admin)
        assert on.json()["is_active"] is True
        assert client.get(ME, headers=bob).status_code == 401  # the old token stays dead
        assert client.get(ME, headers=_bearer(client, "bob", "bob-password-1")).status_code == 200


def test_role_changes_take_effect_on_the_next_request(tmp_path: Path, database_url: str) -> None:
    with TestClient(create_app(_settings(tmp_path, database_url))) as client:
        admin = _bearer(client, "admin", ADMIN_PASSWORD)
        bob_id = _add_user(client, admin, "bob")["id"]
        bob = _bearer(client, "bob", "bob-password-1")
        assert client.get("/api/v1/users", headers=bob).status_code == 403
        up = client.patch(f"/api/v1/users/{bob_id}", json={"role": "admin"}, headers=admin)
        assert up.json()["role"] == "admin"
        assert client.get("/api/v1/users", headers=bob).status_code == 200  # same token
        down = client.patch(f"/api/v1/users/{bob_id}", json={"role": "user"}, headers=bob)
        assert down.json()["role"] == "user"  # an admin may demote themselves while others remain
        assert client.get("/api/v1/users", headers=bob).status_code == 403
        assert client.patch(f"/api/v1/users/{bob_id}", json={}, headers=bob).status_code == 403
        with panel_state(client.app).engine.connect() as conn:
            changes = [e.detail for e in audit.query(conn, action=user_store.USER_UPDATE)]
        assert changes == [
            {"username": "bob", "role": "user"},
            {"username": "bob", "role": "admin"},
        ]


def test_the_last_active_admin_cannot_be_deactivated_or_demoted(
    tmp_path: Path, database_url: str
) -> None:
    with TestClient(create_app(_settings(tmp_path, database_url))) as client:
        admin = _bearer(client, "admin", ADMIN_PASSWORD)
        me = client.get(ME, headers=admin).json()
        for change in [{"is_active": False}, {"role": "user"}]:
            refused = client.patch(f"/api/v1/users/{me['id']}", json=change, headers=admin)
            assert refused.status_code == 409, change
            assert "last active admin" in refused.json()["detail"]
        assert client.get(ME, headers=admin).json()["role"] == "admin"
        assert (
            client.patch("/api/v1/users/999", json={"role": "user"}, headers=admin).status_code
            == 404
        )
        bad = client.patch(f"/api/v1/users/{me['id']}", json={"role": "root"}, headers=admin)
        assert bad.status_code == 422
        extra = client.patch(f"/api/v1/users/{me['id']}", json={"password": "x"}, headers=admin)
        assert extra.status_code == 422


def test_two_admins_demoting_each_other_at_once_leave_one(
    tmp_path: Path, database_url: str
) -> None:
    engine = make_engine(database_url)
    try:
        with engine.begin() as conn:
            ids = [
                user_store.create_user(conn, name, "long-password-1", role="admin").id
                for name in ("ann", "ben")
            ]
        barrier = threading.Barrier(2)
        outcomes: list[str] = []

        def demote(user_id: int) -> None:
            barrier.wait()
            try:
                with engine.begin() as conn:
                    user_store.update_user(conn, user_id, role="user")
                outcomes.append("demoted")
            except user_store.LastAdminError:
                outcomes.append("refused")

        threads = [threading.Thread(target=demote, args=(i,)) for i in ids]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(outcomes) == ["demoted", "refused"]
        with engine.connect() as conn:
            assert [u.role for u in user_store.list_users(conn)].count("admin") == 1
    finally:
        engine.dispose()


def test_browser_session_cookie_is_httponly_strict_and_needs_csrf(client: TestClient) -> None:
    signed_in = client.post(SESSION, json={"username": "admin", "password": ADMIN_PASSWORD})
    assert signed_in.status_code == 200, signed_in.text
    body = signed_in.json()
    assert "access_token" not in body  # the token never reaches the page's scripts
    cookies = {c.split("=", 1)[0]: c for c in signed_in.headers.get_list("set-cookie")}
    session_cookie = cookies[SESSION_COOKIE].lower()
    assert "httponly" in session_cookie
    assert "samesite=strict" in session_cookie
    assert "path=/" in session_cookie
    assert "secure" not in session_cookie  # plain http in this test
    assert "httponly" not in cookies[CSRF_COOKIE].lower()  # the page reads it for the header
    assert client.cookies[CSRF_COOKIE] == body["csrf_token"]

    assert client.get(ME).json()["username"] == "admin"  # safe methods need no CSRF token
    bob = {"username": "bob", "password": "bob-password-1"}
    for headers in [{}, {CSRF_HEADER: "0" * 64}, {CSRF_HEADER: ""}]:
        refused = client.post("/api/v1/users", json=bob, headers=headers)
        assert refused.status_code == 403, headers
        assert refused.json() == {"detail": "CSRF token missing or invalid"}
    assert client.get("/api/v1/users").json()[-1]["username"] == "admin"  # nothing created
    made = client.post("/api/v1/users", json=bob, headers={CSRF_HEADER: body["csrf_token"]})
    assert made.status_code == 201

    # A token (CSRF) of another session does not fit this one.
    other = TestClient(client.app)
    other_body = other.post(SESSION, json={"username": "admin", "password": ADMIN_PASSWORD})
    carol = {"username": "carol", "password": "carol-password-1"}
    crossed = client.post(
        "/api/v1/users", json=carol, headers={CSRF_HEADER: other_body.json()["csrf_token"]}
    )
    assert crossed.status_code == 403

    # API clients keep using bearer tokens, without CSRF tokens.
    bearer = _bearer(client, "admin", ADMIN_PASSWORD)
    api = TestClient(client.app)
    assert api.post("/api/v1/users", json=carol, headers=bearer).status_code == 201

    assert client.post(LOGOUT).status_code == 403  # cookie sign-out needs the token too
    out = client.post(LOGOUT, headers={CSRF_HEADER: body["csrf_token"]})
    assert out.status_code == 204
    cleared = " ".join(out.headers.get_list("set-cookie"))
    assert f'{SESSION_COOKIE}=""' in cleared or f"{SESSION_COOKIE}=;" in cleared
    assert SESSION_COOKIE not in client.cookies
    assert client.get(ME).status_code == 401


def test_cookie_is_secure_when_configured(tmp_path: Path) -> None:
    settings = _settings(tmp_path, f"sqlite:///{tmp_path / 'p.db'}", cookie_secure=True)
    with TestClient(create_app(settings), base_url="https://testserver") as client:
        signed_in = client.post(SESSION, json={"username": "admin", "password": ADMIN_PASSWORD})
        assert all("secure" in c.lower() for c in signed_in.headers.get_list("set-cookie"))


def _cli(args: list[str], settings: Settings) -> subprocess.CompletedProcess[str]:
    env = os.environ.copy() | {
        "PLUGDOCK_HOME": str(settings.home),
        "PLUGIN_LOCAL_DIR": str(settings.plugin_local_dir),
        "DATABASE_URL": settings.db_url,
    }
    return subprocess.run(
        [sys.executable, "-m", "plugdock", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


@pytest.mark.slow  # CLI runs in subprocesses
def test_user_cli_deactivates_activates_and_changes_roles(tmp_path: Path) -> None:
    settings = _settings(tmp_path, f"sqlite:///{tmp_path / 'panel.db'}")
    with TestClient(create_app(settings)) as client:
        admin = _bearer(client, "admin", ADMIN_PASSWORD)
        _add_user(client, admin, "bob")
        bob = _bearer(client, "bob", "bob-password-1")

        promoted = _cli(["user", "role", "bob", "admin"], settings)
        assert promoted.returncode == 0, promoted.stderr
        assert promoted.stdout.strip() == "'bob' is now admin"
        assert client.get("/api/v1/users", headers=bob).status_code == 200

        off = _cli(["user", "deactivate", "BOB"], settings)
        assert off.returncode == 0, off.stderr
        assert client.get(ME, headers=bob).status_code == 401
        on = _cli(["user", "activate", "bob"], settings)
        assert on.returncode == 0, on.stderr
        assert client.get(ME, headers=_bearer(client, "bob", "bob-password-1")).status_code == 200

        assert _cli(["user", "role", "bob", "user"], settings).returncode == 0
        last = _cli(["user", "deactivate", "admin"], settings)
        assert last.returncode == 1
        assert last.stderr.startswith("error: 'admin' is the last active admin")
        assert client.get(ME, headers=admin).status_code == 200
        for args, message in [
            (["user", "role", "bob", "root"], "invalid role 'root'"),
            (["user", "deactivate", "nobody"], "no user 'nobody'"),
        ]:
            failed = _cli(args, settings)
            assert failed.returncode == 1
            assert message in failed.stderr


def test_openapi_documents_sessions_and_accounts(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert "post" in paths[SESSION]
    assert "post" in paths[LOGOUT]
    assert "patch" in paths["/api/v1/users/{user_id}"]
    assert "429" in paths[LOGIN]["post"]["responses"]
