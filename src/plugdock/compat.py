"""Checks of a package against this host: core version range, dependencies, declared code."""

from __future__ import annotations

from pathlib import Path

from plugdock import __version__
from plugdock.errors import PackageError
from plugdock.package.metadata import PluginMetadata, version_in_range


def check_contents(meta: PluginMetadata, folder: Path) -> None:
    """The package folder holds what its metadata declares."""
    problems = []
    backend = folder / "backend"
    if meta.backend.routes and not (backend / "__init__.py").is_file():
        problems.append("backend.routes are declared but backend/__init__.py is missing")
    if backend.exists() and not (backend / "__init__.py").is_file():
        problems.append("backend/ must be a Python package with an __init__.py")
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
