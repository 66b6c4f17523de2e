"""Permissions: what the admin granted each installed plugin (metadata.json's ``permissions``).

Revision ID: 0006
Revises: 0005

Nullable without a default: a JSON column takes no portable server default (MariaDB
stores it as LONGTEXT), and a row from before this revision was granted nothing, so its
next upgrade asks the admin for whatever the plugin wants.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("addon_installations") as batch:
        batch.add_column(sa.Column("permissions", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("addon_installations") as batch:
        batch.drop_column("permissions")
