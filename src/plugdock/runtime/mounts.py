"""The plugins one app serves now: mounting, unmounting and the dispatch entry.

What is served is kept here; where its code runs is the :class:`PluginRunner`'s business
(in this process or a sandbox per plugin, chosen by ``PLUGDOCK_ISOLATION``). Routes change
only on the event loop's thread. A plugin that cannot be served is recorded in
``failed`` with the reason, never raised: the panel and the other plugins go on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from sqlalchemy import Engine

from plugdock.config import Settings
from plugdock.instance.registry import Installation
from plugdock.package.layout import METADATA_FILE
from plugdock.package.metadata import PluginMetadata, parse_metadata
from plugdock.plugin_code.routes import ServedRoute, served_routes
from plugdock.runtime.dispatch import PluginDispatch
from plugdock.runtime.inprocess import InProcessRunner
from plugdock.runtime.runner import MountedPlugin, PluginRunner

log = logging.getLogger("plugdock.runtime")


class Mounts:
    """Which plugin (installation) this app serves, through which route-list entry."""

    def __init__(
        self,
        app: FastAPI,
        settings: Settings,
        engine: Engine,
        *,
        undo_install: Callable[[str], object] | None = None,
    ) -> None:
        self.app = app
        self.settings = settings
        self.mounted: dict[str, MountedPlugin] = {}
        self.failed: dict[str, tuple[str, str]] = {}  # plugin id → (operation id, error)
        self.changes = 0  # mounts + unmounts in this process, for recycling
        self.dispatch = PluginDispatch()  # joins the route list after the core's, at first mount
        self.runner: PluginRunner
        if settings.isolation == "process":
            from plugdock.runtime.sandboxed import SandboxedRunner

            self.runner = SandboxedRunner(
                app,
                settings,
                engine,
                declared_of=self.declared,
                undo_install=undo_install,
                on_change=self.routes_changed,
                on_gave_up=self.fail,
            )
        else:
            self.runner = InProcessRunner(app, settings, engine, self.mounted, self.declared)

    def metadata(self, plugin_id: str) -> PluginMetadata:
        """The installed plugin's metadata.json."""
        path = self.settings.manifest_dir / plugin_id / METADATA_FILE
        return parse_metadata(path.read_bytes(), source=str(path))

    def declared(self, plugin_id: str) -> list[str]:
        """The paths the installed plugin's metadata declares (``backend.routes``)."""
        return self.metadata(plugin_id).backend.routes

    def mount(self, installation: Installation, arrival: Any = None) -> None:
        """Serve a plugin now: what an operation prepared (``arrival``), or its installed code."""
        plugin_id = installation.plugin_id
        try:
            mounted = self.runner.serve(installation, arrival)
        except Exception as exc:
            log.error("%s %s is not served: %s", plugin_id, installation.version, exc)
            self.failed[plugin_id] = (installation.operation_id, str(exc))
            return
        if mounted.entry is not None:
            if self.dispatch not in self.app.router.routes:
                self.app.router.routes.append(self.dispatch)
            self.dispatch.add(mounted.entry, mounted.declared)
        self.mounted[plugin_id] = mounted
        self.changes += 1
        self.failed.pop(plugin_id, None)
        self.routes_changed()

    def unmount(self, plugin_id: str) -> None:
        """Stop serving a plugin's routes now and let its code go."""
        mounted = self.mounted.pop(plugin_id, None)
        if mounted is None:
            return
        self.changes += 1
        if mounted.entry is not None:
            self.dispatch.remove(mounted.entry)
        self.runner.stop(mounted)
        self.routes_changed()

    def fail(self, plugin_id: str, why: str, operation_id: str | None = None) -> None:
        """A plugin broke (its process gave up, a hook failed after the commit): unserved,
        and failed for ``operation_id`` (default: the installation it was served from)."""
        mounted = self.mounted.get(plugin_id)
        if operation_id is None and mounted is not None:
            operation_id = mounted.installation.operation_id
        if operation_id is not None:
            self.unmount(plugin_id)
            self.failed[plugin_id] = (operation_id, why)

    def routes_changed(self) -> None:
        self.app.openapi_schema = None  # regenerated on the next /openapi.json
        mark = getattr(self.app.router, "_mark_routes_changed", None)
        if mark is not None:
            mark()

    def served_besides(self, plugin_id: str) -> list[ServedRoute]:
        """What the app serves, less the plugin's own routes (which an upgrade replaces)."""
        return self.served_routes(besides=plugin_id)

    def served_routes(self, besides: str | None = None) -> list[ServedRoute]:
        """What the app serves: the core, plugins in the panel, and plugin processes
        (less plugin ``besides``)."""
        own = self.mounted.get(besides) if besides is not None else None
        entries = [r for r in self.app.router.routes if own is None or r is not own.entry]
        routes = served_routes(entries)  # in-process plugins' entries are in the route list
        for plugin_id, mounted in self.mounted.items():
            if mounted.backend is None and plugin_id != besides:
                routes.extend(self.runner.served_routes(mounted))
        return routes
