"""Two worker processes sharing one instance: an install or uninstall reaches both at once."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from panel import (
    INPROCESS,
    PID_ROUTES,
    Panel,
    fresh_get,
    start_panel,
    wait_for_startups,
    whoami_panel,
)
from plugdock.core.db import make_engine
from plugdock.errors import StepError
from plugdock.installer import Installer
from plugdock.instance.notify import CHANNEL, EVENTS_CHANNEL, ChangeListener
from plugdock.operations.codefiles import LEAVING_ORDER
from support import CHATBOT, instance_settings, make_plugin, pack_into

# Every test runs `plugdock serve` (and CLI commands against it).
pytestmark = pytest.mark.server


@contextmanager
def core_traffic(panel: Panel, *, keep_alive: bool = False) -> Iterator[list[str]]:
    """A steady stream of core requests on new connections (and, with ``keep_alive``, a
    second one reusing its connection); yields the failures seen."""
    failures: list[str] = []
    stop = threading.Event()

    def run(client: httpx.Client | None) -> None:
        while not stop.is_set():
            try:
                if client is None:
                    response = fresh_get(f"{panel.url}/healthz")
                else:
                    response = client.get(f"{panel.url}/healthz")
                if response.status_code != 200:
                    failures.append(f"{response.status_code} {response.text}")
            except httpx.HTTPError as exc:
                failures.append(repr(exc))

    reused = httpx.Client(timeout=10) if keep_alive else None
    streams = [threading.Thread(target=run, args=(None,))]
    if reused is not None:
        streams.append(threading.Thread(target=run, args=(reused,)))
    for stream in streams:
        stream.start()
    try:
        yield failures
    finally:
        stop.set()
        for stream in streams:
            stream.join()
        if reused is not None:
            reused.close()


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
def test_install_and_uninstall_reach_every_worker(tmp_path: Path, database_url: str) -> None:
    panel = whoami_panel(tmp_path, database_url, workers=2)
    try:
        admin = panel.client(panel.login())
        # Core requests keep flowing while plugins come and go: none may fail.
        with core_traffic(panel) as failures:
            for _ in range(2):
                installed = admin.post("/api/v1/marketplace/install", json={"plugin_id": "whoami"})
                assert installed.status_code == 200
                # From the moment the install answered, every worker serves the route.
                pids = set()
                for _ in range(40):
                    response = fresh_get(f"{panel.url}/api/v1/whoami/pid")
                    assert response.status_code == 200, response.text
                    pids.add(response.json()["pid"])
                assert len(pids) == 2, f"only {pids} answered"

                assert admin.delete("/api/v1/marketplace/uninstall/whoami").status_code == 200
                for _ in range(40):
                    assert fresh_get(f"{panel.url}/api/v1/whoami/pid").status_code == 404
        assert failures == []
    finally:
        panel.stop()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_cli_install_reaches_a_running_panel(tmp_path: Path, database_url: str) -> None:
    """Through the hint file alone: the timer is set far out of the way."""
    panel = whoami_panel(tmp_path, database_url, extra_env={"PLUGDOCK_SYNC_INTERVAL": "600"})
    try:
        assert fresh_get(f"{panel.url}/api/v1/whoami/pid").status_code == 404
        installed = panel.cli("install", "whoami")
        assert installed.returncode == 0, installed.stderr
        assert fresh_get(f"{panel.url}/api/v1/whoami/pid").status_code == 200
        assert panel.cli("uninstall", "whoami").returncode == 0
        assert fresh_get(f"{panel.url}/api/v1/whoami/pid").status_code == 404
    finally:
        panel.stop()


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_postgres_notifies_committed_changes_only(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Workers on other machines hear about a change the moment it commits, and only then."""
    settings = instance_settings(tmp_path, database_url)
    pack_into(CHATBOT, settings.plugin_local_dir)
    engine = make_engine(database_url)
    woke = threading.Event()
    events = threading.Event()
    listener = ChangeListener(engine, {CHANNEL: woke.set, EVENTS_CHANNEL: events.set})
    listener.start()
    try:
        assert woke.wait(10)  # it wakes once on connecting, to catch up
        assert events.wait(10)
        woke.clear()
        events.clear()

        # An emitted event wakes the deliverers at its commit, and only then.
        from plugdock.instance import outbox

        with engine.connect() as conn, conn.begin() as transaction:
            outbox.emit(conn, "invoice.paid", 1, {}, None)
            transaction.rollback()
        assert not events.wait(1.5)
        with engine.begin() as conn:
            outbox.emit(conn, "invoice.paid", 1, {}, None)
        assert events.wait(5)
        assert not woke.is_set()  # a plugin change is another channel
        installer = Installer(settings, engine=engine)

        monkeypatch.setenv("PLUGDOCK_FAILPOINTS", "install.commit=raise")
        with pytest.raises(StepError):
            installer.install("ai_chatbot")
        assert not woke.wait(1.5)  # rolled back: nothing to hear

        monkeypatch.delenv("PLUGDOCK_FAILPOINTS")
        installer.install("ai_chatbot")
        assert woke.wait(5)
        woke.clear()
        installer.uninstall("ai_chatbot")
        assert woke.wait(5)
    finally:
        listener.stop()
        engine.dispose()


def both_workers_caught_up(panel: Panel, known: set[int] | None = None) -> set[int]:
    """Fresh requests to the probe plugin until two workers answered: each request makes its
    worker catch up with the plugin set first, so both now count the last change."""
    pids: set[int] = set()
    deadline = time.monotonic() + 30
    while len(pids) < 2:
        assert time.monotonic() < deadline, (pids, panel.output())
        pids.add(fresh_get(f"{panel.url}/api/v1/probe/pid").json()["pid"])
    assert known is None or pids == known
    return pids


def recycling_pids(panel: Panel, count: int) -> list[int]:
    """The pids of the first ``count`` workers that logged their recycling, in order."""
    deadline = time.monotonic() + 60
    while True:
        pids = [int(pid) for pid in re.findall(r"recycling worker (\d+)", panel.output())]
        if len(pids) >= count:
            return pids
        assert time.monotonic() < deadline, panel.output()
        time.sleep(0.05)


def raw_get(sock: socket.socket, path: str) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 GET on an open socket: status, headers (lower-case names), body."""
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: panel\r\n\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed before an answer: {data!r}"
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    while len(body) < int(headers.get("content-length", "0")):
        chunk = sock.recv(65536)
        assert chunk, "connection closed in the middle of the body"
        body += chunk
    return int(lines[0].split()[1]), headers, body


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_workers_recycle_after_many_changes_without_failing_requests(
    tmp_path: Path, database_url: str
) -> None:
    """Imported plugins are never fully freed, so a worker restarts itself after N changes:
    one worker at a time, it stops accepting, answers what is in flight with Connection:
    close, closes only connections idle longer than clients reuse them, and exits; no
    client, fresh or keep-alive (the admin's too), sees a reset.

    Each worker counts every mount and unmount: the probe plugin's mount at start (1), then
    whoami installed, uninstalled, installed, uninstalled (5 = PLUGDOCK_RECYCLE_AFTER), with
    both workers caught up after each change, so both recycle exactly once, one after the
    other.
    """
    probe = make_plugin(
        tmp_path / "src",
        "probe",
        metadata={"backend": {"routes": ["/api/v1/probe/*"]}},
        extra_files={"backend/routes.py": PID_ROUTES.replace("/api/v1/whoami", "/api/v1/probe")},
    )
    settings = instance_settings(tmp_path, database_url)
    Installer(settings, engine=make_engine(database_url)).install(pack_into(probe, tmp_path / "p"))
    panel = whoami_panel(
        tmp_path, database_url, workers=2, extra_env={"PLUGDOCK_RECYCLE_AFTER": "5"}
    )
    try:
        admin = panel.client(panel.login())
        originals = both_workers_caught_up(panel)
        # A connection a worker accepts but reads no request from until a worker is
        # draining: the race that reset clients when a recycling worker exited at once.
        host, port = panel.url.removeprefix("http://").split(":")
        waiting = socket.create_connection((host, int(port)), timeout=30)
        with core_traffic(panel, keep_alive=True) as failures:
            for change in range(4):
                if change % 2 == 0:
                    answer = admin.post("/api/v1/marketplace/install", json={"plugin_id": "whoami"})
                else:
                    answer = admin.delete("/api/v1/marketplace/uninstall/whoami")
                assert answer.status_code == 200, answer.text
                if change < 3:  # after the last one both are on their way out
                    both_workers_caught_up(panel, originals)
            draining = recycling_pids(panel, 1)
            status, headers, body = raw_get(waiting, "/api/v1/probe/pid")
            waiting.close()
            assert status == 200, (status, body)
            if json.loads(body)["pid"] in draining:  # a draining worker answers, then closes
                assert headers.get("connection") == "close", headers
            first, second = recycling_pids(panel, 2)[:2]
            assert {first, second} == originals  # each once, one after the other:
            output = panel.output()
            assert output.index(f"Finished server process [{first}]") < output.index(
                f"recycling worker {second}"
            )
            wait_for_startups(panel, 4)  # the two first workers, and both replacements
            installed = admin.post("/api/v1/marketplace/install", json={"plugin_id": "whoami"})
            assert installed.status_code == 200
            pids = {fresh_get(f"{panel.url}/api/v1/whoami/pid").json()["pid"] for _ in range(30)}
        assert len(pids) == 2 and not pids & originals
        assert len(recycling_pids(panel, 2)) == 2
        assert failures == []
    finally:
        panel.stop()


def _two_versions(tmp_path: Path, plugin_id: str) -> None:
    """``plugin_id`` 1.0.0 and 1.1.0 in the source; /ping answers its version."""
    routes = f"from fastapi import APIRouter\n\nrouter = APIRouter(prefix='/api/v1/{plugin_id}')\n"
    for version in ("1.0.0", "1.1.0"):
        ping = f"\n\n@router.get('/ping')\ndef ping() -> dict:\n    return {{'v': '{version}'}}\n"
        folder = make_plugin(
            tmp_path / "src", plugin_id, version, extra_files={"backend/routes.py": routes + ping}
        )
        pack_into(folder, tmp_path / "modules")


def _upgrade_held_halfway(
    panel: Panel, plugin_id: str, release: Path, point: str = "upgrade.record"
) -> subprocess.Popen:
    """A CLI upgrade held at failpoint ``point`` (by default: after it swapped the code in,
    before it commits) until ``release`` exists."""
    env = panel.env | {"PLUGDOCK_FAILPOINTS": f"{point}=wait:{release}"}
    upgrade = subprocess.Popen(
        [sys.executable, "-m", "plugdock", "upgrade", plugin_id],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    reached = Path(f"{release}.reached")
    deadline = time.monotonic() + 60
    while not reached.exists():
        assert upgrade.poll() is None and time.monotonic() < deadline, upgrade.stdout
        time.sleep(0.02)
    return upgrade


def _finish(upgrade: subprocess.Popen, release: Path) -> None:
    release.touch()
    assert upgrade.wait(timeout=60) == 0, upgrade.stdout.read() if upgrade.stdout else ""


def test_a_worker_starting_while_an_upgrade_is_halfway_waits_for_it(tmp_path: Path) -> None:
    """An upgrade swaps the code on disk before it commits. A worker starting in between (a
    recycled one, under load) must not serve that half-done state (code that does not match
    the committed row): it waits for the operation (start-up recovery takes the operation
    lock), then serves the new version."""
    database_url = f"sqlite:///{tmp_path / 'scratch.db'}"  # the window is on this machine's disk
    _two_versions(tmp_path, "halfway")
    release = tmp_path / "release"
    first = start_panel(tmp_path, database_url, extra_env=INPROCESS)
    try:
        assert first.cli("install", "halfway@1.0.0").returncode == 0
        upgrade = _upgrade_held_halfway(first, "halfway", release)
        started: list[Panel] = []
        starting = threading.Thread(
            target=lambda: started.append(start_panel(tmp_path, database_url, extra_env=INPROCESS))
        )
        starting.start()
        starting.join(timeout=4)  # long past a panel's start: it is waiting, not serving 404
        assert not started, "a worker started mid-upgrade and served the half-done state"
        _finish(upgrade, release)
        starting.join(timeout=60)
        second = started[0]
        try:
            answer = httpx.get(f"{second.url}/api/v1/halfway/ping")
            assert answer.status_code == 200 and answer.json() == {"v": "1.1.0"}, answer.text
        finally:
            second.stop()
    finally:
        release.touch()
        first.stop()


# Every point of an upgrade's code swap: after each kind of the old code moved out, after
# the new code moved in but not its marker, and after the marker too.
SWAP_POINTS = [f"code.moved_out.{kind}" for kind in LEAVING_ORDER] + [
    "code.moved_in",
    "upgrade.record",
]


@pytest.mark.parametrize("point", SWAP_POINTS)
def test_a_worker_catching_up_during_an_upgrade_waits_instead_of_404(
    tmp_path: Path, point: str
) -> None:
    """A worker that has not yet served an install (it catches up on its next request) may
    first look while the next upgrade is swapping the code, before it commits: the row says
    1.0.0, the disk holds part or all of 1.1.0. It used to answer 404 for the installed
    plugin (bench/load.py, a few a minute): once with the new code in, and once with the
    old backend moved out beside its manifest. Now the request waits for the operation and
    gets the new version, wherever the swap is."""
    database_url = f"sqlite:///{tmp_path / 'scratch.db'}"  # the window is on this machine's disk
    _two_versions(tmp_path, "lagging")
    release = tmp_path / "release"
    # No timer: the worker catches up only when a request comes.
    panel = start_panel(
        tmp_path, database_url, extra_env=INPROCESS | {"PLUGDOCK_SYNC_INTERVAL": "3600"}
    )
    try:
        assert panel.cli("install", "lagging@1.0.0").returncode == 0
        upgrade = _upgrade_held_halfway(panel, "lagging", release, point)
        answers: list[httpx.Response] = []
        asking = threading.Thread(
            target=lambda: answers.append(httpx.get(f"{panel.url}/api/v1/lagging/ping", timeout=60))
        )
        asking.start()
        asking.join(timeout=1)
        assert not answers, f"answered mid-upgrade: {answers[0].status_code} {answers[0].text}"
        _finish(upgrade, release)
        asking.join(timeout=60)
        assert answers[0].status_code == 200 and answers[0].json() == {"v": "1.1.0"}
    finally:
        release.touch()
        panel.stop()
