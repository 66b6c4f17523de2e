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
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine

from plugdock.config import Settings
from plugdock.instance.registry import Installation
from plugdock.operations import codefiles
from plugdock.operations.workspace import Workspace
from plugdock.plugin_code.hook_time import abort_hooks
from plugdock.plugin_code.hooks import BeforeCommit, check_and_run_hooks
from plugdock.sources import Source, parse_requirement

# Each method imports the operation it runs: reads (``plugdock list``, ``doctor``, the
# panel's listings) need neither the SQL checks (sqlglot), the signature checks
# (cryptography) nor FastAPI, and an install no backup or upgrade code.
if TYPE_CHECKING:
    from plugdock.operations.backup import TableCount
    from plugdock.operations.install import InstallResult
    from plugdock.operations.plan import PlannedInstall
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


class Installer:
    """Installs, upgrades, disables and uninstalls plugins in one instance."""

    def __init__(
        self, settings: Settings, *, engine: Engine | None = None, source: Source | None = None
    ) -> None:
        self.workspace = Workspace(settings, engine=engine, source=source)

    @property
    def settings(self) -> Settings:
        return self.workspace.settings

    @property
    def engine(self) -> Engine:
        return self.workspace.engine

    @property
    def source(self) -> Source:
        return self.workspace.source

    def installed(self) -> list[Installation]:
        """Every installed plugin, from the database."""
        return self.workspace.installed()

    def get(self, plugin_id: str) -> Installation | None:
        """One installed plugin, or None."""
        return self.workspace.get(plugin_id)

    @contextmanager
    def locked(self) -> Iterator[str | None]:
        """Hold the instance's operation lock, after finishing any operation a crash left behind.

        Yields what recovery did, if anything.
        """
        from plugdock.instance.locking import operation_lock
        from plugdock.operations.materialize import sync_code
        from plugdock.operations.recovery import recover

        with operation_lock(self.settings.lock_path, self.engine, self.settings.lock_timeout):
            outcome = recover(self.workspace)
            # Code another replica installed, so the operation reads this machine's copy.
            sync_code(self.workspace, take_lock=False, remove_orphans=False)
            yield outcome

    def recover(self) -> str | None:
        """Roll back or finish an operation a crash interrupted; says what was done, if anything."""
        with self.locked() as outcome:
            return outcome

    # ----------------------------------------------------------------- install

    def plan(self, plugin_id: str, version: str | None = None) -> list[PlannedInstall]:
        """What installing ``plugin_id`` would install, dependencies first (nothing changes)."""
        from plugdock.operations.plan import plan_install

        return plan_install(self.workspace, plugin_id, version)

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
        from plugdock.operations.install_set import install_with_dependencies

        with self.locked():
            return install_with_dependencies(
                self.workspace,
                requirement,
                installed_by=installed_by,
                before_commit=before_commit,
                restore=restore,
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
                self.workspace,
                plugin_id,
                requirement,
                upgraded_by=upgraded_by,
                before_commit=before_commit,
                grant=grant,
            )

    def upgrade_plan(self, plugin_id: str, version: str | None = None) -> UpdatePlan:
        """What upgrading would do: versions, steps, changelog, and whether this core can."""
        from plugdock.operations.updates import plan_upgrade

        return plan_upgrade(self.workspace, plugin_id, version)

    # ---------------------------------------------------------- disable/enable

    def disable(self, plugin_id: str, *, actor: str | None = None) -> None:
        """Stop serving a plugin everywhere; its code, tables and rows stay."""
        from plugdock.operations.toggle import set_plugin_enabled

        with self.locked():
            set_plugin_enabled(self.workspace, plugin_id, False, actor=actor)

    def enable(self, plugin_id: str, *, actor: str | None = None) -> None:
        """Serve a disabled plugin again; no SQL runs."""
        from plugdock.operations.toggle import set_plugin_enabled

        with self.locked():
            set_plugin_enabled(self.workspace, plugin_id, True, actor=actor)

    # --------------------------------------------------------------- uninstall

    def uninstall_plan(self, plugin_id: str) -> tuple[Installation, list[TableCount], list[str]]:
        """What uninstalling would drop (tables with row counts) and who depends on it."""
        from plugdock.operations.backup import count_rows
        from plugdock.operations.uninstall import installed_or_refuse

        installation = installed_or_refuse(self.workspace, plugin_id)
        dependents = sorted(
            other
            for other, meta in self.workspace.installed_metadata().items()
            if plugin_id in meta.dependencies
        )
        return installation, count_rows(self.workspace, installation.tables), dependents

    def uninstall(
        self,
        plugin_id: str,
        *,
        uninstalled_by: str | None = None,
        before_commit: BeforeCommit | None = check_and_run_hooks,
        backup: bool = False,
        force: bool = False,
    ) -> UninstallResult:
        """Run the plugin's down.sql, delete its code, registry entry and row.

        ``backup`` first writes its rows to ``instance/backups/``. ``before_commit(ctx)``
        runs inside the transaction (by default: the plugin's ``on_uninstall``); raising
        rolls everything back. ``force`` runs no plugin code at all: it stops waiting for
        any hook of the plugin this process runs (so it does not queue behind a hung one),
        skips ``before_commit`` and is audited as forced.
        """
        from plugdock.operations.uninstall import uninstall as uninstall_one

        if force:
            abort_hooks(plugin_id)
        with self.locked():
            return uninstall_one(
                self.workspace,
                plugin_id,
                uninstalled_by=uninstalled_by,
                before_commit=before_commit,
                backup=backup,
                force=force,
            )
