"""The database from a hostile plugin, on PostgreSQL and MariaDB (issue 22, items 2 and 6).

The plugin asks for ``network:api.example.com:443`` only, as in the report: with it, it
used to reach the database servers on 127.0.0.1 as the superuser (and log in to other
databases with its own role); through its own role it created temporary tables, large
objects and ``pg_temp`` functions, listed every database, changed its role's defaults
for good, and on MariaDB ran ``LOAD DATA LOCAL``. Every attempt first, then one assertion
that shows them all (docs/isolation.md says what remains).
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from test_isolation import MARKET, assert_panel_serves, route_plugin, serve_isolated

from panel import Panel
from plugdock.plugin_sql.db_roles import role_name

pytestmark = pytest.mark.processes

HOSTILE_ROUTES = """
from sqlalchemy import text


def _report(action):
    try:
        return {'ok': True, 'result': action()}
    except Exception as exc:  # what the server said is the point
        return {'ok': False, 'error': str(exc).splitlines()[0][:300]}


@router.post('/sql')
def sql(statement: str, db: sdk.DbSession) -> dict:
    def run():
        with db.get_bind().connect() as conn:
            result = conn.execute(text(statement))
            rows = [[str(v) for v in row] for row in result] if result.returns_rows else []
            conn.commit()
            return rows

    return _report(run)


@router.get('/pg-login')
def pg_login(host: str, dbname: str, db: sdk.DbSession) -> dict:
    # Its own role's credentials, to another database: over TCP, or through the relay.
    import psycopg

    url = db.get_bind().url
    where = url.query['host'] if host == 'relay' else host

    def login():
        with psycopg.connect(host=where, port=5432, user=url.username,
                             password=url.password, dbname=dbname, connect_timeout=10) as c:
            return c.execute('SELECT current_database()').fetchone()[0]

    return _report(login)


@router.get('/my-root')
def my_root() -> dict:
    import pymysql

    def login():
        conn = pymysql.connect(host='127.0.0.1', port=3306, user='root', connect_timeout=10)
        with conn.cursor() as cursor:
            cursor.execute('SELECT user, password FROM mysql.user')
            return [list(map(str, row)) for row in cursor.fetchall()]

    return _report(login)


@router.post('/load-local')
def load_local(db: sdk.DbSession) -> dict:
    import pymysql

    url = db.get_bind().url
    with open('/plugin/data/rows.csv', 'w') as handle:
        handle.write('loaded\\n')

    def load():
        conn = pymysql.connect(unix_socket=url.query['unix_socket'], user=url.username,
                               password=url.password, database=url.database,
                               local_infile=True)
        with conn.cursor() as cursor:
            cursor.execute("LOAD DATA LOCAL INFILE '/plugin/data/rows.csv' "
                           "INTO TABLE hostile_notes (body)")
        conn.commit()
        return 'loaded'

    return _report(load)
"""


def _hostile(tmp_path: Path, database_url: str, panels: list[Panel]) -> httpx.Client:
    plugin = route_plugin(
        tmp_path / "src",
        "hostile",
        HOSTILE_ROUTES,
        metadata={"permissions": ["network:api.example.com:443"]},
    )
    _panel, admin = serve_isolated(tmp_path, database_url, panels, plugin, "hostile")
    return admin


def _sql(admin: httpx.Client, statement: str) -> dict:
    answer = admin.post("/api/v1/hostile/sql", params={"statement": statement})
    assert answer.status_code == 200, answer.text
    return answer.json()


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_postgresql_role_gets_no_temp_no_large_objects_no_other_database(
    tmp_path: Path, database_url: str, panels: list[Panel]
) -> None:
    admin = _hostile(tmp_path, database_url, panels)
    own = make_url(database_url).database
    tried = {
        statement: _sql(admin, statement)
        for statement in (
            "CREATE TEMP TABLE loot (x int)",
            "CREATE FUNCTION pg_temp.f() RETURNS int LANGUAGE sql AS 'SELECT 1'",
            "SELECT lo_create(0)",
            "SELECT lo_from_bytea(0, 'x')",
            "SELECT datname FROM pg_database",
            "SELECT datname FROM pg_stat_database",
            "SELECT datname FROM pg_stat_activity",
        )
    }
    for host in ("127.0.0.1", "relay"):  # other databases: over TCP (as before), the relay
        for other in ("postgres", "template1"):
            answer = admin.get("/api/v1/hostile/pg-login", params={"host": host, "dbname": other})
            tried[f"login to {other} via {host}"] = answer.json()
    went_through = {what: answer for what, answer in tried.items() if answer["ok"]}
    assert not went_through, went_through
    # Its own database and tables still work.
    assert _sql(admin, "SELECT body FROM hostile_notes") == {"ok": True, "result": [["hello"]]}
    assert own

    # ALTER ROLE ... SET on itself: PostgreSQL has no right to withhold it, so the panel
    # clears what it set whenever it starts the plugin's process again.
    changed = _sql(admin, "ALTER ROLE CURRENT_USER SET search_path = 'pg_temp'")
    assert changed["ok"] is True, changed
    role = role_name(own, "hostile")
    engine = create_engine(database_url)
    try:
        count = text(
            "SELECT count(*) FROM pg_db_role_setting s JOIN pg_roles r ON r.oid = s.setrole"
            " WHERE r.rolname = :role"
        )
        with engine.connect() as conn:
            assert conn.execute(count, {"role": role}).scalar() == 1
        for step in ("disable", "enable"):
            answer = admin.post(f"{MARKET}/{step}/hostile")
            assert answer.status_code == 200, answer.text
        assert _sql(admin, "SELECT body FROM hostile_notes")["ok"] is True  # started again
        with engine.connect() as conn:
            assert conn.execute(count, {"role": role}).scalar() == 0
    finally:
        engine.dispose()
    assert_panel_serves(admin)


@pytest.mark.parametrize("database_url", ["mariadb"], indirect=True)
def test_mariadb_user_gets_no_file_no_other_databases_no_load_data_local(
    tmp_path: Path, database_url: str, panels: list[Panel]
) -> None:
    admin = _hostile(tmp_path, database_url, panels)
    own = make_url(database_url).database
    tried = {
        "root on 127.0.0.1:3306": admin.get("/api/v1/hostile/my-root").json(),
        "LOAD DATA LOCAL": admin.post("/api/v1/hostile/load-local").json(),
        "INTO OUTFILE": _sql(admin, "SELECT body FROM hostile_notes INTO OUTFILE '/tmp/pd-x'"),
        "LOAD DATA INFILE": _sql(
            admin, "LOAD DATA INFILE '/etc/hostname' INTO TABLE hostile_notes (body)"
        ),
    }
    went_through = {what: answer for what, answer in tried.items() if answer["ok"]}
    # FILE: LOAD_FILE answers NULL without it, and SHOW DATABASES lists only its own.
    read = _sql(admin, "SELECT LOAD_FILE('/etc/passwd')")
    if read != {"ok": True, "result": [["None"]]}:
        went_through["LOAD_FILE"] = read
    listed = _sql(admin, "SHOW DATABASES")
    assert listed["ok"] is True, listed
    others = {row[0] for row in listed["result"]} - {own, "information_schema"}
    if others:
        went_through["SHOW DATABASES"] = listed
    assert not went_through, went_through
    # Refused by the server because the relay took the client's LOCAL capability away
    # (the server itself allows local_infile here), not for want of a file.
    assert "not allowed" in tried["LOAD DATA LOCAL"]["error"], tried["LOAD DATA LOCAL"]
    rows = _sql(admin, "SELECT body FROM hostile_notes")
    assert rows == {"ok": True, "result": [["hello"]]}, rows  # nothing was loaded
    assert_panel_serves(admin)
