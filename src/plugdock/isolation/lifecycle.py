"""An install, upgrade or uninstall in process mode: the plugin's code runs only in its sandbox.

In-process, the installer imports the plugin, checks its routes and runs its hook inside
the operation's transaction (:mod:`plugdock.plugin_code.hooks`). In process mode the plugin's
code never runs in the panel or the CLI:

- inside the transaction (:meth:`SandboxedHooks.before_commit`), a plugin process imports
  the arriving backend and reports its routes, which the panel checks as it would its own;
- after the commit (:meth:`SandboxedHooks.finish`), the plugin's database role gets its
  tables and ``on_install``/``on_upgrade`` runs in that process, in a transaction of its
  own as that role. The hook cannot run inside the operation's transaction: that is the
  panel's connection, with the panel's rights. If ``on_install`` fails, the caller undoes
  the install; if ``on_upgrade`` fails, the new version stays installed and is reported
  failed until fixed or uninstalled (docs/isolation.md);
- ``on_uninstall`` runs before the uninstall starts (:meth:`SandboxedHooks.leave`), while
  its tables still exist; if it fails, nothing is uninstalled.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from sqlalchemy import Engine

from plugdock.config import Settings
from plugdock.errors import ArrivalFailed, PluginProcessError
from plugdock.instance.registry import Installation, installations_by_id
from plugdock.isolation.control import ChildProcess
from plugdock.isolation.supervisor import PluginProcesses
from plugdock.plugin_code.hooks import BeforeCommit, OperationContext
from plugdock.plugin_code.loader import module_token
from plugdock.plugin_code.routes import ServedRoute, check_collisions, check_declared

T = TypeVar("T")


@dataclass
class Prepared:
    """A plugin process that imported an arriving backend, waiting for the commit."""

    child: ChildProcess
    operation: str
    version: str
    from_version: str | None


class SandboxedHooks:
    """The plugin-code side of operations in process mode, for one caller (panel or CLI)."""

    def __init__(
        self,
        processes: PluginProcesses,
        served: Callable[[str], list[ServedRoute]] | None = None,
    ) -> None:
        self.processes = processes
        self.served = served  # what the app serves besides the given plugin (collisions)
        self.prepared: dict[str, Prepared] = {}

    def before_commit(self, ctx: OperationContext) -> None:
        """Inside the transaction: import the arriving backend in its sandbox, check routes."""
        if ctx.operation == "uninstall" or ctx.backend_dir is None:
            return
        if not (ctx.backend_dir / "__init__.py").is_file():
            return
        permissions = list(ctx.metadata.permissions) if ctx.metadata is not None else []
        child = self.processes.spawner.spawn(
            ctx.plugin_id, ctx.operation_id, permissions, backend_dir=ctx.backend_dir
        )
        try:
            routes = [ServedRoute(path, frozenset(methods)) for path, methods in child.routes]
            if ctx.metadata is not None:
                check_declared(ctx.plugin_id, routes, ctx.metadata.backend.routes)
            if self.served is not None:
                check_collisions(ctx.plugin_id, routes, self.served(ctx.plugin_id))
        except BaseException:
            child.kill()
            raise
        old = self.prepared.pop(ctx.plugin_id, None)
        if old is not None:
            old.child.kill()
        self.prepared[ctx.plugin_id] = Prepared(child, ctx.operation, ctx.version, ctx.from_version)

    def finish(self, plugin_id: str, tables: list[str]) -> ChildProcess:
        """After the commit: grant the tables, run the hook; the process, ready to serve.

        Raises the hook's error (the process is gone then).
        """
        prepared = self.prepared.pop(plugin_id)
        try:
            self.processes.spawner.grant(plugin_id, tables)
            prepared.child.hook(
                prepared.operation,
                prepared.version,
                self.processes.settings.hook_timeout,
                prepared.from_version,
            )
        except BaseException:
            prepared.child.kill()
            raise
        return prepared.child

    def leave(
        self,
        plugin_id: str,
        version: str,
        tables: list[str],
        operation_id: str,
        permissions: list[str],
    ) -> None:
        """Before an uninstall: run ``on_uninstall`` in a plugin process of its own."""
        backend = self.processes.settings.backend_dir / plugin_id
        if not (backend / "__init__.py").is_file():
            return
        child = self.processes.spawner.spawn(
            plugin_id, operation_id, permissions, purpose="uninstall"
        )
        try:
            self.processes.spawner.grant(plugin_id, tables)
            child.hook("uninstall", version, self.processes.settings.hook_timeout)
        finally:
            child.stop()

    def discard(self) -> None:
        """The operation failed or was not to be served: no prepared process survives."""
        for prepared in self.prepared.values():
            prepared.child.kill()
        self.prepared.clear()


def finish_arrivals(
    hooks: SandboxedHooks, engine: Engine, undo_install: Callable[[str], object]
) -> dict[str, tuple[Installation, ChildProcess]]:
    """After the commit: each arriving plugin's hook, in its process (blocking).

    Returns the processes to serve, by plugin id. A failed ``on_install`` undoes every
    install of the call (a dependency plan stands or falls as one, as in the panel) and
    raises; a failed ``on_upgrade`` raises (the upgrade stays).
    """
    rows = installations_by_id(engine)
    arriving = [
        (plugin_id, prepared, rows[plugin_id])
        for plugin_id, prepared in list(hooks.prepared.items())
        if plugin_id in rows
        and rows[plugin_id].enabled
        and prepared.child.order_token == module_token(rows[plugin_id].operation_id)
    ]  # the others were rolled back (a dependency plan), or are not to be served
    ready: dict[str, tuple[Installation, ChildProcess]] = {}
    for plugin_id, prepared, row in arriving:
        try:
            ready[plugin_id] = (row, hooks.finish(plugin_id, list(row.tables)))
        except PluginProcessError as exc:
            for _row, child in ready.values():
                child.kill()
            if prepared.operation == "install":
                installs = [p for p, arrival, _r in arriving if arrival.operation == "install"]
                for installed in reversed(installs):  # dependents before what they need
                    undo_install(installed)
                raise ArrivalFailed(
                    f"{exc}; the install was undone", plugin_id, prepared.operation
                ) from exc
            raise ArrivalFailed(
                f"{exc}; {plugin_id} {row.version} stays installed but is not served "
                "until it is upgraded or uninstalled",
                plugin_id,
                prepared.operation,
            ) from exc
    return ready


def run_sandboxed(
    settings: Settings,
    engine: Engine,
    operation: Callable[[BeforeCommit], T],
    undo_install: Callable[[str], object],
    *,
    leaving: str | None = None,
) -> T:
    """An operation outside a panel (the CLI) with the plugin's code in its sandbox only."""
    from plugdock.isolation.supervisor import PluginProcesses

    processes = PluginProcesses(settings, engine)
    hooks = SandboxedHooks(processes)
    try:
        row = installations_by_id(engine).get(leaving) if leaving is not None else None
        if row is not None:
            hooks.leave(
                row.plugin_id,
                row.version,
                list(row.tables),
                row.operation_id,
                list(row.permissions),
            )
        result = operation(hooks.before_commit)
        for _row, child in finish_arrivals(hooks, engine, undo_install).values():
            child.stop()  # a running panel starts its own
        return result
    finally:
        hooks.discard()
        processes.shut_down()
