"""Plugin code in a sandboxed process per plugin (``PLUGDOCK_ISOLATION=process``).

The panel never imports the plugin: :mod:`plugdock.isolation.supervisor` starts and looks
after one child per plugin, and the plugin's route-list entry forwards requests to it.
An operation's hooks run in the sandbox (:mod:`plugdock.isolation.lifecycle`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from sqlalchemy import Engine

from plugdock import sdk
from plugdock.config import Settings
from plugdock.errors import ArrivalFailed
from plugdock.instance.registry import Installation
from plugdock.isolation.control import ChildProcess
from plugdock.isolation.lifecycle import SandboxedHooks, finish_arrivals
from plugdock.isolation.supervisor import PluginProcesses
from plugdock.plugin_code.hooks import OperationContext
from plugdock.plugin_code.routes import ServedRoute
from plugdock.runtime.runner import MountedPlugin, ServedBesides

log = logging.getLogger("plugdock.runtime")


class SandboxedRunner:
    """Serves each plugin from its own supervised process."""

    def __init__(
        self,
        app: FastAPI,
        settings: Settings,
        engine: Engine,
        *,
        declared_of: Callable[[str], list[str]],
        undo_install: Callable[[str], object] | None,
        on_change: Callable[[], None],
        on_gave_up: Callable[[str, str], None],
    ) -> None:
        self.app = app
        self.engine = engine
        self.declared_of = declared_of
        self.undo_install = undo_install
        self.processes = PluginProcesses(
            settings, engine, on_change=on_change, on_gave_up=on_gave_up, users_of=self._host_users
        )
        self._stopping: set[asyncio.Task[None]] = set()  # plugin processes being stopped
        self._own_openapi = app.openapi
        app.openapi = self._openapi  # type: ignore[method-assign]  # plugins' paths too

    async def deliver(
        self, mounted: MountedPlugin, handler: str, event: sdk.Event | sdk.JobRun, timeout: float
    ) -> None:
        plugin_id = mounted.installation.plugin_id
        if isinstance(event, sdk.JobRun):
            await self.processes.deliver(plugin_id, handler, event.to_json(), timeout, kind="job")
        else:
            await self.processes.deliver(plugin_id, handler, dataclasses.asdict(event), timeout)

    async def apply_filter(
        self, mounted: MountedPlugin, handler: str, value: Any, timeout: float
    ) -> Any:
        plugin_id = mounted.installation.plugin_id
        return await self.processes.apply_filter(plugin_id, handler, value, timeout)

    def _host_users(self) -> list[dict[str, Any]] | None:
        """``sdk.Users`` in a plugin process: the host's own users (``HostAuth.users``)."""
        listed = sdk.host_state(self.app).host_users
        if listed is None:
            return None
        return [dataclasses.asdict(user) for user in listed()]

    def _openapi(self) -> dict[str, Any]:
        """The app's OpenAPI document with each plugin process's paths and schemas."""
        if self.app.openapi_schema is None:
            document = self._own_openapi()  # generated afresh; ours to extend
            for part in self.processes.openapi():  # never replacing the core's, or another's
                paths = document.setdefault("paths", {})
                schemas = document.setdefault("components", {}).setdefault("schemas", {})
                for path, item in part.get("paths", {}).items():
                    paths.setdefault(path, item)
                for name, schema in part.get("schemas", {}).items():
                    schemas.setdefault(name, schema)
            self.app.openapi_schema = document
        return self.app.openapi_schema

    def serve(self, installation: Installation, arrival: Any = None) -> MountedPlugin:
        """Its route entry answers at once: requests wait while the process starts
        (``arrival`` is one the install already started), and get 503 while it is down."""
        child: ChildProcess | None = arrival
        try:
            declared = self.declared_of(installation.plugin_id)
        except Exception:
            if child is not None:
                child.kill()
            raise
        entry = self.processes.serve(
            installation.plugin_id,
            installation.operation_id,
            installation.version,
            declared,
            list(installation.permissions),
            list(installation.tables),
            child,
        )
        routes = [ServedRoute(path, frozenset(m)) for path, m in (child.routes if child else [])]
        return MountedPlugin(installation, None, entry, routes, declared)

    def stop(self, mounted: MountedPlugin) -> None:
        """The process stops and its memory goes back; a new one may take its place now."""
        served = self.processes.detach(mounted.installation.plugin_id)
        if served is not None:
            task = asyncio.get_running_loop().create_task(self.processes.stop(served))
            self._stopping.add(task)
            task.add_done_callback(self._stopping.discard)

    def operation(
        self, served_besides: ServedBesides, leaving: Installation | None
    ) -> SandboxedOperation:
        return SandboxedOperation(self, SandboxedHooks(self.processes, served_besides), leaving)

    def served_routes(self, mounted: MountedPlugin) -> list[ServedRoute]:
        reported = self.processes.served_routes().get(mounted.installation.plugin_id)
        if reported is None:
            return mounted.routes
        return [ServedRoute(path, frozenset(methods)) for path, methods in reported]

    def paths(self, mounted: MountedPlugin) -> tuple[str, ...]:
        reported = self.processes.served_routes().get(mounted.installation.plugin_id)
        paths = {path for path, _methods in reported} if reported else None
        return tuple(sorted(paths or mounted.declared))

    def trouble(self, mounted: MountedPlugin) -> str | None:
        down = self.processes.status(mounted.installation.plugin_id)
        return None if down is None or down == "starting" else down

    def limits(self) -> str | None:
        return self.processes.limits()

    async def settled(self) -> None:
        await self.processes.settled()

    async def watch(self) -> None:
        await self.processes.watch()

    async def close(self) -> None:
        await asyncio.gather(*self._stopping, return_exceptions=True)
        await self.processes.close()


class SandboxedOperation:
    """An operation's hooks in the plugins' sandboxes (see :mod:`plugdock.isolation.lifecycle`)."""

    def __init__(
        self, runner: SandboxedRunner, hooks: SandboxedHooks, leaving: Installation | None
    ) -> None:
        self.runner = runner
        self.hooks = hooks
        self.leaving = leaving
        self.failures: dict[str, str] = {}

    def before_operation(self) -> None:
        row = self.leaving
        if row is not None:
            self.hooks.leave(
                row.plugin_id,
                row.version,
                list(row.tables),
                row.operation_id,
                list(row.permissions),
            )

    def before_commit(self, ctx: OperationContext) -> None:
        self.hooks.before_commit(ctx)

    def after_commit(self) -> dict[str, tuple[Installation, Any]]:
        try:
            arrived = finish_arrivals(self.hooks, self.runner.engine, self._undo_install)
        except ArrivalFailed as exc:
            if exc.operation == "upgrade":  # the new version stays installed, not served
                self.failures[exc.plugin_id] = str(exc)
            raise
        return dict(arrived)

    def failed_after_commit(self) -> dict[str, str]:
        return self.failures

    def discard(self) -> None:
        self.hooks.discard()

    def _undo_install(self, plugin_id: str) -> None:
        if self.runner.undo_install is None:
            raise RuntimeError("this runtime was given no undo_install")
        self.runner.undo_install(plugin_id)
        log.error("%s: on_install failed in its process; the install was undone", plugin_id)
