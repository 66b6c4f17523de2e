"""The billing example host (examples/hosts/billing): a real app of its own embedding plugdock.

Run as an operator would: seeded by its own command, served by uvicorn with 4 workers on
loopback, signed in with its own cookie; plugdock's settings from the environment.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, inspect, text

from billing_host import (
    ADMIN,
    BILLING,
    CLERK,
    CSRF,
    billing_client,
    billing_env,
    seed,
    start_billing,
)
from db_servers import POSTGRES_URL, _scratch_server_database
from panel import PID_ROUTES, Panel
from support import CHATBOT, CHATBOT_1_0, make_plugin, pack_into

pytestmark = pytest.mark.server

MARKET = "/api/v1/marketplace"
WORKERS = 4
# Headers plugdock puts on its own answers; the billing app's answers never get them.
PLUGDOCK_HEADERS = {
    "content-security-policy",
    "x-content-type-options",
    "x-frame-options",
    "referrer-policy",
    "cross-origin-opener-policy",
    "cache-control",
}


@pytest.fixture(params=["sqlite", "postgresql"])
def billing_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'billing.db'}"
    else:
        request.applymarker(pytest.mark.dbserver)
        yield from _scratch_server_database(POSTGRES_URL, "postgresql")


@pytest.fixture
def offered(tmp_path: Path) -> Path:
    """The source folder: the chatbot 1.0.0 and 1.1.0, and 'whoami' (answers its worker's pid)."""
    modules = tmp_path / "modules"
    pack_into(CHATBOT_1_0, modules)
    pack_into(CHATBOT, modules)
    whoami = make_plugin(
        tmp_path / "src",
        "whoami",
        metadata={"backend": {"routes": ["/api/v1/whoami/*"]}},
        extra_files={"backend/routes.py": PID_ROUTES},
    )
    pack_into(whoami, modules)
    return modules


@pytest.fixture
def billing(tmp_path: Path, billing_db: str, offered: Path) -> Iterator[Panel]:
    server = start_billing(tmp_path, billing_db, workers=WORKERS)
    yield server
    server.stop()


def one_connection_per_worker(server: Panel) -> dict[int, httpx.Client]:
    """Keep-alive clients, one on each worker (told apart by the pid 'whoami' answers)."""
    held: dict[int, httpx.Client] = {}
    for _ in range(400):
        client = httpx.Client(base_url=server.url, timeout=30)
        pid = client.get("/api/v1/whoami/pid").json()["pid"]
        if pid in held:
            client.close()
        else:
            held[pid] = client
        if len(held) == WORKERS:
            return held
    raise AssertionError(f"only reached workers {sorted(held)}")


def same_worker(client: httpx.Client, pid: int) -> None:
    assert client.get("/api/v1/whoami/pid").json()["pid"] == pid, "the connection moved"


def test_plugins_install_upgrade_and_uninstall_live_in_every_worker(
    billing: Panel, billing_db: str
) -> None:
    admin, clerk = billing_client(billing, ADMIN), billing_client(billing, CLERK)
    assert admin.get("/api/auth/me").json()["is_admin"] is True
    assert clerk.get("/api/auth/me").json()["is_admin"] is False
    assert httpx.get(f"{billing.url}/api/auth/me").status_code == 401

    # The billing app's own rules and its own CSRF-free routes are untouched.
    chatbot_1_0 = {"plugin_id": "ai_chatbot", "version": "1.0.0"}
    assert clerk.post(f"{MARKET}/install", json=chatbot_1_0, headers=CSRF).status_code == 403
    forged = admin.post(f"{MARKET}/install", json=chatbot_1_0)  # the cookie, no header
    assert forged.status_code == 403 and "X-Plugdock-CSRF" in forged.json()["detail"]
    assert admin.get(f"{MARKET}/installed").json() == []
    whoami = admin.post(f"{MARKET}/install", json={"plugin_id": "whoami"}, headers=CSRF)
    assert whoami.status_code == 200, whoami.text

    workers = one_connection_per_worker(billing)
    for client in workers.values():  # every worker's client signed in as the admin
        client.cookies.update(admin.cookies)

    installed = admin.post(f"{MARKET}/install", json=chatbot_1_0, headers=CSRF)
    assert installed.status_code == 200, installed.text
    # The moment the install answers, every worker serves the chatbot, admin checks included.
    for pid, client in workers.items():
        answer = client.get("/api/v1/chat/sessions")
        assert answer.status_code == 200, (pid, answer.text)
        same_worker(client, pid)
    assert clerk.get("/api/v1/chat/sessions").status_code == 403  # billing says: no admin

    visitor = httpx.Client(base_url=billing.url, timeout=30)
    chat = visitor.post(
        "/api/v1/chat/sessions",
        json={"guest_name": "Zoë", "guest_email": "zoe@example.com", "guest_phone": None},
    )
    assert chat.status_code == 201, chat.text
    session_id = chat.json()["session_id"]

    upgraded = admin.post(
        f"{MARKET}/upgrade", json={"plugin_id": "ai_chatbot", "version": None}, headers=CSRF
    )
    assert upgraded.status_code == 200, upgraded.text
    assert upgraded.json()["version"] == "1.1.0"
    for pid, client in workers.items():  # 1.1.0's rating route, the chat kept, everywhere
        sessions = client.get("/api/v1/chat/sessions").json()["items"]
        assert [s["id"] for s in sessions] == [session_id], pid
        rate = client.post(
            f"/api/v1/chat/sessions/{session_id}/rating",
            json={"stars": 5},
            headers={"X-Chat-Token": chat.json()["token"]} | CSRF,
        )
        assert rate.status_code in (200, 201, 409), (pid, rate.text)  # 409: rated already
        same_worker(client, pid)
    assert "chat_ratings" in table_names(billing_db)

    # Billing's own Alembic sees its models match and proposes nothing about plugdock's or
    # the chatbot's tables (migrations/env.py with skip_plugdock_tables).
    check = subprocess.run(
        [sys.executable, "-m", "alembic", "check"],
        cwd=BILLING,
        env=billing.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert "No new upgrade operations detected" in check.stdout + check.stderr

    listed = subprocess_list(billing)
    assert "ai_chatbot" in listed and "1.1.0" in listed  # the CLI sees the billing app's install

    gone = admin.delete(f"{MARKET}/uninstall/ai_chatbot", headers=CSRF)
    assert gone.status_code == 200, gone.text
    for pid, client in workers.items():
        assert client.get("/api/v1/chat/sessions").status_code == 404, pid
        same_worker(client, pid)
    assert not {t for t in table_names(billing_db) if t.startswith("chat_")}
    # The billing app's own tables and data are all there.
    assert {"accounts", "auth_sessions", "customers", "invoices", "payments"} <= set(
        table_names(billing_db)
    )
    assert "alembic_version" in table_names(billing_db)  # billing's, beside plugdock's own
    invoices = admin.get("/api/invoices")
    assert len(invoices.json()) == 3
    assert not PLUGDOCK_HEADERS & set(invoices.headers)  # billing's answers stay billing's
    assert "content-security-policy" in admin.get(f"{MARKET}/installed").headers  # plugdock's
    for client in [*workers.values(), visitor, admin, clerk]:
        client.close()


def subprocess_list(server: Panel) -> str:
    """``plugdock list`` with the billing app's environment (wide enough for the table)."""
    listed = subprocess.run(
        [sys.executable, "-m", "plugdock", "list"],
        env=server.env | {"COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert listed.returncode == 0, listed.stderr
    return listed.stdout


def table_names(database_url: str) -> list[str]:
    engine = create_engine(database_url)
    try:
        return [t.lower() for t in inspect(engine).get_table_names()]
    finally:
        engine.dispose()


def test_the_billing_apps_own_answers_are_unchanged_by_plugdock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same requests to the app built with and without plugdock: the same answers."""
    url = f"sqlite:///{tmp_path / 'billing.db'}"
    env = billing_env(tmp_path, url)
    seed(env)
    for name in ("DATABASE_URL", "PLUGDOCK_HOME", "PLUGIN_LOCAL_DIR"):
        monkeypatch.setenv(name, env[name])
    monkeypatch.syspath_prepend(str(BILLING))
    from billing.app import create_app

    def answers(with_plugdock: bool) -> list[tuple[int, dict[str, str], bytes]]:
        seen = []
        app = create_app(with_plugdock=with_plugdock)
        # No override in the host's app: with one, FastAPI rebuilds every dependency of
        # every billing route on each request (1.6x slower, bench/embedding.py).
        assert app.dependency_overrides == {}
        with TestClient(app) as client:
            requests = [
                ("GET", "/api/auth/me", {}),
                ("POST", "/api/auth/sign-in", {"json": {"email": CLERK[0], "password": "no"}}),
                ("POST", "/api/auth/sign-in", {"json": {"email": CLERK[0]}}),  # a 422
                ("POST", "/api/auth/sign-in", {"json": {"email": ADMIN[0], "password": ADMIN[1]}}),
                ("GET", "/api/customers", {}),
                ("GET", "/api/invoices/999", {}),
                ("GET", "/api/invoices?status=nope", {}),
                ("POST", "/api/customers", {"json": {"name": "Zed", "email": "not-an-email"}}),
                ("GET", "/api/nothing-here", {}),
            ]
            for method, path, options in requests:
                answer = client.request(method, path, **options)
                headers = {k: v for k, v in answer.headers.items() if k != "set-cookie"}
                seen.append((answer.status_code, headers, answer.content))
                assert not PLUGDOCK_HEADERS & set(answer.headers), (path, answer.headers)
        return seen

    plain, embedded = answers(False), answers(True)
    assert [status for status, _, _ in plain] == [401, 401, 422, 200, 200, 404, 422, 422, 404]
    assert embedded == plain
    assert "billing" in sys.modules  # imported from examples/hosts/billing


def test_a_hosts_crashes_and_validation_errors_keep_their_own_answers(tmp_path: Path) -> None:
    """plugdock's JSON 500 and input-free 422 are for its own routes; a host keeps its own."""
    from fastapi import FastAPI

    from plugdock import HostAuth, PluginHost
    from plugdock.config import load_settings

    def build(with_plugdock: bool) -> FastAPI:
        app = FastAPI()

        @app.get("/boom")
        def boom() -> None:
            raise RuntimeError("a bug of the host")

        @app.get("/count")
        def count(n: int) -> int:
            return n

        if with_plugdock:
            settings = load_settings(home=tmp_path / "instance", plugin_local_dir=tmp_path)
            auth = HostAuth(current_user=lambda: None)
            url = f"sqlite:///{tmp_path / 'host.db'}"
            PluginHost(auth, settings=settings, database_url=url).mount(app)
        return app

    def answers(app: FastAPI) -> list[tuple[int, str, str]]:
        with TestClient(app, raise_server_exceptions=False) as client:
            got = [client.get("/boom"), client.get("/count?n=x")]
            return [(a.status_code, a.headers["content-type"], a.text) for a in got]

    plain = answers(build(False))
    assert plain[0] == (500, "text/plain; charset=utf-8", "Internal Server Error")
    assert '"input":"x"' in plain[1][2]  # FastAPI's own 422
    assert answers(build(True)) == plain


def test_the_billing_apps_own_rules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Billing's own sign-in and admin rules, plugdock mounted (they are billing's alone)."""
    url = f"sqlite:///{tmp_path / 'billing.db'}"
    env = billing_env(tmp_path, url)
    seed(env)
    for name in ("DATABASE_URL", "PLUGDOCK_HOME", "PLUGIN_LOCAL_DIR"):
        monkeypatch.setenv(name, env[name])
    monkeypatch.syspath_prepend(str(BILLING))
    from billing.app import create_app

    def signed_in(client: TestClient, who: tuple[str, str]) -> TestClient:
        answer = client.post("/api/auth/sign-in", json={"email": who[0], "password": who[1]})
        assert answer.status_code == 200, answer.text
        return client

    app = create_app()
    with TestClient(app) as admin:  # runs the app's lifespan; the clerk's client shares it
        signed_in(admin, ADMIN)
        clerk = signed_in(TestClient(app), CLERK)
        customer = {"name": "Zed", "email": "zed@example.com"}
        assert clerk.post("/api/customers", json=customer).status_code == 403
        zed = admin.post("/api/customers", json=customer)
        assert zed.status_code == 201, zed.text

        lines = [{"description": "Work", "quantity": 3, "unit_price_cents": 10_00}]
        draft = clerk.post("/api/invoices", json={"customer_id": zed.json()["id"], "lines": lines})
        assert draft.status_code == 201, draft.text  # a clerk drafts
        invoice_id = draft.json()["id"]
        assert (draft.json()["total_cents"], draft.json()["number"]) == (30_00, None)
        assert clerk.post(f"/api/invoices/{invoice_id}/open").status_code == 403
        pay = {"invoice_id": invoice_id, "amount_cents": 10_00}
        assert admin.post("/api/payments", json=pay).status_code == 409  # a draft is not due
        opened = admin.post(f"/api/invoices/{invoice_id}/open")
        assert opened.json()["number"] == f"INV-{invoice_id:05d}"

        assert clerk.post("/api/payments", json=pay).status_code == 403
        assert admin.post("/api/payments", json=pay).status_code == 201
        too_much = admin.post("/api/payments", json=pay | {"amount_cents": 25_00})
        assert too_much.status_code == 422  # only 20.00 is due
        assert admin.get(f"/api/invoices/{invoice_id}").json()["status"] == "open"
        assert clerk.post(f"/api/invoices/{invoice_id}/mark-paid").status_code == 403
        paid = admin.post(f"/api/invoices/{invoice_id}/mark-paid").json()
        assert (paid["status"], paid["paid_cents"], len(paid["payments"])) == ("paid", 30_00, 2)
        assert admin.post("/api/payments", json=pay).status_code == 409

        wrong = admin.post("/api/auth/sign-in", json={"email": CLERK[0], "password": "guess"})
        assert wrong.status_code == 401
        assert admin.get("/api/auth/me").json()["email"] == ADMIN[0]  # still the admin
        assert clerk.post("/api/auth/sign-out").status_code == 204
        assert clerk.get("/api/invoices").status_code == 401

        # An expired session is no session, for billing and for plugdock alike.
        from billing.models import AuthSession, utcnow

        with app.state.db.sessions() as db:
            for session in db.query(AuthSession):
                session.expires_at = utcnow()
            db.commit()
        assert admin.get("/api/auth/me").status_code == 401
        assert admin.get(f"{MARKET}/installed").status_code == 401


RECEIPTS = (
    "from sqlalchemy import text\n\nfrom plugdock import sdk\n\n\n"
    "def on_paid(event: sdk.Event) -> None:\n"
    "    with sdk.session() as db:\n"
    "        db.execute(text('INSERT INTO receipts_sent (invoice, email, cents) "
    "VALUES (:invoice_id, :customer_email, :total_cents)'), event.payload)\n"
)


def test_a_paid_invoice_reaches_the_plugin_that_handles_invoice_paid(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Billing's own events: declared when plugdock is mounted, emitted by billing's API in
    the transaction that marks the invoice paid, handled by a plugin."""
    url = f"sqlite:///{tmp_path / 'billing.db'}"
    env = billing_env(tmp_path, url)
    seed(env)
    for name in ("DATABASE_URL", "PLUGDOCK_HOME", "PLUGIN_LOCAL_DIR"):
        monkeypatch.setenv(name, env[name])
    monkeypatch.syspath_prepend(str(BILLING))
    receipts = make_plugin(
        tmp_path / "src",
        "receipts",
        up_sql="CREATE TABLE receipts_sent (invoice INTEGER, email TEXT, cents INTEGER);\n",
        down_sql="DROP TABLE receipts_sent;\n",
        extra_files={"backend/handlers.py": RECEIPTS},
        metadata={"events": {"invoice.paid": "handlers:on_paid"}},
    )
    pack_into(receipts, Path(env["PLUGIN_LOCAL_DIR"]))
    from billing.app import create_app

    with TestClient(create_app()) as admin:
        assert (
            admin.post(
                "/api/auth/sign-in", json={"email": ADMIN[0], "password": ADMIN[1]}
            ).status_code
            == 200
        )
        points = {p["name"] for p in admin.get("/api/v1/extension-points").json()}
        assert {"customer.created", "invoice.created", "invoice.paid"} <= points
        install = {"plugin_id": "receipts"}
        done = admin.post("/api/v1/marketplace/install", json=install, headers=CSRF)
        assert done.status_code == 200, done.text

        zed = admin.post("/api/customers", json={"name": "Zed", "email": "zed@example.com"}).json()
        lines = [{"description": "Work", "quantity": 2, "unit_price_cents": 15_00}]
        drafted = {"customer_id": zed["id"], "lines": lines}
        invoice = admin.post("/api/invoices", json=drafted).json()
        admin.post(f"/api/invoices/{invoice['id']}/open")
        too_much = {"invoice_id": invoice["id"], "amount_cents": 99_00}
        refused = admin.post("/api/payments", json=too_much)
        assert refused.status_code == 422  # nothing paid, nothing emitted
        assert admin.post(f"/api/invoices/{invoice['id']}/mark-paid").status_code == 200

        engine = create_engine(url)

        def sent() -> list[tuple[int, str, int]]:
            with engine.connect() as conn:
                return [tuple(r) for r in conn.execute(text("SELECT * FROM receipts_sent"))]

        deadline = time.monotonic() + 15
        while not sent() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sent() == [(invoice["id"], "zed@example.com", 30_00)]


GATEKEEPER = (
    "from plugdock import sdk\n\n\n"
    "async def check(value: dict) -> dict:\n"
    "    if value['email'].endswith('@blocked.example'):\n"
    "        raise sdk.Veto('sign-ups from blocked.example are refused')\n"
    "    return {**value, 'name': value['name'].strip().title()}\n"
)


def test_a_plugin_filters_or_vetoes_a_new_customer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """customer.signup: billing applies its filters in the request (a sync route), a plugin
    tidies the name or refuses the sign-up, and billing stores nothing refused."""
    url = f"sqlite:///{tmp_path / 'billing.db'}"
    env = billing_env(tmp_path, url)
    seed(env)
    for name in ("DATABASE_URL", "PLUGDOCK_HOME", "PLUGIN_LOCAL_DIR"):
        monkeypatch.setenv(name, env[name])
    monkeypatch.syspath_prepend(str(BILLING))
    gatekeeper = make_plugin(
        tmp_path / "src",
        "gatekeeper",
        extra_files={"backend/filters.py": GATEKEEPER},
        metadata={"filters": {"customer.signup": "filters:check"}},
    )
    pack_into(gatekeeper, Path(env["PLUGIN_LOCAL_DIR"]))
    from billing.app import create_app

    with TestClient(create_app()) as admin:
        signin = {"email": ADMIN[0], "password": ADMIN[1]}
        assert admin.post("/api/auth/sign-in", json=signin).status_code == 200
        install = {"plugin_id": "gatekeeper"}
        done = admin.post("/api/v1/marketplace/install", json=install, headers=CSRF)
        assert done.status_code == 200, done.text

        tidied = admin.post("/api/customers", json={"name": "  ada lovelace ", "email": "a@x.io"})
        assert tidied.status_code == 201, tidied.text
        assert tidied.json()["name"] == "Ada Lovelace"
        before = len(admin.get("/api/customers").json())
        refused = admin.post("/api/customers", json={"name": "Eve", "email": "eve@blocked.example"})
        assert refused.status_code == 409
        assert "sign-ups from blocked.example are refused" in refused.text
        assert len(admin.get("/api/customers").json()) == before
