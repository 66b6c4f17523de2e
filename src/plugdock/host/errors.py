"""The panel's one mapping of plugdock's errors to HTTP answers: a status and a JSON ``detail``.

Routes raise the kinds of :mod:`plugdock.errors`; the handlers installed here answer them,
never a bare 500 for a refusal, and never with a folder of this machine in the text
(``PanelState.hide``). (Authentication's own answers, ``host.auth``, stay
``HTTPException``: it is the SDK's ``authenticate`` contract, and they carry headers.)
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler, request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Scope

from plugdock.core.allow import answer_http_error
from plugdock.core.contract import issues
from plugdock.core.headers import answer_internal_error
from plugdock.core.validation_errors import answer_validation_error
from plugdock.errors import (
    AuthenticationError,
    ConflictError,
    ForbiddenError,
    InvalidRequestError,
    LockTimeoutError,
    NotFoundError,
    PackageError,
    PermissionsNotGrantedError,
    PlugdockError,
    SettingsInvalidError,
    SourceUnavailableError,
    StepError,
    TooLargeError,
)
from plugdock.host.state import panel_state
from plugdock.package.permissions import describe

_STATUS: list[tuple[type[PlugdockError], int]] = [
    (AuthenticationError, 401),
    (ForbiddenError, 403),
    (NotFoundError, 404),
    (ConflictError, 409),
    (TooLargeError, 413),
    (InvalidRequestError, 422),
    (PackageError, 422),
    (SourceUnavailableError, 502),
    (LockTimeoutError, 503),
]


def status_of(error: PlugdockError) -> int:
    """The status of ``error``'s kind; any other refusal is a 400."""
    if isinstance(error, StepError):
        # The plugin's own code failing in on_install/on_uninstall is the package's fault.
        return 422 if error.step == "hooks" else 500
    for kind, status in _STATUS:
        if isinstance(error, kind):
            return status
    return 400


async def _plugdock_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, PlugdockError)
    hide = panel_state(request.app).hide  # no folder of this machine in any answer
    status = status_of(error)
    body: dict[str, object] = {"detail": hide(str(error))}
    if isinstance(error, SettingsInvalidError):  # a message per field, as FastAPI's own 422
        body["detail"] = [
            {"loc": ["body", "values", name], "msg": message, "type": "value_error"}
            for name, message in error.problems.items()
        ]
    if isinstance(error, PackageError) and len(error.problems) > 1:
        body["problems"] = [hide(p) for p in error.problems]
    if status == 422 and isinstance(body["detail"], str):  # every 422: a list of issues
        kind = "package_error" if isinstance(error, PackageError) else "value_error"
        body["detail"] = issues(body.get("problems") or [body["detail"]], kind)  # type: ignore[arg-type]
    if isinstance(error, PermissionsNotGrantedError):  # what to confirm, then send as "grant"
        body["permissions"] = error.added
        body["permission_descriptions"] = [describe(p) for p in error.added]
    return JSONResponse(body, status_code=status)


Handler = Callable[[Request, Exception], Awaitable[Response]]


def install_error_handlers(app: FastAPI, applies: Callable[[Scope], bool] | None = None) -> None:
    """PlugdockError → its status; request validation → 422 without the submitted values;
    any other exception (a bug) → a JSON 500 with the security headers.

    ``applies``: the last two only for the requests it accepts (plugdock's and the plugins'
    routes in an embedding host); the others get the host's own handler, or the framework's
    default, exactly as they did before plugdock was mounted.
    """
    app.add_exception_handler(PlugdockError, _plugdock_error)
    ours: list[tuple[type[Exception], Handler]] = [
        (RequestValidationError, answer_validation_error),
        (Exception, answer_internal_error),
    ]
    # 405 with every method of the path in Allow; a host's own HTTPException handler stays
    # (for its own routes only, when plugdock's answers are scoped to plugdock's).
    if applies is not None or app.exception_handlers.get(StarletteHTTPException) in (
        None,
        http_exception_handler,
    ):
        ours.insert(0, (StarletteHTTPException, answer_http_error))
    for kind, handler in ours:
        if applies is not None:
            theirs = app.exception_handlers.get(kind, _DEFAULTS[kind])
            handler = _only_where(applies, handler, theirs)
        app.add_exception_handler(kind, handler)


async def _plain_500(_request: Request, _error: Exception) -> Response:
    """Starlette's own answer to a crash when no handler is installed."""
    return PlainTextResponse("Internal Server Error", status_code=500)


_DEFAULTS: dict[type[Exception], Any] = {
    StarletteHTTPException: http_exception_handler,
    RequestValidationError: request_validation_exception_handler,
    Exception: _plain_500,
}


def _only_where(applies: Callable[[Scope], bool], ours: Handler, theirs: Any) -> Handler:
    async def handler(request: Request, error: Exception) -> Response:
        if applies(request.scope):
            return await ours(request, error)
        answer = theirs(request, error)
        return await answer if inspect.isawaitable(answer) else answer  # type: ignore[no-any-return]

    return handler
