"""The panel's side of a plugin route in process mode: match it, authenticate, forward it.

:class:`ForwardRoute` is the route-list entry of one plugin process (what
``include_router`` makes for a plugin in the panel). It matches the paths and methods the
plugin's router reported, authenticates the request with the host's own ``authenticate``,
and sends the request to the plugin's Unix socket (its body whole: the panel reads at most
``PLUGDOCK_MAX_REQUEST_BYTES``) and streams the answer back. While the
process is down it answers 503, and 504 when the plugin takes longer than
``PLUGDOCK_PLUGIN_TIMEOUT``, each with a JSON ``detail``. The whole answer, body included,
must be in within that timeout: past it the connection to the client is cut mid-body.

The plugin never sees the caller's credentials: the ``Authorization`` header and the
panel's own cookies (``plugdock_*``) are dropped, as is any ``x-plugdock-*`` header the
client sent, before the panel adds the user it found.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable

from fastapi import HTTPException
from fastapi.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.routing import BaseRoute, Match, compile_path, get_route_path
from starlette.types import Receive, Scope, Send

from plugdock import sdk
from plugdock.isolation import protocol
from plugdock.isolation.http1 import PluginUnreachable, UnixHTTP

# Headers that describe one connection, not the message (RFC 9110 §7.6.1).
_HOP_BY_HOP = {
    b"connection",
    b"keep-alive",
    b"proxy-connection",
    b"te",
    b"trailer",
    b"transfer-encoding",
    b"upgrade",
    b"host",
}
# Request headers the panel replaces (credentials, framing, who the caller is).
_NOT_FORWARDED = {b"authorization", b"content-length", b"expect", b"x-forwarded-for"}
# Answer headers a plugin may not set: its own CSP could allow script on the panel's origin.
_NOT_ANSWERED = {
    b"date",
    b"server",
    b"content-security-policy",
    b"content-security-policy-report-only",
    b"clear-site-data",
}
# Every forwarded answer is sandboxed: a page a plugin serves runs (if at all) in an opaque
# origin, without the panel's cookies or APIs. JSON is unaffected.
_SANDBOX = (
    b"content-security-policy",
    b"sandbox; default-src 'none'; script-src 'self'; object-src 'none'; base-uri 'none'; "
    b"frame-ancestors 'none'",  # `sandbox` without allow-scripts: no script runs at all
)
_PANEL_COOKIE = re.compile(r"^\s*plugdock_[^=]*=")


class AnswerCut(Exception):
    """A plugin's answer body ran past the plugin timeout after its status was sent: raised
    to the server, which closes the client's connection (the body is visibly incomplete)."""


async def _answer(send: Send, status: int, detail: str) -> None:
    """The panel's own answer for a plugin it cannot reach: JSON with a ``detail``."""
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _answer_headers(raw: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """The plugin's answer headers the client may get: not the panel's own cookies (a plugin
    setting ``plugdock_session`` would fixate or end the admin's session), not its own CSP
    (the panel's sandbox instead), and no second ``date``/``server``."""
    kept = [_SANDBOX]
    for name, value in raw:
        lower = name.lower()
        if lower in _HOP_BY_HOP or lower in _NOT_ANSWERED:
            continue
        if lower == b"set-cookie" and _PANEL_COOKIE.match(value.decode("latin-1")):
            continue
        kept.append((name, value))
    return kept


def _cookies_without_panel_ones(value: bytes) -> bytes:
    kept = [c for c in value.decode("latin-1").split(";") if not _PANEL_COOKIE.match(c)]
    return ";".join(kept).strip().encode("latin-1")


class ForwardRoute(BaseRoute):
    """The paths one plugin declared, as one entry of the panel's route list.

    It matches what the plugin's metadata declares (``backend.routes``); the plugin process
    answers 404 or 405 itself for what its router does not serve.
    """

    def __init__(
        self,
        plugin_id: str,
        declared: list[str],
        client: Callable[[], Awaitable[UnixHTTP | str]],
        timeout: float,
    ) -> None:
        self.plugin_id = plugin_id
        self.declared = declared
        self._prefixes = tuple(p[:-1] for p in declared if p.endswith("/*"))
        self._exact = [compile_path(p)[0] for p in declared if not p.endswith("/*")]
        self._client = client  # the client once the process serves, else why it does not
        self.timeout = timeout

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] != "http":
            return Match.NONE, {}
        path = get_route_path(scope)
        if path.startswith(protocol.PRIVATE_PREFIX):
            return Match.NONE, {}
        if path.startswith(self._prefixes) or any(r.match(path) for r in self._exact):
            return Match.FULL, {}
        return Match.NONE, {}

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        client = await self._client()
        if isinstance(client, str):
            await _answer(send, 503, f"{self.plugin_id} is not running: {client}")
            return
        path = get_route_path(scope)
        target = scope.get("raw_path") or path.encode()
        if scope.get("query_string"):
            target += b"?" + scope["query_string"]
        headers = await self._headers(scope)
        body = await _body(receive)  # within the panel's request-size limit
        try:
            answer = await client.request(
                scope["method"], target, headers, body, timeout=self.timeout
            )
        except TimeoutError:
            await _answer(send, 504, f"{self.plugin_id} did not answer within {self.timeout:g} s")
            return
        except PluginUnreachable as exc:
            await _answer(send, 503, f"{self.plugin_id} is not running: {exc}")
            return
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": answer.status,
                    "headers": _answer_headers(answer.headers),
                }
            )
            # The last chunk goes with more_body=False: a whole small answer is one message.
            pending: bytes | None = None
            try:
                async for chunk in answer.chunks():
                    if pending is not None:
                        await send(
                            {"type": "http.response.body", "body": pending, "more_body": True}
                        )
                    pending = chunk
            except TimeoutError as exc:
                # The status went out already: the only honest end is a cut connection, so the
                # client sees an incomplete body, never a short one that looks whole.
                raise AnswerCut(
                    f"{self.plugin_id}'s answer took longer than {self.timeout:g} s"
                ) from exc
            await send({"type": "http.response.body", "body": pending or b""})
        finally:
            await answer.close()

    async def _headers(self, scope: Scope) -> list[tuple[bytes, bytes]]:
        headers: list[tuple[bytes, bytes]] = []
        for name, value in scope["headers"]:
            lower = name.lower()
            if lower in _HOP_BY_HOP or lower in _NOT_FORWARDED:
                continue
            if lower.startswith(protocol.HEADER_PREFIX):
                continue
            if lower == b"cookie":
                value = _cookies_without_panel_ones(value)
                if not value:
                    continue
            headers.append((lower, value))
        names = {name.lower() for name, _ in scope["headers"]}
        if b"authorization" in names or b"cookie" in names:
            authenticated = await _authenticate(scope)
            if isinstance(authenticated, HTTPException):
                headers.append(
                    (
                        protocol.AUTH_ERROR_HEADER.encode(),
                        protocol.auth_error_header(authenticated).encode(),
                    )
                )
            elif authenticated is not None:
                headers.append(
                    (protocol.USER_HEADER.encode(), protocol.user_header(authenticated).encode())
                )
        # Only the panel says who the caller is (uvicorn applied any trusted proxy's word).
        client = scope.get("client")
        headers.append((b"x-forwarded-for", str(client[0]).encode() if client else b"unknown"))
        return headers

    def __repr__(self) -> str:
        return f"ForwardRoute({self.plugin_id}, {self.declared})"


async def _authenticate(scope: Scope) -> sdk.User | HTTPException | None:
    """The host's verdict on the request's credentials, computed once in the panel."""
    request = Request(scope)
    state = sdk.host_state(request.app)
    try:
        if state.user_of is not None:
            return await state.user_of(request)
        if state.authenticate is None:
            return None
        return await run_in_threadpool(state.authenticate, request)
    except HTTPException as refused:
        return refused


async def _body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)
