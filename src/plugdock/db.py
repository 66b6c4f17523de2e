"""The host database: engines for SQLite, PostgreSQL and MariaDB/MySQL, and plugdock's own tables.

SQLite needs care to get real transactions around DDL: Python's sqlite3 module does
not open a transaction before ``CREATE TABLE``, so a failed migration would leave
half its tables behind. We switch the driver's own transaction handling off and
emit ``BEGIN IMMEDIATE`` ourselves (SQLAlchemy's documented recipe), which also takes
the write lock up front so two processes never interleave a migration.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Engine,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    event,
)
from sqlalchemy.engine import make_url

core_metadata = MetaData()

addon_installations = Table(
    "addon_installations",
    core_metadata,
    Column("plugin_id", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("version", String(64), nullable=False),
    Column("package_sha256", String(64), nullable=False),
    Column("signer", String(200), nullable=True),
    Column("installed_at", DateTime(), nullable=False),  # naive UTC: same on all three databases
    Column("installed_by", String(200), nullable=True),
    Column("tables", JSON, nullable=False),
    Column("operation_id", String(32), nullable=False),
)

plugin_migrations = Table(
    "plugin_migrations",
    core_metadata,
    Column("plugin_id", String(64), primary_key=True),
    Column("version", String(64), primary_key=True),
    Column("name", String(200), primary_key=True),
    Column("checksum", String(64), nullable=False),
    Column("applied_at", DateTime(), nullable=False),
    Column("statements", Text, nullable=False),
)


def make_engine(url: str) -> Engine:
    """Create an engine for ``url`` with plugdock's connection settings, and its core tables."""
    if url.startswith("sqlite"):
        database = make_url(url).database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_connect(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
            dbapi_connection.isolation_level = None
            dbapi_connection.execute("PRAGMA foreign_keys=ON")
            dbapi_connection.execute("PRAGMA journal_mode=WAL")

        @event.listens_for(engine, "begin")
        def _sqlite_begin(connection) -> None:  # type: ignore[no-untyped-def]
            connection.exec_driver_sql("BEGIN IMMEDIATE")

    else:
        engine = create_engine(url, pool_pre_ping=True)
    core_metadata.create_all(engine)
    return engine


def dialect_name(engine: Engine) -> str:
    """``sqlite``, ``postgresql`` or ``mysql`` (MariaDB reports as ``mysql``)."""
    return engine.dialect.name
