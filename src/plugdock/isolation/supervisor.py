"""The plugin processes of one panel process: started, watched, restarted, stopped.

Each served plugin has one :class:`ServedPlugin`: its route-list entry (a
:class:`~plugdock.isolation.forward.ForwardRoute` that matches the paths its metadata
declares), the process behind it and the HTTP client that reaches it. The entry exists
from the moment the plugin should be served; a request that arrives while the process
starts waits for it (up to the start timeout), and one that arrives while it is down gets
503 with the reason.

:meth:`PluginProcesses.watch` looks after them all: a process that exits (a crash, the
memory limit, a kill) or stops answering its ping (hung) is reported and started again
with exponential backoff (1 s, 2 s, 4 s … 60 s; back to 1 s after a minute of good
health). Each panel process has its own plugin processes; see docs/isolation.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import Engine

from plugdock.config import Settings
from plugdock.fsutil import make_private_dir
from plugdock.isolation import protocol
from plugdock.isolation.control import ChildProcess, PluginProcessError
from plugdock.isolation.database import PluginDatabase
from plugdock.isolation.forward import ForwardRoute
from plugdock.isolation.sandbox import Sandbox

log = logging.getLogger("plugdock.isolation")

PING_EVERY = 5.0  # seconds between liveness pings of a serving process
PING_TIMEOUT = 5.0
PINGS_MISSED = 2  # this many unanswered pings in a row: hung, killed and restarted
BACKOFF_MAX = 60.0
HEALTHY_AFTER = 60.0  # serving this long resets the backoff
START_WAIT = 30.0  # how long a request waits for a starting process
RUN_ROOT = "/tmp"


@dataclass
class ServedPlugin:
    """One plugin this panel process serves from a plugin process."""

    plugin_id: str
    key: str  # the installation's operation id: a new installation is a new process
    version: str
    declared: list[str]
    permissions: list[str]
    tables: list[str]
    route: ForwardRoute | None = None
    child: ChildProcess | None = None
    client: httpx.AsyncClient | None = None
    error: str | None = "starting"
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    restarts: int = 0
    backoff: float = 1.0
    serving_since: float = 0.0
    retry_at: float = 0.0
    missed_pings: int = 0
    starting: asyncio.Task[None] | None = None


class PluginProcesses:
    """Every plugin process of one panel process."""

    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        *,
        on_change: Callable[[], None] = lambda: None,
        on_gave_up: Callable[[str, str], None] = lambda plugin_id, why: None,
    ) -> None:
        self.settings = settings
        self.engine = engine
        # Sockets need a short path (108 bytes); one private folder per panel process,
        # named after it, so the next one can remove what a killed one left.
        _remove_orphans()
        self.base = Path(tempfile.mkdtemp(prefix=f"pd-{os.getpid()}-", dir=RUN_ROOT))
        self.database = PluginDatabase(settings, engine)
        self.served: dict[str, ServedPlugin] = {}
        self._spawned = 0
        self.on_change = on_change  # a process started serving: its routes and OpenAPI
        self.on_gave_up = on_gave_up  # its backend does not load: not retried (see _start)

    # -- one process ---------------------------------------------------------------------

    def sandbox(self, plugin_id: str, permissions: list[str], backend_dir: Path) -> Sandbox:
        from plugdock.isolation.permissions import wants_network

        # A folder per process: an upgrade's new process starts beside the serving one.
        self._spawned += 1
        run_dir = self.base / f"{plugin_id}-{self._spawned}"
        make_private_dir(run_dir)
        data_dir = self.settings.plugin_data_dir / plugin_id
        make_private_dir(data_dir)
        return Sandbox(
            plugin_id=plugin_id,
            backend_dir=backend_dir,
            data_dir=data_dir,
            run_dir=run_dir,
            hidden=self.settings.home,
            network=wants_network(permissions),
            memory_bytes=self.settings.plugin_memory_mb << 20,
            extra_files=tuple(self.database.files()),
            env=_plugin_environment(plugin_id),
        )

    def spawn(
        self,
        plugin_id: str,
        operation_id: str,
        permissions: list[str],
        backend_dir: Path | None = None,
    ) -> ChildProcess:
        """Start a plugin process that has imported the backend (blocking; not serving yet)."""
        from plugdock.runtime.loader import module_token

        sandbox = self.sandbox(
            plugin_id, permissions, backend_dir or self.settings.backend_dir / plugin_id
        )
        key = sandbox.run_dir.name

        def cleanup() -> None:
            self.database.close_for(key)
            shutil.rmtree(sandbox.run_dir, ignore_errors=True)

        try:
            url = self.database.open_for(plugin_id, key, sandbox.run_dir)
            self.database.open_core_calls(plugin_id, key, sandbox.run_dir, permissions)
            return ChildProcess(
                plugin_id,
                sandbox,
                self.base / "logs" / f"{plugin_id}.log",
                {"plugin_id": plugin_id, "token": module_token(operation_id), "db_url": url},
                cleanup,
            )
        except BaseException:
            cleanup()
            raise

    def grant(self, plugin_id: str, tables: list[str]) -> None:
        """Give the plugin's database role its tables (after they are committed; blocking)."""
        self.database.grant(plugin_id, tables)

    # -- serving -------------------------------------------------------------------------

    def serve(
        self,
        plugin_id: str,
        key: str,
        version: str,
        declared: list[str],
        permissions: list[str],
        tables: list[str],
        child: ChildProcess | None = None,
    ) -> ForwardRoute:
        """The plugin's route-list entry; its process starts in the background (event loop).

        ``child`` is a process the install already started (and ran the hook in); without
        one a new process is started.
        """
        served = ServedPlugin(plugin_id, key, version, declared, permissions, tables)
        served.route = ForwardRoute(
            plugin_id,
            declared,
            client=lambda: self._client_of(served),
            timeout=self.settings.plugin_timeout,
        )
        self.served[plugin_id] = served
        served.starting = asyncio.get_running_loop().create_task(self._start(served, child))
        return served.route

    async def settled(self, timeout: float = START_WAIT) -> None:
        """Wait (bounded) until every process being started serves or has failed."""
        starting = [s.starting for s in self.served.values() if s.starting is not None]
        if starting:
            await asyncio.wait(starting, timeout=timeout)

    async def _client_of(self, served: ServedPlugin) -> httpx.AsyncClient | str:
        """The client reaching the process, once it is up; else why it is not."""
        if served.client is None and served.error == "starting":
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(served.ready.wait(), START_WAIT)
        return served.client or (served.error or "stopped")

    async def _start(self, served: ServedPlugin, child: ChildProcess | None) -> None:
        try:
            if child is None:
                child = await run_in_threadpool(
                    self.spawn, served.plugin_id, served.key, served.permissions
                )
        except PluginProcessError as exc:
            # Its code does not import (or hangs importing): as in the panel, the same
            # installation is not tried again; a new installation or a restart is.
            served.error = f"failed: {exc}"
            served.ready.set()
            if self.served.get(served.plugin_id) is served:
                self.on_gave_up(served.plugin_id, str(exc))
            return
        except Exception as exc:  # e.g. the database refused the role: try again later
            self._failed(served, str(exc))
            return
        try:
            await run_in_threadpool(self.grant, served.plugin_id, served.tables)
            await run_in_threadpool(child.serve)
        except Exception as exc:
            await run_in_threadpool(child.kill)
            self._failed(served, str(exc))
            return
        if self.served.get(served.plugin_id) is not served:  # unmounted meanwhile
            await run_in_threadpool(child.stop)
            return
        served.child = child
        served.client = httpx.AsyncClient(
            transport=httpx.AsyncHTTPTransport(uds=str(child.socket_path)),
            base_url="http://plugin",
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=16),
        )
        served.error = None
        served.missed_pings = 0
        served.serving_since = time.monotonic()
        served.ready.set()
        self.on_change()
        log.info("%s %s serving in process %d", served.plugin_id, served.version, child.pid)

    def _failed(self, served: ServedPlugin, why: str) -> None:
        served.restarts += 1
        served.retry_at = time.monotonic() + served.backoff
        served.error = f"{why}; restarting in {served.backoff:g} s (restart {served.restarts})"
        served.backoff = min(served.backoff * 2, BACKOFF_MAX)
        served.ready.set()  # waiting requests get the 503 now
        served.ready = asyncio.Event()
        log.error("%s: %s", served.plugin_id, served.error)

    async def stop(self, plugin_id: str) -> None:
        """Stop serving a plugin: its process ends, and its memory goes back to the system."""
        served = self.served.pop(plugin_id, None)
        if served is None:
            return
        if served.starting is not None and not served.starting.done():
            served.starting.cancel()
        await self._halt(served)

    async def _halt(self, served: ServedPlugin) -> None:
        client, child = served.client, served.child
        served.client = served.child = None
        if client is not None:
            await client.aclose()
        if child is not None:
            await run_in_threadpool(child.stop)

    async def close(self) -> None:
        for plugin_id in list(self.served):
            await self.stop(plugin_id)
        self.shut_down()

    def shut_down(self) -> None:
        """Close the sockets and remove the run folders (no process may be left serving)."""
        self.database.close()
        shutil.rmtree(self.base, ignore_errors=True)

    # -- watching ------------------------------------------------------------------------

    async def watch(self) -> None:
        """Notice dead and hung processes and start them again, with backoff."""
        last_ping = 0.0
        while True:
            await asyncio.sleep(0.5)
            now = time.monotonic()
            ping = now - last_ping >= PING_EVERY
            if ping:
                last_ping = now
            for served in list(self.served.values()):
                try:
                    await self._look_after(served, now, ping)
                except Exception:
                    log.exception("%s: supervising its process failed", served.plugin_id)

    async def _look_after(self, served: ServedPlugin, now: float, ping: bool) -> None:
        if served.starting is not None and not served.starting.done():
            return
        child = served.child
        if child is not None and not child.alive():
            why = child.why_stopped()
            await self._halt(served)
            self._failed(served, why)
            return
        if child is None:
            if now >= served.retry_at and served.error != "starting":
                served.error = "starting"
                served.starting = asyncio.get_running_loop().create_task(self._start(served, None))
            return
        if now - served.serving_since >= HEALTHY_AFTER:
            served.backoff = 1.0
        if ping and served.client is not None:
            try:
                answer = await served.client.get(protocol.PING_PATH, timeout=PING_TIMEOUT)
                answer.raise_for_status()
                served.missed_pings = 0
            except httpx.HTTPError:
                served.missed_pings += 1
                if served.missed_pings >= PINGS_MISSED:
                    await self._halt(served)
                    self._failed(served, f"hung: no answer to {PINGS_MISSED} pings; killed")

    # -- reporting -----------------------------------------------------------------------

    def status(self, plugin_id: str) -> str | None:
        """None when the plugin's process serves; else why not (starting, crashed …)."""
        served = self.served.get(plugin_id)
        return None if served is None else served.error

    def pids(self) -> dict[str, int]:
        return {p: s.child.pid for p, s in self.served.items() if s.child is not None}

    def openapi(self) -> list[dict[str, Any]]:
        """The OpenAPI paths and schemas of each serving plugin process."""
        return [s.child.openapi for s in self.served.values() if s.child is not None]

    def served_routes(self) -> dict[str, list[tuple[str, list[str]]]]:
        return {p: s.child.routes for p, s in self.served.items() if s.child is not None}


def _remove_orphans() -> None:
    """Remove the run folders of panel processes that are gone (killed, not stopped)."""
    for folder in Path(RUN_ROOT).glob("pd-*-*"):
        pid = folder.name.split("-")[1]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists() and folder.owner() == _me():
            shutil.rmtree(folder, ignore_errors=True)


def _me() -> str:
    import pwd

    return pwd.getpwuid(os.getuid()).pw_name


def _plugin_environment(plugin_id: str) -> dict[str, str]:
    """The plugin's own settings (``PLUGDOCK_PLUGIN_<ID>_*``) and nothing else of the panel's."""
    from plugdock import sdk

    prefix = f"{sdk.SETTINGS_ENV_PREFIX}{plugin_id.upper()}_"
    return {
        f"{prefix}{key.upper()}": value
        for key, value in sdk.plugin_settings(plugin_id).items()
        if re.fullmatch(r"[A-Za-z0-9_]+", key)
    }


ProcessesOf = Callable[[], PluginProcesses | None]
