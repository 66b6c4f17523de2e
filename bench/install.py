"""Benchmark: install/uninstall of the example plugin, against the raw floor and against pip.

Prints medians in ms and the ratios the README quotes:
- library install / raw floor (unzip + move + sqlite3 running up.sql + registry write)
- CLI install (a whole `plugdock install` process) / `pip install --no-deps` of a wheel
  holding the same backend code (also a whole process)

Run: make bench   (or .venv/bin/python bench/install.py [--runs N])
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from plugdock.config import load_settings
from plugdock.installer import Installer
from plugdock.package.pack import pack

REPO = Path(__file__).resolve().parent.parent
CHATBOT = REPO / "examples" / "plugins" / "ai_chatbot"


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


class LibraryRuns:
    """Install/uninstall through the library. ``hooks=False`` skips importing the plugin's
    code (route check, on_install), the part the raw floor has no counterpart for."""

    def __init__(self, work: Path, *, hooks: bool) -> None:
        settings = load_settings(
            home=work / f"instance-{hooks}", plugin_local_dir=work / "modules", database_url=None
        )
        self.installer = Installer(settings)
        self.options = {} if hooks else {"before_commit": None}
        self.installs: list[float] = []
        self.uninstalls: list[float] = []
        self.once(record=False)  # warm-up: imports, first table, page cache

    def once(self, *, record: bool = True) -> None:
        start = time.perf_counter()
        self.installer.install("ai_chatbot", **self.options)
        installed = time.perf_counter()
        self.installer.uninstall("ai_chatbot", **self.options)
        if record:
            self.installs.append(installed - start)
            self.uninstalls.append(time.perf_counter() - installed)

    def close(self) -> None:
        self.installer.engine.dispose()


class RawFloor:
    """The least an installer must do: unzip, move code into place, run up.sql, write a
    registry."""

    def __init__(self, work: Path, package: Path) -> None:
        self.root = work / "raw"
        self.package = package
        self.up_sql = (CHATBOT / "migrations" / "up.sql").read_text()
        self.down_sql = (CHATBOT / "migrations" / "down.sql").read_text()
        self.installs: list[float] = []
        self.once(record=False)  # warm-up: the page cache

    def once(self, *, record: bool = True) -> None:
        root = self.root
        shutil.rmtree(root, ignore_errors=True)
        (root / "addons" / "backend").mkdir(parents=True)
        (root / "addons" / "frontend").mkdir(parents=True)
        database = sqlite3.connect(root / "panel.db")
        start = time.perf_counter()
        with zipfile.ZipFile(self.package) as archive:
            archive.extractall(root / "staging")
        os.rename(root / "staging" / "backend", root / "addons" / "backend" / "ai_chatbot")
        os.rename(root / "staging" / "frontend", root / "addons" / "frontend" / "ai_chatbot")
        database.executescript(self.up_sql)
        (root / "addons" / "addon_registry.json").write_text(json.dumps({"ai_chatbot": "1.0.0"}))
        elapsed = time.perf_counter() - start
        database.executescript(self.down_sql)
        database.close()
        if record:
            self.installs.append(elapsed)


def _wheel(work: Path) -> Path:
    """A wheel holding the chatbot backend as an importable package, for the pip comparison."""
    wheel = work / "ai_chatbot_backend-1.0.0-py3-none-any.whl"
    records = []
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as archive:

        def add(name: str, data: bytes) -> None:
            archive.writestr(name, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            records.append(f"{name},sha256={digest},{len(data)}")

        for path in sorted((CHATBOT / "backend").rglob("*.py")):
            add(
                f"ai_chatbot_backend/{path.relative_to(CHATBOT / 'backend').as_posix()}",
                path.read_bytes(),
            )
        info = "ai_chatbot_backend-1.0.0.dist-info"
        add(
            f"{info}/METADATA", b"Metadata-Version: 2.1\nName: ai-chatbot-backend\nVersion: 1.0.0\n"
        )
        add(
            f"{info}/WHEEL",
            b"Wheel-Version: 1.0\nGenerator: bench\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        )
        archive.writestr(f"{info}/RECORD", "\n".join([*records, f"{info}/RECORD,,"]) + "\n")
    return wheel


def _source_project(work: Path) -> Path:
    """The same backend code as a Python project, the way pip installs code from source."""
    project = work / "pip-source"
    shutil.copytree(CHATBOT / "backend", project / "ai_chatbot_backend")
    (project / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools"]\nbuild-backend = "setuptools.build_meta"\n'
        '[project]\nname = "ai-chatbot-backend"\nversion = "1.0.0"\n'
        '[tool.setuptools]\npackages = ["ai_chatbot_backend"]\n'
    )
    return project


def bench_cli_vs_pip(work: Path, runs: int) -> tuple[list[float], list[float], list[float]]:
    env = os.environ | {
        "PLUGDOCK_HOME": str(work / "cli-instance"),
        "PLUGIN_LOCAL_DIR": str(work / "modules"),
    }
    env.pop("DATABASE_URL", None)
    plugdock = [sys.executable, "-m", "plugdock"]
    target = work / "pip-target"
    wheel = _wheel(work)
    pip = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--no-deps",
        "--quiet",
        "--disable-pip-version-check",
        "--no-compile",
        "--target",
        str(target),
        str(wheel),
    ]
    source = _source_project(work)
    cli, pip_times, pip_source = [], [], []
    for run in range(runs + 1):
        start = time.perf_counter()
        subprocess.run(
            [*plugdock, "install", "ai_chatbot"], env=env, check=True, capture_output=True
        )
        elapsed_cli = time.perf_counter() - start
        subprocess.run(
            [*plugdock, "uninstall", "ai_chatbot"], env=env, check=True, capture_output=True
        )
        shutil.rmtree(target, ignore_errors=True)
        start = time.perf_counter()
        subprocess.run(pip, check=True, capture_output=True)
        elapsed_pip = time.perf_counter() - start
        shutil.rmtree(target, ignore_errors=True)
        start = time.perf_counter()
        built = subprocess.run([*pip[:-1], str(source)], capture_output=True)
        elapsed_source = time.perf_counter() - start
        shutil.rmtree(target, ignore_errors=True)
        if run:
            cli.append(elapsed_cli)
            pip_times.append(elapsed_pip)
            if built.returncode == 0:  # needs setuptools from the package index
                pip_source.append(elapsed_source)
    return cli, pip_times, pip_source


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="plugdock-bench-") as scratch:
        work = Path(scratch)
        package = pack(CHATBOT, work / "modules")
        library, full, raw = (
            LibraryRuns(work, hooks=False),
            LibraryRuns(work, hooks=True),
            RawFloor(work, package),
        )
        # Round by round, so the disk and whatever else runs weigh on all three alike.
        for _ in range(args.runs):
            library.once()
            full.once()
            raw.once()
        library.close()
        full.close()
        installs, uninstalls = library.installs, library.uninstalls
        full_installs, full_uninstalls = full.installs, full.uninstalls
        floor = raw.installs
        cli, pip, pip_source = bench_cli_vs_pip(work, max(3, args.runs // 4))

    install_ms, floor_ms = median_ms(installs), median_ms(floor)
    cli_ms, pip_ms = median_ms(cli), median_ms(pip)
    print(f"example plugin: {package.name}, {args.runs} runs, SQLite")
    print(f"library install   median {install_ms:8.1f} ms   (files, SQL, rows, registry)")
    print(f"library uninstall median {median_ms(uninstalls):8.1f} ms")
    print(
        "with the plugin's code imported, routes checked, hooks run: install "
        f"{median_ms(full_installs):.1f} ms, uninstall {median_ms(full_uninstalls):.1f} ms"
    )
    print(f"raw floor install median {floor_ms:8.1f} ms")
    print(f"install / raw floor      {install_ms / floor_ms:8.2f}x   (target: <= 2x)")
    print(f"CLI install (process)    {cli_ms:8.1f} ms")
    print(f"pip install --no-deps of a wheel {pip_ms:8.1f} ms")
    print(f"CLI / pip (wheel)        {cli_ms / pip_ms:8.2f}x   (target: < 1x)")
    if pip_source:
        source_ms = median_ms(pip_source)
        print(f"pip install --no-deps ./source (builds a wheel) {source_ms:8.1f} ms")
        print(f"CLI / pip (source)       {cli_ms / source_ms:8.2f}x")


if __name__ == "__main__":
    main()
