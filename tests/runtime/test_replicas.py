"""Replicas that share only the database: separate instance folders and ports, one database.

Only replica A has the plugin in its source; the others get the code from the database's
package store. Every change answered by one replica waits until the others serve it, so
the tests read the other replicas right after the answer, without polling.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, select, text, update

from db_servers import MARIADB_URL, POSTGRES_URL, _scratch_server_database
from panel import ADMIN_PASSWORD, Panel, free_port
from plugdock.core.db import plugin_package_chunks, plugin_packages
from support import make_plugin, pack_into

# Every test runs replicas: `plugdock serve` on loopback.
pytestmark = pytest.mark.server

VERSION_ROUTES = (
    "from fastapi import APIRouter\n\n"
    "router = APIRouter(prefix='/api/v1/echo')\n\n\n"
    "@router.get('/version')\ndef version() -> dict:\n    return {'version': '%s'}\n"
)


def echo_plugin(parent: Path, version: str) -> Path:
    """'echo', whose one route says which version answers."""
    return make_plugin(
        parent,
        "echo",
        version,
        metadata={"backend": {"routes": ["/api/v1/echo/*"]}},
        extra_files={"backend/routes.py": VERSION_ROUTES % version},
    )


@pytest.fixture
def postgres_db() -> Iterator[str]:
    yield from _scratch_server_database(POSTGRES_URL, "postgresql")


@pytest.fixture
def mariadb_db() -> Iterator[str]:
    yield from _scratch_server_database(MARIADB_URL, "mariadb")


def start_replica(
    folder: Path,
    database_url: str,
    *,
    modules: Path | None = None,
    extra_env: dict[str, str] | None = None,
    wait: bool = True,
) -> Panel:
    """``plugdock serve`` with its own instance folder and port (and, for A, a source)."""
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLUGDOCK_")} | {
        "PLUGDOCK_HOME": str(folder / "instance"),
        "PLUGIN_LOCAL_DIR": str(modules or folder / "modules"),  # B and C: an empty source
        "DATABASE_URL": database_url,
        "PLUGDOCK_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "PLUGDOCK_SYNC_INTERVAL": "0.2",
        "PLUGDOCK_CONVERGE_TIMEOUT": "30",
    }
    env |= extra_env or {}
    log = folder / f"serve-{port}.log"
    with log.open("a") as handle:
        process = subprocess.Popen(
            [sys.executable, "-m", "plugdock", "serve", "--port", str(port)],
            env=env,
            stdout=handle,
            stderr=subprocess.STDOUT,
        )
    panel = Panel(f"http://127.0.0.1:{port}", process, env, log)
    if wait:
        wait_healthy(panel)
    return panel


def wait_healthy(panel: Panel) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if panel.process.poll() is not None:
            raise RuntimeError(f"replica exited early:\n{panel.output()}")
        try:
            if httpx.get(f"{panel.url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    panel.stop()
    raise RuntimeError(f"replica did not start:\n{panel.output()}")


def echo_version(panel: Panel) -> str | int:
    """The version the replica's echo route answers with, or the HTTP status."""
    response = httpx.get(f"{panel.url}/api/v1/echo/version", timeout=10)
    return response.json()["version"] if response.status_code == 200 else response.status_code


def install_echo_on_both(a: Panel, b: Panel) -> httpx.Client:
    """Install echo through A; its answer must count B as serving it. Returns A's admin."""
    admin = a.client(a.login())
    installed = admin.post("/api/v1/marketplace/install", json={"plugin_id": "echo"})
    assert installed.status_code == 200, installed.text
    assert installed.json()["replicas"] == {"converged": 2, "total": 2}
    assert echo_version(b) == "1.0.0"
    return admin


def code_folders(panel: Panel, plugin_id: str) -> list[str]:
    addons = Path(panel.env["PLUGDOCK_HOME"]) / "addons"
    return sorted(
        k
        for k in ("backend", "frontend", "migrations", "manifest")
        if (addons / k / plugin_id).exists()
    )


def stored_packages(database_url: str) -> int:
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            return len(conn.execute(select(plugin_packages.c.sha256)).all())
    finally:
        engine.dispose()


def test_install_upgrade_uninstall_reach_every_replica(tmp_path: Path, postgres_db: str) -> None:
    modules = tmp_path / "modules"
    pack_into(echo_plugin(tmp_path / "src1", "1.0.0"), modules)
    a = start_replica(tmp_path / "a", postgres_db, modules=modules)
    b = start_replica(tmp_path / "b", postgres_db)
    c: Panel | None = None
    try:
        admin = a.client(a.login())
        installed = admin.post("/api/v1/marketplace/install", json={"plugin_id": "echo"})
        assert installed.status_code == 200, installed.text
        assert installed.json()["replicas"] == {"converged": 2, "total": 2}
        assert echo_version(a) == echo_version(b) == "1.0.0"
        assert code_folders(b, "echo") == ["backend", "frontend", "manifest", "migrations"]

        # C was down during the install: it fetches the code before it answers at all.
        c = start_replica(tmp_path / "c", postgres_db)
        assert echo_version(c) == "1.0.0"
        assert httpx.get(f"{c.url}/readyz").status_code == 200

        listed = admin.get("/api/v1/marketplace/installed").json()
        assert listed[0]["replicas"]["converged"] == listed[0]["replicas"]["total"] == 3
        replicas = admin.get("/api/v1/marketplace/replicas").json()
        assert len(replicas) == 3 and all(r["converged"] for r in replicas)

        pack_into(echo_plugin(tmp_path / "src2", "1.1.0"), modules)
        upgraded = admin.post("/api/v1/marketplace/upgrade", json={"plugin_id": "echo"})
        assert upgraded.status_code == 200, upgraded.text
        assert upgraded.json()["replicas"] == {"converged": 3, "total": 3}
        assert [echo_version(p) for p in (a, b, c)] == ["1.1.0"] * 3
        assert stored_packages(postgres_db) == 1  # 1.0.0's package went with its row

        disabled = admin.post("/api/v1/marketplace/disable/echo")
        assert disabled.json()["replicas"] == {"converged": 3, "total": 3}
        assert [echo_version(p) for p in (a, b, c)] == [404] * 3
        assert admin.post("/api/v1/marketplace/enable/echo").status_code == 200
        assert [echo_version(p) for p in (a, b, c)] == ["1.1.0"] * 3

        # A change made through another replica reaches A as well.
        through_b = b.client(b.login())
        removed = through_b.delete("/api/v1/marketplace/uninstall/echo")
        assert removed.status_code == 200, removed.text
        assert removed.json()["replicas"] == {"converged": 3, "total": 3}
        assert [echo_version(p) for p in (a, b, c)] == [404] * 3
        assert code_folders(b, "echo") == code_folders(c, "echo") == []
        assert stored_packages(postgres_db) == 0
    finally:
        for panel in (a, b, c):
            if panel is not None:
                panel.stop()


def test_a_replica_reports_fetched_code_at_once(tmp_path: Path, postgres_db: str) -> None:
    """A replica fetches another's install in the background after the notification; it
    must report serving it as soon as it does, not on its next timer tick (here: never),
    or the install's answer waits for it to the converge timeout and counts it out."""
    modules = tmp_path / "modules"
    pack_into(echo_plugin(tmp_path / "src", "1.0.0"), modules)
    no_timer = {
        "PLUGDOCK_SYNC_INTERVAL": "3600",
        "PLUGDOCK_REPLICA_HEARTBEAT": "3600",
        "PLUGDOCK_REPLICA_STALE_AFTER": "3600",
        "PLUGDOCK_CONVERGE_TIMEOUT": "10",
    }
    a = start_replica(tmp_path / "a", postgres_db, modules=modules, extra_env=no_timer)
    b = start_replica(tmp_path / "b", postgres_db, extra_env=no_timer)
    try:
        install_echo_on_both(a, b)
    finally:
        a.stop()
        b.stop()


def test_a_stopped_replica_leaves_the_count(tmp_path: Path, postgres_db: str) -> None:
    """A clean stop removes the replica's row; the next change waits for none but the live."""
    modules = tmp_path / "modules"
    pack_into(echo_plugin(tmp_path / "src", "1.0.0"), modules)
    a = start_replica(tmp_path / "a", postgres_db, modules=modules)
    b = start_replica(tmp_path / "b", postgres_db)
    try:
        b.stop()
        admin = a.client(a.login())
        installed = admin.post("/api/v1/marketplace/install", json={"plugin_id": "echo"})
        assert installed.json()["replicas"] == {"converged": 1, "total": 1}
    finally:
        a.stop()
        b.stop()


@pytest.mark.parametrize("point", ["materialize.download", "code.moved_in"])
def test_a_replica_killed_while_fetching_restarts_clean(
    tmp_path: Path, postgres_db: str, point: str
) -> None:
    modules = tmp_path / "modules"
    pack_into(echo_plugin(tmp_path / "src", "1.0.0"), modules)
    a = start_replica(tmp_path / "a", postgres_db, modules=modules)
    b = start_replica(
        tmp_path / "b",
        postgres_db,
        extra_env={"PLUGDOCK_FAILPOINTS": f"{point}=kill", "PLUGDOCK_REPLICA_STALE_AFTER": "3"},
    )
    b2: Panel | None = None
    try:
        admin = a.client(a.login())
        installed = admin.post("/api/v1/marketplace/install", json={"plugin_id": "echo"})
        assert installed.status_code == 200, installed.text
        assert b.process.wait(timeout=30) == -signal.SIGKILL
        # B died mid-way: at most a partial copy without its package marker, never served.
        assert installed.json()["replicas"]["converged"] == 1
        home = Path(b.env["PLUGDOCK_HOME"])
        assert not (home / "addons" / "manifest" / "echo" / "package.sha256").exists()
        assert list((home / "staging").glob("materialize-*"))  # what the kill left behind

        b2 = start_replica(tmp_path / "b", postgres_db)
        assert echo_version(b2) == "1.0.0"
        assert list((home / "staging").iterdir()) == []
        doctor = b2.cli("doctor")
        assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    finally:
        for panel in (a, b, b2):
            if panel is not None:
                panel.stop()


def test_a_corrupted_package_is_refused_and_reported(tmp_path: Path, postgres_db: str) -> None:
    modules = tmp_path / "modules"
    pack_into(echo_plugin(tmp_path / "src", "1.0.0"), modules)
    a = start_replica(tmp_path / "a", postgres_db, modules=modules)
    b: Panel | None = None
    try:
        admin = a.client(a.login())
        assert admin.post("/api/v1/marketplace/install", json={"plugin_id": "echo"}).is_success
        engine = create_engine(postgres_db)
        with engine.begin() as conn:  # one flipped byte in the stored zip
            data = bytearray(conn.execute(select(plugin_package_chunks.c.data)).scalar_one())
            data[len(data) // 2] ^= 0xFF
            conn.execute(update(plugin_package_chunks).values(data=bytes(data)))
        engine.dispose()

        b = start_replica(tmp_path / "b", postgres_db)
        assert echo_version(b) == 404  # refused, not served
        ready = httpx.get(f"{b.url}/readyz")
        assert ready.status_code == 503
        assert "corrupt" in ready.json()["pending"]["echo"]
        assert code_folders(b, "echo") == []

        replicas = {r["address"]: r for r in admin.get("/api/v1/marketplace/replicas").json()}
        reported = replicas[b.url.removeprefix("http://")]
        assert not reported["converged"]
        assert reported["failures"]["echo"].startswith("failed: ")
        listed = admin.get("/api/v1/marketplace/installed").json()[0]["replicas"]
        assert listed["converged"] == 1 and listed["total"] == 2
        assert any("corrupt" in p for p in listed["problems"])

        doctor = a.cli("doctor")
        assert doctor.returncode == 1
        assert "package store: echo: package" in doctor.stderr and "corrupt" in doctor.stderr

        # A's source still has the very bytes: doctor stores them again and wakes B.
        repaired = a.cli("doctor", "--repair")
        assert "stored the package of echo 1.0.0 again" in repaired.stdout, repaired.stderr
        assert repaired.returncode == 0, repaired.stderr
        deadline = time.monotonic() + 30
        while echo_version(b) != "1.0.0":
            assert time.monotonic() < deadline, b.output()
            time.sleep(0.2)
        assert httpx.get(f"{b.url}/readyz").status_code == 200
    finally:
        a.stop()
        if b is not None:
            b.stop()


def test_replicas_converge_on_mariadb_by_polling(tmp_path: Path, mariadb_db: str) -> None:
    """No NOTIFY on MariaDB: replicas notice the new generation on their timer."""
    modules = tmp_path / "modules"
    pack_into(echo_plugin(tmp_path / "src", "1.0.0"), modules)
    a = start_replica(tmp_path / "a", mariadb_db, modules=modules)
    b = start_replica(tmp_path / "b", mariadb_db)
    try:
        admin = install_echo_on_both(a, b)
        removed = admin.delete("/api/v1/marketplace/uninstall/echo")
        assert removed.json()["replicas"] == {"converged": 2, "total": 2}
        assert echo_version(b) == 404
        assert code_folders(b, "echo") == []

        # The sign-in throttle counts in the database: guesses spread over both replicas
        # add up (10 failures per client address), and both refuse the next one.
        for i in range(10):
            guess = httpx.post(
                f"{(a, b)[i % 2].url}/api/v1/auth/login",
                json={"username": "admin", "password": f"wrong-{i}"},
            )
            assert guess.status_code == 401, guess.text
        for replica in (a, b):
            refused = httpx.post(
                f"{replica.url}/api/v1/auth/login",
                json={"username": "admin", "password": "wrong-again"},
            )
            assert refused.status_code == 429, refused.text
    finally:
        a.stop()
        b.stop()


NGINX = "/usr/sbin/nginx"  # Debian's nginx-light (make services installs it)


def start_nginx(folder: Path, upstreams: list[Panel]) -> tuple[str, subprocess.Popen]:
    """A real nginx, round-robin over the replicas; every answer names the replica."""
    folder.mkdir(parents=True)
    port = free_port()
    servers = "".join(f"server {p.url.removeprefix('http://')};" for p in upstreams)
    user = "user root;" if os.geteuid() == 0 else ""
    (folder / "nginx.conf").write_text(
        f"""{user}
worker_processes 1;
daemon off;
pid {folder}/nginx.pid;
error_log {folder}/error.log;
events {{ worker_connections 64; }}
http {{
    access_log {folder}/access.log;
    client_body_temp_path {folder}/body;
    proxy_temp_path {folder}/proxy;
    fastcgi_temp_path {folder}/fastcgi;
    uwsgi_temp_path {folder}/uwsgi;
    scgi_temp_path {folder}/scgi;
    upstream panel {{ {servers} }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://panel;
            proxy_next_upstream off;  # a request reaches one replica: no retry hides a miss
            proxy_set_header Host $host;
            add_header X-Upstream $upstream_addr always;
        }}
    }}
}}
"""
    )
    process = subprocess.Popen(
        [NGINX, "-p", str(folder), "-c", str(folder / "nginx.conf")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        assert process.poll() is None, (folder / "error.log").read_text()
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return url, process
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, (folder / "error.log").read_text()
        time.sleep(0.1)


def test_through_nginx_every_request_after_a_change_sees_it(
    tmp_path: Path, postgres_db: str
) -> None:
    """Two replicas behind nginx round-robin; the token-signing key comes from the database,
    so a sign-in through one replica is good on the other."""
    modules = tmp_path / "modules"
    pack_into(echo_plugin(tmp_path / "src", "1.0.0"), modules)
    a = start_replica(tmp_path / "a", postgres_db, modules=modules)
    b = start_replica(tmp_path / "b", postgres_db)
    nginx: subprocess.Popen | None = None
    try:
        url, nginx = start_nginx(tmp_path / "nginx", [a, b])
        with httpx.Client(base_url=url, timeout=60) as client:
            token = client.post(
                "/api/v1/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD}
            ).json()["access_token"]
            client.headers["Authorization"] = f"Bearer {token}"
            seen = set()
            for _ in range(4):  # the token works on both replicas
                me = client.get("/api/v1/auth/me")
                assert me.status_code == 200, me.text
                seen.add(me.headers["X-Upstream"])
            assert len(seen) == 2

            installed = client.post("/api/v1/marketplace/install", json={"plugin_id": "echo"})
            assert installed.status_code == 200, installed.text
            assert installed.json()["replicas"] == {"converged": 2, "total": 2}
            seen = set()
            for _ in range(20):
                response = client.get("/api/v1/echo/version")
                assert response.status_code == 200, response.headers["X-Upstream"]
                assert response.json() == {"version": "1.0.0"}
                seen.add(response.headers["X-Upstream"])
            assert len(seen) == 2  # both replicas answered

            removed = client.delete("/api/v1/marketplace/uninstall/echo")
            assert removed.status_code == 200, removed.text
            for _ in range(20):
                assert client.get("/api/v1/echo/version").status_code == 404
    finally:
        if nginx is not None:
            nginx.terminate()
            nginx.wait(timeout=10)
        a.stop()
        b.stop()


PULSE_JOBS = (
    "from sqlalchemy import text\n\nfrom plugdock import sdk\n\n\n"
    "def beat(run: sdk.JobRun) -> None:\n"
    "    with sdk.session() as db:\n"
    "        db.execute(text('INSERT INTO pulse_beats (run, tick) VALUES (:r, :t)'),"
    " {'r': run.run_id, 't': run.scheduled_for.isoformat()})\n"
)


def test_three_replicas_run_each_tick_of_a_job_once(tmp_path: Path, postgres_db: str) -> None:
    """A job every second for ~15 s, three replicas racing for each tick: each runs once."""
    from plugdock.core.db import job_runs

    modules = tmp_path / "modules"
    pulse = make_plugin(
        tmp_path / "src",
        "pulse",
        up_sql="CREATE TABLE pulse_beats (run INTEGER NOT NULL, tick VARCHAR(40) NOT NULL);\n",
        down_sql="DROP TABLE pulse_beats;\n",
        extra_files={"backend/jobs.py": PULSE_JOBS},
        metadata={"jobs": [{"id": "beat", "cron": "* * * * * *", "handler": "jobs:beat"}]},
    )
    pack_into(pulse, modules)
    a = start_replica(tmp_path / "a", postgres_db, modules=modules)
    b = start_replica(tmp_path / "b", postgres_db)
    c = start_replica(tmp_path / "c", postgres_db)
    try:
        admin = a.client(a.login())
        installed = admin.post("/api/v1/marketplace/install", json={"plugin_id": "pulse"})
        assert installed.status_code == 200, installed.text
        assert installed.json()["replicas"] == {"converged": 3, "total": 3}
        time.sleep(15)
        assert admin.post("/api/v1/marketplace/disable/pulse").status_code == 200
        time.sleep(2)  # the runs under way finish
        engine = create_engine(postgres_db)
        try:
            with engine.connect() as conn:
                beats = conn.execute(
                    select(text("run"), text("tick")).select_from(text("pulse_beats"))
                ).all()
                runs = conn.execute(
                    select(
                        job_runs.c.id,
                        job_runs.c.scheduled_for,
                        job_runs.c.status,
                        job_runs.c.claimed_by,
                    )
                ).all()
        finally:
            engine.dispose()
    finally:
        for panel in (a, b, c):
            panel.stop()
    ticks = [tick for _run, tick in beats]
    assert len(ticks) >= 10, (ticks, a.output()[-3000:])
    assert len(set(ticks)) == len(ticks), sorted(ticks)  # no tick twice
    assert sorted(run for run, _tick in beats) == sorted(r.id for r in runs)  # each run once
    assert {r.status for r in runs} == {"ok"}
    assert len({r.scheduled_for for r in runs}) == len(runs)
