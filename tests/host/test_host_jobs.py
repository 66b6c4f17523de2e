"""Scheduled jobs end to end in an embedding app: a job every second runs through
``sdk.session()``, in the panel or in the plugin's sandboxed process; failures and overruns
are recorded; "run now" over the API and the CLI; the CLI runs a job itself when no panel
serves.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest
from fastapi import FastAPI, Header, HTTPException
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from plugdock import HostAuth, HostUser, PluginHost
from plugdock.config import load_settings
from plugdock.core.db import connect_read
from plugdock.instance import jobs
from support import make_plugin, pack_into

JOBS = (
    "import time\n\nfrom sqlalchemy import text\n\nfrom plugdock import sdk\n\n\n"
    "def beat(run: sdk.JobRun) -> None:\n"
    "    with sdk.session() as db:\n"
    "        db.execute(text('INSERT INTO clock_beats (run, job, tick, manual) "
    "VALUES (:r, :j, :t, :m)'), {'r': run.run_id, 'j': run.job, "
    "'t': run.scheduled_for.isoformat(), 'm': int(run.manual)})\n\n\n"
    "def broken(run: sdk.JobRun) -> None:\n"
    "    raise RuntimeError('the gateway is down')\n\n\n"
    "async def slow(run: sdk.JobRun) -> None:\n"
    "    import asyncio\n\n"
    "    await asyncio.sleep(30)\n"
)
TABLE = (
    "CREATE TABLE clock_beats (id INTEGER PRIMARY KEY AUTOINCREMENT, run INTEGER NOT NULL,"
    " job TEXT NOT NULL, tick TEXT NOT NULL, manual INTEGER NOT NULL);\n"
)
NEVER = "0 0 1 1 *"  # once a year: only "run now" runs it during a test
CLOCK_JOBS = [
    {"id": "beat", "cron": "* * * * * *", "handler": "jobs:beat"},  # every second
    {"id": "report", "cron": NEVER, "handler": "jobs:beat", "timezone": "Europe/Paris"},
    {"id": "broken", "cron": NEVER, "handler": "jobs:broken"},
    {"id": "slow", "cron": NEVER, "handler": "jobs:slow"},
]
USERS = {
    "alice-token": HostUser(id=1, username="alice", is_admin=True),
    "bob-token": HostUser(id=2, username="bob"),
}
ALICE = {"Authorization": "Bearer alice-token"}


def current_user(authorization: str | None = Header(None)) -> HostUser | None:
    if authorization is None:
        return None
    user = USERS.get(authorization.removeprefix("Bearer "))
    if user is None:
        raise HTTPException(401, "unknown token")
    return user


def build(tmp_path: Path, url: str) -> tuple[FastAPI, PluginHost]:
    app = FastAPI()
    settings = load_settings(home=tmp_path / "instance", plugin_local_dir=tmp_path / "modules")
    host = PluginHost(HostAuth(current_user=current_user), settings=settings, database_url=url)
    host.mount(app)
    return app, host


def pack_clock(tmp_path: Path) -> None:
    clock = make_plugin(
        tmp_path / "src",
        "clock",
        up_sql=TABLE,
        down_sql="DROP TABLE clock_beats;\n",
        extra_files={"backend/jobs.py": JOBS},
        metadata={"jobs": CLOCK_JOBS},
    )
    pack_into(clock, tmp_path / "modules")


def beats(url: str, job: str = "beat") -> list[tuple[int, str, int]]:
    with create_engine(url).connect() as conn:
        rows = conn.execute(
            text("SELECT run, tick, manual FROM clock_beats WHERE job = :j ORDER BY id"),
            {"j": job},
        )
        return [tuple(r) for r in rows]


def history(url: str, job: str) -> list[dict[str, object]]:
    with connect_read(create_engine(url)) as conn:
        return jobs.history(conn, "clock", job)


def wait_for(check: object, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError("not in time")


def plugdock(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "plugdock", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )


@pytest.mark.parametrize(
    "isolation", ["inprocess", pytest.param("process", marks=pytest.mark.processes)]
)
def test_a_job_every_second_runs_each_tick_once_and_run_now_works(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, isolation: str
) -> None:
    monkeypatch.setenv("PLUGDOCK_ISOLATION", isolation)
    monkeypatch.setenv("PLUGDOCK_HOOK_TIMEOUT", "2")  # the bound of a job's run too
    pack_clock(tmp_path)
    url = f"sqlite:///{tmp_path / 'host.db'}"
    app, _host = build(tmp_path, url)
    with TestClient(app) as client:
        done = client.post(
            "/api/v1/marketplace/install", json={"plugin_id": "clock"}, headers=ALICE
        )
        assert done.status_code == 200, done.text

        wait_for(lambda: len(beats(url)) >= 4)
        ran = beats(url)
        ticks = [tick for _run, tick, _manual in ran]
        assert len(set(ticks)) == len(ticks), ticks  # each tick once
        assert all(datetime.fromisoformat(t).microsecond == 0 for t in ticks)
        assert all(manual == 0 for _run, _tick, manual in ran)

        listed = client.get("/api/v1/jobs", headers=ALICE)
        assert listed.status_code == 200, listed.text
        by_id = {job["job_id"]: job for job in listed.json()}
        assert set(by_id) == {"beat", "report", "broken", "slow"}
        assert by_id["beat"]["last_status"] == "ok" and by_id["report"]["last_status"] is None
        assert by_id["report"]["timezone"] == "Europe/Paris"

        # Run now: queued, taken by this panel's worker, recorded as manual.
        for job in ("report", "broken", "slow"):
            queued = client.post(f"/api/v1/jobs/clock/{job}/run", headers=ALICE)
            assert queued.status_code == 202, queued.text
        wait_for(lambda: len(beats(url, "report")) == 1)
        assert beats(url, "report")[0][2] == 1
        wait_for(lambda: [r["status"] for r in history(url, "broken")] == ["failed"])
        assert "the gateway is down" in str(history(url, "broken")[0]["error"])
        wait_for(lambda: [r["status"] for r in history(url, "slow")] == ["timeout"])
        assert "ran over its 2 s" in str(history(url, "slow")[0]["error"])
        assert int(history(url, "slow")[0]["duration_ms"]) >= 1900  # type: ignore[call-overload]
        # The beat went on while the slow one hung: a slow job never holds another's tick.
        assert history(url, "beat")[0]["status"] in ("ok", "running")

        # Admins only; a cookie-carrying request needs the CSRF header; unknown jobs 404.
        bob = {"Authorization": "Bearer bob-token"}
        assert client.get("/api/v1/jobs", headers=bob).status_code == 403
        assert client.post("/api/v1/jobs/clock/report/run", headers=bob).status_code == 403
        forged = client.post(
            "/api/v1/jobs/clock/report/run", headers={**ALICE, "Cookie": "session=x"}
        )
        assert forged.status_code == 403 and "header" in forged.text
        assert client.post("/api/v1/jobs/clock/nope/run", headers=ALICE).status_code == 404
        assert client.post("/api/v1/jobs/Clock/x/run", headers=ALICE).status_code == 422
        runs = client.get("/api/v1/jobs/clock/report/runs", headers=ALICE)
        assert [r["manual"] for r in runs.json()] == [True]

        # Disabled: its jobs pause. Uninstalled: they go, with their history.
        assert client.post("/api/v1/marketplace/disable/clock", headers=ALICE).status_code == 200
        paused_run = client.post("/api/v1/jobs/clock/report/run", headers=ALICE)
        assert paused_run.status_code == 409 and "paused" in paused_run.text
        time.sleep(1.5)  # a run taken just before the disable may still finish
        paused = len(beats(url))
        time.sleep(2.5)
        assert len(beats(url)) == paused
        assert (
            client.delete("/api/v1/marketplace/uninstall/clock", headers=ALICE).status_code == 200
        )
        assert client.get("/api/v1/jobs", headers=ALICE).json() == []
        assert history(url, "beat") == []


@pytest.mark.parametrize(
    "isolation", ["inprocess", pytest.param("process", marks=pytest.mark.processes)]
)
def test_the_cli_lists_jobs_runs_one_itself_when_no_panel_serves_and_queues_otherwise(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, isolation: str
) -> None:
    """With no panel, ``jobs run`` serves the plugin as a panel would (its sandbox in
    process mode) and runs the job there."""
    monkeypatch.setenv("PLUGDOCK_ISOLATION", isolation)
    pack_clock(tmp_path)
    url = f"sqlite:///{tmp_path / 'host.db'}"
    env = os.environ | {
        "PLUGDOCK_HOME": str(tmp_path / "instance"),
        "PLUGIN_LOCAL_DIR": str(tmp_path / "modules"),
        "DATABASE_URL": url,
        "COLUMNS": "250",  # rich's tables, unwrapped
    }
    plan = plugdock(env, "install", "clock", "--dry-run")
    assert "clock schedules report: 0 0 1 1 * (Europe/Paris) runs jobs:beat" in plan.stdout
    assert plugdock(env, "install", "clock").returncode == 0

    listed = plugdock(env, "jobs", "list")
    assert listed.returncode == 0, listed.stderr
    assert "clock.report" in listed.stdout and "Europe/Paris" in listed.stdout

    ran = plugdock(env, "jobs", "run", "clock.report")
    assert ran.returncode == 0, ran.stderr
    assert "no panel is serving: ran clock.report here" in ran.stdout and ": ok" in ran.stdout
    assert [manual for _run, _tick, manual in beats(url, "report")] == [1]
    failed = plugdock(env, "jobs", "run", "clock.broken")
    assert failed.returncode == 1 and "the gateway is down" in failed.stderr
    shown = plugdock(env, "jobs", "history", "clock.broken")
    assert "failed" in shown.stdout and "the gateway is down" in shown.stdout

    for wrong, message in [
        ("clock", "<plugin>.<job>"),
        ("clock.nope", "no job clock.nope"),
        ("ghost.beat", "ghost is not installed"),
    ]:
        refused = plugdock(env, "jobs", "run", wrong)
        assert refused.returncode == 1 and message in refused.stderr, refused.stderr

    # A panel is serving (a live replica in the database): the CLI queues for it instead.
    app, _host = build(tmp_path, url)
    with TestClient(app):
        queued = plugdock(env, "jobs", "run", "clock.report")
        assert queued.returncode == 0, queued.stderr
        assert "queued run" in queued.stdout and "for the serving panel" in queued.stdout
        wait_for(lambda: len(beats(url, "report")) == 2)

    assert plugdock(env, "disable", "clock").returncode == 0
    paused = plugdock(env, "jobs", "run", "clock.report")
    assert paused.returncode == 1 and "disabled" in paused.stderr
    assert "paused" in plugdock(env, "jobs", "list").stdout
