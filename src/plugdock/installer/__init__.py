"""The installer: the one entry point the CLI and the panel use for every plugin operation.

Each operation is its own module in :mod:`plugdock.operations`; this facade holds the
instance's lock around them, after finishing any operation a crash left behind::

    installer = Installer(load_settings())
    installer.install("ai_chatbot")                # dependencies first, all or nothing
    installer.upgrade("ai_chatbot")                # to the newest version, data carried forward
    installer.disable("ai_chatbot"); installer.enable("ai_chatbot")
    installer.uninstall("ai_chatbot", backup=True) # rows kept in instance/backups/
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine

from plugdock.config import Settings
from plugdock.core.fsutil import make_private_dir, move, remove_tree
from plugdock.errors import PlugdockError
from plugdock.instance.registry import Installation
from plugdock.operations import codefiles
from plugdock.operations.workspace import Workspace
from plugdock.package.metadata import parse_version
from plugdock.plugin_code.hooks import BeforeCommit, check_and_run_hooks
from plugdock.sources import Source, parse_requirement
from plugdock.sources.local import read_zip_metadata

# Each method imports the operation it runs: reads (``plugdock list``, ``doctor``, the
# panel's listings) need neither the SQL checks (sqlglot), the signature checks
# (cryptography) nor FastAPI, and an install no backup or upgrade code.
if TYPE_CHECKING:
    from plugdock.operations.backup import BackupInfo, TableCount
    from plugdock.operations.install import InstallResult
    from plugdock.operations.plan import Installed, PlannedInstall
    from plugdock.operations.uninstall import UninstallResult
    from plugdock.operations.updates import UpdatePlan
    from plugdock.operations.upgrade import Grant, UpgradeResult

__all__ = [
    "CODE_KINDS",
    "InstallResult",
    "Installer",
    "PlannedInstall",
    "UninstallResult",
    "UpgradeResult",
]

CODE_KINDS = codefiles.CODE_KINDS
log = logging.getLogger("plugdock.installer")


class Installer(Workspace):
    """Installs, upgrades, disables and uninstalls plugins in one instance."""

    def __init__(
        self, settings: Settings, *, engine: Engine | None = None, source: Source | None = None
    ) -> None:
        super().__init__(settings, engine=engine, source=source)

    @contextmanager
    def locked(self) -> Iterator[str | None]:
        """Hold the instance's operation lock, after finishing any operation a crash left behind.

        Yields what recovery did, if anything.
        """
        from plugdock.instance.locking import operation_lock
        from plugdock.operations.materialize import sync_code
        from plugdock.operations.recovery import recover

        with operation_lock(self.settings.lock_path, self.engine, self.settings.lock_timeout):
            outcome = recover(self)
            # Code another replica installed, so the operation reads this machine's copy.
            sync_code(self, take_lock=False, remove_orphans=False)
            yield outcome

    def recover(self) -> str | None:
        """Roll back or finish an operation a crash interrupted; says what was done, if anything."""
        with self.locked() as outcome:
            return outcome

    # ----------------------------------------------------------------- install

    def plan(self, plugin_id: str, version: str | None = None) -> list[PlannedInstall]:
        """What installing ``plugin_id`` would install, dependencies first (nothing changes)."""
        from plugdock.operations.plan import plan_install

        return plan_install(self, plugin_id, version)

    def install(
        self,
        requirement: str | Path,
        *,
        installed_by: str | None = None,
        before_commit: BeforeCommit | None = check_and_run_hooks,
        restore: Path | None = None,
    ) -> InstallResult:
        """Install ``id``, ``id@version`` from the source (missing dependencies first), or a file.

        ``before_commit(ctx)`` runs inside each install's transaction once tables and row
        exist (by default: import the plugin, check its routes, run its ``on_install``);
        raising rolls that install back, and the dependencies this call installed are
        uninstalled again. ``restore`` names a backup whose rows replace the new tables'.
        """
        from plugdock.operations.install import InstallResult
        from plugdock.operations.plan import plan_install, read_installed
        from plugdock.operations.uninstall import uninstall as uninstall_one

        with self.locked():
            backup = None
            if restore is not None:
                from plugdock.operations.backup import read_backup

                backup = read_backup(restore)
            if isinstance(requirement, Path):
                if backup is not None:  # a file is installed as it is: the backup's very version
                    meta = read_zip_metadata(requirement)
                    if meta.id != backup.plugin_id:
                        raise PlugdockError(
                            f"{restore} is a backup of {backup.plugin_id}, not {meta.id}"
                        )
                    if meta.version != backup.version:
                        raise PlugdockError(
                            f"{restore} holds {meta.id} {backup.version}, {requirement.name} is "
                            f"{meta.version}; restore from the source ({meta.id}@{meta.version})"
                            " to carry the rows through its upgrade steps"
                        )
                return self._install_with_backup(requirement, installed_by, before_commit, backup)
            plugin_id, version = parse_requirement(requirement)
            later = None  # restoring into a later version: the backup's, then its upgrade steps
            if backup is not None:
                if backup.plugin_id != plugin_id:
                    raise PlugdockError(
                        f"{restore} is a backup of {backup.plugin_id}, not {plugin_id}"
                    )
                if version and parse_version(version) < parse_version(backup.version):
                    raise PlugdockError(
                        f"{restore} holds {plugin_id} {backup.version}; it cannot go into the "
                        f"older {version}"
                    )
                if version and version != backup.version:
                    later = version
                version = backup.version
            known = read_installed(self)  # the first install sees what the plan saw
            planned = plan_install(self, plugin_id, version, known)
            done: list[InstallResult] = []
            try:
                for item in planned:
                    target = f"{item.plugin_id}@{item.version}"
                    use = backup if item.plugin_id == plugin_id else None
                    done.append(
                        self._install_with_backup(
                            target, installed_by, before_commit, use, None if done else known
                        )
                    )
                upgraded = None
                if later is not None:  # a failed upgrade takes the restored install back too
                    from plugdock.operations.upgrade import upgrade

                    upgraded = upgrade(
                        self,
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
                            self,
                            result.plugin_id,
                            uninstalled_by=installed_by,
                            before_commit=before_commit,
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
            return InstallResult(
                **{**result.__dict__, "dependencies": [r.plugin_id for r in done[:-1]]}
            )

    def _install_with_backup(
        self,
        requirement: str | Path,
        installed_by: str | None,
        before_commit: BeforeCommit | None,
        backup: BackupInfo | None,
        known: Installed | None = None,
    ) -> InstallResult:
        from plugdock.operations.install import install as install_one

        after = None
        if backup is not None:
            from plugdock.operations.backup import restore_rows

            after = lambda conn, migration: restore_rows(conn, backup, migration)  # noqa: E731
        return install_one(
            self,
            requirement,
            installed_by=installed_by,
            before_commit=before_commit,
            after_hooks=after,
            known=known,
        )

    # ----------------------------------------------------------------- upgrade

    def upgrade(
        self,
        plugin_id: str,
        version: str | None = None,
        *,
        package: Path | None = None,
        upgraded_by: str | None = None,
        before_commit: BeforeCommit | None = check_and_run_hooks,
        grant: Grant = (),
    ) -> UpgradeResult:
        """Upgrade ``plugin_id`` to ``version`` (default: the newest), or to a package file.

        A version asking for permissions beyond the installation's grant is refused
        (``PermissionsNotGrantedError``, nothing changes) unless ``grant`` lists them or is
        ``"all"``.
        """
        parse_requirement(plugin_id)
        from plugdock.operations.upgrade import upgrade

        requirement: str | Path = package or (f"{plugin_id}@{version}" if version else plugin_id)
        with self.locked():
            return upgrade(
                self,
                plugin_id,
                requirement,
                upgraded_by=upgraded_by,
                before_commit=before_commit,
                grant=grant,
            )

    def upgrade_plan(self, plugin_id: str, version: str | None = None) -> UpdatePlan:
        """What upgrading would do: versions, steps, changelog, and whether this core can."""
        from plugdock.operations.updates import plan_upgrade

        return plan_upgrade(self, plugin_id, version)

    # ---------------------------------------------------------- disable/enable

    def disable(self, plugin_id: str, *, actor: str | None = None) -> None:
        """Stop serving a plugin everywhere; its code, tables and rows stay."""
        from plugdock.operations.toggle import set_plugin_enabled

        with self.locked():
            set_plugin_enabled(self, plugin_id, False, actor=actor)

    def enable(self, plugin_id: str, *, actor: str | None = None) -> None:
        """Serve a disabled plugin again; no SQL runs."""
        from plugdock.operations.toggle import set_plugin_enabled

        with self.locked():
            set_plugin_enabled(self, plugin_id, True, actor=actor)

    # --------------------------------------------------------------- uninstall

    def uninstall_plan(self, plugin_id: str) -> tuple[Installation, list[TableCount], list[str]]:
        """What uninstalling would drop (tables with row counts) and who depends on it."""
        from plugdock.operations.backup import count_rows
        from plugdock.operations.uninstall import installed_or_refuse

        installation = installed_or_refuse(self, plugin_id)
        dependents = sorted(
            other
            for other, meta in self.installed_metadata().items()
            if plugin_id in meta.dependencies
        )
        return installation, count_rows(self, installation.tables), dependents

    def uninstall(
        self,
        plugin_id: str,
        *,
        uninstalled_by: str | None = None,
        before_commit: BeforeCommit | None = check_and_run_hooks,
        backup: bool = False,
    ) -> UninstallResult:
        """Run the plugin's down.sql, delete its code, registry entry and row.

        ``backup`` first writes its rows to ``instance/backups/``. ``before_commit(ctx)``
        runs inside the transaction (by default: the plugin's ``on_uninstall``); raising
        rolls everything back.
        """
        from plugdock.operations.uninstall import uninstall as uninstall_one

        with self.locked():
            return uninstall_one(
                self,
                plugin_id,
                uninstalled_by=uninstalled_by,
                before_commit=before_commit,
                backup=backup,
            )

    # ------------------------------------------------------------------ doctor

    def restore_code(self, installation: Installation) -> None:
        """Put back an installed plugin's files from the very package it was installed from.

        Call with the lock held. The package is fetched again and must have the recorded
        sha256, so a changed package on the source can never slip in this way.
        """
        import uuid

        from plugdock.package.archive import extract_package

        staging = self.settings.staging_dir / uuid.uuid4().hex
        try:
            fetched = self.source.fetch(installation.plugin_id, installation.version)
            make_private_dir(staging)
            info = extract_package(fetched.path, staging / "package", self.limits)
            if info.sha256 != installation.package_sha256:
                raise PlugdockError(
                    f"the source's {installation.plugin_id} {installation.version} is not the "
                    "package that was installed (sha256 differs)"
                )
            unpacked = staging / "package"
            codefiles.gather_manifest(unpacked, installation.package_sha256)
            for kind in CODE_KINDS:
                remove_tree(self.code_path(kind, installation.plugin_id))
                if (unpacked / kind).is_dir():
                    move(unpacked / kind, self.code_path(kind, installation.plugin_id))
        finally:
            remove_tree(staging)
