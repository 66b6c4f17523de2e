"""Request body limits: a 413 before the panel reads (or keeps) more than it accepts.

Without a limit, one unauthenticated ``POST /api/v1/auth/login`` of 100 MiB is read
whole into memory (and FastAPI's default 422 would even send it back). This pure-ASGI
middleware sits in front of everything, plugin routes included:

- a ``Content-Length`` over the limit is answered 413 at once; the body is never read;
- a body without one (chunked) is counted as it streams and cut at the limit: the read
  that crosses it raises a 413 instead of handing the bytes to the app.

Every request gets ``PLUGDOCK_MAX_REQUEST_BYTES`` (1 MiB by default) except the package
upload, which gets the package limit (``PLUGDOCK_MAX_PACKAGE_BYTES``) plus room for the
multipart framing::

    app.add_middleware(BodyLimitMiddleware, default=1 << 20, routes={("POST", UPLOAD): 100 << 20})
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: The package upload (multipart, field ``file``): the one route allowed large bodies.
UPLOAD_PATH = "/api/v1/marketplace/upload"
#: Room for the multipart boundary and part headers around the package bytes.
MULTIPART_SLACK = 64 * 1024


def _detail(limit: int) -> str:
    return f"request body too large (limit {limit} bytes)"


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` when a streamed body crosses the limit.

    An ``HTTPException``, so FastAPI's body parsing re-raises it as is (it turns other
    errors into a 400) and the app's handler answers ``413 {"detail": ...}``.
    """

    def __init__(self, limit: int) -> None:
        super().__init__(status_code=413, detail=_detail(limit))


class BodyLimitMiddleware:
    """Refuse request bodies larger than the limit of their route with 413.

    ``applies``: which requests are limited (default all; an embedding host limits only
    plugdock's and the plugins' routes).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        default: int,
        routes: Mapping[tuple[str, str], int] | None = None,
        applies: Callable[[Scope], bool] | None = None,
    ) -> None:
        self.app = app
        self.default = default
        self.routes = dict(routes or {})
        self.applies = applies

    def limit_for(self, scope: Scope) -> int:
        return self.routes.get((scope.get("method", ""), scope.get("path", "")), self.default)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (self.applies is not None and not self.applies(scope)):
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope)
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await _answer_413(send, limit)  # the body is never read
            return

        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            # Code outside FastAPI's handlers let it escape: still a 413 if nothing was
            # sent yet; otherwise the response is cut and the connection ends.
            if not started:
                await _answer_413(send, limit)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # the server refuses malformed lengths before we see them
    return None


async def _answer_413(send: Send, limit: int) -> None:
    body = json.dumps({"detail": _detail(limit)}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),  # the unread body makes the connection unusable
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
