"""``plugdock uninstall --force`` removes a plugin whose on_uninstall always refuses (issue 22).

Before there was no ``--force``: a plugin whose ``on_uninstall`` raised could never be
uninstalled from the command line.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest
from test_cli import plugdock

from support import make_plugin, pack_into

REFUSING = (
    "from .routes import router\n\n\n"
    "def on_uninstall(ctx):\n"
    "    raise RuntimeError('I refuse to leave')\n"
)


@pytest.mark.slow  # CLI runs in subprocesses
def test_force_removes_a_plugin_whose_on_uninstall_refuses(tmp_path: Path) -> None:
    env = os.environ | {
        "PLUGDOCK_HOME": str(tmp_path / "instance"),
        "PLUGIN_LOCAL_DIR": str(tmp_path / "modules"),
        "PLUGDOCK_ISOLATION": "inprocess",
    }
    folder = make_plugin(tmp_path / "src", "refuser", extra_files={"backend/__init__.py": REFUSING})
    pack_into(folder, tmp_path / "modules")
    assert plugdock(env, "install", "refuser").returncode == 0

    refused = plugdock(env, "uninstall", "refuser", "--no-backup")
    assert refused.returncode == 1 and "I refuse to leave" in refused.stderr, refused.stderr
    assert (tmp_path / "instance" / "addons" / "backend" / "refuser").is_dir()

    forced = plugdock(env, "uninstall", "refuser", "--no-backup", "--force")
    assert forced.returncode == 0, forced.stderr
    assert "forced" in forced.stdout
    assert not (tmp_path / "instance" / "addons" / "backend" / "refuser").exists()
    with sqlite3.connect(tmp_path / "instance" / "panel.db") as db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
        (detail,) = db.execute(
            "SELECT detail FROM plugdock_audit_log"
            " WHERE action = 'uninstall' AND plugin_id = 'refuser'"
        ).fetchone()
    assert "refuser_notes" not in tables
    assert '"forced": true' in detail
