"""What runs inside an install, upgrade or uninstall transaction on behalf of the plugin's code.

The installer calls ``before_commit(ctx)`` inside the operation's transaction (after
up.sql on install, before down.sql on uninstall); raising rolls the whole operation
back. :func:`prepare_backend` imports the plugin, checks its routes and runs its
``on_install``/``on_uninstall``; the panel keeps the result to mount it, the CLI
(:func:`check_and_run_hooks`) forgets it again.

The installer's :class:`OperationContext` stays inside plugdock (it holds the host's
settings); the plugin's hook gets only the :class:`plugdock.sdk.HookContext` made from it
by :func:`hook_context`.
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
from plugdock.plugin_code.hook_time import run_bounded

if TYPE_CHECKING:  # importing these pulls in FastAPI: the CLI pays for it only when it must
    from plugdock.plugin_code.loader import LoadedBackend
    from plugdock.plugin_code.routes import ServedRoute
    from plugdock.sdk import HookContext, HookOperation


@dataclass(frozen=True)
class OperationContext:
    """What the installer tells :func:`prepare_backend` about the operation it runs."""

    operation: HookOperation
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
        from plugdock.plugin_code.loader import module_token

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
    from plugdock.plugin_code.loader import load_backend, unload
    from plugdock.plugin_code.routes import check_collisions, check_declared, router_routes

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
        # The metadata of the arriving version (install, upgrade); None when leaving.
        arriving = ctx.metadata if ctx.operation in ("install", "upgrade") else None
        if arriving is not None and backend.router is not None:
            routes = router_routes(backend.router)
            check_declared(ctx.plugin_id, routes, arriving.backend.routes)
            if served is not None:
                check_collisions(ctx.plugin_id, routes, served)
        run_hook(backend, ctx)
        if arriving is not None and arriving.backend.health:
            from plugdock.plugin_code.health import check_health

            check_health(
                backend, arriving.backend.health, ctx.connection, ctx.settings.health_timeout
            )
    except BaseException:
        unload(backend)
        raise
    return backend


def check_and_run_hooks(ctx: OperationContext) -> None:
    """Without a running panel (the CLI): check and run the plugin's hook, then forget it."""
    backend = prepare_backend(ctx)
    if backend is not None:
        from plugdock.plugin_code.loader import unload

        unload(backend)


def hook_context(ctx: OperationContext) -> HookContext:
    """The part of ``ctx`` a plugin may see: no host settings, no paths, no secrets."""
    from plugdock import sdk

    return sdk.HookContext(
        plugin_id=ctx.plugin_id,
        version=ctx.version,
        operation=ctx.operation,
        connection=ctx.connection,
        settings=sdk.plugin_settings(ctx.plugin_id),
        logger=sdk.get_logger(ctx.plugin_id),
        from_version=ctx.from_version,
    )


def run_hook(backend: LoadedBackend, ctx: OperationContext) -> None:
    """``on_install(ctx)``, ``on_uninstall(ctx)`` or ``on_upgrade(ctx, from_version)``, for
    at most ``hook_timeout`` seconds (:mod:`plugdock.plugin_code.hook_time`)."""
    hook = backend.hook(f"on_{ctx.operation}")
    if hook is None:
        return
    plugin_ctx = hook_context(ctx)
    args = (plugin_ctx, ctx.from_version) if ctx.operation == "upgrade" else (plugin_ctx,)
    # Given up on, the hook loses the operation's connection: closing it rolls the
    # transaction back at the database, and the hook's next query fails.
    run_bounded(
        ctx.plugin_id,
        f"on_{ctx.operation}",
        lambda: hook(*args),
        ctx.settings.hook_timeout,
        abandon=ctx.connection.invalidate,
    )
