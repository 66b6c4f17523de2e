"""Upgrade an installed plugin in place: its data carried forward, the old version the fallback.

    stage the new package → check (newer, core and dependents' ranges, routes, SQL steps,
    schema equivalence) → journal → swap code (old code kept in staging) → in one
    transaction: upgrade steps, the plugin's hooks (import under a new module name, route
    checks, on_upgrade, health), the row → commit

Before the commit every effect is undone and the old version's code, tables and rows are
as they were. MariaDB commits DDL as it runs, so there undo is compensation: tables the
steps created are dropped, and what cannot be undone (an added column) is reported.
"""

from __future__ import annotations

import dataclasses
import logging
import time
import uuid
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from plugdock.checks.compat import (
    check_compatibility,
    check_dependents,
    check_namespace,
    check_subscriptions,
)
from plugdock.core.db import connect_read
from plugdock.core.failpoints import failpoint
from plugdock.core.fsutil import remove_tree
from plugdock.errors import (
    AlreadyInstalledError,
    PackageError,
    PermissionsNotGrantedError,
    PlugdockError,
)
from plugdock.instance import audit, outbox
from plugdock.instance.journal import JournalEntry, clear_journal, write_journal
from plugdock.instance.package_store import store_package
from plugdock.instance.registry import replace_installation
from plugdock.operations import codefiles
from plugdock.operations.runner import (
    Change,
    Steps,
    check_still_open,
    commit_change,
    reraise,
    safely,
)
from plugdock.operations.staging import stage
from plugdock.operations.uninstall import installed_or_refuse
from plugdock.operations.workspace import Workspace
from plugdock.package.metadata import parse_version
from plugdock.package.permissions import added, normalize
from plugdock.plugin_code.hooks import BeforeCommit, OperationContext
from plugdock.plugin_sql.migrations import check_tables_free, tables_only, transactional_ddl
from plugdock.plugin_sql.schema_undo import record_shape, restore_shape
from plugdock.plugin_sql.upgrade_steps import (
    UpgradeStep,
    applied_upgrade_steps,
    apply_upgrade_steps,
    check_upgrade_schema,
    compensate_upgrade,
    load_upgrade_steps,
    resulting_tables,
)
from plugdock.trust.binding import bind_signer

log = logging.getLogger("plugdock.installer")

PREVIOUS = "previous"  # staging/<op>/previous/<kind>: the old version's code until commit


@dataclass(frozen=True)
class UpgradeResult:
    plugin_id: str
    name: str
    from_version: str
    version: str
    steps: list[str]
    tables: list[str]
    backend_routes: list[str]
    frontend_routes: list[str]
    package_sha256: str
    signer: str | None
    seconds: float
    warnings: list[str] = field(default_factory=list)
    permissions: list[str] = field(default_factory=list)  # granted now (the package's list)


# What the admin confirmed beyond the installation's grant: those permissions, or "all"
# that the new version asks for (the CLI's --grant-permissions, after seeing the list).
Grant = Collection[str] | Literal["all"]


class DowngradeError(PackageError):
    """An older version than the installed one was offered."""


def check_newer(plugin_id: str, installed: str, offered: str) -> None:
    if parse_version(offered) == parse_version(installed):
        raise AlreadyInstalledError(f"{plugin_id} {installed} is already installed")
    if parse_version(offered) < parse_version(installed):
        raise DowngradeError(
            f"{plugin_id} {offered} is older than the installed {installed}; downgrades are "
            "refused (uninstall, then install the older version, to go back)"
        )


def check_granted(
    plugin_id: str, version: str, granted: list[str], asked: list[str], grant: Grant
) -> None:
    """Refuse when the new version asks for permissions neither granted before nor now."""
    if grant == "all":
        return
    try:
        confirmed = normalize(grant)
    except ValueError as exc:
        raise PlugdockError(f"cannot grant: {exc}") from None
    missing = [p for p in added(granted, asked) if p not in confirmed]
    if missing:
        raise PermissionsNotGrantedError(plugin_id, version, missing)


def upgrade(
    workspace: Workspace,
    plugin_id: str,
    requirement: str | Path,
    *,
    upgraded_by: str | None,
    before_commit: BeforeCommit | None,
    grant: Grant = (),
) -> UpgradeResult:
    """Upgrade ``plugin_id`` to the package ``requirement`` names; call with the lock held.

    A version asking for permissions the installation was not granted is refused before
    anything changes (:class:`PermissionsNotGrantedError`) unless ``grant`` names them.
    """
    started = time.perf_counter()
    steps = Steps("upgrade")
    operation_id = uuid.uuid4().hex
    staging = workspace.settings.staging_dir / operation_id
    journal: JournalEntry | None = None
    upgrade_steps: list[UpgradeStep] = []
    try:
        with steps.step("check_installed"):
            current = installed_or_refuse(workspace, plugin_id)
        staged = stage(workspace, requirement, steps, staging)
        meta = staged.meta
        with steps.step("validate"):
            if meta.id != plugin_id:
                raise PackageError(f"the package holds plugin {meta.id!r}, not {plugin_id!r}")
            check_newer(plugin_id, current.version, meta.version)
            check_granted(plugin_id, meta.version, current.permissions, meta.permissions, grant)
            installed = workspace.installed()
            installed_meta = workspace.installed_metadata(installed)
            check_compatibility(
                meta, {i.plugin_id: i.version for i in installed if i.plugin_id != plugin_id}
            )
            check_dependents(plugin_id, meta.version, installed_meta)
            check_namespace(meta, installed_meta)
            with connect_read(workspace.engine) as conn:
                check_subscriptions(
                    meta,
                    outbox.declared_points(conn),
                    outbox.declared_points(conn, "filter"),
                )
        with steps.step("check_sql"):
            with workspace.engine.connect() as conn:
                applied = applied_upgrade_steps(conn, plugin_id)
            upgrade_steps = load_upgrade_steps(
                staged.unpacked / "migrations",
                workspace.dialect,
                from_version=current.version,
                to_version=meta.version,
                owned_tables=current.tables,
                applied=applied,
            )
            check_upgrade_schema(
                workspace.code_path("migrations", plugin_id),
                staged.unpacked / "migrations",
                current.version,
                meta.version,
            )
            created = [t for s in upgrade_steps for t in s.created]
            with workspace.engine.connect() as conn:
                check_tables_free(conn, tables_only(created))
            tables = resulting_tables(current.tables, upgrade_steps)

        journal = JournalEntry(
            operation="upgrade",
            operation_id=operation_id,
            plugin_id=plugin_id,
            version=meta.version,
            staging=str(staging),
            tables=created,
            from_version=current.version,
            previous_operation_id=current.operation_id,
            previous_kinds=codefiles.present_kinds(workspace, plugin_id),
            previous_shape={}
            if transactional_ddl(workspace.engine)
            else record_shape(workspace.engine, current.tables),
        )
        write_journal(workspace.settings.journal_path, journal)

        with steps.step("swap_code"):
            codefiles.gather_manifest(staged.unpacked, staged.info.sha256)
            codefiles.move_out(workspace, plugin_id, staging / PREVIOUS)
            codefiles.move_in(workspace, staged.unpacked, plugin_id)

        upgraded = dataclasses.replace(
            current,
            name=meta.name,
            version=meta.version,
            package_sha256=staged.info.sha256,
            signer=staged.verdict.signer,
            tables=tables,
            operation_id=operation_id,
            permissions=list(meta.permissions),
        )
        with workspace.engine.connect() as conn, conn.begin() as transaction:
            with steps.step("migrate"):
                apply_upgrade_steps(conn, plugin_id, upgrade_steps)
            with steps.step("hooks"):
                if before_commit is not None:
                    before_commit(
                        OperationContext(
                            operation="upgrade",
                            plugin_id=plugin_id,
                            version=meta.version,
                            operation_id=operation_id,
                            metadata=meta,
                            backend_dir=workspace.code_path("backend", plugin_id),
                            connection=conn,
                            settings=workspace.settings,
                            from_version=current.version,
                        )
                    )
                check_still_open(transaction, "on_upgrade")
            with steps.step("record"):
                bind_signer(conn, plugin_id, staged.verdict.key_id, upgraded_by)
                replace_installation(conn, upgraded)
                store_package(conn, staged.package, staged.info.sha256)  # for other replicas
            generation = commit_change(
                conn,
                transaction,
                workspace,
                steps,
                Change(
                    upgraded_by,
                    audit.UPGRADE,
                    plugin_id,
                    meta.version,
                    {
                        "from": current.version,
                        "steps": [s.version for s in upgrade_steps],
                        "sha256": staged.info.sha256,
                    },
                    events=meta.events,
                    jobs=meta.jobs,
                ),
            )
    except BaseException as exc:
        left = safely(undo_upgrade, workspace, journal, upgrade_steps, staging)
        if left:
            log.warning("upgrade of %s rolled back, except: %s", plugin_id, "; ".join(left))
        reraise(steps, exc, left)

    failpoint("upgrade.cleanup")
    workspace.announce(generation)
    workspace.finish(staging)
    return UpgradeResult(
        plugin_id=plugin_id,
        name=meta.name,
        from_version=current.version,
        version=meta.version,
        steps=[s.version for s in upgrade_steps],
        tables=tables,
        backend_routes=list(meta.backend.routes),
        frontend_routes=list(meta.frontend.routes),
        package_sha256=staged.info.sha256,
        signer=staged.verdict.signer,
        seconds=time.perf_counter() - started,
        warnings=list(staged.verdict.warnings),
        permissions=list(meta.permissions),
    )


def undo_upgrade(
    workspace: Workspace,
    journal: JournalEntry | None,
    upgrade_steps: list[UpgradeStep],
    staging: Path,
) -> list[str]:
    """Put the old version back; the transaction has rolled back. Returns what stays changed."""
    left: list[str] = []
    if journal is not None:
        if not transactional_ddl(workspace.engine):  # elsewhere the rollback undid it all
            restore_shape(workspace.engine, journal.previous_shape)
            left = compensate_upgrade(workspace.engine, journal.plugin_id, upgrade_steps)
        codefiles.put_back(workspace, journal.plugin_id, staging / PREVIOUS, journal.previous_kinds)
        workspace.rewrite_registry()
        clear_journal(workspace.settings.journal_path)
    remove_tree(staging)
    return left
