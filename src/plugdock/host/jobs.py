"""Plugins' scheduled jobs over HTTP (admin): what is scheduled, recent runs, "run now".

A "run now" is queued in the database; a worker serving the plugin takes it within seconds
(:mod:`plugdock.runtime.jobs`), on whichever replica. State-changing requests carrying
cookies need the CSRF header, as the marketplace's (``PLUGDOCK_PREFIXES``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from plugdock import sdk
from plugdock.core.db import connect_read, utcnow
from plugdock.host.state import panel_state
from plugdock.instance import jobs
from plugdock.package.metadata import PLUGIN_ID_PATTERN

router = APIRouter(prefix="/api/v1/jobs", tags=["jobs"])

PluginIdPath = Annotated[str, Path(pattern=PLUGIN_ID_PATTERN)]
JobIdPath = Annotated[str, Path(pattern=r"^[a-z][a-z0-9_]{0,63}$")]


class Job(BaseModel):
    plugin_id: str
    job_id: str
    cron: str
    timezone: str
    handler: str
    enabled: bool
    next_at: datetime
    last_status: str | None
    last_started_at: datetime | None
    last_error: str | None


class JobRun(BaseModel):
    id: int
    plugin_id: str
    job_id: str
    scheduled_for: datetime
    manual: bool
    status: str
    started_at: datetime | None
    duration_ms: int | None
    error: str | None


class Queued(BaseModel):
    run_id: int
    detail: str


@router.get("", response_model=list[Job])
def list_jobs(request: Request, _admin: sdk.AdminUser) -> list[Job]:
    """Every installed plugin's jobs: cron, time zone, next tick (UTC), last result."""
    with connect_read(panel_state(request.app).engine) as conn:
        return [Job(**row) for row in jobs.list_jobs(conn)]


@router.get("/{plugin_id}/{job_id}/runs", response_model=list[JobRun])
def runs(
    plugin_id: PluginIdPath,
    job_id: JobIdPath,
    request: Request,
    _admin: sdk.AdminUser,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[JobRun]:
    """The job's newest runs, newest first."""
    with connect_read(panel_state(request.app).engine) as conn:
        return [JobRun(**row) for row in jobs.history(conn, plugin_id, job_id, limit)]


@router.post("/{plugin_id}/{job_id}/run", response_model=Queued, status_code=202)
async def run_now(
    plugin_id: PluginIdPath, job_id: JobIdPath, request: Request, _admin: sdk.AdminUser
) -> Queued:
    """Queue a run now; a worker serving the plugin takes it (404: no such job)."""
    engine = panel_state(request.app).engine
    run_id = await run_in_threadpool(jobs.queue, engine, plugin_id, job_id, utcnow())
    scheduler = getattr(request.app.state, "plugdock_jobs", None)
    if scheduler is not None:  # this worker takes it at once if it serves the plugin
        scheduler.wakeup.set()
    return Queued(run_id=run_id, detail=f"run {run_id} of {plugin_id}.{job_id} is queued")
