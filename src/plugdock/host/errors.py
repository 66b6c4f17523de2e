"""plugdock's errors as HTTP answers: the right status and a JSON ``detail``, never a bare 500."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from plugdock.core.validation_errors import answer_validation_error
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
from plugdock.package.permissions import describe

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


def install_error_handlers(app: FastAPI) -> None:
    """PlugdockError → its status; request validation → 422 without the submitted values."""
    app.add_exception_handler(PlugdockError, _plugdock_error)
    app.add_exception_handler(RequestValidationError, answer_validation_error)
