"""Benchmark: how soon an install reaches every replica sharing one PostgreSQL database.

Three `plugdock serve` processes, each with its own instance folder and port; only A has
the plugin in its source, B and C fetch it from the database's package store.

1. Propagation: install through A with PLUGDOCK_CONVERGE_TIMEOUT=0 (the answer does not
   wait), then poll the plugin's route on all three until each answers; per install the
   time from A's answer to the last replica answering. Median and max over the runs
   (target: max ≤ 250 ms with NOTIFY).
2. The same installs with the answer waiting for convergence (the default): how long the
   answer takes, and how many requests right after it missed on any replica (must be 0).
3. Materialization: a replica's first fetch + verify + extract of the example chatbot from
   the store, against installing it locally (both in-process, medians).

Run: make bench   (or .venv/bin/python bench/replicas.py [--runs N])
Needs the PostgreSQL of `make services` (PLUGDOCK_TEST_POSTGRES_URL to use another).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from plugdock.config import load_settings
from plugdock.core.db import make_engine
from plugdock.installer import Installer
from plugdock.operations.materialize import sync_code
from plugdock.operations.workspace import Workspace
from plugdock.package.pack import pack

REPO = Path(__file__).resolve().parent.parent
CHATBOT = REPO / "examples" / "plugins" / "ai_chatbot"
POSTGRES = os.environ.get(
    "PLUGDOCK_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
PASSWORD = "bench-admin-password"
ROUTE = "/api/v1/probe/ping"


@contextmanager
def scratch_database() -> Iterator[str]:
    name = f"pd_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(POSTGRES, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name}"))
    try:
        yield make_url(POSTGRES).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()


def probe_plugin(parent: Path) -> Path:
    folder = parent / "probe"
    files = {
        "metadata.json": json.dumps(
            {
                "id": "probe",
                "name": "Probe",
                "version": "1.0.0",
                "backend": {"routes": ["/api/v1/probe/*"]},
            }
        ),
        "backend/__init__.py": "from .routes import router\n",
        "backend/routes.py": "from fastapi import APIRouter\n\n"
        "router = APIRouter(prefix='/api/v1/probe')\n\n\n"
        "@router.get('/ping')\ndef ping() -> dict:\n    return {'pong': True}\n",
    }
    for relative, body in files.items():
        (folder / relative).parent.mkdir(parents=True, exist_ok=True)
        (folder / relative).write_text(body)
    return folder


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve(
    folder: Path, database_url: str, modules: Path, timeout: str
) -> tuple[str, subprocess.Popen]:
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLUGDOCK_")} | {
        "PLUGDOCK_HOME": str(folder / "instance"),
        "PLUGIN_LOCAL_DIR": str(modules),
        "DATABASE_URL": database_url,
        "PLUGDOCK_ADMIN_PASSWORD": PASSWORD,
        "PLUGDOCK_CONVERGE_TIMEOUT": timeout,
    }
    log = (folder / "serve.log").open("a")
    process = subprocess.Popen(
        [sys.executable, "-m", "plugdock", "serve", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return url, process
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not start; see {folder / 'serve.log'}")


def until(clients: list[httpx.Client], status: int, started: float) -> list[float]:
    """Poll every replica's route until each answers ``status``; seconds since ``started``."""
    reached: list[float | None] = [None] * len(clients)
    deadline = time.monotonic() + 30
    while None in reached:
        if time.monotonic() > deadline:
            raise RuntimeError(f"replicas did not converge: {reached}")
        for i, client in enumerate(clients):
            if reached[i] is None and client.get(ROUTE).status_code == status:
                reached[i] = time.perf_counter() - started
    return [r for r in reached if r is not None]


def bench_propagation(work: Path, database_url: str, runs: int, timeout: str) -> dict:
    modules = work / f"modules-{timeout}"
    pack(probe_plugin(work / f"src-{timeout}"), modules)
    empty = work / "empty"
    empty.mkdir(exist_ok=True)
    replicas = [
        serve(work / f"{name}-{timeout}", database_url, modules if name == "a" else empty, timeout)
        for name in ("a", "b", "c")
    ]
    clients = [httpx.Client(base_url=url, timeout=30) for url, _ in replicas]
    try:
        token = (
            clients[0]
            .post("/api/v1/auth/login", json={"username": "admin", "password": PASSWORD})
            .json()["access_token"]
        )
        admin = httpx.Client(
            base_url=replicas[0][0], timeout=60, headers={"Authorization": f"Bearer {token}"}
        )
        answers, lags, misses = [], [], 0
        for run in range(runs + 1):  # the first is a warm-up
            started = time.perf_counter()
            response = admin.post("/api/v1/marketplace/install", json={"plugin_id": "probe"})
            answered = time.perf_counter()
            response.raise_for_status()
            if timeout != "0":  # the answer waited: every replica must serve it right away
                misses += sum(c.get(ROUTE).status_code != 200 for c in clients)
            lag = max(until(clients, 200, answered))
            if run:
                answers.append(answered - started)
                lags.append(lag)
            admin.delete("/api/v1/marketplace/uninstall/probe").raise_for_status()
            until(clients, 404, time.perf_counter())
        admin.close()
        return {"answer": answers, "lag": lags, "misses": misses}
    finally:
        for client in clients:
            client.close()
        for _, process in replicas:
            process.terminate()
            process.wait(timeout=20)


def bench_materialize(work: Path, database_url: str, runs: int) -> tuple[list[float], list[float]]:
    """Local install of the chatbot vs a second instance's fetch of it from the store."""
    modules = work / "chat-modules"
    pack(CHATBOT, modules)
    engine = make_engine(database_url)
    here = Installer(
        load_settings(home=work / "chat-a", plugin_local_dir=modules, database_url=database_url),
        engine=engine,
    )
    there = Workspace(
        load_settings(
            home=work / "chat-b", plugin_local_dir=work / "none", database_url=database_url
        ),
        engine=engine,
    )
    installs, fetches = [], []
    for run in range(runs + 1):
        start = time.perf_counter()
        here.install("ai_chatbot")
        installed = time.perf_counter() - start
        start = time.perf_counter()
        failures = sync_code(there)
        fetched = time.perf_counter() - start
        if failures:
            raise RuntimeError(failures)
        if run:
            installs.append(installed)
            fetches.append(fetched)
        here.uninstall("ai_chatbot")
        sync_code(there)  # removes its copy again
    engine.dispose()
    return installs, fetches


def ms(samples: list[float]) -> str:
    return f"median {statistics.median(samples) * 1000:.0f} ms, max {max(samples) * 1000:.0f} ms"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="plugdock-bench-replicas-"))
    try:
        with scratch_database() as database_url:
            raw = bench_propagation(work, database_url, args.runs, "0")
        with scratch_database() as database_url:
            waited = bench_propagation(work, database_url, args.runs, "5")
        with scratch_database() as database_url:
            installs, fetches = bench_materialize(work, database_url, max(5, args.runs // 2))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"3 replicas on PostgreSQL, {args.runs} installs each")
    print(f"  install answer → plugin answering on all 3 (answer not waiting): {ms(raw['lag'])}")
    print(
        f"  install answer, waiting for convergence:                        {ms(waited['answer'])}"
    )
    print(f"    requests right after that answer that missed on a replica:     {waited['misses']}")
    print(f"  install answer without waiting, for comparison:                  {ms(raw['answer'])}")
    print("first materialization of ai_chatbot on a replica vs a local install")
    print(f"  local install:                   {ms(installs)}")
    print(f"  fetch + verify + extract + swap: {ms(fetches)}")
    ratio = statistics.median(fetches) / statistics.median(installs)
    print(f"  ratio (median): {ratio:.2f}")


if __name__ == "__main__":
    main()
