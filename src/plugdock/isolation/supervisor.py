"""The plugin processes of a panel: started, shared by its workers, watched, restarted, stopped.

Each served plugin has one :class:`ServedPlugin` per panel worker: its route-list entry (a
:class:`~plugdock.isolation.forward.ForwardRoute` that matches the paths its metadata
declares) and the HTTP client that reaches its process. The entry exists from the moment
the plugin should be served; a request that arrives while the process starts waits for it
(up to the start timeout), and one that arrives while it is down gets 503 with the reason.

**One process per installed plugin on a machine, shared by the workers.** The worker that
starts an installation's process (:mod:`plugdock.isolation.spawner`: run folder, lock,
sandbox) supervises it; the others forward to its socket and take over when the owner is
gone: its lock is free then, and the process ended with it (``--die-with-parent``).

:meth:`PluginProcesses.watch` looks after them: a process that exits (a crash, the memory
limit, a kill) or stops answering its ping (hung) is reported and started again with
exponential backoff (1 s, 2 s, 4 s … 60 s; back to 1 s after a minute of good health).
It is also the **watchdog** of the processes this worker owns: every second it measures
what each plugin uses, all its processes together (:mod:`plugdock.isolation.resources`),
and stops one past its memory, process or data limit; that plugin stays stopped, with a
status that says why ("stopped: used 700 MiB, limit 512 MiB ..."), until it is installed
again (an upgrade) or the panel restarts (a plugin over its data quota does not start).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi.concurrency import run_in_threadpool
from sqlalchemy import Engine

from plugdock import sdk
from plugdock.config import Settings
from plugdock.errors import HandlerTimeout, OwnedElsewhere, PluginProcessError
from plugdock.isolation import protocol, resources
from plugdock.isolation.control import ChildProcess
from plugdock.isolation.core_calls import UsersOf
from plugdock.isolation.forward import ForwardRoute
from plugdock.isolation.http1 import PluginUnreachable, UnixHTTP
from plugdock.isolation.spawner import Spawner

log = logging.getLogger("plugdock.isolation")

PING_EVERY = 5.0  # seconds between liveness pings of a serving process
PING_TIMEOUT = 5.0
PINGS_MISSED = 2  # this many unanswered pings in a row: hung, killed and restarted
BACKOFF_MAX = 60.0
HEALTHY_AFTER = 60.0  # serving this long resets the backoff
START_WAIT = 30.0  # how long a request waits for a starting process
MEASURE_EVERY = 1.0  # seconds between the watchdog's measures of each plugin's resources


@dataclass
class ServedPlugin:
    """One plugin this panel worker serves from a plugin process."""

    plugin_id: str
    key: str  # the installation's operation id: a new installation is a new process
    version: str
    declared: list[str]
    permissions: list[str]
    tables: list[str]
    run_dir: Path
    route: ForwardRoute | None = None
    child: ChildProcess | None = None  # set in the worker that owns the process
    client: UnixHTTP | None = None
    error: str | None = "starting"
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    routes: list[tuple[str, list[str]]] = field(default_factory=list)
    openapi: dict[str, Any] = field(default_factory=dict)
    restarts: int = 0
    backoff: float = 1.0
    serving_since: float = 0.0
    retry_at: float = 0.0
    missed_pings: int = 0
    starting: asyncio.Task[None] | None = None


class PluginProcesses:
    """The plugin processes one panel worker serves (and those it owns)."""

    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        *,
        on_change: Callable[[], None] = lambda: None,
        on_gave_up: Callable[[str, str], None] = lambda plugin_id, why: None,
        users_of: UsersOf | None = None,
    ) -> None:
        """``users_of``: the host's users for ``sdk.Users`` (see :class:`PluginDatabase`)."""
        self.settings = settings
        self.spawner = Spawner(settings, engine, users_of=users_of)
        self.served: dict[str, ServedPlugin] = {}
        # Run folders whose process this worker is stopping now: a start of the same
        # installation (disable, then enable at once) waits for that stop, or it would find
        # the folder's lock still held and try to join a process about to be gone.
        self._halting: dict[Path, asyncio.Event] = {}
        self.on_change = on_change  # a process started serving: its routes and OpenAPI
        self.on_gave_up = on_gave_up  # its backend does not load: not retried (see _start)

    # -- one process ---------------------------------------------------------------------

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
        """The plugin's route-list entry; its process is reached in the background (event loop).

        ``child`` is a process the install already started (and ran the hook in); without
        one, this worker starts one, or uses the one another worker runs.
        """
        served = ServedPlugin(
            plugin_id,
            key,
            version,
            declared,
            permissions,
            tables,
            self.spawner.run_dir(plugin_id, key),
        )
        served.route = ForwardRoute(
            plugin_id,
            declared,
            client=lambda: self._client_of(served),
            timeout=self.settings.plugin_timeout,
        )
        if child is not None:
            served.routes, served.openapi = child.routes, child.openapi
        self.served[plugin_id] = served
        served.starting = asyncio.get_running_loop().create_task(self._start(served, child))
        return served.route

    async def deliver(
        self,
        plugin_id: str,
        handler: str,
        event: dict[str, Any],
        timeout: float,
        *,
        kind: str = "event",
    ) -> None:
        """Run a handler in the plugin's process with an event (``kind`` "event") or a job's
        run ("job"); PluginProcessError if it failed, HandlerTimeout at the bound."""
        served = self.served.get(plugin_id)
        if served is None:
            raise PluginProcessError(f"{plugin_id} is not served by this worker")
        client = await self._client_of(served)
        if isinstance(client, str):
            raise PluginProcessError(f"{plugin_id}: {client}")
        order = {"handler": handler, kind: event}
        try:
            status, body = await client.post_json(protocol.EVENT_PATH, order, timeout)
        except TimeoutError:
            raise HandlerTimeout(f"{handler} ran over its {timeout:g} s") from None
        except PluginUnreachable as exc:
            raise PluginProcessError(f"{plugin_id}: {exc}") from exc
        if status != 200:
            try:
                error = str(json.loads(body)["error"])
            except (ValueError, KeyError, TypeError):
                error = body.decode("utf-8", "replace")
            raise PluginProcessError(error[:2000])

    async def apply_filter(self, plugin_id: str, handler: str, value: Any, timeout: float) -> Any:
        """Run a filter in the plugin's process: its new value; sdk.Veto if it refused,
        PluginProcessError if it failed; TimeoutError at ``timeout`` (the bound is hard)."""
        served = self.served.get(plugin_id)
        if served is None:
            raise PluginProcessError(f"{plugin_id} is not served by this worker")
        async with asyncio.timeout(timeout):  # also while its process is still starting
            client = await self._client_of(served)
            if isinstance(client, str):
                raise PluginProcessError(f"{plugin_id}: {client}")
            order = {"handler": handler, "value": value}
            try:
                status, body = await client.post_json(protocol.FILTER_PATH, order, timeout)
            except PluginUnreachable as exc:
                raise PluginProcessError(f"{plugin_id}: {exc}") from exc
        try:
            answer = json.loads(body)
        except ValueError:
            answer = {"error": body.decode("utf-8", "replace")}
        if status == 200 and isinstance(answer, dict) and "veto" in answer:
            raise sdk.Veto(str(answer["veto"]))
        if status != 200 or not isinstance(answer, dict) or "value" not in answer:
            error = answer.get("error") if isinstance(answer, dict) else None
            raise PluginProcessError(str(error or body[:2000].decode("utf-8", "replace"))[:2000])
        return answer["value"]

    async def settled(self, timeout: float = START_WAIT) -> None:
        """Wait (bounded) until every process being started serves or has failed."""
        starting = [s.starting for s in self.served.values() if s.starting is not None]
        if starting:
            await asyncio.wait(starting, timeout=timeout)

    async def _client_of(self, served: ServedPlugin) -> UnixHTTP | str:
        """The client reaching the process, once it is up; else why it is not."""
        if served.client is None and served.error == "starting":
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(served.ready.wait(), START_WAIT)
        return served.client or (served.error or "stopped")

    async def _start(self, served: ServedPlugin, child: ChildProcess | None) -> None:
        """Serve from ``child``, or start the process, or join the one another worker runs."""
        halting = self._halting.get(served.run_dir)
        if child is None and halting is not None:  # bounded: stop() itself ends in seconds
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(halting.wait(), START_WAIT)
        if child is None:
            try:
                child = await run_in_threadpool(
                    self.spawner.spawn, served.plugin_id, served.key, served.permissions
                )
            except OwnedElsewhere:
                await self._join(served)
                return
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
                await run_in_threadpool(self.spawner.grant, served.plugin_id, served.tables)
            except Exception as exc:
                await run_in_threadpool(child.kill)
                self._failed(served, str(exc))
                return
        try:
            await run_in_threadpool(child.serve)
        except Exception as exc:
            await run_in_threadpool(child.kill)
            self._failed(served, str(exc))
            return
        if self.served.get(served.plugin_id) is not served:  # unmounted meanwhile
            await run_in_threadpool(child.stop)
            return
        served.child = child
        served.routes, served.openapi = child.routes, child.openapi
        self._connected(served)
        log.info("%s %s serving in process %d", served.plugin_id, served.version, child.pid)

    async def _join(self, served: ServedPlugin) -> None:
        """Use the process another worker owns, once its socket answers."""
        client = _client(served.run_dir)
        deadline = time.monotonic() + START_WAIT
        while True:
            try:
                status, body = await client.get(protocol.DESCRIBE_PATH, timeout=PING_TIMEOUT)
                if status != 200:
                    raise PluginUnreachable(f"it answered {status}")
                described = json.loads(body)
                break
            except (PluginUnreachable, TimeoutError, ValueError) as exc:
                if time.monotonic() >= deadline or self.served.get(served.plugin_id) is not served:
                    await client.aclose()
                    self._failed(served, f"the process another worker runs does not answer: {exc}")
                    return
                await asyncio.sleep(0.05)
        if self.served.get(served.plugin_id) is not served:
            await client.aclose()
            return
        # What a running process says of itself is its own word, not checked at install:
        # only paths its metadata declares count (for collisions and the OpenAPI document).
        served.routes = [
            (str(path), [str(m) for m in methods])
            for path, methods in described.get("routes", [])
            if _declared(served, str(path))
        ]
        openapi = described.get("openapi") or {}
        paths = openapi.get("paths") or {}
        served.openapi = {
            "paths": {p: v for p, v in paths.items() if _declared(served, p)},
            "schemas": openapi.get("schemas") or {},
        }
        self._connected(served, client)

    def _connected(self, served: ServedPlugin, client: UnixHTTP | None = None) -> None:
        served.client = client or _client(served.run_dir)
        served.error = None
        served.missed_pings = 0
        served.serving_since = time.monotonic()
        served.ready.set()
        self.on_change()

    def _failed(self, served: ServedPlugin, why: str) -> None:
        served.restarts += 1
        served.retry_at = time.monotonic() + served.backoff
        served.error = f"{why}; restarting in {served.backoff:g} s (restart {served.restarts})"
        served.backoff = min(served.backoff * 2, BACKOFF_MAX)
        served.ready.set()  # waiting requests get the 503 now
        served.ready = asyncio.Event()
        log.error("%s: %s", served.plugin_id, served.error)

    def _stopped(self, served: ServedPlugin, why: str) -> None:
        """Stopped by the watchdog ("stopped: ..."): not started again by this worker."""
        served.error = why
        served.ready.set()
        served.ready = asyncio.Event()
        log.error("%s: %s", served.plugin_id, why)

    def detach(self, plugin_id: str) -> ServedPlugin | None:
        """Stop serving a plugin now (event loop); :meth:`stop` it then, in the background."""
        served = self.served.pop(plugin_id, None)
        if served is not None and served.starting is not None and not served.starting.done():
            served.starting.cancel()
        if served is not None and served.child is not None:  # from now on, not at stop()
            self._halting[served.run_dir] = asyncio.Event()
        return served

    async def stop(self, served: ServedPlugin) -> None:
        """The owner stops the process (its memory goes back to the system)."""
        await self._halt(served)

    async def _halt(self, served: ServedPlugin) -> None:
        client, child = served.client, served.child
        served.client = served.child = None
        if client is not None:
            await client.aclose()
        if child is not None:
            done = self._halting.setdefault(served.run_dir, asyncio.Event())
            try:
                await run_in_threadpool(child.stop)
            finally:
                done.set()
                if self._halting.get(served.run_dir) is done:
                    del self._halting[served.run_dir]

    async def close(self) -> None:
        for plugin_id in list(self.served):
            served = self.detach(plugin_id)
            if served is not None:
                await self.stop(served)
        self.shut_down()

    def shut_down(self) -> None:
        """Close the sockets this worker serves to its plugin processes (none may be left)."""
        self.spawner.close()

    # -- watching ------------------------------------------------------------------------

    async def watch(self) -> None:
        """Notice dead and hung processes and start them again, with backoff."""
        last_ping = last_measure = 0.0
        while True:
            await asyncio.sleep(0.5)
            now = time.monotonic()
            ping = now - last_ping >= PING_EVERY
            if ping:
                last_ping = now
            measure = now - last_measure >= MEASURE_EVERY
            if measure:
                last_measure = now
            for served in list(self.served.values()):
                try:
                    await self._look_after(served, now, ping, measure)
                except Exception:
                    log.exception("%s: supervising its process failed", served.plugin_id)

    async def _look_after(
        self, served: ServedPlugin, now: float, ping: bool, measure: bool = False
    ) -> None:
        if served.starting is not None and not served.starting.done():
            return
        if served.error is not None and served.error.startswith(("failed:", "stopped:")):
            return  # its backend does not load, or it passed a limit: unserved
        child = served.child
        if child is not None and not child.alive():
            why = child.why_stopped()
            await self._halt(served)
            self._failed(served, why)
            return
        if measure and child is not None and served.client is not None:
            usage = await run_in_threadpool(resources.measure, child.pid, child.sandbox.data_dir)
            past = resources.over(usage, self.spawner.limits)
            if past is not None:
                await self._halt(served)
                self._stopped(served, past)
                return
        if served.client is None:
            if now >= served.retry_at:
                served.error = "starting"
                served.starting = asyncio.get_running_loop().create_task(self._start(served, None))
            return
        if now - served.serving_since >= HEALTHY_AFTER:
            served.backoff = 1.0
        if not ping:
            return
        try:
            status, _body = await served.client.get(protocol.PING_PATH, timeout=PING_TIMEOUT)
            if status != 200:
                raise PluginUnreachable(f"it answered {status}")
            served.missed_pings = 0
        except (PluginUnreachable, TimeoutError):
            served.missed_pings += 1
            if child is None:  # another worker's process: it restarts it, or we take over
                await self._halt(served)
                self._failed(served, "the process another worker runs stopped answering")
            elif served.missed_pings >= PINGS_MISSED:
                await self._halt(served)
                self._failed(served, f"hung: no answer to {PINGS_MISSED} pings; killed")

    # -- reporting -----------------------------------------------------------------------

    def status(self, plugin_id: str) -> str | None:
        """None when the plugin's process serves; else why not (starting, crashed …)."""
        served = self.served.get(plugin_id)
        return None if served is None else served.error

    def limits(self) -> str:
        """What holds each plugin to its limits on this machine (resources.mechanism)."""
        return resources.mechanism(self.spawner.limits, own_user=os.geteuid() == 0)

    def openapi(self) -> list[dict[str, Any]]:
        """The OpenAPI paths and schemas of each plugin process (as far as known yet)."""
        return [s.openapi for s in self.served.values() if s.openapi]

    def served_routes(self) -> dict[str, list[tuple[str, list[str]]]]:
        """The routes each plugin process serves (as far as known yet)."""
        return {p: s.routes for p, s in self.served.items() if s.routes}


def _declared(served: ServedPlugin, path: str) -> bool:
    from plugdock.plugin_code.routes import pattern_matches

    return any(pattern_matches(pattern, path) for pattern in served.declared)


def _client(run_dir: Path) -> UnixHTTP:
    return UnixHTTP(str(run_dir / protocol.SOCKET_NAME))
