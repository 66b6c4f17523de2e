"""SQLite for a plugin process: its SQL runs in the panel, on its own tables only.

SQLite has no roles, and a plugin process given the database file could read every
table (the users' password hashes, the token-signing key). So on SQLite the file never
enters the sandbox: the plugin's process sends each statement over a Unix socket in its
run folder (:mod:`plugdock.isolation.sqlite_client`, a DB-API driver SQLAlchemy uses as
``sqlite``), and the panel runs it on a connection of its own to the file, with an
authorizer (:func:`authorizer`, SQLite's own check of every table and column a statement
compiles to) that allows what a PostgreSQL role of a plugin gets: SELECT, INSERT, UPDATE
and DELETE on the plugin's tables, transactions and savepoints; no other table, no
``sqlite_master``, no DDL, no ATTACH, no PRAGMA but a few that read its own tables'
shape, no ``load_extension``.

Messages both ways: a 4-byte big-endian length, then JSON; ``bytes`` values travel as
``{"b64": "..."}``.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import socket
import socketserver
import sqlite3
import struct
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

SOCKET_NAME = "sqlite.sock"
MAX_MESSAGE = 64 << 20  # one statement and its parameters, or one answer's rows
BUSY_TIMEOUT = 30.0  # as the panel's own engine (core.db.make_engine)
MAX_SESSIONS = 20  # a plugin's connections at once, as its role's limit elsewhere (db_roles)

# PRAGMAs that only read the shape of a table the plugin owns (SQLAlchemy's reflection),
# and the one SQLAlchemy asks at connect time.
_PRAGMAS_ON_OWN_TABLE = frozenset(
    {"table_info", "table_xinfo", "index_list", "index_info", "index_xinfo", "foreign_key_list"}
)
_FUNCTIONS_REFUSED = frozenset({"load_extension", "fts3_tokenizer", "readfile", "writefile"})


def authorizer(tables: Callable[[], set[str]]) -> Callable[..., int]:
    """SQLite's per-action check: the plugin's tables (lower-case names) and nothing else."""

    def check(
        action: int, arg1: str | None, arg2: str | None, database: str | None, _source: str | None
    ) -> int:
        own = tables()
        if database not in (None, "main"):
            return sqlite3.SQLITE_DENY  # temp, or an attached file
        if action in (sqlite3.SQLITE_SELECT, sqlite3.SQLITE_TRANSACTION, sqlite3.SQLITE_SAVEPOINT):
            return sqlite3.SQLITE_OK
        if action == sqlite3.SQLITE_RECURSIVE:
            return sqlite3.SQLITE_OK
        if action in (
            sqlite3.SQLITE_READ,
            sqlite3.SQLITE_INSERT,
            sqlite3.SQLITE_UPDATE,
            sqlite3.SQLITE_DELETE,
        ):
            return sqlite3.SQLITE_OK if (arg1 or "").lower() in own else sqlite3.SQLITE_DENY
        if action == sqlite3.SQLITE_FUNCTION:
            refused = (arg2 or "").lower() in _FUNCTIONS_REFUSED
            return sqlite3.SQLITE_DENY if refused else sqlite3.SQLITE_OK
        if action == sqlite3.SQLITE_PRAGMA:
            name = (arg1 or "").lower()
            if name == "read_uncommitted" and arg2 is None:
                return sqlite3.SQLITE_OK
            if name in _PRAGMAS_ON_OWN_TABLE and (arg2 or "").lower() in own:
                return sqlite3.SQLITE_OK
        return sqlite3.SQLITE_DENY  # DDL, ATTACH, DETACH, other PRAGMAs, virtual tables ...

    return check


# -- the messages ------------------------------------------------------------------------


def encode(value: Any) -> Any:
    if isinstance(value, bytes | bytearray | memoryview):
        return {"b64": base64.b64encode(bytes(value)).decode()}
    return value


def decode(value: Any) -> Any:
    if isinstance(value, dict):
        return base64.b64decode(value["b64"])
    return value


def send(conn: socket.socket, message: dict[str, Any]) -> None:
    data = json.dumps(message, separators=(",", ":")).encode()
    if len(data) > MAX_MESSAGE:
        raise ValueError(f"message of {len(data)} bytes is over {MAX_MESSAGE}")
    conn.sendall(struct.pack("!I", len(data)) + data)


def receive(conn: socket.socket) -> dict[str, Any] | None:
    """The next message, or None when the other side closed."""
    header = _exactly(conn, 4)
    if header is None:
        return None
    (length,) = struct.unpack("!I", header)
    if length > MAX_MESSAGE:
        raise ValueError(f"message of {length} bytes is over {MAX_MESSAGE}")
    body = _exactly(conn, length)
    if body is None:
        return None
    message: dict[str, Any] = json.loads(body)
    return message


def _exactly(conn: socket.socket, size: int) -> bytes | None:
    chunks = bytearray()
    while len(chunks) < size:
        chunk = conn.recv(min(size - len(chunks), 1 << 20))
        if not chunk:
            return None
        chunks += chunk
    return bytes(chunks)


# -- the panel's side ----------------------------------------------------------------------


class _Session(socketserver.BaseRequestHandler):
    """One plugin connection: one SQLite connection of the panel's, checked by the authorizer."""

    server: _Server

    def handle(self) -> None:
        if not self.server.sessions.acquire(blocking=False):
            return  # over its limit: closed, as a server at max_connections would
        try:
            self._serve()
        finally:
            self.server.sessions.release()

    def _serve(self) -> None:
        database = sqlite3.connect(self.server.database, timeout=BUSY_TIMEOUT, isolation_level=None)
        try:
            database.execute("PRAGMA foreign_keys=ON")
            database.set_authorizer(authorizer(self.server.tables))
            while (request := receive(self.request)) is not None:
                send(self.request, _answer(database, request))
        except (OSError, ValueError) as exc:
            log.info("plugin SQLite session ended: %s", exc)
        finally:
            with contextlib.suppress(sqlite3.Error):
                database.rollback()
            database.close()


def _answer(database: sqlite3.Connection, request: dict[str, Any]) -> dict[str, Any]:
    operation = request.get("op")
    try:
        if operation == "commit":
            database.commit()
            return {}
        if operation == "rollback":
            database.rollback()
            return {}
        sql = request["sql"]
        if not isinstance(sql, str):
            raise sqlite3.ProgrammingError("the statement must be a string")
        if operation == "executemany":
            cursor = database.executemany(sql, [_params(p) for p in request["params"]])
        elif operation == "execute":
            cursor = database.execute(sql, _params(request.get("params", ())))
        else:
            raise sqlite3.ProgrammingError(f"unknown operation {operation!r}")
        rows = [[encode(v) for v in row] for row in cursor.fetchall()]
        description = [column[0] for column in cursor.description or ()]
        return {
            "rows": rows,
            "description": description if cursor.description else None,
            "rowcount": cursor.rowcount,
            "lastrowid": cursor.lastrowid,
        }
    except sqlite3.Error as exc:
        return {"error": type(exc).__name__, "message": str(exc)}
    except (KeyError, TypeError, ValueError) as exc:
        return {"error": "ProgrammingError", "message": f"bad request: {exc}"}


def _params(params: Any) -> Any:
    if isinstance(params, dict):
        return {str(k): decode(v) for k, v in params.items()}
    if isinstance(params, list):
        return [decode(v) for v in params]
    raise TypeError("parameters must be a list or an object")


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, path: str, database: str, tables: Callable[[], set[str]]) -> None:
        self.database = database
        self.tables = tables
        self.sessions = threading.BoundedSemaphore(MAX_SESSIONS)
        super().__init__(path, _Session)


class SQLiteRelay:
    """The socket in a plugin's run folder that runs its SQL on the panel's SQLite file."""

    def __init__(self, socket_path: Path, database: Path, tables: Callable[[], set[str]]):
        self.socket_path = socket_path
        self._server: _Server | None = None
        self._database = str(database)
        self._tables = tables

    def start(self) -> None:
        self.socket_path.unlink(missing_ok=True)
        self._server = _Server(str(self.socket_path), self._database, self._tables)
        os.chmod(self.socket_path, 0o600)
        threading.Thread(
            target=self._server.serve_forever, name="plugdock-sqlite-relay", daemon=True
        ).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        self.socket_path.unlink(missing_ok=True)
