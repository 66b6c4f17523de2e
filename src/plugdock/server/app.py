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
``/api/v1/review/...``, ``/review``       the review queue and its page (review on), see
                                          :mod:`plugdock.server.review_api`
========================================  =====================================================

With ``review="required"`` (the default) a published version is *pending*: stored, with its
automated report (:mod:`plugdock.server.report`), but not in the manifest, not
downloadable and not in the signed index until a reviewer approves it. With
``review="off"`` it is listed and signed at once, as before review existed.

Errors are JSON ``{"detail": ...}``: 401 no token, 403 wrong token or a plugin id owned
by another publisher, 404 unknown plugin/version, 409 version already published, 411/413
missing or oversized body, 422 an invalid or unsafe package (with ``problems``).

>>> app = create_app(Storage(Path("server-data")).ensure())  # doctest: +SKIP
"""

from __future__ import annotations

import html
import logging
import re
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from plugdock import __version__
from plugdock.checks.validate import validate_package
from plugdock.errors import PackageError, PlugdockError
from plugdock.package.archive import Limits
from plugdock.package.metadata import PLUGIN_ID_PATTERN, parse_version
from plugdock.server.report import build_report
from plugdock.server.review_api import add_review_routes
from plugdock.server.review_page import add_review_page
from plugdock.server.storage import ConflictError, ForbiddenError, Storage, upload_limit
from plugdock.sources.base import LATEST
from plugdock.trust.signing import read_signature

log = logging.getLogger("plugdock.server")

_ID = re.compile(PLUGIN_ID_PATTERN)
_TUF_NAME = re.compile(r"^(timestamp|root|[1-9][0-9]{0,9}\.(root|snapshot|targets))\.json$")
_CHUNK = 1024 * 1024
REVIEW_MODES = ("required", "off")


def _error(status: int, detail: Any, **extra: Any) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse({"detail": detail, **extra}, status_code=status, headers=headers)


def _check_params(plugin_id: str, version: str) -> JSONResponse | None:
    if not _ID.fullmatch(plugin_id):
        return _error(422, f"{plugin_id[:80]!r} is not a valid plugin id")
    if version != LATEST:
        try:
            parse_version(version)
        except ValueError as exc:
            return _error(422, str(exc)[:200])
    return None


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
    limits = limits or Limits()
    reviewing = review == "required"
    app = FastAPI(title="plugdock plugin server", version=__version__, docs_url="/docs")
    app.state.storage = storage
    app.state.review = review

    def hide(text: str) -> str:
        """``text`` without the server's data path (answers go to any publisher)."""
        return text.replace(str(storage.data_dir), "<server data>")

    @app.get("/manifest.json")
    def manifest() -> JSONResponse:
        """Every plugin with every version (newest first)."""
        return JSONResponse(storage.manifest(), headers={"Cache-Control": "no-cache"})

    @app.get("/download/{plugin_id}/{version}", response_model=None)
    def download(plugin_id: str, version: str, request: Request) -> Response:
        """The package ZIP; ``version`` may be ``latest`` (highest semver)."""
        bad = _check_params(plugin_id, version)
        if bad is not None:
            return bad
        record = storage.record(plugin_id, version)
        if record is None:
            what = plugin_id if version == LATEST else f"{plugin_id} {version}"
            return _error(404, f"{what} is not published here")
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

    @app.get("/tuf/{name}", response_model=None)
    def tuf(name: str) -> Response:
        """Signed index metadata (root versions, targets, snapshot, timestamp)."""
        path = storage.index.file(name) if _TUF_NAME.fullmatch(name) else None
        if path is None:
            return _error(404, f"no metadata {name[:80]!r}")
        return FileResponse(
            path, media_type="application/json", headers={"Cache-Control": "no-cache"}
        )

    @app.post("/api/v1/plugins", status_code=201, response_model=None)
    async def publish(request: Request) -> JSONResponse:
        """Publish a package (every install check runs first; versions are immutable)."""
        auth = request.headers.get("authorization", "")
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return _error(401, "a publisher token is required (Authorization: Bearer <token>)")
        publisher = storage.authenticate(token.strip())
        if publisher is None:
            return _error(403, "the publisher token is not valid")
        length = request.headers.get("content-length")
        if length is None or not length.isdigit():
            return _error(411, "a Content-Length is required")
        if int(length) > upload_limit(limits):
            return _error(413, f"the upload is larger than {limits.max_zip_bytes} bytes")
        incoming = storage.incoming_file()
        try:
            problem = await _receive(request, incoming, upload_limit(limits))
            if problem is not None:
                return problem
            try:
                report = await run_in_threadpool(validate_package, incoming, limits)
            except PackageError as exc:
                # The checks name the file they read, which is in the server's data folder:
                # answer with the findings only (and scrub them too).
                problems = [hide(p) for p in exc.problems]
                return _error(
                    422, f"the package was refused: {'; '.join(problems)}", problems=problems
                )
            info = report.info
            check = read_signature(info)
            if check.status == "invalid":
                return _error(422, f"the package's signature is bad: {hide(check.detail)}")
            try:
                review_report = None
                if reviewing:
                    meta = info.metadata
                    # Refuse a taken version or another's id before the (slower) report.
                    storage.check_can_publish(meta.id, meta.version, publisher)
                    before = storage.last_approved(meta.id, below=meta.version)
                    previous = (before, storage.package_path(meta.id, before)) if before else None
                    review_report = await run_in_threadpool(
                        lambda: build_report(
                            incoming, report, limits, previous=previous, scan_timeout=scan_timeout
                        )
                    )
                record = await run_in_threadpool(
                    lambda: storage.publish(
                        incoming, info, publisher, pending=reviewing, report=review_report
                    )
                )
            except ForbiddenError as exc:
                return _error(403, hide(str(exc)))
            except ConflictError as exc:
                return _error(409, hide(str(exc)))
            except PlugdockError as exc:
                return _error(422, hide(str(exc)))
            log.info(
                "%s published %s %s%s",
                publisher.name,
                info.metadata.id,
                info.metadata.version,
                " (pending review)" if reviewing else "",
            )
            return JSONResponse(
                {"id": info.metadata.id, "tables": list(report.tables), **record}, status_code=201
            )
        finally:
            incoming.unlink(missing_ok=True)

    @app.get("/", response_class=HTMLResponse)
    def index() -> HTMLResponse:
        """A human-readable list of the plugins."""
        return HTMLResponse(_index_page(storage.manifest()))

    add_review_routes(app, storage)
    add_review_page(app)

    @app.exception_handler(PlugdockError)
    async def _plugdock_error(request: Request, exc: PlugdockError) -> JSONResponse:
        return _error(400, hide(str(exc)))

    return app


async def _receive(request: Request, target: Path, limit: int) -> JSONResponse | None:
    """Write the uploaded ZIP to ``target``: a multipart ``file`` field or a raw body."""
    content_type = request.headers.get("content-type", "")
    written = 0
    if content_type.startswith("multipart/form-data"):
        form = await request.form(max_files=1, max_fields=4)
        try:
            upload = form.get("file")
            if not isinstance(upload, UploadFile):
                return _error(422, "the multipart form needs a 'file' field with the ZIP")
            with open(target, "wb") as handle:
                while chunk := await upload.read(_CHUNK):
                    written += len(chunk)
                    if written > limit:
                        return _error(413, f"the upload is larger than {limit} bytes")
                    handle.write(chunk)
        finally:
            await form.close()
    elif content_type.split(";")[0].strip() in ("application/zip", "application/octet-stream"):
        with open(target, "wb") as handle:
            async for chunk in request.stream():
                written += len(chunk)
                if written > limit:
                    return _error(413, f"the upload is larger than {limit} bytes")
                handle.write(chunk)
    else:
        return _error(415, "send the ZIP as multipart/form-data (field 'file') or application/zip")
    if written == 0:
        return _error(422, "the upload is empty")
    return None


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
<style>
body {{ font: 15px/1.5 system-ui, sans-serif; margin: 2rem auto; max-width: 60rem; }}
table {{ border-collapse: collapse; width: 100%; }}
td, th {{ border-bottom: 1px solid #ddd; padding: .4rem .6rem; text-align: left; }}
code {{ background: #f4f4f4; padding: 0 .2rem; }}
</style></head>
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
