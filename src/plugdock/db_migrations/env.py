"""Alembic environment for plugdock's core tables, configured by
``plugdock.core.db.alembic_config``.

There is no ``alembic.ini``: :func:`plugdock.core.db.upgrade_schema` builds the configuration
and passes its connection in ``config.attributes["connection"]``, already inside the
transaction (and lock) it wants the migration to run in. Offline mode (``--sql``) renders
the SQL for the URL in the ``sqlalchemy.url`` option instead.
"""

from __future__ import annotations

from alembic import context

from plugdock.core.db import VERSION_TABLE, core_metadata

config = context.config

if context.is_offline_mode():
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=core_metadata,
        literal_binds=True,
        version_table=VERSION_TABLE,
    )
    with context.begin_transaction():
        context.run_migrations()
else:
    connection = config.attributes.get("connection")
    if connection is None:
        raise RuntimeError(
            "plugdock's core migrations run through plugdock.core.db.upgrade_schema(engine)"
        )
    context.configure(
        connection=connection,
        target_metadata=core_metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite cannot ALTER much
        compare_type=True,
        version_table=VERSION_TABLE,  # the host's own Alembic keeps alembic_version
    )
    with context.begin_transaction():
        context.run_migrations()
