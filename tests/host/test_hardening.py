"""The attacks of issue 9 that are about the panel's edges, each performed for real.

One panel (``plugdock serve`` on loopback, SQLite) with a probe plugin installed serves
the module: oversized and streamed bodies, validation errors that must not echo what
was sent, ids with a trailing newline, security headers, file modes and log levels.
Each test fails on the code before the fix (the note in its docstring says how).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from panel import Panel, start_panel
from plugdock.errors import PackageError, PlugdockError
from plugdock.package.metadata import parse_metadata
from plugdock.sources import parse_requirement
from support import make_plugin, pack_into

MIB = 1024 * 1024
PACKAGE_LIMIT = 3 * MIB
PROBE_ROUTES = """\
from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

router = APIRouter(prefix="/api/v1/echo-probe")


class Note(BaseModel):
    secret: str = Field(min_length=40)


@router.post("/notes")
def add_note(note: Note) -> dict:
    return {"ok": True}


@router.post("/raw")
async def raw(request: Request) -> dict:
    return {"size": len(await request.body())}


@router.get("/crash")
def crash() -> dict:
    raise RuntimeError("a bug in the probe")
"""


@pytest.fixture(scope="module")
def panel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Panel]:
    tmp = tmp_path_factory.mktemp("hardening")
    probe = make_plugin(tmp / "src", "echo_probe", extra_files={"backend/routes.py": PROBE_ROUTES})
    pack_into(probe, tmp / "modules")
    running = start_panel(
        tmp,
        f"sqlite:///{tmp / 'instance' / 'panel.db'}",
        extra_env={"PLUGDOCK_MAX_PACKAGE_BYTES": str(PACKAGE_LIMIT)},
    )
    try:
        with running.client(running.login()) as admin:
            installed = admin.post("/api/v1/marketplace/install", json={"plugin_id": "echo_probe"})
            assert installed.status_code == 200, installed.text
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def admin(panel: Panel) -> Iterator[httpx.Client]:
    with panel.client(panel.login()) as client:
        yield client


# -- raw HTTP: what a client that does not wait for the answer sends ------------------------


def raw_exchange(
    url: str, head: str, body_parts: Sequence[bytes] = ()
) -> tuple[int, dict[str, str], bytes]:
    """Send ``head`` (request line + headers) and ``body_parts``, then read the answer.

    A 10 s read timeout: a server that waits for the rest of a declared body never
    answers, and the test fails with ``socket.timeout``.
    """
    address = urlsplit(url)
    with socket.create_connection((address.hostname, address.port), timeout=10) as sock:
        sock.sendall(head.encode("latin-1"))
        for part in body_parts:
            sock.sendall(part)
        received = b""
        while b"\r\n\r\n" not in received:
            chunk = sock.recv(65536)
            assert chunk, f"connection closed before an answer: {received!r}"
            received += chunk
        header_block, _, body = received.partition(b"\r\n\r\n")
        lines = header_block.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {k.strip().lower(): v.strip() for k, v in (x.split(":", 1) for x in lines[1:])}
        length = int(headers.get("content-length", "0"))
        while len(body) < length:
            chunk = sock.recv(65536)
            if not chunk:
                break
            body += chunk
        return status, headers, body


def _head(method: str, path: str, url: str, extra: str) -> str:
    host = urlsplit(url).netloc
    return f"{method} {path} HTTP/1.1\r\nHost: {host}\r\n{extra}\r\n"


# -- request size --------------------------------------------------------------------------


def test_a_100_mib_login_is_refused_before_its_body_is_read(panel: Panel) -> None:
    """Before: the panel waited for (and buffered) the whole body; here it never comes."""
    head = _head(
        "POST",
        "/api/v1/auth/login",
        panel.url,
        f"Content-Type: application/json\r\nContent-Length: {100 * MIB}\r\n",
    )
    status, headers, body = raw_exchange(panel.url, head)  # not one byte of the body sent
    assert status == 413
    assert headers["content-type"] == "application/json"
    assert "too large" in json.loads(body)["detail"]
    assert httpx.get(f"{panel.url}/healthz").status_code == 200


def test_a_chunked_body_is_cut_at_the_limit(panel: Panel) -> None:
    """No Content-Length: counted as it streams. Before: read whole, answered 422 with it."""
    head = _head(
        "POST",
        "/api/v1/auth/login",
        panel.url,
        "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n",
    )
    piece = b"x" * (64 * 1024)
    chunk = f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    status, _, body = raw_exchange(panel.url, head, [b'4\r\n{"a"\r\n'] + [chunk] * 17)
    assert status == 413
    assert b"xxxx" not in body


def test_plugin_routes_get_the_same_limit(panel: Panel, admin: httpx.Client) -> None:
    """Before: a plugin route read any body it was sent."""
    assert admin.post("/api/v1/echo-probe/raw", content=b"y" * 1000).json() == {"size": 1000}
    head = _head("POST", "/api/v1/echo-probe/raw", panel.url, f"Content-Length: {2 * MIB}\r\n")
    status, _, _ = raw_exchange(panel.url, head)
    assert status == 413


def test_only_the_package_upload_may_send_up_to_the_package_limit(
    panel: Panel, admin: httpx.Client
) -> None:
    """The upload gets PLUGDOCK_MAX_PACKAGE_BYTES (3 MiB here), not the 1 MiB default."""
    files = {"file": ("big.zip", b"z" * (2 * MIB), "application/zip")}
    under = admin.post("/api/v1/marketplace/upload", files=files)
    assert under.status_code != 413, under.text  # whatever the route makes of it
    over = f"Content-Type: multipart/form-data; boundary=x\r\nContent-Length: {4 * MIB}\r\n"
    status, _, _ = raw_exchange(
        panel.url, _head("POST", "/api/v1/marketplace/upload", panel.url, over)
    )
    assert status == 413
    # The same 2 MiB anywhere else is too large.
    assert admin.post("/api/v1/users", content=b"{" + b" " * (2 * MIB)).status_code == 413


# -- validation errors ---------------------------------------------------------------------


def _assert_plain_problems(response: httpx.Response, *secrets: str) -> None:
    assert response.status_code == 422, response.text
    for secret in secrets:
        assert secret not in response.text
    problems = response.json()["detail"]
    assert problems and all(set(p) == {"loc", "msg", "type"} for p in problems), problems


def test_a_too_short_password_is_not_echoed(admin: httpx.Client) -> None:
    """Before: FastAPI's 422 carried ``input``: the password came back in the answer."""
    response = admin.post("/api/v1/users", json={"username": "bob", "password": "Sh0rt!x"})
    _assert_plain_problems(response, "Sh0rt!x")
    assert any(p["loc"] == ["body", "password"] for p in response.json()["detail"])


def test_a_bad_login_body_is_not_echoed(panel: Panel) -> None:
    marker = "guess-" + "q" * 5000
    response = httpx.post(
        f"{panel.url}/api/v1/auth/login", json={"username": ["admin"], "password": [marker]}
    )
    _assert_plain_problems(response, marker, "guess-")


def test_plugin_route_validation_errors_are_not_echoed(admin: httpx.Client) -> None:
    response = admin.post("/api/v1/echo-probe/notes", json={"secret": "tiny-secret-value"})
    _assert_plain_problems(response, "tiny-secret-value")


# -- ids with a trailing newline -----------------------------------------------------------


def test_an_id_with_a_trailing_newline_is_refused_everywhere(
    panel: Panel, admin: httpx.Client, tmp_path: Path
) -> None:
    """Before: ``re.match`` with ``$`` accepted ``ai_chatbot\\n`` (``$`` matches before it)."""
    with pytest.raises(PlugdockError, match="not a valid plugin id"):
        parse_requirement("echo_probe\n")
    installed = panel.cli("install", "echo_probe\n")
    assert installed.returncode == 1
    assert installed.stderr.strip() == r"error: 'echo_probe\n' is not a valid plugin id"
    created = subprocess.run(
        [sys.executable, "-m", "plugdock", "new", "ai_chatbot\n", "--dir", str(tmp_path)],
        env=panel.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert created.returncode == 1
    assert created.stderr.startswith("error: ")
    assert list(tmp_path.iterdir()) == []  # before: a folder named 'ai_chatbot\n'

    # The API: path and body patterns are matched whole (pydantic's regex engine).
    assert admin.delete("/api/v1/marketplace/uninstall/echo_probe%0A").status_code == 422
    assert admin.get("/api/v1/marketplace/plugins/echo_probe%0A").status_code in (404, 422)
    install = admin.post("/api/v1/marketplace/install", json={"plugin_id": "echo_probe\n"})
    assert install.status_code == 422

    # The metadata model: the id and the route patterns.
    base = {"id": "ai_chatbot", "name": "x", "version": "1.0.0"}
    parse_metadata(json.dumps(base))
    for bad in (
        base | {"id": "ai_chatbot\n"},
        base | {"backend": {"routes": ["/api/v1/chat/*\n"]}},
        base | {"frontend": {"routes": ["/support/chats\n"]}},
        base | {"dependencies": {"other\n": ">=1.0.0"}},
    ):
        with pytest.raises(PackageError):
            parse_metadata(json.dumps(bad))


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# -- files and logs ------------------------------------------------------------------------


def test_a_new_instance_is_private(panel: Panel) -> None:
    """Before: panel.db was 0644 in a 0755 folder (hashes and audit readable by everyone)."""
    home = Path(panel.env["PLUGDOCK_HOME"])
    assert _mode(home) == 0o700
    expected = [
        "panel.db",
        "panel.db-wal",
        "panel.db-shm",
        "addons/addon_registry.json",
        "plugins.generation",
        ".lock",
    ]
    modes = {name: _mode(home / name) for name in expected}  # all exist after an install
    # In process mode too: plugin processes reach SQLite only through the panel's relay, so
    # no plugin user or group needs the files (docs/isolation.md).
    assert modes == dict.fromkeys(expected, 0o600)
    assert not (home / "secret.key").exists()  # the signing key lives in the database


@pytest.mark.server  # its own panels
def test_an_open_instance_is_reported_and_warnings_reach_the_log(tmp_path: Path) -> None:
    """Before: no check at all, and ``serve`` logged only errors (failed sign-ins unseen)."""
    first = start_panel(tmp_path, f"sqlite:///{tmp_path / 'instance' / 'panel.db'}")
    first.stop()
    home = tmp_path / "instance"
    home.chmod(0o755)
    (home / "panel.db").chmod(0o644)

    doctor = subprocess.run(
        [sys.executable, "-m", "plugdock", "doctor"],
        env=first.env | {"COLUMNS": "2000"},  # one finding per line, however long the path
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert doctor.returncode == 1
    assert "open to other users (mode 755); chmod 700 it" in doctor.stderr
    assert "panel.db is open to other users (mode 644); chmod 600 it" in doctor.stderr

    again = start_panel(tmp_path, f"sqlite:///{home / 'panel.db'}")
    try:
        marker = "nobody_" + "k" * 12
        response = httpx.post(
            f"{again.url}/api/v1/auth/login", json={"username": marker, "password": "wrong-pass"}
        )
        assert response.status_code == 401
    finally:
        again.stop()
    log = again.output()
    assert "WARNING" in log
    assert "panel.db is open to other users (mode 644)" in log
    assert marker in log  # the failed sign-in, a warning
    assert _mode(home) == 0o755  # reported, not changed behind the operator's back


# -- security headers ----------------------------------------------------------------------


def test_every_answer_carries_the_security_headers(panel: Panel, admin: httpx.Client) -> None:
    """Before: no CSP, nosniff, referrer or framing policy on any answer."""
    html = {"Accept": "text/html"}
    answers = {
        "shell": httpx.get(f"{panel.url}/marketplace", headers=html),
        "health": httpx.get(f"{panel.url}/healthz"),
        "401": httpx.get(f"{panel.url}/api/v1/auth/me"),
        "404": httpx.get(f"{panel.url}/api/v1/nothing-here"),
        "static": httpx.get(f"{panel.url}/static/app.js"),
        "core": admin.get("/api/v1/marketplace/installed"),
        "plugin": admin.post("/api/v1/echo-probe/raw", content=b"{}"),
        "422": admin.post("/api/v1/users", json={}),
        "docs": httpx.get(f"{panel.url}/docs"),
    }
    head = _head("POST", "/api/v1/auth/login", panel.url, f"Content-Length: {5 * MIB}\r\n")
    status, too_large, _ = raw_exchange(panel.url, head)
    assert status == 413
    for name, headers in [(k, v.headers) for k, v in answers.items()] + [("413", too_large)]:
        assert headers["x-content-type-options"] == "nosniff", name
        assert headers["referrer-policy"] == "no-referrer", name
        assert headers["x-frame-options"] == "DENY", name
        csp = headers["content-security-policy"]
        for directive in ("frame-ancestors 'none'", "object-src 'none'", "base-uri 'none'"):
            assert directive in csp, (name, csp)
        assert "'unsafe-eval'" not in csp, name
        if name != "docs":
            assert "script-src 'self'" in csp and "'unsafe-inline'" not in csp, (name, csp)


def test_audit_offsets_past_what_a_database_holds_are_422(admin: httpx.Client) -> None:
    """Issue 24.4. Before: ``/api/v1/audit?offset=2**63`` crashed the query (a plain 500)."""
    for offset in (2**63, 2**64, 10**30, -1):
        answer = admin.get(f"/api/v1/audit?offset={offset}", headers={"Connection": "close"})
        assert answer.status_code == 422, (offset, answer.text)
        assert answer.json()["detail"][0]["loc"] == ["query", "offset"]
    page = admin.get(f"/api/v1/audit?offset={2**63 - 1}")
    assert page.status_code == 200 and page.json()["items"] == []
    assert admin.get("/api/v1/audit?limit=501").status_code == 422


def test_no_answer_shows_where_the_panel_keeps_its_files(
    panel: Panel, admin: httpx.Client, tmp_path: Path
) -> None:
    """Issue 24.6. Before: an unknown plugin's 404 named the source folder, and an upload
    whose code fails named the file in the instance folder it was unpacked to."""
    home = Path(panel.env["PLUGDOCK_HOME"])
    folders = {str(home), str(home.resolve()), panel.env["PLUGIN_LOCAL_DIR"], str(home.parent)}
    answers = {
        "unknown plugin": admin.post("/api/v1/marketplace/install", json={"plugin_id": "nope"})
    }
    assert answers["unknown plugin"].status_code == 404
    assert "PLUGIN_LOCAL_DIR" in answers["unknown plugin"].json()["detail"]
    broken = {
        "leak_syntax": {"backend/routes.py": "def (\n"},  # SyntaxError names the file
        "leak_import": {"backend/routes.py": "raise RuntimeError(__file__)\n"},
        "leak_hook": {
            "backend/__init__.py": "from .routes import router\n\n\n"
            "def on_install(ctx):\n    raise RuntimeError(__file__)\n"
        },
    }
    for plugin_id, files in broken.items():
        package = pack_into(make_plugin(tmp_path / "src", plugin_id, extra_files=files), tmp_path)
        upload = {"file": (package.name, package.read_bytes(), "application/zip")}
        answers[plugin_id] = admin.post("/api/v1/marketplace/upload", files=upload)
        assert answers[plugin_id].status_code == 422, answers[plugin_id].text
        # Where the file was: said, not shown (process mode: the sandbox's own /plugin/).
        assert "<instance>" in answers[plugin_id].text or "/plugin/" in answers[plugin_id].text
    for name, answer in answers.items():
        for folder in folders:
            assert folder not in answer.text, (name, answer.text)


def test_replicas_are_named_for_admins_only() -> None:
    """Issue 24.6: ``/installed`` problems named each replica (host and pid) to any user."""
    from datetime import UTC, datetime

    from plugdock.host.marketplace import _plugin_replicas
    from plugdock.runtime.replicas import ReplicaInfo

    now = datetime.now(UTC)
    replica = ReplicaInfo(
        id="db-host-7:1a2b3c4d/4242-cafe0001",
        host="db-host-7",
        address="10.0.0.7:8000",
        pid=4242,
        started_at=now,
        last_seen=now,
        generation=3,
        ready=False,
        failures={"notes": "SyntaxError in /srv/panel/instance/addons/backend/notes/x.py"},
        live=True,
    )
    behind = ReplicaInfo(**(replica.__dict__ | {"id": "db-host-8:1/9-x", "failures": {}}))

    def hide(text: str) -> str:
        return text.replace("/srv/panel/instance", "<instance>")

    counts = _plugin_replicas("notes", 4, [replica, behind], hide=hide, named=False)
    assert (counts.converged, counts.total) == (0, 2)
    assert counts.problems == [
        "a replica: SyntaxError in <instance>/addons/backend/notes/x.py",
        "a replica: behind (serves generation 3 of 4)",
    ]
    named = _plugin_replicas("notes", 4, [replica, behind], hide=hide, named=True)
    assert named.problems[0].startswith("db-host-7:1a2b3c4d/4242-cafe0001: SyntaxError")


def test_a_crash_is_a_json_500_with_the_security_headers(panel: Panel, admin: httpx.Client) -> None:
    """Issue 24.4. Before: a plain-text "Internal Server Error" without any of the headers."""
    answer = admin.get("/api/v1/echo-probe/crash", headers={"Connection": "close"})
    assert answer.status_code == 500
    assert answer.headers["content-type"] == "application/json"
    assert answer.json() == {"detail": "internal error"}
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]
    assert answer.headers["cache-control"] == "no-store"
    if panel.env.get("PLUGDOCK_ISOLATION") == "process":
        return  # the plugin's process logs it, not the panel
    deadline = time.monotonic() + 10  # logged with its traceback, just after the answer
    while "RuntimeError: a bug in the probe" not in panel.output():
        assert time.monotonic() < deadline, panel.output()[-2000:]
        time.sleep(0.05)


def test_the_shell_and_the_docs_allow_exactly_their_own_inline_scripts(panel: Panel) -> None:
    """The import map (and Swagger UI's start-up script) run by hash; nothing else inline."""

    def hashes(text: str, only_importmap: bool) -> set[str]:
        found = set()
        for attrs, body in re.findall(r"<script([^>]*)>(.*?)</script>", text, re.S):
            if "src=" in attrs or (only_importmap and "importmap" not in attrs):
                continue
            digest = hashlib.sha256(body.encode()).digest()
            found.add("sha256-" + base64.b64encode(digest).decode())
        return found

    shell = httpx.get(f"{panel.url}/", headers={"Accept": "text/html"})
    allowed = set(re.findall(r"'(sha256-[^']+)'", shell.headers["content-security-policy"]))
    if "importmap" in shell.text:  # the built shell (make web); else the "not built" page
        assert allowed == hashes(shell.text, True) != set()
    else:
        assert allowed == set()
    docs = httpx.get(f"{panel.url}/docs")
    assert docs.status_code == 200 and "/openapi.json" in docs.text
    csp = docs.headers["content-security-policy"]
    assert set(re.findall(r"'(sha256-[^']+)'", csp)) == hashes(docs.text, False) != set()
    assert "https://cdn.jsdelivr.net" in csp
    assert httpx.get(f"{panel.url}/redoc").status_code == 200
