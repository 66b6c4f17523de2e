"""Shared fixtures: a scratch database per test on SQLite, PostgreSQL and MariaDB.

Server URLs come from ``PLUGDOCK_TEST_POSTGRES_URL`` and ``PLUGDOCK_TEST_MARIADB_URL``
(defaults: the local servers with trust/empty-password auth). Each test gets a fresh
database that is dropped afterwards, so tests never see each other's tables.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from plugdock.core.db import make_engine
from plugdock.installer import Installer
from support import CHATBOT, instance_settings, pack_into

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


@pytest.fixture(params=DATABASES)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL of an empty scratch database, once per database kind."""
    kind = request.param
    if kind == "sqlite":
        yield f"sqlite:///{tmp_path / 'scratch.db'}"
    elif kind == "postgresql":
        yield from _scratch_server_database(POSTGRES_URL, kind)
    else:
        yield from _scratch_server_database(MARIADB_URL, kind)


@pytest.fixture
def installer(tmp_path: Path, database_url: str) -> Iterator[Installer]:
    """An initialised instance (its empty registry exists) with the chatbot in its source."""
    settings = instance_settings(tmp_path, database_url)
    pack_into(CHATBOT, settings.plugin_local_dir)
    engine = make_engine(database_url)
    installer = Installer(settings, engine=engine)
    installer.workspace.rewrite_registry()
    yield installer
    engine.dispose()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """Debian's Chromium under Playwright, one per test module (tests/browser_support.py)."""
    import browser_support  # only browser tests load Playwright

    yield from browser_support.launch_browser()


@pytest.fixture
def page(browser: object) -> Iterator[object]:
    """A fresh browser page signed out; uncaught errors in it fail the test."""
    import browser_support

    yield from browser_support.new_page(browser)


@pytest.fixture
def panels() -> Iterator[list[Any]]:
    """Panels (tests/panel.py) a test started; stopped after it, their log printed (shown
    when it fails)."""
    started: list[Any] = []
    yield started
    for panel in started:
        panel.stop()
        print(f"--- panel log {panel.log}:\n{panel.output()[-6000:]}")
