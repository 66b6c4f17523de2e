"""The host database: engines for SQLite, PostgreSQL and MariaDB/MySQL, and plugdock's own tables.

SQLite needs care to get real transactions around DDL: Python's sqlite3 module does
not open a transaction before ``CREATE TABLE``, so a failed migration would leave
half its tables behind. We switch the driver's own transaction handling off and
emit ``BEGIN IMMEDIATE`` ourselves (SQLAlchemy's documented recipe), which also takes
the write lock up front so two processes never interleave a migration. Connections
that only read can ask for a plain (deferred) ``BEGIN`` with :func:`connect_read`, so
they never queue behind a writer.

The core schema (the tables below) is managed by Alembic; the revisions live in
``plugdock/db_migrations/versions``. :func:`make_engine` brings a database up to
:data:`SCHEMA_HEAD` on first use. Checking costs one ``SELECT`` on ``alembic_version``;
Alembic itself is imported only when the database is behind::

    engine = make_engine("postgresql+psycopg://app@db/panel")   # creates/upgrades the schema
    with engine.begin() as conn:
        generation = bump_generation(conn)                       # plugins changed: tell workers
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Connection,
    DateTime,
    Engine,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    false,
    insert,
    inspect,
    select,
    text,
    true,
    update,
)
from sqlalchemy.dialects.mysql import LONGBLOB
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError

from plugdock.core.fsutil import create_private_file, make_private_dir
from plugdock.errors import PlugdockError

if TYPE_CHECKING:
    from alembic.config import Config

log = logging.getLogger(__name__)

#: The Alembic revision this code expects. A test checks it equals the scripts' head, so a
#: new revision file must update it (that is what lets the start-up check skip Alembic).
SCHEMA_HEAD = "0010"
#: The schema plugdock had before Alembic (``create_all`` of the first two tables).
SCHEMA_BASELINE = "0001"
MIGRATIONS_DIR = Path(__file__).resolve().parents[1] / "db_migrations"
#: Where Alembic keeps plugdock's revision: not ``alembic_version``, which belongs to the
#: host app's own Alembic when plugdock is embedded (revisions before 0007 kept it there).
VERSION_TABLE = "plugdock_alembic_version"
_OLD_VERSION_TABLE = "alembic_version"

#: Execution option that makes SQLite open a deferred ``BEGIN`` (see :func:`connect_read`).
READ_ONLY_OPTION = "plugdock_read_only"

# Distinct from the operation lock in locking.py: a schema upgrade never waits for an install.
_PG_SCHEMA_LOCK_KEY = 0x706C7567736368  # "plugsch"
_MYSQL_SCHEMA_LOCK_NAME = "plugdock_schema"
# MariaDB's named locks are server-wide, PostgreSQL's advisory locks per database: name the
# database too, so instances sharing a MariaDB server (one database each) never block each other.
MYSQL_LOCK_SQL = "CONCAT(:n, ':', MD5(DATABASE()))"
_SCHEMA_LOCK_TIMEOUT = 120

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
    # A disabled plugin keeps its code, tables and rows but is served nowhere.
    Column("enabled", Boolean(), nullable=False, server_default=true()),
    # The permissions the admin granted (plugdock.package.permissions), a sorted JSON list;
    # NULL (installed before grants were recorded) means none.
    Column("permissions", JSON, nullable=True),
)

plugin_migrations = Table(
    "plugdock_plugin_migrations",
    core_metadata,
    Column("plugin_id", String(64), primary_key=True),
    Column("version", String(64), primary_key=True),
    Column("name", String(200), primary_key=True),
    Column("checksum", String(64), nullable=False),
    Column("applied_at", DateTime(), nullable=False),
    Column("statements", Text, nullable=False),
)

users = Table(
    "plugdock_users",
    core_metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("username", String(64), nullable=False),  # stored lower-case (see host.users)
    Column("password_hash", String(255), nullable=False),  # argon2id, PHC string
    Column("role", String(16), nullable=False),
    Column("is_active", Boolean(), nullable=False, server_default=true()),
    Column("created_at", DateTime(), nullable=False),  # naive UTC
    UniqueConstraint("username", name="uq_plugdock_users_username"),
    CheckConstraint("role IN ('admin', 'user')", name="ck_plugdock_users_role"),
    sqlite_autoincrement=True,  # ids are never reused: tokens name users by id
)

audit_log = Table(
    "plugdock_audit_log",
    core_metadata,
    # BIGINT where it is allowed to autoincrement; SQLite only does that for INTEGER.
    Column(
        "id",
        BigInteger().with_variant(Integer(), "sqlite"),
        primary_key=True,
        autoincrement=True,
    ),
    Column("at", DateTime(), nullable=False),  # naive UTC
    Column("actor", String(64), nullable=True),  # username; None for the system
    Column("action", String(32), nullable=False),  # install, uninstall, login_failed, ...
    Column("plugin_id", String(64), nullable=True),
    Column("version", String(64), nullable=True),
    Column("detail", JSON, nullable=True),
    Index("ix_plugdock_audit_log_plugin_id", "plugin_id"),
)

# The publisher key each plugin id is bound to: a package of that id signed by any other key
# is refused until an admin rebinds the id (see plugdock.trust.store).
plugin_signers = Table(
    "plugdock_plugin_signers",
    core_metadata,
    Column("plugin_id", String(64), primary_key=True),
    Column("key_id", String(128), nullable=False),
    Column("bound_at", DateTime(), nullable=False),  # naive UTC
    Column("bound_by", String(64), nullable=True),
)

# Failed sign-ins counted per account ("user:<id>") and per client ("client:<address>") in a
# fixed window, where every worker and replica sees them (see plugdock.host.throttle).
login_throttle = Table(
    "plugdock_login_throttle",
    core_metadata,
    Column("bucket", String(80), primary_key=True),
    Column("failures", Integer, nullable=False),
    Column("window_start", DateTime(), nullable=False),  # naive UTC
    Index("ix_plugdock_login_throttle_window_start", "window_start"),
)

# One row per signed-in session; every token names one, so signing out or deactivating a user
# revokes tokens at once (see plugdock.host.sessions).
auth_sessions = Table(
    "plugdock_auth_sessions",
    core_metadata,
    Column("id", String(64), primary_key=True),
    Column(
        "user_id",
        Integer,
        ForeignKey("plugdock_users.id", name="fk_plugdock_auth_sessions_user", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("created_at", DateTime(), nullable=False),  # naive UTC
    Column("expires_at", DateTime(), nullable=False),  # naive UTC
    Index("ix_plugdock_auth_sessions_user_id", "user_id"),
    Index("ix_plugdock_auth_sessions_expires_at", "expires_at"),
)

# Every installed package's verified bytes, keyed by sha256, so a replica on another machine
# can fetch the code an installation names (see plugdock.instance.package_store). Chunks stay
# far below MariaDB's max_allowed_packet.
plugin_packages = Table(
    "plugdock_plugin_packages",
    core_metadata,
    Column("sha256", String(64), primary_key=True),
    Column("size", BigInteger, nullable=False),
    Column("chunks", Integer, nullable=False),
    Column("stored_at", DateTime(), nullable=False),  # naive UTC
)

plugin_package_chunks = Table(
    "plugdock_plugin_package_chunks",
    core_metadata,
    Column(
        "sha256",
        String(64),
        ForeignKey(
            "plugdock_plugin_packages.sha256",
            name="fk_plugdock_package_chunks_package",
            ondelete="CASCADE",
        ),
        primary_key=True,
    ),
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("data", LargeBinary().with_variant(LONGBLOB(), "mysql"), nullable=False),
)

# Every serving panel process, with what it serves; one row per process, refreshed by its
# heartbeat (see plugdock.runtime.replicas).
plugdock_replicas = Table(
    "plugdock_replicas",
    core_metadata,
    Column("id", String(64), primary_key=True),
    Column("host", String(255), nullable=False),
    Column("address", String(255), nullable=True),  # host:port it listens on, when known
    Column("pid", Integer, nullable=False),
    Column("started_at", DateTime(), nullable=False),  # naive UTC
    Column("last_seen", DateTime(), nullable=False),  # naive UTC
    Column("generation", BigInteger, nullable=False),
    Column("ready", Boolean(), nullable=False),
    Column("failures", JSON, nullable=False),  # plugin id -> why it is not served here
)

# Instance-wide secrets every replica must share, e.g. the token-signing key.
plugdock_secrets = Table(
    "plugdock_secrets",
    core_metadata,
    Column("name", String(64), primary_key=True),
    Column("value", Text, nullable=False),
    Column("created_at", DateTime(), nullable=False),  # naive UTC
)

# The values an admin set for each plugin's declared settings (plugdock.instance.plugin_settings):
# plain ones as JSON text, secrets sealed with AES-GCM (plugdock.instance.secret_box).
plugin_settings = Table(
    "plugdock_plugin_settings",
    core_metadata,
    Column("plugin_id", String(64), primary_key=True),
    Column("name", String(64), primary_key=True),
    Column("value", Text, nullable=False),
    Column("secret", Boolean(), nullable=False),
    Column("updated_at", DateTime(), nullable=False),  # naive UTC
    Column("updated_by", String(64), nullable=True),
)

plugin_state = Table(
    "plugdock_plugin_state",
    core_metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("generation", BigInteger, nullable=False, server_default=text("0")),
    Column("changed_at", DateTime(), nullable=False),  # naive UTC
    CheckConstraint("id = 1", name="ck_plugdock_plugin_state_single_row"),
)


# -- what the host declares, and the events it emits (plugdock.instance.outbox) ------------

# Points a host declared at start (events; later filters, services, slots, roles): in the
# database, so the CLI, other replicas and the install plan see what the running host has.
extension_points = Table(
    "plugdock_extension_points",
    core_metadata,
    Column("kind", String(16), primary_key=True),
    Column("name", String(100), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("payload_schema", JSON, nullable=False),
    Column("description", Text, nullable=False),
    Column("declared_at", DateTime(), nullable=False),  # naive UTC
)

# The outbox: one row per emitted event, written in the emitter's own transaction.
event_outbox = Table(
    "plugdock_events",
    core_metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("name", String(100), nullable=False),
    Column("version", Integer, nullable=False),
    Column("event_key", String(200), nullable=True),  # order holds per key (an invoice id)
    Column("payload", JSON, nullable=False),
    Column("emitted_at", DateTime(), nullable=False),
    # False until a worker has made one delivery per subscriber of the moment.
    Column("fanned_out", Boolean(), nullable=False, server_default=false()),
    Index("ix_plugdock_events_fanned_out", "fanned_out", "id"),
)

# Which installed plugin handles which event (metadata.json's "events"), written in its
# operation's transaction: fan-out reads it, so a plugin installed on another replica gets
# every event committed after its install, whether or not this worker serves it yet.
event_subscriptions = Table(
    "plugdock_event_subscriptions",
    core_metadata,
    Column("plugin_id", String(64), primary_key=True),
    Column("event_name", String(100), primary_key=True),
    Column("handler", String(200), nullable=False),
)

# One row per (event, subscribing plugin): its attempts, claim and outcome.
event_deliveries = Table(
    "plugdock_event_deliveries",
    core_metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("event_id", BigInteger().with_variant(Integer, "sqlite"), nullable=False),
    Column("plugin_id", String(64), nullable=False),
    Column("handler", String(200), nullable=False),
    Column("event_key", String(200), nullable=True),
    Column("status", String(16), nullable=False),  # pending, running, done, dead
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("next_at", DateTime(), nullable=False),  # not before (backoff)
    Column("claimed_by", String(64), nullable=True),
    Column("claimed_until", DateTime(), nullable=True),
    Column("last_error", Text, nullable=True),
    Column("finished_at", DateTime(), nullable=True),
    Index("ix_plugdock_event_deliveries_due", "status", "next_at"),
    Index("ix_plugdock_event_deliveries_order", "plugin_id", "event_key", "id"),
)


# -- plugins' scheduled jobs (plugdock.instance.jobs) ---------------------------------------

# Each installed plugin's jobs (metadata.json's "jobs"), written in its operation's
# transaction: ``next_at`` is the next tick; a worker takes a tick by moving it forward with
# a conditional UPDATE (only one succeeds), so each tick runs once across replicas.
job_schedules = Table(
    "plugdock_job_schedules",
    core_metadata,
    Column("plugin_id", String(64), primary_key=True),
    Column("job_id", String(64), primary_key=True),
    Column("cron", String(100), nullable=False),
    Column("timezone", String(64), nullable=False),
    Column("handler", String(200), nullable=False),
    Column("next_at", DateTime(), nullable=False),  # naive UTC
)

# Each run of a job: a tick, or a "run now" queued for the serving panel; its outcome.
job_runs = Table(
    "plugdock_job_runs",
    core_metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("plugin_id", String(64), nullable=False),
    Column("job_id", String(64), nullable=False),
    Column("scheduled_for", DateTime(), nullable=False),
    Column("manual", Boolean(), nullable=False, server_default=false()),
    Column("status", String(16), nullable=False),  # queued, running, ok, failed, timeout
    Column("claimed_by", String(64), nullable=True),
    Column("claimed_until", DateTime(), nullable=True),
    Column("started_at", DateTime(), nullable=True),
    Column("duration_ms", Integer, nullable=True),
    Column("error", Text, nullable=True),
    Index("ix_plugdock_job_runs_job", "plugin_id", "job_id", "id"),
    Index("ix_plugdock_job_runs_status", "status"),
)


def utcnow() -> datetime:
    """Naive UTC now, to the second: how every core table stores time on all three databases."""
    return datetime.now(UTC).replace(tzinfo=None, microsecond=0)


# -- engines -------------------------------------------------------------------------------


_SYNC_DRIVERS = {
    "postgresql+asyncpg": "postgresql+psycopg",
    "postgresql+psycopg_async": "postgresql+psycopg",
    "sqlite+aiosqlite": "sqlite",
    "mysql+aiomysql": "mysql+pymysql",
    "mysql+asyncmy": "mysql+pymysql",
    "mariadb+aiomysql": "mariadb+pymysql",
}


def sync_url(url: str) -> str:
    """``url`` with a synchronous driver: what plugdock opens beside a host's async engine."""
    parsed = make_url(url)
    driver = _SYNC_DRIVERS.get(parsed.drivername)
    if driver is None:
        return url
    return parsed.set(drivername=driver).render_as_string(hide_password=False)


def make_engine(url: str, *, upgrade: bool = True) -> Engine:
    """Create an engine for ``url`` with plugdock's connection settings.

    With ``upgrade`` (the default) the core schema is created or upgraded to
    :data:`SCHEMA_HEAD` first; on an up-to-date database that is one query.
    """
    if url.startswith("sqlite"):
        database = make_url(url).database
        if database and database != ":memory:":
            # Private from the start: a folder we create is 0700, the file 0600, and SQLite
            # gives its -wal/-shm files the database file's mode.
            make_private_dir(Path(database).parent)
            create_private_file(Path(database))
        engine = create_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None
            dbapi_connection.execute("PRAGMA foreign_keys=ON")
            dbapi_connection.execute("PRAGMA journal_mode=WAL")

        @event.listens_for(engine, "begin")
        def _sqlite_begin(connection: Connection) -> None:
            if connection.get_execution_options().get(READ_ONLY_OPTION):
                connection.exec_driver_sql("BEGIN")
            else:
                connection.exec_driver_sql("BEGIN IMMEDIATE")

    else:
        engine = create_engine(url, pool_pre_ping=True)
    if upgrade:
        ensure_schema(engine)
    return engine


def stored_secret(engine: Engine, name: str, make: Callable[[], str]) -> str:
    """The secret ``name`` in ``plugdock_secrets``, stored as ``make()`` by whoever needs it first.

    Replicas share only the database, so secrets live there. The primary key makes a second
    insert fail, and that process then reads the winner's value: every worker and replica
    gets the same one.
    """

    def read() -> str | None:
        with connect_read(engine) as conn:
            return conn.execute(
                select(plugdock_secrets.c.value).where(plugdock_secrets.c.name == name)
            ).scalar()

    stored = read()
    if stored is None:
        with contextlib.suppress(IntegrityError), engine.begin() as conn:
            conn.execute(
                insert(plugdock_secrets).values(name=name, value=make(), created_at=utcnow())
            )
        stored = read()
    if stored is None:
        raise PlugdockError(f"the database holds no {name}")
    return stored


def connect_read(engine: Engine) -> Connection:
    """A connection for reads only: on SQLite its transactions start with a deferred ``BEGIN``.

    Every other transaction on a plugdock SQLite engine starts with ``BEGIN IMMEDIATE``
    and so waits for any writer; a read (a health check, a token's user, a change-counter
    poll) should not. Writing through this connection can fail with "database is locked".
    Elsewhere it is an ordinary connection::

        with connect_read(engine) as conn:
            generation = current_generation(conn)
    """
    return engine.connect().execution_options(**{READ_ONLY_OPTION: True})


def dialect_name(engine: Engine) -> str:
    """``sqlite``, ``postgresql`` or ``mysql`` (MariaDB reports as ``mysql``)."""
    return engine.dialect.name


# -- the core schema -----------------------------------------------------------------------


def schema_revision(engine: Engine) -> str | None:
    """The database's Alembic revision, or ``None`` when it has none (new or pre-Alembic).

    One query on a raw DBAPI connection: no SQLAlchemy transaction, so on SQLite no
    write lock is taken.
    """
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        try:
            cursor.execute(f"SELECT version_num FROM {VERSION_TABLE}")
            rows = cursor.fetchall()
        except engine.dialect.loaded_dbapi.Error:
            raw.rollback()  # PostgreSQL: leave the aborted transaction before pooling
            return None
        finally:
            cursor.close()
        raw.rollback()
    finally:
        raw.close()
    if len(rows) > 1:
        raise PlugdockError(f"{VERSION_TABLE} has {len(rows)} rows; expected one")
    return rows[0][0] if rows else None


def ensure_schema(engine: Engine) -> bool:
    """Bring the core schema to :data:`SCHEMA_HEAD` if it is behind. True when it migrated.

    Cheap when nothing is to do (see :func:`schema_revision`); otherwise it takes a lock
    (PostgreSQL advisory lock, MariaDB ``GET_LOCK``, SQLite ``BEGIN IMMEDIATE``), looks
    again, and runs Alembic, so processes starting together migrate once.
    """
    if schema_revision(engine) == SCHEMA_HEAD:
        return False
    return upgrade_schema(engine)


def upgrade_schema(engine: Engine, revision: str = "head") -> bool:
    """Run the core Alembic migrations up to ``revision`` under the schema lock.

    A new database gets the whole schema at once (``create_all``, stamped at the head), so
    no old name is ever created beside a host's tables; an instance from before revision
    0007 has its revision moved from ``alembic_version`` to :data:`VERSION_TABLE` first; one
    made before plugdock used Alembic (``addon_installations`` but no revision) is stamped
    at :data:`SCHEMA_BASELINE`. Returns whether anything ran.
    """
    with engine.connect() as conn:
        if conn.dialect.name == "mysql":
            got = conn.execute(
                text(f"SELECT GET_LOCK({MYSQL_LOCK_SQL}, :t)"),
                {"n": _MYSQL_SCHEMA_LOCK_NAME, "t": _SCHEMA_LOCK_TIMEOUT},
            ).scalar()
            conn.commit()  # a fresh snapshot after the wait (REPEATABLE READ)
            if got != 1:
                raise PlugdockError("timed out waiting for another process to upgrade the schema")
            try:
                with conn.begin():  # MariaDB commits each DDL statement anyway
                    return _upgrade_locked(conn, revision)
            finally:
                conn.execute(
                    text(f"SELECT RELEASE_LOCK({MYSQL_LOCK_SQL})"), {"n": _MYSQL_SCHEMA_LOCK_NAME}
                )
                conn.commit()
        with conn.begin():  # SQLite: BEGIN IMMEDIATE is the lock
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_SCHEMA_LOCK_KEY})
            return _upgrade_locked(conn, revision)


def _upgrade_locked(conn: Connection, revision: str) -> bool:
    from alembic import command
    from alembic.util import CommandError

    inspector = inspect(conn)
    current = _adopt_old_version_table(conn, inspector)
    if current is None and inspector.has_table(VERSION_TABLE):
        current = conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar()
    if current == SCHEMA_HEAD and revision in ("head", SCHEMA_HEAD):
        return False  # another process did it while we waited for the lock
    config = alembic_config(conn)
    try:
        if current is None and not inspector.has_table("addon_installations"):
            if revision in ("head", SCHEMA_HEAD):
                log.info("creating the plugdock schema at %s", SCHEMA_HEAD)
                core_metadata.create_all(conn)
                # The seed rows the scripts insert (0002): the plugin state's single row.
                conn.execute(insert(plugin_state).values(id=1, generation=0, changed_at=utcnow()))
                command.stamp(config, SCHEMA_HEAD)
                return True
        elif current is None:
            log.info("stamping a pre-Alembic plugdock database at %s", SCHEMA_BASELINE)
            command.stamp(config, SCHEMA_BASELINE)
        log.info("upgrading the plugdock schema from %s to %s", current or "nothing", revision)
        command.upgrade(config, revision)
    except CommandError as error:
        raise PlugdockError(
            f"cannot upgrade the database schema from revision {current!r}: {error} "
            "(was it created by a newer plugdock?)"
        ) from None
    return True


def _adopt_old_version_table(conn: Connection, inspector: Any) -> str | None:
    """Move a revision of plugdock's own from ``alembic_version`` to :data:`VERSION_TABLE`.

    Only when the database is a plugdock instance (``addon_installations``) without the new
    table, and the revision is one of plugdock's scripts: a host's ``alembic_version`` is
    never touched. Returns the revision moved, or None.
    """
    if inspector.has_table(VERSION_TABLE) or not inspector.has_table(_OLD_VERSION_TABLE):
        return None
    if not inspector.has_table("addon_installations"):
        return None
    rows = conn.execute(text(f"SELECT version_num FROM {_OLD_VERSION_TABLE}")).scalars().all()
    if len(rows) != 1 or rows[0] not in _revisions_before_0007:
        return None
    found = str(rows[0])
    conn.execute(
        text(f"CREATE TABLE {VERSION_TABLE} (version_num VARCHAR(32) NOT NULL PRIMARY KEY)")
    )
    conn.execute(text(f"INSERT INTO {VERSION_TABLE} (version_num) VALUES (:v)"), {"v": found})
    conn.execute(text(f"DROP TABLE {_OLD_VERSION_TABLE}"))
    log.info("moved plugdock's schema revision %s to %s", found, VERSION_TABLE)
    return found


# The revisions that kept their number in alembic_version (plugdock's scripts 0001-0006).
_revisions_before_0007 = frozenset(f"{n:04d}" for n in range(1, 7))


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic :class:`~alembic.config.Config` for the core migrations; no ``alembic.ini``.

    The migrations run on ``connection`` (in its transaction). For development, e.g. a
    new revision after changing the tables above::

        from alembic import command
        with engine.connect() as conn:
            command.revision(alembic_config(conn), "add x", autogenerate=True, rev_id="0003")
    """
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


# -- plugin state: the change counter every worker follows ---------------------------------


def bump_generation(conn: Connection) -> int:
    """Add one to ``plugin_state.generation`` in the caller's transaction; the new value.

    Call it in the transaction that changes the installed plugins, so workers see the new
    generation exactly when they can see the change::

        with engine.begin() as conn:
            ...  # addon_installations changes
            generation = bump_generation(conn)
    """
    values: dict[str, Any] = {
        "generation": plugin_state.c.generation + 1,
        "changed_at": utcnow(),
    }
    statement = update(plugin_state).where(plugin_state.c.id == 1).values(**values)
    if conn.dialect.update_returning:  # SQLite, PostgreSQL: the new value in the same trip
        bumped = conn.execute(statement.returning(plugin_state.c.generation)).scalar()
        if bumped is not None:
            return int(bumped)
    elif conn.execute(statement).rowcount:
        return current_generation(conn)
    # the row was deleted by hand; start again at 1
    conn.execute(insert(plugin_state).values(id=1, generation=1, changed_at=utcnow()))
    return current_generation(conn)


def current_generation(conn: Connection) -> int:
    """The current ``plugin_state.generation`` (0 on a new database).

    On MariaDB (REPEATABLE READ) a transaction keeps the value it first read; poll in a
    fresh transaction each time (``connect_read`` and commit/rollback between polls).
    """
    value = conn.execute(select(plugin_state.c.generation).where(plugin_state.c.id == 1)).scalar()
    return int(value or 0)
