"""The plugins of a running panel: mounted at start, mounted/unmounted live, in step across workers.

The database is the truth: ``addon_installations`` says which plugin (and which
installation of it, by operation id) should be served, and ``plugin_state.generation``
changes with every install or uninstall. Each worker compares that number with the
one it last applied and reconciles when it differs:

- right after an install/uninstall it handled itself;
- on a request, when the hint file ``$PLUGDOCK_HOME/plugins.generation`` changed
  (one ``stat`` per request; the installer rewrites the file after each commit), so
  a worker on the same machine never serves a stale plugin set after an install
  response;
- on a PostgreSQL notification (sent in the installer's transaction), and on a timer,
  for changes made from another machine sharing the database.

Routes change only on the event loop's thread. Python cannot free an imported plugin
completely, so each installation is imported under a fresh module name, its tables'
MetaData are cleared on unmount, and memory is measured over many cycles
(bench/runtime.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import Engine
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from plugdock.config import Settings
from plugdock.core.db import connect_read, current_generation
from plugdock.instance.journal import read_journal
from plugdock.instance.locking import wait_for_operation
from plugdock.instance.notify import ChangeListener
from plugdock.instance.registry import Installation, list_installations
from plugdock.operations.materialize import code_is_current, needs_sync, sync_code
from plugdock.operations.workspace import Workspace
from plugdock.package.layout import METADATA_FILE
from plugdock.package.metadata import parse_metadata
from plugdock.plugin_code.hooks import (
    BeforeCommit,
    OperationContext,
    check_and_run_hooks,
    prepare_backend,
    run_hook,
)
from plugdock.plugin_code.loader import LoadedBackend, load_backend, module_token, unload
from plugdock.plugin_code.routes import ServedRoute, check_declared, router_routes, served_routes
from plugdock.runtime.dispatch import PluginDispatch
from plugdock.runtime.recycle import drain_and_exit, take_turn
from plugdock.runtime.replicas import Replica

if TYPE_CHECKING:  # process isolation is imported only when it is on
    from plugdock.isolation.control import ChildProcess
    from plugdock.isolation.supervisor import PluginProcesses

log = logging.getLogger("plugdock.runtime")
T = TypeVar("T")

# Set by `plugdock serve --workers N` (N > 1): a worker that exits is replaced.
SUPERVISED_ENV = "PLUGDOCK_SUPERVISED_WORKER"


@dataclass
class MountedPlugin:
    installation: Installation
    backend: LoadedBackend | None  # None: served by a plugin process (process isolation)
    entry: Any  # the app.router.routes entry include_router added, or the ForwardRoute
    routes: list[ServedRoute]


@dataclass(frozen=True)
class PluginStatus:
    """What this process serves of one plugin (``PluginRuntime.status``)."""

    state: Literal["mounted", "failed", "fetching"]
    routes: tuple[str, ...] = ()  # mounted: the paths it serves
    error: str | None = None  # failed, fetching: why it is not served


class PluginRuntime:
    """Keeps one app's mounted plugins equal to what the database says is installed."""

    def __init__(
        self,
        app: FastAPI,
        settings: Settings,
        engine: Engine,
        *,
        undo_install: Callable[[str], object] | None = None,
    ) -> None:
        self.app = app
        # Process mode: how to uninstall a plugin whose on_install failed in its process after
        # the commit. The host hands in its installer's; the runtime never imports one.
        self.undo_install = undo_install
        self.settings = settings
        self.engine = engine
        self.mounted: dict[str, MountedPlugin] = {}
        self.failed: dict[str, tuple[str, str]] = {}  # plugin id → (operation id, error)
        self.generation: int | None = None
        self.lock = asyncio.Lock()  # one change of the plugin set at a time, per process
        self._hint_seen: tuple[int, int] | None = None
        self.wakeup = asyncio.Event()  # set by the PostgreSQL listener: look now
        self.changes = 0  # mounts + unmounts in this process, for recycling
        self._recycling = False
        self._drain: asyncio.Task[None] | None = None  # kept so the task is not collected
        # Replicas: code fetched from the database's package store (see materialize.py).
        self.workspace = Workspace(settings, engine=engine)
        self.pending: dict[str, str] = {}  # plugin id → why its code is not here (yet)
        self.fetch_failures: dict[str, str] = {}  # plugin id → why fetching it failed
        self._retry_at = 0.0  # monotonic time of the next fetch attempt while pending
        self._fetching: asyncio.Task[None] | None = None  # the background fetch, one at a time
        self.replica: Replica | None = None  # this process's row in plugdock_replicas
        self._beaten: tuple[Any, ...] | None = None
        self._beat_at = 0.0
        self._reporting = asyncio.Lock()
        self.settling: asyncio.Future[None] | None = None  # see _settle
        self.dispatch = PluginDispatch()  # joins the route list after the core's, at first mount
        self.processes: PluginProcesses | None = None  # process isolation: the plugin processes
        if settings.isolation == "process":
            from plugdock.isolation.supervisor import PluginProcesses

            self.processes = PluginProcesses(
                settings, engine, on_change=self._routes_changed, on_gave_up=self._gave_up
            )
            self._own_openapi = app.openapi
            app.openapi = self._openapi  # type: ignore[method-assign]  # plugins' paths too
        self._stopping: set[asyncio.Task[None]] = set()  # plugin processes being stopped

    # ------------------------------------------------------------ mounting

    def mount(self, installation: Installation, backend: LoadedBackend) -> None:
        """Serve a loaded backend's routes now (event-loop thread only).

        A plugin that cannot be served is recorded in ``failed`` (with the reason), never raised:
        the panel and the other plugins go on.
        """
        try:
            routes = router_routes(backend.router) if backend.router is not None else []
            declared = self._declared(installation.plugin_id)
            # Every worker checks again what it is about to serve, not just the installer.
            check_declared(installation.plugin_id, routes, declared)
        except Exception as exc:
            log.error("%s %s is not served: %s", installation.plugin_id, installation.version, exc)
            unload(backend)
            self.failed[installation.plugin_id] = (installation.operation_id, str(exc))
            return
        entry = None
        if backend.router is not None:
            router = self.app.router
            handlers = (list(router.on_startup), list(router.on_shutdown))
            lifespan = router.lifespan_context
            if self.dispatch not in router.routes:
                router.routes.append(self.dispatch)
            self.app.include_router(backend.router)
            entry = router.routes[-1]
            self.dispatch.add(entry, declared)
            # include_router copies the plugin router's event handlers into the app and chains
            # its lifespan onto the app's; both would pin the plugin's code after unmount (a
            # chain one link longer per install), and plugins use on_startup hooks instead.
            router.on_startup[:], router.on_shutdown[:] = handlers
            router.lifespan_context = lifespan
        self.mounted[installation.plugin_id] = MountedPlugin(installation, backend, entry, routes)
        self.changes += 1
        self.failed.pop(installation.plugin_id, None)
        self._routes_changed()
        hook = backend.hook("on_startup")
        if hook is not None:
            try:
                hook(self.app)
            except Exception as exc:  # a plugin that cannot start is reported, not served
                log.exception("%s: on_startup failed", installation.plugin_id)
                self.unmount(installation.plugin_id)
                self.failed[installation.plugin_id] = (
                    installation.operation_id,
                    f"on_startup: {exc!r}",
                )

    def mount_process(self, installation: Installation, child: ChildProcess | None = None) -> None:
        """Serve a plugin from a plugin process (process isolation; event-loop thread only).

        Its route entry answers at once: requests wait while the process starts (``child``
        is one the install already started), and get 503 while it is down.
        """
        assert self.processes is not None
        plugin_id = installation.plugin_id
        try:
            declared = self._declared(plugin_id)
        except Exception as exc:
            if child is not None:
                child.kill()
            self.failed[plugin_id] = (installation.operation_id, str(exc))
            return
        entry = self.processes.serve(
            plugin_id,
            installation.operation_id,
            installation.version,
            declared,
            list(installation.permissions),
            list(installation.tables),
            child,
        )
        if self.dispatch not in self.app.router.routes:
            self.app.router.routes.append(self.dispatch)
        self.dispatch.add(entry, declared)
        routes = [ServedRoute(path, frozenset(m)) for path, m in (child.routes if child else [])]
        self.mounted[plugin_id] = MountedPlugin(installation, None, entry, routes)
        self.changes += 1
        self.failed.pop(plugin_id, None)
        self._routes_changed()

    def _gave_up(self, plugin_id: str, why: str) -> None:
        """A plugin process could not load its backend: unserved and failed, as in the panel."""
        mounted = self.mounted.get(plugin_id)
        if mounted is not None:
            self.unmount(plugin_id)
            self.failed[plugin_id] = (mounted.installation.operation_id, why)

    def _openapi(self) -> dict[str, Any]:
        """The app's OpenAPI document with each plugin process's paths and schemas."""
        if self.app.openapi_schema is None and self.processes is not None:
            document = self._own_openapi()  # generated afresh; ours to extend
            for part in self.processes.openapi():  # never replacing the core's, or another's
                paths = document.setdefault("paths", {})
                schemas = document.setdefault("components", {}).setdefault("schemas", {})
                for path, item in part.get("paths", {}).items():
                    paths.setdefault(path, item)
                for name, schema in part.get("schemas", {}).items():
                    schemas.setdefault(name, schema)
            self.app.openapi_schema = document
        return self.app.openapi_schema or self._own_openapi()

    def _declared(self, plugin_id: str) -> list[str]:
        path = self.settings.manifest_dir / plugin_id / METADATA_FILE
        return parse_metadata(path.read_bytes(), source=str(path)).backend.routes

    def unmount(self, plugin_id: str) -> None:
        """Stop serving a plugin's routes now and forget its modules (event-loop thread only)."""
        mounted = self.mounted.pop(plugin_id, None)
        if mounted is None:
            return
        self.changes += 1
        if mounted.backend is None:  # a plugin process: it stops, its memory goes back
            self.dispatch.remove(mounted.entry)
            self._routes_changed()
            assert self.processes is not None
            served = self.processes.detach(plugin_id)  # now: a new process may take its place
            if served is not None:
                task = asyncio.get_running_loop().create_task(self.processes.stop(served))
                self._stopping.add(task)
                task.add_done_callback(self._stopping.discard)
            return
        hook = mounted.backend.hook("on_shutdown")
        if hook is not None:
            try:
                hook(self.app)
            except Exception:
                log.exception("%s: on_shutdown failed", plugin_id)
        if mounted.entry is not None:
            self.dispatch.remove(mounted.entry)
            self.app.router.routes[:] = [
                r for r in self.app.router.routes if r is not mounted.entry
            ]
        self._routes_changed()
        unload(mounted.backend)

    def _routes_changed(self) -> None:
        self.app.openapi_schema = None  # regenerated on the next /openapi.json
        mark = getattr(self.app.router, "_mark_routes_changed", None)
        if mark is not None:
            mark()

    def served_routes(self, besides: str | None = None) -> list[ServedRoute]:
        """What the app serves: the core, plugins in the panel, and plugin processes
        (less plugin ``besides``)."""
        own = self.mounted.get(besides) if besides is not None else None
        entries = [r for r in self.app.router.routes if own is None or r is not own.entry]
        routes = served_routes(entries)
        running = self.processes.served_routes() if self.processes is not None else {}
        for plugin_id, mounted in self.mounted.items():
            if mounted.backend is None and plugin_id != besides:
                reported = running.get(plugin_id)
                if reported is None:
                    routes.extend(mounted.routes)
                else:
                    routes.extend(ServedRoute(p, frozenset(m)) for p, m in reported)
        return routes

    # ------------------------------------------------------------ reconciling

    def load(self, installation: Installation) -> LoadedBackend:
        backend_dir = self.settings.backend_dir / installation.plugin_id
        return load_backend(
            installation.plugin_id, backend_dir, module_token(installation.operation_id)
        )

    def reconcile(self) -> None:
        """Mount and unmount until the app serves exactly the installed plugins."""
        with connect_read(self.engine) as conn:
            generation = current_generation(conn)
            wanted = {i.plugin_id: i for i in list_installations(conn) if i.enabled}
        for plugin_id, mounted in list(self.mounted.items()):
            row = wanted.get(plugin_id)
            if row is None or row.operation_id != mounted.installation.operation_id:
                self.unmount(plugin_id)
        for plugin_id in [p for p in self.failed if p not in wanted]:
            del self.failed[plugin_id]
        self.pending = {}
        for plugin_id, row in wanted.items():
            if plugin_id in self.mounted:
                continue
            if not code_is_current(self.workspace, row):  # another replica installed it
                self.pending[plugin_id] = self.fetch_failures.get(
                    plugin_id, "its code is not on this machine yet"
                )
                continue
            failed = self.failed.get(plugin_id)
            if failed is not None and failed[0] == row.operation_id:
                continue  # the same broken installation: do not retry on every request
            if not (self.settings.backend_dir / plugin_id / "__init__.py").is_file():
                continue  # a plugin without a backend: nothing to serve
            if self.processes is not None:
                self.mount_process(row)
                continue
            try:
                self.mount(row, self.load(row))
            except Exception as exc:
                log.error("%s %s could not be loaded: %s", plugin_id, row.version, exc)
                self.failed[plugin_id] = (row.operation_id, str(exc))
        self.generation = generation
        self._recycle_if_due()

    def _recycle_if_due(self) -> None:
        """Restart this worker after many plugin changes, since Python never frees them all.

        Only under uvicorn's multi-worker supervisor (``serve --workers N``, N > 1), which
        starts a fresh worker while the others keep serving; this one stops accepting and
        drains its connections first (see :mod:`plugdock.runtime.recycle`).
        """
        if self.changes < self.settings.recycle_after or not os.environ.get(SUPERVISED_ENV):
            return
        if not self._recycling and take_turn(self.settings.recycle_lock_path):
            self._recycling = True  # from now on every answer says Connection: close
            log.warning("recycling worker %d after %d plugin changes", os.getpid(), self.changes)
            try:
                self._drain = asyncio.get_running_loop().create_task(drain_and_exit())
            except RuntimeError:  # no event loop (not serving requests): nothing to drain
                os.kill(os.getpid(), signal.SIGTERM)

    def is_stale(self) -> bool:
        with connect_read(self.engine) as conn:  # never the write lock, on every poll
            return current_generation(conn) != self.generation

    async def refresh(self) -> None:
        """Catch up with the database (skipped while an operation runs here).

        The code already on this machine is served at once, before any await, so no request
        is routed against the old plugin set meanwhile; fetching what another replica
        installed (and removing what it uninstalled) then runs in the background, since it
        may wait for another process's operation to finish.
        """
        if self.settling is not None:  # another request is waiting out an operation here
            await asyncio.shield(self.settling)
            return
        if self.lock.locked():
            self._hint_seen = None  # busy with our own operation: look again next request
            return
        if self.is_stale() or (self.pending and time.monotonic() >= self._retry_at):
            self.reconcile()
            if self._mid_operation():
                self.settling = asyncio.ensure_future(self._settle())
                await asyncio.shield(self.settling)
            if self.processes is not None:  # a plugin process just installed elsewhere
                await self.processes.settled()  # is joined before this request is routed
            if self._fetching is None or self._fetching.done():
                self._fetching = asyncio.get_running_loop().create_task(self._fetch_and_serve())

    def _mid_operation(self) -> bool:
        """Is a plugin's code here out of step with its row because an operation on this
        machine is changing it (an upgrade moves the new code in before it commits)?"""
        if not self.pending:
            return False
        journal = read_journal(self.settings.journal_path)
        return journal is not None and journal.plugin_id in self.pending

    async def _settle(self) -> None:
        """Wait for this machine's operation to end, then serve what it committed: a worker
        that catches up mid-operation would otherwise answer 404 for an installed plugin
        (bench/load.py saw it when a lagging worker met an upgrade's window)."""
        try:
            await run_in_threadpool(
                wait_for_operation, self.settings.lock_path, self.settings.lock_timeout
            )
            self.reconcile()
        finally:
            self.settling = None

    async def _fetch_and_serve(self) -> None:
        try:
            await run_in_threadpool(self.fetch_code)
        except Exception:  # the database may be restarting; the next tick tries again
            log.exception("fetching plugin code failed")
            return
        if self.lock.locked():
            self._hint_seen = None  # our own operation reconciles when it ends
        else:
            self.reconcile()
            # Say so now: the installing replica's answer waits for this beat, and the
            # watch loop's next one could be a whole sync interval away.
            await self.report()

    def fetch_code(self) -> None:
        """Fetch the code of installations this machine lacks from the database (blocking)."""
        rows = self.workspace.installed()
        if not needs_sync(self.workspace, rows):
            self.fetch_failures = {}
            return
        self.fetch_failures = sync_code(self.workspace)
        # A refused package is not fetched again on every tick; a new generation retries.
        self._retry_at = time.monotonic() + (10.0 if self.fetch_failures else 0.0)

    async def catch_up(self) -> None:
        """At start: fetch missing code, mount what is installed, register as a replica."""
        await run_in_threadpool(self.fetch_code)
        self.reconcile()
        if self.processes is not None:  # up means serving: plugin processes started first
            await self.processes.settled()
        await self.report(force=True)

    def served_state(self) -> tuple[int, bool, dict[str, str]]:
        """The generation served, whether all of it is served here, and what is not."""
        failures = {p: f"failed: {error}" for p, (_op, error) in self.failed.items()}
        failures |= {
            p: f"failed: {why}" if p in self.fetch_failures else why
            for p, why in self.pending.items()
        }
        return self.generation or 0, not self.pending, failures

    async def report(self, *, force: bool = False) -> None:
        """Refresh this process's replica row: at once when what it serves changed, else on
        the heartbeat interval."""
        if self.replica is None:
            return
        # One beat at a time, its state read inside: a heartbeat still writing the old
        # generation from a pool thread could otherwise land after a change's forced beat
        # and show this replica as behind (tests/test_lifecycle_api.py saw it).
        async with self._reporting:
            state = self.served_state()
            now = time.monotonic()
            if (
                not force
                and state == self._beaten
                and now - self._beat_at < self.settings.replica_heartbeat
            ):
                return
            try:
                await run_in_threadpool(self.replica.beat, *state)
            except Exception:  # the database may be restarting; the next tick tries again
                log.exception("replica heartbeat failed")
                return
            self._beaten, self._beat_at = state, now

    def hint_changed(self) -> bool:
        """True (once) when the installer rewrote the hint file since we last looked."""
        try:
            stat = os.stat(self.settings.generation_hint_path)
        except FileNotFoundError:
            return False
        seen = (stat.st_ino, stat.st_mtime_ns)
        if seen == self._hint_seen:
            return False
        self._hint_seen = seen
        return True

    async def watch(self, interval: float) -> None:
        """Follow changes made elsewhere (other machines, the CLI): on a PostgreSQL
        notification at once, and on a timer in any case."""
        listener = None
        if self.engine.dialect.name == "postgresql":
            loop = asyncio.get_running_loop()
            listener = ChangeListener(
                self.engine, lambda: loop.call_soon_threadsafe(self.wakeup.set)
            )
            listener.start()
        supervising = None
        if self.processes is not None:
            supervising = asyncio.get_running_loop().create_task(self.processes.watch())
        try:
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wakeup.wait(), interval)
                self.wakeup.clear()
                try:
                    await self.refresh()
                except Exception:  # the database may be restarting; try again next tick
                    log.exception("plugin sync failed")
                self._recycle_if_due()  # waiting for our turn while another worker recycles
                await self.report()
        finally:
            if supervising is not None:
                supervising.cancel()
            if listener is not None:
                listener.stop()

    async def close(self) -> None:
        """The panel stops: unmount everything; plugin processes end."""
        for plugin_id in list(self.mounted):
            self.unmount(plugin_id)
        if self.processes is not None:
            await asyncio.gather(*self._stopping, return_exceptions=True)
            await self.processes.close()

    async def apply(
        self, operation: Callable[[BeforeCommit], T], *, leaving: str | None = None
    ) -> T:
        """Run an installer operation in a thread, then serve what it committed, at once.

        ``operation`` is called with the ``before_commit`` to hand the installer: arriving
        backends (install, upgrade) are imported and checked inside the transaction against
        what this app serves (less the plugin's own routes, which an upgrade replaces);
        a leaving one runs its ``on_uninstall`` from the mounted copy. After the commit each
        arriving backend replaces the mounted one in one step on the event loop, so no
        request sees neither version; then the app reconciles with the database.

        In process mode the plugin's code runs only in its sandbox
        (:mod:`plugdock.isolation.lifecycle`); ``leaving`` names the plugin an uninstall
        removes, whose ``on_uninstall`` then runs before the operation.
        """
        if self.processes is not None:
            return await self._apply_isolated(operation, leaving)
        prepared: dict[str, LoadedBackend] = {}

        def before_commit(ctx: OperationContext) -> None:
            mounted = self.mounted.get(ctx.plugin_id)
            if ctx.operation == "uninstall":
                if mounted is not None and mounted.backend is not None:
                    run_hook(mounted.backend, ctx)
                else:  # not being served (disabled, or it failed to load): import it for its hook
                    check_and_run_hooks(ctx)
                return
            backend = prepare_backend(ctx, self._served_besides(ctx.plugin_id))
            if backend is not None:
                prepared[ctx.plugin_id] = backend

        async with self.lock:
            try:
                result = await run_in_threadpool(operation, before_commit)
            except BaseException:
                for backend in prepared.values():
                    unload(backend)
                raise
            rows = self._installed_rows()
            for plugin_id, backend in prepared.items():
                row = rows.get(plugin_id)
                if (
                    row is None
                    or not row.enabled
                    or not backend.module_name.endswith(module_token(row.operation_id))
                ):
                    unload(backend)  # rolled back (a dependency plan), or not to be served
                    continue
                self.unmount(plugin_id)
                self.mount(row, backend)
            self.reconcile()
        return result

    def _served_besides(self, plugin_id: str) -> list[ServedRoute]:
        """What the app serves, less the plugin's own routes (which an upgrade replaces)."""
        return self.served_routes(besides=plugin_id)

    def _installed_rows(self) -> dict[str, Installation]:
        with connect_read(self.engine) as conn:
            return {i.plugin_id: i for i in list_installations(conn)}

    async def _apply_isolated(
        self, operation: Callable[[BeforeCommit], T], leaving: str | None
    ) -> T:
        from plugdock.isolation.lifecycle import ArrivalFailed, SandboxedHooks, finish_arrivals

        assert self.processes is not None
        hooks = SandboxedHooks(self.processes, self._served_besides)
        async with self.lock:
            row = self._installed_rows().get(leaving) if leaving is not None else None
            if row is not None:
                await run_in_threadpool(
                    hooks.leave,
                    row.plugin_id,
                    row.version,
                    list(row.tables),
                    row.operation_id,
                    list(row.permissions),
                )
            try:
                result = await run_in_threadpool(operation, hooks.before_commit)
                arrived = await run_in_threadpool(
                    finish_arrivals, hooks, self.engine, self._undo_install
                )
            except ArrivalFailed as exc:
                if exc.operation == "upgrade":
                    self._hook_failed(exc.plugin_id, exc)
                raise
            finally:
                hooks.discard()
            for plugin_id, (installed, child) in arrived.items():
                self.unmount(plugin_id)
                self.mount_process(installed, child)
            self.reconcile()
            await self.processes.settled()  # the answer comes once they serve
        return result

    def _undo_install(self, plugin_id: str) -> None:
        if self.undo_install is None:
            raise RuntimeError("this runtime was given no undo_install")
        self.undo_install(plugin_id)
        log.error("%s: on_install failed in its process; the install was undone", plugin_id)

    def _hook_failed(self, plugin_id: str, exc: Exception) -> None:
        """A failed on_upgrade: the new version is installed but not served (it says why)."""
        row = self._installed_rows().get(plugin_id)
        if row is not None:
            self.unmount(plugin_id)
            self.failed[plugin_id] = (row.operation_id, str(exc))
        self.reconcile()

    def status(self) -> dict[str, PluginStatus]:
        """Per plugin id with a backend: mounted (with its served paths), failed or fetching
        (with why). A plugin without a backend has no entry."""
        report = {
            plugin_id: PluginStatus("mounted", routes=tuple(sorted({r.path for r in m.routes})))
            for plugin_id, m in self.mounted.items()
        }
        if self.processes is not None:
            reported_routes = self.processes.served_routes()
            for plugin_id, mounted in self.mounted.items():
                if mounted.backend is not None:
                    continue
                down = self.processes.status(plugin_id)
                reported = reported_routes.get(plugin_id)
                paths = {path for path, _methods in reported} if reported else None
                routes = tuple(sorted(paths or mounted.entry.declared))
                if down is None or down == "starting":  # its route answers (or waits)
                    report[plugin_id] = PluginStatus("mounted", routes=routes)
                else:  # crashed, hung, out of memory: restarting
                    report[plugin_id] = PluginStatus("failed", routes=routes, error=down)
        for plugin_id, (_operation, error) in self.failed.items():
            report[plugin_id] = PluginStatus("failed", error=error)
        for plugin_id, why in self.pending.items():
            failed = plugin_id in self.fetch_failures
            report[plugin_id] = PluginStatus("failed" if failed else "fetching", error=why)
        return report


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
            if message["type"] == "http.response.start" and runtime._recycling:
                headers = [h for h in message.get("headers", []) if h[0].lower() != b"connection"]
                message = {**message, "headers": [*headers, (b"connection", b"close")]}
            await send(message)

        await self.app(scope, receive, send_closing_when_recycling)
