"""Shared fixtures: a scratch database per test on SQLite, PostgreSQL and MariaDB; and the
markers saying what a test needs beyond the venv.

Server URLs come from ``PLUGDOCK_TEST_POSTGRES_URL`` and ``PLUGDOCK_TEST_MARIADB_URL``
(tests/db_servers.py). Each test gets a fresh database that is dropped afterwards, so
tests never see each other's tables.

The markers (registered in pyproject.toml): ``dbserver``, ``browser``, ``processes``,
``server`` and ``slow``; ``make test-fast`` runs the tests that have none of them.
``pytest_collection_modifyitems`` below marks a test by the fixtures it uses (and the
database it is parametrized on); a test that starts a server inline, or is slow, is marked
in its file.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import Engine

from db_servers import DATABASES, MARIADB_URL, POSTGRES_URL, _scratch_server_database
from plugdock.core.db import make_engine
from plugdock.installer import Installer
from support import CHATBOT, instance_settings, pack_into

if TYPE_CHECKING:
    from remote_helpers import Remote

TESTS = Path(__file__).resolve().parent
SERVER_DATABASES = {"postgresql", "mariadb"}
# What a fixture needs, for every test that uses it (directly or through another fixture).
NEEDS_OF_FIXTURES = {
    "browser": ("browser",),
    "page": ("browser",),
    # Every file's own `panel` fixture is a `plugdock serve` on loopback (tests/panel.py).
    "panel": ("server",),
    # The process-mode panels of tests/isolation/ (their only users).
    "panels": ("server", "processes"),
    "remote": ("server",),
    # File-local fixtures on the database servers.
    "postgres_db": ("dbserver",),  # runtime/test_replicas.py
    "mariadb_db": ("dbserver",),  # runtime/test_replicas.py
    "restricted_panel": ("dbserver",),  # plugin_sql/test_db_roles.py
    "relay": ("dbserver", "server"),  # isolation/test_isolation_hardening.py: to MariaDB
}


def needs(item: pytest.Item) -> set[str]:
    """The markers a collected test gets from its fixtures, parameters and folder."""
    found: set[str] = set()
    for name in getattr(item, "fixturenames", ()):
        found.update(NEEDS_OF_FIXTURES.get(name, ()))
    callspec = getattr(item, "callspec", None)
    if callspec is not None and callspec.params.get("database_url") in SERVER_DATABASES:
        found.add("dbserver")
    if item.path.is_relative_to(TESTS / "browser"):
        found.add("browser")
    if os.environ.get("PLUGDOCK_ISOLATION") == "process":  # make test's second pass
        found.add("processes")
    return found


@pytest.hookimpl(tryfirst=True)  # before -m selects by the markers
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        for marker in sorted(needs(item)):
            item.add_marker(marker)


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
def engine(database_url: str) -> Iterator[Engine]:
    """An engine on the scratch database (plugdock's own tables are made on first use)."""
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


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
def remote(tmp_path: Path) -> Iterator[Remote]:
    """A plugin server on loopback (tests/remote_helpers.py) with alice's account."""
    from remote_helpers import start_remote  # uvicorn and the server: only where used

    live, remote = start_remote(tmp_path)
    try:
        yield remote
    finally:
        live.__exit__()
