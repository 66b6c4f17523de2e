"""Recycling a worker without dropping a request: one worker at a time, drained, then gone.

Exiting at once (SIGTERM straight away) resets connections the worker had accepted but
not yet read a request from, and keep-alive clients whose next request was on its way.
Instead a worker whose turn it is (one at a time, so the others keep accepting) closes its
listening socket (the others share it and take every new connection), answers what is in
flight with ``Connection: close`` (see :class:`~plugdock.runtime.middleware.PluginSyncMiddleware`),
closes connections only once they have been idle longer than clients keep an idle
connection for reuse (:data:`IDLE_CLOSE_SECONDS`), and then asks uvicorn to shut down;
the supervisor starts a fresh worker.

Closing an idle keep-alive connection races with a client that sends on it at that
moment (it sees a reset). Clients stop reusing a connection after their own idle expiry
(httpx and most libraries: 5 s), so the panel keeps idle connections open longer
(:data:`KEEP_ALIVE_SECONDS`) and a drain closes them only after that expiry too.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import gc
import logging
import os
import signal
from pathlib import Path
from typing import Any

log = logging.getLogger("plugdock.runtime")

# Set by `plugdock serve --workers N` (N > 1): a worker that exits is replaced.
SUPERVISED_ENV = "PLUGDOCK_SUPERVISED_WORKER"


class Recycler:
    """Restarts this worker after many plugin changes, since Python never frees them all.

    Only under uvicorn's multi-worker supervisor (``serve --workers N``, N > 1), which
    starts a fresh worker while the others keep serving; this one stops accepting and
    drains its connections first.
    """

    def __init__(self, recycle_after: int, lock_path: Path) -> None:
        self.recycle_after = recycle_after
        self.lock_path = lock_path
        self.recycling = False  # from then on every answer says Connection: close
        self._drain: asyncio.Task[None] | None = None  # kept so the task is not collected

    def if_due(self, changes: int) -> None:
        """Start recycling when ``changes`` (mounts + unmounts) reached the limit, and it is
        this worker's turn."""
        if changes < self.recycle_after or not os.environ.get(SUPERVISED_ENV):
            return
        if not self.recycling and take_turn(self.lock_path):
            self.recycling = True
            log.warning("recycling worker %d after %d plugin changes", os.getpid(), changes)
            try:
                self._drain = asyncio.get_running_loop().create_task(drain_and_exit())
            except RuntimeError:  # no event loop (not serving requests): nothing to drain
                os.kill(os.getpid(), signal.SIGTERM)


KEEP_ALIVE_SECONDS = 15  # uvicorn's timeout_keep_alive for the panel: above clients' 5 s
IDLE_CLOSE_SECONDS = 6.0  # a draining worker closes connections idle this long
DRAIN_SECONDS = 30.0  # at most; then uvicorn's own shutdown closes what is left

_turn: int | None = None  # the open, locked turn file (released when the process exits)


def take_turn(lock_path: Path) -> bool:
    """True if no other worker of this instance is recycling now (then it is our turn).

    An advisory lock the process holds until it exits, so workers that reached their
    limit together (they all mount every change) recycle one after another.
    """
    global _turn
    if _turn is not None:
        return True
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return False
    _turn = fd
    return True


def _busy(connection: Any) -> bool:
    """A request is in flight on this uvicorn protocol (its response not yet complete)."""
    cycle = getattr(connection, "cycle", None)
    return cycle is not None and not cycle.response_complete


async def drain_and_exit(grace: float = DRAIN_SECONDS) -> None:
    """Stop accepting, let this worker's connections finish, then SIGTERM ourselves."""
    server = _uvicorn_server()
    loop = asyncio.get_running_loop()
    if server is not None:
        for listener in getattr(server, "servers", []):
            listener.close()
        deadline = loop.time() + grace
        idle_since: dict[int, float] = {}
        while server.server_state.connections and loop.time() < deadline:
            now = loop.time()
            for connection in list(server.server_state.connections):
                if _busy(connection):
                    idle_since.pop(id(connection), None)
                elif now - idle_since.setdefault(id(connection), now) >= IDLE_CLOSE_SECONDS:
                    with contextlib.suppress(Exception):
                        connection.shutdown()  # uvicorn closes an idle connection at once
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
