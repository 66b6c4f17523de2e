"""The panel's tables: users, the audit log, and the plugin-state change counter.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False, server_default=sa.true()),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.UniqueConstraint("username", name="uq_users_username"),
        sa.CheckConstraint("role IN ('admin', 'user')", name="ck_users_role"),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "audit_log",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("actor", sa.String(64), nullable=True),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("plugin_id", sa.String(64), nullable=True),
        sa.Column("version", sa.String(64), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=True),
    )
    op.create_index("ix_audit_log_plugin_id", "audit_log", ["plugin_id"])
    state = op.create_table(
        "plugin_state",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("generation", sa.BigInteger(), nullable=False, server_default=sa.text("0")),
        sa.Column("changed_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint("id = 1", name="ck_plugin_state_single_row"),
    )
    now = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    op.bulk_insert(state, [{"id": 1, "generation": 0, "changed_at": now}])


def downgrade() -> None:
    op.drop_table("plugin_state")
    op.drop_index("ix_audit_log_plugin_id", table_name="audit_log")
    op.drop_table("audit_log")
    op.drop_table("users")
