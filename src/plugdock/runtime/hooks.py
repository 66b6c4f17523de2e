"""What runs inside an install, upgrade or uninstall transaction on behalf of the plugin's code.

The installer calls ``before_commit(ctx)`` inside the operation's transaction (after
up.sql on install, before down.sql on uninstall); raising rolls the whole operation
back. :func:`prepare_backend` imports the plugin, checks its routes and runs its
``on_install``/``on_uninstall``; the panel keeps the result to mount it, the CLI
(:func:`check_and_run_hooks`) forgets it again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection

from plugdock.config import Settings
from plugdock.errors import PackageError
from plugdock.package.metadata import PluginMetadata

if TYPE_CHECKING:  # importing these pulls in FastAPI: the CLI pays for it only when it must
    from plugdock.runtime.loader import LoadedBackend
    from plugdock.runtime.routes import ServedRoute


@dataclass(frozen=True)
class OperationContext:
    """What a lifecycle hook (``on_install(ctx)``, ``on_uninstall(ctx)``) is given."""

    operation: str  # "install" | "upgrade" | "uninstall"
    plugin_id: str
    version: str
    operation_id: str
    metadata: PluginMetadata | None  # the package's metadata on install
    backend_dir: Path | None  # where the plugin's backend code is right now
    connection: Connection  # the operation's transaction: write seed data here
    settings: Settings
    from_version: str | None = None  # on upgrade: the version being replaced

    @property
    def module_token(self) -> str:
        """The suffix of the module name this installation's backend is imported under."""
        from plugdock.runtime.loader import module_token

        return module_token(self.operation_id)


log = logging.getLogger("plugdock.runtime")

BeforeCommit = Callable[[OperationContext], None]


def prepare_backend(
    ctx: OperationContext, served: list[ServedRoute] | None = None
) -> LoadedBackend | None:
    """Import the plugin's backend, check its routes and run its hook for this operation.

    On install the router must serve only declared paths, and none of ``served`` (what the
    app serves already). Returns the loaded backend for the caller to mount or unload;
    None when the plugin has no backend. On any failure nothing stays imported.
    """
    if ctx.backend_dir is None or not (ctx.backend_dir / "__init__.py").is_file():
        return None
    from plugdock.runtime.loader import load_backend, unload
    from plugdock.runtime.routes import check_collisions, check_declared, router_routes

    try:
        backend = load_backend(ctx.plugin_id, ctx.backend_dir, ctx.module_token)
    except PackageError as exc:
        if ctx.operation != "uninstall":
            raise
        # Code that no longer imports must not make a plugin impossible to remove.
        log.warning(
            "%s: skipping on_uninstall, the backend does not import: %s", ctx.plugin_id, exc
        )
        return None
    try:
        arriving = ctx.operation in ("install", "upgrade") and ctx.metadata is not None
        if arriving and backend.router is not None:
            routes = router_routes(backend.router)
            check_declared(ctx.plugin_id, routes, ctx.metadata.backend.routes)
            if served is not None:
                check_collisions(ctx.plugin_id, routes, served)
        run_hook(backend, ctx)
        if arriving and ctx.metadata.backend.health:
            from plugdock.runtime.health import check_health

            check_health(
                backend, ctx.metadata.backend.health, ctx.connection, ctx.settings.health_timeout
            )
    except BaseException:
        unload(backend)
        raise
    return backend


def check_and_run_hooks(ctx: OperationContext) -> None:
    """Without a running panel (the CLI): check and run the plugin's hook, then forget it."""
    backend = prepare_backend(ctx)
    if backend is not None:
        from plugdock.runtime.loader import unload

        unload(backend)


def run_hook(backend: LoadedBackend, ctx: OperationContext) -> None:
    """``on_install(ctx)``, ``on_uninstall(ctx)`` or ``on_upgrade(ctx, from_version)``."""
    hook = backend.hook(f"on_{ctx.operation}")
    if hook is None:
        return
    if ctx.operation == "upgrade":
        hook(ctx, ctx.from_version)
    else:
        hook(ctx)
