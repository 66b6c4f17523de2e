"""A plugin's own database role reaches its own tables (DML only) and nothing else.

Runs on the real PostgreSQL and MariaDB servers. PostgreSQL's test server trusts 127.0.0.1,
so any password logs in there; privileges are enforced all the same, and every check first
confirms the connection really is the plugin's role.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import socket
import socketserver
import tempfile
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

from db_servers import MARIADB_URL, POSTGRES_URL
from plugdock.core.db import make_engine
from plugdock.errors import PlugdockError
from plugdock.installer import Installer
from plugdock.plugin_sql.db_roles import (
    MYSQL_SOCKET_NAME,
    check_grants,
    drop_plugin_role,
    ensure_plugin_role,
    plugin_url,
    role_name,
    role_password,
    socket_file_name,
    supports_roles,
)
from support import make_plugin, pack_into

SERVERS = pytest.mark.parametrize("database_url", ["postgresql", "mariadb"], indirect=True)
SECRET = b"the panel's secret key"
PLUGIN = "roled"
TABLES = {"roled_notes", "roled_tags"}
UP_SQL = (
    "CREATE TABLE roled_notes (id INTEGER PRIMARY KEY AUTOINCREMENT, body TEXT NOT NULL);\n"
    "CREATE TABLE roled_tags (name VARCHAR(50) PRIMARY KEY, note_id INTEGER NULL);\n"
    "INSERT INTO roled_notes (body) VALUES ('hello');\n"
)
DOWN_SQL = "DROP TABLE roled_tags;\nDROP TABLE roled_notes;\n"
DENIED = re.compile(r"permission denied|command denied|access denied|must be owner", re.I)


@pytest.fixture
def tables(installer: Installer, tmp_path: Path) -> list[str]:
    """The test plugin installed for real; its tables as the installation record has them."""
    folder = make_plugin(tmp_path, PLUGIN, up_sql=UP_SQL, down_sql=DOWN_SQL)
    installer.install(pack_into(folder, tmp_path / "zips"))
    [installation] = installer.installed()
    assert set(installation.tables) == TABLES
    return installation.tables


@pytest.fixture
def password(installer: Installer) -> Iterator[str]:
    """The plugin's password; its role is dropped after the test (roles outlive databases)."""
    yield role_password(SECRET, installer.engine.url.database or "", PLUGIN)
    drop_plugin_role(installer.engine, PLUGIN)


@contextlib.contextmanager
def connect_as(engine: Engine, role: str, password: str, **kw: str | None) -> Iterator[Connection]:
    url = plugin_url(engine.url, role, password, unix_socket_dir=kw.get("unix_socket_dir"))
    role_engine = create_engine(url, poolclass=NullPool)
    try:
        with role_engine.connect() as conn:
            yield conn
    finally:
        role_engine.dispose()


def whoami(conn: Connection) -> str:
    if conn.dialect.name == "postgresql":
        return str(conn.execute(text("SELECT current_user")).scalar_one())
    return str(conn.execute(text("SELECT CURRENT_USER()")).scalar_one()).split("@")[0]


def assert_denied(conn: Connection, sql: str) -> None:
    with pytest.raises(DBAPIError) as caught:
        conn.execute(text(sql))
    assert DENIED.search(str(caught.value.orig)), caught.value.orig
    conn.rollback()


def role_exists(engine: Engine, role: str) -> bool:
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            query = "SELECT COUNT(*) FROM pg_roles WHERE rolname = :role"
        else:
            query = "SELECT COUNT(*) FROM mysql.user WHERE User = :role"
        return bool(conn.execute(text(query), {"role": role}).scalar())


@SERVERS
def test_role_reaches_its_tables_and_nothing_else(
    installer: Installer, tables: list[str], password: str
) -> None:
    engine = installer.engine
    role = ensure_plugin_role(engine, PLUGIN, tables, password)
    assert role == role_name(engine.url.database or "", PLUGIN)

    with connect_as(engine, role, password) as conn:
        assert whoami(conn) == role
        assert conn.execute(text("SELECT body FROM roled_notes")).scalars().all() == ["hello"]
        # The id comes from the table's sequence (identity column) on PostgreSQL.
        conn.execute(text("INSERT INTO roled_notes (body) VALUES ('second')"))
        conn.execute(text("UPDATE roled_notes SET body = 'first' WHERE body = 'hello'"))
        conn.execute(text("INSERT INTO roled_tags (name, note_id) VALUES ('a', 1), ('b', 2)"))
        conn.execute(text("DELETE FROM roled_tags WHERE name = 'b'"))
        conn.commit()

        assert_denied(conn, "SELECT * FROM plugdock_users")
        assert_denied(conn, "SELECT * FROM addon_installations")
        assert_denied(conn, "INSERT INTO plugdock_secrets (name, value) VALUES ('x', 'y')")
        assert_denied(conn, "CREATE TABLE roled_more (id INTEGER PRIMARY KEY)")
        assert_denied(conn, "ALTER TABLE roled_notes ADD COLUMN extra INTEGER")
        assert_denied(conn, "DROP TABLE roled_notes")  # DML only: even its own tables stay

    with engine.connect() as conn:  # what the role wrote is there
        rows = conn.execute(text("SELECT id, body FROM roled_notes ORDER BY id")).all()
        assert [tuple(r) for r in rows] == [(1, "first"), (2, "second")]
        assert conn.execute(text("SELECT name FROM roled_tags")).scalars().all() == ["a"]

    grants = "\n".join(check_grants(engine, PLUGIN))
    assert "roled_notes" in grants and "roled_tags" in grants
    assert "plugdock_users" not in grants and "addon_installations" not in grants


@SERVERS
def test_ensure_is_idempotent_and_follows_the_table_list(
    installer: Installer, tables: list[str], password: str
) -> None:
    engine = installer.engine
    role = ensure_plugin_role(engine, PLUGIN, tables, password)
    before = check_grants(engine, PLUGIN)
    assert ensure_plugin_role(engine, PLUGIN, tables, password) == role
    assert check_grants(engine, PLUGIN) == before

    # An upgrade dropped roled_tags (and listed a table that is not there): rights follow.
    ensure_plugin_role(engine, PLUGIN, ["roled_notes", "roled_gone"], password)
    with connect_as(engine, role, password) as conn:
        assert whoami(conn) == role
        assert conn.execute(text("SELECT COUNT(*) FROM roled_notes")).scalar() == 1
        assert_denied(conn, "SELECT * FROM roled_tags")
    assert "roled_tags" not in "\n".join(check_grants(engine, PLUGIN))

    # Rights granted by hand, beyond DML or on core tables, go too.
    if engine.dialect.name == "postgresql":
        account, extra, use_extra = role, "TRUNCATE", "TRUNCATE TABLE roled_notes"
    else:
        account, extra = f"`{role}`@`%`", "ALTER"
        use_extra = "ALTER TABLE roled_notes ADD COLUMN extra INTEGER"
    with engine.begin() as conn:
        conn.execute(text(f"GRANT SELECT ON plugdock_users TO {account}"))
        conn.execute(text(f"GRANT {extra} ON roled_notes TO {account}"))
        conn.execute(text(f"GRANT SELECT (plugin_id) ON addon_installations TO {account}"))
    held = "\n".join(check_grants(engine, PLUGIN))
    assert "plugdock_users" in held and "addon_installations.plugin_id" in held
    ensure_plugin_role(engine, PLUGIN, ["roled_notes"], password)
    with connect_as(engine, role, password) as conn:
        assert whoami(conn) == role
        assert_denied(conn, "SELECT * FROM plugdock_users")
        assert_denied(conn, use_extra)
        assert_denied(conn, "SELECT plugin_id FROM addon_installations")
        conn.execute(text("UPDATE roled_notes SET body = 'still mine'"))
        conn.rollback()
    held = "\n".join(check_grants(engine, PLUGIN))
    assert "plugdock_users" not in held and "addon_installations" not in held

    with pytest.raises(PlugdockError, match="core tables: plugdock_users"):
        ensure_plugin_role(engine, PLUGIN, ["roled_notes", "plugdock_users"], password)


@SERVERS
def test_ensure_resets_the_password(installer: Installer, tables: list[str], password: str) -> None:
    engine = installer.engine
    role = ensure_plugin_role(engine, PLUGIN, tables, "0" * 64)
    stored = _stored_password(engine, role)
    ensure_plugin_role(engine, PLUGIN, tables, password)
    assert _stored_password(engine, role) != stored
    if engine.dialect.name != "postgresql":  # PostgreSQL's test server trusts any password
        with pytest.raises(DBAPIError, match="Access denied"), connect_as(engine, role, "0" * 64):
            pass
    with connect_as(engine, role, password) as conn:
        assert whoami(conn) == role


def _stored_password(engine: Engine, role: str) -> str:
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            query = "SELECT rolpassword FROM pg_authid WHERE rolname = :role"
        else:
            query = "SELECT authentication_string FROM mysql.user WHERE User = :role"
        return str(conn.execute(text(query), {"role": role}).scalar_one())


@SERVERS
def test_drop_removes_the_role_and_ends_its_sessions(
    installer: Installer, tables: list[str], password: str
) -> None:
    engine = installer.engine
    role = ensure_plugin_role(engine, PLUGIN, tables, password)
    with connect_as(engine, role, password) as open_session:
        assert whoami(open_session) == role
        drop_plugin_role(engine, PLUGIN)
        assert not role_exists(engine, role)
        with pytest.raises(DBAPIError):  # its session was ended
            open_session.execute(text("SELECT COUNT(*) FROM roled_notes"))
    with pytest.raises(DBAPIError), connect_as(engine, role, password):
        pass
    drop_plugin_role(engine, PLUGIN)  # idempotent
    assert "roled_notes" in installer.installed()[0].tables  # the tables are not its to drop
    with engine.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM roled_notes")).scalar() == 1


@SERVERS
def test_roles_are_scoped_to_their_database(
    installer: Installer, tables: list[str], password: str
) -> None:
    """Two databases on one server, the same plugin: two roles, neither reaching the other."""
    engine = installer.engine
    other_name = f"pd_{uuid.uuid4().hex[:16]}"
    admin = create_engine(engine.url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    other_url = engine.url.set(database=other_name)
    other = create_engine(other_url, poolclass=NullPool)
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {other_name}"))
    try:
        with other.begin() as conn:
            conn.execute(text("CREATE TABLE roled_notes (id INTEGER PRIMARY KEY, body TEXT)"))
        other_password = role_password(SECRET, other_name, PLUGIN)
        assert other_password != password
        role = ensure_plugin_role(engine, PLUGIN, tables, password)
        other_role = ensure_plugin_role(other, PLUGIN, ["roled_notes"], other_password)
        assert other_role != role and role_exists(engine, other_role)

        if engine.dialect.name == "postgresql":  # PUBLIC may connect, but reads nothing
            with connect_as(other, role, password) as conn:
                assert whoami(conn) == role
                assert_denied(conn, "SELECT * FROM roled_notes")
        else:  # MariaDB refuses the login to the other database outright
            with (
                pytest.raises(DBAPIError, match="Access denied"),
                connect_as(other, role, password),
            ):
                pass
    finally:
        drop_plugin_role(other, PLUGIN)
        assert not role_exists(engine, role_name(other_name, PLUGIN))
        other.dispose()
        with admin.connect() as conn:
            force = " WITH (FORCE)" if engine.dialect.name == "postgresql" else ""
            conn.execute(text(f"DROP DATABASE IF EXISTS {other_name}{force}"))
        admin.dispose()


@SERVERS
def test_longest_plugin_id_fits_the_server(installer: Installer) -> None:
    engine = installer.engine
    plugin_id = "p" + "x" * 63  # ids are at most 64 characters
    role = ensure_plugin_role(engine, plugin_id, [], "f" * 64)
    try:
        assert role_exists(engine, role)
    finally:
        drop_plugin_role(engine, plugin_id)
    assert not role_exists(engine, role)


def test_names_are_scoped_and_short() -> None:
    longest = "p" + "x" * 63
    for plugin_id in ("ab", "ai_chatbot", longest):
        name = role_name("panel", plugin_id)
        assert len(name) <= 32  # MySQL 32, PostgreSQL 63, MariaDB 80
        assert re.fullmatch(r"pd_[a-z0-9_]+_[0-9a-f]{8}", name)
        assert name == role_name("panel", plugin_id)
        assert name != role_name("panel2", plugin_id)
    # Shortened ids still differ by their hash.
    assert role_name("panel", longest) != role_name("panel", longest[:-1] + "y")


def test_passwords_are_derived_from_the_secret() -> None:
    password = role_password(SECRET, "panel", "ai_chatbot")
    assert re.fullmatch(r"[0-9a-f]{64}", password)
    assert password == role_password(SECRET, "panel", "ai_chatbot")  # every replica agrees
    assert password != role_password(b"another secret", "panel", "ai_chatbot")
    assert password != role_password(SECRET, "panel2", "ai_chatbot")
    assert password != role_password(SECRET, "panel", "ai_chatbot2")


def test_plugin_urls() -> None:
    pg = "postgresql+psycopg://panel:s3cret@db.example:5433/panel?connect_timeout=5"
    url = plugin_url(pg, "pd_x_12345678", "pw", unix_socket_dir=None)
    assert (url.drivername, url.host, url.port, url.database) == (
        "postgresql+psycopg",
        "db.example",
        5433,
        "panel",
    )
    assert (url.username, url.password, dict(url.query)) == (
        "pd_x_12345678",
        "pw",
        {"connect_timeout": "5"},
    )
    url = plugin_url(pg, "pd_x_12345678", "pw", unix_socket_dir="/run/p/db")
    assert (url.host, url.port, url.query["host"]) == (None, 5433, "/run/p/db")
    assert socket_file_name(url) == ".s.PGSQL.5433"

    url = plugin_url("mysql+pymysql://root@db:3306/panel", "r", "pw", unix_socket_dir="/run/p/")
    assert (url.host, url.port, url.database, url.username) == (None, None, "panel", "r")
    assert url.query["unix_socket"] == f"/run/p/{MYSQL_SOCKET_NAME}"
    assert socket_file_name(url) == MYSQL_SOCKET_NAME
    with pytest.raises(PlugdockError):
        socket_file_name("sqlite:///x.db")


@contextlib.contextmanager
def relay(path: Path, host: str, port: int) -> Iterator[None]:
    """A minimal stand-in for the panel's relay: a Unix socket piped to host:port."""

    def copy(source: socket.socket, target: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                target.sendall(data)
        with contextlib.suppress(OSError):
            target.shutdown(socket.SHUT_WR)

    class Pipe(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            with socket.create_connection((host, port)) as upstream:
                back = threading.Thread(target=copy, args=(upstream, self.request), daemon=True)
                back.start()
                copy(self.request, upstream)
                back.join()

    server = socketserver.ThreadingUnixStreamServer(str(path), Pipe)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()


@SERVERS
def test_the_plugin_url_works_through_a_unix_socket(
    installer: Installer, tables: list[str], password: str
) -> None:
    engine = installer.engine
    role = ensure_plugin_role(engine, PLUGIN, tables, password)
    folder = Path(tempfile.mkdtemp(prefix="pd", dir="/tmp"))  # socket paths must be short
    try:
        url = plugin_url(engine.url, role, password, unix_socket_dir=str(folder))
        server = make_url(engine.url)
        with (
            relay(folder / socket_file_name(url), server.host or "", server.port or 0),
            connect_as(engine, role, password, unix_socket_dir=str(folder)) as conn,
        ):
            assert whoami(conn) == role
            assert conn.execute(text("SELECT COUNT(*) FROM roled_notes")).scalar() == 1
            assert_denied(conn, "SELECT * FROM plugdock_users")
    finally:
        shutil.rmtree(folder)


@pytest.fixture(params=["postgresql", "mariadb"])
def restricted_panel(request: pytest.FixtureRequest) -> Iterator[Engine]:
    """A panel whose database user is no superuser: it has just the rights db_roles names."""
    kind = request.param
    server = POSTGRES_URL if kind == "postgresql" else MARIADB_URL
    suffix = uuid.uuid4().hex[:12]
    panel, database = f"pd_panel_{suffix}", f"pd_{suffix}"
    if kind == "postgresql":
        setup = [
            f"CREATE ROLE {panel} LOGIN CREATEROLE",
            f"GRANT pg_signal_backend TO {panel}",
            f"CREATE DATABASE {database} OWNER {panel}",
        ]
        teardown = [f"DROP DATABASE IF EXISTS {database} WITH (FORCE)", f"DROP ROLE {panel}"]
    else:
        account = f"'{panel}'@'%'"
        setup = [
            f"CREATE DATABASE {database}",
            f"CREATE USER {account}",
            f"GRANT ALL ON {database}.* TO {account} WITH GRANT OPTION",
            f"GRANT CREATE USER, PROCESS, CONNECTION ADMIN ON *.* TO {account}",
            f"GRANT SELECT ON mysql.tables_priv TO {account}",
            f"GRANT SELECT ON mysql.columns_priv TO {account}",
            f"GRANT SELECT (User, Host) ON mysql.user TO {account}",
        ]
        teardown = [f"DROP DATABASE IF EXISTS {database}", f"DROP USER {account}"]
    admin = create_engine(server, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with admin.connect() as conn:
        for statement in setup:
            conn.execute(text(statement))
    url = make_url(server).set(username=panel, database=database)
    engine = make_engine(url.render_as_string(hide_password=False))
    try:
        yield engine
    finally:
        engine.dispose()
        admin_here = create_engine(make_url(server).set(database=database), poolclass=NullPool)
        drop_plugin_role(admin_here, PLUGIN)  # should the test fail halfway
        admin_here.dispose()
        with admin.connect() as conn:
            for statement in teardown:
                conn.execute(text(statement))
        admin.dispose()


def test_a_panel_that_is_no_superuser_manages_roles(restricted_panel: Engine) -> None:
    engine = restricted_panel
    with engine.begin() as conn:
        assert whoami(conn).startswith("pd_panel_")
        serial = (
            "INT GENERATED BY DEFAULT AS IDENTITY"
            if engine.dialect.name == "postgresql"
            else "INT AUTO_INCREMENT"
        )
        conn.execute(text(f"CREATE TABLE roled_notes (id {serial} PRIMARY KEY, body TEXT)"))
    password = role_password(SECRET, engine.url.database or "", PLUGIN)
    role = ensure_plugin_role(engine, PLUGIN, ["roled_notes"], password)
    assert ensure_plugin_role(engine, PLUGIN, ["roled_notes"], password) == role
    assert "roled_notes" in "\n".join(check_grants(engine, PLUGIN))
    with connect_as(engine, role, password) as conn:
        assert whoami(conn) == role
        conn.execute(text("INSERT INTO roled_notes (body) VALUES ('x')"))
        conn.commit()
        assert conn.execute(text("SELECT COUNT(*) FROM roled_notes")).scalar() == 1
        assert_denied(conn, "SELECT * FROM plugdock_users")

        drop_plugin_role(engine, PLUGIN)
        assert not role_exists(engine, role)
        with pytest.raises(DBAPIError):  # its session was ended
            conn.execute(text("SELECT COUNT(*) FROM roled_notes"))
    assert check_grants(engine, PLUGIN) == []


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_sqlite_has_no_roles(installer: Installer) -> None:
    assert not supports_roles(installer.engine)
    with pytest.raises(PlugdockError, match="no database roles"):
        ensure_plugin_role(installer.engine, PLUGIN, [], "pw")
