"""``plugdock validate``: every check the installer runs, without installing anything.

Given a :class:`CodeRunner` that includes the checks that run the plugin's code, as
install does: its backend is imported and its router must serve only the paths
``backend.routes`` declares, and its ``addon.config`` must agree with ``metadata.json``
(:mod:`plugdock.package.ui_contract`). ``plugdock validate`` passes one that runs them in a
sandbox (:mod:`plugdock.isolation.probe`), never on the host; without bubblewrap it passes
none and the report says those checks were skipped and why. The plugin server passes
none: it never runs uploaded code. ``plugdock dev`` (the author's own plugin, served in its
panel anyway) passes :data:`ON_THIS_HOST`. What can only be checked against an instance
(or inside install's transaction) is named in :data:`INSTANCE_CHECKS`; the report says
which checks it skipped.
"""

from __future__ import annotations

import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from plugdock.checks.compat import check_compatibility, check_contents, check_namespace
from plugdock.errors import PackageError, ToolNotFoundError
from plugdock.package.archive import Limits, PackageInfo, extract_package
from plugdock.package.frontend_build import run_tool
from plugdock.package.metadata import PluginMetadata
from plugdock.package.pack import pack, package_files
from plugdock.package.ui_contract import compare, read_ui
from plugdock.plugin_sql.migrations import load_migration
from plugdock.plugin_sql.upgrade_steps import check_steps, check_upgrade_schema, load_upgrade_steps

DIALECTS = ("sqlite", "postgresql", "mysql")
#: Install checks that need an instance (its database, trust store, installed plugins) or
#: run inside install's transaction: validate cannot run them and says so.
INSTANCE_CHECKS = (
    "signature policy and key binding (plugdock verify checks the signature)",
    "dependencies and routes of the installed plugins",
    "the tables are free in the database",
    "on_install and the health check (they run inside install's transaction)",
)
#: The checks that run the plugin's code, skipped without a :class:`CodeRunner`.
CODE_CHECKS = (
    "importing the backend and the routes its router serves",
    "addon.config agrees with metadata.json",
)


class CodeRunner(Protocol):
    """Where the checks that run a package's code run it."""

    def routes(self, plugin_id: str, backend_dir: Path) -> list[tuple[str, list[str]]]:
        """Import the backend in ``backend_dir``; the (path, methods) its router serves.
        Raises PackageError when it does not import."""

    def run_node(self, argv: list[str], folder: Path) -> subprocess.CompletedProcess[str]:
        """Run node's command line, whose script is in ``folder`` (the addon.config probe)."""


class _ThisHost:
    """The package's code in this process and node on this host: only for code the caller
    runs anyway (``plugdock dev``)."""

    def routes(self, plugin_id: str, backend_dir: Path) -> list[tuple[str, list[str]]]:
        from plugdock.plugin_code.loader import load_backend, unload
        from plugdock.plugin_code.routes import router_routes

        backend = load_backend(plugin_id, backend_dir, f"validate{uuid.uuid4().hex[:8]}")
        try:
            served = router_routes(backend.router) if backend.router is not None else []
            return [(r.path, sorted(r.methods)) for r in served]
        finally:
            unload(backend)

    def run_node(self, argv: list[str], folder: Path) -> subprocess.CompletedProcess[str]:
        return run_tool(argv, None, folder, folder)


ON_THIS_HOST: CodeRunner = _ThisHost()


@dataclass(frozen=True)
class ValidationReport:
    info: PackageInfo
    tables: tuple[str, ...]
    dialects: tuple[str, ...]
    steps: tuple[str, ...] = ()  # versions with an upgrade step (migrations/versions/)
    upgraded_from: str | None = None  # the older version checked with --upgrade-from
    skipped: tuple[str, ...] = INSTANCE_CHECKS  # install checks this run did not make


def validate_package(
    path: Path,
    limits: Limits,
    *,
    upgrade_from: Path | None = None,
    code: CodeRunner | None = None,
    no_code_because: str = "not asked to run the package's code",
) -> ValidationReport:
    """Check a package zip, or a plugin folder as it would be packed; raises PackageError.

    With ``upgrade_from`` (an older package of the same plugin, zip or folder), also check
    that its tables plus this package's upgrade steps give the schema this package installs.
    With ``code``, also the checks that run the plugin's code, there (see the module doc);
    without, they are reported skipped, ``no_code_because``.
    """
    with tempfile.TemporaryDirectory(prefix="plugdock-validate-") as scratch:
        scratch_dir = Path(scratch)
        info, unpacked = _open(path, scratch_dir, "new", limits)
        check_contents(info.metadata, unpacked)
        check_compatibility(info.metadata.model_copy(update={"dependencies": {}}), {})
        check_namespace(info.metadata, {})  # the panel's own API (installed plugins: install)
        skipped = list(INSTANCE_CHECKS)
        if code is not None:
            _check_backend(info.metadata, unpacked, code)
            _check_ui(info.metadata, unpacked, skipped, code)
        else:
            skipped += [f"{check} (skipped: {no_code_because})" for check in CODE_CHECKS]
        tables: tuple[str, ...] = ()
        for dialect in DIALECTS:
            tables = load_migration(unpacked / "migrations", dialect).tables
        steps = check_steps(unpacked / "migrations", info.metadata.version)
        upgraded_from = None
        if upgrade_from is not None:
            upgraded_from = _check_upgrade(upgrade_from, info, unpacked, scratch_dir, limits)
        return ValidationReport(
            info=info,
            tables=tables,
            dialects=DIALECTS,
            steps=tuple(steps),
            upgraded_from=upgraded_from,
            skipped=tuple(skipped),
        )


def _check_backend(meta: PluginMetadata, unpacked: Path, code: CodeRunner) -> None:
    """Import the backend where ``code`` runs it and check what its router serves."""
    if not (unpacked / "backend" / "__init__.py").is_file():
        return
    from plugdock.plugin_code.routes import ServedRoute, check_declared

    served = code.routes(meta.id, unpacked / "backend")
    routes = [ServedRoute(path, frozenset(methods)) for path, methods in served]
    check_declared(meta.id, routes, meta.backend.routes)


def _check_ui(meta: PluginMetadata, unpacked: Path, skipped: list[str], code: CodeRunner) -> None:
    """Compare a packed zip's addon.config with its metadata, when the tools are here."""
    try:
        ui = read_ui(unpacked, package_files(unpacked), run_node=code.run_node)
    except ToolNotFoundError as exc:  # the machine lacks esbuild or node: say so, go on
        skipped.append(f"{CODE_CHECKS[1]} ({exc.problems[0].split(':')[0]})")
        return
    problems = compare(meta.frontend, ui)
    if problems:
        raise PackageError(problems, source=f"{meta.id} {meta.version}")


def _open(path: Path, scratch: Path, name: str, limits: Limits) -> tuple[PackageInfo, Path]:
    if path.is_dir():  # addon.config is compared on the packed copy, where code may run
        path = pack(path, scratch / f"packed-{name}", compare_ui=False)
    unpacked = scratch / name
    return extract_package(path, unpacked, limits), unpacked


def _check_upgrade(
    older: Path, info: PackageInfo, unpacked: Path, scratch: Path, limits: Limits
) -> str:
    old_info, old_unpacked = _open(older, scratch, "old", limits)
    old, new = old_info.metadata, info.metadata
    if old.id != new.id:
        raise PackageError(f"--upgrade-from is a package of {old.id}, not of {new.id}")
    if old.semver >= new.semver:
        raise PackageError(f"--upgrade-from is version {old.version}, not older than {new.version}")
    for dialect in DIALECTS:
        owned = load_migration(old_unpacked / "migrations", dialect).tables
        load_upgrade_steps(
            unpacked / "migrations",
            dialect,
            from_version=old.version,
            to_version=new.version,
            owned_tables=owned,
        )
    check_upgrade_schema(
        old_unpacked / "migrations", unpacked / "migrations", old.version, new.version
    )
    return old.version
