"""``plugdock new ID``: a small, working plugin to start from (one table, a router, a page).

The plugin is also a small npm project (as Grafana's create-plugin makes one): its
``package.json`` pins the esbuild that ``plugdock pack`` bundles the UI with, so an author
who installed plugdock from PyPI runs ``npm install`` once in the folder and can pack.
The code shows the recommended way: ``sdk.DbSession``/``sdk.AdminUser`` in routes, the
``api`` prop (not ``fetch``) in the page.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from plugdock.errors import PlugdockError
from plugdock.package.metadata import PLUGIN_ID_PATTERN

#: The esbuild a new plugin pins: the one the panel's own web/package.json pins (a test
#: keeps them equal), so plugins are bundled as the panel's UI is.
ESBUILD_VERSION = "0.28.2"
#: React's types for editors (the shell provides React itself at runtime), as web/ pins them.
REACT_TYPES_VERSION = "19.3.0"


def _title(plugin_id: str) -> str:
    return " ".join(part.capitalize() for part in plugin_id.split("_"))


def _pascal(plugin_id: str) -> str:
    return "".join(part.capitalize() for part in plugin_id.split("_"))


#: @plugdock/sdk's declarations, generated from web/src/sdk (tests/host/test_frontend_sdk.py).
SDK_TYPES = (
    Path(__file__).resolve().parent.parent / "scaffold_template" / "frontend" / "plugdock-sdk.d.ts"
)


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

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, Field
from sqlalchemy import select

from plugdock import sdk

from .models import {pascal}Item

router = APIRouter(prefix="/api/v1/{slug}", tags=["{plugin_id}"])


class ItemIn(BaseModel):
    title: str = Field(min_length=1, max_length=200)


class ItemOut(ItemIn):
    id: int


@router.get("/items", response_model=list[ItemOut])
def list_items(
    db: sdk.DbSession, offset: sdk.Offset = 0, limit: sdk.Limit = 100
) -> list[{pascal}Item]:
    """A page of items. sdk.Offset/sdk.Limit (and sdk.Id) bound what a client may send."""
    query = select({pascal}Item).order_by({pascal}Item.id).offset(offset).limit(limit)
    return list(db.scalars(query))


@router.get("/items/{{item_id}}", response_model=ItemOut)
def get_item(item_id: sdk.Id, db: sdk.DbSession) -> {pascal}Item:
    """sdk.Id: 1 to 2**63 - 1, so a huge id is a 422, never a crash in the database."""
    item = db.get({pascal}Item, item_id)
    if item is None:
        raise HTTPException(404, "no such item")
    return item


@router.post("/items", response_model=ItemOut, status_code=201)
def add_item(item: ItemIn, db: sdk.DbSession, _admin: sdk.AdminUser) -> {pascal}Item:
    """Admins only (sdk.AdminUser answers 403 to others); DbSession commits on return."""
    row = {pascal}Item(title=item.title)
    db.add(row)
    db.flush()
    return row
''',
        "migrations/up.sql": f"CREATE TABLE {table} (\n    id INTEGER PRIMARY KEY AUTOINCREMENT,\n    title VARCHAR(200) NOT NULL\n);\n",
        "migrations/down.sql": f"DROP TABLE IF EXISTS {table};\n",
        f"frontend/pages/{pascal}Page.tsx": f'''import {{ type FormEvent, useEffect, useState }} from "react";
import {{ type PluginComponentProps, errorMessage, notify }} from "@plugdock/sdk";

type Item = {{ id: number; title: string }};

/** The panel hands every page its API client (session + CSRF) and the signed-in user. */
export default function {pascal}Page({{ api, user }}: PluginComponentProps) {{
  const [items, setItems] = useState<Item[]>([]);
  const [title, setTitle] = useState("");
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {{
    api.get<Item[]>("/api/v1/{slug}/items").then(setItems, (e) => setError(errorMessage(e)));
  }}, [api]);

  async function add(event: FormEvent) {{
    event.preventDefault();
    try {{
      const item = await api.post<Item>("/api/v1/{slug}/items", {{ title }});
      setItems([...items, item]);
      setTitle("");
      notify(`Added ${{item.title}}`, "success");
    }} catch (e) {{
      setError(errorMessage(e));
    }}
  }}

  return (
    <section aria-labelledby="{slug}-title">
      <h1 id="{slug}-title">{title}</h1>
      {{error && <p role="alert">{{error}}</p>}}
      <ul>{{items.map((item) => <li key={{item.id}}>{{item.title}}</li>)}}</ul>
      {{user?.role === "admin" && (
        <form onSubmit={{add}}>
          <input value={{title}} onChange={{(e) => setTitle(e.target.value)}} aria-label="Title" />
          <button type="submit">Add</button>
        </form>
      )}}
    </section>
  );
}}
''',
        "frontend/addon.config.ts": f'''import {{ defineAddon }} from "@plugdock/sdk";
import {pascal}Page from "./pages/{pascal}Page";

export default defineAddon({{
  id: "{plugin_id}",
  nav: [{{ label: "{title}", path: "/{slug}" }}],
  routes: [{{ path: "/{slug}", component: {pascal}Page }}],
  widgets: [],
}});
''',
        # The SDK's types (docs/frontend.md): editors and tsc see @plugdock/sdk; pack leaves
        # the import to the panel's import map.
        "frontend/plugdock-sdk.d.ts": SDK_TYPES.read_text(encoding="utf-8"),
        "package.json": json.dumps(_package_json(slug, title), indent=2) + "\n",
        # pack builds frontend/dist/ itself (a copy here is ignored) and writes the zips.
        ".gitignore": "node_modules/\nfrontend/dist/\n*.zip\n",
        "README.md": f"""# {title}

A plugdock plugin.

```sh
npm install               # once: the esbuild that package.json pins (bundles frontend/)
plugdock pack .           # builds {plugin_id}_v0.1.0.zip
plugdock validate {plugin_id}_v0.1.0.zip
```
""",
    }


def _package_json(slug: str, title: str) -> dict[str, object]:
    """The plugin as an npm project: only the tools pack and editors use, pinned exactly."""
    return {
        "name": slug,
        "version": "0.1.0",
        "private": True,
        "description": f"The UI of the {title} plugdock plugin (plugdock pack bundles it).",
        "devDependencies": {
            "@types/react": REACT_TYPES_VERSION,
            "esbuild": ESBUILD_VERSION,
        },
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
