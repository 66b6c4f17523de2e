"""The panel's OpenAPI document is its contract, checked by schemathesis (issue 24, 10-14).

One panel (``plugdock serve`` on loopback, SQLite) with the chatbot installed; schemathesis
(the CLI, every check, a fixed seed, a few examples per operation) runs against it as a
non-admin, anonymously and as the admin, and must find nothing. The plugin server's run is
in tests/server/test_server_contract.py. Besides, each numbered problem of the issue has a
small test of its own here, which failed on the code before the fix.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from contract_support import CHECKS, run_schemathesis
from panel import Panel, start_panel
from support import CHATBOT, pack_into

USER = "viewer"
USER_PASSWORD = "viewer-pass-for-tests"

pytestmark = pytest.mark.slow  # a panel, and schemathesis runs of 10-20 s each

# Every check, every operation; a reason for each one left out. (Checks are enabled here, not
# with --checks all, which would override the per-operation choice below.)
CONFIG = (
    "[checks]\n"
    + "".join(f"{check}.enabled = true\n" for check in CHECKS)
    + """
# POST /api/v1/auth/logout ends the session whose token the run uses: every later request
# would be a 401. (The anonymous run covers it.)
[[operations]]
include-path = "/api/v1/auth/logout"
enabled = {signed_in_enabled}

# An upload is refused unless the bytes are a valid plugin zip, which JSON Schema cannot
# say ("format: binary", "contentType: application/zip"): schema-valid random bytes are a 422.
[[operations]]
include-path = "/api/v1/marketplace/upload"
checks.positive_data_acceptance.enabled = false

# A plugin's settings are the names its own metadata declares, known per plugin only at run
# time: the document can say "an object of values", not which names; others are a 422.
[[operations]]
include-path = "/api/v1/plugins/{{plugin_id}}/settings"
checks.positive_data_acceptance.enabled = false
"""
)


@pytest.fixture(scope="module")
def panel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Panel]:
    tmp = tmp_path_factory.mktemp("contract")
    pack_into(CHATBOT, tmp / "modules")
    running = start_panel(tmp, f"sqlite:///{tmp / 'instance' / 'panel.db'}")
    try:
        with running.client(running.login()) as admin:
            installed = admin.post("/api/v1/marketplace/install", json={"plugin_id": "ai_chatbot"})
            assert installed.status_code == 200, installed.text
            created = admin.post(
                "/api/v1/users",
                json={"username": USER, "password": USER_PASSWORD, "role": "user"},
            )
            assert created.status_code == 201, created.text
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def tokens(panel: Panel) -> dict[str, str | None]:
    """Signed in before any run: the anonymous run's failed sign-ins throttle this client."""
    return {"user": panel.login(USER, USER_PASSWORD), "anonymous": None, "admin": panel.login()}


# -- the numbered problems, one by one -----------------------------------------------------


def document(panel: Panel) -> dict[str, Any]:
    return httpx.get(f"{panel.url}/openapi.json").json()


def test_every_operation_declares_its_errors_and_security(panel: Panel) -> None:
    """Problem 10: the marketplace, the frontend and the chatbot declared only 200/422 and
    no security; now each declares the sign-in it needs and the errors that come with it."""
    paths = document(panel)["paths"]
    install = paths["/api/v1/marketplace/install"]["post"]
    assert {"400", "401", "403", "404", "409", "413", "422", "502", "503"} <= set(
        install["responses"]
    )
    assert install["security"] == [{"HTTPBearer": []}, {"session": [], "csrf": []}]
    catalog = paths["/api/v1/marketplace/plugins"]["get"]
    assert catalog["security"] == [{"HTTPBearer": []}, {"session": []}]
    assert "401" in catalog["responses"] and "403" not in catalog["responses"]
    assert paths["/api/v1/frontend/plugins"]["get"]["security"] == []  # public, said outright
    close = paths["/api/v1/chat/sessions/{session_id}/close"]["post"]  # a plugin's admin route
    assert {"401", "403", "404", "409", "422"} <= set(close["responses"])
    messages = paths["/api/v1/chat/sessions/{session_id}/messages"]["get"]  # a visitor's
    assert {"401", "403", "404", "429"} <= set(messages["responses"])
    for path, item in paths.items():
        for method, operation in item.items():
            for code, answer in operation["responses"].items():
                if code.startswith("4"):
                    schema = answer["content"]["application/json"]["schema"]["$ref"]
                    wanted = "ValidationErrorOut" if code == "422" else "ErrorOut"
                    assert schema.endswith(wanted), (method, path, code, schema)
    schemes = document(panel)["components"]["securitySchemes"]
    assert schemes["session"] == {
        "type": "apiKey",
        "in": "cookie",
        "name": "plugdock_session",
        "description": schemes["session"]["description"],
    }
    assert schemes["csrf"]["name"] == "X-CSRF-Token"
    assert not any(name.startswith("plugdock_") for name in schemes)  # placeholders replaced


def test_every_422_is_a_list_of_issues(panel: Panel, tokens: dict[str, str | None]) -> None:
    """Problem 11: a refused username (and any refusal answered 422) sent a string."""
    with panel.client(tokens["admin"]) as admin:
        answer = admin.post("/api/v1/users", json={"username": "#", "password": "x" * 12})
        assert answer.status_code == 422
        assert isinstance(answer.json()["detail"], list)
        bad_zip = admin.post(
            "/api/v1/marketplace/upload", files={"file": ("p.zip", b"not a zip", "application/zip")}
        )
        assert bad_zip.status_code == 422, bad_zip.text  # was an undocumented 400
        assert isinstance(bad_zip.json()["detail"], list)
        assert "not a readable zip" in bad_zip.json()["detail"][0]["msg"]


def test_the_schema_says_what_is_refused(panel: Panel) -> None:
    """Problem 11: values the schema allowed were refused (a version with a leading zero,
    a grant in another case, a username with a space): now the schema refuses them too."""
    import re

    schemas = document(panel)["components"]["schemas"]
    version = schemas["InstallRequest"]["properties"]["version"]["anyOf"][0]["pattern"]
    assert not re.fullmatch(version, "1.0.087948-aY") and re.fullmatch(version, "1.0.0-rc.1")
    grant = schemas["UpgradeRequest"]["properties"]["grant"]["items"]["pattern"]
    assert re.fullmatch(grant, "network:api.openai.com:443")
    assert not re.fullmatch(grant, "NETWORK") and not re.fullmatch(grant, "network:a:0443")
    username = schemas["UserCreate"]["properties"]["username"]["pattern"]
    assert not re.fullmatch(username, "#") and not re.fullmatch(username, " bob")
    phone = schemas["SessionStart"]["properties"]["guest_phone"]["pattern"]  # string or null
    assert not re.fullmatch(phone, "call me") and re.fullmatch(phone, "+44 20 7946 0958")


def test_405_lists_every_method_of_the_path(panel: Panel) -> None:
    """Problem 11: ``PUT /api/v1/users`` answered ``Allow: GET`` though POST is served too."""
    answer = httpx.put(f"{panel.url}/api/v1/users")
    assert answer.status_code == 405
    assert {m.strip() for m in answer.headers["allow"].split(",")} >= {"GET", "POST"}


def test_replica_timestamps_carry_their_timezone(
    panel: Panel, tokens: dict[str, str | None]
) -> None:
    """Problem 12: ``started_at``/``last_seen`` had no timezone, against ``date-time``."""
    with panel.client(tokens["admin"]) as admin:
        replicas = admin.get("/api/v1/marketplace/replicas").json()
        installed = admin.get("/api/v1/marketplace/installed").json()
    assert replicas
    stamps = (replicas[0]["started_at"], replicas[0]["last_seen"], installed[0]["installed_at"])
    for stamp in stamps:
        assert stamp.endswith(("Z", "+00:00")), stamp


# -- schemathesis: last, as the admin's run may uninstall the chatbot ------------------------


# The non-admin first: the admin's run may change that user (PATCH /users/{id}).
@pytest.mark.parametrize("role", ["user", "anonymous", "admin"])
def test_schemathesis_finds_nothing(
    panel: Panel, tokens: dict[str, str | None], role: str, tmp_path: Path
) -> None:
    token = tokens[role]
    config = CONFIG.format(signed_in_enabled="false" if token else "true")
    run = run_schemathesis(panel.url, tmp_path, token, config)
    assert run.returncode == 0, run.stdout[-20000:] + run.stderr[-2000:]
    assert "No issues found" in run.stdout or " passed" in run.stdout, run.stdout[-3000:]


def test_an_embedding_hosts_document_declares_the_errors_too(tmp_path: Path) -> None:
    """Problem 10 in any host: PluginHost.mount completes the document; without schemes of
    its own the host's sign-in stays a placeholder scheme ("the host's sign-in")."""
    from fastapi import FastAPI, Request

    from plugdock import HostAuth, PluginHost
    from plugdock.config import load_settings

    def current_user(request: Request) -> None:
        return None

    app = FastAPI()
    settings = load_settings(home=tmp_path / "instance", plugin_local_dir=tmp_path / "modules")
    PluginHost(
        HostAuth(current_user=current_user),
        settings=settings,
        database_url=f"sqlite:///{tmp_path / 'host.db'}",
    ).mount(app)
    found = app.openapi()
    install = found["paths"]["/api/v1/marketplace/install"]["post"]
    assert {"401", "403", "409", "422"} <= set(install["responses"])
    assert install["responses"]["401"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "ErrorOut"
    )
    assert install["security"] == [{"plugdock_admin": []}]  # the strongest need, alone
    catalog = found["paths"]["/api/v1/marketplace/plugins"]["get"]
    assert catalog["security"] == [{"plugdock_signed_in": []}]
    assert found["components"]["securitySchemes"]["plugdock_admin"]["type"] == "http"
