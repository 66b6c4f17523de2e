"""Every core table, index and constraint named ``plugdock_…``: nothing collides with a host's.

Revision ID: 0007
Revises: 0006

An app that embeds plugdock has its own ``users``, ``audit_log`` or ``uq_users_username``;
plugdock's names now start with ``plugdock_`` (``addon_installations``, a name the design
fixes, keeps its own). The tables are renamed with their rows; the names that are global
per database are renamed too: on PostgreSQL every index, constraint and sequence of a
renamed table (found in the catalog), on MariaDB the foreign keys (InnoDB names them per
database), on SQLite the indexes. SQLite keeps ``uq_users_username`` inside the users
table's definition: a name per table there, and renaming it would mean copying the table,
whose removal cascades to every session. The version table moves from ``alembic_version`` to
``plugdock_alembic_version`` before this runs (``plugdock.core.db``), so the host's own
Alembic keeps ``alembic_version``.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

TABLES = {
    "plugin_migrations": "plugdock_plugin_migrations",
    "users": "plugdock_users",
    "audit_log": "plugdock_audit_log",
    "plugin_signers": "plugdock_plugin_signers",
    "login_throttle": "plugdock_login_throttle",
    "auth_sessions": "plugdock_auth_sessions",
    "plugin_packages": "plugdock_plugin_packages",
    "plugin_package_chunks": "plugdock_plugin_package_chunks",
    "plugin_state": "plugdock_plugin_state",
}
# Index (table, old, new, columns) and foreign keys (table, old, new, column, target) by name.
INDEXES = [
    ("audit_log", "ix_audit_log_plugin_id", "ix_plugdock_audit_log_plugin_id", ["plugin_id"]),
    (
        "login_throttle",
        "ix_login_throttle_window_start",
        "ix_plugdock_login_throttle_window_start",
        ["window_start"],
    ),
    ("auth_sessions", "ix_auth_sessions_user_id", "ix_plugdock_auth_sessions_user_id", ["user_id"]),
    (
        "auth_sessions",
        "ix_auth_sessions_expires_at",
        "ix_plugdock_auth_sessions_expires_at",
        ["expires_at"],
    ),
]
FOREIGN_KEYS = [
    (
        "auth_sessions",
        "fk_auth_sessions_user",
        "fk_plugdock_auth_sessions_user",
        "user_id",
        ("users", "id"),
    ),
    (
        "plugin_package_chunks",
        "fk_package_chunks_package",
        "fk_plugdock_package_chunks_package",
        "sha256",
        ("plugin_packages", "sha256"),
    ),
]


def upgrade() -> None:
    _rename(TABLES, forward=True)


def downgrade() -> None:
    _rename({new: old for old, new in TABLES.items()}, forward=False)


def _rename(tables: dict[str, str], *, forward: bool) -> None:
    dialect = op.get_context().dialect.name
    if dialect == "mysql":  # foreign key names are per database in InnoDB: drop, re-add
        for table, old, new, _column, _target in FOREIGN_KEYS:
            here = table if forward else TABLES[table]
            op.drop_constraint(old if forward else new, here, type_="foreignkey")
    if dialect in ("sqlite", "mysql"):  # index names: per database on SQLite
        for table, old, new, _columns in INDEXES:
            op.drop_index(old if forward else new, table_name=table if forward else TABLES[table])
    for old, new in tables.items():
        op.rename_table(old, new)
    if dialect in ("sqlite", "mysql"):
        for table, old, new, columns in INDEXES:
            here = TABLES[table] if forward else table
            op.create_index(new if forward else old, here, columns)
    if dialect == "mysql":
        for table, old, new, column, (target, target_column) in FOREIGN_KEYS:
            here, there = (TABLES[table], TABLES[target]) if forward else (table, target)
            op.create_foreign_key(
                new if forward else old,
                here,
                there,
                [column],
                [target_column],
                ondelete="CASCADE",
            )
    if dialect == "postgresql":
        for old, new in tables.items():
            _rename_postgresql_names(old, new)
    if dialect == "mysql":  # per table here, renamed anyway so the schema has one shape
        old_name, new_name = "uq_users_username", "uq_plugdock_users_username"
        with op.batch_alter_table(tables["users" if forward else "plugdock_users"]) as batch:
            batch.drop_constraint(old_name if forward else new_name, type_="unique")
            batch.create_unique_constraint(new_name if forward else old_name, ["username"])


def _rename_postgresql_names(old: str, new: str) -> None:
    """Indexes, constraints and sequences of table ``new`` named after ``old``: renamed."""
    bind = op.get_bind()
    constraints = bind.execute(
        sa.text("SELECT conname FROM pg_constraint WHERE conrelid = CAST(:t AS regclass)"),
        {"t": new},
    ).scalars()
    for name in list(constraints):
        renamed = _renamed(name, old, new)
        if renamed != name:
            op.execute(
                f'ALTER TABLE "{new}" RENAME CONSTRAINT "{name}" TO "{renamed}"'
            )  # names from the catalog, matched against our own table names above
    indexes = bind.execute(
        sa.text("SELECT indexname FROM pg_indexes WHERE tablename = :t"), {"t": new}
    ).scalars()
    for name in list(indexes):
        renamed = _renamed(name, old, new)
        if renamed != name:
            op.execute(f'ALTER INDEX "{name}" RENAME TO "{renamed}"')
    sequences = bind.execute(
        sa.text(
            "SELECT s.relname FROM pg_class s JOIN pg_depend d ON d.objid = s.oid "
            "WHERE s.relkind = 'S' AND d.refobjid = CAST(:t AS regclass)"
        ),
        {"t": new},
    ).scalars()
    for name in list(sequences):
        renamed = _renamed(name, old, new)
        if renamed != name:
            op.execute(f'ALTER SEQUENCE "{name}" RENAME TO "{renamed}"')


# A name not made of its table's name (renamed by hand, both ways).
_ODD_NAMES = {"fk_package_chunks_package": "fk_plugdock_package_chunks_package"}


def _renamed(name: str, old: str, new: str) -> str:
    """``users_pkey`` → ``plugdock_users_pkey``, ``uq_users_username`` → ``uq_plugdock_…``."""
    for prefix in ("", "ix_", "uq_", "ck_", "fk_"):
        if name.startswith(f"{prefix}{old}_"):
            return f"{prefix}{new}_{name[len(prefix) + len(old) + 1 :]}"
    odd = _ODD_NAMES if new.startswith("plugdock_") else {v: k for k, v in _ODD_NAMES.items()}
    return odd.get(name, name)
