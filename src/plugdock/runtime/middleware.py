"""Before a request is routed, the worker catches up with plugin changes made on this machine."""

from __future__ import annotations

from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from plugdock.runtime.runtime import PluginRuntime


class PluginSyncMiddleware:
    """Before a request is routed, catch up with plugin changes announced on this machine."""

    def __init__(self, app: ASGIApp, runtime_of: Any) -> None:
        self.app = app
        self.runtime_of = runtime_of

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        runtime: PluginRuntime | None = None
        if scope["type"] == "http":
            runtime = self.runtime_of()
            if runtime is not None and (runtime.settling is not None or runtime.hint_changed()):
                await runtime.refresh()
        if runtime is None:
            await self.app(scope, receive, send)
            return

        async def send_closing_when_recycling(message: Message) -> None:
            # A worker about to exit tells keep-alive clients to reconnect (to another worker).
            if message["type"] == "http.response.start" and runtime.recycler.recycling:
                headers = [h for h in message.get("headers", []) if h[0].lower() != b"connection"]
                message = {**message, "headers": [*headers, (b"connection", b"close")]}
            await send(message)

        await self.app(scope, receive, send_closing_when_recycling)
