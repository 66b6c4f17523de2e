"""Recycling a worker without dropping a request: stop accepting, drain, then exit.

Exiting at once (SIGTERM straight away) resets connections the worker had accepted but
not yet read a request from, and keep-alive clients whose next request was on its way.
Instead the worker closes its listening socket (the other workers share it and take every
new connection), answers what is in flight with ``Connection: close`` (see
:class:`~plugdock.runtime.runtime.PluginSyncMiddleware`), waits until its connections are
gone, and only then asks uvicorn to shut down; the supervisor starts a fresh worker.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
from typing import Any

log = logging.getLogger("plugdock.runtime")

DRAIN_SECONDS = 10.0  # above uvicorn's 5 s keep-alive timeout, which closes idle connections


async def drain_and_exit(grace: float = DRAIN_SECONDS) -> None:
    """Stop accepting, let this worker's connections finish, then SIGTERM ourselves."""
    server = _uvicorn_server()
    loop = asyncio.get_running_loop()
    if server is not None:
        for listener in getattr(server, "servers", []):
            listener.close()
        deadline = loop.time() + grace
        while server.server_state.connections and loop.time() < deadline:
            await asyncio.sleep(0.05)
    os.kill(os.getpid(), signal.SIGTERM)


def _uvicorn_server() -> Any:
    """The uvicorn Server running this worker (uvicorn hands the app no reference to it)."""
    try:
        import uvicorn
    except ImportError:  # pragma: no cover - serve always runs under uvicorn
        return None
    for candidate in gc.get_objects():
        if isinstance(candidate, uvicorn.Server):
            return candidate
    log.warning("no uvicorn server found; recycling without draining")
    return None
