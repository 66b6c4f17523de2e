"""How a plugin process reaches the database: as its own role, through a relay socket.

On PostgreSQL and MariaDB each plugin has a role of its own
(:mod:`plugdock.plugin_sql.db_roles`) with rights on its own tables only, and its process
connects through a :class:`~plugdock.isolation.dbrelay.DatabaseRelay` in its run folder, so
it needs no network. The relays run on one event loop in a thread of their own, so they
serve the installer's hooks (a thread of the panel, or the CLI) as well as the panel.

SQLite has no roles, so the database file never enters the sandbox: the plugin's SQL goes
through a :class:`~plugdock.isolation.sqlite_relay.SQLiteRelay` in its run folder and runs
in the panel, checked by SQLite's authorizer against the plugin's own tables.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from plugdock.config import Settings
from plugdock.core.db import stored_secret
from plugdock.isolation import core_calls
from plugdock.isolation.dbrelay import DatabaseRelay
from plugdock.isolation.egress import EgressBroker, Route
from plugdock.isolation.sandbox import RUN
from plugdock.isolation.sqlite_relay import SOCKET_NAME as SQLITE_SOCKET
from plugdock.isolation.sqlite_relay import SQLiteRelay

T = TypeVar("T")
ROLE_KEY_NAME = "plugin_role_key"  # its row in plugdock_secrets: derives the roles' passwords


class PluginDatabase:
    """The database side of every plugin process of one panel process (or CLI run)."""

    def __init__(
        self, settings: Settings, engine: Engine, *, users_of: core_calls.UsersOf | None = None
    ) -> None:
        """``users_of``: the host's users for ``sdk.Users`` (the panel's own table when
        None: the CLI, whose hooks run outside any host app)."""
        self.settings = settings
        self.engine = engine
        self.users_of = users_of or (lambda: core_calls.read_users(engine))
        self.enforced = engine.dialect.name in ("postgresql", "mysql")  # roles of their own
        self._loop: asyncio.AbstractEventLoop | None = None
        self._relays: dict[str, DatabaseRelay] = {}
        self._core_servers: dict[str, asyncio.AbstractServer] = {}
        self._egress: dict[str, EgressBroker] = {}
        self._sqlite: dict[str, SQLiteRelay] = {}
        self._sqlite_tables: dict[str, set[str]] = {}  # plugin id: its tables, lower case
        self._key: bytes | None = None

    def _password(self, plugin_id: str) -> str:
        from plugdock.plugin_sql import db_roles

        if self._key is None:
            import secrets

            self._key = stored_secret(
                self.engine, ROLE_KEY_NAME, lambda: secrets.token_urlsafe(48)
            ).encode()
        return db_roles.role_password(self._key, self._database_name(), plugin_id)

    def _database_name(self) -> str:
        return make_url(self.settings.db_url).database or ""

    def open_for(self, plugin_id: str, key: str, run_dir: Path) -> str:
        """The URL the plugin process connects with; starts its relay (blocking)."""
        if not self.enforced:
            return self._open_sqlite(plugin_id, key, run_dir)
        from plugdock.plugin_sql import db_roles

        # Rights stay as they are (an upgrade's old process goes on serving with them);
        # grant() gives the new tables after the commit.
        role = db_roles.ensure_plugin_role(self.engine, plugin_id, None, self._password(plugin_id))
        url = self.engine.url
        relay = DatabaseRelay(
            run_dir / db_roles.socket_file_name(url),
            url.host or "127.0.0.1",
            _port(url),
            kind="postgresql" if url.get_backend_name() == "postgresql" else "mysql",
            user=role,
            database=url.database or "",
        )
        self._run(relay.start())
        self._relays[key] = relay
        plugin_url = db_roles.plugin_url(url, role, self._password(plugin_id), unix_socket_dir=RUN)
        return plugin_url.render_as_string(hide_password=False)

    def _open_sqlite(self, plugin_id: str, key: str, run_dir: Path) -> str:
        from plugdock.isolation.sqlite_client import URL_PREFIX

        database = make_url(self.settings.db_url).database
        if not database or database == ":memory:":
            raise ValueError("process isolation needs a SQLite database file")
        tables = self._sqlite_tables.setdefault(plugin_id, set())
        relay = SQLiteRelay(run_dir / SQLITE_SOCKET, Path(database).resolve(), lambda: tables)
        relay.start()
        self._sqlite[key] = relay
        return f"{URL_PREFIX}{RUN}/{SQLITE_SOCKET}"

    def grant(self, plugin_id: str, tables: list[str]) -> None:
        """Rights on exactly these tables (blocking; the tables must be committed)."""
        if not self.enforced:  # the SQLite relays read this set at each statement
            own = self._sqlite_tables.setdefault(plugin_id, set())
            own.clear()
            own.update(t.lower() for t in tables)
        if self.enforced:
            from plugdock.plugin_sql import db_roles

            db_roles.ensure_plugin_role(self.engine, plugin_id, tables, self._password(plugin_id))

    def drop(self, plugin_id: str) -> None:
        """The plugin is uninstalled: its role goes."""
        self._sqlite_tables.pop(plugin_id, None)
        if self.enforced:
            from plugdock.plugin_sql import db_roles

            db_roles.drop_plugin_role(self.engine, plugin_id)

    def open_core_calls(self, plugin_id: str, key: str, run_dir: Path, granted: list[str]) -> None:
        """Answer the plugin's ``sdk.Users`` and ``sdk.PluginSettings`` calls on its run
        folder's core socket."""
        from plugdock.instance.plugin_settings import current_settings

        self._core_servers[key] = self._run(
            core_calls.serve(
                run_dir / core_calls.SOCKET_NAME,
                plugin_id,
                granted,
                self.users_of,
                lambda: current_settings(self.settings, self.engine, plugin_id),
            )
        )

    def open_egress(
        self, plugin_id: str, key: str, routes: list[Route], listeners: list[socket.socket]
    ) -> None:
        """Serve the plugin's egress grants on the sockets bound in its namespace (blocking).

        Fewer sockets than routes and the DNS one: the process failed before it started
        (its log says why).
        """
        if len(listeners) != len(routes) + 1:
            for listener in listeners:
                listener.close()
            return
        broker = EgressBroker(plugin_id, routes, listeners)
        self._run(broker.start())
        self._egress[key] = broker

    def close_for(self, key: str) -> None:
        """One plugin process ended: its sockets close (blocking)."""
        broker = self._egress.pop(key, None)
        if broker is not None:
            self._run(broker.stop())
        sqlite_relay = self._sqlite.pop(key, None)
        if sqlite_relay is not None:
            sqlite_relay.stop()
        server = self._core_servers.pop(key, None)
        if server is not None and self._loop is not None:
            self._loop.call_soon_threadsafe(server.close)
        relay = self._relays.pop(key, None)
        if relay is not None:
            self._run(relay.stop())

    def close(self) -> None:
        for key in {*self._relays, *self._core_servers, *self._egress, *self._sqlite}:
            self.close_for(key)
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._loop = None

    def _run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
            threading.Thread(
                target=self._loop.run_forever, name="plugdock-plugin-sockets", daemon=True
            ).start()
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()


def _port(url: object) -> int:
    port = getattr(url, "port", None)
    if port:
        return int(port)
    return 5432 if getattr(url, "drivername", "").startswith("postgresql") else 3306
