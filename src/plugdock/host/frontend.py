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
- ``GET /plugins-ui/{plugin_id}/{operation_id}/frame.html`` — the frame document a plugin's
  pages and widgets run in (``<iframe sandbox="allow-scripts allow-forms">``: an opaque
  origin, no cookies, no storage, no reach into the shell), with a policy of its own:
  scripts only from the panel, ``connect-src 'none'`` (every request goes through the
  shell's bridge), no form posts, framed only by the panel itself.
- ``GET /plugins-ui/_/...`` — the frame's runtime: ``frame.js``, React (``vendor/``), the
  SDK (``sdk.js``) and the stylesheet (``app.css``), from the built web UI. plugdock's own
  path in any host (``/static/`` is the host's), served by every ``PluginHost.mount``, with
  ``Access-Control-Allow-Origin: *`` (a module script from an opaque origin is a CORS
  request; these files are public anyway). No plugin id starts with ``_``.
- ``POST /api/v1/frontend/refused`` — the shell reports a bridge call it refused; the
  panel logs it (the shell is the gate, this is its log line).
- Any other ``GET`` that finds no route, is not under ``/api/`` and accepts ``text/html``
  gets the shell's ``index.html`` (the shell routes in the browser). This is a 404
  handler, not a catch-all route, so plugin routes mounted later are never shadowed.

The bundles and the manifest need no token: a browser loads bundles with a plain
``import()``, which cannot send one. A plugin's UI code is not a secret; its data is,
and its API routes check the user (``plugdock.sdk.require_admin``)::

    frontend.install(app)       # in plugdock.host.app.create_app
"""

from __future__ import annotations

import hashlib
import logging
import re
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import FileResponse, HTMLResponse, Response
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field, StringConstraints
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Scope

from plugdock import sdk
from plugdock.core.headers import frame_policy, policy, shell_policy
from plugdock.errors import NotFoundError
from plugdock.host.state import panel_state
from plugdock.instance.registry import Installation
from plugdock.package.layout import METADATA_FILE
from plugdock.package.metadata import PLUGIN_ID_PATTERN, parse_metadata
from plugdock.package.permissions import UI_SAME_ORIGIN, USERS_READ

log = logging.getLogger(__name__)

#: Where ``make web`` puts the built shell.
STATIC_DIR = Path(__file__).resolve().parent / "static"
#: A plugin's bundle inside ``$PLUGDOCK_HOME/addons/frontend/<id>/``.
BUNDLE_PATH = ("dist", "addon.js")
BUNDLE_URL = "/plugins/{plugin_id}/{operation_id}/addon.js"
FRAME_URL = "/plugins-ui/{plugin_id}/{operation_id}/frame.html"
#: The frame's runtime in any host (web/build.mjs writes the frame's import map with it).
RUNTIME_PREFIX = "/plugins-ui/_"
#: The built files a frame loads from :data:`RUNTIME_PREFIX` (nothing else of the shell).
RUNTIME_FILES = re.compile(r"^(frame\.js|sdk\.js|app\.css|vendor/[a-z-]+\.js)$")
#: Paths the SPA fallback never answers with the shell.
_NOT_SHELL = ("/api/", "/static/", "/plugins/", "/plugins-ui/")
#: The core reads a granted permission opens to a framed UI (GET only, through the bridge).
CORE_READS = {USERS_READ: ["/api/v1/users"]}
#: Public, immutable-by-URL files a sandboxed frame imports as module scripts (CORS).
_PUBLIC_CORS = {"Access-Control-Allow-Origin": "*"}
_PRELOAD_MARK = "<!-- %BUNDLE_PRELOAD% -->"

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
    frame_url: str = Field(description="The sandboxed frame document its pages and widgets run in")
    same_origin: bool = Field(
        description="Granted ui:same-origin: its UI runs in the shell's page, not in a frame"
    )
    api_routes: list[str] = Field(
        description="Its own backend.routes a framed UI may call through the bridge "
        "(never one that would cover a core route)"
    )
    core_reads: list[str] = Field(
        description="Core paths its granted permissions let a framed UI read (GET)"
    )
    needs_configuration: str | None = Field(
        None, description="Why its routes answer 503 until an admin sets its settings"
    )


class RefusedCall(BaseModel):
    """A bridge call the shell refused, as the shell reports it."""

    plugin_id: Annotated[str, StringConstraints(pattern=PLUGIN_ID_PATTERN)]
    method: Annotated[str, StringConstraints(max_length=10)]
    path: Annotated[str, StringConstraints(max_length=300)]
    reason: Annotated[str, StringConstraints(max_length=300)]


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


def _covers(pattern: str, path: str) -> bool:
    """Whether a ``backend.routes`` pattern would take ``path`` (a core route's template)."""
    if pattern.endswith("/*"):
        return path.startswith(pattern[:-1]) or path == pattern[:-2]
    return re.sub(r"\{[^}]*\}", "*", pattern) == re.sub(r"\{[^}]*\}", "*", path)


def _bridge_routes(request: Request, plugin_id: str) -> list[str]:
    """The plugin's declared routes, minus any that would reach a core route.

    Install already refuses a pattern that overlaps the panel's own routes; this checks
    again because here a mistake would hand the core's API to the plugin's UI.
    """
    path = panel_state(request.app).settings.manifest_dir / plugin_id / METADATA_FILE
    try:
        declared = parse_metadata(path.read_bytes(), source=str(path)).backend.routes
    except (OSError, ValueError):
        return []
    core: list[str] = getattr(request.app.state, "plugdock_core_paths", [])
    return [p for p in declared if not any(_covers(p, c) for c in core)]


@router.get(
    "/api/v1/frontend/plugins",
    response_model=list[FrontendPlugin],
    summary="Installed plugins with a UI bundle, for the web shell",
)
def frontend_plugins(request: Request, response: Response) -> list[FrontendPlugin]:
    response.headers["Cache-Control"] = "no-store"
    state = panel_state(request.app)
    frontend_dir = state.settings.frontend_dir
    unconfigured = state.runtime.configured.unconfigured
    return [
        FrontendPlugin(
            id=i.plugin_id,
            name=i.name,
            version=i.version,
            operation_id=i.operation_id,
            bundle_url=BUNDLE_URL.format(plugin_id=i.plugin_id, operation_id=i.operation_id),
            frame_url=frame_url(i.plugin_id, i.operation_id),
            same_origin=UI_SAME_ORIGIN in i.permissions,
            api_routes=_bridge_routes(request, i.plugin_id),
            core_reads=[path for p in i.permissions for path in CORE_READS.get(p, [])],
            needs_configuration=unconfigured.get(i.plugin_id),
        )
        for i in _served(request)
        if bundle_file(frontend_dir, i.plugin_id) is not None
    ]


@router.post(
    "/api/v1/frontend/refused",
    status_code=204,
    summary="Log a plugin UI's call the shell's bridge refused",
)
def bridge_refused(body: RefusedCall, user: sdk.OptionalUser) -> Response:
    # %r: every field comes from the browser (ultimately from plugin code), never a raw line.
    log.warning(
        "plugin UI %s: the shell refused %r %r for %s: %r",
        body.plugin_id,
        body.method,
        body.path,
        user.username if user else "a visitor",
        body.reason,
    )
    return Response(status_code=204)


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
                    headers={"Cache-Control": "public, max-age=31536000, immutable"} | _PUBLIC_CORS,
                )
    raise NotFoundError(f"no UI bundle for {plugin_id!r} at this address")


def _installation(request: Request, plugin_id: str, operation_id: str) -> Installation | None:
    if not (_PLUGIN_ID.fullmatch(plugin_id) and _OPERATION_ID.fullmatch(operation_id)):
        return None
    for installation in _served(request):
        if (installation.plugin_id, installation.operation_id) == (plugin_id, operation_id):
            return installation
    return None


@router.get(
    "/plugins-ui/{plugin_id}/{operation_id}/frame.html",
    response_class=HTMLResponse,
    summary="The sandboxed frame document a plugin's pages and widgets run in",
    responses={404: {"description": "Not installed, not served, or another installation"}},
)
def plugin_frame(plugin_id: str, operation_id: str, request: Request) -> Response:
    installation = _installation(request, plugin_id, operation_id)
    frontend_dir = panel_state(request.app).settings.frontend_dir
    if installation is None or bundle_file(frontend_dir, plugin_id) is None:
        raise NotFoundError(f"no UI frame for {plugin_id!r} at this address")
    try:
        html = (STATIC_DIR / "frame.html").read_text(encoding="utf-8")
    except FileNotFoundError:
        raise NotFoundError("the web UI is not built (make web)") from None
    # The bundle starts loading with the frame's own modules, not after them.
    bundle = BUNDLE_URL.format(plugin_id=plugin_id, operation_id=operation_id)
    html = html.replace(_PRELOAD_MARK, f'<link rel="modulepreload" href="{bundle}" />')
    # Only the panel may frame it (an iframe elsewhere would be a clickjacking target). The
    # manifest's URL names the build (?b=): that answer may be cached like the bundle.
    fresh = request.query_params.get("b") == frame_build(html)
    headers = {
        "Cache-Control": "private, max-age=31536000, immutable" if fresh else "no-cache",
        "Content-Security-Policy": frame_policy(html),
        "X-Frame-Options": "SAMEORIGIN",
    }
    return HTMLResponse(html, headers=headers)


def frame_build(html: str) -> str:
    """A short digest of the frame document: it changes with every build of the web UI."""
    return hashlib.sha256(html.encode("utf-8")).hexdigest()[:12]


def frame_url(plugin_id: str, operation_id: str) -> str:
    """The frame document's address for this installation and this build of the web UI."""
    try:
        html = (STATIC_DIR / "frame.html").read_text(encoding="utf-8")
    except FileNotFoundError:
        html = ""
    bundle = BUNDLE_URL.format(plugin_id=plugin_id, operation_id=operation_id)
    html = html.replace(_PRELOAD_MARK, f'<link rel="modulepreload" href="{bundle}" />')
    url = FRAME_URL.format(plugin_id=plugin_id, operation_id=operation_id)
    return f"{url}?b={frame_build(html)}"


class _PublicStatic(StaticFiles):
    """The shell's files, readable by the plugins' sandboxed frames (opaque origin: CORS).

    The import map and the pages name them with a content hash (``?v=``): such an answer
    never changes, so the browser keeps it (a frame then loads without a request).
    """

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers.update(_PUBLIC_CORS)
        if response.status_code == 200 and b"v=" in scope.get("query_string", b""):
            response.headers["Cache-Control"] = "public, max-age=31536000, immutable"
        return response


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


class _FrameRuntime(_PublicStatic):
    """:data:`RUNTIME_FILES` of the built web UI, and only those."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        if not RUNTIME_FILES.fullmatch(path.replace("\\", "/")):
            return Response(status_code=404)
        return await super().get_response(path, scope)


def install_plugin_assets(app: FastAPI) -> None:
    """Serve the plugins' UI bundles, their list and their frames' runtime (any host)."""
    app.include_router(router)
    app.mount(
        RUNTIME_PREFIX, _FrameRuntime(directory=STATIC_DIR, check_dir=False), name="plugdock-ui"
    )
    # The host's API as it stands here, before any plugin mounts: the bridge never opens it.
    app.state.plugdock_core_paths = [r.path for r in app.routes if isinstance(r, APIRoute)]


def install_shell(app: FastAPI) -> None:
    """Serve the reference panel's web UI: static files and the SPA fallback."""
    app.mount("/static", _PublicStatic(directory=STATIC_DIR, check_dir=False), name="static")
    app.add_exception_handler(404, _not_found)
