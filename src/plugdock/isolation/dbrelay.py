"""A Unix socket in a plugin's run folder that leads to the database server, as one role only.

A plugin process without the ``network`` permission has no network at all; it reaches
PostgreSQL or MariaDB through this relay, which the panel runs: each connection to the
socket is piped to the database's TCP address. The relay reads the login the plugin sends
and lets it through only for the plugin's own role and database
(:mod:`plugdock.plugin_sql.db_roles`): a database server that trusts local connections (or
a password the plugin guessed) must not let a plugin log in as the panel. For the same
reason it refuses TLS upgrades (it could not read the login any more) and, on MariaDB,
``COM_CHANGE_USER`` later in the session.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import struct
from pathlib import Path

_CHUNK = 65536
_MAX_STARTUP = 10_000

# PostgreSQL: the first message's "protocol" codes (frontend/backend protocol, "Start-up").
_PG_PROTOCOL_3 = 196608
_PG_SSL_REQUEST = 80877103
_PG_GSSENC_REQUEST = 80877104

# MariaDB/MySQL client capability flags and commands.
_MY_CLIENT_CONNECT_WITH_DB = 0x00000008
_MY_CLIENT_LOCAL_FILES = 0x00000080
_MY_CLIENT_COMPRESS = 0x00000020
_MY_CLIENT_PROTOCOL_41 = 0x00000200
_MY_CLIENT_SSL = 0x00000800
_MY_CLIENT_SECURE_CONNECTION = 0x00008000
_MY_CLIENT_PLUGIN_AUTH_LENENC = 0x00200000
_MY_COM_CHANGE_USER = 0x11
_MY_MAX_PACKET = 0xFFFFFF


class LoginRefused(Exception):
    """The plugin tried to log in as someone else, or to a database not its own."""


class DatabaseRelay:
    """Listens on ``socket_path`` and pipes each connection to ``host:port`` for ``user``."""

    def __init__(
        self, socket_path: Path, host: str, port: int, *, kind: str, user: str, database: str
    ) -> None:
        self.socket_path = socket_path
        self.host = host
        self.port = port
        self.kind = kind  # "postgresql" or "mysql"
        self.user = user
        self.database = database
        self._server: asyncio.AbstractServer | None = None
        self._pipes: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self.socket_path.unlink(missing_ok=True)
        self._server = await asyncio.start_unix_server(self._accept, path=str(self.socket_path))
        os.chmod(self.socket_path, 0o600)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_writer: asyncio.StreamWriter | None = None
        try:
            if self.kind == "postgresql":
                startup = await self._pg_startup(reader, writer)
                upstream_reader, upstream_writer = await asyncio.open_connection(
                    self.host, self.port
                )
                upstream_writer.write(startup)
                to_server = asyncio.create_task(pipe(reader, upstream_writer))
            else:
                upstream_reader, upstream_writer = await asyncio.open_connection(
                    self.host, self.port
                )
                to_server = asyncio.create_task(self._my_client_packets(reader, upstream_writer))
            pipes = [to_server, asyncio.create_task(pipe(upstream_reader, writer))]
            self._pipes.update(pipes)
            try:
                await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in pipes:
                    task.cancel()
                    self._pipes.discard(task)
        except (OSError, LoginRefused, asyncio.IncompleteReadError, struct.error):
            pass  # refused or gone: the plugin's driver reports a closed connection
        finally:
            for stream in (writer, upstream_writer):
                if stream is not None:
                    stream.close()

    # -- PostgreSQL: the start-up message names the user and the database ----------------

    async def _pg_startup(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bytes:
        while True:
            (length,) = struct.unpack("!I", await reader.readexactly(4))
            if not 8 <= length <= _MAX_STARTUP:
                raise LoginRefused("start-up message size")
            body = await reader.readexactly(length - 4)
            (code,) = struct.unpack("!I", body[:4])
            if code in (_PG_SSL_REQUEST, _PG_GSSENC_REQUEST):
                writer.write(b"N")  # no encryption here: the login must stay readable
                await writer.drain()
                continue
            if code != _PG_PROTOCOL_3:
                raise LoginRefused("not a start-up message")  # e.g. a CancelRequest
            fields = body[4:].split(b"\0")
            params = dict(zip(fields[0::2], fields[1::2], strict=False))
            user = params.get(b"user", b"").decode(errors="replace")
            database = params.get(b"database", params.get(b"user", b"")).decode(errors="replace")
            if user != self.user or database != self.database:
                raise LoginRefused(f"{user}@{database}")
            return struct.pack("!I", length) + body

    # -- MariaDB: the handshake response names the user; later packets may not change it --

    async def _my_client_packets(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        first = True
        continued = False  # the previous packet was full: this one carries on its payload
        with contextlib.suppress(ConnectionError, asyncio.CancelledError, LoginRefused):
            while True:
                header = await reader.readexactly(4)
                length = int.from_bytes(header[:3], "little")
                payload = await reader.readexactly(length)
                if first:
                    payload = self._my_check_login(payload)
                    first = False
                elif not continued and payload[:1] == bytes([_MY_COM_CHANGE_USER]):
                    raise LoginRefused("COM_CHANGE_USER")
                continued = length == _MY_MAX_PACKET
                writer.write(header + payload)
                await writer.drain()

    def _my_check_login(self, payload: bytes) -> bytes:
        """The handshake response to pass on, once it names the plugin's own user and
        database: without the client's LOAD DATA LOCAL capability, so the server refuses
        ``LOAD DATA LOCAL INFILE`` whatever the driver was told."""
        (capabilities,) = struct.unpack("<I", payload[:4])
        # Only the 4.1 layout is read here (an older one puts the user elsewhere, and the
        # server would log in someone else), and no compression (packets the relay could
        # not read any more: a COM_CHANGE_USER would pass unseen).
        if not capabilities & _MY_CLIENT_PROTOCOL_41 or len(payload) < 33:
            raise LoginRefused("pre-4.1 handshake")
        if capabilities & (_MY_CLIENT_SSL | _MY_CLIENT_COMPRESS):
            raise LoginRefused("TLS or compression")
        rest = payload[32:]  # capabilities, max packet size, charset, 23 reserved bytes
        user, _, rest = rest.partition(b"\0")
        if user.decode(errors="replace") != self.user:
            raise LoginRefused(user.decode(errors="replace"))
        if capabilities & _MY_CLIENT_CONNECT_WITH_DB:
            if capabilities & _MY_CLIENT_PLUGIN_AUTH_LENENC:
                size, skip = _lenenc(rest)
                rest = rest[skip + size :]
            elif capabilities & _MY_CLIENT_SECURE_CONNECTION:
                rest = rest[1 + rest[0] :]
            else:
                rest = rest.partition(b"\0")[2]
            database = rest.partition(b"\0")[0].decode(errors="replace")
            if database != self.database:
                raise LoginRefused(database)
        return struct.pack("<I", capabilities & ~_MY_CLIENT_LOCAL_FILES) + payload[4:]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for task in list(self._pipes):
            task.cancel()
        self.socket_path.unlink(missing_ok=True)


def _lenenc(data: bytes) -> tuple[int, int]:
    """A length-encoded integer: its value and how many bytes it took."""
    first = data[0]
    if first < 0xFB:
        return first, 1
    width = {0xFC: 2, 0xFD: 3, 0xFE: 8}[first]
    return int.from_bytes(data[1 : 1 + width], "little"), 1 + width


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy ``reader`` to ``writer`` until either side ends (the relays' one way of two)."""
    with contextlib.suppress(ConnectionError, asyncio.CancelledError):
        while chunk := await reader.read(_CHUNK):
            writer.write(chunk)
            await writer.drain()
