"""The billing example host (examples/hosts/billing) for tests: seeded, then run by uvicorn.

``start_billing`` seeds a database with ``python -m billing.seed`` and starts
``uvicorn --factory billing.app:create_app`` on a free loopback port (port 0, read back
from uvicorn's log), with plugdock's settings in the environment as an operator would set
them. ``billing_client`` signs in with the billing app's own cookie.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from panel import RUNNING, Panel, wait_for_startups
from support import REPO

BILLING = REPO / "examples" / "hosts" / "billing"
ADMIN = ("admin@billing.example", "admin-pass-for-tests")
CLERK = ("clerk@billing.example", "clerk-pass-for-tests")
CSRF = {"X-Plugdock-CSRF": "1"}


def billing_env(tmp_path: Path, database_url: str, extra: dict[str, str] | None = None) -> dict:
    env = os.environ | {
        "PYTHONPATH": os.pathsep.join([str(BILLING), os.environ.get("PYTHONPATH", "")]),
        "DATABASE_URL": database_url,
        "PLUGDOCK_HOME": str(tmp_path / "instance"),
        "PLUGIN_LOCAL_DIR": str(tmp_path / "modules"),
        "PLUGDOCK_SYNC_INTERVAL": "0.2",
        "BILLING_ADMIN_PASSWORD": ADMIN[1],
        "BILLING_CLERK_PASSWORD": CLERK[1],
    }
    env.pop("PLUGDOCK_FAILPOINTS", None)
    return env | (extra or {})


def seed(env: dict[str, str]) -> None:
    subprocess.run([sys.executable, "-m", "billing.seed"], env=env, check=True, capture_output=True)


def start_billing(
    tmp_path: Path,
    database_url: str,
    *,
    workers: int = 1,
    factory: str = "billing.app:create_app",
    extra_env: dict[str, str] | None = None,
) -> Panel:
    """The billing app under uvicorn with ``workers`` workers, every one started."""
    env = billing_env(tmp_path, database_url, extra_env)
    seed(env)
    log = tmp_path / f"billing-{time.monotonic_ns()}.log"
    command = [sys.executable, "-m", "uvicorn", "--factory", factory, "--host", "127.0.0.1"]
    # Long keep-alive: tests hold one connection per worker across slow steps (a CLI run).
    command += ["--port", "0", "--workers", str(workers), "--timeout-keep-alive", "120"]
    process = subprocess.Popen(command, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)
    server = Panel("", process, env, log)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"billing exited early:\n{server.output()}")
        bound = RUNNING.search(server.output())
        if bound is not None:
            server.url = f"http://127.0.0.1:{bound.group(1)}"
            wait_for_startups(server, workers)
            return server
        time.sleep(0.05)
    server.stop()
    raise RuntimeError(f"billing did not start:\n{server.output()}")


def billing_client(server: Panel, who: tuple[str, str] | None = None) -> httpx.Client:
    """A client of the billing app, signed in with its cookie when ``who`` is given."""
    client = httpx.Client(base_url=server.url, timeout=60)
    if who is not None:
        answer = client.post("/api/auth/sign-in", json={"email": who[0], "password": who[1]})
        answer.raise_for_status()
        assert "billing_session" in client.cookies
    return client
