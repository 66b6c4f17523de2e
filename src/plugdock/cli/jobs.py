"""``plugdock jobs ...``: plugins' scheduled jobs, their history, and "run now".

``jobs run <plugin>.<job>`` queues the run for the serving panel when one is live (any
replica with a recent heartbeat that has not failed to serve the plugin); with none, the
CLI runs it itself, through the same runner a panel uses (in the plugin's sandbox in
process mode), and records it in the same history. It says which it did.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from plugdock.config import Settings
    from plugdock.instance.jobs import Run
    from plugdock.instance.registry import Installation


def register(app: typer.Typer) -> None:
    """Add the ``jobs`` command group to the ``plugdock`` command."""
    from plugdock.cli.style import HelpStyle

    jobs_app = typer.Typer(
        help="Plugins' scheduled jobs: schedules, history, run now.",
        no_args_is_help=True,
        cls=HelpStyle,
    )

    @jobs_app.command("list")
    def list_jobs() -> None:
        """Every installed plugin's jobs: cron, time zone, next tick (UTC), last result."""
        from rich.console import Console
        from rich.table import Table

        from plugdock.core.db import connect_read, make_engine
        from plugdock.instance import jobs

        with connect_read(make_engine(_settings().db_url)) as conn:
            rows = jobs.list_jobs(conn)
        table = Table("job", "cron", "time zone", "next tick (UTC)", "last result", "last error")
        for row in rows:
            paused = "" if row["enabled"] else " (paused: plugin disabled)"
            last = row["last_status"] or "-"
            if row["last_started_at"] is not None:
                last = f"{last} at {row['last_started_at']:%Y-%m-%d %H:%M:%S}"
            table.add_row(
                f"{row['plugin_id']}.{row['job_id']}",
                row["cron"],
                row["timezone"],
                f"{row['next_at']:%Y-%m-%d %H:%M:%S}{paused}",
                last,
                (row["last_error"] or "")[:120],
            )
        Console().print(table if rows else "no scheduled jobs (plugins declare them)")

    @jobs_app.command("history")
    def history(
        job: str | None = typer.Argument(None, help="<plugin>.<job>; all jobs if left out."),
        limit: int = typer.Option(50, min=1, max=1000, help="How many, newest first."),
    ) -> None:
        """The newest runs: tick, start, duration, result and error."""
        from rich.console import Console
        from rich.table import Table

        from plugdock.core.db import connect_read, make_engine
        from plugdock.instance import jobs

        plugin_id, job_id = _split(job) if job is not None else (None, None)
        with connect_read(make_engine(_settings().db_url)) as conn:
            rows = jobs.history(conn, plugin_id, job_id, limit)
        table = Table("run", "job", "scheduled for", "started", "ms", "result", "error")
        for row in rows:
            started = row["started_at"]
            table.add_row(
                str(row["id"]),
                f"{row['plugin_id']}.{row['job_id']}",
                f"{row['scheduled_for']:%Y-%m-%d %H:%M:%S}" + (" (now)" if row["manual"] else ""),
                "-" if started is None else f"{started:%Y-%m-%d %H:%M:%S}",
                "-" if row["duration_ms"] is None else str(row["duration_ms"]),
                row["status"],
                (row["error"] or "")[:120],
            )
        Console().print(table if rows else "no runs yet")

    @jobs_app.command("run")
    def run(job: str = typer.Argument(..., help="<plugin>.<job>")) -> None:
        """Run a job now: queued for the serving panel, or run here when none is serving."""
        from plugdock.core.db import make_engine, utcnow
        from plugdock.errors import PlugdockError
        from plugdock.instance import jobs
        from plugdock.instance.registry import installations_by_id
        from plugdock.runtime.replicas import list_replicas

        plugin_id, job_id = _split(job)
        settings = _settings()
        engine = make_engine(settings.db_url)
        row = installations_by_id(engine).get(plugin_id)
        if row is None:
            raise PlugdockError(f"{plugin_id} is not installed")
        if not row.enabled:
            raise PlugdockError(f"{plugin_id} is disabled: its jobs are paused (enable it first)")
        replicas = list_replicas(engine, settings.replica_stale_after)
        if any(r.live and plugin_id not in r.failures for r in replicas):
            run_id = jobs.queue(engine, plugin_id, job_id, utcnow())
            typer.echo(
                f"queued run {run_id} of {job} for the serving panel "
                f"(see plugdock jobs history {job})"
            )
            return
        status, ms, error, ran = _run_here(settings, engine, row, job_id)
        typer.echo(f"no panel is serving: ran {job} here (run {ran.id}): {status} in {ms} ms")
        if error is not None:
            raise PlugdockError(f"{job}: {error}")

    app.add_typer(jobs_app, name="jobs")


def _split(job: str) -> tuple[str, str]:
    from plugdock.errors import PlugdockError

    plugin_id, dot, job_id = job.partition(".")
    if not dot or not plugin_id or not job_id:
        raise PlugdockError(f"{job!r}: name a job as <plugin>.<job> (see plugdock jobs list)")
    return plugin_id, job_id


def _run_here(
    settings: Settings, engine: Engine, row: Installation, job_id: str
) -> tuple[str, int, str | None, Run]:
    """Serve the plugin in this process's runner (its sandbox in process mode), run the job."""
    import asyncio
    import os
    import uuid

    from fastapi import FastAPI

    from plugdock.core.db import utcnow
    from plugdock.errors import PlugdockError
    from plugdock.instance import jobs
    from plugdock.runtime.jobs import lease_for, run_job
    from plugdock.runtime.mounts import Mounts

    async def serve_and_run() -> tuple[str, int, str | None, Run]:
        mounts = Mounts(FastAPI(), settings, engine)
        plugin_id = row.plugin_id
        try:
            mounts.mount(row)
            await mounts.runner.settled()
            trouble = mounts.failed.get(plugin_id)
            mounted = mounts.mounted.get(plugin_id)
            if trouble is None and mounted is not None:
                down = mounts.runner.trouble(mounted)
                trouble = None if down is None else ("", down)
            if trouble is not None or mounted is None:
                raise PlugdockError(f"{plugin_id} cannot be served here: {trouble and trouble[1]}")
            worker = f"cli-{os.getpid()}-{uuid.uuid4().hex[:8]}"
            timeout = settings.hook_timeout
            lease = lease_for(timeout)
            run = jobs.start_here(engine, plugin_id, job_id, worker, utcnow(), lease)
            status, ms, error = await run_job(mounts.runner, mounted, run, timeout)
            jobs.finish(engine, run, worker, status=status, duration_ms=ms, error=error)
            return status, ms, error, run
        finally:
            for served in list(mounts.mounted):
                mounts.unmount(served)
            await mounts.runner.close()

    return asyncio.run(serve_and_run())


def _settings() -> Settings:
    from plugdock.config import load_settings

    return load_settings()
