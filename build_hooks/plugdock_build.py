"""The build backend of plugdock: setuptools, plus the web UI in every wheel and sdist.

``pyproject.toml`` names this module (``backend-path = ["build_hooks"]``). A wheel or
sdist built from a clean checkout must serve the panel's UI, so when
``src/plugdock/host/static/`` is not built this runs the UI build (``web/``:
``npm ci`` + ``node build.mjs``, what ``make web`` does) first, and fails the build
loudly when it cannot. An editable install (``pip install -e .``, the Makefile's) is
setuptools alone and stays fast: ``make web`` builds the UI into the source tree there.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from setuptools import build_meta as _setuptools
from setuptools.build_meta import *  # noqa: F403  (every hook we do not wrap, unchanged)

ROOT = Path(__file__).resolve().parents[1]
WEB = ROOT / "web"
STATIC = ROOT / "src" / "plugdock" / "host" / "static"
BUILT = STATIC / "index.html"


class UIBuildError(RuntimeError):
    """The web UI could not be built, so no package is made without it."""


def ensure_ui() -> None:
    """Build web/ into src/plugdock/host/static unless it is built already."""
    if BUILT.is_file():
        return
    if not (WEB / "package.json").is_file():
        raise UIBuildError(
            f"the web UI is not built ({BUILT} is missing) and there is no web/ to build it from"
        )
    for tool in ("npm", "node"):
        if shutil.which(tool) is None:
            raise UIBuildError(
                f"the web UI is not built ({BUILT} is missing) and building it needs {tool} "
                "(Node.js 20+) on PATH; or run `make web` first"
            )
    for command in (
        ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
        ["node", "build.mjs"],
    ):
        result = subprocess.run(command, cwd=WEB, check=False)
        if result.returncode != 0:
            raise UIBuildError(f"building the web UI failed: `{' '.join(command)}` in {WEB}")
    if not BUILT.is_file():
        raise UIBuildError(f"building the web UI did not produce {BUILT}")


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):  # type: ignore[no-untyped-def]
    ensure_ui()
    return _setuptools.build_wheel(wheel_directory, config_settings, metadata_directory)


def build_sdist(sdist_directory, config_settings=None):  # type: ignore[no-untyped-def]
    ensure_ui()  # the sdist carries the built UI, so a wheel built from it needs no Node.js
    return _setuptools.build_sdist(sdist_directory, config_settings)
