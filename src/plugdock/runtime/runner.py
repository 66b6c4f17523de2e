"""Where plugin code runs, as one interface: in this process, or in a sandboxed process per plugin.

The live runtime serves a plugin, stops it, and runs an operation's hooks through a
:class:`PluginRunner` and never asks which kind it holds:

- :class:`plugdock.runtime.inprocess.InProcessRunner` imports the backend into the panel
  and includes its router in the app;
- :class:`plugdock.runtime.sandboxed.SandboxedRunner` serves it from a supervised child
  process (:mod:`plugdock.isolation`) behind a forwarding route entry.

An operation's plugin code (``on_install`` and the route checks inside the transaction,
what is served after the commit) goes through :class:`OperationHooks`, which the runner
makes per operation. New kinds of plugin code (event handlers, filters, scheduled jobs)
belong here too: a method on the runner that calls ``module:function`` of a served plugin,
in-process or in its sandbox, so callers never branch on the isolation mode.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from plugdock import sdk
from plugdock.instance.registry import Installation
from plugdock.plugin_code.hooks import OperationContext
from plugdock.plugin_code.loader import LoadedBackend
from plugdock.plugin_code.routes import ServedRoute

#: What the app serves besides one plugin (that plugin's own routes are left out, since an
#: upgrade replaces them): the routes an arriving backend must not collide with.
ServedBesides = Callable[[str], list[ServedRoute]]


@dataclass
class MountedPlugin:
    """One plugin this process serves."""

    installation: Installation
    backend: LoadedBackend | None  # None: served by a plugin process
    entry: Any  # the route-list entry: include_router's (in the app's list), or the forwarding
    # route (only in the dispatch); None for a backend without a router
    routes: list[ServedRoute]
    declared: list[str]  # its metadata's backend.routes: the dispatch sends these paths to it


class OperationHooks(Protocol):
    """The plugin-code side of one install, upgrade or uninstall, in this runner's mode."""

    def before_operation(self) -> None:
        """Before the operation starts (blocking): e.g. a leaving plugin's ``on_uninstall``
        in its sandbox, while its tables still exist."""

    def before_commit(self, ctx: OperationContext) -> None:
        """Inside the operation's transaction (blocking): import and check an arriving
        backend, or run a leaving one's hook."""

    def after_commit(self) -> dict[str, tuple[Installation, Any]]:
        """After the commit (blocking): what arrived and is to be served, by plugin id: its
        row and what to hand :meth:`PluginRunner.serve`."""

    def failed_after_commit(self) -> dict[str, str]:
        """Plugins whose change committed but whose hook then failed: not to be served, why."""

    def discard(self) -> None:
        """The operation ended: nothing it prepared and did not hand over stays loaded."""


class PluginRunner(Protocol):
    """Runs plugin code for the live runtime (event-loop thread unless it says blocking)."""

    def serve(self, installation: Installation, arrival: Any = None) -> MountedPlugin:
        """Serve a plugin: ``arrival`` is what an operation prepared (``after_commit``), else
        the installed code is loaded. Raises when it cannot be served; nothing stays then."""

    def stop(self, mounted: MountedPlugin) -> None:
        """Stop serving it and let its code go (the dispatch entry is already removed)."""

    def operation(
        self, served_besides: ServedBesides, leaving: Installation | None
    ) -> OperationHooks:
        """The hooks for one operation; ``leaving`` is the plugin an uninstall removes."""

    async def deliver(
        self, mounted: MountedPlugin, handler: str, event: sdk.Event | sdk.JobRun, timeout: float
    ) -> None:
        """Run the plugin's ``handler`` (``module:function``) with ``event`` (a host event, or
        a job's run), bounded by ``timeout``; raises whatever made it fail (TimeoutError at
        the bound)."""

    async def apply_filter(
        self, mounted: MountedPlugin, handler: str, value: Any, timeout: float
    ) -> Any:
        """Run the plugin's filter ``handler`` on ``value`` (JSON-ready data): what it
        returns; raises ``sdk.Veto`` when it refuses, ``TimeoutError`` at ``timeout``
        (``FilterOverran`` when its code could not be stopped), else what made it fail."""

    def served_routes(self, mounted: MountedPlugin) -> list[ServedRoute]:
        """What the plugin serves now, as far as known."""

    def paths(self, mounted: MountedPlugin) -> tuple[str, ...]:
        """The paths to show for it (the status report)."""

    def trouble(self, mounted: MountedPlugin) -> str | None:
        """None while it serves (or is starting); else why not (crashed, hung …)."""

    def limits(self) -> str | None:
        """What holds each plugin to its resource limits here, in plain words (None: nothing,
        the plugins run inside the panel)."""

    async def settled(self) -> None:
        """Wait (bounded) until what is starting serves or has failed."""

    async def watch(self) -> None:
        """Look after what runs (until cancelled)."""

    async def close(self) -> None:
        """The panel stops: everything this runner started ends."""
