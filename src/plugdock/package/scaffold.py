"""``plugdock new ID``: a small, working plugin to start from (one table, a router, a page)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from plugdock.errors import PlugdockError
from plugdock.package.metadata import PLUGIN_ID_PATTERN


def _title(plugin_id: str) -> str:
    return " ".join(part.capitalize() for part in plugin_id.split("_"))


def _pascal(plugin_id: str) -> str:
    return "".join(part.capitalize() for part in plugin_id.split("_"))


def scaffold_files(plugin_id: str) -> dict[str, str]:
    """The files of a new plugin, path → text."""
    title, pascal, slug = _title(plugin_id), _pascal(plugin_id), plugin_id.replace("_", "-")
    table = f"{plugin_id}_items"
    metadata = {
        "id": plugin_id,
        "name": title,
        "version": "0.1.0",
        "author": "",
        "description": f"{title}: describe what it does.",
        "category": "General",
        "price": 0,
        "icon": "🧩",
        "backend": {"routes": [f"/api/v1/{slug}/*"], "models": [f"{pascal}Item"]},
        "frontend": {"routes": [f"/{slug}"], "components": [f"{pascal}Page"]},
        "requires": ">=0.1.0,<1.0.0",
    }
    return {
        "metadata.json": json.dumps(metadata, indent=2, ensure_ascii=False) + "\n",
        "backend/__init__.py": f'"""{title} plugin backend."""\n\nfrom .routes import router\n\n__all__ = ["router"]\n',
        "backend/models.py": f'''"""Tables of the {title} plugin; migrations/up.sql creates them."""

from sqlalchemy import String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    """This plugin's own metadata, so unloading the plugin unloads its tables."""


class {pascal}Item(Base):
    __tablename__ = "{table}"

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
''',
        "backend/routes.py": f'''"""HTTP routes of the {title} plugin, all under /api/v1/{slug}/."""

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from plugdock import sdk

from .models import {pascal}Item

router = APIRouter(prefix="/api/v1/{slug}", tags=["{plugin_id}"])


class ItemIn(BaseModel):
    title: str = Field(min_length=1, max_length=200)


class ItemOut(ItemIn):
    id: int


@router.get("/items", response_model=list[ItemOut])
def list_items(db: Session = Depends(sdk.db_session)) -> list[{pascal}Item]:
    return list(db.scalars(select({pascal}Item).order_by({pascal}Item.id)))


@router.post("/items", response_model=ItemOut, status_code=201)
def add_item(
    item: ItemIn, db: Session = Depends(sdk.db_session), _admin: sdk.User = Depends(sdk.require_admin)
) -> {pascal}Item:
    row = {pascal}Item(title=item.title)
    db.add(row)
    db.flush()
    return row
''',
        "migrations/up.sql": f"CREATE TABLE {table} (\n    id INTEGER PRIMARY KEY AUTOINCREMENT,\n    title VARCHAR(200) NOT NULL\n);\n",
        "migrations/down.sql": f"DROP TABLE IF EXISTS {table};\n",
        f"frontend/pages/{pascal}Page.tsx": f'''import React, {{ useEffect, useState }} from "react";

type Item = {{ id: number; title: string }};

export default function {pascal}Page() {{
  const [items, setItems] = useState<Item[]>([]);
  useEffect(() => {{
    fetch("/api/v1/{slug}/items").then((r) => r.json()).then(setItems);
  }}, []);
  return (
    <section aria-labelledby="{slug}-title">
      <h1 id="{slug}-title">{title}</h1>
      <ul>{{items.map((item) => <li key={{item.id}}>{{item.title}}</li>)}}</ul>
    </section>
  );
}}
''',
        "frontend/addon.config.ts": f'''import {pascal}Page from "./pages/{pascal}Page";

export default {{
  id: "{plugin_id}",
  nav: [{{ label: "{title}", path: "/{slug}" }}],
  routes: [{{ path: "/{slug}", component: {pascal}Page }}],
  widgets: [],
}};
''',
        "README.md": f"# {title}\n\nA plugdock plugin. `plugdock pack .` builds `{plugin_id}_v0.1.0.zip`.\n",
    }


def scaffold(plugin_id: str, parent: Path) -> Path:
    """Create ``parent/<id>/`` with a working plugin; refuses to overwrite anything."""
    if not re.fullmatch(PLUGIN_ID_PATTERN, plugin_id):
        raise PlugdockError(
            f"{plugin_id!r} is not a valid plugin id (2-64 of a-z, 0-9, _; starts with a letter)"
        )
    folder = parent / plugin_id
    if folder.exists():
        raise PlugdockError(f"{folder} already exists")
    for relative, text in scaffold_files(plugin_id).items():
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return folder
