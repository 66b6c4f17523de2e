"""Helpers for tests: tiny plugin folders, packing, and a snapshot of an instance's whole state."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, inspect, select

from plugdock.config import Settings, load_settings
from plugdock.core.db import (
    addon_installations,
    audit_log,
    current_generation,
    plugin_migrations,
    plugin_packages,
)
from plugdock.package.pack import pack

REPO = Path(__file__).resolve().parent.parent
CHATBOT = REPO / "examples" / "plugins" / "ai_chatbot"
CHATBOT_VERSION = json.loads((CHATBOT / "metadata.json").read_text())["version"]
CHATBOT_TABLES = {"chat_sessions", "chat_messages", "chat_ratings"}
# The chatbot's previous release, frozen as it shipped: what upgrades start from.
CHATBOT_1_0 = REPO / "examples" / "releases" / "ai_chatbot-1.0.0"
CHATBOT_1_0_TABLES = {"chat_sessions", "chat_messages"}


def make_plugin(
    parent: Path,
    plugin_id: str,
    version: str = "1.0.0",
    *,
    up_sql: str | None = None,
    down_sql: str | None = None,
    metadata: dict[str, Any] | None = None,
    extra_files: dict[str, str] | None = None,
) -> Path:
    """Write a small, valid plugin folder with one table ``<id>_notes``."""
    folder = parent / f"{plugin_id}-{version}"
    table = f"{plugin_id}_notes"
    slug = plugin_id.replace("_", "-")
    meta = {
        "id": plugin_id,
        "name": plugin_id.replace("_", " ").title(),
        "version": version,
        "backend": {"routes": [f"/api/v1/{slug}/*"]},
    } | (metadata or {})
    files = {
        "metadata.json": json.dumps(meta),
        "backend/__init__.py": "from .routes import router\n",
        "backend/routes.py": (
            "from fastapi import APIRouter\n\n"
            f"router = APIRouter(prefix='/api/v1/{slug}')\n\n\n"
            "@router.get('/ping')\ndef ping() -> dict:\n    return {'pong': True}\n"
        ),
        "frontend/pages/Page.tsx": "export default function Page() { return null; }\n",
        "migrations/up.sql": up_sql
        if up_sql is not None
        else f"CREATE TABLE {table} (id INTEGER PRIMARY KEY AUTOINCREMENT, body TEXT NOT NULL);\n"
        f"INSERT INTO {table} (body) VALUES ('hello');\n",
        "migrations/down.sql": down_sql if down_sql is not None else f"DROP TABLE {table};\n",
    } | (extra_files or {})
    for relative, text in files.items():
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return folder


def pack_into(folder: Path, modules: Path) -> Path:
    modules.mkdir(parents=True, exist_ok=True)
    return pack(folder, modules)


def instance_settings(tmp_path: Path, database_url: str) -> Settings:
    return load_settings(
        home=tmp_path / "instance",
        plugin_local_dir=tmp_path / "modules",
        database_url=database_url,
        lock_timeout=30,
    )


def _tree(root: Path) -> dict[str, str]:
    if not root.exists():
        return {}
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts
    }


def snapshot(settings: Settings, engine: Engine) -> dict[str, Any]:
    """Everything an operation could change: files, registry, rows, tables, the audit log,
    the plugin-set generation, journal and staging."""
    with engine.connect() as conn:
        rows = [tuple(r) for r in conn.execute(select(addon_installations).order_by("plugin_id"))]
        applied = [tuple(r) for r in conn.execute(select(plugin_migrations).order_by("plugin_id"))]
        audit = [tuple(r) for r in conn.execute(select(audit_log).order_by(audit_log.c.id))]
        generation = current_generation(conn)
        packages = [  # the store other replicas fetch code from (plugdock.instance.package_store)
            tuple(r)
            for r in conn.execute(
                select(
                    plugin_packages.c.sha256, plugin_packages.c.size, plugin_packages.c.chunks
                ).order_by(plugin_packages.c.sha256)
            )
        ]
    staging = (
        sorted(p.name for p in settings.staging_dir.iterdir())
        if settings.staging_dir.exists()
        else []
    )
    return {
        "addons": _tree(settings.addons_dir),
        "rows": rows,
        "applied": applied,
        "tables": sorted(t.lower() for t in inspect(engine).get_table_names()),
        "audit": audit,
        "generation": generation,
        "packages": packages,
        "journal": settings.journal_path.exists(),
        "staging": staging,
    }


def detail(answer: Any) -> str:
    """An error answer's ``detail`` as text: a sentence, or a 422's issues' messages."""
    found = answer.json()["detail"]
    if isinstance(found, list):
        return "\n".join(str(issue.get("msg", issue)) for issue in found)
    return str(found)
