"""Plugins' scheduled jobs: each job's next tick, and the history of its runs.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "plugdock_job_schedules",
        sa.Column("plugin_id", sa.String(64), primary_key=True),
        sa.Column("job_id", sa.String(64), primary_key=True),
        sa.Column("cron", sa.String(100), nullable=False),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("handler", sa.String(200), nullable=False),
        sa.Column("next_at", sa.DateTime(), nullable=False),
    )
    op.create_table(
        "plugdock_job_runs",
        sa.Column("id", _ID, primary_key=True),
        sa.Column("plugin_id", sa.String(64), nullable=False),
        sa.Column("job_id", sa.String(64), nullable=False),
        sa.Column("scheduled_for", sa.DateTime(), nullable=False),
        sa.Column("manual", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("claimed_by", sa.String(64), nullable=True),
        sa.Column("claimed_until", sa.DateTime(), nullable=True),
        sa.Column("started_at", sa.DateTime(), nullable=True),
        sa.Column("duration_ms", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
    )
    op.create_index("ix_plugdock_job_runs_job", "plugdock_job_runs", ["plugin_id", "job_id", "id"])
    op.create_index("ix_plugdock_job_runs_status", "plugdock_job_runs", ["status"])


def downgrade() -> None:
    op.drop_table("plugdock_job_runs")
    op.drop_table("plugdock_job_schedules")
