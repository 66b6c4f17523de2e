"""Scheduled jobs in the database on SQLite, PostgreSQL and MariaDB, with a clock we drive.

The scheduler of each worker is only a loop around these calls, so the guarantees live
here: a tick is claimed by one worker only, missed ticks collapse into one run, a disabled
plugin's ticks neither run nor pile up, an uninstall takes schedules and history away, a
"run now" is taken once, an abandoned run is failed (not run twice), history is trimmed.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from plugdock.core.db import job_runs, job_schedules
from plugdock.errors import ConflictError, NotFoundError, PackageError
from plugdock.installer import Installer
from plugdock.instance import jobs
from plugdock.package.metadata import parse_metadata
from support import make_plugin, pack_into

LEASE = timedelta(seconds=60)
T0 = datetime(2030, 1, 1, 8, 0, 0)  # naive UTC, as every core table stores time
MINUTELY = {"id": "tick", "cron": "* * * * *", "handler": "jobs:tick"}
DAILY_PARIS = {
    "id": "reminders",
    "cron": "0 9 * * *",
    "handler": "jobs:reminders",
    "timezone": "Europe/Paris",
}


@pytest.fixture
def scheduled(installer: Installer, tmp_path: Path) -> Installer:
    """``clock`` with a minutely job and a daily one at 09:00 Paris time."""
    folder = make_plugin(
        tmp_path / "src",
        "clock",
        extra_files={"backend/jobs.py": "def tick(run):\n    pass\n\nreminders = tick\n"},
        metadata={"jobs": [MINUTELY, DAILY_PARIS]},
    )
    pack_into(folder, installer.settings.plugin_local_dir)
    installer.install("clock")
    daily = schedule(installer)["reminders"]  # written by the install: 09:00 in Paris, in UTC
    assert (daily.hour, daily.minute, daily.second) in {(8, 0, 0), (7, 0, 0)}  # winter, summer
    set_next(installer, "reminders", T0 + timedelta(days=1))  # out of the tests' way
    return installer


def set_next(installer: Installer, job_id: str, when: datetime) -> None:
    with installer.engine.begin() as conn:
        conn.execute(
            job_schedules.update().where(job_schedules.c.job_id == job_id).values(next_at=when)
        )


def schedule(installer: Installer) -> dict[str, datetime]:
    with installer.engine.connect() as conn:
        rows = conn.execute(select(job_schedules.c.job_id, job_schedules.c.next_at)).all()
    return {job_id: next_at for job_id, next_at in rows}


def runs(installer: Installer) -> list[tuple[str, str]]:
    with installer.engine.connect() as conn:
        return [(r["job_id"], r["status"]) for r in jobs.history(conn, limit=1000)]


def claim(installer: Installer, worker: str, now: datetime) -> list[jobs.Run]:
    return jobs.claim(installer.engine, worker, plugins={"clock"}, now=now, lease=LEASE)


def test_the_install_writes_each_jobs_next_tick_in_its_time_zone(scheduled: Installer) -> None:
    assert schedule(scheduled)["tick"].second == 0  # the next whole minute after the install
    with scheduled.engine.connect() as conn:
        listed = {row["job_id"]: row for row in jobs.list_jobs(conn)}
    assert listed["reminders"]["timezone"] == "Europe/Paris"
    assert listed["tick"]["last_status"] is None and listed["tick"]["enabled"] is True


def test_each_tick_is_claimed_by_one_worker_and_runs_once(scheduled: Installer) -> None:
    set_next(scheduled, "tick", T0)
    set_next(scheduled, "reminders", T0 + timedelta(days=1))
    assert claim(scheduled, "w1", T0 - timedelta(seconds=1)) == []  # not due yet

    first = claim(scheduled, "w1", T0)
    second = claim(scheduled, "w2", T0)  # the same moment, another worker or replica
    assert [(r.job_id, r.scheduled_for, r.manual) for r in first] == [("tick", T0, False)]
    assert second == []
    assert schedule(scheduled)["tick"] == T0 + timedelta(minutes=1)  # moved on past now

    jobs.finish(scheduled.engine, first[0], "w2", status="ok", duration_ms=3, error=None)
    assert runs(scheduled) == [("tick", "running")]  # only the holder records the outcome
    jobs.finish(scheduled.engine, first[0], "w1", status="ok", duration_ms=3, error=None)
    assert runs(scheduled) == [("tick", "ok")]


def test_a_claim_that_lost_the_race_records_nothing(scheduled: Installer) -> None:
    """Two workers read the same due tick; only the one whose UPDATE still matches runs it."""
    set_next(scheduled, "tick", T0)
    winner = claim(scheduled, "w1", T0 + timedelta(seconds=5))
    assert len(winner) == 1
    set_next(scheduled, "tick", T0)  # as if w2 had read the old tick before w1's update...
    with scheduled.engine.begin() as conn:  # ...and w1 then moved it
        conn.execute(job_schedules.update().values(next_at=T0 + timedelta(minutes=1)))
    assert claim(scheduled, "w2", T0 + timedelta(seconds=5)) == []
    assert len(runs(scheduled)) == 1


def test_missed_ticks_run_once_at_start_not_once_each(scheduled: Installer) -> None:
    set_next(scheduled, "tick", T0)
    later = T0 + timedelta(hours=5, seconds=30)  # nothing ran for five hours: 300 ticks missed
    taken = claim(scheduled, "w1", later)
    assert [(r.job_id, r.scheduled_for) for r in taken] == [("tick", T0)]
    assert schedule(scheduled)["tick"] == datetime(2030, 1, 1, 13, 1, 0)  # the next after now
    assert claim(scheduled, "w1", later) == []


def test_a_disabled_plugins_jobs_neither_run_nor_pile_up(scheduled: Installer) -> None:
    set_next(scheduled, "tick", T0)
    scheduled.disable("clock")
    with pytest.raises(ConflictError, match="clock is disabled: its jobs are paused"):
        jobs.queue(scheduled.engine, "clock", "tick", T0)
    assert claim(scheduled, "w1", T0 + timedelta(minutes=30, seconds=1)) == []
    assert schedule(scheduled)["tick"] == T0 + timedelta(minutes=31)  # skipped, not queued up
    assert runs(scheduled) == []
    scheduled.enable("clock")
    assert claim(scheduled, "w1", T0 + timedelta(minutes=30, seconds=2)) == []  # none owed
    taken = claim(scheduled, "w1", T0 + timedelta(minutes=31))
    assert [r.job_id for r in taken] == ["tick"]


def test_a_worker_takes_only_the_jobs_of_plugins_it_serves(scheduled: Installer) -> None:
    set_next(scheduled, "tick", T0)
    elsewhere = jobs.claim(scheduled.engine, "w1", plugins=set(), now=T0, lease=LEASE)
    assert elsewhere == [] and schedule(scheduled)["tick"] == T0  # left for a serving worker
    assert [r.job_id for r in claim(scheduled, "w2", T0)] == ["tick"]


def test_uninstall_removes_schedules_and_history(scheduled: Installer) -> None:
    set_next(scheduled, "tick", T0)
    claim(scheduled, "w1", T0)
    jobs.queue(scheduled.engine, "clock", "tick", T0)
    scheduled.uninstall("clock")
    assert schedule(scheduled) == {}
    assert runs(scheduled) == []
    with pytest.raises(NotFoundError, match=r"no job clock\.tick"):
        jobs.queue(scheduled.engine, "clock", "tick", T0)


def test_run_now_is_queued_and_taken_by_one_serving_worker(scheduled: Installer) -> None:
    set_next(scheduled, "tick", T0 + timedelta(days=1))
    set_next(scheduled, "reminders", T0 + timedelta(days=1))
    run_id = jobs.queue(scheduled.engine, "clock", "reminders", T0)
    assert jobs.claim(scheduled.engine, "w0", plugins=set(), now=T0, lease=LEASE) == []
    first = claim(scheduled, "w1", T0)
    assert [(r.id, r.job_id, r.manual, r.handler) for r in first] == [
        (run_id, "reminders", True, "jobs:reminders")
    ]
    assert claim(scheduled, "w2", T0) == []
    with pytest.raises(NotFoundError):
        jobs.queue(scheduled.engine, "clock", "nope", T0)


def test_an_abandoned_run_is_failed_when_its_lease_runs_out_not_run_again(
    scheduled: Installer,
) -> None:
    set_next(scheduled, "tick", T0)
    set_next(scheduled, "reminders", T0 + timedelta(days=1))
    claim(scheduled, "dead-worker", T0)  # and then the worker died
    claim(scheduled, "w2", T0 + timedelta(seconds=30))  # within the lease: still running
    assert runs(scheduled) == [("tick", "running")]
    taken = claim(scheduled, "w2", T0 + LEASE + timedelta(seconds=1))
    assert [r.scheduled_for for r in taken] == [T0 + timedelta(minutes=1)]  # the next tick only
    with scheduled.engine.connect() as conn:
        abandoned = jobs.history(conn, limit=10)[-1]
    assert abandoned["status"] == "failed" and abandoned["error"] == jobs.ABANDONED


def test_old_history_is_trimmed_to_the_newest_runs(scheduled: Installer) -> None:
    set_next(scheduled, "reminders", T0 + timedelta(days=1))
    for minute in range(6):
        now = T0 + timedelta(minutes=minute)
        set_next(scheduled, "tick", now)
        for run in claim(scheduled, "w1", now):
            jobs.finish(scheduled.engine, run, "w1", status="ok", duration_ms=1, error=None)
    jobs.queue(scheduled.engine, "clock", "tick", T0)  # queued: never trimmed
    jobs.trim(scheduled.engine, keep=3)
    with scheduled.engine.connect() as conn:
        left = conn.execute(select(job_runs.c.status).order_by(job_runs.c.id)).scalars().all()
    assert left == ["ok", "ok", "queued"]


def test_an_upgrade_keeps_an_unchanged_jobs_tick_and_drops_a_removed_jobs_history(
    scheduled: Installer, tmp_path: Path
) -> None:
    set_next(scheduled, "tick", T0)
    set_next(scheduled, "reminders", T0)
    claim(scheduled, "w1", T0)
    folder = make_plugin(
        tmp_path / "src2",
        "clock",
        version="1.1.0",
        extra_files={"backend/jobs.py": "def tick(run):\n    pass\n"},
        metadata={"jobs": [MINUTELY]},
    )
    pack_into(folder, scheduled.settings.plugin_local_dir)
    scheduled.upgrade("clock")
    assert set(schedule(scheduled)) == {"tick"}
    assert schedule(scheduled)["tick"] == T0 + timedelta(minutes=1)  # kept
    assert [job for job, _status in runs(scheduled)] == ["tick"]


# -- metadata (no database) --------------------------------------------------------------------


def meta_with(jobs_value: object) -> str:
    import json

    return json.dumps({"id": "clock", "name": "Clock", "version": "1.0.0", "jobs": jobs_value})


@pytest.mark.parametrize(
    ("jobs_value", "message"),
    [
        ([{"id": "a", "cron": "61 * * * *", "handler": "jobs:a"}], "not a cron expression"),
        ([{"id": "a", "cron": "* * * * *", "handler": "a"}], "must be 'module:function'"),
        (
            [{"id": "a", "cron": "* * * * *", "handler": "jobs:a", "timezone": "Mars/Base"}],
            "'Mars/Base' is not a time zone",
        ),
        ([{"id": "A-1", "cron": "* * * * *", "handler": "jobs:a"}], "is not a job id"),
        ([MINUTELY, MINUTELY], "job ids must be unique: tick appears twice"),
        ([{**MINUTELY, "id": f"j{i}"} for i in range(21)], "at most 20"),
        ([{**MINUTELY, "when": "now"}], "unknown field"),
    ],
)
def test_bad_jobs_are_refused_with_a_clear_message(jobs_value: object, message: str) -> None:
    with pytest.raises(PackageError, match=message):
        parse_metadata(meta_with(jobs_value))


def test_a_six_field_cron_has_seconds_first_and_time_zones_follow_daylight_saving() -> None:
    from plugdock.package.schedule import next_tick

    assert next_tick("* * * * * *", "UTC", T0) == T0 + timedelta(seconds=1)
    assert next_tick("30 * * * * *", "UTC", T0) == T0 + timedelta(seconds=30)
    assert next_tick("*/15 * * * * *", "UTC", T0 + timedelta(seconds=1)) == T0 + timedelta(
        seconds=15
    )
    assert next_tick("0 9 * * *", "Europe/Paris", datetime(2030, 1, 1)) == datetime(2030, 1, 1, 8)
    assert next_tick("0 9 * * *", "Europe/Paris", datetime(2030, 7, 1)) == datetime(2030, 7, 1, 7)
