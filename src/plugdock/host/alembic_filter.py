"""Keeping an embedding app's Alembic away from plugdock's and the plugins' tables.

An app's ``alembic revision --autogenerate`` compares its models with the database and
proposes dropping every table it has no model for: plugdock's own and each installed
plugin's. Give its ``env.py`` this filter::

    from plugdock import skip_plugdock_tables

    with connectable.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            include_object=skip_plugdock_tables(connection),
        )

It leaves out ``addon_installations``, every ``plugdock_*`` table and the tables the
installed plugins own (read from ``addon_installations`` when the filter is made, so a
plugin installed since the last revision is left out too), with their indexes and
constraints.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection, inspect, select

from plugdock.core.db import addon_installations

PLUGDOCK_PREFIX = "plugdock_"


def plugdock_table_names(connection: Connection) -> set[str]:
    """The tables of plugdock and of its installed plugins that exist now.

    Leaves ``connection`` as it found it: a transaction this read began is ended, or
    Alembic's ``context.begin_transaction()`` would join it and never commit the revision.
    """
    began = not connection.in_transaction()
    try:
        existing = set(inspect(connection).get_table_names())
        ours = {name for name in existing if name.startswith(PLUGDOCK_PREFIX)}
        if addon_installations.name in existing:
            ours.add(addon_installations.name)
            for tables in connection.execute(select(addon_installations.c.tables)).scalars():
                ours.update(str(table) for table in tables or ())
    finally:
        if began and connection.in_transaction():
            connection.rollback()  # only read
    return ours


def skip_plugdock_tables(connection: Connection) -> Callable[..., bool]:
    """An Alembic ``include_object`` that leaves plugdock's and the plugins' tables out."""
    skipped = plugdock_table_names(connection)

    def include_object(
        obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
    ) -> bool:
        if type_ == "table":
            return name not in skipped and not (name or "").startswith(PLUGDOCK_PREFIX)
        table = getattr(obj, "table", None)  # an index, column or constraint of a table
        table_name = getattr(table, "name", None)
        return table_name is None or (
            table_name not in skipped and not table_name.startswith(PLUGDOCK_PREFIX)
        )

    return include_object
