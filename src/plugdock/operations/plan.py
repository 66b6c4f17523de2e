"""Which plugins an install needs, at which versions, in which order.

Each missing dependency gets the highest version the source offers that satisfies every
range asked of it (and this core's version), picking again until nothing changes; only the
ranges the versions picked now ask count (a plugin picked lower takes back what its
higher version asked). An installed dependency is never changed by an install: a
range it does not meet is a conflict to resolve by upgrading it first. Cycles and ranges
nothing satisfies are refused with a message that names them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from plugdock.errors import PackageError
from plugdock.instance.registry import Installation
from plugdock.operations.workspace import Workspace
from plugdock.package.metadata import PluginMetadata, version_in_range
from plugdock.sources.base import Catalog, means_newest
from plugdock.sources.local import read_zip_metadata
from plugdock.version import __version__

_MAX_ROUNDS = 50


@dataclass(frozen=True)
class PlannedInstall:
    plugin_id: str
    version: str
    reason: str  # "requested", or "needed by x (>=1.2.0)"
    permissions: tuple[str, ...] = ()  # what its package asks for: granted by installing
    jobs: tuple[str, ...] = ()  # its scheduled jobs, in words: "reminders: 0 9 * * * (UTC)"


# The installed plugins' rows and their metadata.json, as one operation reads them once.
Installed = tuple[list[Installation], dict[str, PluginMetadata]]


def read_installed(workspace: Workspace) -> Installed:
    installations = workspace.installed()
    return installations, workspace.installed_metadata(installations)


class PlanError(PackageError):
    """No set of versions satisfies the request (a cycle, or ranges nothing meets)."""


def plan_install(
    workspace: Workspace,
    plugin_id: str,
    version: str | None = None,
    known: Installed | None = None,
) -> list[PlannedInstall]:
    """The installs ``plugin_id`` (at ``version``) needs, dependencies first, itself last.

    ``known``: the installations and their metadata, if the caller read them already.
    """
    installations, installed_meta = known or read_installed(workspace)
    installed = {i.plugin_id: i.version for i in installations}
    catalog = workspace.source.catalog()
    metadata_cache: dict[tuple[str, str], PluginMetadata] = {}

    def metadata(pid: str, ver: str) -> PluginMetadata:
        if pid in installed_meta and installed[pid] == ver:
            return installed_meta[pid]
        if (pid, ver) not in metadata_cache:
            fetched = workspace.source.fetch(pid, ver)
            metadata_cache[(pid, ver)] = fetched.metadata or read_zip_metadata(fetched.path)
        return metadata_cache[(pid, ver)]

    # plugin id → [(range, who asked, at which version of who)]
    wanted: dict[str, list[tuple[str, str, str]]] = {plugin_id: []}
    pinned = catalog.resolve(plugin_id, version)
    if means_newest(version):  # not asked for by number: the newest this core can take
        fits = (
            v for v in catalog.plugins[plugin_id].versions if _fits_core(metadata(plugin_id, v))
        )
        pinned = next(fits, pinned)  # none fits: the newest, refused below with the reason
    chosen: dict[str, str] = {}
    for _ in range(_MAX_ROUNDS):
        before = {k: list(v) for k, v in wanted.items()}
        previous, chosen = chosen, {}
        edges: dict[str, list[str]] = {}
        queue = [plugin_id]
        while queue:
            pid = queue.pop(0)
            if pid in chosen:
                continue
            # Only what the versions chosen now ask: a plugin picked again at another
            # version takes back the ranges its earlier pick asked for.
            ranges = [
                (spec, who)
                for spec, who, at in wanted.setdefault(pid, [])
                if chosen.get(who, previous.get(who)) == at
            ]
            if pid == plugin_id:
                chosen[pid] = pinned
                meta = metadata(pid, pinned)
                _check_core(meta)
            elif pid in installed:
                for spec, who in ranges:
                    if not version_in_range(installed[pid], spec):
                        raise PlanError(
                            f"{who} needs {pid} {spec}, but {installed[pid]} is installed; "
                            f"upgrade {pid} first"
                        )
                chosen[pid] = installed[pid]
                meta = metadata(pid, installed[pid])
            else:
                chosen[pid], meta = _pick(pid, ranges, catalog, metadata)
            edges[pid] = sorted(meta.dependencies)
            for dep, spec in sorted(meta.dependencies.items()):
                if (spec, pid, chosen[pid]) not in wanted.get(dep, []):
                    wanted.setdefault(dep, []).append((spec, pid, chosen[pid]))
                queue.append(dep)
        wanted = {
            pid: [asked for asked in ranges if chosen.get(asked[1]) == asked[2]]
            for pid, ranges in wanted.items()
        }
        if wanted == before:
            break
    else:  # pragma: no cover - picks only go down as ranges narrow, so this settles
        raise PlanError(f"could not settle the dependencies of {plugin_id}")
    for spec, who, _at in wanted.get(plugin_id, []):
        if not version_in_range(pinned, spec):
            raise PlanError(f"{who} needs {plugin_id} {spec}, but {pinned} is being installed")
    order = _dependencies_first(plugin_id, edges)
    return [
        PlannedInstall(
            pid,
            chosen[pid],
            "requested"
            if pid == plugin_id
            else "needed by " + ", ".join(f"{who} ({spec})" for spec, who, _at in wanted[pid]),
            tuple(metadata(pid, chosen[pid]).permissions),
            tuple(
                f"{job.id}: {job.cron} ({job.timezone}) runs {job.handler}"
                for job in metadata(pid, chosen[pid]).jobs
            ),
        )
        for pid in order
        if pid == plugin_id or pid not in installed
    ]


def _fits_core(meta: PluginMetadata) -> bool:
    return not meta.requires or version_in_range(__version__, meta.requires)


def _check_core(meta: PluginMetadata) -> None:
    if not _fits_core(meta):
        raise PlanError(
            f"{meta.id} {meta.version} needs plugdock {meta.requires}, this is {__version__}"
        )


def _pick(
    pid: str,
    ranges: list[tuple[str, str]],
    catalog: Catalog,
    metadata: Callable[[str, str], PluginMetadata],
) -> tuple[str, PluginMetadata]:
    """The newest version of ``pid`` that meets every range and this core."""
    entry = catalog.plugins.get(pid)
    asked = ", ".join(f"{spec} (needed by {who})" for spec, who in ranges)
    if entry is None:
        raise PlanError(f"{pid} is needed ({asked}) but the source does not offer it")
    for candidate in entry.versions:  # newest first
        if all(version_in_range(candidate, spec) for spec, _ in ranges):
            meta = metadata(pid, candidate)
            if not _fits_core(meta):
                continue
            return candidate, meta
    raise PlanError(
        f"no version of {pid} satisfies {asked}; the source offers {', '.join(entry.versions)}"
    )


def _dependencies_first(root: str, edges: dict[str, list[str]]) -> list[str]:
    """Post-order from ``root``; a dependency cycle is refused, named in order."""
    order: list[str] = []
    done: set[str] = set()

    def visit(pid: str, path: list[str]) -> None:
        if pid in path:
            cycle = [*path[path.index(pid) :], pid]
            raise PlanError(f"dependency cycle: {' → '.join(cycle)}")
        if pid in done:
            return
        for dep in edges.get(pid, []):
            visit(dep, [*path, pid])
        done.add(pid)
        order.append(pid)

    visit(root, [])
    return order
