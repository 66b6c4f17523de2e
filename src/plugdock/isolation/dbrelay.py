"""A Unix socket in a plugin's run folder that leads to the database server, and nowhere else.

A plugin process without the ``network`` permission has no network at all; it reaches
PostgreSQL or MariaDB through this relay, which the panel runs: each connection to the
socket is piped, byte for byte, to the database's TCP address. The plugin still has to log
in, as its own database role (:mod:`plugdock.isolation.db_roles`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path

_CHUNK = 65536


class DatabaseRelay:
    """Listens on ``socket_path`` and pipes each connection to ``host:port``."""

    def __init__(self, socket_path: Path, host: str, port: int) -> None:
        self.socket_path = socket_path
        self.host = host
        self.port = port
        self._server: asyncio.AbstractServer | None = None
        self._pipes: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self.socket_path.unlink(missing_ok=True)
        self._server = await asyncio.start_unix_server(self._accept, path=str(self.socket_path))
        os.chmod(self.socket_path, 0o600)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(self.host, self.port)
        except OSError:
            writer.close()
            return
        pipes = [
            asyncio.create_task(_pipe(reader, upstream_writer)),
            asyncio.create_task(_pipe(upstream_reader, writer)),
        ]
        self._pipes.update(pipes)
        try:
            await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in pipes:
                task.cancel()
                self._pipes.discard(task)
            for stream in (writer, upstream_writer):
                stream.close()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for task in list(self._pipes):
            task.cancel()
        self.socket_path.unlink(missing_ok=True)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError, asyncio.CancelledError):
        while chunk := await reader.read(_CHUNK):
            writer.write(chunk)
            await writer.drain()
