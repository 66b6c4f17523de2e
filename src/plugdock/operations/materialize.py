"""Bring this machine's code folders in line with the database: fetch, verify, extract, swap.

A replica that did not run an install finds the installation row but not the code. It
fetches the package from the shared store (:mod:`plugdock.instance.package_store`), verifies it
exactly as an install does (:func:`plugdock.operations.staging.stage`: safe extraction,
checksums, signature policy and this instance's trust store, the id's bound signer), checks
that it is the package the row names (sha256, id, version), and moves it into
``addons/<kind>/<id>/``. Code of plugins no row names any more is removed.

Crash safety: everything is unpacked in a private folder under ``staging/`` first. The
swap removes the old manifest (with its package marker) first and moves the new manifest
in last, so a process killed at any point leaves a plugin whose marker does not match its
row, which the next sync simply does again; the leftover folder goes with the next
recovery. The instance's file lock is held throughout, so workers of one instance (and a
local install, upgrade or uninstall) never interleave with it.
"""

from __future__ import annotations

import json
import logging
import uuid

from filelock import Timeout

from plugdock.core.db import connect_read
from plugdock.core.failpoints import failpoint
from plugdock.core.fsutil import make_private_dir, remove_tree
from plugdock.errors import PackageError, PlugdockError
from plugdock.instance.journal import read_journal
from plugdock.instance.locking import local_operation_lock
from plugdock.instance.package_store import fetch_to
from plugdock.instance.registry import Installation, read_registry, write_registry
from plugdock.operations import codefiles
from plugdock.operations.runner import Steps
from plugdock.operations.staging import stage
from plugdock.operations.workspace import Workspace
from plugdock.package.layout import METADATA_FILE
from plugdock.package.metadata import parse_metadata

log = logging.getLogger("plugdock.runtime")


def code_is_current(workspace: Workspace, row: Installation) -> bool:
    """Whether this machine holds the code of exactly the package ``row`` names."""
    return codefiles.local_package(workspace.settings.manifest_dir, row.plugin_id) == (
        row.package_sha256
    )


def orphans(workspace: Workspace, rows: list[Installation]) -> list[str]:
    """Plugin ids with code folders here but no installation row."""
    wanted = {r.plugin_id for r in rows}
    found: set[str] = set()
    for kind in codefiles.CODE_KINDS:
        folder = workspace.settings.addons_dir / kind
        if folder.is_dir():
            found.update(c.name for c in folder.iterdir() if c.is_dir() and c.name not in wanted)
    return sorted(found)


def registry_is_current(workspace: Workspace, rows: list[Installation]) -> bool:
    """Whether this machine's addon_registry.json says exactly what the rows say."""
    wanted = json.loads(json.dumps({r.plugin_id: r.as_registry_entry() for r in rows}))
    try:
        return bool(read_registry(workspace.settings.registry_path) == wanted)
    except (OSError, ValueError):  # unreadable (a crash may empty it): written anew
        return False


def needs_sync(workspace: Workspace, rows: list[Installation]) -> bool:
    """Cheap check (no lock, no database): is any code missing, stale or left over?"""
    return (
        any(not code_is_current(workspace, r) for r in rows)
        or bool(orphans(workspace, rows))
        or not registry_is_current(workspace, rows)
    )


def sync_code(
    workspace: Workspace, *, take_lock: bool = True, remove_orphans: bool = True
) -> dict[str, str]:
    """Fetch every installed plugin whose code is not here; remove code no row names.

    Returns plugin id → why its code could not be brought here (refused packages
    included); an empty dict when this machine holds exactly what the rows name.
    ``take_lock=False`` when the caller holds the instance's operation lock already.
    """
    if not take_lock:
        return _sync_locked(workspace, remove_orphans)
    # A short wait: a local operation holding the lock finishes first, and the caller's
    # next tick tries again (its plugins stay pending meanwhile).
    try:
        with local_operation_lock(workspace.settings.lock_path, timeout=1.0):
            return _sync_locked(workspace, remove_orphans)
    except Timeout:
        return {}


def _sync_locked(workspace: Workspace, remove_orphans: bool) -> dict[str, str]:
    rows = workspace.installed()
    journal = read_journal(workspace.settings.journal_path)
    busy = journal.plugin_id if journal is not None else None  # recovery's, not ours
    failures: dict[str, str] = {}
    for row in rows:
        if row.plugin_id == busy or code_is_current(workspace, row):
            continue
        if _adopt_legacy(workspace, row):
            continue
        try:
            materialize(workspace, row)
        except (PlugdockError, OSError) as exc:
            log.error("cannot bring %s %s here: %s", row.plugin_id, row.version, exc)
            failures[row.plugin_id] = str(exc)
    if journal is None and remove_orphans:
        for plugin_id in orphans(workspace, rows):
            codefiles.remove_all(workspace, plugin_id)
            log.info("removed the code of %s: it is no longer installed", plugin_id)
    if journal is None and not registry_is_current(workspace, rows):
        write_registry(workspace.settings.registry_path, rows)  # the disk's view of the rows
    return failures


def _adopt_legacy(workspace: Workspace, row: Installation) -> bool:
    """Code installed before packages were marked: the same version's manifest vouches for it."""
    manifest = workspace.code_path("manifest", row.plugin_id)
    if (manifest / codefiles.PACKAGE_MARKER).exists() or not (manifest / METADATA_FILE).is_file():
        return False
    try:
        meta = parse_metadata((manifest / METADATA_FILE).read_bytes(), source=str(manifest))
    except PlugdockError:
        return False
    if meta.id != row.plugin_id or meta.version != row.version:
        return False
    (manifest / codefiles.PACKAGE_MARKER).write_text(row.package_sha256 + "\n", encoding="ascii")
    return True


def materialize(workspace: Workspace, row: Installation) -> None:
    """Fetch ``row``'s package from the store, verify it like an install, swap its code in."""
    staging = workspace.settings.staging_dir / f"materialize-{uuid.uuid4().hex}"
    make_private_dir(staging)
    try:
        package = staging / "package.zip"
        with connect_read(workspace.engine) as conn:
            fetch_to(
                conn,
                row.package_sha256,
                package,
                after_chunk=lambda _seq: failpoint("materialize.download"),
            )
        # The install's own checks: safe extraction, checksums, signature and trust, signer.
        staged = stage(workspace, package, Steps("materialize"), staging / "unpack")
        meta = staged.meta
        if staged.info.sha256 != row.package_sha256:
            raise PackageError(f"the stored package is not {row.package_sha256[:12]}")
        if (meta.id, meta.version) != (row.plugin_id, row.version):
            raise PackageError(
                f"the stored package holds {meta.id} {meta.version}, not "
                f"{row.plugin_id} {row.version}"
            )
        codefiles.gather_manifest(staged.unpacked, row.package_sha256)
        codefiles.remove_all(workspace, row.plugin_id)  # the old marker goes first
        codefiles.move_in(workspace, staged.unpacked, row.plugin_id)  # the new one last
        log.info("fetched %s %s from the database", row.plugin_id, row.version)
    finally:
        remove_tree(staging)
