"""What is installed: the ``addon_installations`` table (the truth) and ``addon_registry.json``.

The table commits together with a plugin's migration, so it is the record an
operation's outcome is decided by. The JSON registry beside the code folders is a
view of the table for tools that read the disk; it is always rewritten from the rows.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, delete, insert, select, update

from plugdock.core.db import addon_installations, connect_read
from plugdock.core.fsutil import write_json_atomic

REGISTRY_FORMAT = 1


@dataclass(frozen=True)
class Installation:
    plugin_id: str
    name: str
    version: str
    package_sha256: str
    signer: str | None
    installed_at: datetime
    installed_by: str | None
    tables: list[str]
    operation_id: str
    enabled: bool = True  # a disabled plugin keeps code, tables and rows but is served nowhere
    # What the admin granted (plugdock.package.permissions): the package's own list, taken
    # at install and at each upgrade the admin confirmed.
    permissions: list[str] = field(default_factory=list)

    def as_registry_entry(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "installed_at": self.installed_at.isoformat(),
            "installed_by": self.installed_by,
            "package_sha256": self.package_sha256,
            "signer": self.signer,
            "tables": self.tables,
            "enabled": self.enabled,
            "permissions": self.permissions,
            "backend": f"backend/{self.plugin_id}",
            "frontend": f"frontend/{self.plugin_id}",
        }


def _row_to_installation(row: Any) -> Installation:
    installed_at = row.installed_at
    if installed_at.tzinfo is None:  # SQLite and MariaDB hand back naive datetimes
        installed_at = installed_at.replace(tzinfo=UTC)
    return Installation(
        plugin_id=row.plugin_id,
        name=row.name,
        version=row.version,
        package_sha256=row.package_sha256,
        signer=row.signer,
        installed_at=installed_at,
        installed_by=row.installed_by,
        tables=list(row.tables or []),
        operation_id=row.operation_id,
        enabled=bool(row.enabled),
        permissions=list(row.permissions or []),  # NULL: installed before grants were kept
    )


def list_installations(conn: Connection) -> list[Installation]:
    rows = conn.execute(select(addon_installations).order_by(addon_installations.c.plugin_id))
    return [_row_to_installation(row) for row in rows]


def installations_by_id(engine: Engine) -> dict[str, Installation]:
    """Every installation, by plugin id, read without waiting for an operation's lock."""
    with connect_read(engine) as conn:
        return {i.plugin_id: i for i in list_installations(conn)}


def get_installation(conn: Connection, plugin_id: str) -> Installation | None:
    row = conn.execute(
        select(addon_installations).where(addon_installations.c.plugin_id == plugin_id)
    ).first()
    return None if row is None else _row_to_installation(row)


def add_installation(conn: Connection, installation: Installation) -> None:
    values = installation.__dict__ | {
        "installed_at": installation.installed_at.replace(tzinfo=None)
    }
    conn.execute(insert(addon_installations).values(**values))


def replace_installation(conn: Connection, installation: Installation) -> None:
    """Point the plugin's row at another installation of it (an upgrade)."""
    values = installation.__dict__ | {
        "installed_at": installation.installed_at.replace(tzinfo=None)
    }
    conn.execute(
        update(addon_installations)
        .where(addon_installations.c.plugin_id == installation.plugin_id)
        .values(**values)
    )


def set_enabled(conn: Connection, plugin_id: str, enabled: bool) -> None:
    conn.execute(
        update(addon_installations)
        .where(addon_installations.c.plugin_id == plugin_id)
        .values(enabled=enabled)
    )


def remove_installation(conn: Connection, plugin_id: str) -> None:
    conn.execute(delete(addon_installations).where(addon_installations.c.plugin_id == plugin_id))


def read_registry(path: Path) -> dict[str, dict[str, Any]]:
    """The plugins recorded in ``addon_registry.json`` (empty when there is none yet)."""
    if not path.exists():
        return {}
    data = json.loads(path.read_text(encoding="utf-8"))
    plugins = data.get("plugins", {}) if isinstance(data, dict) else None
    if not isinstance(plugins, dict):
        raise ValueError(f"{path} does not hold a plugin registry")
    return dict(plugins)


def write_registry(path: Path, installations: list[Installation]) -> None:
    """Rewrite ``addon_registry.json`` atomically from these installations.

    Not synced to disk: the file is a view of the database's rows, and every start and
    every operation rewrites it from them when it differs (``runtime.materialize``), so a
    write a crash lost heals itself; two fsyncs of an install's eight were spent on it.
    """
    plugins = {i.plugin_id: i.as_registry_entry() for i in installations}
    write_json_atomic(path, {"format": REGISTRY_FORMAT, "plugins": plugins}, durable=False)
