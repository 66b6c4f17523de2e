"""The marketplace API, write side: every change takes effect in this worker before it answers.

Each runs the installer in a worker thread through :meth:`PluginRuntime.apply`, which
imports and checks arriving plugins inside the transaction and swaps them in after the
commit; other workers follow the generation bump (see :mod:`plugdock.runtime.runtime`).
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field, StringConstraints, field_validator
from starlette.datastructures import UploadFile as StarletteUploadFile

from plugdock import sdk
from plugdock.core.contract import errors
from plugdock.errors import InvalidRequestError, TooLargeError
from plugdock.host.marketplace import SEMVER, PluginId, installer_of, runtime_of
from plugdock.instance.scratch import owned_folder
from plugdock.operations.install import InstallResult
from plugdock.operations.upgrade import UpgradeResult
from plugdock.package.metadata import PLUGIN_ID_PATTERN
from plugdock.package.permissions import MAX_PERMISSION_LENGTH, PERMISSION_PATTERN
from plugdock.package.permissions import normalize as normalize_permissions
from plugdock.runtime.replicas import wait_converged
from plugdock.sources.local import read_zip_metadata

# Every change can meet another one holding the lock (503) or the current state (409); the
# rest follows from each route (plugdock.core.contract).
router = APIRouter(
    prefix="/api/v1/marketplace",
    tags=["marketplace"],
    responses=errors(
        409,
        503,
        _409="Conflicts with what is installed (an upgrade's 409 lists the permissions to "
        "confirm as 'grant')",
        _503="Another change holds the operation lock; try again",
    ),
)
_FETCH = errors(404, 502, _422="An invalid or unsafe package, or invalid input")

_UPLOAD_CHUNK = 1024 * 1024


class Replicas(BaseModel):
    converged: int = Field(description="live replicas serving the change when this answered")
    total: int = Field(description="live replicas (panel processes sharing the database)")


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
    installed: list[str] = Field([], description="every plugin installed, dependencies first")
    permissions: list[str] = Field([], description="what the plugin was granted")
    replicas: Replicas | None = None


class UpgradeResponse(BaseModel):
    message: str
    plugin_id: str
    name: str
    from_version: str
    version: str
    steps: list[str] = Field(description="upgrade steps that ran")
    tables: list[str]
    routes: list[str] = Field(description="paths now served")
    frontend_routes: list[str]
    package_sha256: str
    signer: str | None
    warnings: list[str] = []
    permissions: list[str] = Field([], description="what the plugin is granted now")
    replicas: Replicas | None = None


class UploadedInstall(InstallResponse):
    operation: Literal["install"] = "install"


class UploadedUpgrade(UpgradeResponse):
    operation: Literal["upgrade"] = "upgrade"


class UninstallResponse(BaseModel):
    message: str
    plugin_id: str
    version: str
    tables_dropped: list[str]
    routes_removed: list[str]
    warnings: list[str]
    backup: str | None = Field(None, description="file name of the rows' backup, if written")
    replicas: Replicas | None = None


class ToggleResponse(BaseModel):
    message: str
    plugin_id: str
    enabled: bool
    replicas: Replicas | None = None


async def _converged(request: Request) -> Replicas:
    """Wait (bounded) until every live replica serves what this one now serves.

    So a client behind a load balancer reads its own write on whichever replica it reaches
    next; the answer says how many got there in time (see plugdock.runtime.replicas).
    """
    runtime = runtime_of(request)
    settings = installer_of(request).settings
    await runtime.heartbeat.report(force=True)  # this replica is there already
    replica = runtime.heartbeat.replica
    found = await wait_converged(
        runtime.engine,
        runtime.generation or 0,
        timeout=settings.converge_timeout,
        stale_after=settings.replica_stale_after,
        siblings_of=replica.instance if replica is not None else None,
    )
    return Replicas(converged=found.converged, total=found.total)


def _routes(request: Request, plugin_id: str) -> list[str]:
    status = runtime_of(request).status().get(plugin_id)
    return list(status.routes) if status else []


def _installed(request: Request, result: InstallResult) -> InstallResponse:
    routes = _routes(request, result.plugin_id)
    return InstallResponse(
        message=f"{result.name} {result.version} installed: "
        f"{_count(result.tables, 'table')}, {_count(routes, 'route')}"
        + (f" (with {', '.join(result.dependencies)})" if result.dependencies else ""),
        plugin_id=result.plugin_id,
        name=result.name,
        version=result.version,
        tables=result.tables,
        routes=routes,
        frontend_routes=result.frontend_routes,
        package_sha256=result.package_sha256,
        signer=result.signer,
        warnings=result.warnings,
        installed=[*result.dependencies, result.plugin_id],
        permissions=result.permissions,
    )


def _upgraded(request: Request, result: UpgradeResult) -> UpgradeResponse:
    return UpgradeResponse(
        message=f"{result.name} upgraded from {result.from_version} to {result.version}"
        + (f" ({_count(result.steps, 'upgrade step')})" if result.steps else ""),
        **{k: v for k, v in result.__dict__.items() if k not in ("seconds", "backend_routes")},
        routes=_routes(request, result.plugin_id),
    )


@router.post("/install", response_model=InstallResponse, responses=_FETCH)
async def install(body: InstallRequest, request: Request, admin: sdk.AdminUser) -> InstallResponse:
    """Install a plugin (and its missing dependencies); its routes answer once this returns."""
    installer = installer_of(request)
    requirement = f"{body.plugin_id}@{body.version}" if body.version else body.plugin_id
    result = await runtime_of(request).apply(
        lambda hooks: installer.install(
            requirement, installed_by=admin.username, before_commit=hooks
        )
    )
    return _installed(request, result).model_copy(update={"replicas": await _converged(request)})


# Normal forms only, as the schema says: "NETWORK" or " network" are refused, not rewritten.
Permission = Annotated[
    str, StringConstraints(pattern=PERMISSION_PATTERN, max_length=MAX_PERMISSION_LENGTH)
]


class UpgradeRequest(BaseModel):
    plugin_id: str = Field(pattern=PLUGIN_ID_PATTERN, examples=["ai_chatbot"])
    version: str | None = Field(None, pattern=SEMVER, description="default: the newest offered")
    grant: list[Permission] = Field(
        [],
        max_length=50,
        description="permissions the admin confirms beyond the installation's grant; an "
        "upgrade asking for more than granted answers 409 naming them ('permissions')",
        examples=[["network:api.openai.com"]],
    )

    @field_validator("grant")
    @classmethod
    def _known(cls, grant: list[str]) -> list[str]:
        return normalize_permissions(grant)


@router.post("/upgrade", response_model=UpgradeResponse, responses=_FETCH)
async def upgrade(body: UpgradeRequest, request: Request, admin: sdk.AdminUser) -> UpgradeResponse:
    """Upgrade in place, data carried forward; on any failure the old version goes on serving."""
    installer = installer_of(request)
    result = await runtime_of(request).apply(
        lambda hooks: installer.upgrade(
            body.plugin_id,
            body.version,
            upgraded_by=admin.username,
            before_commit=hooks,
            grant=body.grant,
        )
    )
    return _upgraded(request, result).model_copy(update={"replicas": await _converged(request)})


@router.delete("/uninstall/{plugin_id}", response_model=UninstallResponse)
async def uninstall(
    plugin_id: PluginId,
    request: Request,
    admin: sdk.AdminUser,
    backup: bool = Query(True, description="write the plugin's rows to instance/backups first"),
    force: bool = Query(
        False,
        description="run none of the plugin's code (no on_uninstall), stop waiting for a hung "
        "hook of it; audited as forced",
    ),
) -> UninstallResponse:
    """Uninstall a plugin; its routes answer 404 as soon as this returns, in every worker."""
    installer = installer_of(request)
    routes = _routes(request, plugin_id)
    result = await runtime_of(request).apply(
        lambda hooks: installer.uninstall(
            plugin_id,
            uninstalled_by=admin.username,
            before_commit=hooks,
            backup=backup,
            force=force,
        ),
        leaving=plugin_id,
        force=force,
    )
    return UninstallResponse(
        message=f"{plugin_id} {result.version} uninstalled"
        + (" (forced: its on_uninstall did not run)" if force else "")
        + (f"; its rows are kept in {result.backup.name}" if result.backup else ""),
        plugin_id=plugin_id,
        version=result.version,
        tables_dropped=result.tables_dropped,
        routes_removed=routes,
        warnings=result.warnings,
        backup=result.backup.name if result.backup else None,
        replicas=await _converged(request),
    )


async def _toggle(request: Request, plugin_id: str, enabled: bool, actor: str) -> ToggleResponse:
    installer = installer_of(request)
    change = installer.enable if enabled else installer.disable
    await runtime_of(request).apply(lambda _hooks: change(plugin_id, actor=actor))
    state = "enabled" if enabled else "disabled: its tables and rows stay"
    return ToggleResponse(
        message=f"{plugin_id} {state}",
        plugin_id=plugin_id,
        enabled=enabled,
        replicas=await _converged(request),
    )


@router.post("/disable/{plugin_id}", response_model=ToggleResponse)
async def disable(plugin_id: PluginId, request: Request, admin: sdk.AdminUser) -> ToggleResponse:
    """Stop serving a plugin's routes and pages in every worker; its data stays."""
    return await _toggle(request, plugin_id, False, admin.username)


@router.post("/enable/{plugin_id}", response_model=ToggleResponse)
async def enable(plugin_id: PluginId, request: Request, admin: sdk.AdminUser) -> ToggleResponse:
    """Serve a disabled plugin again; no SQL runs."""
    return await _toggle(request, plugin_id, True, admin.username)


# Documented by hand: the form is read in the handler, after the admin check.
_UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {"type": "string", "format": "binary"},
                        # as in /upgrade: what the admin confirms when it is an upgrade
                        "grant": {
                            "type": "array",
                            "items": {
                                "type": "string",
                                "pattern": PERMISSION_PATTERN,
                                "maxLength": MAX_PERMISSION_LENGTH,
                            },
                        },
                    },
                },
                "encoding": {"file": {"contentType": "application/zip"}},
            }
        },
    }
}


@router.post(
    "/upload",
    response_model=UploadedInstall | UploadedUpgrade,
    openapi_extra=_UPLOAD_BODY,
    responses=errors(_422="Not a valid package zip (or no field 'file'), or an unsafe one"),
)
async def upload(request: Request, admin: sdk.AdminUser) -> UploadedInstall | UploadedUpgrade:
    """Install or upgrade from an uploaded package zip (field ``file``), checked like any."""
    # Not an UploadFile parameter: FastAPI would read and spool the whole body (up to the
    # package limit) before the admin check, for anyone who asks.
    async with request.form(max_files=1, max_fields=10) as form:
        file = form.get("file")
        if not isinstance(file, StarletteUploadFile):
            raise InvalidRequestError("send the package zip as the multipart field 'file'")
        try:
            grant = normalize_permissions(_normal_form(str(g)) for g in form.getlist("grant"))
        except ValueError as exc:
            raise InvalidRequestError(str(exc)) from None
        return await _install_upload(request, admin, file, grant)


def _normal_form(permission: str) -> str:
    """As the schema says (and as /upgrade's body): a permission in its normal form only."""
    if len(permission) > MAX_PERMISSION_LENGTH or not re.fullmatch(PERMISSION_PATTERN, permission):
        raise ValueError(f"grant: {permission[:80]!r} is not a permission in its normal form")
    return permission


async def _install_upload(
    request: Request, admin: sdk.User, file: StarletteUploadFile, grant: list[str]
) -> UploadedInstall | UploadedUpgrade:
    installer = installer_of(request)
    limit = installer.settings.max_package_bytes
    # Not under staging/: taking the operation lock empties that of anything in flight.
    # Private (the upload is untrusted); a killed worker's is removed by the next recovery.
    with owned_folder(installer.settings.uploads_dir) as folder:
        path = folder / "package.zip"
        size = 0
        with open(path, "wb") as out:
            while chunk := await file.read(_UPLOAD_CHUNK):
                size += len(chunk)
                if size > limit:  # the body limit allows multipart framing on top
                    raise TooLargeError(
                        f"the upload is larger than the package limit ({limit} bytes)"
                    )
                out.write(chunk)
        meta = await run_in_threadpool(read_zip_metadata, path)
        if await run_in_threadpool(installer.get, meta.id) is None:
            result = await runtime_of(request).apply(
                lambda hooks: installer.install(
                    path, installed_by=admin.username, before_commit=hooks
                )
            )
            return UploadedInstall(
                **_installed(request, result).model_dump(exclude={"replicas"}),
                replicas=await _converged(request),
            )
        upgraded = await runtime_of(request).apply(
            lambda hooks: installer.upgrade(
                meta.id,
                package=path,
                upgraded_by=admin.username,
                before_commit=hooks,
                grant=grant,
            )
        )
        return UploadedUpgrade(
            **_upgraded(request, upgraded).model_dump(exclude={"replicas"}),
            replicas=await _converged(request),
        )


def _count(items: list[str], noun: str) -> str:
    return f"{len(items)} {noun}{'' if len(items) == 1 else 's'}"
