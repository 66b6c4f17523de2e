"""A plugin's rows, kept before uninstall and put back on ``install --restore``.

A backup is a zip anyone can read without plugdock::

    ai_chatbot-1.1.0-20261126T130501Z.zip
    ├── backup.json          plugin, version, database, time; each table's columns and row count
    ├── schema.sql           the up.sql the plugin was installed with
    ├── tables/<name>.jsonl  one JSON object per row
    └── settings.json        its stored settings, secrets still encrypted (AES-GCM)

Restoring installs the backup's version, then (in the same transaction, after the plugin's
own ``on_install``) replaces whatever rows the install seeded with the backup's.
"""

from __future__ import annotations

import base64
import json
import zipfile
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, MetaData, Table, delete, func, insert, select
from sqlalchemy import types as satypes

from plugdock.core.fsutil import atomic_write, make_private_dir
from plugdock.errors import PlugdockError
from plugdock.instance import plugin_settings
from plugdock.instance.registry import Installation
from plugdock.operations.workspace import Workspace
from plugdock.package.metadata import PLUGIN_ID_PATTERN, parse_version
from plugdock.plugin_sql.migrations import Migration

BACKUP_FORMAT = 1
SETTINGS_MEMBER = "settings.json"
_MAX_MANIFEST_BYTES = 1024 * 1024
_ID = PLUGIN_ID_PATTERN


@dataclass(frozen=True)
class TableCount:
    name: str
    rows: int


@dataclass(frozen=True)
class BackupInfo:
    path: Path
    plugin_id: str
    version: str
    tables: list[TableCount]


def count_rows(workspace: Workspace, tables: list[str]) -> list[TableCount]:
    """Each of ``tables`` with its row count (what an uninstall would drop)."""
    with _uncached(workspace) as conn:
        reflected = _reflect(conn, tables)
        return [
            TableCount(
                name, conn.execute(select(func.count()).select_from(reflected[name])).scalar_one()
            )
            for name in tables
            if name in reflected
        ]


def write_backup(workspace: Workspace, installation: Installation) -> Path:
    """Write the plugin's tables and rows to ``instance/backups/``; the file's path."""
    folder = workspace.settings.backups_dir
    make_private_dir(folder)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    name = f"{installation.plugin_id}-{installation.version}-{stamp}"
    path, n = folder / f"{name}.zip", 1
    while path.exists():  # two uninstalls within a second: never replace an earlier backup
        n += 1
        path = folder / f"{name}-{n}.zip"
    schema = workspace.code_path("migrations", installation.plugin_id) / "up.sql"
    described = []
    # 0600: rows are user data. Durable: the tables are dropped once this returns.
    with atomic_write(path) as raw, zipfile.ZipFile(raw, "w", zipfile.ZIP_DEFLATED) as archive:
        with _uncached(workspace) as conn:
            reflected = _reflect(conn, installation.tables)
            for name in installation.tables:
                table = reflected.get(name)
                if table is None:
                    continue
                rows = 0
                with archive.open(f"tables/{name}.jsonl", "w") as out:
                    for row in conn.execute(select(table)).mappings():
                        out.write(json.dumps({k: _to_json(v) for k, v in row.items()}).encode())
                        out.write(b"\n")
                        rows += 1
                described.append(
                    {
                        "name": name,
                        "rows": rows,
                        "columns": [{"name": c.name, "type": str(c.type)} for c in table.columns],
                    }
                )
            stored_settings = plugin_settings.export_rows(conn, installation.plugin_id)
        if stored_settings:
            archive.writestr(SETTINGS_MEMBER, json.dumps(stored_settings, indent=2))
        if schema.is_file():
            archive.writestr("schema.sql", schema.read_bytes())
        archive.writestr(
            "backup.json",
            json.dumps(
                {
                    "format": BACKUP_FORMAT,
                    "plugin_id": installation.plugin_id,
                    "version": installation.version,
                    "created_at": datetime.now(UTC).replace(microsecond=0).isoformat(),
                    "database": workspace.dialect,
                    "tables": described,
                },
                indent=2,
            ),
        )
    return path


def read_backup(path: Path) -> BackupInfo:
    """What a backup holds; refuses files that are not plugdock backups."""
    try:
        with zipfile.ZipFile(path) as archive:
            info = archive.getinfo("backup.json")
            if info.file_size > _MAX_MANIFEST_BYTES:
                raise PlugdockError(f"{path}: backup.json is too large")
            data = json.loads(archive.read(info))
    except (KeyError, zipfile.BadZipFile, OSError, ValueError) as exc:
        raise PlugdockError(f"{path} is not a plugdock backup ({exc})") from None
    import re

    unreadable = PlugdockError(f"{path} is not a plugdock backup this version can read")
    if not isinstance(data, dict):
        raise unreadable
    plugin_id, version = data.get("plugin_id"), data.get("version")
    if (
        data.get("format") != BACKUP_FORMAT
        or not isinstance(plugin_id, str)
        or not re.fullmatch(_ID, plugin_id)
    ):
        raise unreadable
    try:  # a hand-edited backup.json gets the same one-line refusal, not a traceback
        parse_version(str(version))
        tables = [TableCount(str(t["name"]), int(t["rows"])) for t in data.get("tables", [])]
    except (KeyError, TypeError, ValueError) as exc:
        raise PlugdockError(
            f"{path} is not a plugdock backup this version can read ({exc})"
        ) from None
    return BackupInfo(path, plugin_id, str(version), tables)


def restore_rows(conn: Connection, backup: BackupInfo, migration: Migration) -> None:
    """Replace the rows of the plugin's tables with the backup's (in the caller's transaction)."""
    unknown = {t.name for t in backup.tables} - set(migration.tables)
    if unknown:
        raise PlugdockError(
            f"the backup has tables this version does not create: {', '.join(sorted(unknown))}"
        )
    reflected = _reflect(conn, list(migration.tables))
    metadata = next(iter(reflected.values())).metadata if reflected else MetaData()
    order = [t for t in metadata.sorted_tables if t.name in reflected]
    for table in reversed(order):  # children first
        conn.execute(delete(table))
    with zipfile.ZipFile(backup.path) as archive:
        names = set(archive.namelist())
        for table in order:  # parents first
            member = f"tables/{table.name}.jsonl"
            if member not in names:
                continue
            batch: list[dict[str, Any]] = []
            with archive.open(member) as handle:
                for line in handle:
                    row = json.loads(line)
                    batch.append(
                        {k: _from_json(table.c[k].type, v) for k, v in row.items() if k in table.c}
                    )
                    if len(batch) >= 1000:
                        conn.execute(insert(table), batch)
                        batch = []
            if batch:
                conn.execute(insert(table), batch)
            _reset_identity(conn, table)
        if SETTINGS_MEMBER in names:
            info = archive.getinfo(SETTINGS_MEMBER)
            if info.file_size > _MAX_MANIFEST_BYTES:
                raise PlugdockError(f"{backup.path}: {SETTINGS_MEMBER} is too large")
            try:
                rows = json.loads(archive.read(info))
            except ValueError:
                rows = None
            plugin_settings.import_rows(conn, backup.plugin_id, rows, actor=None)


def _uncached(workspace: Workspace) -> Connection:
    """A connection that compiles without the engine's statement cache: statements on freshly
    reflected tables never repeat, and each cache entry would pin its Table (about 16 KiB per
    uninstall, up to the cache's 500 entries)."""
    return workspace.engine.connect().execution_options(compiled_cache=None)


def _reflect(conn: Connection, tables: list[str]) -> dict[str, Table]:
    metadata = MetaData()
    existing = set(conn.dialect.get_table_names(conn))
    wanted = [t for t in tables if t in existing]
    metadata.reflect(conn, only=wanted)
    return {name: metadata.tables[name] for name in wanted}


def _reset_identity(conn: Connection, table: Table) -> None:
    """PostgreSQL's identity sequences do not move on explicit ids; MySQL and SQLite do."""
    if conn.dialect.name != "postgresql":
        return
    for column in table.primary_key.columns:
        if isinstance(column.type, satypes.Integer):
            sequence = func.pg_get_serial_sequence(table.name, column.name)
            if conn.execute(select(sequence)).scalar() is None:
                continue
            highest = select(func.coalesce(func.max(column), 0) + 1).scalar_subquery()
            conn.execute(select(func.setval(sequence, highest, False)))


def _to_json(value: Any) -> Any:
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode()
    return value


def _from_json(kind: Any, value: Any) -> Any:
    if value is None:
        return None
    if isinstance(kind, satypes.DateTime):
        return datetime.fromisoformat(value)
    if isinstance(kind, satypes.Date):
        return date.fromisoformat(value)
    if isinstance(kind, satypes.Time):
        return time.fromisoformat(value)
    if isinstance(kind, satypes.Numeric) and not isinstance(kind, satypes.Float):
        return Decimal(str(value))
    if isinstance(kind, satypes.LargeBinary):
        return base64.b64decode(value)
    return value
