"""Benchmark: remote installs and downloads against their local and curl equivalents.

A real plugin server (``plugdock server``, its own process) on loopback. Prints:

- library install of the example plugin from the remote server (cold: empty download
  cache; warm: cached package, only the signed index is refreshed) vs from the local
  folder, and the ratios; every package is signed and its signer trusted, as in production
- download throughput of a 50 MiB signed package (incompressible bytes inside a valid
  package) by the remote source (stream to disk + sha256 + signed-index check) vs
  ``curl -o`` of the same URL from the same server, and the ratio
- peak RSS of a process downloading a 5 MiB and a 50 MiB package: flat means streaming

Run: make bench   (or .venv/bin/python bench/remote.py [--runs N])
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
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
from plugdock.server import Storage
from plugdock.server.client import publish
from plugdock.sources.remote import RemoteSource
from plugdock.trust.signing import generate_keypair, load_private_key, load_public_key, sign_package
from plugdock.trust.store import TrustStore

REPO = Path(__file__).resolve().parent.parent
CHATBOT = REPO / "examples" / "plugins" / "ai_chatbot"
MIB = 1024 * 1024


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(data: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    process = subprocess.Popen(
        # Review off: this measures transfer and install, not the review queue.
        [
            *(sys.executable, "-m", "plugdock", "server", "--data", str(data)),
            *("--port", str(port), "--review", "off"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/manifest.json", timeout=1).status_code == 200:
                return process, url
        except httpx.HTTPError:
            time.sleep(0.05)
    process.kill()
    raise SystemExit("the plugin server did not start")


def big_plugin(parent: Path, plugin_id: str, size: int) -> Path:
    """A valid plugin whose backend carries ``size`` random (incompressible) bytes."""
    folder = parent / plugin_id
    (folder / "backend").mkdir(parents=True)
    (folder / "migrations").mkdir()
    (folder / "metadata.json").write_text(
        json.dumps({"id": plugin_id, "name": plugin_id, "version": "1.0.0"})
    )
    (folder / "backend" / "__init__.py").write_text("")
    with open(folder / "backend" / "blob.bin", "wb") as handle:
        for _ in range(size // MIB):
            handle.write(os.urandom(MIB))
    (folder / "migrations" / "up.sql").write_text(f"CREATE TABLE {plugin_id}_t (id INTEGER);\n")
    (folder / "migrations" / "down.sql").write_text(f"DROP TABLE {plugin_id}_t;\n")
    return folder


def host(work: Path, name: str, public_key: Path, **values: object):  # type: ignore[no-untyped-def]
    settings = load_settings(
        home=work / name,
        database_url=f"sqlite:///{work / name / 'panel.db'}",
        allow_http_pin=True,  # the bench's server is plain http on loopback
        **values,
    )
    TrustStore(settings.trust_dir).add(load_public_key(public_key), "bench")
    return settings


def bench_installs(work: Path, url: str, package: Path, pub: Path, runs: int) -> dict[str, float]:
    local_dir = work / "modules"
    local_dir.mkdir()
    shutil.copy(package, local_dir / package.name)
    results = {}
    for label, values in (
        ("local", {"plugin_local_dir": local_dir}),
        ("remote cold", {"plugin_source": "remote", "plugin_server_url": url}),
        ("remote warm", {"plugin_source": "remote", "plugin_server_url": url}),
    ):
        settings = host(work, label.replace(" ", "-"), pub, **values)
        installer = Installer(settings)
        installer.install("ai_chatbot")  # warm-up (imports, first pinning of the server root)
        installer.uninstall("ai_chatbot")
        samples = []
        for _ in range(runs):
            if label == "remote cold":
                shutil.rmtree(settings.cache_dir, ignore_errors=True)
            start = time.perf_counter()
            installer.install("ai_chatbot")
            samples.append(time.perf_counter() - start)
            installer.uninstall("ai_chatbot")
        installer.engine.dispose()
        results[label] = statistics.median(samples) * 1000
    return results


def bench_download(work: Path, url: str, pub: Path, runs: int) -> tuple[float, float]:
    """Seconds per 50 MiB download: the remote source vs curl (medians)."""
    settings = host(work, "download", pub, plugin_source="remote", plugin_server_url=url)
    source = RemoteSource(settings)
    source.fetch("big50")  # warm-up: pins the root, fills the server's page cache
    ours, theirs = [], []
    target = work / "curl.zip"
    for _ in range(runs):
        shutil.rmtree(settings.cache_dir, ignore_errors=True)
        start = time.perf_counter()
        source.fetch("big50")
        ours.append(time.perf_counter() - start)
        start = time.perf_counter()
        subprocess.run(
            ["curl", "-sSf", "-o", str(target), f"{url}/download/big50/1.0.0"], check=True
        )
        theirs.append(time.perf_counter() - start)
    return statistics.median(ours), statistics.median(theirs)


# VmHWM, not getrusage's ru_maxrss: the latter keeps the parent's high-water mark across
# fork+exec, so a child of a process that held 50 MiB would report at least that.
_RSS_PROBE = """
import re, sys
from plugdock.config import load_settings
from plugdock.sources.remote import RemoteSource
settings = load_settings(
    home=sys.argv[1], plugin_source="remote", plugin_server_url=sys.argv[2], allow_http_pin=True
)
RemoteSource(settings).fetch(sys.argv[3])
status = open("/proc/self/status").read()
print(re.search(r"VmHWM:\\s+(\\d+) kB", status).group(1))
"""


def peak_rss_mib(work: Path, url: str, pub: Path, plugin_id: str) -> float:
    settings = host(work, f"rss-{plugin_id}", pub, plugin_source="remote", plugin_server_url=url)
    done = subprocess.run(
        [sys.executable, "-c", _RSS_PROBE, str(settings.home), url, plugin_id],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(done.stdout.strip().splitlines()[-1]) / 1024


def main() -> None:
    logging.basicConfig(level=logging.ERROR)  # no first-use pinning notices in the figures
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="plugdock-bench-remote-") as scratch:
        work = Path(scratch)
        data = work / "server"
        token = Storage(data).ensure().create_token("bench")
        key, pub = generate_keypair(work / "keys", "bench")
        private = load_private_key(key)
        packages = [pack(CHATBOT, work / "dist")]
        for plugin_id, size in (("big5", 5 * MIB), ("big50", 50 * MIB)):
            packages.append(pack(big_plugin(work / "src", plugin_id, size), work / "dist"))
        process, url = start_server(data)
        try:
            for package in packages:
                sign_package(package, private, "bench")
                publish(package, url, token)
            installs = bench_installs(work, url, packages[0], pub, args.runs)
            ours, curl = bench_download(work, url, pub, max(3, args.runs // 2))
            rss5 = peak_rss_mib(work, url, pub, "big5")
            rss50 = peak_rss_mib(work, url, pub, "big50")
        finally:
            process.terminate()
            process.wait(timeout=10)
    size = packages[2].stat().st_size if packages[2].exists() else 50 * MIB
    cores = os.cpu_count()
    print(f"| figure ({cores} cores, loopback, SQLite, medians) | value |")
    print("| --- | --- |")
    print(f"| install from local folder | {installs['local']:.1f} ms |")
    print(f"| install from remote, cold cache | {installs['remote cold']:.1f} ms |")
    print(f"| install from remote, cached package | {installs['remote warm']:.1f} ms |")
    print(f"| remote cold / local | {installs['remote cold'] / installs['local']:.2f}x |")
    print(f"| remote cached / local | {installs['remote warm'] / installs['local']:.2f}x |")
    print(
        f"| 50 MiB download, remote source | {ours * 1000:.0f} ms ({size / MIB / ours:.0f} MiB/s) |"
    )
    print(f"| 50 MiB download, curl | {curl * 1000:.0f} ms ({size / MIB / curl:.0f} MiB/s) |")
    print(f"| remote source / curl (time) | {ours / curl:.2f}x |")
    print(f"| peak RSS downloading 5 MiB / 50 MiB | {rss5:.0f} MiB / {rss50:.0f} MiB |")


if __name__ == "__main__":
    main()
