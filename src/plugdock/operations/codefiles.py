"""A plugin's code in the instance: ``addons/<kind>/<plugin id>/`` for each kind.

"manifest" holds the package's metadata.json and CHECKSUMS.sha256, so doctor can check
every installed file against the hashes it was installed with. Moves are renames on one
filesystem (staging lives in the instance), so each is atomic.
"""

from __future__ import annotations

import os
from pathlib import Path

from plugdock.core.failpoints import failpoint
from plugdock.core.fsutil import move, move_all, remove_tree
from plugdock.operations.workspace import Workspace
from plugdock.package.layout import CHECKSUMS_FILE, METADATA_FILE

CODE_KINDS = ("backend", "frontend", "migrations", "manifest")  # manifest last: see below
# The manifest (with the package marker) arrives last and leaves first: a worker that looks
# mid-swap then finds no marker (code not current: it waits or fetches), never a marker
# beside missing code, which it would serve as "no backend" (404).
LEAVING_ORDER = ("manifest", *CODE_KINDS[:-1])
#: In ``addons/manifest/<id>/``: the sha256 of the package the installed code came from.
PACKAGE_MARKER = "package.sha256"


def gather_manifest(unpacked: Path, sha256: str) -> None:
    """Put the package's metadata and checksums in their own folder, installed like code.

    The folder also records the sha256 of the package the code came from
    (:data:`PACKAGE_MARKER`): a replica compares it with the installation row to know
    whether the code on its disk is the code the database names. The manifest moves in
    last, so the marker appears only once the rest of the code is in place.
    """
    (unpacked / "manifest").mkdir()
    for name in (METADATA_FILE, CHECKSUMS_FILE):  # inside staging: no need to make it durable
        os.rename(unpacked / name, unpacked / "manifest" / name)
    (unpacked / "manifest" / PACKAGE_MARKER).write_text(sha256 + "\n", encoding="ascii")


def local_package(manifest_dir: Path, plugin_id: str) -> str | None:
    """The sha256 of the package whose code is installed here, or None (no marker)."""
    try:
        marker = manifest_dir / plugin_id / PACKAGE_MARKER
        return marker.read_text(encoding="ascii").strip() or None
    except (FileNotFoundError, NotADirectoryError, UnicodeDecodeError):
        return None


def present_kinds(workspace: Workspace, plugin_id: str) -> list[str]:
    return [k for k in CODE_KINDS if workspace.code_path(k, plugin_id).exists()]


def move_in(workspace: Workspace, unpacked: Path, plugin_id: str) -> None:
    """Move an unpacked package's code into the instance (the places must be free).

    The code folders move together and are made durable before the manifest (with the
    package marker) moves in, so the marker is never on disk without the code.
    """
    moves = {
        kind: (unpacked / kind, workspace.code_path(kind, plugin_id))
        for kind in CODE_KINDS
        if (unpacked / kind).is_dir()
    }
    manifest = moves.pop("manifest", None)
    move_all(list(moves.values()))
    failpoint("code.moved_in")  # every other kind is in place, no marker yet
    if manifest is not None:
        move_all([manifest])


def move_out(workspace: Workspace, plugin_id: str, into: Path) -> None:
    """Move a plugin's code out of the instance, into ``into/<kind>``, the marker first."""
    for kind in LEAVING_ORDER:
        if workspace.code_path(kind, plugin_id).exists():
            move(workspace.code_path(kind, plugin_id), into / kind)
            failpoint(f"code.moved_out.{kind}")


def put_back(workspace: Workspace, plugin_id: str, stash: Path, kinds: list[str]) -> None:
    """Make the instance hold exactly the stashed code of ``kinds`` again.

    A kind in ``kinds`` whose stash is gone was never moved out (or is back already), so
    it stays; a kind not in ``kinds`` did not exist before, so whatever is there goes.
    """
    for kind in CODE_KINDS:
        target = workspace.code_path(kind, plugin_id)
        if kind in kinds:
            if (stash / kind).exists():
                remove_tree(target)
                move(stash / kind, target)
        else:
            remove_tree(target)


def remove_all(workspace: Workspace, plugin_id: str) -> None:
    """Remove every kind of a plugin's code, the marker first."""
    for kind in LEAVING_ORDER:
        remove_tree(workspace.code_path(kind, plugin_id))
