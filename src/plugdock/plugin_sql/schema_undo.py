"""Undo an upgrade's column and index additions where DDL is not transactional (MariaDB).

Before the upgrade's transaction the plugin's tables' columns and indexes are recorded (in
the journal, so recovery after a crash has them too); after a failure, whatever is new is
dropped again, so the old version's schema is exactly back and a retry can run.
"""

from __future__ import annotations

import logging

from sqlalchemy import Connection, Engine, inspect, text

log = logging.getLogger("plugdock.installer")

Shape = dict[str, dict[str, list[str]]]  # table → {"columns": [...], "indexes": [...]}


def record_shape(engine: Engine, tables: list[str]) -> Shape:
    inspector = inspect(engine)
    existing = {n.lower(): n for n in inspector.get_table_names()}
    return {
        table: {
            "columns": [c["name"] for c in inspector.get_columns(existing[table])],
            "indexes": [i["name"] for i in inspector.get_indexes(existing[table]) if i["name"]],
        }
        for table in tables
        if table in existing
    }


def restore_shape(engine: Engine, shape: Shape) -> None:
    """Drop the indexes, then the columns, that the recorded tables did not have."""
    inspector = inspect(engine)
    existing = {n.lower(): n for n in inspector.get_table_names()}
    quote = engine.dialect.identifier_preparer.quote
    with engine.connect() as conn:
        for table, before in shape.items():
            if table not in existing:
                continue
            name = existing[table]
            for index in inspector.get_indexes(name):
                if index["name"] and index["name"] not in before["indexes"]:
                    _run(conn, f"DROP INDEX {quote(index['name'])} ON {quote(name)}")
            for column in inspector.get_columns(name):
                if column["name"] not in before["columns"]:
                    _run(conn, f"ALTER TABLE {quote(name)} DROP COLUMN {quote(column['name'])}")


def _run(conn: Connection, statement: str) -> None:
    try:  # names come from the database's own catalog, quoted by the dialect
        conn.execute(text(statement))
        conn.commit()
    except Exception as exc:  # reported by compensate_upgrade's look at what stays
        conn.rollback()
        log.warning("could not undo %s: %s", statement, exc)
