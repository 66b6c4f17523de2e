"""The plugdock command as a user runs it: new, pack, validate, install, list, doctor, uninstall."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return os.environ | {
        "PLUGDOCK_HOME": str(tmp_path / "instance"),
        "PLUGIN_LOCAL_DIR": str(tmp_path / "modules"),
    }


def plugdock(
    env: dict[str, str], *args: str, cwd: Path | None = None
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "plugdock", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_author_flow(tmp_path: Path, env: dict[str, str]) -> None:
    made = plugdock(env, "new", "my_notes", "--dir", str(tmp_path))
    assert made.returncode == 0, made.stderr
    folder = tmp_path / "my_notes"
    assert (folder / "backend" / "routes.py").is_file()

    packed = plugdock(env, "pack", str(folder), "-o", str(tmp_path / "modules"))
    assert packed.returncode == 0, packed.stderr
    package = tmp_path / "modules" / "my_notes_v0.1.0.zip"
    assert package.is_file()
    assert "CHECKSUMS.sha256" in zipfile.ZipFile(package).namelist()

    validated = plugdock(env, "validate", str(package))
    assert validated.returncode == 0, validated.stderr
    assert "my_notes_items" in validated.stdout

    available = plugdock(env, "available")
    assert "my_notes" in available.stdout and "0.1.0" in available.stdout

    installed = plugdock(env, "install", "my_notes", "--by", "tester")
    assert installed.returncode == 0, installed.stderr
    assert "installed my_notes 0.1.0" in installed.stdout

    listed = plugdock(env, "list")
    assert "my_notes" in listed.stdout and "tester" in listed.stdout
    assert plugdock(env, "doctor").returncode == 0

    removed = plugdock(env, "uninstall", "my_notes")
    assert removed.returncode == 0, removed.stderr
    assert "no plugins installed" in plugdock(env, "list").stdout


def test_new_plugin_is_an_npm_project_showing_the_recommended_way(
    tmp_path: Path, env: dict[str, str]
) -> None:
    assert plugdock(env, "new", "shop_items", "--dir", str(tmp_path)).returncode == 0
    folder = tmp_path / "shop_items"
    package = json.loads((folder / "package.json").read_text())
    web = json.loads((REPO / "web" / "package.json").read_text())["devDependencies"]
    assert package["private"] is True and "dependencies" not in package
    assert package["devDependencies"]["esbuild"] == web["esbuild"]  # pinned exactly, as web/
    assert package["devDependencies"]["@types/react"] == web["@types/react"]
    assert "node_modules/" in (folder / ".gitignore").read_text().split()
    routes = (folder / "backend" / "routes.py").read_text()
    assert "db: sdk.DbSession" in routes and "_admin: sdk.AdminUser" in routes
    assert "Depends(" not in routes and "require_admin" not in routes
    page = (folder / "frontend" / "pages" / "ShopItemsPage.tsx").read_text()
    assert "fetch(" not in page
    assert 'api.get<Item[]>("/api/v1/shop-items/items")' in page and "api.post" in page


def test_errors_are_one_line_and_non_zero(tmp_path: Path, env: dict[str, str]) -> None:
    for args in (["install", "nothing_here"], ["uninstall", "nothing_here"], ["install", "../etc"]):
        result = plugdock(env, *args)
        assert result.returncode == 1
        assert result.stderr.startswith("error:")
        assert "Traceback" not in result.stderr


def test_validate_reports_every_problem(tmp_path: Path, env: dict[str, str]) -> None:
    folder = tmp_path / "bad"
    (folder / "evil").mkdir(parents=True)
    (folder / "evil" / "x.py").write_text("")
    (folder / "metadata.json").write_text(json.dumps({"id": "Bad", "version": "one"}))
    result = plugdock(env, "validate", str(folder))
    assert result.returncode == 1
    for expected in ("valid plugin id", "name", "semantic version", "evil"):
        assert expected in result.stderr


def test_doctor_finds_and_repairs_drift(tmp_path: Path, env: dict[str, str]) -> None:
    folder = tmp_path / "src"
    assert plugdock(env, "new", "drifty", "--dir", str(folder)).returncode == 0
    assert (
        plugdock(env, "pack", str(folder / "drifty"), "-o", str(tmp_path / "modules")).returncode
        == 0
    )
    assert plugdock(env, "install", "drifty").returncode == 0
    home = tmp_path / "instance"
    routes = home / "addons" / "backend" / "drifty" / "routes.py"
    routes.write_text(routes.read_text() + "\n# tampered\n")
    (home / "addons" / "backend" / "orphan").mkdir()
    (home / "addons" / "addon_registry.json").unlink()

    report = plugdock(env, "doctor")
    assert report.returncode == 1
    assert "routes.py was modified" in report.stderr
    assert "orphan" in report.stderr
    assert "missing from the registry" in report.stderr

    fixed = plugdock(env, "doctor", "--repair")
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert "# tampered" not in routes.read_text()
    assert not (home / "addons" / "backend" / "orphan").exists()
    assert plugdock(env, "doctor").returncode == 0


def test_version_and_help(env: dict[str, str]) -> None:
    assert "plugdock 0.1.0" in plugdock(env, "--version").stdout
    for verb in ("new", "pack", "validate", "install", "uninstall", "list", "available", "doctor"):
        assert plugdock(env, verb, "--help").returncode == 0
