"""A request that fails validation, answered without the values it carried.

Used by the panel and by every plugin process, so a plugin's routes answer alike in both
isolation modes.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

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


async def answer_validation_error(_request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    return JSONResponse({"detail": validation_errors(error)}, status_code=422)
