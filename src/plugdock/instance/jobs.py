"""Plugins' scheduled jobs in the database: schedules, claims and the history of runs.

- :func:`set_schedules` writes a plugin's jobs (metadata.json's ``"jobs"``) with each one's
  next tick, in the transaction of the install, upgrade or uninstall that changes them.
- :func:`claim` takes due ticks the way the outbox takes deliveries: no lock is held; a
  worker moves a job's ``next_at`` forward with a conditional ``UPDATE`` (``WHERE next_at =
  <the tick it read>``) and records a run in the same transaction. Only one worker's update
  matches, so each tick runs once across workers and replicas. The new ``next_at`` is the
  first tick after *now*: ticks missed while nothing ran collapse into one late run.
- A disabled plugin's due ticks are moved forward without a run (they neither run nor pile
  up); an uninstalled plugin's schedules and history go with its uninstall.
- A run a worker took and never finished (the worker died) is marked failed when its lease
  runs out, not run again: a job's tick runs at most once, and exactly once normally.
- "Run now" (:func:`queue`) records a queued run that a worker serving the plugin takes.

Every function takes ``now`` (naive UTC, whole seconds): the tests drive the clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, delete, func, insert, select, true, update

from plugdock.core.db import addon_installations, connect_read, job_runs, job_schedules
from plugdock.package.metadata import JobSpec
from plugdock.package.schedule import next_tick

#: Finished runs kept per job (the newest); older ones are trimmed.
HISTORY_KEEP = 200
ABANDONED = "abandoned: the worker running it stopped before it finished"


@dataclass(frozen=True)
class Run:
    """One run a worker took: the job's handler to call, for which tick."""

    id: int
    plugin_id: str
    job_id: str
    handler: str
    scheduled_for: datetime  # naive UTC
    manual: bool


def set_schedules(conn: Connection, plugin_id: str, jobs: Sequence[JobSpec], now: datetime) -> None:
    """What ``plugin_id`` schedules from now on, in the caller's transaction. A job whose
    cron and zone did not change keeps its next tick; a job that went loses its history."""
    s = job_schedules.c
    before = {
        r.job_id: r
        for r in conn.execute(select(job_schedules).where(s.plugin_id == plugin_id)).all()
    }
    conn.execute(delete(job_schedules).where(s.plugin_id == plugin_id))
    rows = []
    for job in jobs:
        kept = before.get(job.id)
        same = kept is not None and (kept.cron, kept.timezone) == (job.cron, job.timezone)
        rows.append(
            {
                "plugin_id": plugin_id,
                "job_id": job.id,
                "cron": job.cron,
                "timezone": job.timezone,
                "handler": job.handler,
                "next_at": kept.next_at
                if kept is not None and same
                else next_tick(job.cron, job.timezone, now),
            }
        )
    if rows:
        conn.execute(insert(job_schedules), rows)
    r = job_runs.c
    gone = r.job_id.not_in([job.id for job in jobs]) if jobs else true()
    conn.execute(delete(job_runs).where(r.plugin_id == plugin_id, gone))


def claim(
    engine: Engine,
    worker: str,
    *,
    plugins: Iterable[str],
    now: datetime,
    lease: timedelta,
) -> list[Run]:
    """Due ticks and queued runs of ``plugins`` (those this worker serves), each now this
    worker's run; also moves disabled plugins' due ticks on and fails abandoned runs."""
    served = set(plugins)
    s, r = job_schedules.c, job_runs.c
    with connect_read(engine) as conn:
        due = conn.execute(
            select(job_schedules, addon_installations.c.enabled)
            .join(addon_installations, addon_installations.c.plugin_id == s.plugin_id)
            .where(s.next_at <= now)
            .order_by(s.next_at)
        ).all()
        queued = conn.execute(
            select(r.id, r.plugin_id, r.job_id, s.handler, r.scheduled_for)
            .join(job_schedules, (s.plugin_id == r.plugin_id) & (s.job_id == r.job_id))
            .join(addon_installations, addon_installations.c.plugin_id == r.plugin_id)
            .where(r.status == "queued", addon_installations.c.enabled)
            .where(r.plugin_id.in_(sorted(served)))
            .order_by(r.id)
        ).all()
        abandoned = conn.execute(
            select(r.id).where(r.status == "running", r.claimed_until < now).limit(1)
        ).first()
    taken: list[Run] = []
    for row in due:
        runs_here = row.enabled and row.plugin_id in served
        if row.enabled and not runs_here:
            continue  # a worker that serves it takes it
        with engine.begin() as conn:
            moved = conn.execute(
                update(job_schedules)
                .where(s.plugin_id == row.plugin_id, s.job_id == row.job_id)
                .where(s.next_at == row.next_at)  # the tick read above: one worker wins it
                .values(next_at=next_tick(row.cron, row.timezone, now))
            )
            if moved.rowcount != 1 or not runs_here:
                continue  # another worker took it; or disabled: skipped, not piled up
            run_id = _record(
                conn, row.plugin_id, row.job_id, row.next_at, False, worker, now, lease
            )
        taken.append(Run(run_id, row.plugin_id, row.job_id, row.handler, row.next_at, False))
    for row in queued:
        with engine.begin() as conn:
            started = conn.execute(
                update(job_runs)
                .where(r.id == row.id, r.status == "queued")
                .values(status="running", claimed_by=worker, claimed_until=now + lease)
                .values(started_at=now)
            )
        if started.rowcount == 1:
            taken.append(
                Run(row.id, row.plugin_id, row.job_id, row.handler, row.scheduled_for, True)
            )
    if abandoned is None:
        return taken  # an idle loop only reads: no write lock every few seconds (SQLite)
    with engine.begin() as conn:
        conn.execute(
            update(job_runs)
            .where(r.status == "running", r.claimed_until < now)
            .values(status="failed", error=ABANDONED, claimed_until=None)
        )
    return taken


def _record(
    conn: Connection,
    plugin_id: str,
    job_id: str,
    scheduled_for: datetime,
    manual: bool,
    worker: str,
    now: datetime,
    lease: timedelta,
) -> int:
    done = conn.execute(
        insert(job_runs).values(
            plugin_id=plugin_id,
            job_id=job_id,
            scheduled_for=scheduled_for,
            manual=manual,
            status="running",
            claimed_by=worker,
            claimed_until=now + lease,
            started_at=now,
        )
    )
    return int(done.inserted_primary_key[0])  # type: ignore[index]


def start_here(
    engine: Engine, plugin_id: str, job_id: str, worker: str, now: datetime, lease: timedelta
) -> Run:
    """A "run now" that the caller runs itself (the CLI, with no panel serving)."""
    with engine.begin() as conn:
        handler = _handler(conn, plugin_id, job_id)
        run_id = _record(conn, plugin_id, job_id, now, True, worker, now, lease)
    return Run(run_id, plugin_id, job_id, handler, now, True)


def queue(engine: Engine, plugin_id: str, job_id: str, now: datetime) -> int:
    """A "run now" for a worker serving the plugin to take; the run's id."""
    with engine.begin() as conn:
        _handler(conn, plugin_id, job_id)
        done = conn.execute(
            insert(job_runs).values(
                plugin_id=plugin_id, job_id=job_id, scheduled_for=now, manual=True, status="queued"
            )
        )
    return int(done.inserted_primary_key[0])  # type: ignore[index]


def _handler(conn: Connection, plugin_id: str, job_id: str) -> str:
    """The job's handler; NotFoundError if there is no such job, ConflictError while its
    plugin is disabled (a run asked for then would wait, unseen, for the enable)."""
    from plugdock.errors import ConflictError, NotFoundError

    s = job_schedules.c
    found = conn.execute(
        select(s.handler, addon_installations.c.enabled)
        .join(addon_installations, addon_installations.c.plugin_id == s.plugin_id)
        .where(s.plugin_id == plugin_id, s.job_id == job_id)
    ).first()
    if found is None:
        raise NotFoundError(f"no job {plugin_id}.{job_id} (see plugdock jobs list)")
    if not found.enabled:
        raise ConflictError(f"{plugin_id} is disabled: its jobs are paused (enable it first)")
    return str(found.handler)


def finish(
    engine: Engine,
    run: Run,
    worker: str,
    *,
    status: str,
    duration_ms: int,
    error: str | None,
) -> None:
    """Record how ``run`` ended: ok, failed or timeout (only if this worker still holds it)."""
    r = job_runs.c
    with engine.begin() as conn:
        conn.execute(
            update(job_runs)
            .where(r.id == run.id, r.claimed_by == worker, r.status == "running")
            .values(
                status=status,
                duration_ms=duration_ms,
                error=None if error is None else error[:2000],
                claimed_until=None,
            )
        )


def trim(engine: Engine, keep: int = HISTORY_KEEP) -> None:
    """Forget all but the newest ``keep`` finished runs of each job."""
    r = job_runs.c
    with engine.begin() as conn:
        jobs = conn.execute(select(r.plugin_id, r.job_id).distinct()).all()
        for plugin_id, job_id in jobs:
            oldest_kept = conn.execute(
                select(r.id)
                .where(r.plugin_id == plugin_id, r.job_id == job_id)
                .order_by(r.id.desc())
                .offset(keep - 1)
                .limit(1)
            ).scalar()
            if oldest_kept is not None:
                conn.execute(
                    delete(job_runs).where(
                        r.plugin_id == plugin_id,
                        r.job_id == job_id,
                        r.id < oldest_kept,
                        r.status.not_in(["queued", "running"]),
                    )
                )


def list_jobs(conn: Connection) -> list[dict[str, Any]]:
    """Every installed plugin's jobs: schedule, next tick, enabled, and the last run."""
    s, r = job_schedules.c, job_runs.c
    rows = conn.execute(
        select(job_schedules, addon_installations.c.enabled)
        .join(addon_installations, addon_installations.c.plugin_id == s.plugin_id)
        .order_by(s.plugin_id, s.job_id)
    ).all()
    last_ids = (
        select(func.max(r.id)).where(r.status.not_in(["queued"])).group_by(r.plugin_id, r.job_id)
    )
    last = {
        (row.plugin_id, row.job_id): row
        for row in conn.execute(select(job_runs).where(r.id.in_(last_ids))).all()
    }
    found = []
    for row in rows:
        run = last.get((row.plugin_id, row.job_id))
        found.append(
            {
                "plugin_id": row.plugin_id,
                "job_id": row.job_id,
                "cron": row.cron,
                "timezone": row.timezone,
                "handler": row.handler,
                "enabled": bool(row.enabled),
                "next_at": row.next_at,
                "last_status": run.status if run else None,
                "last_started_at": run.started_at if run else None,
                "last_error": run.error if run else None,
            }
        )
    return found


def history(
    conn: Connection, plugin_id: str | None = None, job_id: str | None = None, limit: int = 50
) -> list[dict[str, Any]]:
    """The newest runs (of one plugin's job, if given), newest first."""
    r = job_runs.c
    query = select(job_runs).order_by(r.id.desc()).limit(limit)
    if plugin_id is not None:
        query = query.where(r.plugin_id == plugin_id)
    if job_id is not None:
        query = query.where(r.job_id == job_id)
    return [
        {
            "id": row.id,
            "plugin_id": row.plugin_id,
            "job_id": row.job_id,
            "scheduled_for": row.scheduled_for,
            "manual": bool(row.manual),
            "status": row.status,
            "started_at": row.started_at,
            "duration_ms": row.duration_ms,
            "error": row.error,
        }
        for row in conn.execute(query).all()
    ]
