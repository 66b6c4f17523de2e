"""The database servers tests run on: their URLs, and a scratch database per test on them.

Server URLs come from ``PLUGDOCK_TEST_POSTGRES_URL`` and ``PLUGDOCK_TEST_MARIADB_URL``
(defaults: the local servers with trust/empty-password auth). A scratch database is dropped
afterwards with the plugin roles that got rights in it, so tests never see each other's
tables. The ``database_url`` fixture (tests/conftest.py) uses them; tests that need a server
URL of their own import them from here (a ``conftest`` is not importable by name once there
are several).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

POSTGRES_URL = os.environ.get(
    "PLUGDOCK_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
MARIADB_URL = os.environ.get(
    "PLUGDOCK_TEST_MARIADB_URL", "mysql+pymysql://root@127.0.0.1:3306/test"
)

DATABASES = ["sqlite", "postgresql", "mariadb"]


def _scratch_server_database(server_url: str, kind: str) -> Iterator[str]:
    name = f"pd_{uuid.uuid4().hex[:16]}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name}"))
    try:
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        roles = _plugin_roles(server_url, name, kind)
        with admin.connect() as conn:
            if kind == "postgresql":
                conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                for role in roles:
                    conn.execute(text(f'DROP ROLE IF EXISTS "{role}"'))
            else:
                conn.execute(text(f"DROP DATABASE IF EXISTS {name}"))
                for role in roles:
                    conn.execute(text(f"DROP USER IF EXISTS '{role}'@'%'"))
        admin.dispose()


def _plugin_roles(server_url: str, database: str, kind: str) -> list[str]:
    """Plugin roles (process isolation) with rights in the scratch database: roles outlive it."""
    if kind == "postgresql":
        engine = create_engine(make_url(server_url).set(database=database))
        query = (
            "SELECT DISTINCT grantee FROM information_schema.role_table_grants "
            "WHERE grantee LIKE 'pd\\_%'"
        )
    else:
        engine = create_engine(server_url)
        query = f"SELECT DISTINCT User FROM mysql.tables_priv WHERE Db = '{database}'"
    try:
        with engine.connect() as conn:
            return [row[0] for row in conn.execute(text(query))]
    finally:
        engine.dispose()
