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
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi import Path as InPath
from fastapi.responses import FileResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from plugdock.core.contract import errors
from plugdock.errors import (
    ConflictError,
    ForbiddenError,
    InvalidRequestError,
    NotFoundError,
    PlugdockError,
    TooLargeError,
)
from plugdock.package.metadata import PLUGIN_ID_PATTERN, SEMVER_PATTERN, parse_version
from plugdock.server.access import PUBLISHER, REVIEWER, signed_in_publisher, signed_in_reviewer
from plugdock.server.state import server_state
from plugdock.server.storage import APPROVED, MAX_REASON, PENDING, REJECTED, Reviewer

_ID = re.compile(PLUGIN_ID_PATTERN)
_MAX_DECISION_BODY = 16 * 1024
_STATUSES = (PENDING, APPROVED, REJECTED, "all")

router = APIRouter()

# What the schema says of the path and the answers; the routes still check the token first.
PluginIdParam = Annotated[str, InPath(pattern=PLUGIN_ID_PATTERN, max_length=64)]
VersionParam = Annotated[str, InPath(pattern=SEMVER_PATTERN, max_length=128)]
_REVIEW_ERRORS = errors(401, 403, _403="Not a reviewer token")
_VERSION_ERRORS = errors(401, 403, 404, _403="Not a reviewer token")
_DECISION_ERRORS = errors(
    401,
    403,
    404,
    409,
    _403="Not a reviewer token, or the reviewer published this version",
    _409="Decided already",
)
_REJECT_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["reason"],
                    "properties": {
                        "reason": {"type": "string", "pattern": r"\S", "maxLength": MAX_REASON}
                    },
                }
            }
        },
    }
}


def _check_params(plugin_id: str, version: str) -> None:
    if not _ID.fullmatch(plugin_id):
        raise InvalidRequestError(f"{plugin_id[:80]!r} is not a valid plugin id")
    try:
        parse_version(version)
    except ValueError as exc:
        raise InvalidRequestError(str(exc)[:200]) from None


def reviewer_of(request: Request, plugin_id: str, version: str) -> Reviewer:
    """The signed-in reviewer, once the path names a plausible plugin version."""
    who = signed_in_reviewer(request)
    _check_params(plugin_id, version)
    return who


def stored(request: Request, plugin_id: str, version: str) -> dict[str, Any]:
    """The record of any version (pending and rejected too); NotFoundError when none."""
    record = server_state(request.app).storage.record(plugin_id, version, unlisted=True)
    if record is None:
        raise NotFoundError(f"{plugin_id} {version} is not published here")
    return record


@router.get(
    "/api/v1/review/whoami", response_model=None, dependencies=REVIEWER, responses=_REVIEW_ERRORS
)
def whoami(request: Request) -> JSONResponse:
    """Who this reviewer token belongs to (the review page signs in with it)."""
    who = signed_in_reviewer(request)
    return JSONResponse({"name": who.name, "role": "reviewer"})


@router.get(
    "/api/v1/review/versions", response_model=None, dependencies=REVIEWER, responses=_REVIEW_ERRORS
)
def queue(
    request: Request, status: Literal["pending", "approved", "rejected", "all"] = "pending"
) -> JSONResponse:
    """Versions by review status, newest upload first."""
    signed_in_reviewer(request)
    if status not in _STATUSES:
        raise InvalidRequestError(f"status must be one of {', '.join(_STATUSES)}")
    storage = server_state(request.app).storage
    versions = storage.versions(status=None if status == "all" else status)
    return JSONResponse({"status": status, "versions": versions})


@router.get(
    "/api/v1/review/versions/{plugin_id}/{version}",
    response_model=None,
    dependencies=REVIEWER,
    responses=_VERSION_ERRORS,
)
def show(request: Request, plugin_id: PluginIdParam, version: VersionParam) -> JSONResponse:
    """One version: its record, its automated report, its audit entries."""
    reviewer_of(request, plugin_id, version)
    record = stored(request, plugin_id, version)
    storage = server_state(request.app).storage
    return JSONResponse(
        {
            "id": plugin_id,
            "record": record,
            "report": storage.report(plugin_id, version),
            "audit": storage.audit.entries(plugin_id, version),
        }
    )


@router.get(
    "/api/v1/review/versions/{plugin_id}/{version}/package",
    response_model=None,
    response_class=Response,
    dependencies=REVIEWER,
    responses={
        200: {
            "description": "The package ZIP",
            "content": {"application/zip": {"schema": {"type": "string", "format": "binary"}}},
        },
        **_VERSION_ERRORS,
    },
)
def package(request: Request, plugin_id: PluginIdParam, version: VersionParam) -> Response:
    """The ZIP itself, for a reviewer who wants to read every line."""
    reviewer_of(request, plugin_id, version)
    record = stored(request, plugin_id, version)
    path = server_state(request.app).storage.package_path(plugin_id, version)
    return FileResponse(
        path,
        media_type="application/zip",
        filename=path.name,
        headers={"X-Plugdock-Sha256": record["sha256"], "Cache-Control": "no-store"},
    )


async def decide(request: Request, plugin_id: str, version: str, verdict: str) -> JSONResponse:
    who = reviewer_of(request, plugin_id, version)
    reason = ""
    if verdict == "reject":
        body = await request.body()
        if len(body) > _MAX_DECISION_BODY:
            raise TooLargeError("the request body is too large")
        try:
            data: Any = json.loads(body or b"{}")
        except ValueError:
            raise InvalidRequestError('send JSON: {"reason": "..."}') from None
        given = data.get("reason") if isinstance(data, dict) else None
        if not isinstance(given, str) or not given.strip():
            raise InvalidRequestError("a rejection needs a reason (the publisher sees it)")
        reason = given
    storage = server_state(request.app).storage
    try:
        if verdict == "approve":
            record = await run_in_threadpool(storage.approve, plugin_id, version, who)
        else:
            record = await run_in_threadpool(storage.reject, plugin_id, version, who, reason)
    except (NotFoundError, ForbiddenError, ConflictError):
        raise
    except PlugdockError as exc:  # a reason too long, a stored package that changed: 422
        raise InvalidRequestError(str(exc)) from exc
    return JSONResponse({"id": plugin_id, **record})


@router.post(
    "/api/v1/review/versions/{plugin_id}/{version}/approve",
    response_model=None,
    dependencies=REVIEWER,
    responses=_DECISION_ERRORS,
)
async def approve(
    request: Request, plugin_id: PluginIdParam, version: VersionParam
) -> JSONResponse:
    """Approve a pending version: it is signed into the index and listed."""
    return await decide(request, plugin_id, version, "approve")


@router.post(
    "/api/v1/review/versions/{plugin_id}/{version}/reject",
    response_model=None,
    dependencies=REVIEWER,
    responses=_DECISION_ERRORS,
    openapi_extra=_REJECT_BODY,
)
async def reject(request: Request, plugin_id: PluginIdParam, version: VersionParam) -> JSONResponse:
    """Reject a pending version with a reason; it is never listed, its number stays taken."""
    return await decide(request, plugin_id, version, "reject")


@router.get(
    "/api/v1/publisher/versions",
    response_model=None,
    dependencies=PUBLISHER,
    responses=errors(401, 403, _403="Not a publisher token"),
)
def my_versions(
    request: Request,
    plugin: Annotated[str | None, Query(pattern=PLUGIN_ID_PATTERN, max_length=64)] = None,
) -> JSONResponse:
    """The calling publisher's versions with their review status (and rejection reason)."""
    who = signed_in_publisher(request)
    if plugin is not None and not _ID.fullmatch(plugin):
        raise InvalidRequestError(f"{plugin[:80]!r} is not a valid plugin id")
    versions = [
        {
            "id": r["id"],
            "version": r["version"],
            "status": r.get("status", "published"),
            "published": r.get("published"),
            "sha256": r["sha256"],
            **{k: r[k] for k in ("approved_by", "approved", "rejected", "reason") if k in r},
        }
        for r in server_state(request.app).storage.versions(publisher=who.name)
        if plugin is None or r["id"] == plugin
    ]
    return JSONResponse({"publisher": who.name, "versions": versions})


__all__ = ["router"]
