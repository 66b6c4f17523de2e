"""The health gate: a plugin's declared health path must answer 2xx before its change commits.

The new backend is served by a private app that sees the operation's own transaction
(``sdk.DbSession`` is bound to it), so the health handler reads the upgraded tables
before anyone else can; a failure or timeout is then an ordinary rollback, and the old
version never stopped serving.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
from fastapi import FastAPI
from sqlalchemy import Connection
from sqlalchemy.orm import Session

from plugdock import sdk
from plugdock.errors import PackageError
from plugdock.plugin_code.loader import LoadedBackend


def check_health(backend: LoadedBackend, path: str, connection: Connection, timeout: float) -> None:
    """GET ``path`` from the plugin's router; PackageError unless it answers 2xx in time."""
    if backend.router is None:
        raise PackageError(f"{backend.plugin_id}: health path {path} but the plugin has no router")
    app = FastAPI()
    app.include_router(backend.router)

    def operation_session() -> Iterator[Session]:
        with Session(bind=connection, join_transaction_mode="create_savepoint") as session:
            yield session

    app.dependency_overrides[sdk.db_session] = operation_session

    async def call() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://plugdock") as client:
            return await asyncio.wait_for(client.get(path), timeout)

    try:
        response = asyncio.run(call())
    except TimeoutError:
        connection.invalidate()  # a handler may still hold it in another thread
        raise PackageError(
            f"{backend.plugin_id}: health check {path} did not answer within {timeout:g} s"
        ) from None
    except Exception as exc:
        raise PackageError(f"{backend.plugin_id}: health check {path} failed: {exc!r}") from exc
    if not 200 <= response.status_code < 300:
        raise PackageError(
            f"{backend.plugin_id}: health check {path} answered {response.status_code}: "
            f"{response.text[:200]}"
        )
