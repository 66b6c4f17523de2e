"""Load test: steady traffic while plugins change and workers recycle; nothing may fail.

A real ``plugdock serve --workers 4`` on SQLite, loopback. Clients (half on keep-alive
connections, half on a new connection per request) request a core route, a plugin that is
never touched, and a plugin an admin loop installs, upgrades, disables, enables and
uninstalls over and over; workers recycle after ``PLUGDOCK_RECYCLE_AFTER`` changes.

Counted as failures: any transport error (a reset, a refused or dropped connection), any
5xx, a non-200 from the core or the untouched plugin, and a non-200 from the changing
plugin for a request that started and ended while it was installed and enabled (after the
response that made it so, before the request that ended it; a request still in flight when
a disable or uninstall is sent may rightly meet a 404). Prints requests, p50/p99 latency,
failures by kind, the changes made and the recycles seen.

Run: make bench   (or .venv/bin/python bench/load.py [--seconds 60] [--clients 16])
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from runtime import make_plugin, percentile  # bench/runtime.py, beside this script

from plugdock.package.pack import pack

PASSWORD = "load-admin-password"


@dataclass
class Windows:
    """Times (monotonic) during which the changing plugin must answer 200."""

    opened: float | None = None
    closed: list[tuple[float, float]] = field(default_factory=list)
    events: list[tuple[float, str]] = field(default_factory=list)  # (answered at, change)

    def open(self) -> None:
        self.opened = time.monotonic()

    def close(self) -> None:
        if self.opened is not None:
            self.closed.append((self.opened, time.monotonic()))
            self.opened = None

    def covers(self, started: float, ended: float) -> bool:
        """The plugin was installed and enabled for the request's whole life: a request still
        in flight when a disable or uninstall is sent may rightly meet its 404."""
        if self.opened is not None and started >= self.opened:
            return True
        return any(opened <= started and ended <= closed for opened, closed in self.closed)


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)
    failures: Counter[str] = field(default_factory=Counter)
    changing: list[tuple[float, float, int]] = field(default_factory=list)  # start, end, status


def start_panel(work: Path, workers: int, recycle_after: int) -> tuple[subprocess.Popen, str, Path]:
    log = work / "panel.log"
    env = os.environ | {
        "PLUGDOCK_HOME": str(work / "instance"),
        "PLUGIN_LOCAL_DIR": str(work / "modules"),
        "PLUGDOCK_ADMIN_PASSWORD": PASSWORD,
        "PLUGDOCK_RECYCLE_AFTER": str(recycle_after),
    }
    env.pop("DATABASE_URL", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "plugdock", "serve", "--port", "0", "--workers", str(workers)],
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        bound = re.search(r"Uvicorn running on (http://127\.0\.0\.1:\d+)", log.read_text())
        if bound:
            try:
                if httpx.get(f"{bound.group(1)}/healthz", timeout=2).status_code == 200:
                    return process, bound.group(1), log
            except httpx.HTTPError:
                pass
        time.sleep(0.1)
    process.kill()
    raise SystemExit(f"panel did not start:\n{log.read_text()}")


async def client_loop(url: str, keep_alive: bool, stop: asyncio.Event, tally: Tally) -> None:
    paths = ["/healthz", "/api/v1/stable/ping", "/api/v1/cycler/ping"]
    turn = 0
    # Fresh connections without building a client per request (that costs the load
    # generator more CPU than the panel spends answering).
    limits = None if keep_alive else httpx.Limits(max_keepalive_connections=0)
    client = httpx.AsyncClient(base_url=url, timeout=30, limits=limits or httpx.Limits())
    try:
        while not stop.is_set():
            path = paths[turn % len(paths)]
            turn += 1
            started = time.monotonic()
            try:
                headers = None if keep_alive else {"Connection": "close"}
                response = await client.get(path, headers=headers)
            except httpx.HTTPError as exc:
                tally.failures[f"{path}: {type(exc).__name__}: {exc}"] += 1
                continue
            ended = time.monotonic()
            tally.latencies.append(ended - started)
            if path == "/api/v1/cycler/ping":
                tally.changing.append((started, ended, response.status_code))
                if response.status_code >= 500:
                    tally.failures[f"{path}: {response.status_code}"] += 1
            elif response.status_code != 200:
                tally.failures[f"{path}: {response.status_code} {response.text[:80]}"] += 1
    finally:
        await client.aclose()


async def admin_client(url: str) -> httpx.AsyncClient:
    """Signed in, with the untouched plugin installed (before any traffic starts)."""
    admin = httpx.AsyncClient(base_url=url, timeout=120)
    token = (
        await admin.post("/api/v1/auth/login", json={"username": "admin", "password": PASSWORD})
    ).json()["access_token"]
    admin.headers["Authorization"] = f"Bearer {token}"
    answer = await admin.post("/api/v1/marketplace/install", json={"plugin_id": "stable"})
    assert answer.status_code == 200, answer.text
    return admin


async def admin_loop(
    admin: httpx.AsyncClient, work: Path, stop: asyncio.Event, windows: Windows, changes: Counter
) -> None:
    try:

        async def change(kind: str, method: str, path: str, body: dict | None = None) -> None:
            if kind in ("disable", "uninstall"):
                windows.close()  # from the moment the request is sent, 404 is allowed
            windows.events.append((time.monotonic(), f"{kind} request"))
            response = await admin.request(method, path, json=body)
            if response.status_code != 200:
                raise SystemExit(f"{kind} failed: {response.status_code} {response.text}")
            if kind in ("install", "enable"):
                windows.open()
            windows.events.append((time.monotonic(), f"{kind} answer"))
            changes[kind] += 1

        minor = 0
        while not stop.is_set():
            await change("install", "POST", "/api/v1/marketplace/install", {"plugin_id": "cycler"})
            minor += 1
            pack(make_plugin(work / "src", "cycler", f"1.{minor}.0"), work / "modules")
            await change("upgrade", "POST", "/api/v1/marketplace/upgrade", {"plugin_id": "cycler"})
            await change("disable", "POST", "/api/v1/marketplace/disable/cycler")
            await change("enable", "POST", "/api/v1/marketplace/enable/cycler")
            await change("uninstall", "DELETE", "/api/v1/marketplace/uninstall/cycler")
            minor += 1
            pack(make_plugin(work / "src", "cycler", f"1.{minor}.0"), work / "modules")
    finally:
        await admin.aclose()


async def run(url: str, work: Path, seconds: float, clients: int) -> tuple[Tally, Windows, Counter]:
    stop = asyncio.Event()
    tally, windows, changes = Tally(), Windows(), Counter()
    admin = asyncio.create_task(admin_loop(await admin_client(url), work, stop, windows, changes))
    users = [
        asyncio.create_task(client_loop(url, index % 2 == 0, stop, tally))
        for index in range(clients)
    ]
    await asyncio.sleep(seconds)
    stop.set()
    await asyncio.gather(admin, *users)
    return tally, windows, changes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--recycle-after", type=int, default=60)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="plugdock-load-") as scratch:
        work = Path(scratch)
        pack(make_plugin(work / "src", "stable", "1.0.0"), work / "modules")
        pack(make_plugin(work / "src", "cycler", "1.0.0"), work / "modules")
        process, url, log = start_panel(work, args.workers, args.recycle_after)
        try:
            tally, windows, changes = asyncio.run(run(url, work, args.seconds, args.clients))
        finally:
            process.terminate()
            process.wait(timeout=60)
        output = log.read_text()
    for started, ended, status in tally.changing:
        if status != 200 and windows.covers(started, ended):
            last = max((e for e in windows.events if e[0] <= started), default=(started, "?"))
            tally.failures[
                f"/api/v1/cycler/ping: {status} while installed "
                f"({(started - last[0]) * 1000:.0f} ms after: {last[1]})"
            ] += 1
    latencies = sorted(tally.latencies)
    p99 = percentile(latencies, 0.99)
    print(
        f"load: {len(latencies)} requests in {args.seconds:.0f} s "
        f"({len(latencies) / args.seconds:.0f}/s) from {args.clients} clients on "
        f"{args.workers} workers; p50 {statistics.median(latencies) * 1000:.1f} ms, "
        f"p99 {p99 * 1000:.1f} ms"
    )
    print(
        "changes meanwhile: "
        + ", ".join(f"{count} {kind}" for kind, count in changes.items())
        + f"; workers recycled: {output.count('recycling worker')}"
    )
    failed = sum(tally.failures.values())
    print(f"failed requests: {failed}")
    for failure, count in tally.failures.most_common(10):
        print(f"  {count}x {failure}")
    if failed:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
