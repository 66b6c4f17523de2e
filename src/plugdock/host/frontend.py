"""The panel's web UI: the shell's static files, the plugins' bundles, and their manifest.

- ``GET /static/...`` — the shell built by ``make web`` (``web/`` → ``plugdock/host/static/``),
  with the modules its import map shares with every plugin bundle: React
  (``/static/vendor/``) and ``@plugdock/sdk`` (``/static/sdk.js``: the contract, the API
  client, the signed-in user, notices; see docs/frontend.md).
- ``GET /api/v1/frontend/plugins`` — the installed plugins that have a UI bundle and are
  being served: ``[{"id", "name", "version", "operation_id", "bundle_url"}]``.
- ``GET /plugins/{plugin_id}/{operation_id}/addon.js`` — a plugin's bundle. The URL names
  the installation (its operation id), so a browser may cache it forever: a reinstall or
  an upgrade is a new URL, and an old URL answers 404.
- Any other ``GET`` that finds no route, is not under ``/api/`` and accepts ``text/html``
  gets the shell's ``index.html`` (the shell routes in the browser). This is a 404
  handler, not a catch-all route, so plugin routes mounted later are never shadowed.

The bundles and the manifest need no token: a browser loads bundles with a plain
``import()``, which cannot send one. A plugin's UI code is not a secret; its data is,
and its API routes check the user (``plugdock.sdk.require_admin``)::

    frontend.install(app)       # in plugdock.host.app.create_app
"""

from __future__ import annotations

import re
from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import FileResponse, HTMLResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from plugdock.core.headers import policy, shell_policy
from plugdock.errors import NotFoundError
from plugdock.host.state import panel_state
from plugdock.instance.registry import Installation
from plugdock.package.metadata import PLUGIN_ID_PATTERN

#: Where ``make web`` puts the built shell.
STATIC_DIR = Path(__file__).resolve().parent / "static"
#: A plugin's bundle inside ``$PLUGDOCK_HOME/addons/frontend/<id>/``.
BUNDLE_PATH = ("dist", "addon.js")
BUNDLE_URL = "/plugins/{plugin_id}/{operation_id}/addon.js"
#: Paths the SPA fallback never answers with the shell.
_NOT_SHELL = ("/api/", "/static/", "/plugins/")

_PLUGIN_ID = re.compile(PLUGIN_ID_PATTERN)
_OPERATION_ID = re.compile(r"^[0-9a-f]{8,64}$")

_NOT_BUILT = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>plugdock panel</title></head>
<body>
<h1>The web UI is not built</h1>
<p>Run <code>make web</code> (or <code>npm ci &amp;&amp; npm run build</code> in <code>web/</code>)
and reload. The API works without it: <a href="/docs">/docs</a>.</p>
</body></html>
"""


class FrontendPlugin(BaseModel):
    id: str
    name: str
    version: str
    operation_id: str = Field(description="The installation this bundle belongs to")
    bundle_url: str = Field(description="The ES module to import(); never changes its content")


router = APIRouter(tags=["frontend"])


def bundle_file(frontend_dir: Path, plugin_id: str) -> Path | None:
    """The bundle of an installed plugin, or None; never a path outside its ``dist/``."""
    if not _PLUGIN_ID.fullmatch(plugin_id):
        return None
    root = (frontend_dir / plugin_id / BUNDLE_PATH[0]).resolve()
    path = (root / BUNDLE_PATH[1]).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        return None
    return path


def _served(request: Request) -> list[Installation]:
    """Installed plugins whose UI may load: backend mounted here, or no backend at all."""
    state = panel_state(request.app)
    settings = state.settings
    status = state.runtime.status()
    served = []
    for installation in state.installer.installed():
        if not installation.enabled:
            continue  # disabled: its pages are gone like its routes
        plugin = status.get(installation.plugin_id)
        has_backend = (settings.backend_dir / installation.plugin_id / "__init__.py").is_file()
        if (plugin and plugin.state == "mounted") or (plugin is None and not has_backend):
            served.append(installation)
    return served


@router.get(
    "/api/v1/frontend/plugins",
    response_model=list[FrontendPlugin],
    summary="Installed plugins with a UI bundle, for the web shell",
)
def frontend_plugins(request: Request, response: Response) -> list[FrontendPlugin]:
    response.headers["Cache-Control"] = "no-store"
    frontend_dir = panel_state(request.app).settings.frontend_dir
    return [
        FrontendPlugin(
            id=i.plugin_id,
            name=i.name,
            version=i.version,
            operation_id=i.operation_id,
            bundle_url=BUNDLE_URL.format(plugin_id=i.plugin_id, operation_id=i.operation_id),
        )
        for i in _served(request)
        if bundle_file(frontend_dir, i.plugin_id) is not None
    ]


@router.get(
    "/plugins/{plugin_id}/{operation_id}/addon.js",
    response_class=FileResponse,
    summary="A plugin's UI bundle (an ES module)",
    responses={404: {"description": "Not installed, not served, or another installation"}},
)
def plugin_bundle(plugin_id: str, operation_id: str, request: Request) -> FileResponse:
    if _PLUGIN_ID.fullmatch(plugin_id) and _OPERATION_ID.fullmatch(operation_id):
        for installation in _served(request):
            if (installation.plugin_id, installation.operation_id) != (plugin_id, operation_id):
                continue
            path = bundle_file(panel_state(request.app).settings.frontend_dir, plugin_id)
            if path is not None:
                return FileResponse(
                    path,
                    media_type="application/javascript",
                    headers={"Cache-Control": "public, max-age=31536000, immutable"},
                )
    raise NotFoundError(f"no UI bundle for {plugin_id!r} at this address")


router.add_api_route(  # HEAD too (link checkers, caches); one entry in the OpenAPI schema
    "/plugins/{plugin_id}/{operation_id}/addon.js",
    plugin_bundle,
    methods=["HEAD"],
    include_in_schema=False,
)


def wants_shell(request: Request) -> bool:
    """A browser navigation to a page of the panel (not an API call, asset or bundle)."""
    path = request.url.path
    return (
        request.method == "GET"
        and not any(path.startswith(prefix) or path == prefix[:-1] for prefix in _NOT_SHELL)
        and ("text/html" in request.headers.get("accept", "") or path == "/")
    )


def shell_response() -> Response:
    """The shell page, with a Content-Security-Policy that allows its inline import map.

    Read on each navigation (a few hundred bytes), so a ``make web`` while the panel runs
    gets the new import map and its new hash together.
    """
    index = STATIC_DIR / "index.html"
    headers = {"Cache-Control": "no-cache"}
    try:
        html = index.read_text(encoding="utf-8")
    except FileNotFoundError:
        return HTMLResponse(_NOT_BUILT, headers=headers | {"Content-Security-Policy": policy()})
    csp = shell_policy(html)
    return HTMLResponse(html, headers=headers | {"Content-Security-Policy": csp})


async def _not_found(request: Request, exc: Exception) -> Response:
    """404s: the shell for page navigations, the usual JSON ``detail`` for everything else."""
    if wants_shell(request):
        return shell_response()
    assert isinstance(exc, StarletteHTTPException)
    return await http_exception_handler(request, exc)


def install_plugin_assets(app: FastAPI) -> None:
    """Serve the plugins' UI bundles and their list (any host, embedded or the panel)."""
    app.include_router(router)


def install_shell(app: FastAPI) -> None:
    """Serve the reference panel's web UI: static files and the SPA fallback."""
    app.mount("/static", StaticFiles(directory=STATIC_DIR, check_dir=False), name="static")
    app.add_exception_handler(404, _not_found)
