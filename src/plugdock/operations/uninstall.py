"""Uninstall one plugin: optional backup → move code aside → on_uninstall, down.sql, row → commit.

On MariaDB down.sql commits as it goes; once it started, the only consistent state left
is "uninstalled", so a failure from there is finished forward instead of undone.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from plugdock.checks.compat import check_no_dependents
from plugdock.core.db import bump_generation
from plugdock.core.failpoints import failpoint
from plugdock.core.fsutil import move, remove_tree
from plugdock.errors import NotInstalledError, PlugdockError
from plugdock.instance import audit, plugin_settings
from plugdock.instance.journal import JournalEntry, clear_journal, write_journal
from plugdock.instance.notify import notify_change
from plugdock.instance.package_store import sweep as sweep_packages
from plugdock.instance.registry import Installation, remove_installation
from plugdock.operations import codefiles
from plugdock.operations.runner import (
    Change,
    Steps,
    check_still_open,
    commit_change,
    reraise,
    safely,
)
from plugdock.operations.workspace import Workspace
from plugdock.plugin_code.hooks import BeforeCommit, OperationContext
from plugdock.plugin_sql.db_roles import drop_plugin_role, supports_roles
from plugdock.plugin_sql.migrations import (
    Migration,
    apply_down,
    check_not_referenced,
    drop_created_tables,
    forget_migrations,
    load_migration,
    tables_only,
    transactional_ddl,
)
from plugdock.sources import parse_requirement

log = logging.getLogger("plugdock.installer")


@dataclass(frozen=True)
class UninstallResult:
    plugin_id: str
    version: str
    tables_dropped: list[str]
    seconds: float
    warnings: list[str] = field(default_factory=list)
    backup: Path | None = None


def installed_or_refuse(workspace: Workspace, plugin_id: str) -> Installation:
    parse_requirement(plugin_id)  # refuses ids that are not ids
    installation = workspace.get(plugin_id)
    if installation is None:
        raise NotInstalledError(f"{plugin_id} is not installed")
    return installation


def installed_migration(workspace: Workspace, installation: Installation) -> Migration:
    folder = workspace.code_path("migrations", installation.plugin_id)
    if installation.tables and not (folder / "down.sql").exists():
        raise PlugdockError(
            f"{folder}/down.sql is missing, so {installation.plugin_id}'s tables cannot be "
            "dropped; run 'plugdock doctor'"
        )
    return load_migration(folder, workspace.dialect)


def uninstall(
    workspace: Workspace,
    plugin_id: str,
    *,
    uninstalled_by: str | None,
    before_commit: BeforeCommit | None,
    backup: bool = False,
    force: bool = False,
) -> UninstallResult:
    """Remove a plugin and every trace of it; call with the lock held.

    ``force`` runs none of the plugin's code (``before_commit`` is not called) and says so
    in the audit entry; the rest (down.sql, code, row, role, data folder) is the same.
    """
    if force:
        before_commit = None
    started = time.perf_counter()
    steps = Steps("uninstall")
    operation_id = uuid.uuid4().hex
    staging = workspace.settings.staging_dir / operation_id
    journal: JournalEntry | None = None
    migration: Migration | None = None
    backup_path: Path | None = None
    try:
        with steps.step("check_installed"):
            installation = installed_or_refuse(workspace, plugin_id)
            check_no_dependents(plugin_id, workspace.installed_metadata())
        with steps.step("load_migration"):
            migration = installed_migration(workspace, installation)
            with workspace.engine.connect() as conn:
                check_not_referenced(conn, migration)
        if backup and installation.tables:
            with steps.step("backup"):
                from plugdock.operations.backup import write_backup

                backup_path = write_backup(workspace, installation)
        journal = JournalEntry(
            operation="uninstall",
            operation_id=operation_id,
            plugin_id=plugin_id,
            version=installation.version,
            staging=str(staging),
            tables=list(installation.tables),
        )
        write_journal(workspace.settings.journal_path, journal)
        with steps.step("move_code"):
            codefiles.move_out(workspace, plugin_id, staging)
        with workspace.engine.connect() as conn, conn.begin() as transaction:
            # The plugin's on_uninstall runs first, while its tables still exist.
            with steps.step("hooks"):
                if before_commit is not None:
                    before_commit(
                        OperationContext(
                            operation="uninstall",
                            plugin_id=plugin_id,
                            version=installation.version,
                            operation_id=installation.operation_id,
                            metadata=None,
                            backend_dir=staging / "backend",  # moved out of the way already
                            connection=conn,
                            settings=workspace.settings,
                        )
                    )
                check_still_open(transaction, "on_uninstall")
            with steps.step("migrate"):
                journal.step = "migrate"  # from here on MariaDB may have dropped tables
                write_journal(workspace.settings.journal_path, journal)
                apply_down(conn, plugin_id, migration)
                remove_installation(conn, plugin_id)
                plugin_settings.forget(conn, plugin_id)  # its values, secrets too
                generation = commit_change(
                    conn,
                    transaction,
                    workspace,
                    steps,
                    Change(
                        uninstalled_by,
                        audit.UNINSTALL,
                        plugin_id,
                        installation.version,
                        {"forced": True} if force else {},
                        events={},
                        jobs=[],
                    ),
                )
    except BaseException as exc:
        if (
            journal is not None
            and journal.step == "migrate"
            and not transactional_ddl(workspace.engine)
        ):
            # MariaDB has already committed part of down.sql; the only consistent
            # state left is "uninstalled", so finish instead of undoing.
            finish_uninstall(workspace, journal, migration)
            log.warning("uninstall of %s hit %s; finished it forward", plugin_id, exc)
            return UninstallResult(
                plugin_id=plugin_id,
                version=journal.version,
                tables_dropped=list(journal.tables),
                seconds=time.perf_counter() - started,
                warnings=[f"step '{steps.current}' failed ({exc}); uninstall was completed"],
                backup=backup_path,
            )
        safely(undo_uninstall, workspace, journal, staging)
        reraise(steps, exc)

    failpoint("uninstall.cleanup")
    workspace.announce(generation)
    workspace.finish(staging)
    forget_isolation(workspace, plugin_id)
    return UninstallResult(
        plugin_id=plugin_id,
        version=installation.version,
        tables_dropped=list(migration.tables),
        seconds=time.perf_counter() - started,
        backup=backup_path,
    )


def undo_uninstall(workspace: Workspace, journal: JournalEntry | None, staging: Path) -> None:
    if journal is not None:
        for kind in codefiles.CODE_KINDS:
            target = workspace.code_path(kind, journal.plugin_id)
            if (staging / kind).exists() and not target.exists():
                move(staging / kind, target)
        workspace.rewrite_registry()
        clear_journal(workspace.settings.journal_path)
    remove_tree(staging)


def finish_uninstall(
    workspace: Workspace, journal: JournalEntry, migration: Migration | None
) -> None:
    drop_created_tables(workspace.engine, migration or tables_only(journal.tables))
    with workspace.engine.begin() as conn:
        remove_installation(conn, journal.plugin_id)
        plugin_settings.forget(conn, journal.plugin_id)
        forget_migrations(conn, journal.plugin_id)
        sweep_packages(conn)
        generation = bump_generation(conn)
        notify_change(conn)
    codefiles.remove_all(workspace, journal.plugin_id)
    workspace.rewrite_registry()
    workspace.announce(generation)
    workspace.finish(Path(journal.staging))
    forget_isolation(workspace, journal.plugin_id)


def forget_isolation(workspace: Workspace, plugin_id: str) -> None:
    """The last traces of a plugin process: its database role and its data folder.

    Done whatever the isolation mode: an instance switched back to ``inprocess`` still
    drops what ``process`` made. A role that cannot be dropped is logged, not raised: the
    uninstall itself is committed.
    """
    if supports_roles(workspace.engine):
        try:
            drop_plugin_role(workspace.engine, plugin_id)
        except Exception:
            log.exception("%s: could not drop its database role", plugin_id)
    remove_tree(workspace.settings.plugin_data_dir / plugin_id)
