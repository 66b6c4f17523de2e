"""Sign-in, tokens, roles, users and the audit log of the panel, through its HTTP API.

The app runs with its lifespan (``TestClient`` as a context manager), on real databases.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from fastapi import APIRouter
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, select, update

from panel import ADMIN_PASSWORD as PANEL_PASSWORD
from panel import start_panel
from plugdock import sdk
from plugdock.config import Settings, load_settings
from plugdock.core.db import login_throttle, make_engine, users
from plugdock.errors import PlugdockError
from plugdock.host import devices, throttle
from plugdock.host import users as user_store
from plugdock.host.app import create_app
from plugdock.host.auth import (
    ALGORITHM,
    BAD_CREDENTIALS,
    create_access_token,
    decode_access_token,
    load_secret_key,
)
from plugdock.host.state import panel_state
from plugdock.instance import audit

ADMIN_PASSWORD = "admin-password-1"
LOGIN = "/api/v1/auth/login"


def _settings(tmp_path: Path, database_url: str, **overrides: Any) -> Settings:
    values = {
        "home": tmp_path / "instance",
        "plugin_local_dir": tmp_path / "modules",
        "database_url": database_url,
        "lock_timeout": 30,
        "admin_password": ADMIN_PASSWORD,
    }
    return load_settings(**(values | overrides))


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'panel.db'}"


@pytest.fixture
def client(tmp_path: Path, sqlite_url: str) -> Iterator[TestClient]:
    with TestClient(create_app(_settings(tmp_path, sqlite_url))) as test_client:
        yield test_client


def _login(client: TestClient, username: str, password: str) -> dict[str, str]:
    response = client.post(LOGIN, json={"username": username, "password": password})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "bearer"
    return {"Authorization": f"Bearer {body['access_token']}"}


def _secret(client: TestClient) -> str:
    return load_secret_key(panel_state(client.app).settings)


def test_login_roles_users_and_audit_on_every_database(tmp_path: Path, database_url: str) -> None:
    with TestClient(create_app(_settings(tmp_path, database_url))) as client:
        admin = _login(client, "admin", ADMIN_PASSWORD)
        me = client.get("/api/v1/auth/me", headers=admin)
        assert me.status_code == 200
        assert me.json() | {"id": 0, "created_at": ""} == {
            "id": 0,
            "username": "admin",
            "role": "admin",
            "is_active": True,
            "created_at": "",
        }

        for username, password in [("admin", "wrong-password"), ("nobody", "whatever-1")]:
            bad = client.post(LOGIN, json={"username": username, "password": password})
            assert bad.status_code == 401
            assert bad.json() == {"detail": BAD_CREDENTIALS}
            assert bad.headers["www-authenticate"] == "Bearer"

        created = client.post(
            "/api/v1/users",
            json={"username": "Bob", "password": "bob-password-1", "role": "user"},
            headers=admin,
        )
        assert created.status_code == 201, created.text
        assert created.json()["username"] == "bob"
        again = {"username": "bob", "password": "bob-password-2"}
        assert client.post("/api/v1/users", json=again, headers=admin).status_code == 409

        bob = _login(client, "BOB", "bob-password-1")  # usernames are case-insensitive
        assert client.get("/api/v1/auth/me", headers=bob).json()["role"] == "user"
        for path in ["/api/v1/users", "/api/v1/audit"]:
            forbidden = client.get(path, headers=bob)
            assert forbidden.status_code == 403
            assert forbidden.json() == {"detail": "Admin privileges required"}
        assert client.post("/api/v1/users", json=again, headers=bob).status_code == 403
        board = client.get("/api/v1/dashboard", headers=bob).json()
        assert (board["users"], board["plugins_installed"], board["recent_activity"]) == (
            2,
            0,
            None,
        )

        listed = client.get("/api/v1/users", headers=admin).json()
        assert [u["username"] for u in listed] == ["admin", "bob"]
        board = client.get("/api/v1/dashboard", headers=admin).json()
        assert board["recent_activity"][0]["action"] == "login"

        log = client.get("/api/v1/audit", params={"action": "login_failed"}, headers=admin)
        assert log.status_code == 200
        failed = log.json()
        assert failed["total"] == 2
        # newest first: the unknown user came second
        # Anonymous attempts are not attributed to the account they name.
        assert [
            (e["actor"], e["detail"]["username"], e["detail"]["reason"]) for e in failed["items"]
        ] == [
            (None, "nobody", "unknown user"),
            (None, "admin", "wrong password"),
        ]
        page = client.get("/api/v1/audit", params={"limit": 1, "offset": 1}, headers=admin).json()
        everything = client.get("/api/v1/audit", headers=admin).json()
        assert page["items"] == everything["items"][1:2]
        actions = [e["action"] for e in reversed(everything["items"])]
        assert actions[:2] == ["user_create", "login"]  # first admin, then its login
        assert "user_create" in actions[2:]


def test_no_token_is_401_with_json_detail_and_challenge(client: TestClient) -> None:
    for method, path in [
        ("GET", "/api/v1/auth/me"),
        ("GET", "/api/v1/users"),
        ("POST", "/api/v1/users"),
        ("GET", "/api/v1/audit"),
        ("GET", "/api/v1/dashboard"),
    ]:
        response = client.request(method, path, json={})
        assert response.status_code == 401, (method, path)
        assert response.json() == {"detail": "Not authenticated"}
        assert response.headers["www-authenticate"] == "Bearer"
    assert client.get("/healthz").json() == {"status": "ok"}


def test_bad_tokens_are_401(client: TestClient) -> None:
    admin = _login(client, "admin", ADMIN_PASSWORD)
    token = admin["Authorization"].removeprefix("Bearer ")
    secret = _secret(client)
    engine = panel_state(client.app).engine
    with engine.connect() as conn:
        user = user_store.get_by_username(conn, "admin")
    assert user is not None
    ghost = user_store.UserRecord(999, "ghost", "admin", True, datetime.now(UTC), "x")
    stale = user_store.UserRecord(1, "admin", "admin", True, datetime.now(UTC), "old-hash")
    long_ago = datetime.now(UTC) - timedelta(hours=2)
    header, payload, signature = token.split(".")
    claims = decode_access_token(token, secret)
    sid = claims["sid"]
    cases = {
        "tampered signature": f"{header}.{payload}.{signature[:-4]}AAAA",
        "tampered claims": f"{header}.{jwt.encode(claims | {'sub': '2'}, 'x' * 32).split('.')[1]}"
        f".{signature}",
        "other key": create_access_token(
            user, "another-secret-" + "x" * 32, minutes=5, session_id=sid
        ),
        "expired": create_access_token(user, secret, minutes=60, now=long_ago, session_id=sid),
        "alg none": jwt.encode(claims, key=None, algorithm="none"),
        "garbage": "not-a-jwt",
        "unknown user": create_access_token(ghost, secret, minutes=5, session_id=sid),
        "old password": create_access_token(stale, secret, minutes=5, session_id=sid),
        "no password stamp": jwt.encode(
            {k: v for k, v in claims.items() if k != "pwd"}, secret, algorithm=ALGORITHM
        ),
        "no session": create_access_token(user, secret, minutes=5),
        "made-up session": create_access_token(user, secret, minutes=5, session_id="x" * 32),
    }
    for case, bad in cases.items():
        response = client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {bad}"})
        assert response.status_code == 401, case
        assert "invalid_token" in response.headers["www-authenticate"], case
        assert response.json()["detail"] in {
            "Invalid token",
            "Token has expired",
            "User not found or inactive",
            "Token revoked by a password change",
            "Session ended; sign in again",
        }, case
    made_up = cases["made-up session"]
    response = client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {made_up}"})
    assert response.json() == {"detail": "Session ended; sign in again"}
    expired = client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {cases['expired']}"})
    assert expired.json() == {"detail": "Token has expired"}
    basic = client.get("/api/v1/auth/me", headers={"Authorization": "Basic YWRtaW46eA=="})
    assert basic.status_code == 401
    assert client.get("/api/v1/auth/me", headers=admin).status_code == 200


def test_deactivated_user_is_refused_at_once(client: TestClient) -> None:
    admin = _login(client, "admin", ADMIN_PASSWORD)
    engine = panel_state(client.app).engine
    with engine.begin() as conn:
        conn.execute(update(users).values(is_active=False))
    response = client.get("/api/v1/auth/me", headers=admin)
    assert response.status_code == 401
    assert response.json() == {"detail": "User not found or inactive"}
    login = client.post(LOGIN, json={"username": "admin", "password": ADMIN_PASSWORD})
    assert login.status_code == 401
    assert login.json() == {"detail": BAD_CREDENTIALS}


def test_token_lifetime_follows_the_setting(tmp_path: Path, sqlite_url: str) -> None:
    settings = _settings(tmp_path, sqlite_url, token_minutes=0.5)
    with TestClient(create_app(settings)) as client:
        body = client.post(LOGIN, json={"username": "admin", "password": ADMIN_PASSWORD}).json()
        claims = decode_access_token(body["access_token"], _secret(client))
        assert claims["exp"] - claims["iat"] == 30
        assert body["expires_in"] == 30
        assert jwt.get_unverified_header(body["access_token"])["alg"] == ALGORITHM


def test_plugin_routes_get_the_same_users_through_the_sdk(client: TestClient) -> None:
    router = APIRouter(prefix="/api/v1/demo")

    @router.get("/whoami")
    def whoami(user: sdk.OptionalUser) -> dict[str, str | None]:
        return {"username": user.username if user else None}

    @router.post("/purge")
    def purge(admin: sdk.AdminUser) -> dict[str, str]:
        return {"by": admin.username}

    client.app.include_router(router)  # type: ignore[attr-defined]
    admin = _login(client, "admin", ADMIN_PASSWORD)
    assert client.get("/api/v1/demo/whoami").json() == {"username": None}
    assert client.get("/api/v1/demo/whoami", headers=admin).json() == {"username": "admin"}
    assert client.post("/api/v1/demo/purge").status_code == 401
    assert client.post("/api/v1/demo/purge", headers=admin).json() == {"by": "admin"}


def test_first_start_prints_a_generated_admin_password_once(
    tmp_path: Path, sqlite_url: str, capfd: pytest.CaptureFixture[str]
) -> None:
    settings = _settings(tmp_path, sqlite_url, admin_password=None)
    with TestClient(create_app(settings)) as client:
        err = capfd.readouterr().err
        line = next(x for x in err.splitlines() if "created admin user" in x)
        password = line.rsplit(": ", 1)[1]
        assert line == f"created admin user 'admin' with password: {password}"
        assert len(password) >= 16
        _login(client, "admin", password)
    with TestClient(create_app(settings)):  # second start: nothing created, nothing printed
        assert "created admin user" not in capfd.readouterr().err


def test_ensure_admin_uses_the_configured_password_and_runs_once(
    tmp_path: Path, database_url: str
) -> None:
    settings = _settings(tmp_path, database_url)
    engine = make_engine(database_url)
    try:
        results: list[str | None] = []
        errors: list[BaseException] = []
        barrier = threading.Barrier(2)

        def start_worker() -> None:
            try:
                barrier.wait()
                results.append(user_store.ensure_admin(engine, settings))
            except BaseException as error:
                errors.append(error)

        threads = [threading.Thread(target=start_worker) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        assert results == [None, None]  # configured password: nothing to show
        with engine.connect() as conn:
            [admin] = user_store.list_users(conn)
            assert (admin.username, admin.role) == ("admin", "admin")
            assert audit.count(conn, action=audit.USER_CREATE) == 1

        generated = _settings(tmp_path, database_url, admin_password=None)
        assert user_store.ensure_admin(engine, generated) is None  # users exist already
    finally:
        engine.dispose()


def test_ensure_admin_generates_a_password_when_none_is_configured(
    tmp_path: Path, sqlite_url: str
) -> None:
    settings = _settings(tmp_path, sqlite_url, admin_password=None)
    engine = make_engine(sqlite_url)
    try:
        password = user_store.ensure_admin(engine, settings)
        assert password is not None
        with engine.connect() as conn:
            record = user_store.get_by_username(conn, "admin")
        assert record is not None
        from plugdock.host.passwords import verify_password

        assert verify_password(record.password_hash, password)
        assert record.password_hash.startswith("$argon2id$")
        assert user_store.ensure_admin(engine, settings) is None
    finally:
        engine.dispose()


def test_secret_key_lives_in_the_database_created_once(tmp_path: Path, sqlite_url: str) -> None:
    """Replicas share only the database: the key is made once there, never in a file."""
    settings = _settings(tmp_path, sqlite_url)
    engine = make_engine(sqlite_url)
    keys: list[str] = []
    barrier = threading.Barrier(4)

    def load() -> None:
        barrier.wait()
        keys.append(load_secret_key(settings, engine))

    threads = [threading.Thread(target=load) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(keys) == 4
    assert len(set(keys)) == 1
    assert len(keys[0]) >= 32
    assert not settings.secret_key_path.exists()
    # Another machine on the same database (another instance folder) signs with it too.
    elsewhere = _settings(tmp_path / "other", sqlite_url)
    assert load_secret_key(elsewhere, engine) == keys[0]
    engine.dispose()

    configured = _settings(tmp_path, sqlite_url, secret_key="k" * 40)
    assert load_secret_key(configured) == "k" * 40
    with pytest.raises(PlugdockError, match="at least 32 bytes"):
        load_secret_key(_settings(tmp_path, sqlite_url, secret_key="short"))


def test_an_existing_key_file_moves_into_the_database(tmp_path: Path) -> None:
    """An instance from before keeps its tokens valid: its secret.key is imported once."""
    settings = _settings(tmp_path, f"sqlite:///{tmp_path / 'old.db'}")
    settings.home.mkdir(parents=True)
    settings.secret_key_path.write_text("o" * 48 + "\n")
    settings.secret_key_path.chmod(0o600)
    assert load_secret_key(settings) == "o" * 48
    settings.secret_key_path.unlink()  # from now on the database holds it
    assert load_secret_key(settings) == "o" * 48


def test_healthz_answers_503_when_the_database_is_down(client: TestClient) -> None:
    assert client.get("/healthz").status_code == 200
    app = client.app
    state = panel_state(app)
    working = state.engine
    down = create_engine(
        "postgresql+psycopg://nobody@127.0.0.1:9/none", connect_args={"connect_timeout": 1}
    )
    state.engine = down
    try:
        response = client.get("/healthz")
        assert response.status_code == 503
        assert response.json() == {"status": "unavailable"}
    finally:
        state.engine = working
        down.dispose()


def test_openapi_documents_the_core_api(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    for path in [
        "/healthz",
        "/api/v1/auth/login",
        "/api/v1/auth/me",
        "/api/v1/dashboard",
        "/api/v1/users",
        "/api/v1/audit",
    ]:
        assert path in schema["paths"], path
    components = schema["components"]
    assert {"UserOut", "UserCreate", "DashboardOut", "AuditPage", "TokenResponse"} <= set(
        components["schemas"]
    )
    assert components["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    users_get = schema["paths"]["/api/v1/users"]["get"]
    assert {"401", "403"} <= set(users_get["responses"])


def test_bad_input_is_422_not_500(client: TestClient) -> None:
    admin = _login(client, "admin", ADMIN_PASSWORD)
    assert client.post(LOGIN, json={"username": "admin"}).status_code == 422
    assert client.post(LOGIN, content=b"not json").status_code == 422
    for body in [
        {"username": "bob", "password": "short"},
        {"username": "bad name!", "password": "long-enough-1"},
        {"username": "bob", "password": "long-enough-1", "role": "root"},
    ]:
        response = client.post("/api/v1/users", json=body, headers=admin)
        assert response.status_code == 422, body
        assert "detail" in response.json()
    assert client.get("/api/v1/audit", params={"limit": 0}, headers=admin).status_code == 422


def test_booleans_are_json_booleans_only(client: TestClient) -> None:
    """Issue 24.5. Before: ``{"is_active": 0}`` (or "no", "off", "0") deactivated with 200."""
    admin = _login(client, "admin", ADMIN_PASSWORD)
    body = {"username": "bob", "password": "long-enough-1"}
    bob = client.post("/api/v1/users", json=body, headers=admin).json()
    for value in [0, 1, "0", "1", "no", "off", "false", "true", "yes", 0.0, [], {}]:
        answer = client.patch(
            f"/api/v1/users/{bob['id']}", json={"is_active": value}, headers=admin
        )
        assert answer.status_code == 422, (value, answer.text)
        assert answer.json()["detail"][0]["loc"] == ["body", "is_active"]
    assert _login(client, "bob", "long-enough-1")  # still active
    off = client.patch(f"/api/v1/users/{bob['id']}", json={"is_active": False}, headers=admin)
    assert off.status_code == 200 and off.json()["is_active"] is False
    unchanged = client.patch(f"/api/v1/users/{bob['id']}", json={"is_active": None}, headers=admin)
    assert unchanged.status_code == 200 and unchanged.json()["is_active"] is False


def test_private_answers_are_never_cached(client: TestClient) -> None:
    """Issue 24.6. Before: no ``Cache-Control`` on the token, the users, the audit log…"""
    login = client.post(LOGIN, json={"username": "admin", "password": ADMIN_PASSWORD})
    assert login.status_code == 200 and login.headers["cache-control"] == "no-store"
    admin = {"Authorization": f"Bearer {login.json()['access_token']}"}
    for path in [
        "/api/v1/auth/me",
        "/api/v1/users",
        "/api/v1/audit",
        "/api/v1/dashboard",
        "/api/v1/marketplace/installed",
        "/api/v1/marketplace/replicas",
        "/api/v1/frontend/plugins",
    ]:
        answer = client.get(path, headers=admin)
        assert answer.status_code == 200, path
        assert answer.headers["cache-control"] == "no-store", path
    assert client.get("/api/v1/auth/me").headers["cache-control"] == "no-store"  # a 401 too
    # What holds nothing private keeps its own caching (the shell is revalidated).
    assert "no-store" not in client.get("/healthz").headers.get("cache-control", "")
    shell = client.get("/marketplace", headers={"Accept": "text/html"})
    assert shell.headers["cache-control"] == "no-cache"


def test_only_admins_see_where_replicas_run(client: TestClient) -> None:
    """Issue 24.6. Before: any signed-in user read every replica's host, address and pid."""
    admin = _login(client, "admin", ADMIN_PASSWORD)
    body = {"username": "bob", "password": "long-enough-1"}
    assert client.post("/api/v1/users", json=body, headers=admin).status_code == 201
    bob = _login(client, "bob", "long-enough-1")
    refused = client.get("/api/v1/marketplace/replicas", headers=bob)
    assert refused.status_code == 403
    assert "pid" not in refused.text and socket.gethostname() not in refused.text
    listed = client.get("/api/v1/marketplace/replicas", headers=admin)
    assert listed.status_code == 200
    assert listed.json()[0]["host"] == socket.gethostname()[:255]
    assert listed.json()[0]["pid"] == os.getpid()


def _cli(args: list[str], settings: Settings, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = os.environ.copy() | {
        "PLUGDOCK_HOME": str(settings.home),
        "PLUGIN_LOCAL_DIR": str(settings.plugin_local_dir),
        "DATABASE_URL": settings.db_url,
    }
    return subprocess.run(
        [sys.executable, "-m", "plugdock", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


@pytest.mark.slow  # CLI runs in subprocesses
def test_user_cli_creates_lists_and_resets(tmp_path: Path, sqlite_url: str) -> None:
    settings = _settings(tmp_path, sqlite_url)
    created = _cli(
        ["user", "create", "bob", "--role", "user", "--password-stdin"],
        settings,
        "bob-password-1\n",
    )
    assert created.returncode == 0, created.stderr
    assert "created user 'bob' (role user)" in created.stdout

    duplicate = _cli(["user", "create", "BOB", "--password-stdin"], settings, "other-pass-1\n")
    assert duplicate.returncode == 1
    assert duplicate.stderr.strip() == "error: user 'bob' already exists"
    short = _cli(["user", "create", "carol", "--password-stdin"], settings, "short\n")
    assert short.returncode == 1
    assert "at least 8 characters" in short.stderr
    role = _cli(["user", "create", "dave", "--role", "root", "--password-stdin"], settings, "x\n")
    assert role.returncode == 1
    assert "invalid role 'root'" in role.stderr

    with TestClient(create_app(settings)) as client:  # users exist: no admin is created
        bob = _login(client, "bob", "bob-password-1")
        assert client.get("/api/v1/auth/me", headers=bob).json()["role"] == "user"

        reset = _cli(["user", "passwd", "bob", "--password-stdin"], settings, "bob-password-2\n")
        assert reset.returncode == 0, reset.stderr
        revoked = client.get("/api/v1/auth/me", headers=bob)  # tokens before the change die
        assert revoked.json() == {"detail": "Token revoked by a password change"}
        bad = client.post(LOGIN, json={"username": "bob", "password": "bob-password-1"})
        assert bad.status_code == 401
        bob = _login(client, "bob", "bob-password-2")
        assert client.get("/api/v1/auth/me", headers=bob).status_code == 200
        with panel_state(client.app).engine.connect() as conn:
            assert audit.count(conn, action=audit.PASSWORD_CHANGE) == 1

    listed = _cli(["user", "list"], settings)
    assert listed.returncode == 0, listed.stderr
    assert "bob" in listed.stdout
    assert "user" in listed.stdout


def _guess(client: TestClient, username: str, password: str) -> int:
    return client.post(LOGIN, json={"username": username, "password": password}).status_code


@pytest.mark.slow  # many password hashes
def test_password_guessing_is_throttled(tmp_path: Path, database_url: str) -> None:
    settings = _settings(tmp_path, database_url)
    with TestClient(create_app(settings)) as client:
        assert [_guess(client, "admin", "guess") for _ in range(10)] == [401] * 10
        blocked = client.post(LOGIN, json={"username": "admin", "password": ADMIN_PASSWORD})
        assert blocked.status_code == 429  # reserved before the check: even the right password
        assert 0 < int(blocked.headers["Retry-After"]) <= 300
        assert "Too many failed sign-ins" in blocked.json()["detail"]
        with panel_state(client.app).engine.connect() as conn:
            rows = {r.bucket: r.failures for r in conn.execute(select(login_throttle))}
        assert rows == {"client:testclient": 10, "user:1": 10}  # in the database, shared


@pytest.mark.slow  # many password hashes
def test_a_good_sign_in_of_one_account_clears_nobody_elses_failures(
    tmp_path: Path, database_url: str
) -> None:
    """9 wrong guesses at admin, then bob's right password, repeated: the attack of issue 9."""
    settings = _settings(tmp_path, database_url)
    with TestClient(create_app(settings)) as client:
        admin = _login(client, "admin", ADMIN_PASSWORD)
        body = {"username": "bob", "password": "bob-password-1", "role": "user"}
        assert client.post("/api/v1/users", json=body, headers=admin).status_code == 201
        answers: list[int] = []
        for _ in range(3):
            answers += [_guess(client, "admin", f"guess-{n}") for n in range(9)]
            answers.append(_guess(client, "bob", "bob-password-1"))
        assert answers[:10] == [401] * 9 + [200]  # bob's success gave back only its own try
        assert answers[10] == 401  # the 10th failure of this client
        assert set(answers[11:]) == {429}  # blocked: bob's success cleared nothing
        assert answers.count(401) == 10


def _from(app: Any, address: str) -> TestClient:
    """A client of ``app`` at ``address`` (the app's lifespan is run by the caller's client)."""
    return TestClient(app, client=(address, 50000))


def _sign_in(client: TestClient, password: str, device_token: str | None = None) -> Any:
    body = {"username": "admin", "password": password, "device_token": device_token}
    return client.post(LOGIN, json=body)


@pytest.mark.slow  # password hashes
def test_guessers_cannot_lock_out_a_device_that_signed_in_before(
    tmp_path: Path, database_url: str
) -> None:
    """Issue 24.3: wrong guesses from two addresses locked the admin out, right password too."""
    with TestClient(create_app(_settings(tmp_path, database_url))) as first:
        app = first.app
        panel_state(app).login_limits = throttle.Limits(
            client_failures=3, account_failures=4, device_failures=2
        )
        laptop = _from(app, "203.0.113.5")
        signed_in = _sign_in(laptop, ADMIN_PASSWORD)
        assert signed_in.status_code == 200
        device_token = signed_in.json()["device_token"]

        # Two guessers fill the account's budget: unknown clients are locked out...
        guesses = [
            _sign_in(_from(app, f"198.51.100.{n % 2}"), "guess").status_code for n in range(5)
        ]
        assert guesses == [401] * 4 + [429]
        assert _sign_in(_from(app, "203.0.113.9"), ADMIN_PASSWORD).status_code == 429
        assert _sign_in(laptop, ADMIN_PASSWORD).status_code == 429  # no token: unknown too
        # ... the laptop that brings its device token is not, and gets it renewed.
        again = _sign_in(laptop, ADMIN_PASSWORD, device_token)
        assert again.status_code == 200, again.text
        renewed = again.json()["device_token"]
        assert devices.recognise(_secret(first), renewed, 1) == devices.recognise(
            _secret(first), device_token, 1
        )

        # Not transferable: a tampered token, or one of another account, counts as unknown.
        tampered = device_token[:-2] + ("AA" if not device_token.endswith("AA") else "BB")
        assert _sign_in(laptop, ADMIN_PASSWORD, tampered).status_code == 429
        other = devices.issue(_secret(first), 2)
        assert _sign_in(laptop, ADMIN_PASSWORD, other).status_code == 429

        # A device that guesses wrong itself is locked like an account, by its own bucket.
        thief = _from(app, "192.0.2.44")
        assert [_sign_in(thief, "guess", device_token).status_code for _ in range(3)] == [
            401,
            401,
            429,
        ]
        assert _sign_in(laptop, ADMIN_PASSWORD, device_token).status_code == 429
        with panel_state(app).engine.connect() as conn:
            rows = {r.bucket: r.failures for r in conn.execute(select(login_throttle))}
        device_rows = [bucket for bucket in rows if bucket.startswith("device:")]
        assert len(device_rows) == 1 and rows[device_rows[0]] == 2
        assert rows["user:1"] == 4  # the device's guesses never touched the account's count


def test_the_web_ui_gets_its_device_as_an_httponly_cookie_kept_after_sign_out(
    tmp_path: Path, sqlite_url: str
) -> None:
    with TestClient(create_app(_settings(tmp_path, sqlite_url))) as client:
        body = {"username": "admin", "password": ADMIN_PASSWORD}
        answer = client.post("/api/v1/auth/session", json=body)
        assert answer.status_code == 200
        cookie = next(
            line
            for line in answer.headers.get_list("set-cookie")
            if line.startswith(f"{devices.DEVICE_COOKIE}=")
        )
        assert "HttpOnly" in cookie and "Path=/api/v1/auth" in cookie
        assert "SameSite=strict" in cookie
        csrf = answer.json()["csrf_token"]
        assert client.post("/api/v1/auth/logout", headers={"X-CSRF-Token": csrf}).status_code == 204
        token = client.cookies.get(devices.DEVICE_COOKIE)
        assert devices.recognise(_secret(client), token, 1) is not None  # still held


def test_device_tokens_expire_and_name_one_account() -> None:
    secret = "k" * 32
    token = devices.issue(secret, 7, now=1_000_000)
    device = devices.recognise(secret, token, 7, now=1_000_000 + 60)
    assert device is not None
    assert devices.recognise(secret, token, 8, now=1_000_000) is None
    assert devices.recognise("x" * 32, token, 7, now=1_000_000) is None
    late = 1_000_000 + devices.DEVICE_SECONDS + 1
    assert devices.recognise(secret, token, 7, now=late) is None
    for junk in ("", ".", "a.b.c.d", "x" * 500, token.replace(".", "", 1)):
        assert devices.recognise(secret, junk, 7) is None
    assert devices.recognise(secret, devices.issue(secret, 7, device=device), 7) == device


def test_the_account_limit_holds_across_clients(database_url: str) -> None:
    engine = make_engine(database_url)
    limits = throttle.Limits(client_failures=3, account_failures=5, window=300)
    now = datetime(2026, 1, 1, 12, 0, 0)
    try:
        for n in range(5):  # five clients, one guess each, at one account
            throttle.reserve(engine, f"client:10.0.0.{n}", "user:7", limits, now=now)
        with pytest.raises(throttle.Throttled) as refused:
            throttle.reserve(engine, "client:10.0.0.99", "user:7", limits, now=now)
        assert refused.value.retry_after == 300
        # Refused as a whole: the fresh client's bucket was not charged for it.
        fresh = throttle.reserve(engine, "client:10.0.0.99", None, limits, now=now)
        assert fresh.slots == (("client:10.0.0.99", now),)
        # A success gives back one attempt, and only in the window it was taken in.
        reservation = throttle.reserve(engine, "client:10.0.0.98", "user:8", limits, now=now)
        with engine.begin() as conn:
            throttle.release(conn, reservation)
        with engine.connect() as conn:
            rows = {r.bucket: r.failures for r in conn.execute(select(login_throttle))}
        assert rows["user:7"] == 5
        assert rows["client:10.0.0.98"] == 0
        assert rows["user:8"] == 0
        later = now + timedelta(seconds=301)  # a new window: counting starts again
        assert throttle.reserve(engine, "client:10.0.0.0", "user:7", limits, now=later)
        with engine.connect() as conn:
            row = conn.execute(
                select(login_throttle).where(login_throttle.c.bucket == "user:7")
            ).one()
        assert (row.failures, row.window_start) == (1, later)
    finally:
        engine.dispose()


def test_the_throttle_table_stays_bounded(sqlite_url: str) -> None:
    """Spoofed or rotated addresses cannot grow the table or buy more guesses."""
    engine = make_engine(sqlite_url)
    limits = throttle.Limits(client_failures=3, account_failures=100, window=300, max_clients=5)
    now = datetime(2026, 1, 1, 12, 0, 0)
    try:
        old = now - timedelta(hours=1)
        for n in range(50):  # rows from an hour ago: pruned when a new bucket appears
            roomy = throttle.Limits(max_clients=1000)
            throttle.reserve(engine, f"client:192.0.2.{n}", None, roomy, now=old)
        refused = 0
        for n in range(100):
            try:
                throttle.reserve(engine, f"client:2001:db8:{n}::/64", "user:1", limits, now=now)
            except throttle.Throttled:
                refused += 1
        with engine.connect() as conn:
            buckets = [r.bucket for r in conn.execute(select(login_throttle))]
        assert len(buckets) <= 5 + 2  # the cap, the overflow bucket, the account
        assert throttle.OVERFLOW_BUCKET in buckets
        assert not any(b.startswith("client:192.0.2.") for b in buckets)
        assert refused == 100 - 5 - 3  # 5 addresses got a bucket, then 3 shared tries
    finally:
        engine.dispose()


def test_client_keys_group_ipv6_by_network() -> None:
    assert throttle.client_key("203.0.113.9") == "client:203.0.113.9"
    assert throttle.client_key("2001:db8::1") == throttle.client_key("2001:db8::ffff:1")
    assert throttle.client_key("2001:db8::1") == "client:2001:db8::/64"
    assert throttle.client_key("::ffff:203.0.113.9") == "client:203.0.113.9"
    assert throttle.client_key(None) == "client:unknown"


@pytest.mark.server  # a panel on loopback
def test_thirty_parallel_wrong_guesses_evaluate_at_most_the_limit(
    tmp_path: Path, database_url: str
) -> None:
    panel = start_panel(tmp_path, database_url, workers=2)  # one count for both workers
    try:
        barrier = threading.Barrier(30)

        def guess(n: int) -> int:
            with httpx.Client(timeout=120) as http:
                barrier.wait()
                body = {"username": "admin", "password": f"wrong-{n}"}
                return http.post(f"{panel.url}{LOGIN}", json=body).status_code

        with ThreadPoolExecutor(30) as pool:
            answers = list(pool.map(guess, range(30)))
        assert sorted(set(answers)) == [401, 429]
        assert answers.count(401) == 10  # exactly the limit, not 30
        right = httpx.post(
            f"{panel.url}{LOGIN}", json={"username": "admin", "password": PANEL_PASSWORD}
        )
        assert right.status_code == 429
    finally:
        panel.stop()


@pytest.mark.server  # panels on loopback
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_forwarded_for_is_ignored_unless_the_proxy_is_trusted(
    tmp_path: Path, database_url: str
) -> None:
    """Rotating X-Forwarded-For from loopback used to give every guess a fresh budget."""
    for folder in ("direct", "proxied"):
        (tmp_path / folder).mkdir()
    panel = start_panel(tmp_path / "direct", database_url)
    try:
        answers = [
            httpx.post(
                f"{panel.url}{LOGIN}",
                json={"username": "admin", "password": f"wrong-{n}"},
                headers={"X-Forwarded-For": f"198.51.100.{n}"},
            ).status_code
            for n in range(12)
        ]
        assert answers == [401] * 10 + [429] * 2
        right = httpx.post(
            f"{panel.url}{LOGIN}",
            json={"username": "admin", "password": PANEL_PASSWORD},
            headers={"X-Forwarded-For": "203.0.113.77"},
        )
        assert right.status_code == 429  # a fresh spoofed address buys nothing
        engine = make_engine(database_url)
        try:
            with engine.connect() as conn:
                clients = {e.detail["client"] for e in audit.query(conn, action="login_failed")}
        finally:
            engine.dispose()
        assert clients == {"127.0.0.1"}  # the real peer, never the spoofed address
    finally:
        panel.stop()

    trusted_url = f"sqlite:///{tmp_path / 'trusted.db'}"
    panel = start_panel(
        tmp_path / "proxied", trusted_url, extra_env={"PLUGDOCK_TRUSTED_PROXIES": "127.0.0.1"}
    )
    try:  # behind a trusted proxy, its X-Forwarded-For is the client
        for n in range(12):
            answer = httpx.post(
                f"{panel.url}{LOGIN}",
                json={"username": "admin", "password": "wrong"},
                headers={"X-Forwarded-For": f"198.51.100.{n}"},
            )
            assert answer.status_code == 401
        engine = make_engine(trusted_url)
        try:
            with engine.connect() as conn:
                clients = {e.detail["client"] for e in audit.query(conn, action="login_failed")}
        finally:
            engine.dispose()
        assert clients == {f"198.51.100.{n}" for n in range(12)}
    finally:
        panel.stop()
