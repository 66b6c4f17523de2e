"""``/readyz``: 200 only while this replica serves exactly what the database says.

A load balancer sends traffic only to ready replicas: one that has not yet fetched the
code of a plugin the database names (or refused it as corrupt), or whose served generation
is behind, answers 503 with the reasons. Plugins that fail to load are reported but do not
make a replica unready: they fail on every replica alike (``/healthz`` is liveness only).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from plugdock.core.db import connect_read, current_generation
from plugdock.host.state import panel_state

router = APIRouter(tags=["health"])


class ReadyOut(BaseModel):
    status: str = Field(description="'ready', 'not ready' or 'unavailable' (no database)")
    generation: int | None = Field(None, description="the plugin set the database names")
    serving: int | None = Field(None, description="the plugin set this replica serves")
    pending: dict[str, str] = Field({}, description="plugins not served here yet, and why")
    failed: dict[str, str] = Field({}, description="plugins that failed to load here")


@router.get(
    "/readyz",
    response_model=ReadyOut,
    responses={503: {"model": ReadyOut, "description": "Not (yet) serving what the database says"}},
    summary="Readiness: this replica serves the installed plugins",
)
async def readyz(request: Request) -> Any:
    runtime = panel_state(request.app).runtime

    def read() -> int:
        with connect_read(runtime.engine) as conn:
            return current_generation(conn)

    try:
        generation = await run_in_threadpool(read)
    except Exception:  # any failure of the database is "unavailable"
        return JSONResponse({"status": "unavailable"}, status.HTTP_503_SERVICE_UNAVAILABLE)
    ready = runtime.generation == generation and not runtime.pending
    hide = panel_state(request.app).hide  # public: no folder of this machine in it
    body = ReadyOut(
        status="ready" if ready else "not ready",
        generation=generation,
        serving=runtime.generation,
        pending={p: hide(why) for p, why in runtime.pending.items()},
        failed={p: hide(error) for p, (_op, error) in runtime.mounts.failed.items()},
    )
    if ready:
        return body
    return JSONResponse(body.model_dump(), status.HTTP_503_SERVICE_UNAVAILABLE)
