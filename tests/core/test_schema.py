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
    "alembic_version",
    "addon_installations",
    "plugin_migrations",
    "users",
    "audit_log",
    "plugin_state",
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
            context = MigrationContext.configure(conn, opts={"compare_type": True})
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
        assert {t.lower() for t in inspect(engine).get_table_names()} <= {"alembic_version"}
        assert ensure_schema(engine) is True
        assert schema_revision(engine) == SCHEMA_HEAD
    finally:
        engine.dispose()


def test_database_from_a_newer_plugdock_is_refused_clearly(tmp_path) -> None:  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path / 'newer.db'}"
    make_engine(url).dispose()
    engine = make_engine(url, upgrade=False)
    try:
        with engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
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
