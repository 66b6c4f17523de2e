"""Is there an update for an installed plugin, can this core take it, and what would it do."""

from __future__ import annotations

import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from plugdock.checks.compat import check_compatibility, check_dependents
from plugdock.errors import ConflictError, NotInstalledError, PackageError
from plugdock.instance.registry import Installation
from plugdock.operations.workspace import Workspace
from plugdock.package.changelog import read_changelog
from plugdock.package.metadata import PluginMetadata, parse_version
from plugdock.package.permissions import added
from plugdock.sources.base import Catalog
from plugdock.sources.local import read_zip_metadata


@dataclass(frozen=True)
class UpdatePlan:
    plugin_id: str
    from_version: str
    version: str
    compatible: bool
    problem: str | None
    steps: list[str] = field(default_factory=list)
    changelog: str | None = None
    permissions: list[str] = field(default_factory=list)  # what the new version asks for
    permissions_added: list[str] = field(default_factory=list)  # beyond the grant: to confirm


def newest_update(catalog: Catalog, installation: Installation) -> str | None:
    """The newest version the source offers above the installed one."""
    entry = catalog.plugins.get(installation.plugin_id)
    if entry is None:
        return None
    installed = parse_version(installation.version)
    newer = [v for v in entry.versions if parse_version(v) > installed]
    return newer[0] if newer else None


def compatibility_problem(
    meta: PluginMetadata, installed: list[Installation], installed_meta: dict[str, PluginMetadata]
) -> str | None:
    """Why this core and the other installed plugins cannot take ``meta``, or None.

    The checks an upgrade runs (:func:`~plugdock.checks.compat.check_compatibility` and
    :func:`~plugdock.checks.compat.check_dependents`), with their problems as one sentence.
    """
    problems = []
    for check in (
        lambda: check_compatibility(meta, {i.plugin_id: i.version for i in installed}),
        lambda: check_dependents(meta.id, meta.version, installed_meta),
    ):
        try:
            check()
        except PackageError as error:
            problems += error.problems
    return "; ".join(problems) or None


def plan_upgrade(workspace: Workspace, plugin_id: str, version: str | None = None) -> UpdatePlan:
    """The upgrade of ``plugin_id`` to ``version`` (default: the newest), as it would run."""
    installation = workspace.get(plugin_id)
    if installation is None:
        raise NotInstalledError(f"{plugin_id} is not installed")
    catalog = workspace.source.catalog()
    target = (
        catalog.resolve(plugin_id, version) if version else newest_update(catalog, installation)
    )
    if target is None:
        raise ConflictError(f"{plugin_id} {installation.version} is the newest version offered")
    fetched = workspace.source.fetch(plugin_id, target)
    meta = read_zip_metadata(fetched.path)
    installed = workspace.installed()
    problem = None
    if parse_version(target) <= parse_version(installation.version):
        problem = f"{target} is not newer than the installed {installation.version}"
    else:
        others = {
            k: v for k, v in workspace.installed_metadata(installed).items() if k != plugin_id
        }
        problem = compatibility_problem(
            meta, [i for i in installed if i.plugin_id != plugin_id], others
        )
    steps = _step_versions(fetched.path, installation.version, target)
    changelog = read_changelog(fetched.path)
    return UpdatePlan(
        plugin_id=plugin_id,
        from_version=installation.version,
        version=target,
        compatible=problem is None,
        problem=problem,
        steps=steps,
        changelog=changelog,
        permissions=list(meta.permissions),
        permissions_added=added(installation.permissions, meta.permissions),
    )


def _step_versions(path: Path, from_version: str, to_version: str) -> list[str]:
    """The upgrade step versions in (from, to] a package zip holds, in order."""
    low, high = parse_version(from_version), parse_version(to_version)
    found: set[str] = set()
    with zipfile.ZipFile(path) as archive:
        for name in archive.namelist():
            parts = name.split("/")
            if (
                len(parts) >= 4
                and parts[:2] == ["migrations", "versions"]
                and parts[-1] == "up.sql"
            ):
                try:
                    if low < parse_version(parts[2]) <= high:
                        found.add(parts[2])
                except ValueError:
                    continue
    return sorted(found, key=parse_version)
