"""Checks of a package against this host: core version range, dependencies, declared code."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from plugdock.errors import PackageError, PlugdockError
from plugdock.package.metadata import PluginMetadata, version_in_range
from plugdock.version import __version__


def check_contents(meta: PluginMetadata, folder: Path) -> None:
    """The package folder holds what its metadata declares."""
    problems = []
    backend = folder / "backend"
    if meta.backend.routes and not (backend / "__init__.py").is_file():
        problems.append("backend.routes are declared but backend/__init__.py is missing")
    if meta.filters and not (backend / "__init__.py").is_file():
        problems.append("filters are declared but backend/__init__.py is missing")
    if backend.exists() and not (backend / "__init__.py").is_file():
        problems.append("backend/ must be a Python package with an __init__.py")
    health = meta.backend.health
    from plugdock.plugin_code.routes import pattern_matches  # FastAPI: not for list/doctor

    if health and not any(pattern_matches(p, health) for p in meta.backend.routes):
        problems.append(f"backend.health {health} is not under a declared backend route")
    if meta.frontend.routes and not (folder / "frontend").is_dir():
        problems.append("frontend.routes are declared but there is no frontend/ folder")
    if problems:
        raise PackageError(problems, source=f"{meta.id} {meta.version}")


def check_compatibility(meta: PluginMetadata, installed: dict[str, str]) -> None:
    """This core version and the installed plugins (id → version) satisfy the package."""
    problems = []
    if meta.requires and not version_in_range(__version__, meta.requires):
        problems.append(f"needs plugdock {meta.requires}, this is {__version__}")
    for dep_id, spec in meta.dependencies.items():
        have = installed.get(dep_id)
        if have is None:
            problems.append(f"needs plugin {dep_id} ({spec}), which is not installed")
        elif not version_in_range(have, spec):
            problems.append(f"needs plugin {dep_id} {spec}, but {have} is installed")
    if problems:
        raise PackageError(problems, source=f"{meta.id} {meta.version}")


def check_subscriptions(
    meta: PluginMetadata, declared: Iterable[str], filters: Iterable[str] = ()
) -> None:
    """Every event the plugin handles and every filter it runs is one the host declared
    (recorded in the database)."""
    problems = [
        f"handles event {name!r}, which this host does not declare"
        for name in sorted(set(meta.events) - set(declared))
    ]
    problems += [
        f"runs filter {name!r}, which this host does not declare"
        for name in sorted(set(meta.filters) - set(filters))
    ]
    if problems:
        raise PackageError(problems, source=f"{meta.id} {meta.version}")


# The panel's own API namespace; plugins declare routes elsewhere.
CORE_ROUTES = (
    "/api/v1/auth/*",
    "/api/v1/marketplace/*",
    "/api/v1/frontend/*",
    "/api/v1/users/*",
    "/api/v1/users",
    "/api/v1/dashboard",
    "/api/v1/audit",
)


def check_namespace(meta: PluginMetadata, installed: dict[str, PluginMetadata]) -> None:
    """A plugin's declared API routes are its own: not the panel's, not another plugin's.

    Checked on declarations (not on the routes a router happens to serve), so the CLI,
    which has no running panel, enforces it as well as the panel does.
    """
    from plugdock.plugin_code.routes import patterns_overlap  # FastAPI: not for list/doctor

    problems = []
    for pattern in meta.backend.routes:
        for core in CORE_ROUTES:
            if patterns_overlap(pattern, core):
                problems.append(f"backend route {pattern} overlaps the panel's own {core}")
        for other_id, other in sorted(installed.items()):
            if other_id == meta.id:
                continue
            for theirs in other.backend.routes:
                if patterns_overlap(pattern, theirs):
                    problems.append(f"backend route {pattern} overlaps {other_id}'s {theirs}")
    if problems:
        raise PackageError(problems, source=f"{meta.id} {meta.version}")


def check_dependents(plugin_id: str, version: str, installed: dict[str, PluginMetadata]) -> None:
    """Every installed plugin that depends on ``plugin_id`` accepts ``version`` of it."""
    problems = [
        f"{other} needs {plugin_id} {meta.dependencies[plugin_id]}"
        for other, meta in sorted(installed.items())
        if plugin_id in meta.dependencies
        and not version_in_range(version, meta.dependencies[plugin_id])
    ]
    if problems:
        raise PackageError(problems, source=f"{plugin_id} {version}")


def check_no_dependents(plugin_id: str, installed: dict[str, PluginMetadata]) -> None:
    """Refuse to remove a plugin that other installed plugins declare as a dependency."""
    dependents = sorted(i for i, meta in installed.items() if plugin_id in meta.dependencies)
    if dependents:
        raise PlugdockError(
            f"{plugin_id} is needed by {', '.join(dependents)}; uninstall "
            f"{'it' if len(dependents) == 1 else 'them'} first"
        )
