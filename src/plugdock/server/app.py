"""The plugin server's HTTP API (FastAPI).

========================================  =====================================================
``GET  /``                                an HTML page listing the plugins
``GET  /manifest.json``                   every plugin and version: sha256, size, published,
                                          summary, signer (the catalog; unsigned)
``GET  /download/{id}/{version|latest}``  the ZIP (ETag = its sha256, Content-Length)
``POST /api/v1/plugins``                  publish a ZIP: multipart field ``file`` (or a raw
                                          ``application/zip`` body), ``Authorization: Bearer``
``GET  /tuf/{name}.json``                 the signed index (TUF metadata), see
                                          :mod:`plugdock.server.index`
``GET  /docs``, ``/redoc``                the API's documentation pages
``/api/v1/review/...``, ``/review``       the review queue and its page (review on), see
                                          :mod:`plugdock.server.review_api`
========================================  =====================================================

With ``review="required"`` (the default) a published version is *pending*: stored, with its
automated report (:mod:`plugdock.server.report`), but not in the manifest, not
downloadable and not in the signed index until a reviewer approves it. With
``review="off"`` it is listed and signed at once, as before review existed.

Errors are JSON ``{"detail": ...}`` (mapped from plugdock's error kinds in one place,
:mod:`plugdock.server.errors`): 401 no token, 403 wrong token or a plugin id owned by
another publisher, 404 unknown plugin/version, 409 version already published, 411/413
missing or oversized body, 415 not a ZIP upload, 422 an invalid or unsafe package (with
``problems``), and a crash a 500 ``{"detail": "internal error"}``. Every answer carries the
panel's security headers (:mod:`plugdock.core.headers`), and those under ``/api/`` also
``Cache-Control: no-store``.

>>> app = create_app(Storage(Path("server-data")).ensure())  # doctest: +SKIP
"""

from __future__ import annotations

import html
import logging
import re
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi import Path as InPath
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from plugdock.checks.validate import validate_package
from plugdock.core import contract
from plugdock.core.contract import errors
from plugdock.core.headers import SecurityHeadersMiddleware, install_docs, policy, source_hash
from plugdock.errors import (
    ConflictError,
    ForbiddenError,
    InvalidRequestError,
    NotFoundError,
    PackageError,
    PlugdockError,
    SignatureError,
    TooLargeError,
    UploadRefusedError,
)
from plugdock.package.archive import Limits
from plugdock.package.metadata import PLUGIN_ID_PATTERN, SEMVER_PATTERN, parse_version
from plugdock.server import review_api, review_page
from plugdock.server.access import PUBLISHER, signed_in_publisher
from plugdock.server.errors import install_error_handlers
from plugdock.server.report import build_report
from plugdock.server.scan import scanner_missing
from plugdock.server.state import ServerState, server_state
from plugdock.server.storage import Storage, upload_limit
from plugdock.sources.base import LATEST
from plugdock.trust.signing import read_signature
from plugdock.version import __version__

log = logging.getLogger("plugdock.server")

_ID = re.compile(PLUGIN_ID_PATTERN)
_TUF_NAME = re.compile(r"^(timestamp|root|[1-9][0-9]{0,9}\.(root|snapshot|targets))\.json$")
_CHUNK = 1024 * 1024
REVIEW_MODES = ("required", "off")

router = APIRouter()


def _check_params(plugin_id: str, version: str) -> None:
    if not _ID.fullmatch(plugin_id):
        raise InvalidRequestError(f"{plugin_id[:80]!r} is not a valid plugin id")
    if version != LATEST:
        try:
            parse_version(version)
        except ValueError as exc:
            raise InvalidRequestError(str(exc)[:200]) from None


def create_app(
    storage: Storage,
    *,
    limits: Limits | None = None,
    review: str = "required",
    scan_timeout: float = 60.0,
) -> FastAPI:
    """The plugin server app over ``storage`` (which must have been ``ensure()``-d).

    ``review`` is ``"required"`` (versions wait for a reviewer) or ``"off"``.
    """
    if review not in REVIEW_MODES:
        raise PlugdockError(f"review must be one of {', '.join(REVIEW_MODES)}, not {review!r}")
    if review == "required" and (missing := scanner_missing()):
        raise PlugdockError(missing)
    app = FastAPI(
        title="plugdock plugin server",
        version=__version__,
        docs_url=None,  # served by install_docs, with a Content-Security-Policy that fits them
        redoc_url=None,
    )
    install_docs(app)
    app.state.plugin_server = ServerState(storage, limits or Limits(), review, scan_timeout)
    app.include_router(router)
    app.include_router(review_api.router)
    app.include_router(review_page.router)
    # The panel's headers on every answer; the API's (tokens, the review queue) not cached.
    app.add_middleware(SecurityHeadersMiddleware, private_prefixes=("/api/",))
    install_error_handlers(app)
    contract.install(app, SERVER_SECURITY)
    return app


#: The plugin server's two kinds of token; the routes say which they take (access.PUBLISHER,
#: access.REVIEWER), the rest are public.
SERVER_SECURITY = contract.Security(schemes={}, read=[])
#: A plugin id and a version (``latest`` where it may be) in a path, as _check_params takes them.
PluginIdParam = Annotated[str, InPath(pattern=PLUGIN_ID_PATTERN, max_length=64)]
VersionParam = Annotated[
    str, InPath(pattern=rf"^(?:latest|{SEMVER_PATTERN[1:-1]})$", max_length=128)
]
_ZIP = {"application/zip": {"schema": {"type": "string", "format": "binary"}}}
# The publish body, read by hand (the token is checked before any byte is stored).
_PUBLISH_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {"file": {"type": "string", "format": "binary"}},
                },
                "encoding": {"file": {"contentType": "application/zip"}},
            },
            **_ZIP,
        },
    }
}


@router.get("/manifest.json")
def manifest(request: Request) -> JSONResponse:
    """Every plugin with every version (newest first)."""
    storage = server_state(request.app).storage
    return JSONResponse(storage.manifest(), headers={"Cache-Control": "no-cache"})


@router.get(
    "/download/{plugin_id}/{version}",
    response_model=None,
    response_class=Response,
    responses={
        200: {"description": "The package ZIP", "content": _ZIP},
        304: {"description": "Not modified (If-None-Match named its ETag)"},
        **errors(404, 422),
    },
)
def download(plugin_id: PluginIdParam, version: VersionParam, request: Request) -> Response:
    """The package ZIP; ``version`` may be ``latest`` (highest semver)."""
    _check_params(plugin_id, version)
    storage = server_state(request.app).storage
    record = storage.record(plugin_id, version)
    if record is None:
        what = plugin_id if version == LATEST else f"{plugin_id} {version}"
        raise NotFoundError(f"{what} is not published here")
    etag = f'"{record["sha256"]}"'
    headers = {
        "ETag": etag,
        "X-Plugdock-Sha256": record["sha256"],
        "X-Plugdock-Version": record["version"],
        "Cache-Control": "no-cache" if version == LATEST else "public, max-age=31536000",
    }
    if etag in [t.strip() for t in request.headers.get("if-none-match", "").split(",")]:
        return Response(status_code=304, headers=headers)
    path = storage.package_path(plugin_id, record["version"])
    return FileResponse(path, media_type="application/zip", filename=path.name, headers=headers)


@router.get(
    "/tuf/{name}",
    response_model=None,
    response_class=Response,
    responses={
        200: {"description": "TUF metadata", "content": {"application/json": {}}},
        **errors(404),
    },
)
def tuf(name: str, request: Request) -> Response:
    """Signed index metadata (root versions, targets, snapshot, timestamp)."""
    storage = server_state(request.app).storage
    path = storage.index.file(name) if _TUF_NAME.fullmatch(name) else None
    if path is None:
        raise NotFoundError(f"no metadata {name[:80]!r}")
    return FileResponse(path, media_type="application/json", headers={"Cache-Control": "no-cache"})


@router.post(
    "/api/v1/plugins",
    status_code=201,
    response_model=None,
    response_class=JSONResponse,
    dependencies=PUBLISHER,
    openapi_extra=_PUBLISH_BODY,
    responses={
        201: {
            "description": "Published (pending review when review is on)",
            "content": {"application/json": {"schema": {"type": "object"}}},
        },
        **errors(
            401,
            403,
            409,
            411,
            413,
            415,
            _403="Not a publisher token, or the plugin id is another publisher's",
            _409="This version is published already (versions are immutable)",
            _422="An invalid or unsafe package, or a bad signature",
        ),
    },
)
async def publish(request: Request) -> JSONResponse:
    """Publish a package (every install check runs first; versions are immutable)."""
    state = server_state(request.app)
    storage, limits = state.storage, state.limits
    publisher = signed_in_publisher(request)
    length = request.headers.get("content-length")
    if length is None or not length.isdigit():
        raise HTTPException(411, "a Content-Length is required")
    if int(length) > upload_limit(limits):
        raise TooLargeError(f"the upload is larger than {limits.max_zip_bytes} bytes")
    incoming = storage.incoming_file()
    try:
        await _receive(request, incoming, upload_limit(limits))
        try:
            report = await run_in_threadpool(validate_package, incoming, limits)
        except PackageError as exc:
            # The checks name the file they read, which is in the server's data folder:
            # the answer lists the findings only (and the handler scrubs them too).
            raise UploadRefusedError(exc.problems) from None
        info = report.info
        check = read_signature(info)
        if check.status == "invalid":
            raise SignatureError(f"the package's signature is bad: {check.detail}")
        try:
            review_report = None
            if state.reviewing:
                meta = info.metadata
                # Refuse a taken version or another's id before the (slower) report.
                storage.check_can_publish(meta.id, meta.version, publisher)
                before = storage.last_approved(meta.id, below=meta.version)
                previous = (before, storage.package_path(meta.id, before)) if before else None
                review_report = await run_in_threadpool(
                    lambda: build_report(
                        incoming, report, limits, previous=previous, scan_timeout=state.scan_timeout
                    )
                )
            record = await run_in_threadpool(
                lambda: storage.publish(
                    incoming, info, publisher, pending=state.reviewing, report=review_report
                )
            )
        except (ForbiddenError, ConflictError):
            raise
        except PlugdockError as exc:  # anything else the report or the store refuses: 422
            raise PackageError(str(exc)) from exc
        log.info(
            "%s published %s %s%s",
            publisher.name,
            info.metadata.id,
            info.metadata.version,
            " (pending review)" if state.reviewing else "",
        )
        return JSONResponse(
            {"id": info.metadata.id, "tables": list(report.tables), **record}, status_code=201
        )
    finally:
        incoming.unlink(missing_ok=True)


@router.get("/", response_class=HTMLResponse)
def index(request: Request) -> HTMLResponse:
    """A human-readable list of the plugins."""
    page = _index_page(server_state(request.app).storage.manifest())
    return HTMLResponse(page, headers={"Content-Security-Policy": _INDEX_POLICY})


async def _receive(request: Request, target: Path, limit: int) -> None:
    """Write the uploaded ZIP to ``target``: a multipart ``file`` field or a raw body."""
    content_type = request.headers.get("content-type", "")
    written = 0
    if content_type.startswith("multipart/form-data"):
        form = await request.form(max_files=1, max_fields=4)
        try:
            upload = form.get("file")
            if not isinstance(upload, UploadFile):
                raise InvalidRequestError("the multipart form needs a 'file' field with the ZIP")
            with open(target, "wb") as handle:
                while chunk := await upload.read(_CHUNK):
                    written += len(chunk)
                    if written > limit:
                        raise TooLargeError(f"the upload is larger than {limit} bytes")
                    handle.write(chunk)
        finally:
            await form.close()
    elif content_type.split(";")[0].strip() in ("application/zip", "application/octet-stream"):
        with open(target, "wb") as handle:
            async for chunk in request.stream():
                written += len(chunk)
                if written > limit:
                    raise TooLargeError(f"the upload is larger than {limit} bytes")
                handle.write(chunk)
    else:
        raise HTTPException(
            415, "send the ZIP as multipart/form-data (field 'file') or application/zip"
        )
    if written == 0:
        raise InvalidRequestError("the upload is empty")


_INDEX_STYLE = """
body { font: 15px/1.5 system-ui, sans-serif; margin: 2rem auto; max-width: 60rem; }
table { border-collapse: collapse; width: 100%; }
td, th { border-bottom: 1px solid #ddd; padding: .4rem .6rem; text-align: left; }
code { background: #f4f4f4; padding: 0 .2rem; }
"""
#: The plain policy plus the page's one inline style, by its hash (no inline script at all).
_INDEX_POLICY = policy(style_hashes=[source_hash(_INDEX_STYLE)])


def _index_page(manifest: dict[str, Any]) -> str:
    rows = []
    for plugin_id, entry in manifest["plugins"].items():
        versions = ", ".join(
            f'<a href="/download/{plugin_id}/{html.escape(v)}">{html.escape(v)}</a>'
            + (" ✔" if rec.get("signed") else "")
            for v, rec in entry["versions"].items()
        )
        rows.append(
            "<tr>"
            f"<td><code>{html.escape(plugin_id)}</code></td>"
            f"<td>{html.escape(str(entry.get('name', '')))}</td>"
            f"<td>{html.escape(str(entry.get('description', '')))}</td>"
            f"<td>{html.escape(str(entry.get('author', '')))}</td>"
            f"<td>{versions}</td>"
            "</tr>"
        )
    body = "\n".join(rows) or '<tr><td colspan="5">nothing published yet</td></tr>'
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>plugdock plugin server</title>
<style>{_INDEX_STYLE}</style></head>
<body>
<h1>plugdock plugin server</h1>
<p>{len(manifest["plugins"])} plugins. Catalog: <a href="/manifest.json">/manifest.json</a>;
signed index: <a href="/tuf/root.json">/tuf/root.json</a>; ✔ = signed by its publisher.</p>
<table><thead><tr><th>id</th><th>name</th><th>description</th><th>author</th>
<th>versions</th></tr></thead>
<tbody>
{body}
</tbody></table>
</body></html>
"""
