"""Installing a plugin with its missing dependencies, all or nothing, and from a backup.

:func:`plugdock.operations.install.install` installs one package in one transaction. An
install the admin asks for may be several: the dependencies the plan picked, first, then
the plugin; if any of them fails, the ones this call installed are uninstalled again.
With ``restore`` the plugin's new tables get a backup's rows: installed at the backup's
version, then upgraded through its steps when a later version was asked for, so the rows
go through the same upgrade SQL as rows that were never removed.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from plugdock.errors import PlugdockError
from plugdock.operations.install import InstallResult
from plugdock.operations.install import install as install_one
from plugdock.operations.plan import plan_install, read_installed
from plugdock.operations.uninstall import uninstall as uninstall_one
from plugdock.operations.workspace import Workspace
from plugdock.package.metadata import parse_version
from plugdock.plugin_code.hooks import BeforeCommit
from plugdock.sources import parse_requirement
from plugdock.sources.local import read_zip_metadata

if TYPE_CHECKING:
    from plugdock.operations.backup import BackupInfo
    from plugdock.operations.plan import Installed

log = logging.getLogger("plugdock.installer")


def install_with_dependencies(
    ws: Workspace,
    requirement: str | Path,
    *,
    installed_by: str | None,
    before_commit: BeforeCommit | None,
    restore: Path | None = None,
) -> InstallResult:
    """Install ``id``, ``id@version`` (missing dependencies first) or a package file.

    Call with the operation lock held. ``restore`` names a backup whose rows replace the
    new tables'.
    """
    backup = None
    if restore is not None:
        from plugdock.operations.backup import read_backup

        backup = read_backup(restore)
    if isinstance(requirement, Path):
        if backup is not None:  # a file is installed as it is: the backup's very version
            _check_file_matches(requirement, backup, restore)
        return _install_one(ws, requirement, installed_by, before_commit, backup)
    plugin_id, version = parse_requirement(requirement)
    later = None  # restoring into a later version: the backup's, then its upgrade steps
    if backup is not None:
        if backup.plugin_id != plugin_id:
            raise PlugdockError(f"{restore} is a backup of {backup.plugin_id}, not {plugin_id}")
        if version and parse_version(version) < parse_version(backup.version):
            raise PlugdockError(
                f"{restore} holds {plugin_id} {backup.version}; it cannot go into the "
                f"older {version}"
            )
        if version and version != backup.version:
            later = version
        version = backup.version
    known = read_installed(ws)  # the first install sees what the plan saw
    planned = plan_install(ws, plugin_id, version, known)
    done: list[InstallResult] = []
    try:
        for item in planned:
            target = f"{item.plugin_id}@{item.version}"
            use = backup if item.plugin_id == plugin_id else None
            done.append(
                _install_one(ws, target, installed_by, before_commit, use, None if done else known)
            )
        upgraded = None
        if later is not None:  # a failed upgrade takes the restored install back too
            from plugdock.operations.upgrade import upgrade

            upgraded = upgrade(
                ws,
                plugin_id,
                f"{plugin_id}@{later}",
                upgraded_by=installed_by,
                before_commit=before_commit,
                grant="all",  # an install: the admin saw the later version's list
            )
    except BaseException:
        for result in reversed(done):  # all or nothing: the dependencies go again
            try:
                uninstall_one(
                    ws, result.plugin_id, uninstalled_by=installed_by, before_commit=before_commit
                )
            except Exception:
                log.exception("could not remove dependency %s again", result.plugin_id)
        raise
    result = done[-1]
    if upgraded is not None:
        result = replace(
            result,
            name=upgraded.name,
            version=upgraded.version,
            tables=upgraded.tables,
            backend_routes=upgraded.backend_routes,
            frontend_routes=upgraded.frontend_routes,
            package_sha256=upgraded.package_sha256,
            signer=upgraded.signer,
            warnings=[*result.warnings, *upgraded.warnings],
            permissions=upgraded.permissions,
        )
    return InstallResult(**{**result.__dict__, "dependencies": [r.plugin_id for r in done[:-1]]})


def _check_file_matches(package: Path, backup: BackupInfo, restore: Path | None) -> None:
    meta = read_zip_metadata(package)
    if meta.id != backup.plugin_id:
        raise PlugdockError(f"{restore} is a backup of {backup.plugin_id}, not {meta.id}")
    if meta.version != backup.version:
        raise PlugdockError(
            f"{restore} holds {meta.id} {backup.version}, {package.name} is "
            f"{meta.version}; restore from the source ({meta.id}@{meta.version})"
            " to carry the rows through its upgrade steps"
        )


def _install_one(
    ws: Workspace,
    requirement: str | Path,
    installed_by: str | None,
    before_commit: BeforeCommit | None,
    backup: BackupInfo | None,
    known: Installed | None = None,
) -> InstallResult:
    after = None
    if backup is not None:
        from plugdock.operations.backup import restore_rows

        after = lambda conn, migration: restore_rows(conn, backup, migration)  # noqa: E731
    return install_one(
        ws,
        requirement,
        installed_by=installed_by,
        before_commit=before_commit,
        after_hooks=after,
        known=known,
    )
