"""``plugdock doctor --repair``: put back an installed plugin's files from its own package."""

from __future__ import annotations

import uuid

from plugdock.core.fsutil import make_private_dir, move, remove_tree
from plugdock.errors import PlugdockError
from plugdock.instance.registry import Installation
from plugdock.operations import codefiles
from plugdock.operations.workspace import Workspace


def restore_code(ws: Workspace, installation: Installation) -> None:
    """Put back an installed plugin's files from the very package it was installed from.

    Call with the lock held. The package is fetched again and must have the recorded
    sha256, so a changed package on the source can never slip in this way.
    """
    from plugdock.package.archive import extract_package

    staging = ws.settings.staging_dir / uuid.uuid4().hex
    try:
        fetched = ws.source.fetch(installation.plugin_id, installation.version)
        make_private_dir(staging)
        info = extract_package(fetched.path, staging / "package", ws.limits)
        if info.sha256 != installation.package_sha256:
            raise PlugdockError(
                f"the source's {installation.plugin_id} {installation.version} is not the "
                "package that was installed (sha256 differs)"
            )
        unpacked = staging / "package"
        codefiles.gather_manifest(unpacked, installation.package_sha256)
        for kind in codefiles.CODE_KINDS:
            remove_tree(ws.code_path(kind, installation.plugin_id))
            if (unpacked / kind).is_dir():
                move(unpacked / kind, ws.code_path(kind, installation.plugin_id))
    finally:
        remove_tree(staging)
