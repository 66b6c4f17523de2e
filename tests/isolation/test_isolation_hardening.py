"""Attacks a reviewer found on process isolation after test_isolation.py: each fails now.

- the MariaDB relay read the user name at the 4.1 handshake's offset only, so an older
  handshake logged a plugin in as root while naming its own role where the relay looked;
- the plugin's run folder was writable, so it could put a link where the panel connects;
- a plugin's page could set its own Content-Security-Policy and run script on the
  panel's origin;
- the panel read a plugin's answer headers without a limit.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_isolation import (
    assert_panel_serves,
    route_plugin,
    serve_isolated,
    sqlite_url,
)

from panel import Panel
from plugdock.isolation.dbrelay import DatabaseRelay

# -- the MariaDB relay ---------------------------------------------------------------------


@pytest.fixture
def relay(tmp_path: Path) -> Iterator[Path]:
    """A relay to the MariaDB server for role ``pd_probe`` on database ``test``."""
    path = tmp_path / "mysqld.sock"
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    relay = DatabaseRelay(path, "127.0.0.1", 3306, kind="mysql", user="pd_probe", database="test")
    asyncio.run_coroutine_threadsafe(relay.start(), loop).result()
    yield path
    asyncio.run_coroutine_threadsafe(relay.stop(), loop).result()
    loop.call_soon_threadsafe(loop.stop)


def _packet(payload: bytes, sequence: int = 1) -> bytes:
    return len(payload).to_bytes(3, "little") + bytes([sequence]) + payload


def _login_answer(path: Path, handshake: bytes) -> bytes:
    """What the server (through the relay) answers a handshake response: b"" if cut off."""
    with socket.socket(socket.AF_UNIX) as conn:
        conn.settimeout(10)
        conn.connect(str(path))
        header = conn.recv(4)
        conn.recv(int.from_bytes(header[:3], "little"))  # the server's greeting
        conn.sendall(_packet(handshake))
        try:
            return conn.recv(65536)
        except ConnectionResetError:
            return b""


def test_relay_refuses_an_old_handshake_that_names_someone_else(relay: Path) -> None:
    # Pre-4.1 layout: 2 capability bytes, 3 max-packet bytes, then the user the server
    # reads ("root"); the relay used to read offset 32, where this puts the allowed role.
    capabilities = 0x0001 | 0x0004  # LONG_PASSWORD | LONG_FLAG: no PROTOCOL_41
    old = struct.pack("<H", capabilities) + b"\xff\xff\x00" + b"root\0" + b"\0"
    old = old.ljust(32, b"\0") + b"pd_probe\0"
    assert _login_answer(relay, old) == b""


def test_relay_refuses_compression(relay: Path) -> None:
    capabilities = 0x0200 | 0x8000 | 0x0020  # PROTOCOL_41 | SECURE_CONNECTION | COMPRESS
    modern = struct.pack("<IIB", capabilities, 1 << 24, 33) + b"\0" * 23 + b"pd_probe\0\0"
    assert _login_answer(relay, modern) == b""


def test_relay_passes_its_own_roles_login(relay: Path) -> None:
    """The same path works for the allowed name: the server answers (here: no such user)."""
    capabilities = 0x0200 | 0x8000
    modern = struct.pack("<IIB", capabilities, 1 << 24, 33) + b"\0" * 23 + b"pd_probe\0\0"
    answer = _login_answer(relay, modern)
    assert answer, "the relay cut off the plugin's own login"


# -- the plugin's answers and sockets ------------------------------------------------------

HOSTILE_ROUTES = """
import os

from fastapi.responses import HTMLResponse, Response


@router.get('/swap')
def swap() -> dict:
    done = []
    for attempt in (
        lambda: os.unlink('/run/plugdock/plugin.sock'),
        lambda: os.symlink('/var/run/docker.sock', '/run/plugdock/evil.sock'),
        lambda: open('/run/plugdock/blob', 'wb').write(b'x'),
    ):
        try:
            attempt()
            done.append('done')
        except OSError as exc:
            done.append(type(exc).__name__)
    return {'results': done}


@router.get('/page')
def page() -> HTMLResponse:
    return HTMLResponse(
        '<script>fetch("/api/v1/users")</script>',
        headers={'Content-Security-Policy': "script-src 'unsafe-inline'"},
    )


@router.get('/headers')
def headers() -> Response:
    return Response('x', headers={f'x-h{i}': 'v' * 1024 for i in range(2000)})
"""


@pytest.fixture
def hostile(tmp_path: Path, panels: list[Panel]) -> Panel:
    plugin = route_plugin(tmp_path / "src", "hostile", HOSTILE_ROUTES)
    panel, _admin = serve_isolated(tmp_path, sqlite_url(tmp_path), panels, plugin, "hostile")
    return panel


def test_plugin_cannot_touch_the_sockets_the_panel_connects_to(hostile: Panel) -> None:
    admin = hostile.client(hostile.login())
    answer = admin.get("/api/v1/hostile/swap")
    assert answer.status_code == 200, answer.text
    assert "done" not in answer.json()["results"], answer.json()
    assert admin.get("/api/v1/hostile/ping").json() == {"pong": True}
    assert_panel_serves(admin)


def test_a_plugins_page_runs_no_script_on_the_panels_origin(hostile: Panel) -> None:
    answer = hostile.client(hostile.login()).get("/api/v1/hostile/page")
    policy = answer.headers["content-security-policy"]
    assert policy.startswith("sandbox;"), policy
    assert "unsafe-inline" not in policy
    assert len(answer.headers.get_list("content-security-policy")) == 1


def test_oversized_answer_headers_are_refused_and_the_panel_serves_on(hostile: Panel) -> None:
    admin = hostile.client(hostile.login())
    answer = admin.get("/api/v1/hostile/headers")
    assert answer.status_code == 503, answer.text
    assert "headers" in answer.json()["detail"]
    assert_panel_serves(admin)
