"""``plugdock doctor``: compare registry, rows, code folders and tables, and repair drift.

Each finding says what is wrong and whether ``--repair`` can fix it. Repairs only
ever move the instance toward its database rows, the record of what is installed.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import inspect

from plugdock.config import Settings
from plugdock.core.db import bump_generation, connect_read
from plugdock.core.fsutil import remove_tree
from plugdock.errors import PlugdockError
from plugdock.installer import CODE_KINDS, Installer
from plugdock.instance import package_store, scratch
from plugdock.instance.journal import read_journal
from plugdock.instance.locking import unless_operation_running
from plugdock.instance.notify import notify_change
from plugdock.instance.privacy import loose_modes
from plugdock.instance.registry import Installation, list_installations, read_registry
from plugdock.operations.repair import restore_code
from plugdock.package.checksums import parse as parse_checksums
from plugdock.package.checksums import sha256_file
from plugdock.package.layout import CHECKSUMS_FILE

_IGNORED_DIRS = {"__pycache__"}


@dataclass(frozen=True)
class Finding:
    problem: str
    repairable: bool


def _installed_files(installer: Installer, plugin_id: str) -> dict[str, Path]:
    files = {}
    for kind in ("backend", "frontend", "migrations"):
        root = installer.workspace.code_path(kind, plugin_id)
        if not root.is_dir():
            continue
        for path in root.rglob("*"):
            if path.is_file() and not _IGNORED_DIRS.intersection(path.relative_to(root).parts):
                files[f"{kind}/{path.relative_to(root).as_posix()}"] = path
    return files


def _code_findings(installer: Installer, installation: Installation) -> list[str]:
    """Every installed file is present and unmodified, and nothing was added."""
    checksums = installer.workspace.code_path("manifest", installation.plugin_id) / CHECKSUMS_FILE
    if not checksums.is_file():
        return [f"{installation.plugin_id}: its installed manifest ({checksums}) is missing"]
    expected = {
        path: digest
        for path, digest in parse_checksums(checksums.read_text(encoding="utf-8")).items()
        if path.split("/", 1)[0] in ("backend", "frontend", "migrations")
    }
    actual = _installed_files(installer, installation.plugin_id)
    problems = []
    for path in sorted(expected.keys() - actual.keys()):
        problems.append(f"{installation.plugin_id}: installed file {path} is missing")
    for path in sorted(expected.keys() & actual.keys()):
        if sha256_file(actual[path]) != expected[path]:
            problems.append(f"{installation.plugin_id}: installed file {path} was modified")
    for path in sorted(actual.keys() - expected.keys()):
        problems.append(f"{installation.plugin_id}: unexpected file {path} in its code folder")
    return problems


def diagnose(installer: Installer) -> list[Finding]:
    """Everything that disagrees between the rows, the registry, the disk and the tables."""
    settings = installer.settings
    findings: list[Finding] = []
    # Not repaired: chmod-ing an operator's files is theirs to decide (the line says how).
    findings.extend(Finding(line, False) for line in loose_modes(settings))
    findings.extend(_interrupted(settings))
    if uploads := scratch.dead(settings.uploads_dir):
        findings.append(Finding(f"{len(uploads)} upload(s) a killed panel process left", True))
    installations = {i.plugin_id: i for i in installer.installed()}
    try:
        registry = read_registry(settings.registry_path)
    except (OSError, ValueError) as exc:  # a crash may leave it empty: it is not synced
        findings.append(Finding(f"the registry cannot be read ({exc})", True))
        registry = {}
    for plugin_id in sorted(installations.keys() - registry.keys()):
        findings.append(Finding(f"{plugin_id}: installed but missing from the registry", True))
    for plugin_id in sorted(registry.keys() - installations.keys()):
        findings.append(Finding(f"{plugin_id}: in the registry but not installed", True))
    for plugin_id in sorted(installations.keys() & registry.keys()):
        if registry[plugin_id].get("version") != installations[plugin_id].version:
            findings.append(
                Finding(f"{plugin_id}: registry version differs from the database", True)
            )

    for installation in installations.values():
        for problem in _code_findings(installer, installation):
            findings.append(Finding(problem, True))

    for kind in CODE_KINDS:
        folder = settings.addons_dir / kind
        if folder.is_dir():
            for child in sorted(folder.iterdir()):
                if child.is_dir() and child.name not in installations:
                    findings.append(
                        Finding(
                            f"{kind}/{child.name}: code of a plugin that is not installed", True
                        )
                    )

    existing = {name.lower() for name in inspect(installer.engine).get_table_names()}
    for installation in installations.values():
        for table in installation.tables:
            if table not in existing:
                findings.append(
                    Finding(
                        f"{installation.plugin_id}: table {table} is missing "
                        "(uninstall and install the plugin again)",
                        False,
                    )
                )
    findings.extend(_store_findings(installer))
    return findings


def _interrupted(settings: Settings) -> list[Finding]:
    """A journal or staging folder a dead operation left; a running one's are not drift."""
    with unless_operation_running(settings.lock_path) as idle:
        if not idle:
            return []
        journal = read_journal(settings.journal_path)
        if journal is not None:
            return [
                Finding(
                    f"an interrupted {journal.operation} of {journal.plugin_id} is pending", True
                )
            ]
        if settings.staging_dir.is_dir() and any(settings.staging_dir.iterdir()):
            return [Finding("leftover staging folders from an interrupted operation", True)]
        return []


def isolation_notes(installer: Installer) -> list[str]:
    """What plugins can touch on this instance, when that is more than an operator may think."""
    settings = installer.settings
    if settings.isolation == "inprocess":
        return [
            "plugins run inside the panel with all of its rights (PLUGDOCK_ISOLATION=inprocess); "
            "set PLUGDOCK_ISOLATION=process for plugins you do not trust (docs/isolation.md)"
        ]
    from plugdock.isolation import sandbox

    notes = []
    try:
        sandbox.bwrap()
    except sandbox.SandboxUnavailable as exc:
        notes.append(str(exc))
    refused = sandbox.user_namespaces_refused()
    if refused is not None:
        notes.append(refused)
    notes.extend(_confinement_notes(installer))
    if installer.engine.dialect.name == "sqlite":
        notes.append(
            "SQLite: a plugin process never opens the database file; the panel runs its SQL "
            "on its own tables only, on the panel's connections (a plugin holding a write "
            "transaction delays the panel's writes, as any SQLite writer does)"
        )
    if os.geteuid() == 0:
        notes.extend(_plugin_user_notes(installer))
    return notes


def _confinement_notes(installer: Installer) -> list[str]:
    """Which mechanisms hold plugin processes here: the seccomp filter, the resource limits."""
    from plugdock.isolation import resources, seccomp

    notes = []
    try:
        size = len(seccomp.bpf_program()) // 8
        notes.append(
            f"seccomp: a filter of {size} instructions (libseccomp) refuses mount, "
            "ptrace, keyrings, bpf, new namespaces ... in plugin processes"
        )
    except (OSError, RuntimeError) as exc:  # libseccomp missing: plugin processes cannot start
        notes.append(f"seccomp: the filter cannot be built ({exc}); apt-get install libseccomp2")
    settings = installer.settings
    limits = resources.Limits(
        settings.plugin_memory_mb << 20, settings.plugin_processes, settings.plugin_data_mb << 20
    )
    notes.append(
        "plugin resources: "
        + resources.mechanism(limits, own_user=os.geteuid() == 0)
        + f"; cgroup v2 not used: {resources.cgroup_v2_refused()}"
    )
    return notes


def _plugin_user_notes(installer: Installer) -> list[str]:
    """A root panel runs each plugin process as a host uid of its own: ids no one else uses."""
    from plugdock.isolation.sandbox import UID_SPAN, plugin_ids_taken, plugin_user

    base = installer.settings.plugin_uid_base
    notes = [
        f"{taken} uses an id plugin processes run as ({base}..{base + UID_SPAN - 1}, "
        "PLUGDOCK_PLUGIN_UID_BASE): whoever has it can reach them; choose another range"
        for taken in plugin_ids_taken(base)
    ]
    by_uid: dict[int, list[str]] = {}
    with connect_read(installer.engine) as conn:
        for installation in list_installations(conn):
            user = plugin_user(installer.settings.home, installation.plugin_id, base)
            by_uid.setdefault(user.uid, []).append(installation.plugin_id)
    notes += [
        f"plugins {' and '.join(ids)} run as the same host uid {uid}: they share one process "
        "limit (nothing else)"
        for uid, ids in by_uid.items()
        if len(ids) > 1
    ]
    return notes


def _store_findings(installer: Installer) -> list[Finding]:
    """The package store other replicas fetch code from: every package there and intact."""
    scratch = installer.settings.home / f".doctor-{uuid.uuid4().hex}.zip"
    with connect_read(installer.engine) as conn:
        return [
            Finding(f"package store: {p.problem}", p.repairable)
            for p in package_store.check(conn, scratch)
        ]


def repair(installer: Installer) -> list[str]:
    """Fix what can be fixed; returns a line per action taken."""
    actions = []
    with installer.locked() as recovered:
        if recovered:
            actions.append(recovered)
        installations = {i.plugin_id: i for i in installer.installed()}
        for kind in CODE_KINDS:
            folder = installer.settings.addons_dir / kind
            if folder.is_dir():
                for child in sorted(folder.iterdir()):
                    if child.is_dir() and child.name not in installations:
                        remove_tree(child)
                        actions.append(f"removed {kind}/{child.name}")
        for installation in installations.values():
            if _code_findings(installer, installation):
                what = f"{installation.plugin_id} {installation.version}"
                from plugdock.operations.materialize import materialize  # loads cryptography

                try:  # the database's copy first: a replica may have no source at all
                    materialize(installer.workspace, installation)
                    actions.append(f"restored the code of {what} from the database")
                    continue
                except PlugdockError as exc:
                    stored_problem = exc
                try:
                    restore_code(installer.workspace, installation)
                    actions.append(f"restored the code of {what}")
                except PlugdockError as exc:
                    actions.append(
                        f"could not restore {installation.plugin_id}: {exc} "
                        f"(database: {stored_problem})"
                    )
        installer.workspace.rewrite_registry()
        actions.append("rewrote addon_registry.json from the database")
        actions.extend(_repair_store(installer, list(installations.values())))
    return actions


def _repair_store(installer: Installer, installations: list[Installation]) -> list[str]:
    """Store again, from the source, packages that are missing or damaged in the database.

    Only the very bytes the installation recorded are accepted (same sha256). Replicas
    are woken (a generation bump) so those that refused the damaged copy fetch it now.
    """
    actions = []
    scratch = installer.settings.home / f".doctor-{uuid.uuid4().hex}.zip"
    for installation in installations:
        with connect_read(installer.engine) as conn:
            try:
                package_store.fetch_to(conn, installation.package_sha256, scratch)
                continue
            except PlugdockError:
                pass
            finally:
                scratch.unlink(missing_ok=True)
        what = f"{installation.plugin_id} {installation.version}"
        try:
            fetched = installer.source.fetch(installation.plugin_id, installation.version)
            if sha256_file(fetched.path) != installation.package_sha256:
                raise PlugdockError("the source's package is not the one that was installed")
            with installer.engine.begin() as conn:
                package_store.store_package(conn, fetched.path, installation.package_sha256)
                bump_generation(conn)
                notify_change(conn)
            actions.append(f"stored the package of {what} again, from the source")
        except PlugdockError as exc:
            actions.append(f"could not store the package of {what} again: {exc}")
    with installer.engine.begin() as conn:
        if swept := package_store.sweep(conn):
            actions.append(f"removed {swept} stored package(s) no installation names")
    return actions
