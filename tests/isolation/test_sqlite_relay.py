"""SQLite in process mode: a hostile plugin cannot open ``panel.db``, and its SQL reaches
only its own tables (plugdock.isolation.sqlite_relay).

Before, the sandbox was given the database file itself (SQLite has no roles), and a
plugin read every core table: the users' password hashes, ``plugdock_secrets``. Now the
file is not in the sandbox, and the plugin's statements run in the panel under SQLite's
authorizer. Each attack below read the core tables before.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from test_isolation import assert_panel_serves, route_plugin, serve_isolated, sqlite_url

from panel import Panel

pytestmark = pytest.mark.processes
REFUSED = r"not authorized|authorization denied|prohibited"  # SQLite's words for a refusal

THIEF_ROUTES = """
import sqlite3

from sqlalchemy import text


def _report(action):
    try:
        return {'ok': True, 'result': action()}
    except Exception as exc:  # what the database said is the point
        return {'ok': False, 'error': type(exc).__name__, 'message': str(exc).splitlines()[0]}


@router.get('/open')
def open_file(path: str) -> dict:
    # The database file by its host path, with Python's own sqlite3: no panel involved.
    def steal():
        conn = sqlite3.connect(f'file:{path}?mode=ro', uri=True)
        return [list(r) for r in conn.execute('SELECT username, password_hash FROM plugdock_users')]

    return _report(steal)


@router.post('/sql')
def sql(statement: str, db: sdk.DbSession) -> dict:
    def run():
        result = db.execute(text(statement))
        rows = [[str(v) for v in row] for row in result] if result.returns_rows else []
        db.commit()
        return rows

    return _report(run)
"""


@pytest.fixture
def thief(tmp_path: Path, panels: list[Panel]) -> httpx.Client:
    plugin = route_plugin(tmp_path / "src", "thief", THIEF_ROUTES)
    _panel, admin = serve_isolated(tmp_path, sqlite_url(tmp_path), panels, plugin, "thief")
    return admin


def _sql(admin: httpx.Client, statement: str) -> dict:
    answer = admin.post("/api/v1/thief/sql", params={"statement": statement})
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_the_database_file_is_not_in_the_sandbox(tmp_path: Path, thief: httpx.Client) -> None:
    database = tmp_path / "instance" / "panel.db"
    for path in (database, database.resolve()):
        stolen = thief.get("/api/v1/thief/open", params={"path": str(path)}).json()
        assert stolen["ok"] is False, stolen
        assert "argon2" not in str(stolen)
    assert_panel_serves(thief)


def test_its_own_table_works_through_the_panel(thief: httpx.Client) -> None:
    assert _sql(thief, "INSERT INTO thief_notes (body) VALUES ('mine')")["ok"] is True
    rows = _sql(thief, "SELECT body FROM thief_notes ORDER BY id")
    assert rows == {"ok": True, "result": [["hello"], ["mine"]]}, rows
    updated = _sql(thief, "UPDATE thief_notes SET body = 'changed' WHERE body = 'mine'")
    assert updated["ok"] is True
    assert _sql(thief, "DELETE FROM thief_notes WHERE body = 'changed'")["ok"] is True


@pytest.mark.parametrize(
    "statement",
    [
        "SELECT username, password_hash FROM plugdock_users",
        "SELECT * FROM plugdock_secrets",
        "SELECT * FROM addon_installations",
        "SELECT name, sql FROM sqlite_master",
        "UPDATE plugdock_users SET role = 'admin'",
        "INSERT INTO thief_notes (body) SELECT password_hash FROM plugdock_users",
        "WITH u AS (SELECT password_hash FROM plugdock_users) SELECT * FROM u",
        "ATTACH DATABASE 'file:panel.db' AS stolen",
        "CREATE TABLE loot (x TEXT)",
        "CREATE TEMP TABLE loot (x TEXT)",
        "DROP TABLE thief_notes",
        "PRAGMA writable_schema = ON",
        "PRAGMA table_info(users)",
        "SELECT load_extension('/tmp/evil.so')",
    ],
)
def test_other_tables_and_the_schema_are_refused(thief: httpx.Client, statement: str) -> None:
    answer = _sql(thief, statement)
    assert answer["ok"] is False, answer
    # SQLite's own words for a refusal by the authorizer.
    assert "not authorized" in answer["message"] or "prohibited" in answer["message"], answer
    assert "argon2" not in str(answer)


def test_authorizer_refuses_what_a_plugin_role_has_no_right_to() -> None:
    """The check itself, on a scratch database: the plugin's tables and nothing else."""
    import sqlite3

    from plugdock.isolation.sqlite_relay import authorizer

    db = sqlite3.connect(":memory:", isolation_level=None)
    db.execute("CREATE TABLE mine (id INTEGER PRIMARY KEY, body TEXT)")
    db.execute("CREATE TABLE plugdock_users (name TEXT)")
    db.set_authorizer(authorizer(lambda: {"mine"}))
    db.execute("INSERT INTO mine (body) VALUES ('x')")
    assert db.execute("SELECT body FROM mine").fetchall() == [("x",)]
    db.execute("PRAGMA table_info(mine)")
    for refused in ("SELECT * FROM plugdock_users", "CREATE INDEX i ON mine (body)", "VACUUM"):
        with pytest.raises(sqlite3.DatabaseError, match=REFUSED):
            db.execute(refused)
