"""Benchmark: host events from the emitter's commit to the plugin's handler, across replicas.

Three `plugdock serve` replicas (each its own instance folder and port) share one
PostgreSQL database; a plugin handling ``user.created`` (an event the reference panel
declares) is installed. The bench emits events itself, straight into the outbox as a host
does (``plugdock.instance.outbox.emit`` in its own transaction), each carrying its commit
time; the handler records when it started.

1. Latency: events one at a time, spaced out; emit commit → handler started, p50/p99/max
   (target: p99 ≤ 50 ms), and how the deliveries spread over the replicas.
2. Throughput: N events (default 10,000) emitted as fast as one connection can, in
   transactions of 100; how long after the last commit every event was handled
   (target: ≤ 10 s), and that each was handled exactly once (the handler is not
   idempotent on purpose: a second run of a delivery would show as a duplicate row).

Run: make bench   (or .venv/bin/python bench/events.py [--events N] [--latency-runs N])
Needs the PostgreSQL of `make services` (PLUGDOCK_TEST_POSTGRES_URL to use another).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text

from plugdock.instance import outbox
from plugdock.package.pack import pack

sys.path.insert(0, str(Path(__file__).resolve().parent))
from replicas import PASSWORD, scratch_database, serve

HANDLER = (
    "import os\nimport time\n\nfrom sqlalchemy import text\n\nfrom plugdock import sdk\n\n\n"
    "def on_created(event: sdk.Event) -> None:\n"
    "    started = time.time()\n"
    "    with sdk.session() as db:\n"
    "        db.execute(text('INSERT INTO hear_seen (seq, emitted, started, pid, delivery) "
    "VALUES (:s, :e, :t, :p, :d)'), {'s': event.payload['seq'], 'e': event.payload['at'],"
    " 't': started, 'p': os.getpid(), 'd': event.delivery_id})\n"
)


def hear_plugin(parent: Path) -> Path:
    folder = parent / "hear"
    files = {
        "metadata.json": json.dumps(
            {
                "id": "hear",
                "name": "Hear",
                "version": "1.0.0",
                "events": {"user.created": "handlers:on_created"},
            }
        ),
        "backend/__init__.py": "",
        "backend/handlers.py": HANDLER,
        "migrations/up.sql": "CREATE TABLE hear_seen (seq INTEGER NOT NULL, emitted DOUBLE "
        "PRECISION NOT NULL, started DOUBLE PRECISION NOT NULL, pid INTEGER NOT NULL, "
        "delivery BIGINT NOT NULL);\n",
        "migrations/down.sql": "DROP TABLE hear_seen;\n",
    }
    for relative, body in files.items():
        (folder / relative).parent.mkdir(parents=True, exist_ok=True)
        (folder / relative).write_text(body)
    return folder


def emit(conn: object, seq: int) -> None:
    outbox.emit(conn, "user.created", 1, {"seq": seq, "at": time.time()}, None)  # type: ignore[arg-type]


def seen(engine: object) -> list[tuple[int, float, float, int]]:
    with engine.connect() as conn:  # type: ignore[attr-defined]
        rows = conn.execute(text("SELECT seq, emitted, started, pid FROM hear_seen"))
        return [tuple(r) for r in rows]


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency-runs", type=int, default=200)
    parser.add_argument("--events", type=int, default=10_000)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="pd-bench-events-") as tmp, scratch_database() as url:
        work = Path(tmp)
        modules = work / "modules"
        modules.mkdir()
        pack(hear_plugin(work / "src"), modules)
        replicas = [serve(work / name, url, modules, "10") for name in ("a", "b", "c")]
        try:
            first_url = replicas[0][0]
            login = {"username": "admin", "password": PASSWORD}
            token = httpx.post(f"{first_url}/api/v1/auth/login", json=login).json()["access_token"]
            headers = {"Authorization": f"Bearer {token}"}
            done = httpx.post(
                f"{first_url}/api/v1/marketplace/install",
                json={"plugin_id": "hear"},
                headers=headers,
                timeout=120,
            )
            done.raise_for_status()
            engine = create_engine(url)
            with engine.begin() as conn:  # the install's own events are not measured
                conn.execute(text("DELETE FROM hear_seen"))

            # 1. Latency, one event at a time.
            for seq in range(args.latency_runs):
                with engine.begin() as conn:
                    emit(conn, seq)
                time.sleep(0.02)
            deadline = time.monotonic() + 60
            while len(seen(engine)) < args.latency_runs and time.monotonic() < deadline:
                time.sleep(0.1)
            rows = seen(engine)
            latencies = [(started - emitted) * 1000 for _seq, emitted, started, _pid in rows]
            pids = sorted({pid for *_rest, pid in rows})
            print(f"latency, emit commit → handler started ({len(rows)} events, 3 replicas):")
            p50, p99 = statistics.median(latencies), percentile(latencies, 0.99)
            print(
                f"  p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {max(latencies):.1f} ms"
                "   (target p99 ≤ 50 ms)"
            )
            print(f"  handled in {len(pids)} distinct worker process(es)")

            # 2. Throughput.
            with engine.begin() as conn:
                conn.execute(text("DELETE FROM hear_seen"))
            started = time.perf_counter()
            for batch in range(0, args.events, 100):
                with engine.begin() as conn:
                    for seq in range(batch, min(batch + 100, args.events)):
                        emit(conn, seq)
            emitted_in = time.perf_counter() - started
            last = time.perf_counter()
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                with engine.connect() as conn:
                    count = conn.execute(text("SELECT COUNT(*) FROM hear_seen")).scalar_one()
                if count >= args.events:
                    break
                time.sleep(0.05)
            drained = time.perf_counter() - last
            with engine.connect() as conn:
                total, distinct = conn.execute(
                    text("SELECT COUNT(*), COUNT(DISTINCT seq) FROM hear_seen")
                ).one()
            print(f"throughput ({args.events} events in transactions of 100):")
            print(f"  emitted in {emitted_in:.2f} s; all handled {drained:.2f} s after the last")
            print(
                f"  commit (target ≤ 10 s); handled {total}, distinct {distinct}, lost "
                f"{args.events - distinct}, twice {total - distinct}"
            )
        finally:
            for _url, process in replicas:
                process.terminate()
            for _url, process in replicas:
                process.wait(timeout=30)


if __name__ == "__main__":
    main()
