"""Benchmark: what host filters add to a request, side by side in one run (issue 27).

Two embedding hosts in this process (SQLite), one with ``PLUGDOCK_ISOLATION=inprocess`` and
one with ``process``. A host route applies a filter point N times inside one request and
times each ``await host.filters.apply(...)`` on the app's own event loop, so the figure is
what the filters add to that request (no HTTP noise). Prints p50 and p99 (ms) for:

- a declared point no plugin filters (the floor),
- 10 well-behaved async filters in the panel (target: at most 0.2 ms),
- 10 well-behaved sync filters in the panel (each runs in a worker thread, for its bound),
- one filter in a sandboxed plugin process (target: at most 1 ms).

Run: .venv/bin/python bench/filters.py [--calls 2000]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import BaseModel

from plugdock import HostAuth, HostUser, PluginHost
from plugdock.config import load_settings
from plugdock.package.pack import pack

TARGET_INPROCESS_MS = 0.2  # 10 filters in the panel
TARGET_PROCESS_MS = 1.0  # 1 filter in a plugin process
ADMIN = HostUser(id=1, username="admin", is_admin=True)


class InvoiceTotal(BaseModel):
    invoice_id: int
    total: float
    currency: str = "EUR"


ASYNC_FILTER = (
    "async def add(value: dict) -> dict:\n    return value | {'total': value['total'] + 1}\n"
)
SYNC_FILTER = "def add(value: dict) -> dict:\n    return value | {'total': value['total'] + 1}\n"


def make_filter_plugin(parent: Path, plugin_id: str, point: str, code: str) -> Path:
    """A plugin without routes or tables that runs ``filters:add`` on ``point``."""
    folder = parent / plugin_id
    files = {
        "metadata.json": json.dumps(
            {
                "id": plugin_id,
                "name": plugin_id,
                "version": "1.0.0",
                "filters": {point: {"handler": "filters:add", "priority": 10}},
            }
        ),
        "backend/__init__.py": "",
        "backend/filters.py": code,
        "migrations/up.sql": f"CREATE TABLE {plugin_id}_t (id INTEGER PRIMARY KEY);\n",
        "migrations/down.sql": f"DROP TABLE {plugin_id}_t;\n",
    }
    for relative, text in files.items():
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return folder


def build(work: Path, mode: str, plugins: dict[str, tuple[str, str]]) -> TestClient:
    """An embedding host in ``mode`` with ``plugins`` (id → (point, code)) installed."""
    modules = work / "modules"
    for plugin_id, (point, code) in plugins.items():
        pack(make_filter_plugin(work / "src", plugin_id, point, code), modules)
    settings = load_settings(
        home=work / "instance", plugin_local_dir=modules, isolation=mode, filter_timeout=5.0
    )
    host = PluginHost(
        HostAuth(current_user=lambda: ADMIN),
        settings=settings,
        database_url=f"sqlite:///{work / 'host.db'}",
    )
    for point in ("bench.none", "bench.async", "bench.sync", "bench.process"):
        host.filters.declare(point, InvoiceTotal)
    app = FastAPI()

    @app.get("/measure/{point}")
    async def measure(point: str, calls: int) -> dict[str, Any]:
        """Times each apply inside this one request; the value must come out changed."""
        taken = []
        for i in range(calls):
            value = InvoiceTotal(invoice_id=i, total=100)
            start = time.perf_counter()
            value = await host.filters.apply(point, value)
            taken.append((time.perf_counter() - start) * 1000)
        return {"ms": taken, "total": value.total}

    host.mount(app)
    client = TestClient(app)
    client.__enter__()
    for plugin_id in plugins:
        done = client.post("/api/v1/marketplace/install", json={"plugin_id": plugin_id})
        assert done.status_code == 200, done.text
    return client


def measure(client: TestClient, point: str, calls: int, expected: float) -> list[float]:
    client.get(f"/measure/{point}", params={"calls": max(50, calls // 10)})  # warm-up
    answer = client.get(f"/measure/{point}", params={"calls": calls})
    assert answer.status_code == 200, answer.text
    assert answer.json()["total"] == expected, answer.json()["total"]  # every filter ran
    return list(answer.json()["ms"])


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="plugdock-bench-filters-") as tmp:
        inprocess = build(
            Path(tmp) / "inprocess",
            "inprocess",
            {f"async_{i}": ("bench.async", ASYNC_FILTER) for i in range(10)}
            | {f"sync_{i}": ("bench.sync", SYNC_FILTER) for i in range(10)},
        )
        process = build(
            Path(tmp) / "process", "process", {"sandboxed": ("bench.process", SYNC_FILTER)}
        )
        try:
            rows = [
                ("no filter (declared point)", measure(inprocess, "bench.none", args.calls, 100)),
                (
                    "10 async filters, in-process",
                    measure(inprocess, "bench.async", args.calls, 110),
                ),
                ("10 sync filters, in-process", measure(inprocess, "bench.sync", args.calls, 110)),
                ("1 filter, process mode", measure(process, "bench.process", args.calls, 101)),
            ]
        finally:
            process.__exit__(None, None, None)
            inprocess.__exit__(None, None, None)
    print(f"host filters: time one apply adds to a request, {args.calls} calls each (ms)")
    print(f"{'':32} {'p50':>8} {'p99':>8} {'mean':>8}")
    for name, samples in rows:
        print(
            f"{name:32} {percentile(samples, 0.5):8.3f} {percentile(samples, 0.99):8.3f} "
            f"{statistics.fmean(samples):8.3f}"
        )
    added_async = percentile(rows[1][1], 0.5)
    added_process = percentile(rows[3][1], 0.5)
    for name, added, target in [
        ("10 in-process (async) filters", added_async, TARGET_INPROCESS_MS),
        ("1 process-mode filter", added_process, TARGET_PROCESS_MS),
    ]:
        verdict = "met" if added <= target else "MISSED"
        print(f"{name}: p50 {added:.3f} ms (target <= {target} ms: {verdict})")


if __name__ == "__main__":
    main()
