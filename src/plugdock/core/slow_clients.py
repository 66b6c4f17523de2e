"""Dropping slow clients: uvicorn's HTTP protocol with a header and a body deadline.

uvicorn closes an idle keep-alive connection, but a client that sends half a request line,
trickles its headers a byte at a time, or stops halfway through a body holds its
connection (an open file) for ever: a few hundred of them and the panel accepts no one.
:class:`SlowClientGuard` gives each request

- ``header_timeout`` seconds from its first byte (or from the connection) until its headers
  are complete, and
- ``body_timeout`` seconds from its headers until its whole body has arrived (a total, not
  a gap between chunks: one byte every few seconds would reset a gap timer for ever);

past either the connection is answered ``408`` when no answer has started, and closed.
Uvicorn takes the class as ``http=SlowClientGuard``; its workers are spawned processes
that unpickle the class by name, so the deadlines are process-wide values set by the app
factory (:func:`configure`), which runs in every worker::

    slow_clients.configure(header_timeout=10, body_timeout=120)
    uvicorn.run(app, http=slow_clients.SlowClientGuard, ...)
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger(__name__)

DEFAULT_HEADER_TIMEOUT = 10.0
DEFAULT_BODY_TIMEOUT = 120.0

_deadlines = {"header": DEFAULT_HEADER_TIMEOUT, "body": DEFAULT_BODY_TIMEOUT}

_TIMEOUT_BODY = b'{"detail":"request not received in time"}'
_REQUEST_TIMEOUT = (
    b"HTTP/1.1 408 Request Timeout\r\n"
    b"content-type: application/json\r\n"
    b"content-length: %d\r\n"
    b"connection: close\r\n\r\n%s" % (len(_TIMEOUT_BODY), _TIMEOUT_BODY)
)


def configure(*, header_timeout: float, body_timeout: float) -> None:
    """Set the deadlines of this process's connections (from the settings)."""
    if header_timeout <= 0 or body_timeout <= 0:
        raise ValueError("header and body timeouts must be positive")
    _deadlines["header"] = header_timeout
    _deadlines["body"] = body_timeout


def deadlines() -> tuple[float, float]:
    """(header, body) timeouts in force in this process."""
    return _deadlines["header"], _deadlines["body"]


class SlowClientGuard(HttpToolsProtocol):
    """uvicorn's httptools protocol, closing requests that arrive too slowly."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self._reading_body = False

    def _arm(self, seconds: float, phase: str) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, self._expired, phase)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self, phase: str) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        log.info("closing a connection from %s: its %s took too long", self.client, phase)
        current = self.cycle
        if phase == "headers":  # a new request: the previous one's answer may still be going
            unanswered = current is None or current.response_complete
        else:
            unanswered = not current.response_started
        if unanswered:
            self.transport.write(_REQUEST_TIMEOUT)
        self.transport.close()

    # -- the protocol's events -------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(_deadlines["header"], "headers")  # a connection that never sends a byte

    def data_received(self, data: bytes) -> None:
        # The first byte of a request on a kept-alive connection (or pipelined behind one):
        # its headers' clock starts. While a body is read, its own clock runs.
        if self._deadline is None and not self._reading_body:
            self._arm(_deadlines["header"], "headers")
        super().data_received(data)

    def on_headers_complete(self) -> None:
        self._reading_body = True
        self._arm(_deadlines["body"], "body")
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._reading_body = False
        self._disarm()
        super().on_message_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)
