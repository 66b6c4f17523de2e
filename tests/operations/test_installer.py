"""The installer on SQLite, PostgreSQL and MariaDB: round trips, and failure at every step."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from sqlalchemy import inspect, text

from plugdock.core.failpoints import InjectedFailure
from plugdock.errors import (
    AlreadyInstalledError,
    NotFoundError,
    NotInstalledError,
    PackageError,
    PlugdockError,
    StepError,
    UnsafeSqlError,
)
from plugdock.installer import Installer
from plugdock.instance import audit
from support import CHATBOT_TABLES, CHATBOT_VERSION, make_plugin, pack_into, snapshot

INSTALL_STEPS = [
    "fetch",
    "extract",
    "validate",
    "check_installed",
    "check_sql",
    "copy_code",
    "migrate",
    "hooks",
    "record",
    "registry",
    "commit",
]
UNINSTALL_STEPS = [
    "check_installed",
    "load_migration",
    "move_code",
    "hooks",
    "migrate",
    "registry",
    "commit",
]


def test_install_then_uninstall_leaves_no_trace(installer: Installer) -> None:
    settings = installer.settings
    before = snapshot(settings, installer.engine)

    result = installer.install("ai_chatbot", installed_by="alice")

    assert result.version == CHATBOT_VERSION
    assert set(result.tables) == CHATBOT_TABLES
    assert result.backend_routes == ["/api/v1/chat/*"]
    tables = {t.lower() for t in inspect(installer.engine).get_table_names()}
    assert tables >= CHATBOT_TABLES
    assert (settings.backend_dir / "ai_chatbot" / "routes.py").is_file()
    assert (settings.frontend_dir / "ai_chatbot" / "pages" / "ChatsPage.tsx").is_file()
    registry = json.loads(settings.registry_path.read_text())["plugins"]
    assert registry["ai_chatbot"]["version"] == CHATBOT_VERSION
    [row] = installer.installed()
    assert (row.plugin_id, row.version, row.installed_by) == (
        "ai_chatbot",
        CHATBOT_VERSION,
        "alice",
    )
    assert not settings.journal_path.exists()
    assert not any(settings.staging_dir.iterdir())
    with installer.engine.begin() as conn:  # the tables are real and usable
        conn.execute(
            text(
                "INSERT INTO chat_sessions (guest_name, guest_email, token, status, created_at, "
                "updated_at) "
                "VALUES ('a', 'a@example.com', 't1', 'open', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
            )
        )

    removed = installer.uninstall("ai_chatbot", uninstalled_by="bob")

    assert set(removed.tables_dropped) == CHATBOT_TABLES
    after = snapshot(settings, installer.engine)
    assert after["tables"] == before["tables"]
    assert after["rows"] == [] and after["applied"] == []
    assert json.loads(settings.registry_path.read_text())["plugins"] == {}
    assert not (settings.backend_dir / "ai_chatbot").exists()
    assert not (settings.frontend_dir / "ai_chatbot").exists()
    with installer.engine.connect() as conn:  # who did what is on record
        history = [(e.action, e.actor, e.plugin_id) for e in audit.query(conn)]
    assert history == [("uninstall", "bob", "ai_chatbot"), ("install", "alice", "ai_chatbot")]
    assert after["generation"] == before["generation"] + 2


def test_reinstall_after_uninstall(installer: Installer) -> None:
    installer.install("ai_chatbot")
    installer.uninstall("ai_chatbot")
    assert installer.install(f"ai_chatbot@{CHATBOT_VERSION}").version == CHATBOT_VERSION


@pytest.mark.parametrize("step", INSTALL_STEPS)
def test_failure_at_each_install_step_changes_nothing(
    installer: Installer, step: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = snapshot(installer.settings, installer.engine)
    monkeypatch.setenv("PLUGDOCK_FAILPOINTS", f"install.{step}=raise")

    with pytest.raises(StepError) as caught:
        installer.install("ai_chatbot")

    assert caught.value.step == step
    assert f"step '{step}'" in str(caught.value)
    assert isinstance(caught.value.cause, InjectedFailure)
    assert snapshot(installer.settings, installer.engine) == before
    monkeypatch.delenv("PLUGDOCK_FAILPOINTS")
    assert installer.install("ai_chatbot").version == CHATBOT_VERSION  # and nothing blocks a retry


@pytest.mark.parametrize("step", UNINSTALL_STEPS)
def test_failure_at_each_uninstall_step_changes_nothing(
    installer: Installer, step: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    installer.install("ai_chatbot")
    before = snapshot(installer.settings, installer.engine)
    monkeypatch.setenv("PLUGDOCK_FAILPOINTS", f"uninstall.{step}=raise")

    if installer.workspace.dialect == "mysql" and step in ("registry", "commit"):
        # MariaDB has already committed down.sql's DROP TABLEs: finishing is the only
        # consistent outcome, and the caller is told.
        result = installer.uninstall("ai_chatbot")
        assert "uninstall was completed" in result.warnings[0]
        assert installer.installed() == []
        assert not (installer.settings.backend_dir / "ai_chatbot").exists()
        return
    with pytest.raises(StepError) as caught:
        installer.uninstall("ai_chatbot")

    assert caught.value.step == step
    assert snapshot(installer.settings, installer.engine) == before
    monkeypatch.delenv("PLUGDOCK_FAILPOINTS")
    installer.uninstall("ai_chatbot")
    assert installer.installed() == []


def test_sql_failing_at_runtime_rolls_back_everything(installer: Installer, tmp_path: Path) -> None:
    """up.sql passes the checks but its second statement fails in the database."""
    folder = make_plugin(
        tmp_path,
        "broken_sql",
        up_sql="CREATE TABLE broken_sql_a (id INTEGER PRIMARY KEY);\n"
        "CREATE INDEX ix_broken ON broken_sql_a (no_such_column);\n",
        down_sql="DROP TABLE broken_sql_a;\n",
    )
    package = pack_into(folder, tmp_path / "zips")
    before = snapshot(installer.settings, installer.engine)

    with pytest.raises(StepError) as caught:
        installer.install(package)

    assert caught.value.step == "migrate"
    assert snapshot(installer.settings, installer.engine) == before


def test_down_sql_failing_midway(installer: Installer, tmp_path: Path) -> None:
    """SQLite/PostgreSQL undo the whole uninstall; MariaDB, which cannot, finishes it."""
    folder = make_plugin(
        tmp_path,
        "bad_down",
        up_sql="CREATE TABLE bad_down_a (id INTEGER PRIMARY KEY);\n"
        "CREATE TABLE bad_down_b (id INTEGER PRIMARY KEY);\n",
        down_sql="DROP TABLE bad_down_b;\n"
        "ALTER TABLE bad_down_a DROP COLUMN missing;\n"
        "DROP TABLE bad_down_a;\n",
    )
    installer.install(pack_into(folder, tmp_path / "zips"))
    installed = snapshot(installer.settings, installer.engine)

    if installer.workspace.dialect == "mysql":
        result = installer.uninstall("bad_down")
        assert result.warnings
        after = snapshot(installer.settings, installer.engine)
        assert after["rows"] == [] and "bad_down_a" not in after["tables"]
        assert not (installer.settings.backend_dir / "bad_down").exists()
    else:
        with pytest.raises(StepError):
            installer.uninstall("bad_down")
        assert snapshot(installer.settings, installer.engine) == installed


def test_already_installed_is_refused(installer: Installer) -> None:
    installer.install("ai_chatbot")
    before = snapshot(installer.settings, installer.engine)
    with pytest.raises(AlreadyInstalledError, match="already installed"):
        installer.install("ai_chatbot")
    assert snapshot(installer.settings, installer.engine) == before


def test_unknown_plugin_and_version(installer: Installer) -> None:
    with pytest.raises(NotFoundError):
        installer.install("no_such_plugin")
    with pytest.raises(NotFoundError, match=rf"available: {CHATBOT_VERSION}"):
        installer.install("ai_chatbot@9.9.9")
    with pytest.raises(NotInstalledError):
        installer.uninstall("ai_chatbot")


@pytest.mark.parametrize("bad_id", ["../etc", "AI", "a", "x;drop", "ai_chatbot/../x"])
def test_bad_ids_are_refused(installer: Installer, bad_id: str) -> None:
    before = snapshot(installer.settings, installer.engine)
    with pytest.raises(PlugdockError, match=r"valid plugin id|not installed"):
        installer.uninstall(bad_id)
    with pytest.raises(PlugdockError, match=r"valid plugin id|no such package"):
        installer.install(bad_id)
    assert snapshot(installer.settings, installer.engine) == before


def test_table_that_exists_already_is_refused(installer: Installer, tmp_path: Path) -> None:
    """A plugin may not take over a table it did not create (here: a core table)."""
    folder = make_plugin(
        tmp_path,
        "takeover",
        up_sql="CREATE TABLE addon_installations (id INTEGER PRIMARY KEY);\n",
        down_sql="DROP TABLE addon_installations;\n",
    )
    before = snapshot(installer.settings, installer.engine)
    with pytest.raises(PackageError, match="addon_installations"):
        installer.install(pack_into(folder, tmp_path / "zips"))
    assert snapshot(installer.settings, installer.engine) == before


BAD_SQL = {
    "drop core table": (
        "CREATE TABLE evil_t (id INTEGER PRIMARY KEY);\nDROP TABLE plugdock_users;\n",
        None,
    ),
    "pragma": ("PRAGMA writable_schema = 1;\n", None),
    "attach": ("ATTACH DATABASE '/tmp/x.db' AS x;\n", None),
    "grant": ("GRANT ALL ON evil_t TO public;\n", None),
    "outfile": (
        "CREATE TABLE evil_t (id INTEGER);\nSELECT * FROM evil_t INTO OUTFILE '/tmp/x';\n",
        None,
    ),
    "down drops core": (None, "DROP TABLE addon_installations;\n"),
    "unparseable": ("CREATE TABLE (((;\n", None),
}


@pytest.mark.parametrize("case", sorted(BAD_SQL))
def test_forbidden_sql_is_refused_before_anything_runs(
    installer: Installer, tmp_path: Path, case: str
) -> None:
    up, down = BAD_SQL[case]
    folder = make_plugin(tmp_path, "evil", up_sql=up, down_sql=down)
    before = snapshot(installer.settings, installer.engine)
    with pytest.raises(UnsafeSqlError):
        installer.install(pack_into(folder, tmp_path / "zips"))
    assert snapshot(installer.settings, installer.engine) == before


def test_incompatible_core_and_missing_dependency(installer: Installer, tmp_path: Path) -> None:
    future = make_plugin(tmp_path, "future", metadata={"requires": ">=9.0.0"})
    needy = make_plugin(tmp_path, "needy", metadata={"dependencies": {"ai_chatbot": ">=2.0.0"}})
    with pytest.raises(PackageError, match=r"needs plugdock >=9\.0\.0"):
        installer.install(pack_into(future, tmp_path / "zips"))
    with pytest.raises(PackageError, match="needs plugin ai_chatbot"):
        installer.install(pack_into(needy, tmp_path / "zips"))
    assert installer.installed() == []


def test_tables_referenced_by_another_plugin_block_its_uninstall(
    installer: Installer, tmp_path: Path
) -> None:
    base = make_plugin(tmp_path, "base_plugin")
    child = make_plugin(
        tmp_path,
        "child_plugin",
        up_sql="CREATE TABLE child_plugin_notes (id INTEGER PRIMARY KEY, base_id INTEGER, "
        "FOREIGN KEY (base_id) REFERENCES base_plugin_notes(id));\n",
        down_sql="DROP TABLE child_plugin_notes;\n",
    )
    installer.install(pack_into(base, tmp_path / "zips"))
    installer.install(pack_into(child, tmp_path / "zips"))
    before = snapshot(installer.settings, installer.engine)

    with pytest.raises(PlugdockError, match="child_plugin_notes' references 'base_plugin_notes"):
        installer.uninstall("base_plugin")

    assert snapshot(installer.settings, installer.engine) == before
    installer.uninstall("child_plugin")
    installer.uninstall("base_plugin")
    assert installer.installed() == []


def test_a_hook_that_commits_is_refused_and_undone(installer: Installer, tmp_path: Path) -> None:
    """A plugin's on_install may not commit plugdock's transaction behind its back."""
    sneaky = make_plugin(
        tmp_path,
        "sneaky",
        extra_files={
            "backend/__init__.py": "from .routes import router\n\n\n"
            "def on_install(ctx):\n    ctx.connection.commit()\n"
        },
    )
    before = snapshot(installer.settings, installer.engine)
    with pytest.raises(PackageError, match="must not commit"):
        installer.install(pack_into(sneaky, tmp_path / "zips"))
    assert snapshot(installer.settings, installer.engine) == before


def test_a_plugin_whose_code_broke_can_still_be_uninstalled(installer: Installer) -> None:
    installer.install("ai_chatbot")
    (installer.settings.backend_dir / "ai_chatbot" / "__init__.py").write_text("import gone\n")
    installer.uninstall("ai_chatbot")
    assert installer.installed() == []


def test_dependencies_and_route_namespaces(installer: Installer, tmp_path: Path) -> None:
    zips = tmp_path / "zips"
    installer.install("ai_chatbot")
    needy = make_plugin(tmp_path, "needy", metadata={"dependencies": {"ai_chatbot": ">=1.0.0"}})
    installer.install(pack_into(needy, zips))
    with pytest.raises(PlugdockError, match="ai_chatbot is needed by needy"):
        installer.uninstall("ai_chatbot")

    for plugin_id, routes, expected in (
        ("squat", ["/api/v1/chat/sessions"], "overlaps ai_chatbot's /api/v1/chat/"),
        ("greedy", ["/api/*"], "overlaps the panel's own"),
        ("login", ["/api/v1/auth/login"], "overlaps the panel's own /api/v1/auth/"),
    ):
        folder = make_plugin(tmp_path, plugin_id, metadata={"backend": {"routes": routes}})
        with pytest.raises(PackageError, match=re.escape(expected)):
            installer.install(pack_into(folder, zips))
    installer.uninstall("needy")
    installer.uninstall("ai_chatbot")
