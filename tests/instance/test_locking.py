"""The operation lock: one operation per database, and only per database."""

from __future__ import annotations

from pathlib import Path

import pytest

from db_servers import MARIADB_URL, POSTGRES_URL, _scratch_server_database
from plugdock.core.db import make_engine
from plugdock.errors import LockTimeoutError
from plugdock.instance.locking import operation_lock

# Two instances on one PostgreSQL or MariaDB server.
pytestmark = pytest.mark.dbserver


@pytest.mark.parametrize("server_url", [POSTGRES_URL, MARIADB_URL], ids=["postgresql", "mariadb"])
def test_instances_on_one_server_do_not_block_each_other(tmp_path: Path, server_url: str) -> None:
    """MariaDB's named locks are server-wide: two instances, each with its own database on
    one server, must still install at the same time; two users of one database must not."""
    kind = "postgresql" if server_url is POSTGRES_URL else "mariadb"
    first_urls = _scratch_server_database(server_url, kind)
    second_urls = _scratch_server_database(server_url, kind)
    first = make_engine(next(first_urls), upgrade=False)
    second = make_engine(next(second_urls), upgrade=False)
    same = make_engine(first.url.render_as_string(hide_password=False), upgrade=False)
    try:
        with operation_lock(tmp_path / "a.lock", first, timeout=5):
            with operation_lock(tmp_path / "b.lock", second, timeout=0.2):
                pass  # another database on the same server: free
            with (
                pytest.raises(LockTimeoutError),
                operation_lock(tmp_path / "c.lock", same, timeout=0.2),
            ):
                pass  # the same database, another instance folder: taken
    finally:
        for engine in (first, second, same):
            engine.dispose()
        for urls in (first_urls, second_urls):
            next(urls, None)  # drop the scratch database
