"""Host filters end to end in an embedding app: declared, applied inside the host's request
by plugins in the panel or in their own sandboxed processes, in priority order, each bounded;
a failing, hanging or wrongly typed filter is skipped and reported, a veto reaches the host.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI, Header, HTTPException
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient
from pydantic import BaseModel

from plugdock import FilterVeto, HostAuth, HostUser, PluginHost
from plugdock.config import load_settings
from plugdock.errors import PackageError, PlugdockError
from plugdock.package.metadata import parse_metadata
from support import make_plugin, pack_into

BOUND = 0.5  # PLUGDOCK_FILTER_TIMEOUT in these tests
HANG = 8  # seconds a hanging filter sleeps: far past the bound


class InvoiceTotal(BaseModel):
    """An invoice's total, before it is shown or charged."""

    invoice_id: int
    total: float


class Signup(BaseModel):
    email: str


USERS = {"alice-token": HostUser(id=1, username="alice", is_admin=True)}
ALICE = {"Authorization": "Bearer alice-token"}


def current_user(authorization: str | None = Header(None)) -> HostUser | None:
    if authorization is None:
        return None
    user = USERS.get(authorization.removeprefix("Bearer "))
    if user is None:
        raise HTTPException(401, "unknown token")
    return user


def build(tmp_path: Path) -> tuple[FastAPI, PluginHost]:
    app = FastAPI()
    settings = load_settings(home=tmp_path / "instance", plugin_local_dir=tmp_path / "modules")
    url = f"sqlite:///{tmp_path / 'host.db'}"
    host = PluginHost(HostAuth(current_user=current_user), settings=settings, database_url=url)
    host.filters.declare("invoice.total", InvoiceTotal)
    host.filters.declare("customer.signup", Signup)

    @app.get("/invoices/{invoice_id}/total")
    async def total(invoice_id: int) -> dict[str, Any]:
        value = await host.filters.apply(
            "invoice.total", InvoiceTotal(invoice_id=invoice_id, total=100)
        )
        return value.model_dump()

    @app.post("/signup")
    async def signup(body: Signup) -> Any:
        try:
            await host.filters.apply("customer.signup", body)
        except FilterVeto as veto:  # what a host does: show the plugin's message
            return JSONResponse({"refused": veto.message, "by": veto.plugin_id}, 409)
        return {"welcome": body.email}

    host.mount(app)
    return app, host


def filter_plugin(tmp_path: Path, plugin_id: str, code: str, filters: dict[str, Any]) -> None:
    folder = make_plugin(
        tmp_path / "src",
        plugin_id,
        extra_files={"backend/filters.py": code},
        metadata={"filters": filters},
    )
    pack_into(folder, tmp_path / "modules")


PLUGINS = {
    # runs first (priority 5): misbehaves on some invoices, else leaves the value alone
    "wonky": (
        "import asyncio\n\n\n"
        "async def check(value: dict) -> dict:\n"
        "    if value['invoice_id'] == 2:\n"
        "        return {'invoice_id': 2, 'total': 'lots'}\n"
        "    if value['invoice_id'] == 3:\n"
        "        raise RuntimeError('wonky broke')\n"
        f"    if value['invoice_id'] == 5:\n        await asyncio.sleep({HANG})\n"
        "    return value\n",
        {"invoice.total": {"handler": "filters:check", "priority": 5}},
    ),
    "discount": (  # sync, priority 20: halves (after fees, though its id sorts first)
        "def halve(value: dict) -> dict:\n    return value | {'total': value['total'] / 2}\n",
        {"invoice.total": {"handler": "filters:halve", "priority": 20}},
    ),
    "fees": (  # async, priority 10: adds a fee of 1
        "async def add_fee(value: dict) -> dict:\n"
        "    return value | {'total': value['total'] + 1}\n",
        {"invoice.total": {"handler": "filters:add_fee", "priority": 10}},
    ),
    "sleepy": (  # sync, priority 30: adds 1000, or hangs on invoice 4
        "import time\n\n\n"
        "def add(value: dict) -> dict:\n"
        f"    if value['invoice_id'] == 4:\n        time.sleep({HANG})\n"
        "    return value | {'total': value['total'] + 1000}\n",
        {"invoice.total": {"handler": "filters:add", "priority": 30}},
    ),
    "fraud": (  # the default priority; vetoes a domain
        "from plugdock import sdk\n\n\n"
        "def check_signup(value: dict) -> dict:\n"
        "    if value['email'].endswith('@spam.example'):\n"
        "        raise sdk.Veto('sign-ups from spam.example are not accepted')\n"
        "    return value\n",
        {"customer.signup": "filters:check_signup"},
    ),
}


def errors(client: TestClient) -> dict[str, str | None]:
    listed = client.get("/api/v1/marketplace/installed", headers=ALICE)
    assert listed.status_code == 200, listed.text
    return {p["id"]: p["error"] for p in listed.json()}


def total(client: TestClient, invoice_id: int) -> float:
    """The invoice's total after the filters; the request answers well within a hang."""
    started = time.monotonic()
    answer = client.get(f"/invoices/{invoice_id}/total")
    assert answer.status_code == 200, answer.text
    assert time.monotonic() - started < HANG / 2, "a hanging filter held the request"
    assert answer.json()["invoice_id"] == invoice_id
    return float(answer.json()["total"])


@pytest.mark.parametrize(
    "isolation", ["inprocess", pytest.param("process", marks=pytest.mark.processes)]
)
def test_filters_run_in_order_and_a_bad_one_is_skipped_and_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, isolation: str
) -> None:
    monkeypatch.setenv("PLUGDOCK_ISOLATION", isolation)
    monkeypatch.setenv("PLUGDOCK_FILTER_TIMEOUT", str(BOUND))
    for plugin_id, (code, filters) in PLUGINS.items():
        filter_plugin(tmp_path, plugin_id, code, filters)
    app, _host = build(tmp_path)
    with TestClient(app) as client:
        for plugin_id in PLUGINS:
            done = client.post(
                "/api/v1/marketplace/install", json={"plugin_id": plugin_id}, headers=ALICE
            )
            assert done.status_code == 200, done.text

        # wonky (5) → fees (10) → discount (20) → sleepy (30): (100 + 1) / 2 + 1000
        assert total(client, 1) == 1050.5
        assert errors(client) == dict.fromkeys(PLUGINS)

        assert total(client, 2) == 1050.5  # wonky's wrong type: skipped, not the host's error
        assert "returned a wrong value" in (errors(client)["wonky"] or "")
        assert total(client, 3) == 1050.5  # wonky raises: skipped
        assert "wonky broke" in (errors(client)["wonky"] or "")
        assert total(client, 5) == 1050.5  # wonky hangs (async): cut at the bound
        assert "ran over its 0.5 s" in (errors(client)["wonky"] or "")
        assert total(client, 1) == 1050.5  # and it runs again next time

        assert total(client, 4) == 50.5  # sleepy hangs (sync): the request goes on without it
        trouble = errors(client)["sleepy"] or ""
        assert "ran over its 0.5 s" in trouble
        if isolation == "inprocess":  # its thread cannot be stopped: skipped from now on
            assert "skipped until re-mounted" in trouble
            assert total(client, 1) == 50.5
        else:  # its process answers the next call: the bound is hard there
            assert total(client, 1) == 1050.5
        assert errors(client)["fees"] is None and errors(client)["discount"] is None

        # A disabled plugin's filter does not run.
        assert client.post("/api/v1/marketplace/disable/fees", headers=ALICE).status_code == 200
        assert total(client, 1) == (50 if isolation == "inprocess" else 1050)
        assert client.post("/api/v1/marketplace/enable/fees", headers=ALICE).status_code == 200
        # Mounted again: sleepy's overrun is behind it (in the panel it stays skipped: not
        # re-mounted), and fees runs again.
        assert total(client, 1) == (50.5 if isolation == "inprocess" else 1050.5)

        # A veto reaches the host with the plugin's message.
        refused = client.post("/signup", json={"email": "x@spam.example"})
        assert refused.status_code == 409
        assert refused.json() == {
            "refused": "sign-ups from spam.example are not accepted",
            "by": "fraud",
        }
        welcome = client.post("/signup", json={"email": "x@example.com"})
        assert welcome.status_code == 200 and welcome.json() == {"welcome": "x@example.com"}
        assert errors(client)["fraud"] is None  # a veto is the plugin's answer, not trouble

        points = client.get("/api/v1/extension-points", headers=ALICE)
        assert points.status_code == 200, points.text
        by_name = {(p["kind"], p["name"]): p for p in points.json()}
        listed = by_name["filter", "invoice.total"]
        assert listed["description"] == "An invoice's total, before it is shown or charged."
        assert [(s["plugin_id"], s["priority"]) for s in listed["subscribers"]] == [
            ("wonky", 5),
            ("fees", 10),
            ("discount", 20),
            ("sleepy", 30),
        ]
        assert by_name["filter", "customer.signup"]["subscribers"] == [
            {"plugin_id": "fraud", "handler": "filters:check_signup", "priority": 10}
        ]
        assert "total" in listed["payload_schema"]["properties"]

        if isolation == "inprocess":  # the CLI reads the same from the database
            env = os.environ | {
                "PLUGDOCK_HOME": str(tmp_path / "instance"),
                "PLUGIN_LOCAL_DIR": str(tmp_path / "modules"),
                "DATABASE_URL": f"sqlite:///{tmp_path / 'host.db'}",
                "COLUMNS": "400",  # rich's tables, unwrapped
            }
            cli = [sys.executable, "-m", "plugdock", "events", "list"]
            shown = subprocess.run(cli, env=env, capture_output=True, text=True, timeout=120)
            assert shown.returncode == 0, shown.stderr
            row = next(line for line in shown.stdout.splitlines() if "invoice.total" in line)
            assert "filter" in row
            assert row.index("wonky (filters:check, priority 5)") < row.index(
                "fees (filters:add_fee, priority 10)"
            ), row


def test_a_filter_on_an_undeclared_point_is_refused_at_install_and_upgrade(
    tmp_path: Path,
) -> None:
    code = "def tax(value):\n    return value\n"
    filter_plugin(
        tmp_path, "taxes", code, {"invoice.total": "filters:tax", "invoice.tax": "filters:tax"}
    )
    app, _host = build(tmp_path)
    with TestClient(app) as client:
        refused = client.post(
            "/api/v1/marketplace/install", json={"plugin_id": "taxes"}, headers=ALICE
        )
        assert refused.status_code == 422, refused.text
        assert "runs filter 'invoice.tax', which this host does not declare" in refused.text
        assert "invoice.total'" not in refused.text
        assert client.get("/api/v1/marketplace/installed", headers=ALICE).json() == []

        # 1.0.0 runs a declared filter only; 2.0.0 adds an undeclared one: refused, 1.0.0 stays.
        for version, filters in [
            ("1.0.0", {"invoice.total": "filters:tax"}),
            ("2.0.0", {"invoice.total": "filters:tax", "invoice.tax": "filters:tax"}),
        ]:
            folder = make_plugin(
                tmp_path / "again",
                "levies",
                version,
                extra_files={"backend/filters.py": code},
                metadata={"filters": filters},
            )
            pack_into(folder, tmp_path / "modules")
        done = client.post(
            "/api/v1/marketplace/install",
            json={"plugin_id": "levies", "version": "1.0.0"},
            headers=ALICE,
        )
        assert done.status_code == 200, done.text
        refused = client.post(
            "/api/v1/marketplace/upgrade",
            json={"plugin_id": "levies", "version": "2.0.0"},
            headers=ALICE,
        )
        assert refused.status_code == 422, refused.text
        assert "runs filter 'invoice.tax', which this host does not declare" in refused.text
        installed = client.get("/api/v1/marketplace/installed", headers=ALICE).json()
        assert [(p["id"], p["version"]) for p in installed] == [("levies", "1.0.0")]


def test_filters_without_a_backend_are_refused(tmp_path: Path) -> None:
    import shutil

    folder = make_plugin(
        tmp_path / "src",
        "hollow",
        metadata={"filters": {"invoice.total": "filters:f"}, "backend": {}},
    )
    shutil.rmtree(folder / "backend")
    pack_into(folder, tmp_path / "modules")
    app, _host = build(tmp_path)
    with TestClient(app) as client:
        refused = client.post(
            "/api/v1/marketplace/install", json={"plugin_id": "hollow"}, headers=ALICE
        )
        assert refused.status_code == 422, refused.text
        assert "filters are declared but backend/__init__.py is missing" in refused.text


def test_apply_checks_what_it_is_given(tmp_path: Path) -> None:
    import asyncio

    _app, host = build(tmp_path)
    value = InvoiceTotal(invoice_id=1, total=1)
    with pytest.raises(PlugdockError, match="not declared"):
        asyncio.run(host.filters.apply("invoice.tax", value))
    with pytest.raises(PlugdockError, match="must be a Signup"):
        asyncio.run(host.filters.apply("customer.signup", value))  # type: ignore[arg-type]
    with pytest.raises(PlugdockError, match="declared twice"):
        host.filters.declare("invoice.total", InvoiceTotal)
    with pytest.raises(PlugdockError, match="not a filter name"):
        host.filters.declare("Invoice Total", InvoiceTotal)


def test_metadata_filters_are_validated() -> None:
    def meta(filters: object) -> str:
        return (
            '{"id": "fees", "name": "Fees", "version": "1.0.0", "filters": '
            + __import__("json").dumps(filters)
            + "}"
        )

    parsed = parse_metadata(meta({"invoice.total": "filters:add_fee"}))
    assert parsed.filters["invoice.total"].handler == "filters:add_fee"
    assert parsed.filters["invoice.total"].priority == 10
    parsed = parse_metadata(meta({"invoice.total": {"handler": "f:g", "priority": -5}}))
    assert parsed.filters["invoice.total"].priority == -5
    for bad, problem in [
        ({"invoice.total": "os:system"}, None),  # resolved inside the backend only: allowed
        ({"Invoice Total": "filters:f"}, "not a filter name"),
        ({"invoice.total": "../x:f"}, "must be 'module:function'"),
        ({"invoice.total": {"handler": "f:g", "priority": "high"}}, "priority"),
        ({"invoice.total": {"handler": "f:g", "priority": 10**6}}, "priority"),
        ({"invoice.total": {"handler": "f:g", "shell": "rm"}}, "unknown field"),
    ]:
        if problem is None:
            parse_metadata(meta(bad))
            continue
        with pytest.raises(PackageError) as refused:
            parse_metadata(meta(bad))
        assert problem in str(refused.value), (bad, str(refused.value))
