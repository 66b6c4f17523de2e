"""Running plugins' scheduled jobs in the plugins this worker serves (every worker runs one).

:meth:`JobScheduler.run` wakes at the next tick (or every :data:`POLL_CAP` seconds, for "run
now" requests and plugins another replica installed), claims due ticks and queued runs
through the database (:mod:`plugdock.instance.jobs`: each tick once across replicas), and
runs each through the worker's :class:`~plugdock.runtime.runner.PluginRunner` — in the
panel or in the plugin's sandbox — bounded by ``PLUGDOCK_HOOK_TIMEOUT``, recording the
outcome. Runs go on in the background, so a slow job never holds another's tick.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, func, select
from starlette.concurrency import run_in_threadpool

from plugdock import sdk
from plugdock.core.db import connect_read, job_schedules, utcnow
from plugdock.errors import PluginProcessError
from plugdock.instance import jobs
from plugdock.runtime.mounts import Mounts
from plugdock.runtime.runner import MountedPlugin, PluginRunner

log = logging.getLogger("plugdock.runtime")

POLL_CAP = 2.0  # seconds: the longest a worker sleeps between looks
TRIM_EVERY = 600.0  # seconds between a worker's trims of old history


def lease_for(timeout: float) -> timedelta:
    """A run's lease outlasts its bound: a live worker's run is never declared abandoned."""
    return timedelta(seconds=timeout + 30)


async def run_job(
    runner: PluginRunner,
    mounted: MountedPlugin | None,
    run: jobs.Run,
    timeout: float,
) -> tuple[str, int, str | None]:
    """Run one job's handler through ``runner``: (ok | failed | timeout, ms, error)."""
    argument = sdk.JobRun(
        run_id=run.id,
        job=run.job_id,
        scheduled_for=run.scheduled_for.replace(tzinfo=UTC),
        manual=run.manual,
    )
    started = time.monotonic()
    status, error = "ok", None
    try:
        if mounted is None:
            raise RuntimeError(f"{run.plugin_id} stopped being served here")
        await runner.deliver(mounted, run.handler, argument, timeout)
    except TimeoutError:  # in-process at the bound, or HandlerTimeout from the sandbox
        status, error = "timeout", f"{run.handler} ran over its {timeout:g} s"
    except Exception as exc:
        status = "failed"
        error = str(exc) if isinstance(exc, PluginProcessError) else f"{type(exc).__name__}: {exc}"
    return status, int((time.monotonic() - started) * 1000), error


class JobScheduler:
    """One worker's side of scheduled jobs."""

    def __init__(self, engine: Engine, mounts: Mounts, *, timeout: float) -> None:
        self.engine = engine
        self.mounts = mounts
        self.timeout = timeout
        self.lease = lease_for(timeout)
        self.worker = f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
        self.running: set[asyncio.Task[None]] = set()
        self.wakeup = asyncio.Event()  # set by a "run now" this worker answered
        self._next_trim = 0.0

    async def run(self) -> None:
        """Run jobs until cancelled (then the runs under way are cancelled too)."""
        try:
            while True:
                try:
                    await self.once()
                except Exception:
                    log.exception("running scheduled jobs failed; trying again")
                pause = await run_in_threadpool(self._sleep_for)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wakeup.wait(), pause)
                self.wakeup.clear()
        finally:
            for task in self.running:
                task.cancel()

    async def once(self, now: datetime | None = None) -> list[asyncio.Task[None]]:
        """Claim what is due for the plugins served here and start running it."""
        if time.monotonic() >= self._next_trim:
            self._next_trim = time.monotonic() + TRIM_EVERY
            await run_in_threadpool(jobs.trim, self.engine)
        taken = await run_in_threadpool(
            lambda: jobs.claim(
                self.engine,
                self.worker,
                plugins=set(self.mounts.mounted),
                now=now or utcnow(),
                lease=self.lease,
            )
        )
        started = []
        for run in taken:
            task = asyncio.get_running_loop().create_task(self._run(run))
            self.running.add(task)
            task.add_done_callback(self.running.discard)
            started.append(task)
        return started

    async def _run(self, run: jobs.Run) -> None:
        mounted = self.mounts.mounted.get(run.plugin_id)
        status, ms, error = await run_job(self.mounts.runner, mounted, run, self.timeout)
        if error is not None:
            log.warning("%s: job %s %s: %s", run.plugin_id, run.job_id, status, error)
        await run_in_threadpool(
            lambda: jobs.finish(
                self.engine, run, self.worker, status=status, duration_ms=ms, error=error
            )
        )

    def _sleep_for(self) -> float:
        """Seconds until the next tick of a served plugin's job, at most :data:`POLL_CAP`."""
        served = sorted(self.mounts.mounted)
        if not served:
            return POLL_CAP
        with contextlib.suppress(Exception), connect_read(self.engine) as conn:
            soonest = conn.execute(
                select(func.min(job_schedules.c.next_at)).where(
                    job_schedules.c.plugin_id.in_(served)
                )
            ).scalar()
            if soonest is not None:
                now = datetime.now(UTC).replace(tzinfo=None)
                wait: float = (soonest - now).total_seconds()
                if wait <= 0:  # due yet not taken just now (a failure?): look again, no spin
                    return 0.25
                return min(wait + 0.005, POLL_CAP)
        return POLL_CAP
