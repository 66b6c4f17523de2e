"""Each plugin's own database role: it logs in as that role and reaches only its own tables.

A sandboxed plugin process talks to PostgreSQL or MariaDB through the panel's relay
(:mod:`plugdock.isolation.dbrelay`) and logs in as ``role_name(database, plugin_id)``. The
panel, with its own engine, creates that role and keeps its rights to exactly DML on the
plugin's tables (plus, on PostgreSQL, the sequences behind their identity columns). No DDL,
no core table.

What the panel's own database user needs besides owning its tables (a superuser or root
has it all; tests/plugin_sql/test_db_roles.py runs a panel with just this):

- PostgreSQL: CREATEROLE, and membership in ``pg_signal_backend`` to end a dropped role's
  sessions (without it they are left running, with every right revoked).
- MariaDB: ALL on its database WITH GRANT OPTION; CREATE USER, PROCESS and CONNECTION ADMIN
  on ``*.*`` (the last two to find and kill a dropped user's sessions); SELECT on
  ``mysql.tables_priv`` and ``mysql.columns_priv``, and on ``mysql.user (User, Host)``.

Roles are server-wide while plugdock's tables live in one database, and several panels (or
test runs) may share a server: the name carries a hash of the database name. The password
is derived from the panel's secret, so every replica computes the same one and none is
stored. Nothing here applies to SQLite (:func:`supports_roles`).

Identifiers (role, table, schema and database names) always go through the dialect's
identifier preparer; the role name and passwords are hex anyway, but quoting stays in
place so that nothing depends on that.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from typing import Any

from sqlalchemy import Connection, Engine, String, bindparam, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError

from plugdock.core.db import VERSION_TABLE, core_metadata
from plugdock.errors import PlugdockError

log = logging.getLogger(__name__)

#: The socket file the relay creates for MariaDB/MySQL (PostgreSQL's name is libpq's own).
MYSQL_SOCKET_NAME = "mysqld.sock"
#: A plugin process may hold this many connections at once.
CONNECTION_LIMIT = 20
# MySQL 5.7+/8 allow 32 characters in a user name (MariaDB 80, PostgreSQL 63): stay under all.
_MAX_NAME = 32
_HASH_HEX = 8
_PREFIX = "pd_"
# Core tables a role never gets, whatever an installation record says.
_CORE_TABLES = frozenset(core_metadata.tables) | {VERSION_TABLE}
_DML = ("SELECT", "INSERT", "UPDATE", "DELETE")


def role_name(database: str, plugin_id: str) -> str:
    """``pd_<plugin id, shortened>_<8 hex>``: unique per database and plugin on one server."""
    digest = hashlib.sha256(f"{database}\0{plugin_id}".encode()).hexdigest()[:_HASH_HEX]
    room = _MAX_NAME - len(_PREFIX) - 1 - _HASH_HEX
    return f"{_PREFIX}{plugin_id[:room]}_{digest}"


def role_password(secret: bytes, database: str, plugin_id: str) -> str:
    """The role's password: an HMAC of the panel's secret, the same on every replica."""
    message = f"plugdock-db-role\0{database}\0{plugin_id}".encode()
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def supports_roles(engine: Engine) -> bool:
    """Whether the database has logins and grants (PostgreSQL, MariaDB/MySQL; not SQLite)."""
    return engine.dialect.name in ("postgresql", "mysql", "mariadb")


def _database(engine: Engine) -> str:
    database = engine.url.database
    if not database:
        raise PlugdockError("the database URL names no database")
    return database


def _require_roles(engine: Engine) -> None:
    if not supports_roles(engine):
        raise PlugdockError(f"{engine.dialect.name} has no database roles")


def _quote(conn: Connection, name: str) -> str:
    return conn.dialect.identifier_preparer.quote_identifier(name)


def ensure_plugin_role(
    engine: Engine, plugin_id: str, tables: list[str] | None, password: str
) -> str:
    """Create or update the plugin's role; its rights become exactly DML on ``tables``.

    Idempotent. Listed tables that do not exist are skipped; rights on any other table (one
    an upgrade dropped, say) are revoked. ``tables=None`` leaves its rights as they are:
    granting takes locks on the tables, which an operation's open transaction may hold
    (its process starts inside that transaction). Returns the role name.
    """
    _require_roles(engine)
    core = sorted(set(tables or ()) & _CORE_TABLES)
    if core:
        raise PlugdockError(f"{plugin_id} cannot be granted core tables: {', '.join(core)}")
    role = role_name(_database(engine), plugin_id)
    if engine.dialect.name == "postgresql":
        _pg_ensure(engine, role, tables, password)
    else:
        _my_ensure(engine, role, tables, password)
    return role


def drop_plugin_role(engine: Engine, plugin_id: str) -> None:
    """Remove the plugin's role, its rights, and its open connections. Idempotent."""
    _require_roles(engine)
    role = role_name(_database(engine), plugin_id)
    if engine.dialect.name == "postgresql":
        _pg_drop(engine, role)
    else:
        _my_drop(engine, role)


def check_grants(engine: Engine, plugin_id: str) -> list[str]:
    """What the plugin's role may touch, one line each (empty when it does not exist)."""
    _require_roles(engine)
    role = role_name(_database(engine), plugin_id)
    if engine.dialect.name == "postgresql":
        return _pg_grants(engine, role)
    return _my_grants(engine, role)


def socket_file_name(url: URL | str) -> str:
    """The file name the relay must create in the plugin's socket folder for ``url``."""
    url = make_url(url)
    backend = url.get_backend_name()
    if backend == "postgresql":
        return f".s.PGSQL.{url.port or 5432}"  # what libpq looks for in the ``host`` folder
    if backend in ("mysql", "mariadb"):
        return MYSQL_SOCKET_NAME
    raise PlugdockError(f"{backend} is not reached through a socket relay")


def plugin_url(
    engine_url: URL | str, role: str, password: str, *, unix_socket_dir: str | None
) -> URL:
    """The URL a plugin's process connects with: same server, database and driver, its role.

    With ``unix_socket_dir`` the connection goes to :func:`socket_file_name` in that folder
    (the relay) instead of the server's host and port.
    """
    url = make_url(engine_url)
    backend = url.get_backend_name()
    query: dict[str, Any] = dict(url.query)
    host, port = url.host, url.port
    if unix_socket_dir is not None:
        if backend == "postgresql":
            # libpq takes a folder as host; the port stays, as it names the socket file.
            query["host"] = unix_socket_dir
            host, port = None, url.port or 5432
        elif backend in ("mysql", "mariadb"):
            query["unix_socket"] = f"{unix_socket_dir.rstrip('/')}/{MYSQL_SOCKET_NAME}"
            host, port = None, None
        else:
            raise PlugdockError(f"{backend} is not reached through a socket relay")
    # URL.set() treats None as "unchanged", so build the URL afresh.
    return URL.create(
        url.drivername,
        username=role,
        password=password,
        host=host,
        port=port,
        database=url.database,
        query=query,
    )


# -- PostgreSQL ------------------------------------------------------------------------------


def _pg_literal(conn: Connection, value: str) -> str:
    """``value`` as an SQL string literal, quoted by psycopg itself.

    ``CREATE/ALTER ROLE ... PASSWORD`` is a utility statement: PostgreSQL takes no bind
    parameters there, so the password has to be inlined. It is hex, but psycopg's own
    quoting (which knows the connection's encoding and escaping rules) keeps that safe for
    any string.
    """
    from psycopg import sql

    return sql.Literal(value).as_string(conn.connection.driver_connection)


def _pg_lock_key(role: str) -> int:
    return int.from_bytes(hashlib.sha256(role.encode()).digest()[:8], "big", signed=True)


def _pg_role_oid(conn: Connection, role: str) -> int | None:
    return conn.execute(
        text("SELECT oid FROM pg_roles WHERE rolname = :role"), {"role": role}
    ).scalar()


# Relations (tables, views, sequences) on which the role holds any right, in any schema.
_PG_HELD = text(
    "SELECT DISTINCT c.oid, n.nspname, c.relname, c.relkind"
    " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace,"
    " aclexplode(c.relacl) AS a"
    " WHERE a.grantee = CAST(:oid AS oid)"
)


def _pg_revoke_held(conn: Connection, oid: int, q: str, keep: set[int]) -> None:
    """Revoke the role's rights on every relation (and column) but those in ``keep``."""
    for rel_oid, nsp, rel, kind in conn.execute(_PG_HELD, {"oid": oid}).all():
        if rel_oid not in keep:
            what = "SEQUENCE" if kind == "S" else "TABLE"
            name = f"{_quote(conn, nsp)}.{_quote(conn, rel)}"
            conn.exec_driver_sql(f"REVOKE ALL ON {what} {name} FROM {q}")
    # Column rights are never given by this module; any found were made by hand.
    columns = conn.execute(
        text(
            "SELECT DISTINCT n.nspname, c.relname, t.attname FROM pg_attribute t"
            " JOIN pg_class c ON c.oid = t.attrelid"
            " JOIN pg_namespace n ON n.oid = c.relnamespace,"
            " aclexplode(t.attacl) AS a WHERE a.grantee = CAST(:oid AS oid)"
        ),
        {"oid": oid},
    ).all()
    for nsp, rel, column in columns:
        name = f"{_quote(conn, nsp)}.{_quote(conn, rel)}"
        conn.exec_driver_sql(f"REVOKE ALL ({_quote(conn, column)}) ON TABLE {name} FROM {q}")


def _pg_ensure(engine: Engine, role: str, tables: list[str] | None, password: str) -> None:
    with engine.begin() as conn:
        # Replicas may ensure the same role at once; CREATE ROLE would then fail in one.
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _pg_lock_key(role)})
        q = _quote(conn, role)
        attributes = (
            f"LOGIN NOCREATEDB NOCREATEROLE NOINHERIT CONNECTION LIMIT {CONNECTION_LIMIT}"
            f" PASSWORD {_pg_literal(conn, password)}"
        )
        existing = conn.execute(
            text(
                "SELECT rolsuper OR rolreplication OR rolbypassrls FROM pg_roles"
                " WHERE rolname = :role"
            ),
            {"role": role},
        ).one_or_none()
        if existing is None:  # new roles have none of these; naming them needs superuser
            conn.exec_driver_sql(f"CREATE ROLE {q} WITH {attributes}")
        elif existing[0]:  # someone raised it: take that back (fails unless superuser)
            conn.exec_driver_sql(
                f"ALTER ROLE {q} WITH {attributes} NOSUPERUSER NOREPLICATION NOBYPASSRLS"
            )
        else:
            conn.exec_driver_sql(f"ALTER ROLE {q} WITH {attributes}")
        oid: int = conn.execute(
            text("SELECT oid FROM pg_roles WHERE rolname = :role"), {"role": role}
        ).scalar_one()
        _pg_grant_connect(conn, oid, q)
        # Session defaults it set on itself (ALTER ROLE ... SET needs no right to withhold):
        # gone at each start. It could SET the same in its own sessions anyway.
        db = _quote(conn, conn.execute(text("SELECT current_database()")).scalar_one())
        conn.exec_driver_sql(f"ALTER ROLE {q} RESET ALL")
        conn.exec_driver_sql(f"ALTER ROLE {q} IN DATABASE {db} RESET ALL")
        _pg_withhold_public(conn, oid)
        if tables is None:
            return

        schema = conn.execute(text("SELECT current_schema()")).scalar_one()
        wanted_tables = conn.execute(
            text(
                "SELECT c.oid, c.relname FROM pg_class c"
                " JOIN pg_namespace n ON n.oid = c.relnamespace"
                " WHERE n.nspname = :schema AND c.relkind IN ('r', 'p')"
                " AND c.relname IN :names"
            ).bindparams(bindparam("names", expanding=True)),
            {"schema": schema, "names": list(tables) or [""]},
        ).all()
        # Sequences a listed table owns: serial (deptype 'a') and identity ('i') columns.
        sequences = conn.execute(
            text(
                "SELECT DISTINCT s.oid, n.nspname, s.relname FROM pg_depend d"
                " JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S'"
                " JOIN pg_namespace n ON n.oid = s.relnamespace"
                " WHERE d.classid = 'pg_class'::regclass"
                " AND d.refclassid = 'pg_class'::regclass"
                " AND d.deptype IN ('a', 'i') AND d.refobjid IN :tables"
            ).bindparams(bindparam("tables", expanding=True)),
            {"tables": [t_oid for t_oid, _ in wanted_tables] or [0]},
        ).all()
        wanted = {t_oid for t_oid, _ in wanted_tables} | {s_oid for s_oid, _, _ in sequences}

        # Anything else it holds goes (a table an upgrade dropped, a hand-made grant).
        _pg_revoke_held(conn, oid, q, keep=wanted)

        for _, table in wanted_tables:
            name = f"{_quote(conn, schema)}.{_quote(conn, table)}"
            conn.exec_driver_sql(f"REVOKE ALL ON TABLE {name} FROM {q}")  # exactly DML
            conn.exec_driver_sql(f"GRANT {', '.join(_DML)} ON TABLE {name} TO {q}")
        for _, nsp, seq in sequences:
            name = f"{_quote(conn, nsp)}.{_quote(conn, seq)}"
            conn.exec_driver_sql(f"REVOKE ALL ON SEQUENCE {name} FROM {q}")
            conn.exec_driver_sql(f"GRANT USAGE, SELECT, UPDATE ON SEQUENCE {name} TO {q}")


# What PUBLIC holds in a new database that a plugin's role must not: (what, how to check
# the role has it, the statements that take it from PUBLIC; the panel's own user keeps it).
_PG_LARGE_OBJECTS = (
    "lo_create(oid)",
    "lo_creat(integer)",
    "lo_from_bytea(oid, bytea)",
    "lo_import(text)",
    "lo_import(text, oid)",
)
_PG_CATALOGS = (  # every database on the server, by name, and their activity
    "pg_catalog.pg_database",
    "pg_catalog.pg_stat_database",
    "pg_catalog.pg_stat_database_conflicts",
    "pg_catalog.pg_stat_activity",
)


def _pg_withhold_public(conn: Connection, oid: int) -> None:
    """Take from PUBLIC, in the panel's database, what plugin roles get only through it:
    TEMP (temporary tables and ``pg_temp`` functions), creating large objects, and reading
    the list of the server's databases. Where the panel may (TEMP: it owns the database;
    the catalogs and functions: it is a superuser); otherwise a warning says what to run.
    The panel's own user keeps each (owner, or granted back below)."""
    me = _quote(conn, conn.execute(text("SELECT current_user")).scalar_one())
    db = _quote(conn, conn.execute(text("SELECT current_database()")).scalar_one())
    checks: list[tuple[str, list[str]]] = []
    if conn.execute(
        text("SELECT has_database_privilege(CAST(:oid AS oid), current_database(), 'TEMP')"),
        {"oid": oid},
    ).scalar():
        checks.append(("TEMP", [f"REVOKE TEMPORARY ON DATABASE {db} FROM PUBLIC"]))
    for function in _PG_LARGE_OBJECTS:
        if conn.execute(
            text("SELECT has_function_privilege(CAST(:oid AS oid), :f, 'EXECUTE')"),
            {"oid": oid, "f": function},
        ).scalar():
            revoke = f"REVOKE EXECUTE ON FUNCTION pg_catalog.{function} FROM PUBLIC"
            checks.append((function, [revoke]))
    for catalog in _PG_CATALOGS:
        if conn.execute(
            text("SELECT has_table_privilege(CAST(:oid AS oid), :t, 'SELECT')"),
            {"oid": oid, "t": catalog},
        ).scalar():
            statements = [f"REVOKE SELECT ON {catalog} FROM PUBLIC"]
            statements.append(f"GRANT SELECT ON {catalog} TO {me}")
            checks.append((catalog, statements))
    for what, statements in checks:
        try:
            with conn.begin_nested():
                for statement in statements:
                    conn.exec_driver_sql(statement)
        except DBAPIError:
            log.warning(
                "plugin database roles can use %s through PUBLIC; as a superuser run: %s",
                what,
                "; ".join(statements),
            )


def _pg_grant_connect(conn: Connection, oid: int, q: str) -> None:
    """CONNECT on the database and USAGE on the schema, where PUBLIC does not give them
    (it usually does; granting only when missing spares the panel owning either)."""
    connect, usage = conn.execute(
        text(
            "SELECT has_database_privilege(CAST(:oid AS oid), current_database(), 'CONNECT'),"
            " has_schema_privilege(CAST(:oid AS oid), current_schema(), 'USAGE')"
        ),
        {"oid": oid},
    ).one()
    if not connect:
        db = _quote(conn, conn.execute(text("SELECT current_database()")).scalar_one())
        conn.exec_driver_sql(f"GRANT CONNECT ON DATABASE {db} TO {q}")
    if not usage:
        schema = conn.execute(text("SELECT current_schema()")).scalar_one()
        conn.exec_driver_sql(f"GRANT USAGE ON SCHEMA {_quote(conn, schema)} TO {q}")


def _pg_drop(engine: Engine, role: str) -> None:
    with engine.begin() as conn:
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _pg_lock_key(role)})
        oid = _pg_role_oid(conn, role)
        if oid is None:
            return
        q = _quote(conn, role)
        # Lock it out before ending its sessions, so none starts in between.
        conn.exec_driver_sql(f"ALTER ROLE {q} NOLOGIN")
    with engine.begin() as conn:
        # Its open sessions would outlive DROP ROLE. Ending them takes superuser or
        # pg_signal_backend; without, they stay, but with every right revoked below.
        may_signal = conn.execute(
            text(
                "SELECT pg_has_role(CAST(:oid AS oid), 'MEMBER')"
                " OR pg_has_role('pg_signal_backend', 'MEMBER')"
            ),
            {"oid": oid},
        ).scalar()
        if may_signal:
            conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE usesysid = CAST(:oid AS oid)"
                ),
                {"oid": oid},
            )
        else:
            log.warning("cannot end the sessions of %s: grant the panel pg_signal_backend", role)
        # Revoke what it holds by name: DROP OWNED would need membership in the role, which
        # a panel user with CREATEROLE only (no superuser) lacks before PostgreSQL 16.
        _pg_revoke_held(conn, oid, q, keep=set())
        schemas = (
            conn.execute(
                text(
                    "SELECT DISTINCT n.nspname FROM pg_namespace n, aclexplode(n.nspacl) AS a"
                    " WHERE a.grantee = CAST(:oid AS oid)"
                ),
                {"oid": oid},
            )
            .scalars()
            .all()
        )
        for schema in schemas:
            conn.exec_driver_sql(f"REVOKE ALL ON SCHEMA {_quote(conn, schema)} FROM {q}")
        databases = (
            conn.execute(
                text(
                    "SELECT DISTINCT d.datname FROM pg_database d, aclexplode(d.datacl) AS a"
                    " WHERE d.datname = current_database() AND a.grantee = CAST(:oid AS oid)"
                ),
                {"oid": oid},
            )
            .scalars()
            .all()
        )
        for database in databases:
            conn.exec_driver_sql(f"REVOKE ALL ON DATABASE {_quote(conn, database)} FROM {q}")
        # Whatever else is left in this database (it should own nothing), where allowed.
        if conn.execute(
            text("SELECT pg_has_role(CAST(:oid AS oid), 'MEMBER')"), {"oid": oid}
        ).scalar():
            conn.exec_driver_sql(f"DROP OWNED BY {q}")
        conn.exec_driver_sql(f"DROP ROLE IF EXISTS {q}")


def _pg_grants(engine: Engine, role: str) -> list[str]:
    with engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT oid, rolsuper, rolcreatedb, rolcreaterole, rolcanlogin, rolconnlimit"
                " FROM pg_roles WHERE rolname = :role"
            ),
            {"role": role},
        ).one_or_none()
        if row is None:
            return []
        oid, superuser, createdb, createrole, login, limit = row
        lines = [f"role {role}: login={login} connection limit={limit}"]
        lines += [flag for flag, on in (("SUPERUSER", superuser), ("CREATEDB", createdb),
                                        ("CREATEROLE", createrole)) if on]  # fmt: skip
        rights = conn.execute(
            text(
                "SELECT n.nspname, c.relname, c.relkind, string_agg(a.privilege_type, ', '"
                " ORDER BY a.privilege_type) FROM pg_class c"
                " JOIN pg_namespace n ON n.oid = c.relnamespace, aclexplode(c.relacl) AS a"
                " WHERE a.grantee = CAST(:oid AS oid) GROUP BY 1, 2, 3 ORDER BY 1, 2"
            ),
            {"oid": oid},
        )
        for nsp, rel, kind, privileges in rights:
            what = "sequence" if kind == "S" else "table"
            lines.append(f"{privileges} on {what} {nsp}.{rel}")
        columns = conn.execute(
            text(
                "SELECT n.nspname, c.relname, t.attname, string_agg(a.privilege_type, ', '"
                " ORDER BY a.privilege_type) FROM pg_attribute t"
                " JOIN pg_class c ON c.oid = t.attrelid"
                " JOIN pg_namespace n ON n.oid = c.relnamespace, aclexplode(t.attacl) AS a"
                " WHERE a.grantee = CAST(:oid AS oid) GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"
            ),
            {"oid": oid},
        )
        for nsp, rel, column, privileges in columns:
            lines.append(f"{privileges} on column {nsp}.{rel}.{column}")
        # Rights it has through PUBLIC too (_pg_withhold_public takes them where it may).
        for what, held in conn.execute(
            text(
                "SELECT 'TEMP on database ' || current_database(),"
                " has_database_privilege(CAST(:oid AS oid), current_database(), 'TEMP')"
                " UNION ALL SELECT 'EXECUTE on lo_create(oid)',"
                " has_function_privilege(CAST(:oid AS oid), 'lo_create(oid)', 'EXECUTE')"
                " UNION ALL SELECT 'SELECT on pg_catalog.pg_database',"
                " has_table_privilege(CAST(:oid AS oid), 'pg_catalog.pg_database', 'SELECT')"
            ),
            {"oid": oid},
        ):
            if held:
                lines.append(what)
        # CREATE on the schema lets it make tables.
        for schema, create in conn.execute(
            text(
                "SELECT current_schema(),"
                " has_schema_privilege(CAST(:oid AS oid), current_schema(), 'CREATE')"
            ),
            {"oid": oid},
        ):
            if create:
                lines.append(f"CREATE on schema {schema}")
        return lines


# -- MariaDB / MySQL -------------------------------------------------------------------------


def _my_account(conn: Connection, role: str) -> str:
    return f"{_quote(conn, role)}@{_quote(conn, '%')}"


def _my_string(conn: Connection, value: str) -> str:
    """``value`` as a MariaDB string literal, escaped by the dialect's string type.

    Bind parameters would work with pymysql (it interpolates client-side), but not with
    every MySQL driver for account statements, so the literal is rendered, escaped.
    """
    literal = bindparam("value", value, type_=String())
    return str(literal.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))


def _my_ensure(engine: Engine, role: str, tables: list[str] | None, password: str) -> None:
    with engine.begin() as conn:
        account = _my_account(conn, role)
        options = (
            f"IDENTIFIED BY {_my_string(conn, password)}"
            f" WITH MAX_USER_CONNECTIONS {CONNECTION_LIMIT}"
        )
        # Account statements commit implicitly; IF NOT EXISTS makes racing replicas harmless.
        conn.exec_driver_sql(f"CREATE USER IF NOT EXISTS {account} {options}")
        conn.exec_driver_sql(f"ALTER USER {account} {options}")
        if tables is None:
            return

        database = conn.execute(text("SELECT DATABASE()")).scalar_one()
        existing = set(
            conn.execute(
                text(
                    "SELECT table_name FROM information_schema.tables"
                    " WHERE table_schema = :db AND table_type = 'BASE TABLE'"
                    " AND table_name IN :names"
                ).bindparams(bindparam("names", expanding=True)),
                {"db": database, "names": list(tables) or [""]},
            ).scalars()
        )
        held = conn.execute(
            text(
                "SELECT Db, Table_name, Table_priv, Column_priv FROM mysql.tables_priv"
                " WHERE User = :role AND Host = '%'"
            ),
            {"role": role},
        ).all()
        exact = {p.capitalize() for p in _DML}
        granted = set()
        # A column grant has a row here too (Column_priv), and REVOKE ALL ON the table ends it.
        for db, table, privileges, column_privileges in held:
            current = set(privileges.split(",")) if privileges else set()
            if db == database and table in existing and current == exact and not column_privileges:
                granted.add(table)
                continue
            # A table no longer listed, another database, or rights beyond DML: start over.
            name = f"{_quote(conn, db)}.{_quote(conn, table)}"
            # ALL PRIVILEGES leaves GRANT OPTION, which only global REVOKE can name with it.
            conn.exec_driver_sql(f"REVOKE ALL PRIVILEGES ON {name} FROM {account}")
            if "Grant" in current:
                conn.exec_driver_sql(f"REVOKE GRANT OPTION ON {name} FROM {account}")
        for table in sorted(existing - granted):
            name = f"{_quote(conn, database)}.{_quote(conn, table)}"
            conn.exec_driver_sql(f"GRANT {', '.join(_DML)} ON {name} TO {account}")


def _my_drop(engine: Engine, role: str) -> None:
    with engine.begin() as conn:
        # Dropping the account stops new logins but leaves open sessions running: kill them.
        conn.exec_driver_sql(f"DROP USER IF EXISTS {_my_account(conn, role)}")
        sessions = (
            conn.execute(
                text("SELECT ID FROM information_schema.PROCESSLIST WHERE USER = :role"),
                {"role": role},
            )
            .scalars()
            .all()
        )
        for session in sessions:
            try:
                conn.exec_driver_sql(f"KILL CONNECTION {int(session)}")
            except DBAPIError as error:  # it ended meanwhile: unknown thread id
                if "Unknown thread" not in str(error):
                    raise


def _my_grants(engine: Engine, role: str) -> list[str]:
    # From the grant tables rather than SHOW GRANTS, which needs SELECT on all of mysql.*
    # (password hashes included); these need only the columns read here.
    with engine.connect() as conn:
        exists = conn.execute(
            text("SELECT COUNT(*) FROM mysql.user WHERE User = :role AND Host = '%'"),
            {"role": role},
        ).scalar()
        if not exists:
            return []
        lines = [f"user {role}@%"]
        tables = conn.execute(
            text(
                "SELECT Db, Table_name, Table_priv FROM mysql.tables_priv"
                " WHERE User = :role AND Host = '%' ORDER BY Db, Table_name"
            ),
            {"role": role},
        ).all()
        lines += [
            f"{privileges.upper().replace(',', ', ')} on table {db}.{table}"
            for db, table, privileges in tables
        ]
        columns = conn.execute(
            text(
                "SELECT Db, Table_name, Column_name, Column_priv FROM mysql.columns_priv"
                " WHERE User = :role AND Host = '%' ORDER BY Db, Table_name, Column_name"
            ),
            {"role": role},
        ).all()
        lines += [f"{p.upper()} on column {d}.{t}.{c}" for d, t, c, p in columns]
        return lines
