"""The plugin author's kit as an author gets it: ``pip install plugdock``, nothing else.

One wheel is built per module, as from a clean checkout (the working tree's files, without
the built UI, so the build backend must build it), and installed with its dependencies into
one fresh venv outside the repository. In it, an author runs ``plugdock new``, ``npm
install`` (the real npm registry) and ``plugdock pack``, and the panel serves its web UI.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
STATIC = Path("src") / "plugdock" / "host" / "static"

# Wheels built from a checkout copy, a fresh venv, `npm install` from the registry.
pytestmark = pytest.mark.slow


def run(
    command: list[str], *, cwd: Path, env: dict[str, str] | None = None, timeout: int = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def checkout_copy(target: Path) -> Path:
    """The working tree's files (tracked and new, not ignored): what a clean checkout holds."""
    listed = run(["git", "ls-files", "-z", "-co", "--exclude-standard"], cwd=REPO)
    assert listed.returncode == 0, listed.stderr
    for name in filter(None, listed.stdout.split("\0")):
        source = REPO / name
        if source.is_file():  # not a file deleted in the working tree
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    assert not (target / STATIC).exists()  # ignored by git: the build must make it
    return target


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    checkout = checkout_copy(tmp_path_factory.mktemp("checkout"))
    out = tmp_path_factory.mktemp("wheel")
    built = run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(checkout)],
        cwd=out,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    (found,) = out.glob("plugdock-*.whl")
    return found


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory, wheel: Path) -> Path:
    """A fresh venv outside the repository with the wheel and its dependencies installed."""
    place = tmp_path_factory.mktemp("author") / "venv"
    assert not place.is_relative_to(REPO)
    # No pip inside and no .pyc compiling: the test's pip installs into it (half the time).
    made = run([sys.executable, "-m", "venv", "--without-pip", str(place)], cwd=place.parent)
    assert made.returncode == 0, made.stderr
    pip = [sys.executable, "-m", "pip", "--python", str(place / "bin" / "python")]
    installed = run([*pip, "install", "-q", "--no-compile", str(wheel)], cwd=place.parent)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    return place


def author_env(venv: Path, home: Path) -> dict[str, str]:
    """An author's shell: the venv first on PATH, no PLUGDOCK_ESBUILD, no esbuild on PATH."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PLUGDOCK_", "PLUGIN_"))}
    env.pop("VIRTUAL_ENV", None)
    path = [str(venv / "bin")] + [
        p for p in env.get("PATH", "").split(os.pathsep) if p and not p.startswith(str(REPO))
    ]
    env["PATH"] = os.pathsep.join(path)
    env["PLUGDOCK_HOME"] = str(home / "instance")
    assert shutil.which("esbuild", path=env["PATH"]) is None
    return env


def test_the_wheel_is_built_with_the_web_ui_and_the_panel_serves_it(
    wheel: Path, venv: Path, tmp_path: Path
) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    assert {"plugdock/host/static/index.html", "plugdock/host/static/app.js"} <= names
    assert "plugdock/host/static/vendor/react.js" in names
    script = (
        "import pathlib, plugdock\n"
        "from fastapi.testclient import TestClient\n"
        "from plugdock.host.app import create_app\n"
        "static = pathlib.Path(plugdock.__file__).parent / 'host' / 'static'\n"
        "with TestClient(create_app()) as client:\n"
        "    page = client.get('/')\n"
        "print(plugdock.__file__, (static / 'index.html').is_file(), page.status_code)\n"
        "print(page.text)\n"
    )
    env = author_env(venv, tmp_path) | {"PLUGDOCK_ADMIN_PASSWORD": "author-kit-pass"}
    result = run([str(venv / "bin" / "python"), "-c", script], cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    first, html = result.stdout.split("\n", 1)
    module, index_exists, status = first.split()
    assert Path(module).is_relative_to(venv)  # the wheel's copy, not the repository's
    assert index_exists == "True" and status == "200"
    assert '<script type="importmap">' in html and "make web" not in html


def test_a_new_plugin_packs_with_the_esbuild_its_package_json_pins(
    venv: Path, tmp_path: Path
) -> None:
    env = author_env(venv, tmp_path)
    made = run(["plugdock", "new", "kit"], cwd=tmp_path, env=env)
    assert made.returncode == 0, made.stderr
    pins = json.loads((tmp_path / "kit" / "package.json").read_text())["devDependencies"]
    npm = run(["npm", "install", "--no-audit", "--no-fund"], cwd=tmp_path / "kit", env=env)
    assert npm.returncode == 0, npm.stderr
    version = run(["kit/node_modules/.bin/esbuild", "--version"], cwd=tmp_path, env=env)
    assert version.stdout.strip() == pins["esbuild"]

    packed = run(["plugdock", "pack", "kit", "-o", "out"], cwd=tmp_path, env=env)
    assert packed.returncode == 0, packed.stderr
    package = tmp_path / "out" / "kit_v0.1.0.zip"
    with zipfile.ZipFile(package) as archive:
        names = archive.namelist()
        bundle = archive.read("frontend/dist/addon.js").decode()
    assert 'from"react"' in bundle and "/api/v1/kit/items" in bundle
    assert not [n for n in names if "node_modules" in n or n.startswith("package")]

    validated = run(["plugdock", "validate", str(package)], cwd=tmp_path, env=env)
    assert validated.returncode == 0, validated.stderr
    assert validated.stdout.startswith("ok kit 0.1.0")


def test_without_esbuild_pack_says_in_one_line_how_to_get_it(venv: Path, tmp_path: Path) -> None:
    env = author_env(venv, tmp_path)
    assert run(["plugdock", "new", "why"], cwd=tmp_path, env=env).returncode == 0
    packed = run(["plugdock", "pack", "why"], cwd=tmp_path, env=env)
    assert packed.returncode == 1
    assert packed.stderr == (
        "error: esbuild not found: run `npm install` in why (its package.json pins "
        "esbuild), or put esbuild on PATH (`npm install -g esbuild`), or set PLUGDOCK_ESBUILD "
        "to an esbuild executable\n"
    )
    assert not list(tmp_path.glob("why/*.zip"))


def test_a_wheel_without_a_built_ui_and_no_node_is_refused_loudly(tmp_path: Path) -> None:
    checkout = checkout_copy(tmp_path / "checkout")
    no_node = {**os.environ, "PATH": str(Path(sys.executable).parent)}
    assert shutil.which("npm", path=no_node["PATH"]) is None
    built = run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(tmp_path / "out"), "."],
        cwd=checkout,
        env=no_node,
    )
    assert built.returncode != 0
    assert "the web UI is not built" in built.stdout + built.stderr
    assert "needs npm (Node.js 20+) on PATH" in built.stdout + built.stderr
    assert not list(tmp_path.glob("out/*.whl"))
