"""Benchmark: plugdock embedded in the billing example host (examples/hosts/billing).

Prints, for real uvicorn servers on loopback on one SQLite file:
- (a) a billing route's latency (GET /api/invoices, signed in) with plugdock mounted and 50
  scaffold plugins installed, against the same app built without plugdock
  (``create_plain_app``): p50 and p99, the two servers measured in turns; target <= 1.05x
- (b) install response → the plugin's route answering, in the billing host with 4 workers
  (an admin installs through the marketplace API with the billing cookie): each worker's
  first request after the response, over held keep-alive connections, one per worker;
  target p99 ≤ 100 ms

Run: make bench   (or .venv/bin/python bench/embedding.py [--quick])
"""

from __future__ import annotations

import argparse
import os
import re
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
from plugdock.package.scaffold import scaffold

REPO = Path(__file__).resolve().parent.parent
BILLING = REPO / "examples" / "hosts" / "billing"
ADMIN = ("admin@billing.example", "bench-admin-password")
CSRF = {"X-Plugdock-CSRF": "1"}
RUNNING = re.compile(r"Uvicorn running on http://127\.0\.0\.1:(\d+)")
PID_ROUTES = (
    "import os\n\nfrom fastapi import APIRouter\n\n"
    "router = APIRouter(prefix='/api/v1/whoami')\n\n\n"
    "@router.get('/pid')\ndef pid() -> dict:\n    return {'pid': os.getpid()}\n"
)


class Billing:
    """``uvicorn --factory <factory>`` on a free port, signed in as the billing admin."""

    def __init__(self, work: Path, env: dict[str, str], factory: str, workers: int) -> None:
        self.log = work / f"{factory}-{workers}-{time.monotonic_ns()}.log"
        command = [sys.executable, "-m", "uvicorn", "--factory", f"billing.app:{factory}"]
        command += ["--host", "127.0.0.1", "--port", "0", "--workers", str(workers)]
        command += ["--timeout-keep-alive", "120", "--log-level", "warning"]
        with self.log.open("w") as log:
            self.process = subprocess.Popen(command, env=env, stdout=log, stderr=log)
        # --log-level warning hides the "running on" line: read the port from /proc instead.
        self.url = f"http://127.0.0.1:{self._port()}"
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{self.url}/api/auth/me", timeout=2).status_code == 401:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, self.log.read_text()
            time.sleep(0.05)
        if workers > 1:
            time.sleep(3)  # every worker through its start (plugins mounted)
        self.admin = self.client()

    def _port(self) -> int:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log.read_text()
            out = subprocess.run(
                ["ss", "-ltnpH"], capture_output=True, text=True, check=False
            ).stdout
            for line in out.splitlines():
                if f"pid={self.process.pid}," in line:
                    return int(line.split()[3].rsplit(":", 1)[1])
            time.sleep(0.05)
        raise RuntimeError(self.log.read_text())

    def client(self) -> httpx.Client:
        client = httpx.Client(base_url=self.url, timeout=60)
        signed = client.post("/api/auth/sign-in", json={"email": ADMIN[0], "password": ADMIN[1]})
        signed.raise_for_status()
        return client

    def stop(self) -> None:
        self.admin.close()
        self.process.terminate()
        self.process.wait()


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def prepare(work: Path, plugins: int) -> dict[str, str]:
    """Seed the billing database; scaffold, pack and install ``plugins`` plugins into it."""
    database_url = f"sqlite:///{work / 'billing.db'}"
    env = os.environ | {
        "PYTHONPATH": str(BILLING),
        "DATABASE_URL": database_url,
        "PLUGDOCK_HOME": str(work / "instance"),
        "PLUGIN_LOCAL_DIR": str(work / "modules"),
        "BILLING_ADMIN_PASSWORD": ADMIN[1],
        "PLUGDOCK_ISOLATION": "inprocess",  # a worker's pid answers from the plugin route
    }
    subprocess.run([sys.executable, "-m", "billing.seed"], env=env, check=True)
    settings = load_settings(
        home=work / "instance", plugin_local_dir=work / "modules", database_url=database_url
    )
    installer = Installer(settings)
    for index in range(plugins):
        plugin_id = f"gen{index:02d}"
        pack(scaffold(plugin_id, work / "src"), work / "modules")
        installer.install(plugin_id)
    installer.engine.dispose()
    whoami = work / "src" / "whoami"
    scaffold("whoami", work / "src")
    (whoami / "backend" / "routes.py").write_text(PID_ROUTES)
    pack(whoami, work / "modules")
    return env


def bench_latency(
    work: Path, env: dict[str, str], requests: int, rounds: int
) -> dict[str, list[float]]:
    """GET /api/invoices on both apps, each over its own keep-alive connection, in turns."""
    servers = {
        "plugdock": Billing(work, env, "create_app", 1),
        "plain": Billing(work, env, "create_plain_app", 1),
    }
    samples: dict[str, list[float]] = {name: [] for name in servers}
    try:
        for server in servers.values():
            for _ in range(requests // 10):
                server.admin.get("/api/invoices")  # warm-up
        for _ in range(rounds):
            for name, server in servers.items():
                for _ in range(requests // rounds):
                    start = time.perf_counter()
                    answer = server.admin.get("/api/invoices")
                    samples[name].append(time.perf_counter() - start)
                    assert answer.status_code == 200, answer.text
    finally:
        for server in servers.values():
            server.stop()
    return samples


def one_connection_per_worker(server: Billing, workers: int) -> dict[int, httpx.Client]:
    held: dict[int, httpx.Client] = {}
    for _ in range(1000):
        client = httpx.Client(base_url=server.url, timeout=60)
        pid = client.get("/api/v1/whoami/pid").json()["pid"]
        if pid in held:
            client.close()
        else:
            held[pid] = client
        if len(held) == workers:
            return held
    raise RuntimeError(f"reached only {len(held)} workers")


def bench_propagation(
    work: Path, env: dict[str, str], installs: int, workers: int
) -> tuple[list[float], list[float], int]:
    """Uninstall and install 'gen00' ``installs`` times through the marketplace API; after
    each install response, its route on one held connection per worker ('whoami' tells
    the workers apart). Returns each worker's first request, the time until all four had
    answered, and the requests that missed the plugin (target 0)."""
    server = Billing(work, env, "create_app", workers)
    firsts: list[float] = []
    alls: list[float] = []
    misses = 0
    try:
        installed = server.admin.post(
            "/api/v1/marketplace/install", json={"plugin_id": "whoami"}, headers=CSRF
        )
        assert installed.status_code == 200, installed.text
        held = one_connection_per_worker(server, workers)
        uninstall = "/api/v1/marketplace/uninstall/gen00?backup=false"
        install = {"plugin_id": "gen00"}
        for _ in range(installs):
            gone = server.admin.delete(uninstall, headers=CSRF)
            assert gone.status_code == 200, gone.text
            answer = server.admin.post("/api/v1/marketplace/install", json=install, headers=CSRF)
            assert answer.status_code == 200, answer.text
            answered = time.perf_counter()
            for pid, client in held.items():
                sent = time.perf_counter()
                route = client.get("/api/v1/gen00/items")
                firsts.append(time.perf_counter() - sent)
                if route.status_code != 200:
                    misses += 1
                assert client.get("/api/v1/whoami/pid").json()["pid"] == pid
            alls.append(time.perf_counter() - answered)
    finally:
        server.stop()
    return firsts, alls, misses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer requests (a smoke run)")
    args = parser.parse_args()
    plugins = 50
    requests, rounds, installs = (2000, 10, 10) if args.quick else (10000, 50, 50)
    with tempfile.TemporaryDirectory(prefix="plugdock-bench-embedding-") as temp:
        work = Path(temp)
        env = prepare(work, plugins)
        samples = bench_latency(work, env, requests, rounds)
        firsts, alls, misses = bench_propagation(work, env, installs, workers=4)

    ms = {name: [s * 1000 for s in taken] for name, taken in samples.items()}
    p50 = {name: statistics.median(taken) for name, taken in ms.items()}
    p99 = {name: percentile(taken, 0.99) for name, taken in ms.items()}
    print(f"(a) GET /api/invoices, {requests} requests each, {plugins} plugins installed:")
    print(
        f"    with plugdock p50 {p50['plugdock']:.3f} ms, p99 {p99['plugdock']:.3f} ms; "
        f"without p50 {p50['plain']:.3f} ms, p99 {p99['plain']:.3f} ms"
    )
    print(
        f"    ratio p50 {p50['plugdock'] / p50['plain']:.3f}x, "
        f"p99 {p99['plugdock'] / p99['plain']:.3f}x (target <= 1.05x)"
    )
    first_ms = [s * 1000 for s in firsts]
    all_ms = [s * 1000 for s in alls]
    print(f"(b) install response -> plugin route, billing host, 4 workers, {installs} installs:")
    print(
        f"    each worker's first request: median {statistics.median(first_ms):.1f} ms, "
        f"p99 {percentile(first_ms, 0.99):.1f} ms, max {max(first_ms):.1f} ms "
        f"(target p99 <= 100 ms); requests that missed the plugin: {misses}"
    )
    print(
        f"    all 4 workers answered (one after the other): median "
        f"{statistics.median(all_ms):.1f} ms, p99 {percentile(all_ms, 0.99):.1f} ms"
    )


if __name__ == "__main__":
    main()
