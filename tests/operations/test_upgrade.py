"""Upgrades in place: data carried forward, and the old version intact after any failure."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import inspect, text
from test_recovery import run_cli

from db_servers import DATABASES
from plugdock.errors import AlreadyInstalledError, NotInstalledError, PackageError, StepError
from plugdock.installer import Installer
from plugdock.instance import audit
from plugdock.operations.upgrade import DowngradeError
from support import CHATBOT, CHATBOT_1_0, CHATBOT_1_0_TABLES, make_plugin, pack_into, snapshot

UPGRADE_STEPS = [
    "check_installed",
    "fetch",
    "extract",
    "validate",
    "check_sql",
    "swap_code",
    "migrate",
    "hooks",
    "record",
    "registry",
    "commit",
]


@pytest.fixture
def on_1_0(installer: Installer) -> Installer:
    """The chatbot 1.0.0 installed, with a conversation in its tables; 1.1.0 offered."""
    modules = installer.settings.plugin_local_dir
    for zip_file in modules.glob("ai_chatbot_*.zip"):
        zip_file.unlink()
    pack_into(CHATBOT_1_0, modules)
    installer.install("ai_chatbot", installed_by="alice")
    pack_into(CHATBOT, modules)
    with installer.engine.begin() as conn:
        for n in (1, 2):
            conn.execute(
                text(
                    "INSERT INTO chat_sessions (guest_name, guest_email, token, status, "
                    "created_at, updated_at) VALUES (:n, :e, :t, 'open', CURRENT_TIMESTAMP, "
                    "CURRENT_TIMESTAMP)"
                ),
                {"n": f"guest {n} \u00fc'", "e": f"g{n}@example.com", "t": f"token-{n}"},
            )
        for session, count in ((1, 3), (2, 1)):
            for i in range(count):
                conn.execute(
                    text(
                        "INSERT INTO chat_messages (session_id, sender, content, created_at) "
                        "VALUES (:s, 'guest', :c, CURRENT_TIMESTAMP)"
                    ),
                    {"s": session, "c": f"message {i}"},
                )
    return installer


def rows(installer: Installer, table: str, only: list[str] | None = None) -> list[tuple]:
    """The table's rows (of the columns ``only``, or all), in id order."""
    listed = ", ".join(only) if only else "*"
    with installer.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(f"SELECT {listed} FROM {table} ORDER BY id"))]


def columns(installer: Installer, table: str) -> list[str]:
    return sorted(c["name"] for c in inspect(installer.engine).get_columns(table))


def test_upgrade_keeps_every_row_and_back_fills(on_1_0: Installer) -> None:
    installer = on_1_0
    messages = rows(installer, "chat_messages")

    result = installer.upgrade("ai_chatbot", upgraded_by="bob")

    assert (result.from_version, result.version, result.steps) == ("1.0.0", "1.1.0", ["1.1.0"])
    assert set(result.tables) == CHATBOT_1_0_TABLES | {"chat_ratings"}
    assert rows(installer, "chat_messages") == messages
    with installer.engine.connect() as conn:
        counts = conn.execute(
            text("SELECT id, guest_name, message_count, rating FROM chat_sessions ORDER BY id")
        ).all()
    assert [tuple(c) for c in counts] == [
        (1, "guest 1 \u00fc'", 3, None),
        (2, "guest 2 \u00fc'", 1, None),
    ]
    [row] = installer.installed()
    assert (row.version, row.installed_by, set(row.tables)) == (
        "1.1.0",
        "alice",  # who installed it stays; the upgrade is in the audit log
        set(result.tables),
    )
    registry = json.loads(installer.settings.registry_path.read_text())["plugins"]
    assert registry["ai_chatbot"]["version"] == "1.1.0"
    manifest = installer.settings.manifest_dir / "ai_chatbot" / "metadata.json"
    assert json.loads(manifest.read_text())["version"] == "1.1.0"
    with installer.engine.connect() as conn:
        [entry] = [e for e in audit.query(conn, limit=10) if e.action == audit.UPGRADE]
        applied = conn.execute(
            text("SELECT version, name FROM plugdock_plugin_migrations ORDER BY version")
        ).all()
    assert (entry.actor, entry.version, entry.detail["from"]) == ("bob", "1.1.0", "1.0.0")
    assert [tuple(a) for a in applied] == [("1.0.0", "initial"), ("1.1.0", "upgrade")]
    assert not installer.settings.journal_path.exists()
    assert not any(installer.settings.staging_dir.iterdir())

    # Uninstalling the upgraded plugin removes every table, the upgrade's too.
    installer.uninstall("ai_chatbot")
    left = {t.lower() for t in inspect(installer.engine).get_table_names()}
    assert not left & (CHATBOT_1_0_TABLES | {"chat_ratings"})


def test_upgraded_schema_equals_a_fresh_install(on_1_0: Installer, tmp_path: Path) -> None:
    on_1_0.upgrade("ai_chatbot")
    upgraded = {t: columns(on_1_0, t) for t in ("chat_sessions", "chat_messages", "chat_ratings")}
    on_1_0.uninstall("ai_chatbot")
    on_1_0.install("ai_chatbot@1.1.0")
    fresh = {t: columns(on_1_0, t) for t in upgraded}
    assert upgraded == fresh


# Steps before the code swap touch no database: SQLite covers them; the rest run on all three.
BEFORE_SWAP = UPGRADE_STEPS[: UPGRADE_STEPS.index("swap_code")]


@pytest.mark.parametrize(
    ("database_url", "step"),
    [("sqlite", step) for step in BEFORE_SWAP]
    + [(db, step) for db in DATABASES for step in UPGRADE_STEPS if step not in BEFORE_SWAP],
    indirect=["database_url"],
)
def test_failed_upgrade_leaves_the_old_version(
    on_1_0: Installer, step: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    installer = on_1_0
    before = snapshot(installer.settings, installer.engine)
    shape = {t: columns(installer, t) for t in CHATBOT_1_0_TABLES}
    data = {t: rows(installer, t, shape[t]) for t in CHATBOT_1_0_TABLES}

    monkeypatch.setenv("PLUGDOCK_FAILPOINTS", f"upgrade.{step}=raise")
    with pytest.raises(StepError) as failed:
        installer.upgrade("ai_chatbot")
    monkeypatch.delenv("PLUGDOCK_FAILPOINTS")

    assert f"step '{step}'" in str(failed.value)
    assert snapshot(installer.settings, installer.engine) == before
    # Every row as it was, in the columns 1.0.0 has (MariaDB may keep an added column).
    assert {t: rows(installer, t, shape[t]) for t in CHATBOT_1_0_TABLES} == data
    # MariaDB committed the ALTER TABLEs; compensation dropped the new column and index again.
    assert {t: columns(installer, t) for t in CHATBOT_1_0_TABLES} == shape
    assert "rolled back, except" not in str(failed.value)
    assert installer.upgrade("ai_chatbot").version == "1.1.0"  # nothing blocks a retry


def test_refusals_change_nothing(on_1_0: Installer, tmp_path: Path) -> None:
    installer = on_1_0
    installer.upgrade("ai_chatbot")
    before = snapshot(installer.settings, installer.engine)
    with pytest.raises(DowngradeError, match="older than the installed"):
        installer.upgrade("ai_chatbot", package=pack_into(CHATBOT_1_0, tmp_path / "old"))
    with pytest.raises(DowngradeError):
        installer.upgrade("ai_chatbot", "1.0.0")
    with pytest.raises(AlreadyInstalledError):
        installer.upgrade("ai_chatbot", "1.1.0")
    with pytest.raises(NotInstalledError):
        installer.upgrade("nothing_here")
    other = make_plugin(tmp_path / "src", "other_plugin", "2.0.0")
    with pytest.raises(PackageError, match="holds plugin 'other_plugin'"):
        installer.upgrade("ai_chatbot", package=pack_into(other, tmp_path / "other"))
    assert snapshot(installer.settings, installer.engine) == before


def _notes_plugin(parent: Path, version: str, **kwargs) -> Path:  # type: ignore[no-untyped-def]
    return make_plugin(parent, "notes", version, **kwargs)


def _upgradable(installer: Installer, tmp_path: Path, **v2) -> None:  # type: ignore[no-untyped-def]
    """notes 1.0.0 installed; a 1.1.0 built from ``v2`` offered."""
    modules = installer.settings.plugin_local_dir
    pack_into(_notes_plugin(tmp_path / "v1", "1.0.0"), modules)
    installer.install("notes")
    pack_into(_notes_plugin(tmp_path / "v2", "1.1.0", **v2), modules)


def test_a_step_touching_the_core_is_refused(installer: Installer, tmp_path: Path) -> None:
    _upgradable(
        installer,
        tmp_path,
        extra_files={"migrations/versions/1.1.0/up.sql": "DELETE FROM plugdock_users;\n"},
    )
    before = snapshot(installer.settings, installer.engine)
    with pytest.raises(PackageError, match="users"):
        installer.upgrade("notes")
    assert snapshot(installer.settings, installer.engine) == before


def test_steps_that_do_not_reach_the_new_schema_are_refused(
    installer: Installer, tmp_path: Path
) -> None:
    _upgradable(
        installer,
        tmp_path,
        up_sql="CREATE TABLE notes_notes (id INTEGER PRIMARY KEY AUTOINCREMENT, body TEXT "
        "NOT NULL, pinned BOOLEAN NOT NULL DEFAULT 0);\n",
    )  # no step adds "pinned"
    before = snapshot(installer.settings, installer.engine)
    with pytest.raises(PackageError, match="pinned"):
        installer.upgrade("notes")
    assert snapshot(installer.settings, installer.engine) == before


HOOKED = (
    "from sqlalchemy import text\n"
    "from .routes import router\n\n"
    "def on_upgrade(ctx, from_version):\n"
    "    if ctx.settings.get('fail_upgrade'):  # PLUGDOCK_PLUGIN_NOTES_FAIL_UPGRADE\n"
    "        raise RuntimeError('on_upgrade refused')\n"
    "    ctx.connection.execute(text('INSERT INTO notes_notes (body) VALUES (:b)'),\n"
    "                           {'b': f'from {from_version} to {ctx.version}'})\n"
)


def test_on_upgrade_runs_in_the_transaction(
    installer: Installer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _upgradable(installer, tmp_path, extra_files={"backend/__init__.py": HOOKED})
    monkeypatch.setenv("PLUGDOCK_PLUGIN_NOTES_FAIL_UPGRADE", "1")  # the hook's own setting
    before = snapshot(installer.settings, installer.engine)
    with pytest.raises(StepError, match="on_upgrade refused"):
        installer.upgrade("notes")
    assert snapshot(installer.settings, installer.engine) == before

    monkeypatch.delenv("PLUGDOCK_PLUGIN_NOTES_FAIL_UPGRADE")
    installer.upgrade("notes")
    assert [r[1] for r in rows(installer, "notes_notes")] == ["hello", "from 1.0.0 to 1.1.0"]


HEALTH_ROUTES = (
    "import os, time\n"
    "from fastapi import APIRouter, HTTPException\n"
    "from sqlalchemy import text\n"
    "from plugdock import sdk\n\n"
    "router = APIRouter(prefix='/api/v1/notes')\n\n"
    "@router.get('/health')\n"
    "def health(db: sdk.DbSession) -> dict:\n"
    "    mode = os.environ.get('NOTES_HEALTH', 'ok')\n"
    "    if mode == 'hang':\n"
    "        time.sleep(3)\n"
    "    if mode == 'fail':\n"
    "        raise HTTPException(500, 'not ready')\n"
    "    # reads the upgraded table inside the operation's own transaction\n"
    "    return {'notes': db.execute(text('SELECT COUNT(*) FROM notes_notes')).scalar()}\n"
)


@pytest.mark.parametrize(
    "mode",
    ["fail", pytest.param("hang", marks=pytest.mark.slow)],  # waits out the timeout
)
def test_failing_health_check_rolls_back(
    installer: Installer, tmp_path: Path, mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    health = {
        "metadata": {"backend": {"routes": ["/api/v1/notes/*"], "health": "/api/v1/notes/health"}},
        "extra_files": {"backend/routes.py": HEALTH_ROUTES},
    }
    _upgradable(installer, tmp_path, **health)
    installer.settings.health_timeout = 1.0
    before = snapshot(installer.settings, installer.engine)
    monkeypatch.setenv("NOTES_HEALTH", mode)
    expected = "answered 500" if mode == "fail" else "did not answer within 1 s"
    with pytest.raises(PackageError, match=expected):
        installer.upgrade("notes")
    assert snapshot(installer.settings, installer.engine) == before

    monkeypatch.setenv("NOTES_HEALTH", "ok")
    assert installer.upgrade("notes").version == "1.1.0"

    # An install whose health check fails is not installed at all.
    installer.uninstall("notes")
    monkeypatch.setenv("NOTES_HEALTH", mode)
    empty = snapshot(installer.settings, installer.engine)
    with pytest.raises(PackageError, match=expected):
        installer.install("notes")
    assert snapshot(installer.settings, installer.engine)["rows"] == empty["rows"]


# Kill points before the commit roll back to 1.0.0; the one after it finishes on 1.1.0.
@pytest.mark.slow  # CLI runs in subprocesses, killed
@pytest.mark.parametrize(
    ("step", "finished"),
    [
        ("swap_code", False),
        ("migrate", False),
        ("hooks", False),
        ("record", False),
        ("registry", False),
        ("commit", False),
        ("cleanup", True),
    ],
)
@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
def test_killed_upgrade_is_recovered(on_1_0: Installer, step: str, finished: bool) -> None:
    installer = on_1_0
    settings = installer.settings
    before = snapshot(settings, installer.engine)
    data = {t: rows(installer, t) for t in CHATBOT_1_0_TABLES}

    crashed = run_cli(settings, "upgrade", "ai_chatbot", failpoints=f"upgrade.{step}=kill")
    assert crashed.returncode == -9, crashed.stderr
    assert settings.journal_path.exists()

    listed = run_cli(settings, "list")  # any command settles the journal first
    assert listed.returncode == 0, listed.stderr
    assert "recovered" in listed.stderr
    [row] = installer.installed()
    after = snapshot(settings, installer.engine)
    assert not after["journal"] and not after["staging"]
    if finished:
        assert row.version == "1.1.0"
        assert "chat_ratings" in after["tables"]
    else:
        assert after == before
        assert {t: rows(installer, t) for t in CHATBOT_1_0_TABLES} == data
        assert "message_count" not in columns(installer, "chat_sessions")
    assert run_cli(settings, "upgrade", "ai_chatbot").returncode == (1 if finished else 0)
