"""Plugin code in the panel's own process (``PLUGDOCK_ISOLATION=inprocess``).

Each installation is imported under a fresh module name and its router included into the
app; Python cannot free an imported plugin completely, so unloading clears what it can
(its modules, its tables' MetaData) and memory is measured over many cycles
(bench/runtime.py).
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import logging
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from sqlalchemy import Engine

from plugdock import sdk
from plugdock.config import Settings
from plugdock.errors import FilterOverran
from plugdock.instance.registry import Installation, installations_by_id
from plugdock.plugin_code import handlers
from plugdock.plugin_code.hooks import (
    OperationContext,
    check_and_run_hooks,
    prepare_backend,
    run_hook,
)
from plugdock.plugin_code.loader import LoadedBackend, load_backend, module_token, unload
from plugdock.plugin_code.routes import ServedRoute, check_declared, router_routes
from plugdock.runtime.filter_threads import FilterThreads
from plugdock.runtime.runner import MountedPlugin, ServedBesides

log = logging.getLogger("plugdock.runtime")

#: Threads for sync filters, apart from the app's own pool (a stuck one holds a thread).
FILTER_THREADS = 16


class InProcessRunner:
    """Imports plugin backends into this process and includes their routers into ``app``."""

    def __init__(
        self,
        app: FastAPI,
        settings: Settings,
        engine: Engine,
        mounted: dict[str, MountedPlugin],
        declared_of: Callable[[str], list[str]],
    ) -> None:
        self.app = app
        self.settings = settings
        self.engine = engine
        self.mounted = mounted  # the runtime's table: an uninstall's hook runs from it
        self.declared_of = declared_of  # plugin id → its metadata's backend.routes
        self._filters: dict[tuple[str, str], Any] = {}  # (module, handler) → its function
        self._filter_threads = FilterThreads(FILTER_THREADS)  # sync filters run here

    def load(self, installation: Installation) -> LoadedBackend:
        backend_dir = self.settings.backend_dir / installation.plugin_id
        return load_backend(
            installation.plugin_id, backend_dir, module_token(installation.operation_id)
        )

    def serve(self, installation: Installation, arrival: Any = None) -> MountedPlugin:
        backend: LoadedBackend = arrival if arrival is not None else self.load(installation)
        try:
            routes = router_routes(backend.router) if backend.router is not None else []
            declared = self.declared_of(installation.plugin_id)
            # Every worker checks again what it is about to serve, not just the installer.
            check_declared(installation.plugin_id, routes, declared)
        except Exception:
            unload(backend)
            raise
        entry = None
        if backend.router is not None:
            router = self.app.router
            handlers = (list(router.on_startup), list(router.on_shutdown))
            lifespan = router.lifespan_context
            self.app.include_router(backend.router)
            entry = router.routes[-1]
            # include_router copies the plugin router's event handlers into the app and chains
            # its lifespan onto the app's; both would pin the plugin's code after unmount (a
            # chain one link longer per install), and plugins use on_startup hooks instead.
            router.on_startup[:], router.on_shutdown[:] = handlers
            router.lifespan_context = lifespan
        mounted = MountedPlugin(installation, backend, entry, routes, declared)
        hook = backend.hook("on_startup")
        if hook is not None:
            try:
                hook(self.app)
            except Exception as exc:  # a plugin that cannot start is reported, not served
                log.exception("%s: on_startup failed", installation.plugin_id)
                self.stop(mounted)
                raise RuntimeError(f"on_startup: {exc!r}") from exc
        return mounted

    def stop(self, mounted: MountedPlugin) -> None:
        assert mounted.backend is not None
        hook = mounted.backend.hook("on_shutdown")
        if hook is not None:
            try:
                hook(self.app)
            except Exception:
                log.exception("%s: on_shutdown failed", mounted.installation.plugin_id)
        if mounted.entry is not None:
            self.app.router.routes[:] = [
                r for r in self.app.router.routes if r is not mounted.entry
            ]
        module_name = mounted.backend.module_name
        self._filters = {k: f for k, f in self._filters.items() if k[0] != module_name}
        unload(mounted.backend)

    def operation(
        self, served_besides: ServedBesides, leaving: Installation | None
    ) -> InProcessOperation:
        return InProcessOperation(self, served_besides)

    async def deliver(
        self, mounted: MountedPlugin, handler: str, event: sdk.Event | sdk.JobRun, timeout: float
    ) -> None:
        assert mounted.backend is not None
        function = handlers.resolve(mounted.backend.module_name, handler)
        # An async handler is cancelled at the bound; a sync one cannot be stopped (it is
        # Python code in a thread): its delivery is failed at the bound all the same.
        token = sdk.handler_engine.set(self.engine)  # sdk.session(): the task's own context
        try:
            await asyncio.wait_for(handlers.call(function, event), timeout)
        finally:
            sdk.handler_engine.reset(token)

    async def apply_filter(
        self, mounted: MountedPlugin, handler: str, value: Any, timeout: float
    ) -> Any:
        assert mounted.backend is not None
        key = (mounted.backend.module_name, handler)
        function = self._filters.get(key)
        if function is None:  # resolved once per mount: a request runs many filters
            function = self._filters[key] = handlers.resolve(key[0], handler)
        token = sdk.handler_engine.set(self.engine)  # sdk.session() in a filter too
        try:
            if inspect.iscoroutinefunction(function):
                async with asyncio.timeout(timeout):  # cancelled at the bound
                    return await function(value)
            # A sync filter runs in a worker thread; at the bound the request goes on without
            # it, but Python cannot stop the thread: the caller skips it from then on.
            call = contextvars.copy_context().run
            running = asyncio.wrap_future(self._filter_threads.submit(call, function, value))
            try:
                return await asyncio.wait_for(running, timeout)
            except TimeoutError:
                why = f"{handler} ran over its {timeout:g} s and cannot be stopped"
                raise FilterOverran(why) from None
        finally:
            sdk.handler_engine.reset(token)

    def served_routes(self, mounted: MountedPlugin) -> list[ServedRoute]:
        return mounted.routes

    def paths(self, mounted: MountedPlugin) -> tuple[str, ...]:
        return tuple(sorted({r.path for r in mounted.routes}))

    def trouble(self, mounted: MountedPlugin) -> str | None:
        return None

    def limits(self) -> str | None:
        return None

    async def settled(self) -> None:
        return None

    async def watch(self) -> None:
        return None

    async def close(self) -> None:
        self._filter_threads.shutdown()  # a stuck filter's thread is not waited for


class InProcessOperation:
    """An operation's hooks run in this process, inside its transaction."""

    def __init__(self, runner: InProcessRunner, served_besides: ServedBesides) -> None:
        self.runner = runner
        self.served_besides = served_besides
        self.prepared: dict[str, LoadedBackend] = {}

    def before_operation(self) -> None:
        return None

    def before_commit(self, ctx: OperationContext) -> None:
        mounted = self.runner.mounted.get(ctx.plugin_id)
        if ctx.operation == "uninstall":
            if mounted is not None and mounted.backend is not None:
                run_hook(mounted.backend, ctx)
            else:  # not being served (disabled, or it failed to load): import it for its hook
                check_and_run_hooks(ctx)
            return
        backend = prepare_backend(ctx, self.served_besides(ctx.plugin_id))
        if backend is not None:
            self.prepared[ctx.plugin_id] = backend

    def after_commit(self) -> dict[str, tuple[Installation, Any]]:
        rows = installations_by_id(self.runner.engine)
        arrived: dict[str, tuple[Installation, Any]] = {}
        for plugin_id, backend in self.prepared.items():
            row = rows.get(plugin_id)
            if (
                row is not None
                and row.enabled
                and backend.module_name.endswith(module_token(row.operation_id))
            ):
                arrived[plugin_id] = (row, backend)
        # the others were rolled back (a dependency plan), or are not to be served
        for plugin_id in arrived:
            del self.prepared[plugin_id]
        return arrived

    def failed_after_commit(self) -> dict[str, str]:
        return {}

    def discard(self) -> None:
        for backend in self.prepared.values():
            unload(backend)
        self.prepared.clear()
