"""The core schema under Alembic, on SQLite, PostgreSQL and MariaDB.

A fresh database reaches the head revision with exactly the tables of ``plugdock.core.db``;
an up-to-date one costs one query and never imports Alembic; processes starting together
migrate once; the plugin-state generation counts in the caller's transaction.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from datetime import datetime

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    inspect,
    select,
    text,
)
from sqlalchemy.exc import DBAPIError, IntegrityError

from plugdock.core.db import (
    SCHEMA_BASELINE,
    SCHEMA_HEAD,
    VERSION_TABLE,
    addon_installations,
    alembic_config,
    bump_generation,
    connect_read,
    core_metadata,
    current_generation,
    ensure_schema,
    make_engine,
    plugin_state,
    schema_revision,
    users,
)
from plugdock.errors import PlugdockError

CORE_TABLES = {
    "plugdock_alembic_version",
    "addon_installations",
    "plugdock_plugin_migrations",
    "plugdock_users",
    "plugdock_audit_log",
    "plugdock_plugin_state",
}


def _run(code: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=os.environ.copy(),
    )


def test_head_constant_matches_the_revision_scripts() -> None:
    """SCHEMA_HEAD lets start-up skip Alembic; it must name the newest script."""
    scripts = ScriptDirectory.from_config(alembic_config())
    assert scripts.get_current_head() == SCHEMA_HEAD
    assert [s.revision for s in scripts.walk_revisions()][-1] == SCHEMA_BASELINE


def test_fresh_database_gets_the_whole_schema(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        assert schema_revision(engine) == SCHEMA_HEAD
        assert {t.lower() for t in inspect(engine).get_table_names()} >= CORE_TABLES
        with engine.connect() as conn:
            # The migrations create exactly what plugdock.core.db describes: no drift.
            opts = {"compare_type": True, "version_table": VERSION_TABLE}
            context = MigrationContext.configure(conn, opts=opts)
            assert compare_metadata(context, core_metadata) == []
            assert current_generation(conn) == 0
            assert conn.execute(select(plugin_state)).all()[0].id == 1
        with engine.begin() as conn:  # the constraints are real on every database
            values = {"password_hash": "x", "created_at": datetime(2026, 1, 1)}
            conn.execute(users.insert().values(username="bob", role="user", **values))
            row = conn.execute(select(users)).one()
            assert row.is_active in (True, 1)  # the server default
        with pytest.raises(IntegrityError), engine.begin() as conn:
            conn.execute(users.insert().values(username="bob", role="user", **values))
        with pytest.raises(DBAPIError), engine.begin() as conn:  # MariaDB: OperationalError
            conn.execute(users.insert().values(username="eve", role="root", **values))
        assert ensure_schema(engine) is False  # nothing left to do
    finally:
        engine.dispose()


def test_up_to_date_database_costs_one_query_and_no_alembic(database_url: str) -> None:
    probe = f"""
        import sys, time
        from plugdock.core.db import ensure_schema, make_engine
        engine = make_engine({database_url!r}, upgrade=False)
        started = time.perf_counter()
        migrated = ensure_schema(engine)
        print(migrated, "alembic" in sys.modules, time.perf_counter() - started)
    """
    first = _run(probe)
    assert first.returncode == 0, first.stderr
    migrated, alembic_loaded, _ = first.stdout.split()
    assert (migrated, alembic_loaded) == ("True", "True")

    again = _run(probe)
    assert again.returncode == 0, again.stderr
    migrated, alembic_loaded, seconds = again.stdout.split()
    assert (migrated, alembic_loaded) == ("False", "False")
    assert float(seconds) < 0.5  # one SELECT (plus the connection)


@pytest.mark.slow  # Python processes in parallel
def test_processes_starting_together_migrate_once(database_url: str) -> None:
    start_at = time.time() + 1.5  # all start importing now, then race for the same instant
    code = f"""
        import time
        from plugdock.core.db import ensure_schema, make_engine
        engine = make_engine({database_url!r}, upgrade=False)
        with engine.connect():
            pass  # connect (and on SQLite switch to WAL) before the race
        import alembic.command  # pre-import, so the race is about the migration itself
        time.sleep(max(0.0, {start_at} - time.time()))
        print(ensure_schema(engine))
    """
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(code)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    results = [p.communicate(timeout=60) for p in processes]
    for process, (_out, err) in zip(processes, results, strict=True):
        assert process.returncode == 0, err
    assert sorted(out.strip() for out, _ in results) == ["False", "False", "True"]
    engine = make_engine(database_url)
    try:
        assert schema_revision(engine) == SCHEMA_HEAD
        with engine.connect() as conn:
            assert conn.execute(select(plugin_state)).all()[0].generation == 0
            assert len(conn.execute(select(plugin_state)).all()) == 1
    finally:
        engine.dispose()


def test_database_from_before_alembic_is_stamped_and_upgraded(database_url: str) -> None:
    """The spine created its two tables with create_all; their rows must survive."""
    legacy = MetaData()
    Table(
        "addon_installations",
        legacy,
        Column("plugin_id", String(64), primary_key=True),
        Column("name", String(200), nullable=False),
        Column("version", String(64), nullable=False),
        Column("package_sha256", String(64), nullable=False),
        Column("signer", String(200), nullable=True),
        Column("installed_at", DateTime(), nullable=False),
        Column("installed_by", String(200), nullable=True),
        Column("tables", JSON, nullable=False),
        Column("operation_id", String(32), nullable=False),
    )
    Table(
        "plugin_migrations",
        legacy,
        Column("plugin_id", String(64), primary_key=True),
        Column("version", String(64), primary_key=True),
        Column("name", String(200), primary_key=True),
        Column("checksum", String(64), nullable=False),
        Column("applied_at", DateTime(), nullable=False),
        Column("statements", Text, nullable=False),
    )
    engine = make_engine(database_url, upgrade=False)
    try:
        legacy.create_all(engine)
        row = {
            "plugin_id": "ai_chatbot",
            "name": "AI Chatbot",
            "version": "1.0.0",
            "package_sha256": "0" * 64,
            "installed_at": datetime(2026, 1, 1),
            "tables": ["chat_sessions"],
            "operation_id": "op1",
        }
        with engine.begin() as conn:
            conn.execute(addon_installations.insert().values(**row))
        assert schema_revision(engine) is None
        assert ensure_schema(engine) is True
        assert schema_revision(engine) == SCHEMA_HEAD
        with engine.connect() as conn:
            assert conn.execute(select(addon_installations.c.plugin_id)).scalars().all() == [
                "ai_chatbot"
            ]
            assert conn.execute(select(users)).all() == []
    finally:
        engine.dispose()


def test_downgrade_to_base_and_upgrade_again(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        with engine.begin() as conn:
            command.downgrade(alembic_config(conn), "base")
        assert {t.lower() for t in inspect(engine).get_table_names()} <= {
            "plugdock_alembic_version"
        }
        with engine.begin() as conn:  # every script, in order (not create_all)
            command.upgrade(alembic_config(conn), "head")
        assert schema_revision(engine) == SCHEMA_HEAD
        assert {t.lower() for t in inspect(engine).get_table_names()} >= CORE_TABLES
        with engine.connect() as conn:
            opts = {"compare_type": True, "version_table": VERSION_TABLE}
            drift = compare_metadata(MigrationContext.configure(conn, opts=opts), core_metadata)
            if engine.dialect.name == "sqlite":  # 0007 leaves the name inside the DDL (why: there)
                assert [(kind, c.name) for kind, c in drift] == [
                    ("remove_constraint", "uq_users_username"),
                    ("add_constraint", "uq_plugdock_users_username"),
                ]
            else:
                assert drift == []  # the scripts, 0007's renames included, make one schema
    finally:
        engine.dispose()


def test_database_from_a_newer_plugdock_is_refused_clearly(tmp_path) -> None:  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path / 'newer.db'}"
    make_engine(url).dispose()
    engine = make_engine(url, upgrade=False)
    try:
        with engine.begin() as conn:
            conn.execute(text("UPDATE plugdock_alembic_version SET version_num = '9999'"))
        with pytest.raises(PlugdockError, match=r"revision '9999'.*newer plugdock"):
            ensure_schema(engine)
    finally:
        engine.dispose()


def test_generation_counts_in_the_callers_transaction(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        with engine.begin() as conn:
            assert bump_generation(conn) == 1
            assert bump_generation(conn) == 2
        with engine.connect() as conn, conn.begin() as transaction:
            assert bump_generation(conn) == 3
            transaction.rollback()  # an install that fails leaves the counter alone
        with connect_read(engine) as conn:
            assert current_generation(conn) == 2
        with engine.begin() as conn:  # a deleted row starts again at 1 instead of failing
            conn.execute(plugin_state.delete())
            assert bump_generation(conn) == 1
        with engine.connect() as conn:
            row = conn.execute(select(plugin_state)).one()
            assert (row.id, row.generation) == (1, 1)
            assert isinstance(row.changed_at, datetime)
    finally:
        engine.dispose()


def _host_tables() -> MetaData:
    """What an existing app commonly has, under the names plugdock's tables used to take."""
    host = MetaData(
        naming_convention={
            "uq": "uq_%(table_name)s_%(column_0_name)s",
            "ix": "ix_%(table_name)s_%(column_0_name)s",
        }
    )
    Table(
        "users",
        host,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("email", String(200), nullable=False, unique=True),
        Column("username", String(64), nullable=False, unique=True),
    )
    Table(
        "audit_log",
        host,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("plugin_id", String(64), index=True),  # ix_audit_log_plugin_id
    )
    return host


def test_a_hosts_tables_and_alembic_version_are_left_alone(database_url: str) -> None:
    """Embedding: the host's users, audit_log and Alembic revision exist before plugdock."""
    engine = make_engine(database_url, upgrade=False)
    try:
        _host_tables().create_all(engine)
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)"))
            conn.execute(text("INSERT INTO alembic_version VALUES ('a1b2c3d4e5f6')"))
            conn.execute(text("INSERT INTO users (email, username) VALUES ('a@x', 'alice')"))
        assert ensure_schema(engine) is True
        assert schema_revision(engine) == SCHEMA_HEAD
        with engine.connect() as conn:
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == (
                "a1b2c3d4e5f6"
            )
            assert conn.execute(text("SELECT username FROM users")).scalars().all() == ["alice"]
            assert conn.execute(select(users)).all() == []  # plugdock's own, empty
        assert {t.lower() for t in inspect(engine).get_table_names()} >= CORE_TABLES | {
            "users",
            "audit_log",
            "alembic_version",
        }
    finally:
        engine.dispose()


def test_an_instance_from_before_prefixes_moves_to_them_with_its_rows(database_url: str) -> None:
    """Revision 0007: the old names (and their global index, key and sequence names) go."""
    engine = make_engine(database_url, upgrade=False)
    try:
        with engine.begin() as conn:
            command.upgrade(alembic_config(conn), "0006")
        with engine.begin() as conn:  # as plugdock 0006 kept it: in alembic_version
            conn.execute(text("DROP TABLE plugdock_alembic_version"))
            conn.execute(text("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)"))
            conn.execute(text("INSERT INTO alembic_version VALUES ('0006')"))
            conn.execute(
                text(
                    "INSERT INTO users (username, password_hash, role, is_active, created_at) "
                    "VALUES ('admin', 'x', 'admin', true, '2026-01-01 00:00:00')"
                )
            )
            conn.execute(
                text(
                    "INSERT INTO auth_sessions (id, user_id, created_at, expires_at) "
                    "VALUES ('s1', 1, '2026-01-01 00:00:00', '2026-01-02 00:00:00')"
                )
            )
        assert schema_revision(engine) is None  # not where it looks now: upgrade
        assert ensure_schema(engine) is True
        assert schema_revision(engine) == SCHEMA_HEAD
        names = {t.lower() for t in inspect(engine).get_table_names()}
        assert names >= CORE_TABLES
        assert not names & {"alembic_version", "users", "audit_log", "auth_sessions"}
        with engine.connect() as conn:
            assert conn.execute(select(users.c.username)).scalars().all() == ["admin"]
            sessions = conn.execute(text("SELECT user_id FROM plugdock_auth_sessions")).all()
            assert [row.user_id for row in sessions] == [1]
        # Now a host's own users and audit_log, with the usual global names, fit beside them.
        _host_tables().create_all(engine)
        with engine.begin() as conn:  # the renamed foreign key still holds
            conn.execute(text("DELETE FROM plugdock_users"))
            left = conn.execute(text("SELECT count(*) FROM plugdock_auth_sessions")).scalar()
            assert left == 0
    finally:
        engine.dispose()
