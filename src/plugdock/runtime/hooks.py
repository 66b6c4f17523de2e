"""What runs inside an install or uninstall transaction on behalf of the plugin's code.

The installer calls ``before_commit(ctx)`` after the migration and the installation
row, before the commit; raising rolls the whole operation back. Without a running
panel (the CLI), :func:`check_and_run_hooks` imports the plugin, checks its routes
against its declaration and runs its ``on_install``/``on_uninstall`` hook.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Connection

from plugdock.config import Settings
from plugdock.package.metadata import PluginMetadata


@dataclass(frozen=True)
class OperationContext:
    """What a lifecycle hook (``on_install(ctx)``, ``on_uninstall(ctx)``) is given."""

    operation: str  # "install" | "uninstall"
    plugin_id: str
    version: str
    operation_id: str
    metadata: PluginMetadata | None  # the package's metadata on install
    backend_dir: Path | None  # where the plugin's backend code is right now
    connection: Connection  # the operation's transaction: write seed data here
    settings: Settings

    @property
    def module_token(self) -> str:
        """The suffix of the module name this installation's backend is imported under."""
        return self.operation_id[:12]


BeforeCommit = Callable[[OperationContext], None]


def check_and_run_hooks(ctx: OperationContext) -> None:
    """Import the plugin, check its declared routes, run its hook, and forget it again."""
    if ctx.backend_dir is None or not (ctx.backend_dir / "__init__.py").is_file():
        return
    from plugdock.runtime.loader import load_backend, unload
    from plugdock.runtime.routes import check_declared, router_routes

    backend = load_backend(ctx.plugin_id, ctx.backend_dir, ctx.module_token + "c")
    try:
        if ctx.operation == "install" and backend.router is not None and ctx.metadata is not None:
            check_declared(
                ctx.plugin_id, router_routes(backend.router), ctx.metadata.backend.routes
            )
        run_hook(backend, ctx)
    finally:
        unload(backend)


def run_hook(backend, ctx: OperationContext) -> None:  # type: ignore[no-untyped-def]
    hook = backend.hook(f"on_{ctx.operation}")
    if hook is not None:
        hook(ctx)
