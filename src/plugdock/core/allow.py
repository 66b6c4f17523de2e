"""A 405 whose ``Allow`` lists every method of the path, not just one route's.

Starlette answers 405 from the first route whose path matched, so a path served by two
routes (``GET`` and ``POST /api/v1/users``) said ``Allow: GET`` to a ``PUT``. Here each
method is tried against the app's whole route list (plugin routes included) instead.
"""

from __future__ import annotations

from fastapi import Request
from fastapi.exception_handlers import http_exception_handler
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.routing import Match

_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def allowed_methods(request: Request) -> list[str]:
    """The methods some route of the app fully matches for this request's path."""
    allowed = []
    for method in _METHODS:
        probe = {**request.scope, "method": method}
        if any(r.matches(probe)[0] == Match.FULL for r in request.app.router.routes):
            allowed.append(method)
    return allowed


async def answer_http_error(request: Request, error: Exception) -> Response:
    """FastAPI's own answer, with a complete ``Allow`` on a 405."""
    assert isinstance(error, HTTPException)
    if error.status_code == 405:
        allowed = allowed_methods(request)
        if allowed:
            error.headers = {**(error.headers or {}), "Allow": ", ".join(allowed)}
    return await http_exception_handler(request, error)
