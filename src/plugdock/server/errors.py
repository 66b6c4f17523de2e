"""The plugin server's one mapping of plugdock's errors to HTTP answers: a JSON ``detail``.

Routes raise the kinds of :mod:`plugdock.errors`; the handler installed here answers them.
Every answer is scrubbed of the server's data path (answers go to any publisher); a
refused upload also lists its ``problems``; a 401 says ``WWW-Authenticate: Bearer``.
(A missing ``Content-Length`` (411) or an upload that is not a ZIP (415) is about HTTP
itself: those routes raise FastAPI's ``HTTPException``, answered alike.)
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from plugdock.core.allow import answer_http_error
from plugdock.core.contract import issues
from plugdock.core.headers import answer_internal_error
from plugdock.core.validation_errors import answer_validation_error
from plugdock.errors import (
    AuthenticationError,
    ConflictError,
    ForbiddenError,
    InvalidRequestError,
    NotFoundError,
    PackageError,
    PlugdockError,
    TooLargeError,
    UploadRefusedError,
)
from plugdock.server.state import server_state

_STATUS: list[tuple[type[PlugdockError], int]] = [
    (AuthenticationError, 401),
    (ForbiddenError, 403),
    (NotFoundError, 404),
    (ConflictError, 409),
    (TooLargeError, 413),
    (InvalidRequestError, 422),
    (PackageError, 422),
]


def status_of(error: PlugdockError) -> int:
    """The status of ``error``'s kind; any other refusal is a 400."""
    for kind, status in _STATUS:
        if isinstance(error, kind):
            return status
    return 400


async def _plugdock_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, PlugdockError)
    hide = server_state(request.app).hide
    status = status_of(error)
    body: dict[str, object] = {"detail": hide(str(error))}
    if isinstance(error, UploadRefusedError):
        body["problems"] = [hide(p) for p in error.problems]
    if status == 422:  # like every 422: a list of issues (plugdock.core.contract)
        kind = "package_error" if isinstance(error, PackageError) else "value_error"
        body["detail"] = issues(body.get("problems") or [body["detail"]], kind)  # type: ignore[arg-type]
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(body, status_code=status, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    """PlugdockError → its status, as ``{"detail": ...}``; a crash → a JSON 500."""
    app.add_exception_handler(PlugdockError, _plugdock_error)
    app.add_exception_handler(RequestValidationError, answer_validation_error)  # a list
    app.add_exception_handler(StarletteHTTPException, answer_http_error)  # 405: full Allow
    app.add_exception_handler(Exception, answer_internal_error)
