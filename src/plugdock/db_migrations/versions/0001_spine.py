"""The spine's tables: installed plugins and the plugin migrations applied for them.

Databases created before plugdock used Alembic have exactly these two tables and are
stamped at this revision instead of running it.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "addon_installations",
        sa.Column("plugin_id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("package_sha256", sa.String(64), nullable=False),
        sa.Column("signer", sa.String(200), nullable=True),
        sa.Column("installed_at", sa.DateTime(), nullable=False),
        sa.Column("installed_by", sa.String(200), nullable=True),
        sa.Column("tables", sa.JSON(), nullable=False),
        sa.Column("operation_id", sa.String(32), nullable=False),
    )
    op.create_table(
        "plugin_migrations",
        sa.Column("plugin_id", sa.String(64), primary_key=True),
        sa.Column("version", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("checksum", sa.String(64), nullable=False),
        sa.Column("applied_at", sa.DateTime(), nullable=False),
        sa.Column("statements", sa.Text(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("plugin_migrations")
    op.drop_table("addon_installations")
