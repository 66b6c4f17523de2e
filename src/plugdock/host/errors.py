"""plugdock's errors as HTTP answers: the right status and a JSON ``detail``, never a bare 500."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from plugdock.errors import (
    AlreadyInstalledError,
    LockTimeoutError,
    NotFoundError,
    NotInstalledError,
    PackageError,
    PermissionsNotGrantedError,
    PlugdockError,
    SourceUnavailableError,
    StepError,
)
from plugdock.isolation.permissions import describe

_STATUS: list[tuple[type[PlugdockError], int]] = [
    (NotFoundError, 404),
    (NotInstalledError, 404),
    (AlreadyInstalledError, 409),
    (PermissionsNotGrantedError, 409),
    (PackageError, 422),
    (SourceUnavailableError, 502),
    (LockTimeoutError, 503),
]


def status_of(error: PlugdockError) -> int:
    if isinstance(error, StepError):
        # The plugin's own code failing in on_install/on_uninstall is the package's fault.
        return 422 if error.step == "hooks" else 500
    for kind, status in _STATUS:
        if isinstance(error, kind):
            return status
    return 400


async def _plugdock_error(_request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, PlugdockError)
    body: dict[str, object] = {"detail": str(error)}
    if isinstance(error, PackageError) and len(error.problems) > 1:
        body["problems"] = error.problems
    if isinstance(error, PermissionsNotGrantedError):  # what to confirm, then send as "grant"
        body["permissions"] = error.added
        body["permission_descriptions"] = [describe(p) for p in error.added]
    return JSONResponse(body, status_code=status_of(error))


#: Longest message and location part a validation error repeats (a plugin's own validator
#: may word its message from the value; cut, so at least no large input comes back).
_MAX_TEXT = 200


def validation_errors(error: RequestValidationError) -> list[dict[str, Any]]:
    """``loc``, ``msg`` and ``type`` of each problem: never the submitted ``input`` or ``ctx``.

    FastAPI's default 422 repeats the input, so a too-short password or a 1 MiB login
    body came back in the answer (and in any log or proxy that keeps answers).
    """
    problems = []
    for item in error.errors():
        loc = [p if isinstance(p, int) else str(p)[:_MAX_TEXT] for p in item.get("loc", ())]
        problems.append(
            {
                "loc": loc,
                "msg": str(item.get("msg", "invalid value"))[:_MAX_TEXT],
                "type": str(item.get("type", "value_error")),
            }
        )
    return problems


async def _validation_error(_request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    return JSONResponse({"detail": validation_errors(error)}, status_code=422)


def install_error_handlers(app: FastAPI) -> None:
    """PlugdockError → its status; request validation → 422 without the submitted values."""
    app.add_exception_handler(PlugdockError, _plugdock_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
