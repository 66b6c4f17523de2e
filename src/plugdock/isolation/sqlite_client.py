"""Inside a plugin process on SQLite: a DB-API connection whose SQL runs in the panel.

The database file is not in the sandbox; :func:`engine` gives SQLAlchemy a ``sqlite``
engine whose connections send each statement to the panel's relay socket
(:mod:`plugdock.isolation.sqlite_relay`), which runs it on the plugin's own tables only.
Errors come back as the ``sqlite3`` exceptions SQLAlchemy expects from SQLite.
"""

from __future__ import annotations

import socket
import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.pool import QueuePool

from plugdock.isolation.sqlite_relay import decode, encode, receive, send

URL_PREFIX = "plugdock-sqlite-relay:"  # the order's db_url: this prefix, then the socket


class Cursor:
    """DB-API cursor: each execute is one round trip; its rows arrive whole."""

    arraysize = 1

    def __init__(self, connection: RelayConnection) -> None:
        self._connection = connection
        self._rows: list[tuple[Any, ...]] = []
        self.description: list[tuple[Any, ...]] | None = None
        self.rowcount = -1
        self.lastrowid: int | None = None

    def _take(self, answer: dict[str, Any]) -> None:
        self._rows = [tuple(decode(v) for v in row) for row in answer["rows"]]
        names = answer["description"]
        self.description = (
            None if names is None else [(n, None, None, None, None, None, None) for n in names]
        )
        self.rowcount = answer["rowcount"]
        self.lastrowid = answer["lastrowid"]

    def execute(self, sql: str, params: Any = ()) -> Cursor:
        self._take(self._connection.ask({"op": "execute", "sql": sql, "params": _out(params)}))
        return self

    def executemany(self, sql: str, seq: Iterable[Any]) -> Cursor:
        params = [_out(p) for p in seq]
        self._take(self._connection.ask({"op": "executemany", "sql": sql, "params": params}))
        return self

    def fetchone(self) -> tuple[Any, ...] | None:
        return self._rows.pop(0) if self._rows else None

    def fetchmany(self, size: int | None = None) -> list[tuple[Any, ...]]:
        count = size or self.arraysize
        taken, self._rows = self._rows[:count], self._rows[count:]
        return taken

    def fetchall(self) -> list[tuple[Any, ...]]:
        taken, self._rows = self._rows, []
        return taken

    def close(self) -> None:
        self._rows = []

    def setinputsizes(self, *_args: Any) -> None:
        pass

    def setoutputsize(self, *_args: Any) -> None:
        pass

    def __iter__(self) -> Any:
        while (row := self.fetchone()) is not None:
            yield row


def _out(params: Any) -> Any:
    if isinstance(params, dict):
        return {k: encode(v) for k, v in params.items()}
    return [encode(v) for v in (params or ())]


class RelayConnection:
    """DB-API connection to the panel's SQLite relay (one socket, one panel connection)."""

    isolation_level: str | None = None  # as core.db.make_engine: BEGIN is explicit

    def __init__(self, path: str) -> None:
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._socket.connect(path)

    def ask(self, request: dict[str, Any]) -> dict[str, Any]:
        try:
            send(self._socket, request)
            answer = receive(self._socket)
        except (OSError, ValueError) as exc:
            raise sqlite3.OperationalError(f"the panel's database relay: {exc}") from exc
        if answer is None:
            raise sqlite3.OperationalError("the panel's database relay closed the connection")
        if "error" in answer:
            kind = getattr(sqlite3, str(answer["error"]), sqlite3.DatabaseError)
            if not (isinstance(kind, type) and issubclass(kind, sqlite3.Error)):
                kind = sqlite3.DatabaseError
            raise kind(answer.get("message", ""))
        return answer

    def cursor(self) -> Cursor:
        return Cursor(self)

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        return self.cursor().execute(sql, params)

    def commit(self) -> None:
        self.ask({"op": "commit"})

    def rollback(self) -> None:
        self.ask({"op": "rollback"})

    def close(self) -> None:
        self._socket.close()

    def create_function(self, *_args: Any, **_kwargs: Any) -> None:
        """SQLAlchemy registers REGEXP here; functions would run in the panel: none."""


def engine(url: str) -> Engine:
    """A SQLAlchemy engine (SQLite dialect) over the relay socket named by ``url``."""
    path = url.removeprefix(URL_PREFIX)
    made = create_engine(
        "sqlite://",
        creator=lambda: RelayConnection(path),
        poolclass=QueuePool,
        pool_size=4,
        max_overflow=4,
    )

    @event.listens_for(made, "begin")
    def _begin(connection: Connection) -> None:  # as the panel's own engine
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return made
