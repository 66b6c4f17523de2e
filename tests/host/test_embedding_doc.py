"""docs/embedding.md, run as written: a throwaway project built from the doc's own blocks.

Each Python block of the doc that starts with a comment naming a file is that file (or, for
``alembic/env.py``, what replaces the template's ``target_metadata`` and
``do_run_migrations``). The project gets Alembic's async template, its first revision by
autogenerate, the doc's uvicorn command (two workers, not four: two cores here), a sign-in
with the doc's own route, a plugin installed through the marketplace, the CLI with the
doc's environment, and a second autogenerate that must propose nothing. A snippet that does
not run fails here.
"""

from __future__ import annotations

import os
import re
import shlex
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from panel import RUNNING
from support import make_plugin, pack_into

DOC = Path(__file__).parents[2] / "docs" / "embedding.md"
FILE_COMMENT = re.compile(r"# ([\w/]+\.py)\b")
BLOCK = re.compile(r"```(python|sh)\n(.*?)```", re.S)

STAFF_ROUTES = (
    "from fastapi import APIRouter\n\nfrom plugdock import sdk\n\n"
    "router = APIRouter(prefix='/api/v1/staff')\n\n\n"
    "@router.get('/names')\ndef names(users: sdk.Users, me: sdk.CurrentUser) -> dict:\n"
    "    return {'me': me.username, 'all': [u.username for u in users]}\n"
)

pytestmark = [pytest.mark.server, pytest.mark.slow]


def doc_blocks() -> tuple[dict[str, str], list[str]]:
    """The doc's files (by the path its first comment names) and its shell blocks."""
    files: dict[str, str] = {}
    shells: list[str] = []
    for language, body in BLOCK.findall(DOC.read_text()):
        if language == "sh":
            shells.append(body)
            continue
        named = FILE_COMMENT.match(body)
        if named is not None:
            files[named.group(1)] = body
    return files, shells


def doc_exports(shells: list[str]) -> dict[str, str]:
    """The doc's ``export NAME=value`` lines whose value is literal (the folders are the
    test's own)."""
    found = {}
    for block in shells:
        for line in block.splitlines():
            if line.startswith("export ") and "$" not in line:
                name, value = line.removeprefix("export ").split("#")[0].strip().split("=", 1)
                found[name] = value
    return found


def uvicorn_command(shells: list[str], port_args: list[str]) -> list[str]:
    """The doc's ``uvicorn myapp.main:app ...`` line, on two workers and a port of the OS."""
    for block in shells:
        joined = block.replace("\\\n", " ")
        for line in joined.splitlines():
            if line.startswith("uvicorn "):
                words = shlex.split(line)
                at = words.index("--workers")
                words[at + 1] = "2"
                return [sys.executable, "-m", *words, *port_args]
    raise AssertionError("docs/embedding.md has no uvicorn command")


def alembic(project: Path, env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "alembic", *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


def install_env_py(project: Path, fragment: str) -> None:
    """The doc's fragment in place of the async template's metadata and migration function."""
    env_py = project / "alembic" / "env.py"
    text = env_py.read_text()
    assert "target_metadata = None" in text, "Alembic's async template changed"
    text = text.replace("target_metadata = None\n", fragment, 1)
    # The template's own do_run_migrations (the later definition would win): dropped.
    template_function = re.compile(
        r"\ndef do_run_migrations\(connection: Connection\).*?\n\n\n", re.S
    )
    text, found = template_function.subn("\n\n", text)
    assert found == 1, "Alembic's async template changed"
    env_py.write_text(text)


def newest_revision(project: Path) -> str:
    revisions = sorted((project / "alembic" / "versions").glob("*.py"), key=os.path.getmtime)
    return revisions[-1].read_text()


def test_the_embedding_doc_runs_as_written(tmp_path: Path) -> None:
    files, shells = doc_blocks()
    assert {
        "myapp/models.py",
        "myapp/db.py",
        "myapp/auth.py",
        "myapp/main.py",
        "myapp/create_staff.py",
    } <= set(files)
    assert "alembic/env.py" in files

    project = tmp_path / "project"
    (project / "myapp").mkdir(parents=True)
    (project / "myapp" / "__init__.py").write_text("")
    for name, text in files.items():
        if name.startswith("myapp/"):
            (project / name).write_text(text)
    plugins = tmp_path / "plugins"
    staff = make_plugin(
        tmp_path / "src",
        "staff",
        extra_files={"backend/routes.py": STAFF_ROUTES},
        metadata={"permissions": ["core:users:read"]},
    )
    pack_into(staff, plugins)
    database = project / "myapp.db"
    env = (
        {k: v for k, v in os.environ.items() if not k.startswith(("PLUGDOCK_", "DATABASE_URL"))}
        | {
            "PLUGDOCK_HOME": str(tmp_path / "plugdock-instance"),
            "PLUGIN_LOCAL_DIR": str(plugins),
            "PLUGDOCK_ISOLATION": os.environ.get("PLUGDOCK_ISOLATION", "inprocess"),
            "PYTHONPATH": str(project),
        }
        | doc_exports(shells)
    )

    # -- Alembic, as the doc says: the async template, the doc's env.py, a first revision.
    alembic(project, env, "init", "-t", "async", "alembic")
    ini = project / "alembic.ini"
    ini.write_text(
        re.sub(
            r"^sqlalchemy\.url = .*$",
            "sqlalchemy.url = sqlite+aiosqlite:///./myapp.db",
            ini.read_text(),
            flags=re.M,
        )
    )
    install_env_py(project, files["alembic/env.py"])
    alembic(project, env, "revision", "--autogenerate", "-m", "accounts")
    assert "op.create_table('accounts'" in newest_revision(project)
    alembic(project, env, "upgrade", "head")

    # The doc's command for the first staff account (and, with --not-staff, a customer).
    for args in (["staff@example.com", "staff-pass"], ["customer@example.com", "customer-pass"]):
        made = subprocess.run(
            [sys.executable, "-m", "myapp.create_staff", *args]
            + (["--not-staff"] if args[0].startswith("customer") else []),
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert made.returncode == 0, made.stderr
    with sqlite3.connect(database) as conn:
        staff = conn.execute("SELECT email, is_staff FROM accounts ORDER BY id").fetchall()
    assert staff == [("staff@example.com", 1), ("customer@example.com", 0)]

    # -- The doc's uvicorn command.
    log = tmp_path / "uvicorn.log"
    with log.open("w") as out:
        server = subprocess.Popen(
            uvicorn_command(shells, ["--host", "127.0.0.1", "--port", "0"]),
            cwd=project,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        url = _wait_until_serving(server, log)
        staff_client = _signed_in(url, "staff@example.com", "staff-pass")
        customer = _signed_in(url, "customer@example.com", "customer-pass")
        assert staff_client.get("/hello").json() == {"hello": "from myapp"}

        install = {"plugin_id": "staff"}
        forged = staff_client.post("/api/v1/marketplace/install", json=install)
        assert forged.status_code == 403  # a cookie without X-Plugdock-CSRF: a forged form
        csrf = {"X-Plugdock-CSRF": "1"}
        refused = customer.post("/api/v1/marketplace/install", json=install, headers=csrf)
        assert refused.status_code == 403  # not staff
        done = staff_client.post("/api/v1/marketplace/install", json=install, headers=csrf)
        assert done.status_code == 200, done.text
        names = customer.get("/api/v1/staff/names")  # live in every worker at once
        assert names.json() == {
            "me": "customer@example.com",
            "all": ["staff@example.com", "customer@example.com"],
        }

        # -- The CLI, with the doc's environment plus the database as DATABASE_URL.
        listed = subprocess.run(
            [sys.executable, "-m", "plugdock", "list"],
            cwd=project,
            env=env | {"DATABASE_URL": "sqlite:///./myapp.db"},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert listed.returncode == 0, listed.stderr
        assert "staff" in listed.stdout

        # -- With a plugin's table in the database, autogenerate proposes nothing.
        alembic(project, env, "revision", "--autogenerate", "-m", "nothing")
        newest = newest_revision(project)
        assert "staff_notes" not in newest and "plugdock_" not in newest
        assert "op." not in newest, newest  # neither upgrade nor downgrade does anything

        gone = staff_client.delete("/api/v1/marketplace/uninstall/staff", headers=csrf)
        assert gone.status_code == 200, gone.text
        assert customer.get("/api/v1/staff/names").status_code == 404
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def _wait_until_serving(server: subprocess.Popen, log: Path) -> str:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"the doc's app exited:\n{log.read_text()}")
        bound = RUNNING.search(log.read_text())
        if bound is not None:
            url = f"http://127.0.0.1:{bound.group(1)}"
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    return url
            except httpx.HTTPError:
                pass
        time.sleep(0.1)
    raise AssertionError(f"the doc's app did not start:\n{log.read_text()}")


def _signed_in(url: str, email: str, password: str) -> httpx.Client:
    client = httpx.Client(base_url=url, timeout=60)
    answer = client.post("/login", json={"email": email, "password": password})
    assert answer.status_code == 200, answer.text
    return client
