"""A real panel for tests: ``plugdock serve`` in a subprocess on a free loopback port.

The panel binds port 0 and the test reads the port it got from uvicorn's log, so two
tests running at once (pytest -n) can never be handed the same port.
"""

from __future__ import annotations

import itertools
import os
import re
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from support import make_plugin, pack_into

ADMIN_PASSWORD = "admin-pass-for-tests"
RUNNING = re.compile(r"Uvicorn running on http://127\.0\.0\.1:(\d+)")
_logs = itertools.count()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Panel:
    url: str
    process: subprocess.Popen
    env: dict[str, str]
    log: Path

    def login(self, username: str = "admin", password: str = ADMIN_PASSWORD) -> str:
        response = httpx.post(
            f"{self.url}/api/v1/auth/login", json={"username": username, "password": password}
        )
        response.raise_for_status()
        return response.json()["access_token"]

    def client(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60)

    def cli(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
        return self.cli_env({}, *args, stdin=stdin)

    def cli_env(
        self, extra_env: dict[str, str], *args: str, stdin: str | None = None
    ) -> subprocess.CompletedProcess:
        """``plugdock ARGS`` with the panel's environment plus ``extra_env``."""
        return subprocess.run(
            [sys.executable, "-m", "plugdock", *args],
            env=self.env | extra_env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
        )

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def start_panel(
    tmp_path: Path, database_url: str, *, workers: int = 1, extra_env: dict[str, str] | None = None
) -> Panel:
    env = (
        os.environ
        | {
            "PLUGDOCK_HOME": str(tmp_path / "instance"),
            "PLUGIN_LOCAL_DIR": str(tmp_path / "modules"),
            "DATABASE_URL": database_url,
            "PLUGDOCK_ADMIN_PASSWORD": ADMIN_PASSWORD,
            "PLUGDOCK_SYNC_INTERVAL": "0.2",
        }
        | (extra_env or {})
    )
    env.pop("PLUGDOCK_FAILPOINTS", None)
    log = tmp_path / f"panel-{os.getpid()}-{next(_logs)}.log"
    handle = log.open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "plugdock", "serve", "--port", "0", "--workers", str(workers)],
        env=env,
        stdout=handle,
        stderr=subprocess.STDOUT,
    )
    panel = Panel("", process, env, log)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"panel exited early:\n{panel.output()}")
        bound = RUNNING.search(panel.output())
        if bound is not None:
            panel.url = f"http://127.0.0.1:{bound.group(1)}"
            try:
                if httpx.get(f"{panel.url}/healthz", timeout=2).status_code == 200:
                    return panel
            except httpx.HTTPError:
                pass
        time.sleep(0.05)
    panel.stop()
    raise RuntimeError(f"panel did not start:\n{panel.output()}")


# -- panels whose workers can be told apart (tests of workers, upgrades and disable/enable)

PID_ROUTES = (
    "import os\n\nfrom fastapi import APIRouter\n\n"
    "router = APIRouter(prefix='/api/v1/whoami')\n\n\n"
    "@router.get('/pid')\ndef pid() -> dict:\n    return {'pid': os.getpid()}\n"
)


def fresh_get(url: str) -> httpx.Response:
    """A new connection per request, so the kernel spreads requests over the workers."""
    with httpx.Client(timeout=10) as client:
        return client.get(url, headers={"Connection": "close"})


INPROCESS = {"PLUGDOCK_ISOLATION": "inprocess"}


def whoami_panel(
    tmp_path: Path, database_url: str, workers: int = 1, extra_env: dict[str, str] | None = None
) -> Panel:
    """A panel offering 'whoami', a plugin whose route answers with the worker's pid.

    In-process isolation whatever the environment says: these tests tell workers apart by
    the pid a plugin route sees, and a plugin process (shared by the workers, in a PID
    namespace of its own) cannot see it. tests/isolation/test_isolation.py covers process mode.
    """
    folder = make_plugin(
        tmp_path / "src",
        "whoami",
        metadata={"backend": {"routes": ["/api/v1/whoami/*"]}},
        extra_files={"backend/routes.py": PID_ROUTES},
    )
    pack_into(folder, tmp_path / "modules")
    panel = start_panel(
        tmp_path, database_url, workers=workers, extra_env=INPROCESS | (extra_env or {})
    )
    wait_for_startups(panel, workers)
    return panel


def wait_for_startups(panel: Panel, count: int) -> None:
    deadline = time.monotonic() + 30
    while panel.output().count("Application startup complete") < count:
        assert time.monotonic() < deadline, panel.output()
        time.sleep(0.1)
