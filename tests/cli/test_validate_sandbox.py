"""``plugdock validate`` runs no package code on the host (issue 22).

Before, validate imported the package's backend into the CLI's own process and ran its
``addon.config`` with the host's node: a package could write (or read) anything the user
running ``validate`` could. Now both run in a sandbox, or, without bubblewrap, not at all
(and the report says which checks were skipped and why).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from test_cli import plugdock

from plugdock.package.pack import package_files, write_zip
from support import make_plugin

pytestmark = pytest.mark.slow  # the CLI in subprocesses


def _marking_package(tmp_path: Path, backend_marker: Path, ui_marker: Path) -> Path:
    """A valid package whose backend import and addon.config each write a file on the host."""
    folder = make_plugin(
        tmp_path / "src",
        "marker",
        metadata={"frontend": {"routes": ["/mark"], "components": ["MarkPage"]}},
        extra_files={
            "backend/__init__.py": (
                "from pathlib import Path\n\n"
                "from .routes import router\n\n"
                "try:\n"
                f"    Path({str(backend_marker)!r}).write_text('imported on the host')\n"
                "except OSError:\n"
                "    pass  # in the sandbox: no such folder, or read-only\n"
            ),
            "frontend/addon.config.ts": (
                'import * as fs from "fs";\n'
                'import MarkPage from "./pages/MarkPage";\n'
                f"try {{ fs.writeFileSync({str(ui_marker)!r}, 'ran on the host'); }} catch {{}}\n"
                'export default { routes: [{ path: "/mark", component: MarkPage }] };\n'
            ),
            "frontend/pages/MarkPage.tsx": "export default function MarkPage() { return null; }\n",
        },
    )
    package = tmp_path / "marker_v1.0.0.zip"
    with package.open("wb") as handle:
        write_zip(handle, package_files(folder))
    return package


def test_validate_runs_the_packages_code_only_in_a_sandbox(tmp_path: Path) -> None:
    env = os.environ | {"PLUGDOCK_HOME": str(tmp_path / "instance")}
    backend_marker, ui_marker = tmp_path / "backend-ran", tmp_path / "ui-ran"
    package = _marking_package(tmp_path, backend_marker, ui_marker)

    result = plugdock(env, "validate", str(package))

    assert result.returncode == 0, result.stderr
    assert not backend_marker.exists(), "the backend was imported on the host"
    assert not ui_marker.exists(), "addon.config ran on the host"
    said = " ".join(result.stdout.split())
    assert "importing the backend" not in said  # checked, in the sandbox: not skipped
    assert "addon.config agrees" not in said


def test_without_bubblewrap_the_code_checks_are_skipped_and_said(tmp_path: Path) -> None:
    # A PATH without bwrap (python and node are called by absolute path or not at all).
    env = os.environ | {"PLUGDOCK_HOME": str(tmp_path / "instance"), "PATH": str(tmp_path)}
    backend_marker, ui_marker = tmp_path / "backend-ran", tmp_path / "ui-ran"
    package = _marking_package(tmp_path, backend_marker, ui_marker)

    result = plugdock(env, "validate", str(package))

    assert result.returncode == 0, result.stderr
    assert not backend_marker.exists() and not ui_marker.exists()
    said = " ".join(result.stdout.split())
    assert "importing the backend and the routes its router serves (skipped:" in said, said
    assert "addon.config agrees with metadata.json (skipped:" in said, said
    assert "bubblewrap" in said or "bwrap" in said, said
