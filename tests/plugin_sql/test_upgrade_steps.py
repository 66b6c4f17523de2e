"""Upgrade steps (migrations/versions/<x.y.z>/up.sql): rules, order, running on real databases,
schema equivalence with a fresh install, MariaDB compensation, validate and the package format."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import pytest
from sqlalchemy import Engine, inspect, select, text

from plugdock.checks.validate import validate_package
from plugdock.core.db import dialect_name, plugin_migrations
from plugdock.errors import PackageError, UnsafeSqlError
from plugdock.package.archive import Limits, inspect_package
from plugdock.package.changelog import MAX_CHANGELOG_BYTES, TRUNCATED_NOTE, read_changelog
from plugdock.package.pack import pack
from plugdock.plugin_sql.migrations import apply_up, load_migration, transactional_ddl
from plugdock.plugin_sql.upgrade_steps import (
    STEP_NAME,
    UpgradeStepError,
    applied_upgrade_steps,
    apply_upgrade_steps,
    check_upgrade_schema,
    compensate_upgrade,
    load_upgrade_steps,
    resulting_tables,
    step_versions,
)
from support import make_plugin

REPO = Path(__file__).resolve().parents[2]
CHATBOT_NEW = REPO / "examples" / "plugins" / "ai_chatbot"
CHATBOT_OLD = REPO / "examples" / "releases" / "ai_chatbot-1.0.0"
DIALECTS = ["sqlite", "postgresql", "mysql"]
STEP_FILE = "migrations/versions/1.1.0/up.sql"

NOTES_UP = """\
CREATE TABLE notes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    title VARCHAR(100) NOT NULL,
    body TEXT NULL
);
CREATE INDEX ix_notes_title ON notes (title);
"""
NOTES_DOWN = "DROP TABLE notes;\n"


def write_steps(root: Path, steps: dict[str, str], up: str = NOTES_UP) -> Path:
    """``root/migrations`` with up/down.sql and ``steps`` ({"1.1.0": sql, "1.1.0/mysql": sql})."""
    migrations = root / "migrations"
    migrations.mkdir(parents=True, exist_ok=True)
    (migrations / "up.sql").write_text(up)
    (migrations / "down.sql").write_text(NOTES_DOWN)
    for name, sql in steps.items():
        folder = migrations / "versions" / name
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "up.sql").write_text(sql)
    return migrations


def load(migrations: Path, dialect: str = "sqlite", **kwargs: object) -> list:
    args = {"from_version": "1.0.0", "to_version": "9.0.0", "owned_tables": ["notes"]} | kwargs
    return load_upgrade_steps(migrations, dialect, **args)  # type: ignore[arg-type]


# ---------------------------------------------------------------- rules


ALLOWED = [
    "ALTER TABLE notes ADD COLUMN pinned BOOLEAN NOT NULL DEFAULT FALSE",
    # FK to core: ok
    "ALTER TABLE notes ADD COLUMN owner_id INTEGER NULL REFERENCES plugdock_users(id)",
    "ALTER TABLE notes DROP COLUMN body",
    "ALTER TABLE notes RENAME COLUMN body TO text",
    "CREATE TABLE tags (id INTEGER PRIMARY KEY, note_id INTEGER REFERENCES notes(id));"
    " CREATE INDEX ix_tags_note ON tags (note_id);"
    " INSERT INTO tags (note_id) SELECT id FROM notes;"
    " DROP INDEX ix_tags_note; DROP TABLE tags",
    "INSERT INTO notes (title) VALUES ('it''s;fine')",
    "UPDATE notes SET title = upper(title) WHERE id IN (SELECT id FROM notes WHERE body IS NULL)",
    "DELETE FROM notes WHERE title = ''",
    "CREATE INDEX ix_notes_body ON notes (body)",
    "DROP INDEX ix_notes_title ON notes",
    "DROP TABLE notes",
]


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("sql", ALLOWED)
def test_allowed_statements(tmp_path: Path, sql: str, dialect: str) -> None:
    steps = load(write_steps(tmp_path, {"1.1.0": sql}), dialect)
    assert [s.version for s in steps] == ["1.1.0"]
    assert len(steps[0].statements) == len(sql.split("; "))  # a ; in a string stays put


REFUSED = [
    # plugdock's tables
    ("ALTER TABLE plugdock_users ADD COLUMN x INTEGER", "own tables"),
    ("UPDATE plugdock_users SET role = 'admin'", "own tables"),
    ("DELETE FROM addon_installations", "own tables"),
    ("DROP TABLE plugdock_users", "own tables"),
    ("DROP INDEX ix_users_username ON plugdock_users", "own tables"),
    ("CREATE INDEX ix_mine ON plugdock_users (username)", "created earlier"),
    ("CREATE TABLE plugdock_users (id INTEGER)", "plugdock's own tables"),
    ("CREATE TABLE IF NOT EXISTS plugdock_plugin_migrations (id INTEGER)", "plugdock's own tables"),
    # reading them
    (
        "INSERT INTO notes (title) SELECT password_hash FROM plugdock_users",
        "not one of the plugin's",
    ),
    (
        "UPDATE notes SET title = (SELECT password_hash FROM plugdock_users LIMIT 1)",
        "not one of the plugin's",
    ),
    ("DELETE FROM notes WHERE id IN (SELECT id FROM plugdock_users)", "not one of the plugin's"),
    (
        "UPDATE notes SET title = 'x' FROM plugdock_users WHERE users.id = notes.id",
        "not one of the plugin's",
    ),
    (
        "WITH u AS (SELECT id FROM plugdock_users) UPDATE notes SET title = 'x' "
        "WHERE id IN (SELECT id FROM u)",
        "not one of the plugin's",
    ),
    # another plugin's table
    ("ALTER TABLE billing_invoices ADD COLUMN x INTEGER", "own tables"),
    ("DELETE FROM billing_invoices", "own tables"),
    ("DROP TABLE billing_invoices", "own tables"),
    # qualified names
    ("ALTER TABLE main.notes ADD COLUMN x INTEGER", "qualified"),
    ("UPDATE public.notes SET title = 'x'", "qualified"),
    ("INSERT INTO notes (title) SELECT name FROM otherdb.users", "qualified"),
    # statements a step may not hold
    ("ALTER TABLE notes RENAME TO users", "RENAME"),
    ("CREATE TABLE notes (id INTEGER)", "already belongs"),
    ("CREATE VIEW v AS SELECT * FROM notes", "not allowed here"),
    ("DROP INDEX ix_somebody_elses", "ON <table>"),
    ("SELECT * FROM notes", "not allowed here"),
    ("PRAGMA foreign_keys = OFF", "not"),
    ("ATTACH DATABASE '/tmp/x.db' AS x", "not"),
    ("BEGIN", "transaction control"),
    ("COMMIT", "transaction control"),
    ("DROP TABLE notes CASCADE", "CASCADE"),
    ("UPDATE notes SET title = load_file('/etc/passwd')", "load_file"),
    ("UPDATE notes SET title = pg_read_file('/etc/passwd')", "pg_read_file"),
    ("DROP TABLE notes; DELETE FROM notes", "own tables"),  # gone after the drop
]


@pytest.mark.parametrize(("sql", "reason"), REFUSED)
def test_refused_statements_name_file_and_statement(tmp_path: Path, sql: str, reason: str) -> None:
    with pytest.raises(UnsafeSqlError) as caught:
        load(write_steps(tmp_path, {"1.1.0": f"-- a step\n{sql};\n"}))
    assert caught.value.file == STEP_FILE
    assert reason in caught.value.reason
    assert caught.value.statement in sql
    assert STEP_FILE in str(caught.value)


def test_refusal_in_a_dialect_override_names_that_file(tmp_path: Path) -> None:
    migrations = write_steps(tmp_path, {"1.1.0": "DELETE FROM notes"})
    override = migrations / "versions" / "1.1.0" / "postgresql" / "up.sql"
    override.parent.mkdir()
    override.write_text("DELETE FROM plugdock_users")
    assert load(migrations, "mysql")  # the portable file
    with pytest.raises(UnsafeSqlError) as caught:
        load(migrations, "postgresql")
    assert caught.value.file == "migrations/versions/1.1.0/postgresql/up.sql"


@pytest.mark.parametrize(
    ("folder", "message"),
    [
        ("v1.1.0", "semantic version"),
        ("1.1", "semantic version"),
        ("1.1.0+build", "plainly"),
        ("01.1.0", "semantic version"),
    ],
)
def test_step_folder_names_must_be_versions(tmp_path: Path, folder: str, message: str) -> None:
    migrations = write_steps(tmp_path, {folder: "DELETE FROM notes"})
    with pytest.raises(PackageError, match=message):
        step_versions(migrations)


def test_step_folder_holds_only_up_sql(tmp_path: Path) -> None:
    migrations = write_steps(tmp_path, {"1.1.0": "DELETE FROM notes"})
    (migrations / "versions" / "1.1.0" / "down.sql").write_text("DROP TABLE notes")
    with pytest.raises(PackageError, match="downgrades are refused"):
        step_versions(migrations)


# ---------------------------------------------------------------- order, range, applied


def test_steps_run_in_semver_order_within_the_range(tmp_path: Path) -> None:
    migrations = write_steps(
        tmp_path,
        {
            "1.10.0": "ALTER TABLE tags ADD COLUMN colour VARCHAR(20) NULL",
            "1.2.0": "CREATE TABLE tags (id INTEGER PRIMARY KEY, name VARCHAR(50) NOT NULL)",
            "1.9.0": "CREATE INDEX ix_tags_name ON tags (name)",
            "2.0.0": "DROP TABLE tags",
            "1.2.0-rc.1": "DELETE FROM notes",
        },
    )
    assert step_versions(migrations) == ["1.2.0-rc.1", "1.2.0", "1.9.0", "1.10.0", "2.0.0"]
    steps = load(migrations, from_version="1.1.0", to_version="1.10.0")
    assert [s.version for s in steps] == ["1.2.0-rc.1", "1.2.0", "1.9.0", "1.10.0"]
    assert steps[1].created == ("tags",)
    assert resulting_tables(["notes"], steps) == ["notes", "tags"]

    everything = load(migrations, from_version="1.0.0", to_version="2.0.0")
    assert everything[-1].dropped == ("tags",)
    assert resulting_tables(["notes"], everything) == ["notes"]

    # From 1.9.0 only the later steps run; tags is the installed version's table by then.
    later = load(
        migrations, from_version="1.9.0", to_version="2.0.0", owned_tables=["notes", "tags"]
    )
    assert [s.version for s in later] == ["1.10.0", "2.0.0"]
    with pytest.raises(UnsafeSqlError, match="own tables"):  # ...and is needed
        load(migrations, from_version="1.9.0", to_version="2.0.0")
    with pytest.raises(PackageError, match="not a newer version"):
        load(migrations, from_version="2.0.0", to_version="1.10.0")


def test_applied_steps_are_skipped_but_still_count(tmp_path: Path) -> None:
    migrations = write_steps(
        tmp_path,
        {
            "1.1.0": "CREATE TABLE tags (id INTEGER PRIMARY KEY)",
            "1.2.0": "ALTER TABLE tags ADD COLUMN name VARCHAR(50) NULL",
        },
    )
    steps = load(migrations, applied={"1.1.0"})
    assert [s.version for s in steps] == ["1.2.0"]  # and it may alter the table 1.1.0 made
    assert resulting_tables(["notes", "tags"], steps) == ["notes", "tags"]


# ---------------------------------------------------------------- real databases


def install_chatbot_1_0(engine: Engine) -> tuple[str, ...]:
    """1.0.0's tables, two sessions with messages (one with a % and a quote)."""
    migration = load_migration(CHATBOT_OLD / "migrations", dialect_name(engine))
    with engine.begin() as conn:
        apply_up(conn, "ai_chatbot", "1.0.0", migration)
        sessions = text(
            "INSERT INTO chat_sessions (token, guest_name, guest_email) VALUES (:t, :n, :e)"
        )
        for n, name in enumerate(["ann", "o'brien 100%"], start=1):
            conn.execute(sessions, {"t": f"t{n}", "n": name, "e": f"x{n}@example.com"})
        messages = text(
            "INSERT INTO chat_messages (session_id, sender, content) VALUES (:s, :w, :c)"
        )
        for session, sender, content in [
            (1, "guest", "hi"),
            (1, "bot", "hello"),
            (1, "guest", "bye"),
            (2, "bot", "yo"),
        ]:
            conn.execute(messages, {"s": session, "w": sender, "c": content})
    return migration.tables


def chatbot_steps(engine: Engine, owned: tuple[str, ...], migrations: Path | None = None) -> list:
    return load_upgrade_steps(
        migrations or CHATBOT_NEW / "migrations",
        dialect_name(engine),
        from_version="1.0.0",
        to_version="1.1.0",
        owned_tables=owned,
    )


def rows(engine: Engine, sql: str) -> list[tuple]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.exec_driver_sql(sql)]


def test_chatbot_upgrade_keeps_rows_and_back_fills(engine: Engine) -> None:
    owned = install_chatbot_1_0(engine)
    steps = chatbot_steps(engine, owned)
    assert [(s.version, s.created, s.dropped) for s in steps] == [("1.1.0", ("chat_ratings",), ())]
    with engine.begin() as conn:
        apply_upgrade_steps(conn, "ai_chatbot", steps)

    assert rows(
        engine, "SELECT id, guest_name, message_count, rating FROM chat_sessions ORDER BY id"
    ) == [
        (1, "ann", 3, None),
        (2, "o'brien 100%", 1, None),
    ]
    assert rows(engine, "SELECT COUNT(*) FROM chat_messages") == [(4,)]
    assert set(resulting_tables(owned, steps)) <= set(inspect(engine).get_table_names())
    indexes = {i["name"] for i in inspect(engine).get_indexes("chat_sessions")}
    assert "ix_chat_sessions_rating" in indexes
    with engine.connect() as conn:
        assert applied_upgrade_steps(conn, "ai_chatbot") == {"1.1.0"}
        record = conn.execute(
            select(plugin_migrations).where(plugin_migrations.c.name == STEP_NAME)
        ).one()
    assert (record.plugin_id, record.version, record.checksum) == (
        "ai_chatbot",
        "1.1.0",
        steps[0].checksum,
    )
    assert json.loads(record.statements) == list(steps[0].statements)
    # A retry finds nothing left to run.
    with engine.connect() as conn:
        applied = applied_upgrade_steps(conn, "ai_chatbot")
    again = load_upgrade_steps(
        CHATBOT_NEW / "migrations",
        dialect_name(engine),
        from_version="1.0.0",
        to_version="1.1.0",
        owned_tables=owned,
        applied=applied,
    )
    assert again == []


def test_upgraded_columns_on_every_database(engine: Engine) -> None:
    owned = install_chatbot_1_0(engine)
    with engine.begin() as conn:
        apply_upgrade_steps(conn, "ai_chatbot", chatbot_steps(engine, owned))
    # Types are compared on SQLite by check_upgrade_schema; here: what each database made.
    columns = {
        t: {(c["name"], c["nullable"]) for c in inspect(engine).get_columns(t)}
        for t in ("chat_sessions", "chat_ratings")
    }
    assert {("message_count", False), ("rating", True)} <= columns["chat_sessions"]
    assert {c for c, _ in columns["chat_ratings"]} == {
        "id",
        "session_id",
        "stars",
        "comment",
        "created_at",
    }
    keys = inspect(engine).get_foreign_keys("chat_ratings")
    assert [(k["constrained_columns"], k["referred_table"]) for k in keys] == [
        (["session_id"], "chat_sessions")
    ]


def test_a_failing_step_rolls_back_where_ddl_is_transactional(
    engine: Engine, tmp_path: Path
) -> None:
    owned = install_chatbot_1_0(engine)
    broken = tmp_path / "migrations"
    shutil.copytree(CHATBOT_NEW / "migrations", broken)
    step = broken / "versions" / "1.1.0" / "up.sql"
    # A message for a session that does not exist: the foreign key refuses it, last of all.
    step.write_text(
        step.read_text()
        + "\nINSERT INTO chat_messages (session_id, sender, content) VALUES (999, 'bot', 'x');\n"
    )
    steps = chatbot_steps(engine, owned, broken)
    before = rows(engine, "SELECT * FROM chat_sessions ORDER BY id")
    columns_before = {c["name"] for c in inspect(engine).get_columns("chat_sessions")}

    with (
        pytest.raises(
            UpgradeStepError, match=r"upgrade step 1\.1\.0 failed at .INSERT INTO chat_messages"
        ),
        engine.begin() as conn,
    ):
        if engine.dialect.name == "sqlite":
            conn.exec_driver_sql("PRAGMA foreign_keys = ON")
        apply_upgrade_steps(conn, "ai_chatbot", steps)

    undone = compensate_upgrade(engine, "ai_chatbot", steps)
    tables = set(inspect(engine).get_table_names())
    assert "chat_ratings" not in tables
    with engine.connect() as conn:
        assert applied_upgrade_steps(conn, "ai_chatbot") == set()
    assert rows(engine, "SELECT COUNT(*) FROM chat_messages") == [(4,)]
    columns_after = {c["name"] for c in inspect(engine).get_columns("chat_sessions")}
    if transactional_ddl(engine):
        assert undone == []
        assert columns_after == columns_before
        assert rows(engine, "SELECT * FROM chat_sessions ORDER BY id") == before
    else:
        # MariaDB committed the ALTERs and the index; compensation says so, one line each.
        assert undone == [
            "ALTER TABLE chat_sessions ADD COLUMN message_count stays (step 1.1.0)",
            "ALTER TABLE chat_sessions ADD COLUMN rating stays (step 1.1.0)",
            "index ix_chat_sessions_rating on chat_sessions stays (step 1.1.0)",
        ]
        assert columns_after == columns_before | {"message_count", "rating"}
        # The back-fill ran after the last schema change: it was rolled back.
        assert rows(engine, "SELECT message_count FROM chat_sessions ORDER BY id") == [(0,), (0,)]


def test_compensation_reports_data_changes_mariadb_committed(
    engine: Engine, tmp_path: Path
) -> None:
    """A back-fill before a schema change: MariaDB commits it with that change."""
    owned = install_chatbot_1_0(engine)
    migrations = write_steps(
        tmp_path,
        {
            "1.1.0": "UPDATE chat_sessions SET status = 'closed';\n"
            "CREATE TABLE chat_tags (id INTEGER PRIMARY KEY);\n"
            "INSERT INTO chat_messages (session_id, sender, content) VALUES (999, 'bot', 'x');\n"
        },
        up=(CHATBOT_OLD / "migrations" / "up.sql").read_text(),
    )
    steps = chatbot_steps(engine, owned, migrations)
    with pytest.raises(UpgradeStepError), engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            conn.exec_driver_sql("PRAGMA foreign_keys = ON")
        apply_upgrade_steps(conn, "ai_chatbot", steps)
    undone = compensate_upgrade(engine, "ai_chatbot", steps)
    assert "chat_tags" not in inspect(engine).get_table_names()
    if transactional_ddl(engine):
        assert undone == []
        assert rows(engine, "SELECT DISTINCT status FROM chat_sessions") == [("open",)]
    else:
        assert len(undone) == 1 and "UPDATE chat_sessions SET status" in undone[0]
        assert "may stay" in undone[0]


def test_create_table_cannot_adopt_an_existing_table(engine: Engine, tmp_path: Path) -> None:
    """CREATE TABLE IF NOT EXISTS of another plugin's table must not make it ours."""
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE billing_invoices (id INTEGER PRIMARY KEY)")
        conn.exec_driver_sql("INSERT INTO billing_invoices (id) VALUES (7)")
        apply_up(
            conn, "notes", "1.0.0", load_migration(write_steps(tmp_path, {}), dialect_name(engine))
        )
    migrations = write_steps(
        tmp_path,
        {
            "1.1.0": "CREATE TABLE IF NOT EXISTS billing_invoices (id INTEGER);\n"
            "DELETE FROM billing_invoices;\n"
        },
    )
    steps = load(migrations, dialect_name(engine))
    assert steps[0].created == ("billing_invoices",)  # statically it looks like a new table
    with (
        pytest.raises(PackageError, match="'billing_invoices' already exists"),
        engine.begin() as conn,
    ):
        apply_upgrade_steps(conn, "notes", steps)
    assert rows(engine, "SELECT id FROM billing_invoices") == [(7,)]


def test_drop_index_in_an_override_must_be_the_plugins(engine: Engine, tmp_path: Path) -> None:
    """PostgreSQL/SQLite overrides cannot name the table: the index is looked up when it runs."""
    if engine.dialect.name == "mysql":
        pytest.skip("MySQL's DROP INDEX always names its table")
    dialect = dialect_name(engine)
    with engine.begin() as conn:
        apply_up(conn, "notes", "1.0.0", load_migration(write_steps(tmp_path, {}), dialect))
    migrations = write_steps(tmp_path, {"1.1.0": "DELETE FROM notes"})
    override = migrations / "versions" / "1.1.0" / dialect / "up.sql"
    override.parent.mkdir()
    with engine.begin() as conn:  # another plugin's table and index
        conn.exec_driver_sql("CREATE TABLE billing_invoices (id INTEGER PRIMARY KEY, due INTEGER)")
        conn.exec_driver_sql("CREATE INDEX ix_billing_due ON billing_invoices (due)")
    override.write_text("DROP INDEX ix_billing_due")
    steps = load(migrations, dialect)
    with (
        pytest.raises(PackageError, match="is not an index of the plugin's tables"),
        engine.begin() as conn,
    ):
        apply_upgrade_steps(conn, "notes", steps)
    assert [i["name"] for i in inspect(engine).get_indexes("billing_invoices")] == [
        "ix_billing_due"
    ]

    override.write_text("DROP INDEX ix_notes_title")  # its own: fine
    with engine.begin() as conn:
        apply_upgrade_steps(conn, "notes", load(migrations, dialect))
    assert "ix_notes_title" not in {i["name"] for i in inspect(engine).get_indexes("notes")}


# ---------------------------------------------------------------- schema equivalence


def test_chatbot_upgrade_gives_the_fresh_schema() -> None:
    check_upgrade_schema(CHATBOT_OLD / "migrations", CHATBOT_NEW / "migrations", "1.0.0", "1.1.0")


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda sql: sql.replace(
                "CREATE INDEX ix_chat_sessions_rating ON chat_sessions (rating);", ""
            ),
            "table chat_sessions, index ix_chat_sessions_rating exists only in a fresh install",
        ),
        (
            lambda sql: sql.replace(
                "ADD COLUMN rating INTEGER NULL", "ADD COLUMN rating TEXT NULL"
            ),
            "table chat_sessions, column rating: upgrade gives TEXT NULL no default, "
            "fresh install gives INTEGER NULL no default",
        ),
        (
            lambda sql: sql.replace(
                "message_count INTEGER NOT NULL DEFAULT 0",
                "message_count INTEGER NOT NULL DEFAULT 1",
            ),
            "column message_count: upgrade gives INTEGER NOT NULL DEFAULT 1",
        ),
        (
            lambda sql: sql + "\nCREATE TABLE chat_extra (id INTEGER PRIMARY KEY);\n",
            "table chat_extra exists only after the upgrade",
        ),
        (
            lambda sql: sql + "\nDROP TABLE chat_ratings;\n",
            "table chat_ratings exists only in a fresh install",
        ),
    ],
)
def test_schema_mismatch_is_caught(tmp_path: Path, edit, message: str) -> None:
    new = tmp_path / "migrations"
    shutil.copytree(CHATBOT_NEW / "migrations", new)
    step = new / "versions" / "1.1.0" / "up.sql"
    step.write_text(edit(step.read_text()))
    with pytest.raises(PackageError) as caught:
        check_upgrade_schema(CHATBOT_OLD / "migrations", new, "1.0.0", "1.1.0")
    assert message in str(caught.value)
    assert "upgrading 1.0.0 → 1.1.0 differs from a fresh install" in str(caught.value)


def test_schema_check_reports_a_step_that_fails_on_sqlite(tmp_path: Path) -> None:
    new = tmp_path / "migrations"
    shutil.copytree(CHATBOT_NEW / "migrations", new)
    step = new / "versions" / "1.1.0" / "up.sql"
    step.write_text(step.read_text() + "\nALTER TABLE chat_sessions ADD COLUMN rating INTEGER;\n")
    with pytest.raises(
        PackageError, match=r"on SQLite, upgrade step 1\.1\.0 failed at 'ALTER TABLE"
    ):
        check_upgrade_schema(CHATBOT_OLD / "migrations", new, "1.0.0", "1.1.0")


# ---------------------------------------------------------------- package format and validate


def test_pack_keeps_steps_and_changelog_and_validate_checks_the_upgrade(tmp_path: Path) -> None:
    new_zip = pack(CHATBOT_NEW, tmp_path / "dist")
    old_zip = pack(CHATBOT_OLD, tmp_path / "dist")
    files = inspect_package(new_zip).files
    assert "migrations/versions/1.1.0/up.sql" in files and "CHANGELOG.md" in files

    report = validate_package(new_zip, Limits(), upgrade_from=old_zip)
    assert report.steps == ("1.1.0",) and report.upgraded_from == "1.0.0"
    assert set(report.tables) == {"chat_sessions", "chat_messages", "chat_ratings"}

    with pytest.raises(PackageError, match="not older than"):
        validate_package(old_zip, Limits(), upgrade_from=new_zip)
    with pytest.raises(PackageError, match="not older than"):
        validate_package(new_zip, Limits(), upgrade_from=new_zip)


def test_validate_refuses_bad_steps(tmp_path: Path) -> None:
    folder = make_plugin(tmp_path / "src", "notes", "1.1.0")
    write_steps(folder, {"1.1.0": "ALTER TABLE notes ADD COLUMN pinned INTEGER NULL"})
    (folder / "migrations" / "up.sql").write_text(
        NOTES_UP.replace("body TEXT NULL", "body TEXT NULL,\n    pinned INTEGER NULL")
    )
    assert validate_package(folder, Limits()).steps == ("1.1.0",)

    (folder / "migrations" / "versions" / "1.2.0").mkdir()
    (folder / "migrations" / "versions" / "1.2.0" / "up.sql").write_text("DELETE FROM notes")
    with pytest.raises(PackageError, match=r"1\.2\.0: is above the package version 1\.1\.0"):
        validate_package(folder, Limits())
    shutil.rmtree(folder / "migrations" / "versions" / "1.2.0")

    (folder / "migrations" / "versions" / "1.1.0" / "up.sql").write_text(
        "UPDATE plugdock_users SET role = 'admin'"
    )
    with pytest.raises(UnsafeSqlError, match="own tables"):
        validate_package(folder, Limits())

    # Transpiling is checked for every database: MySQL cannot drop an index without its table.
    (folder / "migrations" / "versions" / "1.1.0" / "up.sql").write_text(
        "DROP INDEX ix_notes_title"
    )
    with pytest.raises(UnsafeSqlError, match="ON <table>"):
        validate_package(folder, Limits())

    # A step that leaves a different schema than up.sql is caught with --upgrade-from.
    old = make_plugin(tmp_path / "old", "notes", "1.0.0")
    write_steps(old, {})
    (folder / "migrations" / "versions" / "1.1.0" / "up.sql").write_text("DELETE FROM notes")
    with pytest.raises(PackageError, match="column pinned exists only in a fresh install"):
        validate_package(folder, Limits(), upgrade_from=old)


def test_only_the_new_names_are_accepted(tmp_path: Path) -> None:
    folder = make_plugin(tmp_path / "src", "notes", "1.0.0")
    (folder / "CHANGELOG.md").write_text("# 1.0.0\n")
    write_steps(folder, {"1.0.0": "DELETE FROM notes"})
    files = inspect_package(pack(folder, tmp_path / "dist")).files
    assert {"CHANGELOG.md", "migrations/versions/1.0.0/up.sql"} <= set(files)
    (folder / "NOTES.md").write_text("no")
    with pytest.raises(PackageError, match="not allowed at the top level"):
        pack(folder, tmp_path / "dist")


# ---------------------------------------------------------------- changelog


def test_read_changelog_from_zip_and_folder(tmp_path: Path) -> None:
    new_zip = pack(CHATBOT_NEW, tmp_path / "dist")
    text = read_changelog(new_zip)
    assert text is not None and text.startswith("# Changelog") and "## 1.1.0" in text
    assert read_changelog(CHATBOT_NEW) == text
    assert read_changelog(pack(CHATBOT_OLD, tmp_path / "dist")) is None
    assert read_changelog(CHATBOT_OLD) is None


def test_read_changelog_is_bounded_and_verified(tmp_path: Path) -> None:
    folder = make_plugin(tmp_path / "src", "notes", "1.0.0")
    (folder / "CHANGELOG.md").write_text("é" * MAX_CHANGELOG_BYTES)  # two bytes each
    package = pack(folder, tmp_path / "dist")
    text = read_changelog(package)
    assert text is not None and text.endswith(TRUNCATED_NOTE)
    assert len(text.encode()) <= MAX_CHANGELOG_BYTES + len(TRUNCATED_NOTE.encode())

    # Bytes that do not match CHECKSUMS.sha256 are refused.
    (folder / "CHANGELOG.md").write_text("# 1.0.0\nfine\n")
    package = pack(folder, tmp_path / "dist")
    tampered = tmp_path / "tampered.zip"
    with zipfile.ZipFile(package) as source, zipfile.ZipFile(tampered, "w") as target:
        for info in source.infolist():
            data = source.read(info)
            target.writestr(info, b"# 1.0.0\nevil\n" if info.filename == "CHANGELOG.md" else data)
    with pytest.raises(PackageError, match="does not match its checksum"):
        read_changelog(tampered)

    (folder / "CHANGELOG.md").write_bytes(b"\xff\xfe not utf-8")
    with pytest.raises(PackageError, match="not UTF-8"):
        read_changelog(folder)


@pytest.mark.slow  # CLI runs in subprocesses
def test_validate_command_with_upgrade_from(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    env = os.environ | {"PLUGDOCK_HOME": str(tmp_path / "instance"), "COLUMNS": "200"}

    def plugdock(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "plugdock", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    old_zip = pack(CHATBOT_OLD, tmp_path / "dist")
    ok = plugdock("validate", str(CHATBOT_NEW), "--upgrade-from", str(old_zip))
    assert ok.returncode == 0, ok.stderr
    assert "upgrade steps: 1.1.0" in ok.stdout
    assert "upgrade 1.0.0 → 1.1.0 gives the schema of a fresh install" in ok.stdout

    broken = tmp_path / "ai_chatbot"
    shutil.copytree(CHATBOT_NEW, broken, ignore=shutil.ignore_patterns("node_modules", "dist"))
    step = broken / "migrations" / "versions" / "1.1.0" / "up.sql"
    step.write_text(step.read_text().replace("CREATE INDEX ix_chat_sessions_rating", "-- "))
    refused = plugdock("validate", str(broken), "--upgrade-from", str(old_zip))
    assert refused.returncode == 1
    assert refused.stderr.startswith("error: ")
    assert "index ix_chat_sessions_rating exists only in a fresh install" in refused.stderr
