"""Host events: declared extension points, the outbox and its deliveries.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "plugdock_extension_points",
        sa.Column("kind", sa.String(16), primary_key=True),
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("payload_schema", sa.JSON(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("declared_at", sa.DateTime(), nullable=False),
    )
    op.create_table(
        "plugdock_events",
        sa.Column("id", _ID, primary_key=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("event_key", sa.String(200), nullable=True),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("emitted_at", sa.DateTime(), nullable=False),
        sa.Column("fanned_out", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    op.create_index("ix_plugdock_events_fanned_out", "plugdock_events", ["fanned_out", "id"])
    op.create_table(
        "plugdock_event_subscriptions",
        sa.Column("plugin_id", sa.String(64), primary_key=True),
        sa.Column("event_name", sa.String(100), primary_key=True),
        sa.Column("handler", sa.String(200), nullable=False),
    )
    op.create_table(
        "plugdock_event_deliveries",
        sa.Column("id", _ID, primary_key=True),
        sa.Column("event_id", _ID, nullable=False),
        sa.Column("plugin_id", sa.String(64), nullable=False),
        sa.Column("handler", sa.String(200), nullable=False),
        sa.Column("event_key", sa.String(200), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("next_at", sa.DateTime(), nullable=False),
        sa.Column("claimed_by", sa.String(64), nullable=True),
        sa.Column("claimed_until", sa.DateTime(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
    )
    op.create_index(
        "ix_plugdock_event_deliveries_due", "plugdock_event_deliveries", ["status", "next_at"]
    )
    op.create_index(
        "ix_plugdock_event_deliveries_order",
        "plugdock_event_deliveries",
        ["plugin_id", "event_key", "id"],
    )


def downgrade() -> None:
    op.drop_table("plugdock_event_deliveries")
    op.drop_table("plugdock_event_subscriptions")
    op.drop_table("plugdock_events")
    op.drop_table("plugdock_extension_points")
