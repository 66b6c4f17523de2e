"""Uninstall keeps the rows in a backup anyone can read; ``install --restore`` brings them back
(same version, or a later one through its upgrade steps). SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import MetaData, Table, delete, insert, select

from plugdock.errors import PlugdockError
from plugdock.installer import Installer
from support import CHATBOT, CHATBOT_1_0, instance_settings, make_plugin, pack_into, snapshot

SQLITE = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
TABLES_1_0 = ("chat_sessions", "chat_messages")

SESSIONS = [
    {
        "token": "token-1",
        "guest_name": "Zoë O'Brien",
        "guest_email": "zoe@example.com",
        "guest_phone": None,
        "status": "open",
        "created_at": datetime(2026, 1, 2, 3, 4, 5),
        "updated_at": datetime(2026, 1, 2, 3, 5, 6),
    },
    {
        "token": "token-2",
        "guest_name": "deleted later",
        "guest_email": "gone@example.com",
        "guest_phone": "+1 555",
        "status": "closed",
        "created_at": datetime(2026, 2, 3, 4, 5, 6),
        "updated_at": datetime(2026, 2, 3, 4, 5, 6),
    },
    {
        "token": "token-3",
        "guest_name": '東京 🦊 "quoted" back\\slash; DROP TABLE chat_sessions; --',
        "guest_email": "tokyo@example.com",
        "guest_phone": "+81 3",
        "status": "closed",
        "created_at": datetime(2026, 3, 4, 5, 6, 7),
        "updated_at": datetime(2026, 3, 4, 23, 59, 59),
    },
]
MESSAGES = [  # (session index, sender, content)
    (0, "guest", "How much is it? It's\nurgent — €5?"),
    (0, "bot", "Prices start at 5 €. 😀"),
    (1, "guest", "this session is deleted"),
    (2, "guest", "x" * 5000),
]


def table(installer: Installer, name: str) -> Table:
    with installer.engine.connect() as conn:
        return Table(name, MetaData(), autoload_with=conn)


def fill(installer: Installer) -> None:
    """Three sessions with their messages, then the second deleted (a gap in the ids)."""
    sessions, messages = table(installer, "chat_sessions"), table(installer, "chat_messages")
    with installer.engine.begin() as conn:
        ids = [
            conn.execute(insert(sessions).values(**row)).inserted_primary_key[0] for row in SESSIONS
        ]
        for index, sender, content in MESSAGES:
            conn.execute(
                insert(messages).values(
                    session_id=ids[index],
                    sender=sender,
                    content=content,
                    created_at=datetime(2026, 1, 2, 3, 4, index),
                )
            )
        conn.execute(delete(messages).where(messages.c.session_id == ids[1]))
        conn.execute(delete(sessions).where(sessions.c.id == ids[1]))


def rows(installer: Installer, names: tuple[str, ...] = TABLES_1_0) -> dict[str, list[dict]]:
    found = {}
    reflected_tables = {name: table(installer, name) for name in names}
    with installer.engine.connect() as conn:
        for name, reflected in reflected_tables.items():
            found[name] = [
                dict(r) for r in conn.execute(select(reflected).order_by(reflected.c.id)).mappings()
            ]
    return found


@pytest.fixture
def chatbot(installer: Installer) -> Installer:
    """The chatbot 1.0.0 installed with rows; 1.0.0 and 1.1.0 offered."""
    pack_into(CHATBOT_1_0, installer.settings.plugin_local_dir)
    installer.install("ai_chatbot@1.0.0")
    fill(installer)
    return installer


def test_backup_then_restore_gives_the_same_rows(chatbot: Installer) -> None:
    installer = chatbot
    kept = rows(installer)
    assert [r["guest_name"] for r in kept["chat_sessions"]] == [
        SESSIONS[0]["guest_name"],
        SESSIONS[2]["guest_name"],
    ]

    result = installer.uninstall("ai_chatbot", backup=True)

    path = result.backup
    assert path is not None and path.parent == installer.settings.backups_dir
    assert path.name.startswith("ai_chatbot-1.0.0-") and path.suffix == ".zip"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # user data
    assert stat.S_IMODE(installer.settings.backups_dir.stat().st_mode) == 0o700
    assert installer.installed() == []
    assert list(installer.settings.backups_dir.iterdir()) == [path]  # no .partial left

    # Readable without plugdock: zipfile and json.
    with zipfile.ZipFile(path) as archive:
        names = set(archive.namelist())
        assert names == {"backup.json", "schema.sql"} | {f"tables/{t}.jsonl" for t in TABLES_1_0}
        manifest = json.loads(archive.read("backup.json"))
        schema = archive.read("schema.sql")
        lines = {
            t: [json.loads(line) for line in archive.read(f"tables/{t}.jsonl").splitlines()]
            for t in TABLES_1_0
        }
    assert (manifest["plugin_id"], manifest["version"]) == ("ai_chatbot", "1.0.0")
    assert manifest["database"] == installer.workspace.dialect
    assert {t["name"]: t["rows"] for t in manifest["tables"]} == {
        "chat_sessions": 2,
        "chat_messages": 3,
    }
    described = {t["name"]: [c["name"] for c in t["columns"]] for t in manifest["tables"]}
    assert "guest_phone" in described["chat_sessions"]
    assert schema == (CHATBOT_1_0 / "migrations" / "up.sql").read_bytes()
    assert [r["guest_name"] for r in lines["chat_sessions"]] == [
        SESSIONS[0]["guest_name"],
        SESSIONS[2]["guest_name"],
    ]
    assert lines["chat_sessions"][0]["guest_phone"] is None
    assert lines["chat_sessions"][0]["created_at"].startswith("2026-01-02T03:04:05")

    restored = installer.install("ai_chatbot", restore=path)

    assert restored.version == "1.0.0"
    assert rows(installer) == kept
    # A new row gets a fresh id, not one of the restored (PostgreSQL's identity is reset).
    sessions = table(installer, "chat_sessions")
    with installer.engine.begin() as conn:
        new_id = conn.execute(
            insert(sessions).values(
                token="token-new", guest_name="new", guest_email="n@example.com"
            )
        ).inserted_primary_key[0]
    assert new_id > max(r["id"] for r in kept["chat_sessions"])


def test_restore_into_a_later_version_runs_its_upgrade_steps(chatbot: Installer) -> None:
    installer = chatbot
    kept = rows(installer)
    backup = installer.uninstall("ai_chatbot", backup=True).backup
    assert backup is not None

    result = installer.install("ai_chatbot@1.1.0", restore=backup)

    assert result.version == "1.1.0"
    [row] = installer.installed()
    assert row.version == "1.1.0" and "chat_ratings" in row.tables
    assert result.package_sha256 == row.package_sha256  # the 1.1.0 package's, not 1.0.0's
    assert set(result.tables) == set(row.tables)
    after = rows(installer, (*TABLES_1_0, "chat_ratings"))
    assert after["chat_messages"] == kept["chat_messages"]
    assert after["chat_ratings"] == []
    # Every 1.0.0 column kept; 1.1.0's new ones back-filled by its upgrade step.
    for old, new in zip(kept["chat_sessions"], after["chat_sessions"], strict=True):
        assert {k: new[k] for k in old} == old
    assert [(r["message_count"], r["rating"]) for r in after["chat_sessions"]] == [
        (2, None),
        (1, None),
    ]
    with pytest.raises(PlugdockError, match=r"cannot go into the older 0\.9\.0"):
        installer.install("ai_chatbot@0.9.0", restore=backup)


def test_a_1_1_0_backup_with_ratings_restores_the_same(installer: Installer) -> None:
    """Three tables, two foreign keys onto chat_sessions: parents restored before children."""
    installer.install("ai_chatbot")  # 1.1.0
    fill(installer)
    sessions, ratings = table(installer, "chat_sessions"), table(installer, "chat_ratings")
    with installer.engine.begin() as conn:
        first, last = [r.id for r in conn.execute(select(sessions.c.id).order_by(sessions.c.id))]
        conn.execute(
            insert(ratings).values(
                session_id=first, stars=4, comment="gut 👍 l'été", created_at=datetime(2026, 5, 6)
            )
        )
        conn.execute(sessions.update().where(sessions.c.id == first).values(rating=4))
    names = (*TABLES_1_0, "chat_ratings")
    kept = rows(installer, names)
    backup = installer.uninstall("ai_chatbot", backup=True).backup
    assert backup is not None

    installer.install("ai_chatbot", restore=backup)

    assert rows(installer, names) == kept
    with installer.engine.begin() as conn:
        new_id = conn.execute(
            insert(ratings).values(session_id=last, stars=1)
        ).inserted_primary_key[0]
    assert new_id > kept["chat_ratings"][-1]["id"]


@pytest.mark.parametrize("database_url", ["postgresql", "mariadb"], indirect=True)
def test_a_sqlite_backup_restores_into_another_database(
    installer: Installer, tmp_path: Path
) -> None:
    """A backup is plain rows: one from SQLite restores into PostgreSQL or MariaDB."""
    side = instance_settings(tmp_path / "sqlite_side", f"sqlite:///{tmp_path / 'side.db'}")
    pack_into(CHATBOT_1_0, side.plugin_local_dir)
    source = Installer(side)
    source.workspace.rewrite_registry()
    source.install("ai_chatbot")
    fill(source)
    kept = rows(source)
    backup = source.uninstall("ai_chatbot", backup=True).backup
    source.engine.dispose()
    assert backup is not None
    pack_into(CHATBOT_1_0, installer.settings.plugin_local_dir)

    installer.install("ai_chatbot@1.0.0", restore=backup)

    assert rows(installer) == kept
    sessions = table(installer, "chat_sessions")
    with installer.engine.begin() as conn:
        new_id = conn.execute(
            insert(sessions).values(token="t-new", guest_name="n", guest_email="n@example.com")
        ).inserted_primary_key[0]
    assert new_id > kept["chat_sessions"][-1]["id"]


@SQLITE
def test_restore_into_a_later_version_is_all_or_nothing(
    installer: Installer, tmp_path: Path
) -> None:
    """The later version's upgrade fails: the backup's version is not left installed."""
    modules = installer.settings.plugin_local_dir
    pack_into(make_plugin(tmp_path / "src", "notes", "1.0.0"), modules)
    hook = (
        "from .routes import router\n\n\ndef on_upgrade(ctx, old):\n    raise RuntimeError('no')\n"
    )
    later = make_plugin(
        tmp_path / "src", "notes", "1.1.0", extra_files={"backend/__init__.py": hook}
    )
    pack_into(later, modules)
    installer.install("notes@1.0.0")
    backup = installer.uninstall("notes", backup=True).backup
    assert backup is not None
    before = {
        k: v for k, v in snapshot(installer.settings, installer.engine).items() if k != "audit"
    }

    with pytest.raises(PlugdockError, match="no"):
        installer.install("notes@1.1.0", restore=backup)

    after = snapshot(installer.settings, installer.engine)
    assert installer.installed() == []
    assert {k: v for k, v in after.items() if k not in ("audit", "generation")} == {
        k: v for k, v in before.items() if k != "generation"
    }


@SQLITE
def test_an_uninstall_whose_backup_cannot_be_written_changes_nothing(chatbot: Installer) -> None:
    installer = chatbot
    installer.settings.backups_dir.write_text("a file where the backups folder should be")
    before = snapshot(installer.settings, installer.engine)

    with pytest.raises(PlugdockError, match="step 'backup'"):
        installer.uninstall("ai_chatbot", backup=True)

    assert snapshot(installer.settings, installer.engine) == before
    assert [i.version for i in installer.installed()] == ["1.0.0"]
    assert len(rows(installer)["chat_sessions"]) == 2


def corrupt(
    source: Path,
    target: Path,
    *,
    manifest: dict[str, Any] | None = None,
    members: dict[str, bytes] | None = None,
) -> Path:
    """A copy of the backup ``source`` with backup.json patched and members replaced/added."""
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for info in old.infolist():
            data = old.read(info)
            if info.filename == "backup.json" and manifest is not None:
                data = json.dumps(json.loads(data) | manifest).encode()
            if members and info.filename in members:
                data = members[info.filename]
            new.writestr(info.filename, data)
        for name, data in (members or {}).items():
            if name not in old.namelist():
                new.writestr(name, data)
    return target


def test_wrong_and_tampered_backups_are_refused_and_change_nothing(
    chatbot: Installer, tmp_path: Path
) -> None:
    installer = chatbot
    backup = installer.uninstall("ai_chatbot", backup=True).backup
    assert backup is not None
    other = make_plugin(tmp_path / "src", "other_plugin")
    installer.install(pack_into(other, tmp_path / "zips"))
    other_backup = installer.uninstall("other_plugin", backup=True).backup
    assert other_backup is not None
    text_file = tmp_path / "notes.zip"
    text_file.write_text("not a zip at all")
    [package] = installer.settings.plugin_local_dir.glob("ai_chatbot_v1.0.0.zip")
    lines = zipfile.ZipFile(backup).read("tables/chat_sessions.jsonl").splitlines()
    null_name = json.dumps(json.loads(lines[0]) | {"guest_name": None}).encode()
    before = snapshot(installer.settings, installer.engine)

    refusals = {
        other_backup: "is a backup of other_plugin, not ai_chatbot",
        package: "is not a plugdock backup",
        text_file: "is not a plugdock backup",
        tmp_path / "missing.zip": "is not a plugdock backup",
        corrupt(backup, tmp_path / "format.zip", manifest={"format": 99}): "this version can read",
        corrupt(
            backup, tmp_path / "id.zip", manifest={"plugin_id": "../../etc"}
        ): "this version can read",
        corrupt(backup, tmp_path / "ver.zip", manifest={"version": "one"}): "not a semantic",
        corrupt(
            backup,
            tmp_path / "core.zip",
            manifest={"tables": [{"name": "addon_installations", "rows": 1, "columns": []}]},
        ): "tables this version does not create: addon_installations",
        corrupt(
            backup, tmp_path / "null.zip", members={"tables/chat_sessions.jsonl": null_name}
        ): "install failed",
    }
    for path, expected in refusals.items():
        with pytest.raises(PlugdockError, match=expected):
            installer.install("ai_chatbot", restore=path)
        assert snapshot(installer.settings, installer.engine) == before, path.name

    # A member the manifest does not list, for a core table, is never read.
    sneaky = corrupt(
        backup,
        tmp_path / "sneaky.zip",
        members={"tables/addon_installations.jsonl": b'{"plugin_id": "evil"}\n'},
    )
    installer.install("ai_chatbot", restore=sneaky)
    assert [i.plugin_id for i in installer.installed()] == ["ai_chatbot"]


@SQLITE
def test_a_backup_into_another_plugins_package_file_is_refused(
    chatbot: Installer, tmp_path: Path
) -> None:
    installer = chatbot
    backup = installer.uninstall("ai_chatbot", backup=True).backup
    assert backup is not None
    other = pack_into(make_plugin(tmp_path / "src", "other_plugin"), tmp_path / "zips")
    before = snapshot(installer.settings, installer.engine)
    with pytest.raises(PlugdockError, match="is a backup of ai_chatbot, not other_plugin"):
        installer.install(other, restore=backup)
    # 1.0.0 rows straight into 1.1.0's tables would skip its upgrade step's back-fill.
    [newer] = installer.settings.plugin_local_dir.glob("ai_chatbot_v1.1.0.zip")
    with pytest.raises(PlugdockError, match=r"holds ai_chatbot 1\.0\.0.*restore from the source"):
        installer.install(newer, restore=backup)
    assert snapshot(installer.settings, installer.engine) == before


@SQLITE
def test_a_backup_never_overwrites_an_earlier_one(chatbot: Installer) -> None:
    """Two uninstalls of one version within a second must not share a file name: earlier
    backups (named for each second of the next two minutes) stay as they were."""
    folder = chatbot.settings.backups_dir
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    now = datetime.now(UTC).replace(microsecond=0)
    earlier = {
        folder / f"ai_chatbot-1.0.0-{(now + timedelta(seconds=s)):%Y%m%dT%H%M%SZ}.zip": str(s)
        for s in range(-1, 120)
    }
    for path, marker in earlier.items():
        path.write_text(marker)

    written = chatbot.uninstall("ai_chatbot", backup=True).backup

    assert written is not None and written not in earlier and written.parent == folder
    assert {path: path.read_text() for path in earlier} == earlier
    with zipfile.ZipFile(written) as archive:
        assert len(archive.read("tables/chat_sessions.jsonl").splitlines()) == 2


def cli(installer: Installer, database_url: str, *args: str) -> subprocess.CompletedProcess:
    env = os.environ | {
        "PLUGDOCK_HOME": str(installer.settings.home),
        "PLUGIN_LOCAL_DIR": str(installer.settings.plugin_local_dir),
        "DATABASE_URL": database_url,
        "COLUMNS": "200",
    }
    return subprocess.run(
        [sys.executable, "-m", "plugdock", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.slow  # CLI runs in subprocesses
@SQLITE
def test_cli_uninstall_dry_run_no_backup_and_restore(chatbot: Installer, database_url: str) -> None:
    installer = chatbot
    kept = rows(installer)
    before = snapshot(installer.settings, installer.engine)

    shown = cli(installer, database_url, "uninstall", "ai_chatbot", "--dry-run")

    assert shown.returncode == 0, shown.stderr
    counts = {
        words[0]: words[1]
        for line in shown.stdout.splitlines()
        for words in [line.replace("│", " ").split()]
        if len(words) == 2 and words[0].startswith("chat_")
    }
    assert counts == {"chat_sessions": "2", "chat_messages": "3"}
    assert "backup" in shown.stdout
    assert snapshot(installer.settings, installer.engine) == before

    # The default writes a backup and says where; restore from the CLI brings the rows back.
    removed = cli(installer, database_url, "uninstall", "ai_chatbot")
    assert removed.returncode == 0, removed.stderr
    [backup] = installer.settings.backups_dir.glob("*.zip")
    assert backup.name in removed.stdout.replace("\n", "")
    back = cli(installer, database_url, "install", "ai_chatbot", "--restore", str(backup))
    assert back.returncode == 0, back.stderr
    assert rows(installer) == kept

    gone = cli(installer, database_url, "uninstall", "ai_chatbot", "--no-backup")
    assert gone.returncode == 0, gone.stderr
    assert "rows kept" not in gone.stdout
    assert list(installer.settings.backups_dir.glob("*.zip")) == [backup]
    assert installer.installed() == []

    refused = cli(
        installer,
        database_url,
        "install",
        "ai_chatbot",
        "--restore",
        str(CHATBOT / "metadata.json"),
    )
    assert refused.returncode != 0 and refused.stderr.startswith("error:")
    assert "not a plugdock backup" in refused.stderr
    assert installer.installed() == []
