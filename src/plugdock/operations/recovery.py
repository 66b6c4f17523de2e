"""Finish or undo the operation a crash interrupted, as its journal and the row decide.

The journal names the operation and its installation id (an upgrade's also the one it
replaces). If the row carries the new id, the commit happened: only clean-up is left.
Otherwise the operation is undone, except an uninstall whose down.sql had started on
MariaDB, which can only be finished.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from plugdock.core.db import current_generation
from plugdock.errors import PlugdockError
from plugdock.instance import scratch
from plugdock.instance.journal import JournalEntry, read_journal
from plugdock.operations.install import undo_install
from plugdock.operations.uninstall import finish_uninstall, undo_uninstall
from plugdock.operations.workspace import Workspace
from plugdock.plugin_sql.migrations import Migration, load_migration, tables_only, transactional_ddl

if TYPE_CHECKING:
    from plugdock.plugin_sql.upgrade_steps import UpgradeStep

log = logging.getLogger("plugdock.installer")


def recover(workspace: Workspace) -> str | None:
    """Roll back or finish an interrupted operation; call with the lock held. Says what it did."""
    journal = read_journal(workspace.settings.journal_path)
    if journal is None:  # a kill before the journal leaves at most a staging folder
        outcome = remove_leftovers(workspace)
        if outcome:
            log.warning("%s", outcome)
        return outcome
    row = workspace.get(journal.plugin_id)
    committed = row is not None and row.operation_id == journal.operation_id
    what = f"{journal.operation} of {journal.plugin_id} {journal.version}"
    if journal.operation in ("install", "upgrade") and committed:
        workspace.rewrite_registry()
        with workspace.engine.connect() as conn:
            workspace.announce(current_generation(conn))
        workspace.finish(Path(journal.staging))
        outcome = f"finished the interrupted {what}"
    elif journal.operation == "install":
        undo_install(
            workspace, journal, _journal_migration(workspace, journal), Path(journal.staging)
        )
        outcome = f"rolled back the interrupted {what}"
    elif journal.operation == "upgrade":
        from plugdock.operations.upgrade import undo_upgrade

        left = undo_upgrade(
            workspace, journal, _journal_steps(workspace, journal), Path(journal.staging)
        )
        outcome = f"rolled back the interrupted {what}" + (
            f" (except: {'; '.join(left)})" if left else ""
        )
    else:
        down_started = journal.step == "migrate" and not transactional_ddl(workspace.engine)
        if row is not None and not down_started:
            undo_uninstall(workspace, journal, Path(journal.staging))
            outcome = f"rolled back the interrupted uninstall of {journal.plugin_id}"
        else:
            finish_uninstall(workspace, journal, _journal_migration(workspace, journal))
            outcome = f"finished the interrupted uninstall of {journal.plugin_id}"
    remove_leftovers(workspace)
    log.warning("%s", outcome)
    return outcome


def remove_leftovers(workspace: Workspace) -> str | None:
    """What dead processes left that no journal names: staging folders, panel uploads."""
    removed = []
    if staging := workspace.remove_stale_staging():
        removed.append(f"{_count(staging, 'staging folder')} an interrupted operation left")
    if uploads := scratch.sweep(workspace.settings.uploads_dir):
        removed.append(f"{_count(uploads, 'upload')} a killed panel process left")
    return f"removed {' and '.join(removed)}" if removed else None


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _journal_migration(workspace: Workspace, journal: JournalEntry) -> Migration:
    """The migration of the operation in the journal, from wherever its files are now."""
    staging = Path(journal.staging)
    for folder in (
        workspace.code_path("migrations", journal.plugin_id),
        staging / "package" / "migrations",
        staging / "migrations",
    ):
        if (folder / "up.sql").exists():
            try:
                return load_migration(folder, workspace.dialect)
            except PlugdockError:
                break
    return tables_only(journal.tables)


def _journal_steps(workspace: Workspace, journal: JournalEntry) -> list[UpgradeStep]:
    """The upgrade steps an interrupted upgrade was running, to compensate them (MariaDB)."""
    from plugdock.plugin_sql.upgrade_steps import load_upgrade_steps

    row = workspace.get(journal.plugin_id)
    owned = row.tables if row is not None else []
    staging = Path(journal.staging)
    # Before the swap the new package is still in staging; after it, in the instance.
    for folder in (
        staging / "package" / "migrations",
        workspace.code_path("migrations", journal.plugin_id),
    ):
        if (folder / "up.sql").exists() and journal.from_version:
            try:
                return load_upgrade_steps(
                    folder,
                    workspace.dialect,
                    from_version=journal.from_version,
                    to_version=journal.version,
                    owned_tables=owned,
                )
            except PlugdockError:
                continue
    return []
