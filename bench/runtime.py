"""Benchmark: plugins in a running panel (real uvicorn on loopback, SQLite).

Prints:
- time from an install response until the route answers on every worker (4 workers, 50
  installs: median, p99, max; target p99 <= 100 ms)
- latency of a core route with 0 and with 200 installed plugins (target: within 5 %)
- latency of a plugin route against an identical core route at 200 plugins (within 5 %)
- panel start time with 0, 10, 100 and 200 installed plugins (target: 200 under 2 s)
- resident memory of the panel after 1, 100 and 1,000 install/uninstall cycles

Run: make bench   (or .venv/bin/python bench/runtime.py [--quick])
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from plugdock.config import load_settings
from plugdock.installer import Installer
from plugdock.package.pack import pack

PASSWORD = "bench-admin-password"
PING = (
    "from fastapi import APIRouter\n\nrouter = APIRouter(prefix='/api/v1/{slug}')\n\n\n"
    "@router.get('/ping')\ndef ping() -> dict:\n    return {{'pong': True}}\n"
)


def make_plugin(parent: Path, plugin_id: str, version: str = "1.0.0") -> Path:
    """A plugin with one table and a ``/ping`` route, in ``parent/<id>`` (version 1.0.0) or
    ``parent/<id>-<version>``."""
    slug = plugin_id.replace("_", "-")
    folder = parent / (plugin_id if version == "1.0.0" else f"{plugin_id}-{version}")
    files = {
        "metadata.json": json.dumps(
            {
                "id": plugin_id,
                "name": plugin_id,
                "version": version,
                "backend": {"routes": [f"/api/v1/{slug}/*"]},
            }
        ),
        "backend/__init__.py": "from .routes import router\n",
        "backend/routes.py": PING.format(slug=slug),
        "migrations/up.sql": f"CREATE TABLE {plugin_id}_t (id INTEGER PRIMARY KEY);\n",
        "migrations/down.sql": f"DROP TABLE {plugin_id}_t;\n",
    }
    for relative, text in files.items():
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return folder


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Panel:
    def __init__(self, work: Path, workers: int = 1) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = os.environ | {
            "PLUGDOCK_HOME": str(work / "instance"),
            "PLUGIN_LOCAL_DIR": str(work / "modules"),
            "PLUGDOCK_ADMIN_PASSWORD": PASSWORD,
            "PYTHONPATH": str(Path(__file__).parent),
        }
        self.env.pop("DATABASE_URL", None)
        started = time.perf_counter()
        self.process = subprocess.Popen(
            [
                sys.executable,
                str(Path(__file__)),
                "--serve",
                str(self.port),
                "--workers",
                str(workers),
            ],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        while True:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.02)
        self.start_seconds = time.perf_counter() - started
        token = httpx.post(
            f"{self.url}/api/v1/auth/login", json={"username": "admin", "password": PASSWORD}
        ).json()["access_token"]
        self.admin = httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {token}"}, timeout=60
        )

    def rss_mib(self) -> float:
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        kib = int(next(line for line in status.splitlines() if line.startswith("VmRSS")).split()[1])
        return kib / 1024

    def stop(self) -> None:
        self.admin.close()
        self.process.terminate()
        self.process.wait()


def interleaved_latency_ms(urls: list[str], requests: int, rounds: int = 20) -> list[float]:
    """Median latency of each URL over its own keep-alive connection, measured in turns
    (a slice of each per round), so a drift of the machine's speed hits all of them alike."""
    samples: list[list[float]] = [[] for _ in urls]
    clients = [httpx.Client() for _ in urls]
    try:
        for client, url in zip(clients, urls, strict=True):
            for _ in range(requests // 10):
                client.get(url)  # warm-up
        for _ in range(rounds):
            for index, (client, url) in enumerate(zip(clients, urls, strict=True)):
                for _ in range(requests // rounds):
                    start = time.perf_counter()
                    response = client.get(url)
                    samples[index].append(time.perf_counter() - start)
                    assert response.status_code == 200, response.text
    finally:
        for client in clients:
            client.close()
    return [statistics.median(taken) * 1000 for taken in samples]


def install_directly(work: Path, count: int) -> None:
    """Install ``count`` generated plugins with the library, before the panel starts."""
    installer = Installer(
        load_settings(home=work / "instance", plugin_local_dir=work / "modules", database_url=None)
    )
    for index in range(count):
        plugin_id = f"gen{index:03d}"
        pack(make_plugin(work / "src", plugin_id), work / "modules")
        installer.install(plugin_id)
    installer.engine.dispose()


def bench_propagation(
    work: Path, rounds: int, workers: int
) -> tuple[list[float], list[float], int]:
    """Per install: new connections until every worker answered the plugin's route.

    Returns the wall time until all had answered (mostly the kernel's choice of which
    worker accepts a new connection), each worker's first request after the install
    response (it catches up with the install before routing it), and the requests
    answered with anything but 200 after the response (target 0).
    """
    pack(make_plugin(work / "src", "whoami"), work / "modules")
    panel = Panel(work, workers=workers)
    walls, firsts, misses = [], [], 0
    try:
        for _ in range(rounds):
            assert (
                panel.admin.post(
                    "/api/v1/marketplace/install", json={"plugin_id": "whoami"}
                ).status_code
                == 200
            )
            answered = time.perf_counter()
            pids: set[int] = set()
            while len(pids) < workers:  # new connections, so every worker gets some
                sent = time.perf_counter()
                with httpx.Client() as fresh:
                    response = fresh.get(
                        f"{panel.url}/api/v1/whoami/ping", headers={"Connection": "close"}
                    )
                if response.status_code != 200:
                    misses += 1
                    continue
                pid = int(response.headers["x-bench-pid"])
                if pid not in pids:
                    pids.add(pid)
                    firsts.append(time.perf_counter() - sent)
            walls.append(time.perf_counter() - answered)
            panel.admin.delete("/api/v1/marketplace/uninstall/whoami")
    finally:
        panel.stop()
    return walls, firsts, misses


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer cycles (for a smoke run)")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--workers", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        return serve(args.serve, args.workers)
    requests = 300 if args.quick else 2000
    cycles = (1, 20, 50) if args.quick else (1, 100, 1000)

    with tempfile.TemporaryDirectory(prefix="plugdock-bench-") as scratch:
        work = Path(scratch)
        workers = 4
        walls, firsts, misses = bench_propagation(
            work / "propagation", 10 if args.quick else 50, workers
        )
        print(
            f"install response → each of {workers} workers' first request "
            f"({len(walls)} installs, {len(firsts)} first requests): "
            f"median {statistics.median(firsts) * 1000:.1f} ms, "
            f"p99 {percentile(firsts, 0.99) * 1000:.1f} ms; requests missing the plugin: {misses}"
        )
        print(
            f"install response → all {workers} workers seen on new connections: "
            f"median {statistics.median(walls) * 1000:.1f} ms, "
            f"p99 {percentile(walls, 0.99) * 1000:.1f} ms (the kernel picks the worker)"
        )

        many = 200
        starts = {}
        for count in (0, 10, 100, many):
            install_directly(work / f"with{count}", count)
            panel = Panel(work / f"with{count}")
            starts[count] = panel.start_seconds
            panel.stop()
        # The panels with none and with 200 plugins side by side, measured in turns.
        empty, full = Panel(work / "with0"), Panel(work / f"with{many}")
        try:
            core_empty, core_full, plugin = interleaved_latency_ms(
                [
                    f"{empty.url}/api/v1/core-ping",
                    f"{full.url}/api/v1/core-ping",
                    f"{full.url}/api/v1/gen{many - 1:03d}/ping",
                ],
                requests,
            )
        finally:
            empty.stop()
            full.stop()
        print(
            f"core route latency: 0 plugins {core_empty:.3f} ms, "
            f"{many} plugins {core_full:.3f} ms, ratio {core_full / core_empty:.3f}"
        )
        print(
            f"plugin route {plugin:.3f} ms vs identical core route {core_full:.3f} ms "
            f"({many} plugins), ratio {plugin / core_full:.3f}"
        )
        print(
            "panel start: " + ", ".join(f"{n} plugins {s * 1000:.0f} ms" for n, s in starts.items())
        )

        folder = work / "cycles"
        pack(make_plugin(folder / "src", "cycler"), folder / "modules")
        panel = Panel(folder)
        try:
            done, readings = 0, []
            for target in cycles:
                while done < target:
                    assert (
                        panel.admin.post(
                            "/api/v1/marketplace/install", json={"plugin_id": "cycler"}
                        ).status_code
                        == 200
                    )
                    assert panel.admin.get("/api/v1/cycler/ping").status_code == 200
                    assert (
                        panel.admin.delete("/api/v1/marketplace/uninstall/cycler").status_code
                        == 200
                    )
                    done += 1
                readings.append(f"{target} cycles {panel.rss_mib():.1f} MiB")
        finally:
            panel.stop()
        print("panel RSS after install/uninstall: " + ", ".join(readings))


def bench_app():  # type: ignore[no-untyped-def]
    """The panel plus a core route identical to the generated plugins' ping, and a pid header."""
    from fastapi import Request, Response

    from plugdock.host.app import create_app

    app = create_app()

    @app.get("/api/v1/core-ping")
    def core_ping() -> dict:
        return {"pong": True}

    @app.middleware("http")
    async def pid_header(request: Request, call_next) -> Response:  # type: ignore[no-untyped-def]
        response = await call_next(request)
        response.headers["x-bench-pid"] = str(os.getpid())
        return response

    return app


def serve(port: int, workers: int) -> None:
    import uvicorn

    # Workers import the factory by name, so this folder is on their path (set by Panel).
    uvicorn.run(
        "runtime:bench_app",
        factory=True,
        host="127.0.0.1",
        port=port,
        workers=workers,
        log_level="warning",
    )


if __name__ == "__main__":
    main()
