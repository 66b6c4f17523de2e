"""Install and uninstall plugins as one transaction, with rollback on failure and crash recovery.

An install moves through named steps::

    fetch → extract (verifies every byte) → validate → check_installed → check_sql
          → copy_code → migrate (up.sql + addon_installations row + registry) → commit → cleanup

The commit of the database transaction that holds the ``addon_installations`` row is
the moment an operation happens: before it, every effect is undone; after it, only
clean-up remains. The journal written before the first visible change tells a later
process which operation died midway, and the row tells it which side of the commit
it died on (see ``recover``).

Databases without transactional DDL (MariaDB/MySQL) commit each ``CREATE TABLE`` at
once; there the undo is compensation: dropping the tables the plugin created.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

from sqlalchemy import Engine

from plugdock.compat import (
    check_compatibility,
    check_contents,
    check_namespace,
    check_no_dependents,
)
from plugdock.config import Settings
from plugdock.db import bump_generation, connect_read, current_generation, make_engine
from plugdock.errors import (
    AlreadyInstalledError,
    NotInstalledError,
    PackageError,
    PlugdockError,
    StepError,
)
from plugdock.failpoints import failpoint
from plugdock.fsutil import move, remove_tree, write_json_atomic
from plugdock import audit
from plugdock.journal import JournalEntry, clear_journal, read_journal, write_journal
from plugdock.locking import operation_lock
from plugdock.migrations import (
    Migration,
    apply_down,
    apply_up,
    check_not_referenced,
    check_tables_free,
    drop_created_tables,
    forget_migrations,
    load_migration,
    transactional_ddl,
)
from plugdock.package.archive import Limits, PackageInfo, extract_package
from plugdock.package.layout import CHECKSUMS_FILE, METADATA_FILE
from plugdock.package.metadata import PluginMetadata, parse_metadata
from plugdock.registry import (
    Installation,
    add_installation,
    get_installation,
    list_installations,
    remove_installation,
    write_registry,
)
from plugdock.runtime.hooks import BeforeCommit, OperationContext, check_and_run_hooks
from plugdock.runtime.notify import notify_change
from plugdock.sources import Source, make_source, parse_requirement
from plugdock.trust import enforce as enforce_signature_policy

log = logging.getLogger("plugdock.installer")

# What an installed plugin keeps in the instance, each under addons/<kind>/<plugin id>/.
# "manifest" holds the package's metadata.json and CHECKSUMS.sha256, so doctor can
# check every installed file against the hashes it was installed with.
CODE_KINDS = ("backend", "frontend", "migrations", "manifest")


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


@dataclass(frozen=True)
class UninstallResult:
    plugin_id: str
    version: str
    tables_dropped: list[str]
    seconds: float
    warnings: list[str] = field(default_factory=list)


class _Steps:
    """Remembers the step in progress so an error can name it."""

    def __init__(self, operation: str) -> None:
        self.operation = operation
        self.current = "start"

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        self.current = name
        failpoint(f"{self.operation}.{name}")
        yield


class Installer:
    """Installs and uninstalls plugins in one instance (``PLUGDOCK_HOME`` + its database).

    >>> installer = Installer(load_settings())
    >>> installer.install("ai_chatbot")           # or "ai_chatbot@1.0.0", or Path("x.zip")
    >>> installer.uninstall("ai_chatbot")
    """

    def __init__(
        self, settings: Settings, *, engine: Engine | None = None, source: Source | None = None
    ) -> None:
        self.settings = settings
        self.engine = engine or make_engine(settings.db_url)
        self._source = source
        self.limits = Limits.from_settings(settings)

    @property
    def source(self) -> Source:
        if self._source is None:
            self._source = make_source(self.settings)
        return self._source

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def code_path(self, kind: str, plugin_id: str) -> Path:
        return self.settings.addons_dir / kind / plugin_id

    @contextmanager
    def locked(self) -> Iterator[str | None]:
        """Hold the instance's operation lock, after finishing any operation a crash left behind.

        Yields what recovery did, if anything.
        """
        with operation_lock(self.settings.lock_path, self.engine, self.settings.lock_timeout):
            yield self._recover()

    # ----------------------------------------------------------------- queries

    def installed(self) -> list[Installation]:
        with connect_read(self.engine) as conn:  # never waits for an operation's write lock
            return list_installations(conn)

    def installed_metadata(
        self, installations: list[Installation] | None = None
    ) -> dict[str, PluginMetadata]:
        """The metadata.json of every installed plugin, as installed (from its manifest folder)."""
        found = {}
        for installation in self.installed() if installations is None else installations:
            path = self.settings.manifest_dir / installation.plugin_id / METADATA_FILE
            if path.is_file():
                found[installation.plugin_id] = parse_metadata(path.read_bytes(), source=str(path))
        return found

    def get(self, plugin_id: str) -> Installation | None:
        with connect_read(self.engine) as conn:
            return get_installation(conn, plugin_id)

    # ----------------------------------------------------------------- install

    def install(
        self,
        requirement: str | Path,
        *,
        installed_by: str | None = None,
        before_commit: BeforeCommit | None = check_and_run_hooks,
    ) -> InstallResult:
        """Install ``id``, ``id@version`` from the source, or a package file path.

        ``before_commit(ctx)`` runs inside the transaction once tables and row exist (by
        default: import the plugin, check its routes, run its ``on_install``); raising
        rolls everything back. The panel passes its own, which also mounts the plugin.
        """
        with self.locked():
            return self._install(requirement, installed_by, before_commit)

    def _fetch(self, requirement: str | Path) -> tuple[Path, str | None, str | None, str | None]:
        """The package file, the wanted id and version, and the sha256 the source vouches for."""
        text = str(requirement)
        if isinstance(requirement, Path):  # a string is always an id: never a path from a request
            path = requirement
            if not path.is_file():
                raise PlugdockError(f"no such package file: {path}")
            return path, None, None, None
        plugin_id, version = parse_requirement(text)
        fetched = self.source.fetch(plugin_id, version)
        return fetched.path, plugin_id, fetched.version, fetched.sha256

    def _install(
        self, requirement: str | Path, installed_by: str | None, before_commit: BeforeCommit | None
    ) -> InstallResult:
        started = time.perf_counter()
        steps = _Steps("install")
        operation_id = uuid.uuid4().hex
        staging = self.settings.staging_dir / operation_id
        unpacked = staging / "package"
        journal: JournalEntry | None = None
        migration: Migration | None = None
        try:
            with steps.step("fetch"):
                package_path, wanted_id, wanted_version, wanted_sha256 = self._fetch(requirement)
            with steps.step("extract"):
                staging.mkdir(parents=True)
                info = extract_package(package_path, unpacked, self.limits)
            meta = info.metadata
            with steps.step("validate"):
                if wanted_sha256 is not None and info.sha256 != wanted_sha256:
                    raise PackageError(
                        f"the package's sha256 {info.sha256} is not the {wanted_sha256} its "
                        "source vouches for"
                    )
                verdict = enforce_signature_policy(info, self.settings)
                self._check_wanted(info, wanted_id, wanted_version)
                check_contents(meta, unpacked)
                installed = self.installed()  # read once for both checks
                check_compatibility(meta, {i.plugin_id: i.version for i in installed})
                check_namespace(meta, self.installed_metadata(installed))
            with steps.step("check_installed"):
                self._check_not_installed(meta.id)
            with steps.step("check_sql"):
                migration = load_migration(unpacked / "migrations", self.dialect)
                with self.engine.connect() as conn:
                    check_tables_free(conn, migration)

            journal = JournalEntry(
                operation="install",
                operation_id=operation_id,
                plugin_id=meta.id,
                version=meta.version,
                staging=str(staging),
                tables=list(migration.tables),
            )
            write_journal(self.settings.journal_path, journal)

            with steps.step("copy_code"):
                _gather_manifest(unpacked)
                for kind in CODE_KINDS:
                    if (unpacked / kind).is_dir():
                        move(unpacked / kind, self.code_path(kind, meta.id))

            installation = Installation(
                plugin_id=meta.id,
                name=meta.name,
                version=meta.version,
                package_sha256=info.sha256,
                signer=verdict.signer,
                installed_at=datetime.now(UTC).replace(microsecond=0),
                installed_by=installed_by,
                tables=list(migration.tables),
                operation_id=operation_id,
            )
            # No journal update from here: whether the row committed decides recovery.
            with self.engine.connect() as conn, conn.begin() as transaction:
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
                                backend_dir=self.code_path("backend", meta.id),
                                connection=conn,
                                settings=self.settings,
                            )
                        )
                    _check_still_open(transaction, "on_install")
                # The row comes after the plugin's own code ran, so nothing the plugin does
                # (a commit, or MariaDB DDL committing implicitly) can commit it early.
                with steps.step("record"):
                    add_installation(conn, installation)
                    audit.record(
                        conn,
                        actor=installed_by,
                        action=audit.INSTALL,
                        plugin_id=meta.id,
                        version=meta.version,
                        detail={"tables": list(migration.tables), "sha256": info.sha256},
                    )
                    generation = bump_generation(conn)
                    notify_change(conn)
                with steps.step("registry"):
                    write_registry(self.settings.registry_path, list_installations(conn))
                with steps.step("commit"):
                    transaction.commit()
        except BaseException as exc:
            self._safely(self._undo_install, journal, migration, staging)
            _reraise(steps, exc)

        failpoint("install.cleanup")
        self._announce(generation)
        self._finish(staging)
        return InstallResult(
            plugin_id=meta.id,
            name=meta.name,
            version=meta.version,
            tables=list(migration.tables),
            backend_routes=list(meta.backend.routes),
            frontend_routes=list(meta.frontend.routes),
            package_sha256=info.sha256,
            signer=verdict.signer,
            installed_at=installation.installed_at,
            seconds=time.perf_counter() - started,
            warnings=list(verdict.warnings),
        )

    def _check_wanted(self, info: PackageInfo, plugin_id: str | None, version: str | None) -> None:
        meta = info.metadata
        if plugin_id and meta.id != plugin_id:
            raise PackageError(f"the package holds plugin {meta.id!r}, not {plugin_id!r}")
        if version and meta.version != version:
            raise PackageError(f"the package holds version {meta.version}, not {version}")

    def _check_not_installed(self, plugin_id: str) -> None:
        existing = self.get(plugin_id)
        if existing is not None:
            raise AlreadyInstalledError(f"{plugin_id} {existing.version} is already installed")
        for kind in CODE_KINDS:
            if self.code_path(kind, plugin_id).exists():
                raise AlreadyInstalledError(
                    f"{self.code_path(kind, plugin_id)} exists but {plugin_id} is not installed; "
                    "run 'plugdock doctor --repair'"
                )

    def _undo_install(
        self, journal: JournalEntry | None, migration: Migration | None, staging: Path
    ) -> None:
        """Undo a failed install; the transaction itself has already rolled back."""
        if journal is not None:
            if migration is not None:
                # Rolled back on SQLite/PostgreSQL, so usually a no-op; MariaDB (and a plugin
                # hook that committed) leave tables that check_tables_free proved are ours.
                drop_created_tables(self.engine, migration)
                with self.engine.begin() as conn:
                    forget_migrations(conn, journal.plugin_id)
            for kind in CODE_KINDS:
                remove_tree(self.code_path(kind, journal.plugin_id))
            self.rewrite_registry()
            clear_journal(self.settings.journal_path)
        remove_tree(staging)

    # --------------------------------------------------------------- uninstall

    def uninstall(
        self,
        plugin_id: str,
        *,
        uninstalled_by: str | None = None,
        before_commit: BeforeCommit | None = check_and_run_hooks,
    ) -> UninstallResult:
        """Run the plugin's down.sql, delete its code, registry entry and row.

        ``before_commit(ctx)`` runs inside the transaction (by default: the plugin's
        ``on_uninstall``); raising rolls everything back.
        """
        with self.locked():
            return self._uninstall(plugin_id, uninstalled_by, before_commit)

    def _uninstall(
        self, plugin_id: str, uninstalled_by: str | None, before_commit: BeforeCommit | None
    ) -> UninstallResult:
        started = time.perf_counter()
        steps = _Steps("uninstall")
        operation_id = uuid.uuid4().hex
        staging = self.settings.staging_dir / operation_id
        journal: JournalEntry | None = None
        migration: Migration | None = None
        try:
            with steps.step("check_installed"):
                parse_requirement(plugin_id)  # refuses ids that are not ids
                installation = self.get(plugin_id)
                if installation is None:
                    raise NotInstalledError(f"{plugin_id} is not installed")
                check_no_dependents(plugin_id, self.installed_metadata())
            with steps.step("load_migration"):
                migration = self._installed_migration(installation)
                with self.engine.connect() as conn:
                    check_not_referenced(conn, migration)
            journal = JournalEntry(
                operation="uninstall",
                operation_id=operation_id,
                plugin_id=plugin_id,
                version=installation.version,
                staging=str(staging),
                tables=list(installation.tables),
            )
            write_journal(self.settings.journal_path, journal)
            with steps.step("move_code"):
                for kind in CODE_KINDS:
                    if self.code_path(kind, plugin_id).exists():
                        move(self.code_path(kind, plugin_id), staging / kind)
            with self.engine.connect() as conn, conn.begin() as transaction:
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
                                settings=self.settings,
                            )
                        )
                    _check_still_open(transaction, "on_uninstall")
                with steps.step("migrate"):
                    journal.step = "migrate"  # from here on MariaDB may have dropped tables
                    write_journal(self.settings.journal_path, journal)
                    apply_down(conn, plugin_id, migration)
                    remove_installation(conn, plugin_id)
                    audit.record(
                        conn,
                        actor=uninstalled_by,
                        action=audit.UNINSTALL,
                        plugin_id=plugin_id,
                        version=installation.version,
                    )
                    generation = bump_generation(conn)
                    notify_change(conn)
                with steps.step("registry"):
                    write_registry(self.settings.registry_path, list_installations(conn))
                with steps.step("commit"):
                    transaction.commit()
        except BaseException as exc:
            if (
                journal is not None
                and journal.step == "migrate"
                and not transactional_ddl(self.engine)
            ):
                # MariaDB has already committed part of down.sql; the only consistent
                # state left is "uninstalled", so finish instead of undoing.
                self._finish_uninstall(journal, migration)
                log.warning("uninstall of %s hit %s; finished it forward", plugin_id, exc)
                return UninstallResult(
                    plugin_id=plugin_id,
                    version=journal.version,
                    tables_dropped=list(journal.tables),
                    seconds=time.perf_counter() - started,
                    warnings=[f"step '{steps.current}' failed ({exc}); uninstall was completed"],
                )
            self._safely(self._undo_uninstall, journal, staging)
            _reraise(steps, exc)

        failpoint("uninstall.cleanup")
        self._announce(generation)
        self._finish(staging)
        return UninstallResult(
            plugin_id=plugin_id,
            version=installation.version,
            tables_dropped=list(migration.tables),
            seconds=time.perf_counter() - started,
        )

    def _installed_migration(self, installation: Installation) -> Migration:
        folder = self.code_path("migrations", installation.plugin_id)
        if installation.tables and not (folder / "down.sql").exists():
            raise PlugdockError(
                f"{folder}/down.sql is missing, so {installation.plugin_id}'s tables cannot be "
                "dropped; run 'plugdock doctor'"
            )
        return load_migration(folder, self.dialect)

    def _undo_uninstall(self, journal: JournalEntry | None, staging: Path) -> None:
        if journal is not None:
            for kind in CODE_KINDS:
                if (staging / kind).exists() and not self.code_path(
                    kind, journal.plugin_id
                ).exists():
                    move(staging / kind, self.code_path(kind, journal.plugin_id))
            self.rewrite_registry()
            clear_journal(self.settings.journal_path)
        remove_tree(staging)

    def _finish_uninstall(self, journal: JournalEntry, migration: Migration | None) -> None:
        leftover = migration or _tables_only(journal.tables)
        drop_created_tables(self.engine, leftover)
        with self.engine.begin() as conn:
            remove_installation(conn, journal.plugin_id)
            forget_migrations(conn, journal.plugin_id)
            generation = bump_generation(conn)
            notify_change(conn)
        for kind in CODE_KINDS:
            remove_tree(self.code_path(kind, journal.plugin_id))
        self.rewrite_registry()
        self._announce(generation)
        self._finish(Path(journal.staging))

    def restore_code(self, installation: Installation) -> None:
        """Put back an installed plugin's files from the very package it was installed from.

        Call with the lock held. The package is fetched again and must have the recorded
        sha256, so a changed package on the source can never slip in this way.
        """
        staging = self.settings.staging_dir / uuid.uuid4().hex
        try:
            fetched = self.source.fetch(installation.plugin_id, installation.version)
            staging.mkdir(parents=True)
            info = extract_package(fetched.path, staging / "package", self.limits)
            if info.sha256 != installation.package_sha256:
                raise PlugdockError(
                    f"the source's {installation.plugin_id} {installation.version} is not the "
                    "package that was installed (sha256 differs)"
                )
            unpacked = staging / "package"
            _gather_manifest(unpacked)
            for kind in CODE_KINDS:
                remove_tree(self.code_path(kind, installation.plugin_id))
                if (unpacked / kind).is_dir():
                    move(unpacked / kind, self.code_path(kind, installation.plugin_id))
        finally:
            remove_tree(staging)

    # ---------------------------------------------------------------- recovery

    def _safely(self, undo: Callable[..., None], *args: object) -> None:
        """Run an undo; if it fails too, the journal stays and the next command recovers."""
        try:
            undo(*args)
        except Exception:
            log.exception("rollback did not complete; the journal is kept for recovery")

    def _finish(self, staging: Path) -> None:
        clear_journal(self.settings.journal_path)
        try:
            remove_tree(staging)
        except OSError as exc:  # the operation is done; a stray folder is only clutter
            log.warning("could not remove %s: %s", staging, exc)

    def _announce(self, generation: int) -> None:
        """Tell panel workers on this machine to look at the database now (a hint only)."""
        try:
            write_json_atomic(
                self.settings.generation_hint_path, {"generation": generation}, durable=False
            )
        except OSError as exc:  # workers still notice on their timer
            log.warning("could not write %s: %s", self.settings.generation_hint_path, exc)

    def rewrite_registry(self) -> None:
        """Make addon_registry.json match the database rows again."""
        write_registry(self.settings.registry_path, self.installed())

    def recover(self) -> str | None:
        """Roll back or finish an operation a crash interrupted; says what was done, if anything."""
        with operation_lock(self.settings.lock_path, self.engine, self.settings.lock_timeout):
            return self._recover()

    def _recover(self) -> str | None:
        journal = read_journal(self.settings.journal_path)
        if journal is None:
            self._remove_stale_staging()
            return None
        row = self.get(journal.plugin_id)
        if journal.operation == "install":
            if row is not None and row.operation_id == journal.operation_id:
                self.rewrite_registry()
                with self.engine.connect() as conn:
                    self._announce(current_generation(conn))
                self._finish(Path(journal.staging))
                outcome = (
                    f"finished the interrupted install of {journal.plugin_id} {journal.version}"
                )
            else:
                self._undo_install(journal, self._journal_migration(journal), Path(journal.staging))
                outcome = (
                    f"rolled back the interrupted install of {journal.plugin_id} {journal.version}"
                )
        else:
            down_started = journal.step == "migrate" and not transactional_ddl(self.engine)
            if row is not None and not down_started:
                self._undo_uninstall(journal, Path(journal.staging))
                outcome = f"rolled back the interrupted uninstall of {journal.plugin_id}"
            else:
                self._finish_uninstall(journal, self._journal_migration(journal))
                outcome = f"finished the interrupted uninstall of {journal.plugin_id}"
        self._remove_stale_staging()
        log.warning("%s", outcome)
        return outcome

    def _journal_migration(self, journal: JournalEntry) -> Migration:
        """The migration of the operation in the journal, from wherever its files are now."""
        staging = Path(journal.staging)
        for folder in (
            self.code_path("migrations", journal.plugin_id),
            staging / "package" / "migrations",
            staging / "migrations",
        ):
            if (folder / "up.sql").exists():
                try:
                    return load_migration(folder, self.dialect)
                except PlugdockError:
                    break
        return _tables_only(journal.tables)

    def _remove_stale_staging(self) -> None:
        """Staging folders with no operation in flight were left by a crash before the journal."""
        if self.settings.staging_dir.is_dir():
            for leftover in self.settings.staging_dir.iterdir():
                remove_tree(leftover)


def _check_still_open(transaction: Any, hook: str) -> None:
    if not transaction.is_active:
        raise PackageError(
            f"the plugin's {hook} ended plugdock's transaction; hooks must not commit"
        )


def _gather_manifest(unpacked: Path) -> None:
    """Put the package's metadata and checksums in their own folder, installed like code."""
    (unpacked / "manifest").mkdir()
    for name in (METADATA_FILE, CHECKSUMS_FILE):  # inside staging: no need to make it durable
        os.rename(unpacked / name, unpacked / "manifest" / name)


def _tables_only(tables: list[str]) -> Migration:
    """A migration known only by its tables; dropping them is all it can do."""
    return Migration(name="initial", up=(), down=(), tables=tuple(tables), checksum="")


def _reraise(steps: _Steps, exc: BaseException) -> NoReturn:
    """Refusals keep their own type (callers map them to 404/409/422); the rest name the step."""
    if isinstance(exc, PlugdockError) or not isinstance(exc, Exception):
        raise exc
    raise StepError(steps.operation, steps.current, exc) from exc
