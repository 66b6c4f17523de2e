"""The panel's side of a plugin route in process mode: match it, authenticate, forward it.

:class:`ForwardRoute` is the route-list entry of one plugin process (what
``include_router`` makes for a plugin in the panel). It matches the paths and methods the
plugin's router reported, authenticates the request with the host's own ``authenticate``,
and streams the request to the plugin's Unix socket and the answer back. While the
process is down it answers 503, and 504 when the plugin takes longer than
``PLUGDOCK_PLUGIN_TIMEOUT``, each with a JSON ``detail``.

The plugin never sees the caller's credentials: the ``Authorization`` header and the
panel's own cookies (``plugdock_*``) are dropped, as is any ``x-plugdock-*`` header the
client sent, before the panel adds the user it found.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
from fastapi import HTTPException
from fastapi.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.routing import BaseRoute, Match, compile_path, get_route_path
from starlette.types import Receive, Scope, Send

from plugdock import sdk
from plugdock.isolation import protocol

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
_PANEL_COOKIE = re.compile(r"^\s*plugdock_[^=]*=")


def _json_answer(status: int, detail: str) -> list[dict[str, Any]]:
    body = json.dumps({"detail": detail}).encode()
    return [
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        },
        {"type": "http.response.body", "body": body},
    ]


def _answer_headers(raw: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """The plugin's answer headers the client may get: not the panel's own cookies (a plugin
    setting ``plugdock_session`` would fixate or end the admin's session), and no second
    ``date``/``server`` (the panel's server adds its own)."""
    kept = []
    for name, value in raw:
        lower = name.lower()
        if lower in _HOP_BY_HOP or lower in (b"date", b"server"):
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
        client: Callable[[], Awaitable[httpx.AsyncClient | str]],
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
            for message in _json_answer(503, f"{self.plugin_id} is not running: {client}"):
                await send(message)
            return
        path = get_route_path(scope)
        headers = await self._headers(scope)
        raw_path = scope.get("raw_path") or path.encode()
        request = client.build_request(
            scope["method"],
            httpx.URL(path=raw_path.decode("latin-1"), query=scope.get("query_string") or None),
            headers=headers,
            content=_body(receive) if _has_body(scope) else None,
            timeout=self.timeout,
        )
        try:
            response = await client.send(request, stream=True)
        except httpx.TimeoutException:
            for message in _json_answer(
                504, f"{self.plugin_id} did not answer within {self.timeout:g} s"
            ):
                await send(message)
            return
        except httpx.TransportError as exc:
            for message in _json_answer(503, f"{self.plugin_id} is not running: {exc!r}"):
                await send(message)
            return
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": response.status_code,
                    "headers": _answer_headers(response.headers.raw),
                }
            )
            async for chunk in response.aiter_raw():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        finally:
            await response.aclose()

    async def _headers(self, scope: Scope) -> list[tuple[bytes, bytes]]:
        headers: list[tuple[bytes, bytes]] = []
        for name, value in scope["headers"]:
            lower = name.lower()
            if lower in _HOP_BY_HOP or lower == b"authorization":
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
        client = scope.get("client")
        if client:
            headers.append((b"x-forwarded-for", str(client[0]).encode()))
        return headers

    def __repr__(self) -> str:
        return f"ForwardRoute({self.plugin_id}, {self.declared})"


async def _authenticate(scope: Scope) -> sdk.User | HTTPException | None:
    """The host's verdict on the request's credentials, computed once in the panel."""
    request = Request(scope)
    state = sdk.host_state(request.app)
    if state.authenticate is None:
        return None
    try:
        return await run_in_threadpool(state.authenticate, request)
    except HTTPException as refused:
        return refused


def _has_body(scope: Scope) -> bool:
    names = {name.lower() for name, _ in scope["headers"]}
    return b"content-length" in names or b"transfer-encoding" in names


async def _body(receive: Receive) -> AsyncIterator[bytes]:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        chunk = message.get("body", b"")
        if chunk:
            yield chunk
        if not message.get("more_body", False):
            return
