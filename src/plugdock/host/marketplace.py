"""The marketplace API, read side: the catalog with update offers, what is installed, plans.

Changes (install, upgrade, uninstall, disable/enable, upload) are in
:mod:`plugdock.host.marketplace_changes`; both share the ``/api/v1/marketplace`` prefix.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from plugdock import sdk
from plugdock.core.contract import UtcDatetime, errors
from plugdock.core.db import connect_read, current_generation
from plugdock.errors import NotFoundError, PlugdockError
from plugdock.host.state import panel_state
from plugdock.installer import Installer
from plugdock.instance.plugin_settings import installed_schema
from plugdock.instance.registry import Installation
from plugdock.operations.updates import compatibility_problem, newest_update
from plugdock.package.metadata import PLUGIN_ID_PATTERN
from plugdock.package.permissions import describe
from plugdock.runtime.replicas import ReplicaInfo, list_replicas
from plugdock.runtime.runtime import PluginRuntime
from plugdock.runtime.status import PluginStatus
from plugdock.sources.base import Catalog
from plugdock.sources.local import read_zip_metadata

# Sign-in (401/403) and input (400/404/413/422) answers follow from each route; these are
# what the catalog's source and the plans add (plugdock.core.contract).
router = APIRouter(prefix="/api/v1/marketplace", tags=["marketplace"])
_SOURCE = errors(502)
_PLAN = errors(404, 409, 502, _422="An invalid package, or input that is")

PluginId = Annotated[str, Path(pattern=PLUGIN_ID_PATTERN, description="a plugin id")]
# Exactly what parse_version takes (no leading zeros), less build metadata (see metadata.py).
_NUMBER = r"(?:0|[1-9][0-9]*)"
_PRE = rf"(?:{_NUMBER}|[0-9]*[A-Za-z-][0-9A-Za-z-]*)"
SEMVER = rf"^{_NUMBER}\.{_NUMBER}\.{_NUMBER}(?:-{_PRE}(?:\.{_PRE})*)?$"
Version = Annotated[str | None, Query(pattern=SEMVER, description="a version; default newest")]


class Permissions(BaseModel):
    permissions: list[str] = Field(
        [], description="what the plugin asks for (catalog) or was granted (installed)"
    )
    permission_descriptions: list[str] = Field(
        [], description="one sentence per permission, in the same order"
    )


def permissions_of(permissions: Iterable[str]) -> dict[str, list[str]]:
    """The two fields of :class:`Permissions` for a list of permissions."""
    listed = list(permissions)
    return {"permissions": listed, "permission_descriptions": [describe(p) for p in listed]}


class UpdateOffer(BaseModel):
    update_available: str | None = Field(None, description="newest offered version above it")
    update_compatible: bool = Field(False, description="whether this core can take it")
    update_problem: str | None = Field(None, description="why not, when it cannot")


class FullRights(BaseModel):
    full_rights: str | None = Field(
        None,
        description="set while plugins run inside the panel (PLUGDOCK_ISOLATION=inprocess): "
        "in plain words, that the plugin would run with the panel's full rights",
    )


class CatalogItem(UpdateOffer, Permissions, FullRights):
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
    enabled: bool | None = Field(None, description="null when not installed")
    state: str | None = Field(None, description="'mounted', 'failed' or 'disabled' when installed")


class PluginReplicas(BaseModel):
    converged: int = Field(description="live replicas serving this plugin as the database says")
    total: int = Field(description="live replicas")
    problems: list[str] = Field([], description="'<replica>: <why>' where it is not served")


class ReplicaOut(BaseModel):
    id: str
    host: str
    address: str | None
    pid: int
    started_at: UtcDatetime
    last_seen: UtcDatetime
    generation: int = Field(description="the plugin-set generation it serves")
    live: bool = Field(description="its heartbeat is recent")
    ready: bool = Field(description="it serves every installed plugin's code")
    converged: bool = Field(description="live, ready and serving the current generation")
    failures: dict[str, str] = Field(description="plugin id → why it is not served there")


class InstalledPlugin(UpdateOffer, Permissions):
    id: str
    name: str
    version: str
    installed_at: UtcDatetime
    installed_by: str | None
    signer: str | None
    tables: list[str]
    enabled: bool
    state: str = Field(description="'mounted', 'failed', 'disabled' or 'no backend'")
    routes: list[str] = []
    error: str | None = None
    limits: str | None = Field(
        None, description="process mode: what holds the plugin to its memory, processes, data"
    )
    replicas: PluginReplicas | None = None
    needs_configuration: str | None = Field(
        None, description="why its routes answer 503 until an admin sets its settings"
    )
    has_settings: bool = Field(False, description="it declares settings (a Settings form)")


class PlannedStep(Permissions):
    plugin_id: str
    version: str
    reason: str


class InstallPlan(FullRights):
    plugin_id: str
    version: str
    steps: list[PlannedStep] = Field(description="dependencies first, the plugin last")


class UpgradePlan(BaseModel):
    plugin_id: str
    from_version: str
    version: str
    steps: list[str] = Field(description="the package's upgrade steps that will run")
    changelog: str | None
    compatible: bool
    problem: str | None
    permissions: list[str] = Field(description="what the new version asks for")
    permissions_added: list[str] = Field(
        description="asked for beyond the installation's grant: confirm by sending them as "
        "the upgrade's 'grant'"
    )
    permissions_added_descriptions: list[str] = Field(
        description="one sentence per added permission"
    )


class TableRows(BaseModel):
    name: str
    rows: int


class UninstallPlan(BaseModel):
    plugin_id: str
    version: str
    tables: list[TableRows] = Field(description="dropped by the uninstall, with row counts")
    dependents: list[str] = Field(description="installed plugins that need it (they block it)")
    backup: bool = Field(True, description="a backup of the rows is written first by default")


def runtime_of(request: Request) -> PluginRuntime:
    return panel_state(request.app).runtime


def installer_of(request: Request) -> Installer:
    return panel_state(request.app).installer


def _offers(
    installer: Installer, catalog: Catalog, rows: list[Installation]
) -> dict[str, UpdateOffer]:
    """Per installed plugin: the newest update offered and whether this core can take it."""
    offers = {}
    installed_meta = installer.workspace.installed_metadata(rows)
    for row in rows:
        newest = newest_update(catalog, row)
        if newest is None:
            offers[row.plugin_id] = UpdateOffer()
            continue
        try:
            meta = read_zip_metadata(installer.source.fetch(row.plugin_id, newest).path)
            problem = compatibility_problem(
                meta,
                [i for i in rows if i.plugin_id != row.plugin_id],
                {k: v for k, v in installed_meta.items() if k != row.plugin_id},
            )
        except PlugdockError as exc:  # the source is down or the package is broken
            problem = f"cannot read {row.plugin_id} {newest}: {exc}"
        offers[row.plugin_id] = UpdateOffer(
            update_available=newest, update_compatible=problem is None, update_problem=problem
        )
    return offers


def _state(row: Installation, served: dict[str, PluginStatus]) -> str:
    if not row.enabled:
        return "disabled"
    status = served.get(row.plugin_id)
    return status.state if status else "no backend"


@router.get("/plugins", response_model=list[CatalogItem], responses=_SOURCE)
async def catalog(request: Request, _user: sdk.CurrentUser) -> list[CatalogItem]:
    """Every plugin the active source offers, with what is installed and what can be updated."""
    installer = installer_of(request)

    def read() -> tuple[Catalog, list[Installation], dict[str, UpdateOffer]]:
        found = installer.source.catalog()
        rows = installer.installed()
        return found, rows, _offers(installer, found, rows)

    found, rows, offers = await run_in_threadpool(read)
    installed = {i.plugin_id: i for i in rows}
    status = runtime_of(request).status()
    items = []
    for entry in found.plugins.values():
        row = installed.get(entry.id)
        items.append(
            CatalogItem(
                **{k: v for k, v in entry.__dict__.items() if k != "permissions"},
                **permissions_of(entry.permissions),
                latest=entry.latest,
                installed=row is not None,
                installed_version=row.version if row else None,
                enabled=row.enabled if row else None,
                state=_state(row, status) if row else None,
                **(offers[entry.id].model_dump() if row else {}),
                full_rights=installer.settings.full_rights_notice,
            )
        )
    return items


@router.get("/plugins/{plugin_id}", response_model=CatalogItem, responses=_SOURCE)
async def catalog_entry(
    plugin_id: PluginId, request: Request, user: sdk.CurrentUser
) -> CatalogItem:
    for item in await catalog(request, user):
        if item.id == plugin_id:
            return item
    raise NotFoundError(f"plugin {plugin_id!r} is not in the catalog")


@router.get("/installed", response_model=list[InstalledPlugin])
async def installed(request: Request, user: sdk.CurrentUser) -> list[InstalledPlugin]:
    """Installed plugins, whether each is served (or why not), and updates on offer.

    Replicas are named (host, pid) for admins only; others read "a replica".
    """
    installer = installer_of(request)
    hide = panel_state(request.app).hide

    def read() -> tuple[list[Installation], dict[str, UpdateOffer], int, list[ReplicaInfo]]:
        rows = installer.installed()
        try:
            offers = _offers(installer, installer.source.catalog(), rows)
        except PlugdockError:  # no source reachable: what is installed still shows
            offers = {}
        return rows, offers, *_replicas(installer)

    rows, offers, generation, replicas = await run_in_threadpool(read)  # one thread hop
    status = runtime_of(request).status()
    unconfigured = runtime_of(request).configured.unconfigured
    return [
        InstalledPlugin(
            id=i.plugin_id,
            name=i.name,
            version=i.version,
            installed_at=i.installed_at,
            installed_by=i.installed_by,
            signer=i.signer,
            tables=i.tables,
            **permissions_of(i.permissions),
            enabled=i.enabled,
            state=_state(i, status),
            routes=list(served.routes) if served else [],
            error=hide(served.error) if served and served.error else None,
            limits=served.limits if served else None,
            **offers.get(i.plugin_id, UpdateOffer()).model_dump(),
            replicas=_plugin_replicas(
                i.plugin_id, generation, replicas, hide=hide, named=user.is_admin
            ),
            needs_configuration=unconfigured.get(i.plugin_id),
            has_settings=bool(installed_schema(installer.settings, i.plugin_id)),
        )
        for i in rows
        for served in [status.get(i.plugin_id) if i.enabled else None]
    ]


def _replicas(installer: Installer) -> tuple[int, list[ReplicaInfo]]:
    with connect_read(installer.engine) as conn:
        generation = current_generation(conn)
    return generation, list_replicas(installer.engine, installer.settings.replica_stale_after)


def _plugin_replicas(
    plugin_id: str,
    generation: int,
    replicas: list[ReplicaInfo],
    *,
    hide: Callable[[str], str],
    named: bool,
) -> PluginReplicas:
    """How many live replicas serve ``plugin_id`` as the current generation says.

    ``named``: problems start with the replica's id (its host and pid), else "a replica".
    """
    live = [r for r in replicas if r.live]

    def name(replica: ReplicaInfo) -> str:
        return replica.id if named else "a replica"

    problems = [
        f"{name(r)}: {hide(r.failures[plugin_id])}" for r in live if plugin_id in r.failures
    ]
    problems += [
        f"{name(r)}: behind (serves generation {r.generation} of {generation})"
        for r in live
        if r.generation < generation and plugin_id not in r.failures
    ]
    converged = sum(r.generation >= generation and plugin_id not in r.failures for r in live)
    return PluginReplicas(converged=converged, total=len(live), problems=problems)


@router.get("/replicas", response_model=list[ReplicaOut])
async def replicas(request: Request, _admin: sdk.AdminUser) -> list[ReplicaOut]:
    """Every panel process sharing the database: what it serves, and whether it caught up.

    Admins only: it names each replica's host, listen address and pid. (Everyone signed in
    reads the counts per plugin in ``/installed``.)
    """
    generation, found = await run_in_threadpool(_replicas, installer_of(request))
    hide = panel_state(request.app).hide
    return [
        ReplicaOut(
            **(r.__dict__ | {"failures": {p: hide(e) for p, e in r.failures.items()}}),
            converged=r.converged(generation),
        )
        for r in found
    ]


class Isolation(FullRights):
    mode: str = Field(description="where plugin backends run: 'inprocess' or 'process'")


@router.get("/isolation", response_model=Isolation)
async def isolation(request: Request, _admin: sdk.AdminUser) -> Isolation:
    """Where plugin code runs here, and what that means (the upload dialog says it)."""
    settings = installer_of(request).settings
    return Isolation(mode=settings.isolation, full_rights=settings.full_rights_notice)


@router.get("/plan/install/{plugin_id}", response_model=InstallPlan, responses=_PLAN)
async def install_plan(
    plugin_id: PluginId, request: Request, _admin: sdk.AdminUser, version: Version = None
) -> InstallPlan:
    """What installing would install: missing dependencies first (nothing changes)."""
    installer = installer_of(request)
    planned = await run_in_threadpool(installer.plan, plugin_id, version)
    return InstallPlan(
        full_rights=installer.settings.full_rights_notice,
        plugin_id=plugin_id,
        version=planned[-1].version,
        steps=[
            PlannedStep(
                plugin_id=p.plugin_id,
                version=p.version,
                reason=p.reason,
                **permissions_of(p.permissions),
            )
            for p in planned
        ],
    )


@router.get("/plan/upgrade/{plugin_id}", response_model=UpgradePlan, responses=_PLAN)
async def upgrade_plan(
    plugin_id: PluginId, request: Request, _admin: sdk.AdminUser, version: Version = None
) -> UpgradePlan:
    """What upgrading would do: the versions, the steps, the changelog, whether it can."""
    plan = await run_in_threadpool(installer_of(request).upgrade_plan, plugin_id, version)
    return UpgradePlan(
        **plan.__dict__,
        permissions_added_descriptions=[describe(p) for p in plan.permissions_added],
    )


@router.get("/plan/uninstall/{plugin_id}", response_model=UninstallPlan, responses=_PLAN)
async def uninstall_plan(
    plugin_id: PluginId, request: Request, _admin: sdk.AdminUser
) -> UninstallPlan:
    """What uninstalling would drop (tables with row counts), and who still needs it."""
    row, tables, dependents = await run_in_threadpool(
        installer_of(request).uninstall_plan, plugin_id
    )
    return UninstallPlan(
        plugin_id=plugin_id,
        version=row.version,
        tables=[TableRows(name=t.name, rows=t.rows) for t in tables],
        dependents=dependents,
    )
