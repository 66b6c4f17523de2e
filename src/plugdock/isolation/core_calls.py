"""What the panel answers a plugin process about the core, when its permissions allow it.

A plugin process cannot read the core's tables (its database role has no rights on them),
so the few core facts a plugin may need are asked of the panel, over a Unix socket in its
run folder (``/run/plugdock/core.sock`` inside the sandbox): one JSON line asked, one JSON
line answered. Each call needs a permission the admin granted at install:

- ``{"call": "users"}`` needs ``core:users:read``: ids, user names and roles of the host's
  active users (``HostAuth.users`` in an embedding app), never password hashes; 501 when the
  host does not share its users.
- ``{"call": "settings"}`` needs nothing: the current values of the plugin's own declared
  settings, secrets decrypted (the socket is the plugin's, so it names the plugin; the key
  and other plugins' values never leave the panel).

Plugin code uses :data:`plugdock.sdk.Users`, the same in both isolation modes.

Plugin code uses :data:`plugdock.sdk.Users` and :data:`plugdock.sdk.PluginSettings`, the
same in both isolation modes.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select

from plugdock.core.db import connect_read, users
from plugdock.errors import PlugdockError

SOCKET_NAME = "core.sock"
USERS_PERMISSION = "core:users:read"
NOT_SHARED = "this host does not share its users with plugins"
_MAX_LINE = 4096
UsersOf = Callable[[], list[dict[str, Any]] | None]
"""The host's users for a plugin process; None when the host does not share them."""


def read_users(engine: Engine) -> list[dict[str, Any]]:
    """The active users as a plugin may see them."""
    with connect_read(engine) as conn:
        rows = conn.execute(
            select(users.c.id, users.c.username, users.c.role)
            .where(users.c.is_active)
            .order_by(users.c.id)
        ).all()
    return [{"id": r.id, "username": r.username, "role": r.role} for r in rows]


async def serve(
    path: Path,
    plugin_id: str,
    granted: list[str],
    users_of: UsersOf,
    settings_of: Callable[[], dict[str, Any]] | None = None,
) -> asyncio.AbstractServer:
    """Answer one plugin's core calls on ``path`` (run on the panel's relay loop)."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await reader.readline()
            reply = await _reply(line[:_MAX_LINE], plugin_id, granted, users_of, settings_of)
            writer.write(json.dumps(reply).encode() + b"\n")
            await writer.drain()
        finally:
            writer.close()

    path.unlink(missing_ok=True)
    server = await asyncio.start_unix_server(answer, path=str(path))
    os.chmod(path, 0o600)
    return server


async def _reply(
    line: bytes,
    plugin_id: str,
    granted: list[str],
    users_of: UsersOf,
    settings_of: Callable[[], dict[str, Any]] | None = None,
) -> dict[str, Any]:
    try:
        call = json.loads(line).get("call")
    except (ValueError, AttributeError):
        return {"error": "not a JSON object"}
    if call == "users":
        if USERS_PERMISSION not in granted:
            return {"error": f"{plugin_id} was not granted {USERS_PERMISSION}", "status": 403}
        found = await asyncio.to_thread(users_of)
        if found is None:
            return {"error": NOT_SHARED, "status": 501}
        return {"users": found}
    if call == "settings" and settings_of is not None:
        try:
            return {"settings": await asyncio.to_thread(settings_of)}
        except PlugdockError as exc:  # a secret that does not open: the plugin waits anyway
            return {"error": str(exc), "status": 503}
    return {"error": f"unknown call {call!r}"}


def ask(socket_path: str, call: str, timeout: float = 10.0) -> dict[str, Any]:
    """The plugin process's side: one call to the panel (blocking)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(timeout)
        conn.connect(socket_path)
        conn.sendall(json.dumps({"call": call}).encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = conn.recv(65536)
            if not chunk:
                break
            data += chunk
    answer: dict[str, Any] = json.loads(data)
    return answer
