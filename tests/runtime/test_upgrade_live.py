"""An upgrade in a running 2-worker panel: both workers swap versions, no request fails."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import pytest

from panel import INPROCESS, fresh_get, start_panel, wait_for_startups
from support import make_plugin, pack_into

# A 2-worker `plugdock serve` on loopback.
pytestmark = pytest.mark.server

ROUTES = """import os

from fastapi import APIRouter

router = APIRouter(prefix='/api/v1/whoami')


@router.get('/pid')
def pid() -> dict:
    return {{'pid': os.getpid(), 'version': '{version}'}}


@router.get('/{only}')
def only() -> dict:
    return {{'only': '{only}'}}
"""


def whoami(parent: Path, version: str, only: str) -> Path:
    return make_plugin(
        parent,
        "whoami",
        version,
        metadata={"backend": {"routes": ["/api/v1/whoami/*"]}},
        extra_files={"backend/routes.py": ROUTES.format(version=version, only=only)},
    )


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
def test_upgrade_reaches_both_workers_without_a_failed_request(
    tmp_path: Path, database_url: str
) -> None:
    modules = tmp_path / "modules"
    pack_into(whoami(tmp_path / "v1", "1.0.0", "old"), modules)
    # In-process: workers are told apart by the pid the plugin route sees (see whoami_panel).
    panel = start_panel(tmp_path, database_url, workers=2, extra_env=INPROCESS)
    try:
        wait_for_startups(panel, 2)
        admin = panel.client(panel.login())
        assert admin.post("/api/v1/marketplace/install", json={"plugin_id": "whoami"}).is_success
        pack_into(whoami(tmp_path / "v2", "1.1.0", "new"), modules)
        offered = admin.get("/api/v1/marketplace/installed").json()[0]
        assert (offered["update_available"], offered["update_compatible"]) == ("1.1.0", True)

        failures: list[str] = []
        answered = {"1.0.0": 0, "1.1.0": 0}
        stop = threading.Event()

        def traffic() -> None:  # bounded: stops when told, or after 60 s
            deadline = time.monotonic() + 60
            while not stop.is_set() and time.monotonic() < deadline:
                try:
                    response = fresh_get(f"{panel.url}/api/v1/whoami/pid")
                except httpx.HTTPError as exc:
                    failures.append(repr(exc))
                    continue
                if response.status_code != 200:
                    failures.append(f"{response.status_code} {response.text}")
                else:
                    answered[response.json()["version"]] += 1

        streams = [threading.Thread(target=traffic) for _ in range(2)]
        for stream in streams:
            stream.start()
        time.sleep(0.5)
        upgraded = admin.post("/api/v1/marketplace/upgrade", json={"plugin_id": "whoami"})
        assert upgraded.status_code == 200, upgraded.text
        assert upgraded.json()["version"] == "1.1.0"

        # Right after the response, every worker serves the new version.
        seen: dict[int, str] = {}
        deadline = time.monotonic() + 20
        while len(seen) < 2 and time.monotonic() < deadline:
            body = fresh_get(f"{panel.url}/api/v1/whoami/pid").json()
            seen.setdefault(body["pid"], body["version"])  # the first answer of each worker
        time.sleep(0.3)
        stop.set()
        for stream in streams:
            stream.join()

        assert len(seen) == 2, seen
        assert set(seen.values()) == {"1.1.0"}
        assert failures == []
        assert answered["1.0.0"] > 0 and answered["1.1.0"] > 0  # traffic spanned the swap
        assert fresh_get(f"{panel.url}/api/v1/whoami/new").status_code == 200
        assert fresh_get(f"{panel.url}/api/v1/whoami/old").status_code == 404
        installed = admin.get("/api/v1/marketplace/installed").json()[0]
        assert (installed["version"], installed["update_available"]) == ("1.1.0", None)
    finally:
        panel.stop()
