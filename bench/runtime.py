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


def make_plugin(parent: Path, plugin_id: str) -> Path:
    slug = plugin_id.replace("_", "-")
    folder = parent / plugin_id
    files = {
        "metadata.json": json.dumps(
            {
                "id": plugin_id,
                "name": plugin_id,
                "version": "1.0.0",
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


def latency_ms(url: str, requests: int) -> float:
    """Median latency over one keep-alive connection."""
    samples = []
    with httpx.Client() as client:
        for _ in range(requests // 10):
            client.get(url)
        for _ in range(requests):
            start = time.perf_counter()
            response = client.get(url)
            samples.append(time.perf_counter() - start)
            assert response.status_code == 200, response.text
    return statistics.median(samples) * 1000


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


def bench_propagation(work: Path, rounds: int, workers: int) -> list[float]:
    pack(make_plugin(work / "src", "whoami"), work / "modules")
    panel = Panel(work, workers=workers)
    samples = []
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
                with httpx.Client() as fresh:
                    response = fresh.get(
                        f"{panel.url}/api/v1/whoami/ping", headers={"Connection": "close"}
                    )
                if response.status_code == 200:
                    pids.add(int(response.headers["x-bench-pid"]))
            samples.append(time.perf_counter() - answered)
            panel.admin.delete("/api/v1/marketplace/uninstall/whoami")
    finally:
        panel.stop()
    return samples


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
        propagation = sorted(
            bench_propagation(work / "propagation", 10 if args.quick else 50, workers)
        )
        p99 = propagation[min(len(propagation) - 1, round(0.99 * (len(propagation) - 1)))]
        print(
            f"install response → route on all of {workers} workers "
            f"({len(propagation)} installs): "
            f"median {statistics.median(propagation) * 1000:.1f} ms, "
            f"p99 {p99 * 1000:.1f} ms, max {propagation[-1] * 1000:.1f} ms"
        )

        many = 200
        starts = {}
        latencies = {}
        for count in (0, 10, 100, many):
            folder = work / f"with{count}"
            install_directly(folder, count)
            panel = Panel(folder)
            try:
                starts[count] = panel.start_seconds
                if count in (0, many):
                    latencies[count] = latency_ms(f"{panel.url}/api/v1/core-ping", requests)
                if count == many:
                    plugin_ms = latency_ms(f"{panel.url}/api/v1/gen{many - 1:03d}/ping", requests)
            finally:
                panel.stop()
        print(
            f"core route latency: 0 plugins {latencies[0]:.3f} ms, "
            f"{many} plugins {latencies[many]:.3f} ms, ratio {latencies[many] / latencies[0]:.3f}"
        )
        print(
            f"plugin route {plugin_ms:.3f} ms vs identical core route {latencies[many]:.3f} ms "
            f"({many} plugins), ratio {plugin_ms / latencies[many]:.3f}"
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
