"""The review queue's HTTP API: reviewers list, read, approve and reject; publishers follow.

==================================================================  ==========================
``GET  /api/v1/review/whoami``                                      the reviewer's name
``GET  /api/v1/review/versions?status=pending|approved|rejected|all``  the queue (default pending)
``GET  /api/v1/review/versions/{id}/{version}``                     record, report, audit
``GET  /api/v1/review/versions/{id}/{version}/package``             the ZIP under review
``POST /api/v1/review/versions/{id}/{version}/approve``             sign into the index, list it
``POST /api/v1/review/versions/{id}/{version}/reject``              ``{"reason": "..."}``
``GET  /api/v1/publisher/versions[?plugin=ID]``                     a publisher's own versions:
                                                                    status, and why rejected
==================================================================  ==========================

Review routes take a *reviewer* token (``Authorization: Bearer pdr_...``): a publisher's
token is refused with 403, whatever its name. A reviewer may not approve a version they
published themselves (when an operator gave one person both roles).
"""

from __future__ import annotations

import json
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from plugdock.errors import NotFoundError, PlugdockError
from plugdock.package.metadata import PLUGIN_ID_PATTERN, parse_version
from plugdock.server.storage import (
    APPROVED,
    PENDING,
    REJECTED,
    ConflictError,
    ForbiddenError,
    Publisher,
    Reviewer,
    Storage,
)

_ID = re.compile(PLUGIN_ID_PATTERN)
_MAX_DECISION_BODY = 16 * 1024
_STATUSES = (PENDING, APPROVED, REJECTED, "all")


def _error(status: int, detail: str) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


def _bearer(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _params(plugin_id: str, version: str) -> JSONResponse | None:
    if not _ID.fullmatch(plugin_id):
        return _error(422, f"{plugin_id[:80]!r} is not a valid plugin id")
    try:
        parse_version(version)
    except ValueError as exc:
        return _error(422, str(exc)[:200])
    return None


def add_review_routes(app: FastAPI, storage: Storage) -> None:
    """Mount the review and publisher-status routes on ``app``."""

    def reviewer(request: Request) -> Reviewer | JSONResponse:
        token = _bearer(request)
        if token is None:
            return _error(401, "a reviewer token is required (Authorization: Bearer <token>)")
        found = storage.authenticate_reviewer(token)
        if found is None:
            return _error(403, "this is not a reviewer token")
        return found

    def publisher(request: Request) -> Publisher | JSONResponse:
        token = _bearer(request)
        if token is None:
            return _error(401, "a publisher token is required (Authorization: Bearer <token>)")
        found = storage.authenticate(token)
        if found is None:
            return _error(403, "the publisher token is not valid")
        return found

    @app.get("/api/v1/review/whoami", response_model=None)
    def whoami(request: Request) -> JSONResponse:
        """Who this reviewer token belongs to (the review page signs in with it)."""
        who = reviewer(request)
        if isinstance(who, JSONResponse):
            return who
        return JSONResponse({"name": who.name, "role": "reviewer"})

    def reviewer_of(request: Request, plugin_id: str, version: str) -> Reviewer | JSONResponse:
        """The signed-in reviewer, once the path names a plausible plugin version."""
        who = reviewer(request)
        if isinstance(who, JSONResponse):
            return who
        return _params(plugin_id, version) or who

    def stored(plugin_id: str, version: str) -> dict[str, Any] | JSONResponse:
        record = storage.record(plugin_id, version, unlisted=True)
        if record is None:
            return _error(404, f"{plugin_id} {version} is not published here")
        return record

    @app.get("/api/v1/review/versions", response_model=None)
    def queue(request: Request, status: str = PENDING) -> JSONResponse:
        """Versions by review status, newest upload first."""
        who = reviewer(request)
        if isinstance(who, JSONResponse):
            return who
        if status not in _STATUSES:
            return _error(422, f"status must be one of {', '.join(_STATUSES)}")
        versions = storage.versions(status=None if status == "all" else status)
        return JSONResponse({"status": status, "versions": versions})

    @app.get("/api/v1/review/versions/{plugin_id}/{version}", response_model=None)
    def show(request: Request, plugin_id: str, version: str) -> JSONResponse:
        """One version: its record, its automated report, its audit entries."""
        who = reviewer_of(request, plugin_id, version)
        if isinstance(who, JSONResponse):
            return who
        record = stored(plugin_id, version)
        if isinstance(record, JSONResponse):
            return record
        return JSONResponse(
            {
                "id": plugin_id,
                "record": record,
                "report": storage.report(plugin_id, version),
                "audit": storage.audit.entries(plugin_id, version),
            }
        )

    @app.get("/api/v1/review/versions/{plugin_id}/{version}/package", response_model=None)
    def package(request: Request, plugin_id: str, version: str) -> Response:
        """The ZIP itself, for a reviewer who wants to read every line."""
        who = reviewer_of(request, plugin_id, version)
        if isinstance(who, JSONResponse):
            return who
        record = stored(plugin_id, version)
        if isinstance(record, JSONResponse):
            return record
        path = storage.package_path(plugin_id, version)
        return FileResponse(
            path,
            media_type="application/zip",
            filename=path.name,
            headers={"X-Plugdock-Sha256": record["sha256"], "Cache-Control": "no-store"},
        )

    async def decide(request: Request, plugin_id: str, version: str, verdict: str) -> JSONResponse:
        who = reviewer_of(request, plugin_id, version)
        if isinstance(who, JSONResponse):
            return who
        reason = ""
        if verdict == "reject":
            body = await request.body()
            if len(body) > _MAX_DECISION_BODY:
                return _error(413, "the request body is too large")
            try:
                data: Any = json.loads(body or b"{}")
            except ValueError:
                return _error(422, 'send JSON: {"reason": "..."}')
            given = data.get("reason") if isinstance(data, dict) else None
            if not isinstance(given, str) or not given.strip():
                return _error(422, "a rejection needs a reason (the publisher sees it)")
            reason = given
        try:
            if verdict == "approve":
                record = await run_in_threadpool(storage.approve, plugin_id, version, who)
            else:
                record = await run_in_threadpool(storage.reject, plugin_id, version, who, reason)
        except NotFoundError as exc:
            return _error(404, str(exc))
        except ForbiddenError as exc:
            return _error(403, str(exc))
        except ConflictError as exc:
            return _error(409, str(exc))
        except PlugdockError as exc:
            return _error(422, str(exc).replace(str(storage.data_dir), "<server data>"))
        return JSONResponse({"id": plugin_id, **record})

    @app.post("/api/v1/review/versions/{plugin_id}/{version}/approve", response_model=None)
    async def approve(request: Request, plugin_id: str, version: str) -> JSONResponse:
        """Approve a pending version: it is signed into the index and listed."""
        return await decide(request, plugin_id, version, "approve")

    @app.post("/api/v1/review/versions/{plugin_id}/{version}/reject", response_model=None)
    async def reject(request: Request, plugin_id: str, version: str) -> JSONResponse:
        """Reject a pending version with a reason; it is never listed, its number stays taken."""
        return await decide(request, plugin_id, version, "reject")

    @app.get("/api/v1/publisher/versions", response_model=None)
    def my_versions(request: Request, plugin: str | None = None) -> JSONResponse:
        """The calling publisher's versions with their review status (and rejection reason)."""
        who = publisher(request)
        if isinstance(who, JSONResponse):
            return who
        if plugin is not None and not _ID.fullmatch(plugin):
            return _error(422, f"{plugin[:80]!r} is not a valid plugin id")
        versions = [
            {
                "id": r["id"],
                "version": r["version"],
                "status": r.get("status", "published"),
                "published": r.get("published"),
                "sha256": r["sha256"],
                **{k: r[k] for k in ("approved_by", "approved", "rejected", "reason") if k in r},
            }
            for r in storage.versions(publisher=who.name)
            if plugin is None or r["id"] == plugin
        ]
        return JSONResponse({"publisher": who.name, "versions": versions})


__all__ = ["add_review_routes"]
