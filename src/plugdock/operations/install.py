"""Install one plugin: stage → check → copy code → up.sql, hooks, row → commit.

No journal update after the code is copied: whether the row committed decides recovery
(see :mod:`.recovery`). On MariaDB, where DDL commits itself, undo drops the tables the
install created (they were proved free beforehand).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Connection

from plugdock.checks.compat import check_compatibility, check_namespace, check_subscriptions
from plugdock.core.db import connect_read
from plugdock.core.failpoints import failpoint
from plugdock.core.fsutil import remove_tree
from plugdock.errors import AlreadyInstalledError
from plugdock.instance import audit, outbox
from plugdock.instance.journal import JournalEntry, clear_journal, write_journal
from plugdock.instance.package_store import store_package
from plugdock.instance.registry import Installation, add_installation
from plugdock.operations import codefiles
from plugdock.operations.plan import Installed, read_installed
from plugdock.operations.runner import (
    Change,
    Steps,
    check_still_open,
    commit_change,
    reraise,
    safely,
)
from plugdock.operations.staging import stage
from plugdock.operations.workspace import Workspace
from plugdock.plugin_code.hooks import BeforeCommit, OperationContext
from plugdock.plugin_sql.migrations import (
    Migration,
    apply_up,
    check_tables_free,
    drop_created_tables,
    forget_migrations,
    load_migration,
)
from plugdock.trust.binding import bind_signer


@dataclass(frozen=True)
class InstallResult:
    plugin_id: str
    name: str
    version: str
    tables: list[str]
    backend_routes: list[str]
    frontend_routes: list[str]
    package_sha256: str
    signer: str | None
    installed_at: datetime
    seconds: float
    warnings: list[str] = field(default_factory=list)  # e.g. "not signed" under policy warn
    permissions: list[str] = field(default_factory=list)  # granted by installing
    dependencies: list[str] = field(default_factory=list)  # installed first, by the same call


# Runs inside the transaction after the plugin's hooks, e.g. to put a backup's rows back.
AfterHooks = Callable[[Connection, Migration], None]


def install(
    workspace: Workspace,
    requirement: str | Path,
    *,
    installed_by: str | None,
    before_commit: BeforeCommit | None,
    after_hooks: AfterHooks | None = None,
    known: Installed | None = None,
) -> InstallResult:
    """Install ``id``, ``id@version`` or a package file (no dependencies); hold the lock.

    ``known``: the installations and their metadata as read under this lock, if at hand.
    """
    started = time.perf_counter()
    steps = Steps("install")
    operation_id = uuid.uuid4().hex
    staging = workspace.settings.staging_dir / operation_id
    journal: JournalEntry | None = None
    migration: Migration | None = None
    try:
        staged = stage(workspace, requirement, steps, staging)
        meta = staged.meta
        with steps.step("validate"):
            installed, installed_meta = known or read_installed(workspace)
            check_compatibility(meta, {i.plugin_id: i.version for i in installed})
            check_namespace(meta, installed_meta)
            with connect_read(workspace.engine) as conn:
                check_subscriptions(
                    meta,
                    outbox.declared_points(conn),
                    outbox.declared_points(conn, "filter"),
                )
        with steps.step("check_installed"):
            check_not_installed(workspace, meta.id, installed)
        with steps.step("check_sql"):
            migration = load_migration(staged.unpacked / "migrations", workspace.dialect)
            with workspace.engine.connect() as conn:
                check_tables_free(conn, migration)

        journal = JournalEntry(
            operation="install",
            operation_id=operation_id,
            plugin_id=meta.id,
            version=meta.version,
            staging=str(staging),
            tables=list(migration.tables),
        )
        write_journal(workspace.settings.journal_path, journal)

        with steps.step("copy_code"):
            codefiles.gather_manifest(staged.unpacked, staged.info.sha256)
            codefiles.move_in(workspace, staged.unpacked, meta.id)

        installation = Installation(
            plugin_id=meta.id,
            name=meta.name,
            version=meta.version,
            package_sha256=staged.info.sha256,
            signer=staged.verdict.signer,
            installed_at=datetime.now(UTC).replace(microsecond=0),
            installed_by=installed_by,
            tables=list(migration.tables),
            operation_id=operation_id,
            permissions=list(meta.permissions),  # the admin saw them before installing
        )
        with workspace.engine.connect() as conn, conn.begin() as transaction:
            with steps.step("migrate"):
                apply_up(conn, meta.id, meta.version, migration)
            with steps.step("hooks"):
                if before_commit is not None:
                    before_commit(
                        OperationContext(
                            operation="install",
                            plugin_id=meta.id,
                            version=meta.version,
                            operation_id=operation_id,
                            metadata=meta,
                            backend_dir=workspace.code_path("backend", meta.id),
                            connection=conn,
                            settings=workspace.settings,
                        )
                    )
                check_still_open(transaction, "on_install")
                if after_hooks is not None:
                    after_hooks(conn, migration)
            # The row comes after the plugin's own code ran, so nothing the plugin does
            # (a commit, or MariaDB DDL committing implicitly) can commit it early.
            with steps.step("record"):
                bind_signer(conn, meta.id, staged.verdict.key_id, installed_by)
                add_installation(conn, installation)
                store_package(conn, staged.package, staged.info.sha256)  # for other replicas
            generation = commit_change(
                conn,
                transaction,
                workspace,
                steps,
                Change(
                    installed_by,
                    audit.INSTALL,
                    meta.id,
                    meta.version,
                    {"tables": list(migration.tables), "sha256": staged.info.sha256},
                    events=meta.events,
                    jobs=meta.jobs,
                ),
            )
    except BaseException as exc:
        safely(undo_install, workspace, journal, migration, staging)
        reraise(steps, exc)

    failpoint("install.cleanup")
    workspace.announce(generation)
    workspace.finish(staging)
    return InstallResult(
        plugin_id=meta.id,
        name=meta.name,
        version=meta.version,
        tables=list(migration.tables),
        backend_routes=list(meta.backend.routes),
        frontend_routes=list(meta.frontend.routes),
        package_sha256=staged.info.sha256,
        signer=staged.verdict.signer,
        installed_at=installation.installed_at,
        seconds=time.perf_counter() - started,
        warnings=list(staged.verdict.warnings),
        permissions=list(meta.permissions),
    )


def check_not_installed(
    workspace: Workspace, plugin_id: str, installed: list[Installation]
) -> None:
    """``installed``: the rows as read under this operation's lock."""
    existing = next((i for i in installed if i.plugin_id == plugin_id), None)
    if existing is not None:
        raise AlreadyInstalledError(f"{plugin_id} {existing.version} is already installed")
    for kind in codefiles.CODE_KINDS:
        if workspace.code_path(kind, plugin_id).exists():
            raise AlreadyInstalledError(
                f"{workspace.code_path(kind, plugin_id)} exists but {plugin_id} is not "
                "installed; run 'plugdock doctor --repair'"
            )


def undo_install(
    workspace: Workspace, journal: JournalEntry | None, migration: Migration | None, staging: Path
) -> None:
    """Undo a failed install; the transaction itself has already rolled back."""
    if journal is not None:
        if migration is not None:
            # Rolled back on SQLite/PostgreSQL, so usually a no-op; MariaDB (and a plugin
            # hook that committed) leave tables that check_tables_free proved are ours.
            drop_created_tables(workspace.engine, migration)
            with workspace.engine.begin() as conn:
                forget_migrations(conn, journal.plugin_id)
        codefiles.remove_all(workspace, journal.plugin_id)
        workspace.rewrite_registry()
        clear_journal(workspace.settings.journal_path)
    remove_tree(staging)
