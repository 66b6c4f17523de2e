"""A plugin's whole life: disabled installations, and the key each plugin id is bound to.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("addon_installations") as batch:
        batch.add_column(
            sa.Column("enabled", sa.Boolean(), nullable=False, server_default=sa.true())
        )
    op.create_table(
        "plugin_signers",
        sa.Column("plugin_id", sa.String(64), primary_key=True),
        sa.Column("key_id", sa.String(128), nullable=False),
        sa.Column("bound_at", sa.DateTime(), nullable=False),
        sa.Column("bound_by", sa.String(64), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("plugin_signers")
    with op.batch_alter_table("addon_installations") as batch:
        batch.drop_column("enabled")
