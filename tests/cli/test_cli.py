"""The plugdock command as a user runs it: new, pack, validate, install, list, doctor, uninstall."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from plugdock.package.pack import pack, package_files, write_zip
from support import make_plugin

REPO = Path(__file__).resolve().parents[2]


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


@pytest.mark.slow  # CLI runs in subprocesses
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
    assert "signed by: nobody (unsigned)" in installed.stdout

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


@pytest.mark.slow  # CLI runs in subprocesses
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


UNDECLARED_ROUTES = (
    "from fastapi import APIRouter\n\n"
    "router = APIRouter()\n\n\n"
    "@router.get('/api/v1/sneaky/ping')\ndef ping() -> dict:\n    return {}\n\n\n"
    "@router.get('/api/v1/elsewhere/data')\ndef data() -> dict:\n    return {}\n"
)


@pytest.mark.slow  # CLI runs in subprocesses
def test_validate_runs_the_route_check_install_runs(tmp_path: Path, env: dict[str, str]) -> None:
    """A router serving a path outside backend.routes: validate refuses it, as install does."""
    folder = make_plugin(tmp_path, "sneaky", extra_files={"backend/routes.py": UNDECLARED_ROUTES})
    packed = plugdock(env, "pack", str(folder), "-o", str(tmp_path / "modules"))
    assert packed.returncode == 0, packed.stderr  # pack does not run the backend
    package = tmp_path / "modules" / "sneaky_v1.0.0.zip"
    for target in (folder, package):
        result = plugdock(env, "validate", str(target))
        assert result.returncode == 1, result.stdout
        assert "serves /api/v1/elsewhere/data, which is outside its declared routes" in (
            result.stderr
        )
        assert "/api/v1/sneaky/ping" not in result.stderr  # that one is declared
    installed = plugdock(env, "install", str(package))
    assert installed.returncode == 1 and "outside its declared routes" in installed.stderr

    unchecked = plugdock(env, "validate", str(package), "--no-code")
    assert unchecked.returncode == 0, unchecked.stderr
    skipped = " ".join(unchecked.stdout.split())
    assert "not checked here" in skipped
    assert "importing the backend and the routes its router serves" in skipped
    assert "on_install and the health check" in skipped


@pytest.mark.slow  # CLI runs in subprocesses
def test_validate_imports_the_backend_as_install_does(tmp_path: Path, env: dict[str, str]) -> None:
    folder = make_plugin(
        tmp_path, "broken", extra_files={"backend/routes.py": "import not_a_module_anywhere\n"}
    )
    result = plugdock(env, "validate", str(folder))
    assert result.returncode == 1
    assert "importing its backend failed" in result.stderr and "not_a_module_anywhere" in (
        result.stderr
    )
    ok = plugdock(env, "validate", str(make_plugin(tmp_path, "fine")))
    assert ok.returncode == 0, ok.stderr
    assert "importing the backend" not in ok.stdout  # it ran, so it is not listed as skipped


@pytest.mark.processes  # bubblewrap: validate runs the backend in the sandbox
def test_validate_compares_a_zips_addon_config_with_its_metadata(
    tmp_path: Path, env: dict[str, str]
) -> None:
    """A zip made by hand (not by pack) whose metadata.json names a page that does not exist."""
    folder = make_plugin(
        tmp_path,
        "uilie",
        metadata={"frontend": {"routes": ["/lie", "/ghost"], "components": ["LiePage", "Gone"]}},
        extra_files={
            "frontend/addon.config.ts": 'import LiePage from "./pages/LiePage";\n'
            'export default { routes: [{ path: "/lie", component: LiePage }] };\n',
            "frontend/pages/LiePage.tsx": "export default function LiePage() { return null; }\n",
        },
    )
    refused = plugdock(env, "pack", str(folder), "-o", str(tmp_path / "out"))
    assert refused.returncode == 1
    for words in (
        "metadata.json frontend.routes lists /ghost, but addon.config has no route /ghost",
        "metadata.json frontend.components lists Gone, but addon.config has no component Gone",
    ):
        assert words in refused.stderr
    assert refused.stderr.count("\n  - ") == 2  # /lie and LiePage agree: not named
    assert not list((tmp_path / "out").glob("*.zip"))
    package = tmp_path / "uilie_v1.0.0.zip"
    with package.open("wb") as handle:
        write_zip(handle, package_files(folder))
    result = plugdock(env, "validate", str(package))
    assert result.returncode == 1
    assert "addon.config has no route /ghost" in result.stderr


@pytest.mark.processes  # bubblewrap: validate runs the backend in the sandbox
def test_validate_without_esbuild_says_it_skipped_the_ui_check(
    tmp_path: Path, env: dict[str, str]
) -> None:
    assert plugdock(env, "new", "uiless", "--dir", str(tmp_path)).returncode == 0
    packed = plugdock(env, "pack", str(tmp_path / "uiless"), "-o", str(tmp_path / "out"))
    assert packed.returncode == 0, packed.stderr
    no_esbuild = env | {"PLUGDOCK_ESBUILD": str(tmp_path / "no-esbuild")}
    result = plugdock(no_esbuild, "validate", str(tmp_path / "out" / "uiless_v0.1.0.zip"))
    assert result.returncode == 0, result.stderr
    said = " ".join(result.stdout.split())
    assert "addon.config agrees with metadata.json (esbuild not found)" in said


@pytest.mark.slow  # CLI runs in subprocesses
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

    (home / "addons" / "addon_registry.json").write_text("")  # a crash lost its write
    report = plugdock(env, "doctor")
    assert report.returncode == 1 and "registry cannot be read" in report.stderr
    assert plugdock(env, "doctor", "--repair").returncode == 0
    assert plugdock(env, "doctor").returncode == 0


@pytest.mark.slow  # CLI runs in subprocesses
def test_version_and_help(env: dict[str, str]) -> None:
    assert "plugdock 0.1.0" in plugdock(env, "--version").stdout
    for verb in ("new", "pack", "validate", "install", "uninstall", "list", "available", "doctor"):
        assert plugdock(env, verb, "--help").returncode == 0


def every_command() -> list[tuple[str, ...]]:
    """The path of every plugdock command and group, e.g. ("trust", "add")."""
    from typer.main import get_command

    from plugdock.cli import app

    paths: list[tuple[str, ...]] = []

    def walk(command: object, path: tuple[str, ...]) -> None:
        paths.append(path)
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, (*path, name))

    walk(get_command(app), ())
    return paths


def test_help_names_every_value_one_way(env: dict[str, str]) -> None:
    """Arguments and option values in upper case (ID, FOLDER, PACKAGE), flags bare."""
    import re

    from typer.testing import CliRunner

    from plugdock.cli import app

    runner = CliRunner()
    commands = every_command()
    assert (
        ("install",) in commands and ("trust", "add") in commands and ("user", "create") in commands
    )
    for path in commands:
        result = runner.invoke(app, [*path, "--help"], env=env | {"COLUMNS": "200"})
        assert result.exit_code == 0, (path, result.output)
        text = result.output
        assert "<bool>" not in text, path
        usage = next(line for line in text.splitlines() if "Usage:" in line)
        arguments = usage.split("[OPTIONS]", 1)[1].replace("COMMAND [ARGS]...", "")
        for name in re.findall(r"[{\[]([^}\]]+)[}\]]", arguments):
            assert name == name.upper(), (path, usage)
        for line in text.splitlines():  # an option's value: its name, never a <type>
            if re.match(r"^\W*--[a-z]", line.strip("│ ")):
                assert not re.search(r"<(str|path|int|file)>", line), (path, line)


def test_lifecycle_arguments_have_help() -> None:
    from typer.main import get_command

    from plugdock.cli import app

    group = get_command(app)
    for name in ("install", "upgrade", "uninstall", "disable", "enable"):
        command = group.commands[name]  # type: ignore[attr-defined]
        arguments = [p for p in command.params if p.param_type_name == "argument"]
        assert arguments, name
        for argument in arguments:
            assert argument.help, (name, argument.name)


START_UP = (
    "from plugdock.config import load_settings\n"
    "from plugdock.core.db import make_engine\n"
    "from plugdock.host.core_api import start_up\n"
    "settings = load_settings()\n"
    "start_up(make_engine(settings.db_url), settings)\n"
)


def first_start(env: dict[str, str]) -> subprocess.CompletedProcess:
    """What 'plugdock serve' runs when the panel starts (before it listens)."""
    env = {k: v for k, v in env.items() if k != "PLUGDOCK_ADMIN_PASSWORD"}  # generate one
    return subprocess.run(
        [sys.executable, "-c", START_UP], env=env, capture_output=True, text=True, timeout=120
    )


def create_user(env: dict[str, str], name: str, *options: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "plugdock", "user", "create", name, *options, "--password-stdin"],
        input=f"{name}-password-1\n",
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def users_of(env: dict[str, str]) -> str:
    return plugdock(env, "user", "list").stdout


@pytest.mark.slow  # CLI runs in subprocesses
def test_a_user_created_before_the_first_start_does_not_prevent_the_first_admin(
    env: dict[str, str],
) -> None:
    made = create_user(env, "bob")
    assert made.returncode == 0, made.stderr
    assert "no admin yet: the panel's first start creates 'admin'" in made.stderr
    started = first_start(env)
    assert started.returncode == 0, started.stderr
    assert "created admin user 'admin' with password:" in started.stderr
    listed = users_of(env)
    assert "bob" in listed and "admin" in listed.replace("bob", "")
    again = first_start(env)  # a restart never makes another
    assert "created admin" not in again.stderr


@pytest.mark.slow  # CLI runs in subprocesses
def test_an_admin_created_before_the_first_start_is_the_admin(env: dict[str, str]) -> None:
    made = create_user(env, "alice", "--role", "admin")
    assert made.returncode == 0 and "no admin yet" not in made.stderr, made.stderr
    started = first_start(env)
    assert started.returncode == 0 and "created admin" not in started.stderr
    assert [
        line for line in users_of(env).splitlines() if "admin" in line and "alice" not in line
    ] == []


@pytest.mark.slow  # CLI runs in subprocesses
def test_a_plain_user_named_admin_is_reported_not_made_an_admin(env: dict[str, str]) -> None:
    assert create_user(env, "admin").returncode == 0
    started = first_start(env)
    assert started.returncode == 0, started.stderr
    assert "no admin account, and the name 'admin' is taken by a user" in started.stderr
    assert "plugdock user role admin admin" in started.stderr


@pytest.mark.slow  # CLI runs in subprocesses
def test_available_says_where_it_looks(tmp_path: Path, env: dict[str, str]) -> None:
    missing = plugdock(env, "available")
    assert missing.returncode == 1
    assert missing.stderr == (
        f"error: the plugin folder {tmp_path / 'modules'} (PLUGIN_LOCAL_DIR) does not exist\n"
    )
    installing = plugdock(env, "install", "nothing_here")
    assert installing.returncode == 1
    assert "not in the catalog: the folder" in installing.stderr
    assert str(tmp_path / "modules") in installing.stderr

    (tmp_path / "modules").mkdir()
    empty = plugdock(env, "available")
    assert empty.returncode == 0 and f"no plugins in {tmp_path / 'modules'}" in empty.stdout
    installing = plugdock(env, "install", "nothing_here")
    assert f"no package of it in {tmp_path / 'modules'} (PLUGIN_LOCAL_DIR)" in installing.stderr


@pytest.mark.server  # a plugin server on loopback
def test_available_announces_the_first_use_pin_of_a_plugin_server(
    tmp_path: Path, env: dict[str, str]
) -> None:
    from remote_helpers import start_remote

    live, remote = start_remote(tmp_path)
    try:
        remote.publish(pack(make_plugin(tmp_path / "src", "notes"), tmp_path / "out"))
        remote_env = env | {
            "PLUGIN_SOURCE": "remote",
            "PLUGIN_SERVER_URL": remote.url,
            "PLUGDOCK_ALLOW_HTTP_PIN": "true",  # the test server is plain http on loopback
        }
        first = plugdock(remote_env, "available")
        assert first.returncode == 0, first.stderr
        assert "notes" in first.stdout and remote.url in first.stdout
        assert f"trusting plugin server {remote.url} on first use" in first.stderr
        second = plugdock(remote_env, "available")
        assert second.returncode == 0 and "trusting" not in second.stderr  # pinned once
    finally:
        live.__exit__(None, None, None)


def test_the_scaffold_bounds_the_integers_a_client_sends(tmp_path: Path) -> None:
    """Issue 24.4: a new plugin shows sdk.Id/Offset/Limit. Before: no item route, no bounds."""
    from fastapi import FastAPI
    from fastapi.testclient import TestClient
    from sqlalchemy import create_engine, text

    from plugdock import sdk
    from plugdock.package.scaffold import scaffold
    from plugdock.plugin_code.loader import load_backend, unload_modules

    folder = scaffold("bounded", tmp_path)
    engine = create_engine(f"sqlite:///{tmp_path / 'bounded.db'}")
    with engine.begin() as conn:
        conn.execute(text((folder / "migrations" / "up.sql").read_text()))
        conn.execute(text("INSERT INTO bounded_items (title) VALUES ('one'), ('two')"))
    backend = load_backend("bounded", folder / "backend", "scaffoldtest")
    try:
        app = FastAPI()
        app.state.plugdock = sdk.HostState(engine=engine)
        app.include_router(backend.router)
        with TestClient(app) as client:
            assert client.get("/api/v1/bounded/items/2").json() == {"id": 2, "title": "two"}
            assert client.get("/api/v1/bounded/items/3").status_code == 404
            page = client.get("/api/v1/bounded/items", params={"offset": 1, "limit": 1})
            assert page.json() == [{"id": 2, "title": "two"}]
            for path in (
                f"/api/v1/bounded/items/{2**63}",
                "/api/v1/bounded/items/0",
                f"/api/v1/bounded/items?offset={2**63}",
                f"/api/v1/bounded/items?limit={sdk.MAX_LIMIT + 1}",
                "/api/v1/bounded/items?limit=0",
            ):
                assert client.get(path).status_code == 422, path
            assert client.get(f"/api/v1/bounded/items/{2**63 - 1}").status_code == 404
    finally:
        unload_modules(backend.module_name)
        engine.dispose()


@pytest.mark.slow  # CLI runs in subprocesses
def test_the_cli_refuses_a_database_that_is_not_the_instances(
    tmp_path: Path, env: dict[str, str]
) -> None:
    """An embedding app passes its engine in code; a CLI run without its DATABASE_URL used
    to make a fresh empty database, say "no plugins installed", and doctor saw drift."""
    pack(make_plugin(tmp_path / "src", "notes"), tmp_path / "modules")
    installed = plugdock(env, "install", "notes")
    assert installed.returncode == 0, installed.stderr
    stranger = tmp_path / "elsewhere.db"
    for command in (("list",), ("doctor",), ("uninstall", "notes")):
        refused = plugdock(env | {"DATABASE_URL": f"sqlite:///{stranger}"}, *command)
        assert refused.returncode == 1, (command, refused.stdout)
        assert "set DATABASE_URL to the database" in " ".join(refused.stderr.split())
    assert not stranger.exists()  # nothing made beside the instance
    listed = plugdock(env, "list")
    assert listed.returncode == 0 and "notes" in listed.stdout
