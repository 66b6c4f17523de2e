"""A small HTTP/1.1 client for one plugin process's Unix socket, with kept-alive connections.

The panel forwards every plugin request through it. A general client (httpx) spent about
1.4 ms per request in the panel on this path; this one speaks only what the forwarder
needs (bench/isolation.py measures the difference):

- the request body is sent whole (the panel has read it already, within its body limit,
  so a request on a connection the plugin process had just closed can be sent again);
- the answer streams: its status and headers first, then the body as it arrives
  (``httptools`` parses it, as in uvicorn).

A plugin's answer is bounded like a request a server reads: at most ``MAX_HEADERS``
headers of ``MAX_HEADER_BYTES`` in all (counted in bytes, one long header included), and
the whole answer, body included, within the request's ``timeout``: a body that drips a
byte at a time is cut there, not only one that stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httptools

_READ = 65536
MAX_HEADER_BYTES = 64 * 1024  # an answer's status line and headers, like a server's limit
MAX_HEADERS = 100
MAX_OWN_BODY = 1 << 20  # the panel's own questions (ping, describe): small answers only


class PluginUnreachable(ConnectionError):
    """No answer from the plugin process: not listening, or closed the connection."""


@dataclass
class _Parsed:
    """What httptools reported so far about one answer."""

    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    header_bytes: int = 0  # as sent: "name: value\r\n" for each
    body: list[bytes] = field(default_factory=list)
    headers_done: bool = False
    done: bool = False

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))
        self.header_bytes += len(name) + len(value) + 4

    def on_headers_complete(self) -> None:
        self.headers_done = True

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        self.done = True


class Answer:
    """One answer: ``status`` and ``headers`` at once, then :meth:`chunks`, then :meth:`close`."""

    def __init__(
        self,
        pool: UnixHTTP,
        streams: tuple[asyncio.StreamReader, asyncio.StreamWriter],
        parser: httptools.HttpResponseParser,
        parsed: _Parsed,
        deadline: float,
        bodiless: bool,
    ) -> None:
        self._pool = pool
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = streams
        self._parser = parser
        self._parsed = parsed
        self._deadline = deadline  # loop time by which the whole answer must be in
        self.status: int = parser.get_status_code()
        self.headers = parsed.headers
        self._bodiless = bodiless
        self._reusable = parser.should_keep_alive() and not bodiless

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives (nothing for HEAD, 204 and 304).

        ``TimeoutError`` once the request's timeout has passed, however steadily it drips.
        """
        if self._bodiless or self.status in (204, 304):
            self._parsed.done = True
            return
        while True:
            while self._parsed.body:
                yield self._parsed.body.pop(0)
            if self._parsed.done or self._streams is None:
                return
            left = self._deadline - asyncio.get_running_loop().time()
            if left <= 0:
                self._reusable = False
                raise TimeoutError("the plugin process's answer took too long")
            data = await asyncio.wait_for(self._streams[0].read(_READ), left)
            if not data:
                self._reusable = False
                if not self._parsed.done:
                    raise PluginUnreachable("the plugin process closed the answer early")
                continue
            self._parser.feed_data(data)

    async def read(self) -> bytes:
        return b"".join([chunk async for chunk in self.chunks()])

    async def close(self) -> None:
        """Give the connection back when the answer was read whole; else close it."""
        streams, self._streams = self._streams, None
        if streams is None:
            return
        if self._reusable and self._parsed.done:
            self._pool.give_back(streams)
        else:
            streams[1].close()


class UnixHTTP:
    """Requests to one Unix socket, over up to ``keep`` idle kept-alive connections."""

    def __init__(self, path: str, keep: int = 16) -> None:
        self.path = path
        self.keep = keep
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self._closed = False

    async def request(
        self,
        method: str,
        target: bytes,
        headers: list[tuple[bytes, bytes]],
        body: bytes = b"",
        timeout: float = 30.0,
    ) -> Answer:
        """Send a request; the answer once its status and headers are in.

        ``TimeoutError`` when the plugin takes longer than ``timeout`` to answer;
        :class:`PluginUnreachable` when it cannot be reached.
        """
        head = [f"{method} ".encode(), target, b" HTTP/1.1\r\nhost: plugin\r\n"]
        for name, value in headers:
            head += [name, b": ", value, b"\r\n"]
        if body or method not in ("GET", "HEAD", "DELETE", "OPTIONS"):
            head.append(b"content-length: %d\r\n" % len(body))
        message = b"".join([*head, b"\r\n", body])
        deadline = asyncio.get_running_loop().time() + timeout
        async with asyncio.timeout_at(deadline):
            while True:
                streams, reused = await self._connection()
                try:
                    return await self._exchange(streams, message, method == "HEAD", deadline)
                except PluginUnreachable:
                    streams[1].close()
                    if not reused:  # a fresh connection failed: the process is not there
                        raise
                    # A kept-alive connection the process had closed: once more, anew.
                except BaseException:  # timed out or cancelled mid-exchange: not reusable
                    streams[1].close()
                    raise

    async def _connection(self) -> tuple[tuple[asyncio.StreamReader, asyncio.StreamWriter], bool]:
        while self._idle:
            streams = self._idle.pop()
            if not streams[0].at_eof() and not streams[1].is_closing():
                return streams, True
            streams[1].close()
        try:
            return await asyncio.open_unix_connection(self.path, limit=_READ * 4), False
        except OSError as exc:
            raise PluginUnreachable(str(exc)) from exc

    async def _exchange(
        self,
        streams: tuple[asyncio.StreamReader, asyncio.StreamWriter],
        message: bytes,
        bodiless: bool,
        deadline: float,
    ) -> Answer:
        reader, writer = streams
        parsed = _Parsed()
        parser = httptools.HttpResponseParser(parsed)
        try:
            writer.write(message)
            await writer.drain()
            received = 0
            while not parsed.headers_done:
                data = await reader.read(_READ)
                if not data:
                    raise PluginUnreachable("the plugin process closed the connection")
                received += len(data)
                parser.feed_data(data)
                # Bytes received bound what httptools holds of an unfinished header; the
                # headers' own bytes catch a long one that arrived with the rest.
                if (
                    len(parsed.headers) > MAX_HEADERS
                    or parsed.header_bytes > MAX_HEADER_BYTES
                    or (not parsed.headers_done and received > MAX_HEADER_BYTES)
                ):
                    raise PluginUnreachable("the plugin process sent oversized headers")
            if parser.get_status_code() < 200:  # a 1xx is not an answer to forward
                raise PluginUnreachable("the plugin process answered 1xx")
        except PluginUnreachable:
            raise
        except (ConnectionError, httptools.HttpParserError) as exc:
            raise PluginUnreachable(str(exc)) from exc
        return Answer(self, streams, parser, parsed, deadline, bodiless)

    def give_back(self, streams: tuple[asyncio.StreamReader, asyncio.StreamWriter]) -> None:
        if self._closed or len(self._idle) >= self.keep:
            streams[1].close()
        else:
            self._idle.append(streams)

    async def get(self, path: str, timeout: float) -> tuple[int, bytes]:
        """A whole GET (the panel's own questions: ping, describe)."""
        answer = await self.request("GET", path.encode(), [], timeout=timeout)
        return await self._whole(answer, timeout)

    async def post_json(self, path: str, payload: Any, timeout: float) -> tuple[int, bytes]:
        """A whole POST of a JSON body (the panel's own orders: run an event handler)."""
        headers = [(b"content-type", b"application/json")]
        body = json.dumps(payload).encode()
        answer = await self.request("POST", path.encode(), headers, body, timeout=timeout)
        return await self._whole(answer, timeout)

    async def _whole(self, answer: Answer, timeout: float) -> tuple[int, bytes]:
        try:
            async with asyncio.timeout(timeout):
                body = b""
                async for chunk in answer.chunks():
                    body += chunk
                    if len(body) > MAX_OWN_BODY:
                        raise PluginUnreachable("the plugin process sent an oversized answer")
                return answer.status, body
        finally:
            await answer.close()

    async def aclose(self) -> None:
        self._closed = True
        for _reader, writer in self._idle:
            with contextlib.suppress(Exception):
                writer.close()
        self._idle.clear()
