"""Benchmark: process isolation against plugins inside the panel, side by side (issue 10).

Two real panels on loopback (SQLite), one with ``PLUGDOCK_ISOLATION=process`` and one with
``inprocess``, the same small plugin installed in each. Prints:

- plugin route latency in each mode, p50 and p99 (N sequential requests on one keep-alive
  client, the two panels measured in interleaved turns), an identical core route for
  reference, and the p50 that process mode adds (target: at most 1 ms)
- per install: the install call's duration in each mode, and in process mode the time from
  the install response until the plugin's route answers (median and max)
- memory of one idle plugin process tree (bubblewrap + Python): RSS and PSS
- the panel's RSS (and open file descriptors) over install/uninstall cycles in each mode,
  cycled in turns, with the slope in KiB per cycle after the first 100 (target: flat)

Run: make bench   (or .venv/bin/python bench/isolation.py [--requests 2000] [--cycles 1000])
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections import Counter
from contextlib import ExitStack
from pathlib import Path

import httpx
from runtime import Panel, make_plugin, percentile  # bench/runtime.py, beside this script

from plugdock.package.pack import pack

MODES = ("process", "inprocess")
TARGET_ADDED_P50_MS = 1.0


def start_panel(work: Path, mode: str) -> Panel:
    """bench/runtime's panel (uvicorn, one worker), in the given isolation mode."""
    for plugin_id in ("pinger", "cycler"):
        pack(make_plugin(work / "src", plugin_id), work / "modules")
    os.environ["PLUGDOCK_ISOLATION"] = mode  # Panel copies os.environ into the server's
    try:
        panel = Panel(work)
    finally:
        del os.environ["PLUGDOCK_ISOLATION"]
    install(panel, "pinger")
    return panel


def install(panel: Panel, plugin_id: str) -> float:
    started = time.perf_counter()
    answer = panel.admin.post("/api/v1/marketplace/install", json={"plugin_id": plugin_id})
    assert answer.status_code == 200, answer.text
    return time.perf_counter() - started


def uninstall(panel: Panel, plugin_id: str) -> None:
    answer = panel.admin.delete(f"/api/v1/marketplace/uninstall/{plugin_id}")
    assert answer.status_code == 200, answer.text


def latencies(
    urls: list[str], requests: int, failures: Counter[str], rounds: int = 20
) -> list[list[float]]:
    """Every request's latency (ms) per URL, each on its own keep-alive client, in turns.

    A non-200 is counted in ``failures`` (not sampled) and waited out: a plugin process that
    died is restarted by the panel, and the measurement goes on once it answers again.
    """
    samples: list[list[float]] = [[] for _ in urls]
    with ExitStack() as stack:
        clients = [stack.enter_context(httpx.Client(timeout=30)) for _ in urls]
        for client, url in zip(clients, urls, strict=True):
            for _ in range(max(20, requests // 10)):  # warm-up: connections, caches
                assert client.get(url).status_code == 200
        for _ in range(rounds):
            for client, url, taken in zip(clients, urls, samples, strict=True):
                for _ in range(requests // rounds):
                    start = time.perf_counter()
                    response = client.get(url)
                    if response.status_code == 200:
                        taken.append((time.perf_counter() - start) * 1000)
                        continue
                    failures[f"{url.split('/', 3)[3]}: {response.text[:120]}"] += 1
                    while client.get(url).status_code != 200:
                        time.sleep(0.05)
    return samples


def install_timings(panels: dict[str, Panel], rounds: int) -> dict[str, list[float]]:
    """Install call durations per mode, and (process mode) install response → route answers."""
    found: dict[str, list[float]] = {"answers": [], **{mode: [] for mode in panels}}
    for _ in range(rounds):
        for mode, panel in panels.items():
            found[mode].append(install(panel, "cycler"))
            answered = time.perf_counter()
            # A request arriving while the process starts waits for it; poll until a 200.
            with httpx.Client(base_url=panel.url, timeout=60) as client:
                while client.get("/api/v1/cycler/ping").status_code != 200:
                    time.sleep(0.001)
            if mode == "process":
                found["answers"].append(time.perf_counter() - answered)
            uninstall(panel, "cycler")
    return found


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    found, stack = [], [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found


def plugin_tree_kib(panel: Panel, plugin_id: str) -> tuple[int, int | None, int]:
    """RSS and PSS (None when unreadable) summed over the plugin's processes, and their count."""
    rss, pss, count = 0, 0, 0
    for pid in descendants(panel.process.pid):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            wanted = f'"plugin_id": "{plugin_id}"'.encode()  # in the order on its command line
            if b"plugdock.isolation.child" not in cmdline or wanted not in cmdline:
                continue
            count += 1
            rss += kib_field(Path(f"/proc/{pid}/status").read_text(), "VmRSS")
            if pss is not None:
                try:
                    rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
                    pss += kib_field(rollup, "Pss")
                except OSError:
                    pss = None
        except OSError:
            continue
    return rss, pss, count


def kib_field(text: str, name: str) -> int:
    return int(next(line for line in text.splitlines() if line.startswith(name + ":")).split()[1])


def panel_state(panel: Panel) -> tuple[int, int]:
    """The panel's RSS (KiB) and open file descriptors."""
    pid = panel.process.pid
    rss = kib_field(Path(f"/proc/{pid}/status").read_text(), "VmRSS")
    return rss, len(os.listdir(f"/proc/{pid}/fd"))


def cycle_memory(
    panels: dict[str, Panel], marks: list[int]
) -> tuple[dict[str, list[tuple[int, int, int]]], float]:
    """(cycles, RSS KiB, fds) per mode at each mark; one cycle in each mode per turn."""
    readings = {mode: [(0, *panel_state(panel))] for mode, panel in panels.items()}
    started, done = time.perf_counter(), 0
    for mark in marks:
        while done < mark:
            for panel in panels.values():
                install(panel, "cycler")
                assert panel.admin.get("/api/v1/cycler/ping").status_code == 200
                uninstall(panel, "cycler")
            done += 1
        time.sleep(0.5)  # let the process mode's background stop finish
        for mode, panel in panels.items():
            readings[mode].append((mark, *panel_state(panel)))
        now = ", ".join(f"{m} {r[-1][1] / 1024:.1f} MiB" for m, r in readings.items())
        print(f"  {mark} cycles, {time.perf_counter() - started:.0f} s: {now}", flush=True)
    return readings, time.perf_counter() - started


def slope(readings: list[tuple[int, int, int]]) -> float:
    """KiB per cycle from the 100-cycle reading (or the first) to the last."""
    base = next((r for r in readings if r[0] >= 100), readings[0])
    last = readings[-1]
    return (last[1] - base[1]) / (last[0] - base[0]) if last[0] > base[0] else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="per mode and route")
    parser.add_argument("--installs", type=int, default=10)
    parser.add_argument("--cycles", type=int, default=1000)
    args = parser.parse_args()
    marks = sorted({m for m in (100, 500, args.cycles) if m <= args.cycles})
    began = time.perf_counter()
    print(f"load average at start: {os.getloadavg()[0]:.2f} ({os.cpu_count()} CPUs)")

    with (
        tempfile.TemporaryDirectory(prefix="plugdock-isolation-") as scratch,
        ExitStack() as on_exit,
    ):
        panels = {}
        for mode in MODES:
            panels[mode] = start_panel(Path(scratch) / mode, mode)
            on_exit.callback(panels[mode].stop)

        urls = []
        for panel in panels.values():
            urls += [f"{panel.url}/api/v1/pinger/ping", f"{panel.url}/api/v1/core-ping"]
        failures: Counter[str] = Counter()
        measured = latencies(urls, args.requests, failures)
        taken = dict(zip(["pp", "pc", "ip", "ic"], measured, strict=True))
        added = statistics.median(taken["pp"]) - statistics.median(taken["ip"])

        rss, pss, count = plugin_tree_kib(panels["process"], "pinger")
        timings = install_timings(panels, args.installs)
        readings, cycling = cycle_memory(panels, marks)

    ms = "{:8.3f}".format
    print(f"\nroute latency, ms ({args.requests} sequential requests each, keep-alive, in turns)")
    print(f"{'':28}{'p50':>8}{'p99':>8}")
    for key, label in (
        ("pp", "plugin route, process"),
        ("ip", "plugin route, inprocess"),
        ("pc", "core route, process panel"),
        ("ic", "core route, inprocess panel"),
    ):
        print(f"{label:28}{ms(statistics.median(taken[key]))}{ms(percentile(taken[key], 0.99))}")
    for failure, count in failures.items():
        print(f"  not 200 (left out, waited until it answered again): {count}x {failure}")
    verdict = "met" if added <= TARGET_ADDED_P50_MS else "MISSED"
    print(f"added by process mode at p50: {added:.3f} ms (target <= 1 ms: {verdict})")

    print(f"\ninstall ({args.installs} installs and uninstalls per mode), ms: median / max")
    for mode in MODES:
        found = [t * 1000 for t in timings[mode]]
        print(f"  install call, {mode:<10} {statistics.median(found):8.1f} / {max(found):8.1f}")
    found = [t * 1000 for t in timings["answers"]]
    print(
        f"  install response → process-mode route answers {statistics.median(found):.1f} / "
        f"{max(found):.1f}"
    )

    shown = f"{pss / 1024:.1f} MiB" if pss is not None else "unreadable"
    print(f"\nidle plugin process tree ({count} processes): RSS {rss / 1024:.1f} MiB, PSS {shown}")

    print(f"\npanel after install/uninstall cycles ({cycling:.0f} s for both modes, in turns)")
    print(f"{'cycles':>8}" + "".join(f"{m + ' RSS MiB':>20}{'fds':>6}" for m in MODES))
    for row in zip(*(readings[m] for m in MODES), strict=True):
        print(f"{row[0][0]:8}" + "".join(f"{r[1] / 1024:20.1f}{r[2]:6}" for r in row))
    print(
        "slope after 100 cycles, KiB/cycle: "
        + ", ".join(f"{m} {slope(readings[m]):.1f}" for m in MODES)
    )
    print(
        f"\ntotal {time.perf_counter() - began:.0f} s; load average at end {os.getloadavg()[0]:.2f}"
    )


if __name__ == "__main__":
    main()
