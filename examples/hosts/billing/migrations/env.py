"""Alembic for the billing schema, on the database plugdock shares (docs/embedding.md, 6).

``skip_plugdock_tables`` keeps autogenerate away from plugdock's tables and the installed
plugins' tables. The models come from billing.models, not from billing.app: building the
app would open plugdock's instance, which a migration does not need.
"""

from alembic import context
from sqlalchemy import create_engine

from billing.db import database_url
from billing.models import Base
from plugdock import skip_plugdock_tables

connectable = create_engine(database_url())
with connectable.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        include_object=skip_plugdock_tables(connection),
    )
    with context.begin_transaction():
        context.run_migrations()
connectable.dispose()
