"""The marketplace API: the catalog, and install/uninstall that take effect at once.

Installing runs the installer in a worker thread; inside its transaction the panel
imports the plugin, checks that its router serves only declared paths that nothing
else serves, and runs its ``on_install``. Only after the commit is the router
mounted, so a refused or failed install never shows a route.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from plugdock import sdk
from plugdock.errors import NotFoundError
from plugdock.installer import Installer
from plugdock.package.metadata import PLUGIN_ID_PATTERN
from plugdock.runtime.hooks import (
    OperationContext,
    check_and_run_hooks,
    prepare_backend,
    run_hook,
)
from plugdock.runtime.loader import LoadedBackend, unload
from plugdock.runtime.runtime import PluginRuntime
from plugdock.sources import make_source

router = APIRouter(prefix="/api/v1/marketplace", tags=["marketplace"])

PluginId = Annotated[str, Path(pattern=PLUGIN_ID_PATTERN, description="a plugin id")]
SEMVER = r"^\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?$"  # no build metadata (see metadata.py)


class CatalogItem(BaseModel):
    id: str
    name: str
    description: str
    author: str
    category: str
    price: float
    icon: str
    versions: list[str]
    latest: str
    installed: bool
    installed_version: str | None
    state: str | None = Field(None, description="'mounted' or 'failed' when installed")


class InstalledPlugin(BaseModel):
    id: str
    name: str
    version: str
    installed_at: datetime
    installed_by: str | None
    signer: str | None
    tables: list[str]
    state: str = Field(description="'mounted', 'failed' or 'no backend'")
    routes: list[str] = []
    error: str | None = None


class InstallRequest(BaseModel):
    plugin_id: str = Field(pattern=PLUGIN_ID_PATTERN, examples=["ai_chatbot"])
    version: str | None = Field(None, pattern=SEMVER, examples=["1.0.0"])


class InstallResponse(BaseModel):
    message: str
    plugin_id: str
    name: str
    version: str
    tables: list[str]
    routes: list[str] = Field(description="paths now served")
    frontend_routes: list[str]
    package_sha256: str
    signer: str | None
    warnings: list[str] = []


class UninstallResponse(BaseModel):
    message: str
    plugin_id: str
    version: str
    tables_dropped: list[str]
    routes_removed: list[str]
    warnings: list[str]


def _runtime(request: Request) -> PluginRuntime:
    return request.app.state.plugdock_runtime


def _installer(request: Request) -> Installer:
    return request.app.state.plugdock_installer


@router.get("/plugins", response_model=list[CatalogItem])
async def catalog(request: Request, _user: sdk.CurrentUser) -> list[CatalogItem]:
    """Every plugin the active source offers, with what is installed."""
    settings = request.app.state.settings
    found = await run_in_threadpool(lambda: make_source(settings).catalog())
    installed = {i.plugin_id: i for i in await run_in_threadpool(_installer(request).installed)}
    status = _runtime(request).status()
    return [
        CatalogItem(
            **asdict(entry),
            latest=entry.latest,
            installed=entry.id in installed,
            installed_version=installed[entry.id].version if entry.id in installed else None,
            state=status.get(entry.id, {}).get("state") if entry.id in installed else None,
        )
        for entry in found.plugins.values()
    ]


@router.get("/plugins/{plugin_id}", response_model=CatalogItem)
async def catalog_entry(
    plugin_id: PluginId, request: Request, user: sdk.CurrentUser
) -> CatalogItem:
    for item in await catalog(request, user):
        if item.id == plugin_id:
            return item
    raise NotFoundError(f"plugin {plugin_id!r} is not in the catalog")


@router.get("/installed", response_model=list[InstalledPlugin])
def installed(request: Request, _user: sdk.CurrentUser) -> list[InstalledPlugin]:
    """Installed plugins, and whether each is being served (or why not)."""
    status = _runtime(request).status()
    return [
        InstalledPlugin(
            id=i.plugin_id,
            name=i.name,
            version=i.version,
            installed_at=i.installed_at,
            installed_by=i.installed_by,
            signer=i.signer,
            tables=i.tables,
            state=served.get("state", "no backend"),
            routes=served.get("routes", []),
            error=served.get("error"),
        )
        for i in _installer(request).installed()
        for served in [status.get(i.plugin_id, {})]
    ]


@router.post("/install", response_model=InstallResponse)
async def install(body: InstallRequest, request: Request, admin: sdk.AdminUser) -> InstallResponse:
    """Install a plugin; its routes answer as soon as this returns, in every worker."""
    runtime, installer = _runtime(request), _installer(request)
    requirement = f"{body.plugin_id}@{body.version}" if body.version else body.plugin_id
    prepared: dict[str, LoadedBackend] = {}

    def before_commit(ctx: OperationContext) -> None:
        backend = prepare_backend(ctx, runtime.served_routes())
        if backend is not None:
            prepared["backend"] = backend

    async with runtime.lock:
        try:
            result = await run_in_threadpool(
                installer.install,
                requirement,
                installed_by=admin.username,
                before_commit=before_commit,
            )
        except BaseException:
            if "backend" in prepared:
                unload(prepared["backend"])
            raise
        installation = await run_in_threadpool(installer.get, result.plugin_id)
        if "backend" in prepared and installation is not None:
            runtime.mount(installation, prepared["backend"])
        runtime.reconcile()
    routes = runtime.status().get(result.plugin_id, {}).get("routes", [])
    return InstallResponse(
        message=f"{result.name} {result.version} installed: "
        f"{_count(result.tables, 'table')}, {_count(routes, 'route')}",
        plugin_id=result.plugin_id,
        name=result.name,
        version=result.version,
        tables=result.tables,
        routes=routes,
        frontend_routes=result.frontend_routes,
        package_sha256=result.package_sha256,
        signer=result.signer,
        warnings=result.warnings,
    )


@router.delete("/uninstall/{plugin_id}", response_model=UninstallResponse)
async def uninstall(
    plugin_id: PluginId, request: Request, admin: sdk.AdminUser
) -> UninstallResponse:
    """Uninstall a plugin; its routes answer 404 as soon as this returns, in every worker."""
    runtime, installer = _runtime(request), _installer(request)

    def before_commit(ctx: OperationContext) -> None:
        mounted = runtime.mounted.get(ctx.plugin_id)
        if mounted is not None:
            run_hook(mounted.backend, ctx)
        else:  # not being served (it failed to load): import it just for its hook
            check_and_run_hooks(ctx)

    async with runtime.lock:
        routes = runtime.status().get(plugin_id, {}).get("routes", [])
        result = await run_in_threadpool(
            installer.uninstall,
            plugin_id,
            uninstalled_by=admin.username,
            before_commit=before_commit,
        )
        runtime.unmount(plugin_id)
        runtime.reconcile()
    return UninstallResponse(
        message=f"{plugin_id} {result.version} uninstalled",
        plugin_id=plugin_id,
        version=result.version,
        tables_dropped=result.tables_dropped,
        routes_removed=routes,
        warnings=result.warnings,
    )


def _count(items: list[str], noun: str) -> str:
    return f"{len(items)} {noun}{'' if len(items) == 1 else 's'}"
