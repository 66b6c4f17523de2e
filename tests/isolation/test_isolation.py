"""Process isolation (PLUGDOCK_ISOLATION=process) attacked by plugins written to misbehave.

Each test runs a real panel whose plugins run in bubblewrap sandboxes, installs a plugin
that tries one thing it must not do, and shows that the attempt fails, is reported, and
that the panel's core routes and a well-behaved plugin (``good``) keep serving. The
attacks take the real host paths from the test (the instance folder, ``secret.key``): the
strongest case, a plugin that knows exactly where to look.

Most tests pin SQLite (a plain file URL) because the database does not matter to them;
the database-rights test runs on all three databases, and the chatbot on PostgreSQL.
"""

from __future__ import annotations

import itertools
import json
import os
import socket
import textwrap
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import httpx
import pytest
from sqlalchemy import create_engine, inspect
from sqlalchemy.engine import make_url

import plugdock
from panel import Panel, start_panel
from support import CHATBOT, make_plugin, pack_into

MARKET = "/api/v1/marketplace"
SECRET = b"sup3r-s3cret-signing-key-" + uuid.uuid4().hex.encode()
CHILD_MODULE = "plugdock.isolation.child"
T = TypeVar("T")

# A route body that tries something and reports what happened instead of raising, so the
# test sees the exact error the sandbox gave (FileNotFoundError, OSError EROFS ...).
ATTEMPT = """
import os
import socket

from fastapi import APIRouter

router = APIRouter(prefix="/api/v1/{slug}")


def attempt(action):
    try:
        return {{"ok": True, "result": action()}}
    except BaseException as exc:  # the report is the point
        return {{"ok": False, "error": type(exc).__name__, "message": str(exc)}}


def _read(path):
    with open(path, "rb") as handle:
        return handle.read().decode("latin-1")


def _write(path, text):
    with open(path, "w") as handle:
        handle.write(text)
    return path


def _connect(host, port):
    with socket.create_connection((host, port), timeout=5) as conn:
        conn.sendall(b"GET /healthz HTTP/1.0\\r\\nHost: x\\r\\n\\r\\n")
        return conn.recv(200).decode("latin-1")


@router.get("/ping")
def ping() -> dict:
    return {{"pong": True}}


@router.get("/read")
def read(path: str) -> dict:
    return attempt(lambda: _read(path))


@router.get("/list")
def listing(path: str) -> dict:
    return attempt(lambda: sorted(os.listdir(path)))


@router.post("/write")
def write(path: str, text: str = "pwned") -> dict:
    return attempt(lambda: _write(path, text))


@router.get("/connect")
def connect(host: str, port: int) -> dict:
    return attempt(lambda: _connect(host, port))


def _remount_writable(path):
    # mount(2) MS_REMOUNT | MS_BIND without MS_RDONLY: the read-only bind made writable.
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.mount(None, path.encode(), None, 32 | 4096, None) != 0:
        error = ctypes.get_errno()
        raise OSError(error, os.strerror(error))
    return _write(os.path.join(path, "escaped.py"), "pwned")


@router.post("/fill")
def fill(path: str, mb: int) -> dict:
    def _fill():
        chunk = bytes(1 << 20)
        with open(path, "wb") as handle:
            for _ in range(mb):
                handle.write(chunk)
        return mb

    try:
        return attempt(_fill)
    finally:
        if os.path.exists(path):
            os.remove(path)


@router.post("/remount")
def remount(path: str) -> dict:
    return attempt(lambda: _remount_writable(path))
"""


def attack_plugin(parent: Path, plugin_id: str, metadata: dict | None = None) -> Path:
    slug = plugin_id.replace("_", "-")
    routes = ATTEMPT.format(slug=slug)
    return make_plugin(
        parent, plugin_id, metadata=metadata, extra_files={"backend/routes.py": routes}
    )


def route_plugin(
    parent: Path, plugin_id: str, body: str, extra_files_init: str | None = None, **kwargs: object
) -> Path:
    """A plugin whose routes.py is ``body`` (indented freely) under its own prefix, and
    whose ``backend/__init__.py`` is ``extra_files_init`` if given."""
    slug = plugin_id.replace("_", "-")
    header = (
        "from fastapi import APIRouter, Request\n"
        "from plugdock import sdk\n\n"
        f"router = APIRouter(prefix='/api/v1/{slug}')\n\n\n"
        "@router.get('/ping')\ndef ping() -> dict:\n    return {'pong': True}\n\n\n"
    )
    files = {"backend/routes.py": header + textwrap.dedent(body)}
    if extra_files_init is not None:
        files["backend/__init__.py"] = extra_files_init
    return make_plugin(parent, plugin_id, extra_files=files, **kwargs)  # type: ignore[arg-type]


# -- the panel -----------------------------------------------------------------------------


def sqlite_url(tmp_path: Path) -> str:
    """A SQLite database inside the instance folder, where a default instance keeps it."""
    return f"sqlite:///{tmp_path / 'instance' / 'panel.db'}"


def isolated_panel(
    tmp_path: Path,
    database_url: str,
    plugins: list[Path],
    extra_env: dict[str, str] | None = None,
) -> Panel:
    """A panel in process mode offering ``plugins`` (and ``good``), with a secret.key file."""
    instance = tmp_path / "instance"
    instance.mkdir(parents=True, exist_ok=True)
    (instance / "secret.key").write_bytes(SECRET)
    os.chmod(instance / "secret.key", 0o600)
    modules = tmp_path / "modules"
    for folder in [make_plugin(tmp_path / "src", "good"), *plugins]:
        pack_into(folder, modules)
    return start_panel(
        tmp_path, database_url, extra_env={"PLUGDOCK_ISOLATION": "process", **(extra_env or {})}
    )


def serve_isolated(
    tmp_path: Path, database_url: str, panels: list[Panel], plugin: Path, plugin_id: str
) -> tuple[Panel, httpx.Client]:
    """A process-mode panel serving ``good`` and the plugin in ``plugin``, and its admin."""
    panel = isolated_panel(tmp_path, database_url, [plugin])
    panels.append(panel)
    admin = panel.client(panel.login())
    install(admin, "good")
    install(admin, plugin_id)
    return panel, admin


def install(admin: httpx.Client, plugin_id: str) -> httpx.Response:
    answer = admin.post(f"{MARKET}/install", json={"plugin_id": plugin_id})
    assert answer.status_code == 200, answer.text
    return answer


def installed(client: httpx.Client) -> dict[str, dict]:
    answer = client.get(f"{MARKET}/installed")
    assert answer.status_code == 200, answer.text
    return {p["id"]: p for p in answer.json()}


def assert_panel_serves(admin: httpx.Client) -> None:
    """Core routes and the well-behaved plugin answer."""
    assert admin.get("/healthz").status_code == 200
    assert installed(admin)["good"]["state"] == "mounted"
    good = admin.get("/api/v1/good/ping")
    assert good.status_code == 200, good.text
    assert good.json() == {"pong": True}


def wait_for(
    condition: Callable[[], T],
    what: str,
    timeout: float = 30.0,
    every: float = 0.1,
    state: Callable[[], object] | None = None,
) -> T:
    """Poll ``condition`` until it returns something true; that value. A deadline, not a bound
    under test: a loaded machine only makes it slower. ``state`` describes a failure."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(
        f"gave up waiting for {what} after {timeout:g} s" + (f": {state()}" if state else "")
    )


def plugin_pids(panel: Panel, plugin_id: str) -> set[int]:
    """Processes under this panel running ``plugdock.isolation.child`` for ``plugin_id``
    (bwrap and the Python inside it), found in /proc by their command line."""
    children: dict[int, list[int]] = {}
    commands: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            commands[int(entry.name)] = (
                (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            )
        except OSError:
            continue
        parent = int(stat.rpartition(")")[2].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    found: set[int] = set()
    todo = [panel.process.pid]
    while todo:
        pid = todo.pop()
        for child in children.get(pid, []):
            todo.append(child)
            command = commands.get(child, "")
            if CHILD_MODULE in command and f'"plugin_id": "{plugin_id}"' in command:
                found.add(child)
    return found


def proc_state(pid: int) -> str:
    """``State`` and ``PPid`` of a process, from /proc (for failure messages)."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return "gone"
    return " ".join(line for line in lines if line.startswith(("Name", "State", "PPid")))


def states(pids: set[int]) -> dict[int, str]:
    return {pid: proc_state(pid) for pid in pids}


def ended(pids: set[int]) -> bool:
    """Each is gone or a zombie: bwrap's inner process, orphaned when the outer one exits,
    waits for this machine's PID 1 to reap it (it holds no memory any more)."""
    return all(s == "gone" or "(zombie)" in s for s in states(pids).values())


# -- 1. secret.key --------------------------------------------------------------------------


def test_import_that_reads_secret_key_is_refused_and_installs_nothing(
    tmp_path: Path, panels: list[Panel]
) -> None:
    secret_path = tmp_path / "instance" / "secret.key"
    thief = make_plugin(
        tmp_path / "src",
        "thief",
        extra_files={
            "backend/__init__.py": (
                f"STOLEN = open({str(secret_path)!r}, 'rb').read()\nfrom .routes import router\n"
            )
        },
    )
    panel = isolated_panel(tmp_path, sqlite_url(tmp_path), [thief])
    panels.append(panel)
    admin = panel.client(panel.login())
    install(admin, "good")

    refused = admin.post(f"{MARKET}/install", json={"plugin_id": "thief"})

    assert 400 <= refused.status_code < 500, refused.text
    detail = json.dumps(refused.json())
    assert "thief" in detail and "No such file or directory" in detail, detail
    assert SECRET.decode() not in refused.text
    assert "thief" not in installed(admin)
    engine = create_engine(sqlite_url(tmp_path))
    try:
        assert "thief_notes" not in inspect(engine).get_table_names()
    finally:
        engine.dispose()
    assert admin.get("/api/v1/thief/ping").status_code == 404
    assert not plugin_pids(panel, "thief")  # the import's process is gone too
    assert_panel_serves(admin)


def test_route_cannot_see_the_instance_folder(tmp_path: Path, panels: list[Panel]) -> None:
    panel = isolated_panel(tmp_path, sqlite_url(tmp_path), [attack_plugin(tmp_path / "src", "spy")])
    panels.append(panel)
    admin = panel.client(panel.login())
    install(admin, "good")
    install(admin, "spy")
    instance = tmp_path / "instance"

    def read(path: Path | str) -> dict:
        answer = admin.get("/api/v1/spy/read", params={"path": str(path)})
        assert answer.status_code == 200, answer.text
        assert SECRET.decode() not in answer.text
        return answer.json()

    secret = read(instance / "secret.key")
    assert secret["ok"] is False and secret["error"] == "FileNotFoundError", secret
    # Another plugin's code, the instance's listing, the panel's environment (DATABASE_URL,
    # PLUGDOCK_SECRET_KEY) through /proc: none exists for the plugin.
    good_code = next(instance.rglob("good/**/routes.py"))
    assert read(good_code)["error"] == "FileNotFoundError"
    assert read(f"/proc/{panel.process.pid}/environ")["ok"] is False
    listing = admin.get("/api/v1/spy/list", params={"path": str(instance)}).json()
    # The instance folder is not there (or an empty stand-in below a bound folder): not even
    # the SQLite database, whose SQL goes through the panel (tests/isolation/test_sqlite_relay.py).
    assert listing["ok"] is False or listing["result"] == [], listing
    env = admin.get("/api/v1/spy/read", params={"path": "/proc/self/environ"}).json()
    assert (
        env["ok"] and "DATABASE_URL" not in env["result"] and "PLUGDOCK_HOME" not in env["result"]
    )
    assert_panel_serves(admin)


# -- 2. the users table ----------------------------------------------------------------------

SNOOP_ROUTES = """
from sqlalchemy import text


@router.get('/select')
def select(table: str, db: sdk.DbSession) -> dict:
    try:
        rows = db.execute(text(f'SELECT * FROM {table}')).all()
    except Exception as exc:  # what the database said is the point
        return {'ok': False, 'error': str(exc).splitlines()[0]}
    return {'ok': True, 'rows': [[str(v) for v in row] for row in rows]}


@router.get('/as')
def as_other(user: str, table: str, db: sdk.DbSession) -> dict:
    # The relay socket leads to the database server: log in there as someone else.
    from sqlalchemy import create_engine

    from sqlalchemy.engine import URL

    own = db.get_bind().url
    url = URL.create(own.drivername, username=user, database=own.database, query=own.query)
    try:
        engine = create_engine(url)
        with engine.connect() as conn:
            rows = conn.execute(text(f'SELECT * FROM {table}')).all()
    except Exception as exc:
        return {'ok': False, 'error': str(exc).splitlines()[0]}
    return {'ok': True, 'rows': [[str(v) for v in row] for row in rows]}
"""


def test_plugin_database_role_cannot_read_core_tables(
    tmp_path: Path, database_url: str, panels: list[Panel]
) -> None:
    snoop = route_plugin(tmp_path / "src", "snoop", SNOOP_ROUTES)
    _panel, admin = serve_isolated(tmp_path, database_url, panels, snoop, "snoop")

    def select(table: str) -> dict:
        answer = admin.get("/api/v1/snoop/select", params={"table": table})
        assert answer.status_code == 200, answer.text
        return answer.json()

    own = select("snoop_notes")
    assert own == {"ok": True, "rows": [["1", "hello"]]}, own  # its own table: fine
    core = {t: select(t) for t in ("plugdock_users", "addon_installations", "plugdock_secrets")}
    # On SQLite the panel runs the plugin's SQL and SQLite's authorizer refuses other tables.
    refusals = (
        ("prohibited", "not authorized") if database_url.startswith("sqlite") else ("denied",)
    )
    for table, answer in core.items():
        assert answer["ok"] is False, (table, answer)
        assert any(word in answer["error"].lower() for word in refusals), (table, answer)
    assert_panel_serves(admin)


@pytest.mark.parametrize("database_url", ["postgresql", "mariadb"], indirect=True)
def test_relay_does_not_let_a_plugin_log_in_as_the_panel(
    tmp_path: Path, database_url: str, panels: list[Panel]
) -> None:
    """The relay socket leads to the database server; the plugin must not be able to log
    in there as anyone but its own role. The panel's own login here needs no password (as
    its DATABASE_URL shows): the case where only the relay can stop it."""
    panel_user = make_url(database_url).username
    snoop = route_plugin(tmp_path / "src", "snoop", SNOOP_ROUTES)
    _panel, admin = serve_isolated(tmp_path, database_url, panels, snoop, "snoop")

    answer = admin.get("/api/v1/snoop/as", params={"user": panel_user, "table": "plugdock_users"})

    assert answer.status_code == 200, answer.text
    assert answer.json()["ok"] is False, answer.json()
    assert "argon2" not in answer.text
    assert_panel_serves(admin)


HOOK_INIT = """
from sqlalchemy import text

from .routes import router


def _note(ctx, body):
    ctx.connection.execute(text("INSERT INTO hooked_notes (body) VALUES (:b)"), {{"b": body}})


def on_install(ctx):
    # What the install hook can reach, written down in its own table for the test to read.
    try:
        _note(ctx, "secret: " + open({secret!r}, "rb").read().decode())
    except OSError as exc:
        _note(ctx, "secret: " + type(exc).__name__)
    try:
        with ctx.connection.begin_nested():
            users = ctx.connection.execute(
                text("SELECT password_hash FROM plugdock_users")
            ).all()
        _note(ctx, "users: " + repr(users))
    except Exception as exc:
        _note(ctx, "users: " + str(exc).splitlines()[0])
"""

HOOK_ROUTES = """
from sqlalchemy import text


@router.get('/notes')
def notes(db: sdk.DbSession) -> list:
    return [row[0] for row in db.execute(text('SELECT body FROM hooked_notes ORDER BY id'))]
"""


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_install_hook_runs_confined_as_the_plugins_role(
    tmp_path: Path, database_url: str, panels: list[Panel]
) -> None:
    secret = tmp_path / "instance" / "secret.key"
    hooked = route_plugin(
        tmp_path / "src",
        "hooked",
        HOOK_ROUTES,
        extra_files_init=HOOK_INIT.format(secret=str(secret)),
    )
    _panel, admin = serve_isolated(tmp_path, database_url, panels, hooked, "hooked")

    notes = admin.get("/api/v1/hooked/notes")

    assert notes.status_code == 200, notes.text
    seen = notes.json()
    assert seen[1] == "secret: FileNotFoundError", seen
    assert seen[2].startswith("users: ") and "denied" in seen[2].lower(), seen
    assert "argon2" not in notes.text and SECRET.decode() not in notes.text
    assert_panel_serves(admin)


# -- 3. writing outside the data folder ------------------------------------------------------


def test_writes_land_only_in_the_data_folder(tmp_path: Path, panels: list[Panel]) -> None:
    panel = isolated_panel(
        tmp_path,
        sqlite_url(tmp_path),
        [attack_plugin(tmp_path / "src", "vandal")],
        extra_env={"PLUGDOCK_PLUGIN_MEMORY_MB": "256"},
    )
    panels.append(panel)
    admin = panel.client(panel.login())
    install(admin, "good")
    install(admin, "vandal")
    instance = tmp_path / "instance"
    victim = tmp_path / "victim.txt"
    victim.write_text("original")
    host_tmp = Path("/tmp") / f"plugdock-escape-{uuid.uuid4().hex}"
    panel_code = Path(plugdock.__file__).parent / f"evil_{uuid.uuid4().hex}.py"
    own_code = next(instance.rglob("vandal/**/routes.py"))
    code_before = own_code.read_text()

    def write(path: Path | str) -> dict:
        answer = admin.post("/api/v1/vandal/write", params={"path": str(path)})
        assert answer.status_code == 200, answer.text
        return answer.json()

    # Read-only: its own code (inside and at the host path), the panel's code, the system.
    for path in ("/plugin/backend/routes.py", "/plugin/backend/evil.py", panel_code, "/usr/evil"):
        result = write(path)
        assert result["ok"] is False and "Read-only file system" in result["message"], (
            path,
            result,
        )
    # Hidden: the instance folder. Its code folder does not exist in the sandbox; the
    # folder itself is a stand-in on the sandbox's private /tmp (it holds the SQLite file),
    # so a write there may succeed but lands in memory that goes with the process.
    assert write(own_code)["ok"] is False
    assert write(instance / "addons" / "evil.txt")["ok"] is False
    write(instance / "secret.key")
    # /tmp is the sandbox's own: a write succeeds there and never reaches the host's.
    assert write(host_tmp)["ok"] is True
    write(victim)
    # The rest of the sandbox's own tree is read-only: its root and /dev are RAM the memory
    # limit does not count, as are /tmp and /dev/shm, which are sized so files there cannot
    # take the host's memory (/tmp: the memory limit, 256 MiB here).
    for path in ("/evil", "/dev/evil", "/plugin/evil"):
        result = write(path)
        assert result["ok"] is False and "Read-only file system" in result["message"], result
    assert write("/dev/shm/small")["ok"] is True
    # Filling /tmp or /dev/shm past the memory limit stops the plugin (they count as its
    # memory): tests/isolation/test_confinement.py. What fits is written:
    assert admin.post("/api/v1/vandal/fill", params={"path": "/tmp/ok", "mb": 100}).json() == {
        "ok": True,
        "result": 100,
    }
    assert not host_tmp.exists()
    assert not panel_code.exists()
    assert victim.read_text() == "original"
    assert (instance / "secret.key").read_bytes() == SECRET
    assert own_code.read_text() == code_before
    assert not (instance / "addons" / "evil.txt").exists()

    # Nor can it make a read-only folder writable: it holds no capabilities, not even in its
    # own user namespace (a panel running as root would otherwise hand them on, and
    # mount(2) turns a read-only bind into a writable view of the host's folder).
    remounted = admin.post("/api/v1/vandal/remount", params={"path": "/plugin/backend"}).json()
    assert remounted["ok"] is False and remounted["error"] == "PermissionError", remounted
    assert not (own_code.parent / "escaped.py").exists()
    status = admin.get("/api/v1/vandal/read", params={"path": "/proc/self/status"}).json()
    assert "CapEff:\t0000000000000000" in status["result"], status

    # The data folder is writable and is $PLUGDOCK_HOME/plugin-data/<id> on the host.
    assert write("/plugin/data/note.txt")["ok"] is True
    assert (instance / "plugin-data" / "vandal" / "note.txt").read_text() == "pwned"
    assert_panel_serves(admin)


@pytest.mark.processes  # builds bubblewrap's command line, which needs bwrap on PATH
def test_instance_below_a_system_folder_is_still_hidden(tmp_path: Path) -> None:
    """An instance folder inside a folder the sandbox binds read-only (here /usr, as for an
    instance in /usr/local/...) is covered by an empty, read-only stand-in. Checked on the
    command line: a real instance there would mean writing into the host's /usr."""
    from plugdock.isolation.sandbox import Sandbox, command

    hidden = Path("/usr/local") / f"plugdock-{uuid.uuid4().hex}"
    sandbox = Sandbox("x", tmp_path / "backend", tmp_path / "data", tmp_path / "run", hidden)

    args = command(sandbox, ["true"])

    pairs = list(itertools.pairwise(args))
    assert ("--tmpfs", str(hidden)) in pairs
    assert ("--remount-ro", str(hidden)) in pairs
    assert pairs.index(("--tmpfs", str(hidden))) > pairs.index(("--ro-bind", "/usr"))


# -- 4. network ------------------------------------------------------------------------------


def test_network_only_with_the_network_permission(tmp_path: Path, panels: list[Panel]) -> None:
    """Without a grant, no network; with ``network:127.0.0.1:<port>`` (a fake service on
    loopback, granted by its address), that service only (tests/isolation/test_egress.py
    attacks the grants)."""
    src = tmp_path / "src"
    with socket.socket() as service:
        service.bind(("127.0.0.1", 0))
        service.listen()
        service_port = service.getsockname()[1]
        offline = attack_plugin(src, "offline")
        online = attack_plugin(
            src, "online", metadata={"permissions": [f"network:127.0.0.1:{service_port}"]}
        )
        panel = isolated_panel(tmp_path, sqlite_url(tmp_path), [offline, online])
        panels.append(panel)
        admin = panel.client(panel.login())
        install(admin, "good")
        install(admin, "offline")
        granted = [f"network:127.0.0.1:{service_port}"]
        assert install(admin, "online").json()["permissions"] == granted
        port = int(panel.url.rpartition(":")[2])

        def connect(plugin: str, host: str, port: int) -> dict:
            answer = admin.get(f"/api/v1/{plugin}/connect", params={"host": host, "port": port})
            assert answer.status_code == 200, answer.text
            return answer.json()

        def answer_once() -> None:
            conn, _ = service.accept()
            with conn:
                conn.recv(200)
                conn.sendall(b"HTTP/1.0 200 OK\r\n\r\nfake service")

        # Without the permission the plugin has a network of its own with nothing in it: the
        # panel's port, the database's and the service's are not there.
        for target in (port, 5432, service_port):
            blocked = connect("offline", "127.0.0.1", target)
            assert blocked["ok"] is False, blocked
            assert blocked["error"] in ("ConnectionRefusedError", "OSError", "TimeoutError")
        # With the grant, the granted service is reached, and the panel still is not.
        server = threading.Thread(target=answer_once, daemon=True)
        server.start()
        reached = connect("online", "127.0.0.1", service_port)
        server.join(30)
        assert reached["ok"] is True and reached["result"].startswith("HTTP/1.0 200"), reached
        assert connect("online", "127.0.0.1", port)["ok"] is False
    assert installed(admin)["online"]["permissions"] == granted
    assert_panel_serves(admin)


# -- 5. memory ---------------------------------------------------------------------------------

HOG_ROUTES = """
@router.get('/alloc')
def alloc(mb: int) -> dict:
    block = bytearray(mb << 20)
    return {'size': len(block)}


@router.get('/files')
def files(n: int) -> dict:
    opened = []
    try:
        for _ in range(n):
            opened.append(open('/dev/null'))
    except OSError as exc:
        return {'opened': len(opened), 'error': str(exc)}
    finally:
        for handle in opened:
            handle.close()
    return {'opened': len(opened)}
"""


def test_memory_and_open_files_are_limited_and_only_that_request_fails(
    tmp_path: Path, panels: list[Panel]
) -> None:
    hog = route_plugin(tmp_path / "src", "hog", HOG_ROUTES)
    panel = isolated_panel(
        tmp_path, sqlite_url(tmp_path), [hog], extra_env={"PLUGDOCK_PLUGIN_MEMORY_MB": "256"}
    )
    panels.append(panel)
    admin = panel.client(panel.login())
    install(admin, "good")
    install(admin, "hog")
    assert admin.get("/api/v1/hog/alloc", params={"mb": 32}).json() == {"size": 32 << 20}

    answer = admin.get("/api/v1/hog/alloc", params={"mb": 512})  # past the 256 MiB limit

    # The allocation raises MemoryError in the plugin: its request fails with 500 (the
    # plugin's own unhandled-error answer, plain text as in-process), nothing else does.
    assert answer.status_code == 500, answer.text
    assert "hog" in installed(admin)
    assert_panel_serves(admin)
    # Open files are limited too (256 per plugin process).
    assert admin.get("/api/v1/hog/files", params={"n": 100}).json() == {"opened": 100}
    many = admin.get("/api/v1/hog/files", params={"n": 300}).json()
    assert many["opened"] < 256 and "Too many open files" in many["error"], many
    # The plugin serves again (after a restart, had the allocation killed its process).
    wait_for(lambda: admin.get("/api/v1/hog/ping").status_code == 200, "hog to serve again")
    assert installed(admin)["hog"]["state"] == "mounted"


# -- 6. crash ----------------------------------------------------------------------------------

CRASH_ROUTES = """
import os


@router.get('/crash')
def crash() -> dict:
    os._exit(1)
"""


def test_crash_is_reported_and_restarted(tmp_path: Path, panels: list[Panel]) -> None:
    crasher = route_plugin(tmp_path / "src", "crasher", CRASH_ROUTES)
    panel, admin = serve_isolated(tmp_path, sqlite_url(tmp_path), panels, crasher, "crasher")
    before = plugin_pids(panel, "crasher")
    assert before

    answer = admin.get("/api/v1/crasher/crash")

    assert answer.status_code in (502, 503), answer.text
    assert "crasher" in answer.json()["detail"]
    failed = wait_for(
        lambda: (p := installed(admin)["crasher"])["state"] == "failed" and p,
        "the crash to be reported",
        every=0.05,
    )
    assert "exited with status 1" in failed["error"], failed
    assert "restarting in 1 s (restart 1)" in failed["error"], failed
    assert_panel_serves(admin)
    wait_for(lambda: admin.get("/api/v1/crasher/ping").status_code == 200, "a restart")
    assert installed(admin)["crasher"]["state"] == "mounted"
    after = plugin_pids(panel, "crasher")
    assert after and not (after & before), (before, after)  # a new process

    # Crashing again soon after: the next restart waits longer (backoff).
    assert admin.get("/api/v1/crasher/crash").status_code in (502, 503)
    again = wait_for(
        lambda: (p := installed(admin)["crasher"])["state"] == "failed" and p,
        "the second crash to be reported",
        every=0.05,
    )
    assert "restarting in 2 s (restart 2)" in again["error"], again
    wait_for(lambda: admin.get("/api/v1/crasher/ping").status_code == 200, "a second restart")


# -- 7. hang -----------------------------------------------------------------------------------

HANG_ROUTES = """
@router.get('/hang')
async def hang() -> dict:
    while True:  # blocks the plugin process's event loop: nothing else it serves answers
        pass
"""


def test_hang_times_out_and_is_restarted(tmp_path: Path, panels: list[Panel]) -> None:
    hanger = route_plugin(tmp_path / "src", "hanger", HANG_ROUTES)
    panel = isolated_panel(
        tmp_path, sqlite_url(tmp_path), [hanger], extra_env={"PLUGDOCK_PLUGIN_TIMEOUT": "2"}
    )
    panels.append(panel)
    admin = panel.client(panel.login())
    install(admin, "good")
    install(admin, "hanger")

    meanwhile: list[httpx.Response] = []
    hung = threading.Thread(target=lambda: meanwhile.append(admin.get("/api/v1/hanger/hang")))
    hung.start()
    time.sleep(0.5)
    assert_panel_serves(panel.client(panel.login()))  # while the plugin spins
    hung.join()
    assert meanwhile[0].status_code == 504, meanwhile[0].text
    assert meanwhile[0].json()["detail"] == "hanger did not answer within 2 s"

    # The supervisor's pings go unanswered: it kills the process and starts it again.
    failed = wait_for(
        lambda: (p := installed(admin)["hanger"])["state"] == "failed" and p,
        "the hang to be reported",
        timeout=40,
        every=0.05,
    )
    assert "hung" in failed["error"], failed
    assert_panel_serves(admin)
    wait_for(lambda: admin.get("/api/v1/hanger/ping").status_code == 200, "a restart")


# -- 8. uninstall --------------------------------------------------------------------------------


def test_uninstall_stops_the_process_and_removes_its_data(
    tmp_path: Path, panels: list[Panel]
) -> None:
    panel = isolated_panel(
        tmp_path, sqlite_url(tmp_path), [attack_plugin(tmp_path / "src", "tenant")]
    )
    panels.append(panel)
    admin = panel.client(panel.login())
    install(admin, "good")
    install(admin, "tenant")
    data = tmp_path / "instance" / "plugin-data" / "tenant"
    answer = admin.post("/api/v1/tenant/write", params={"path": "/plugin/data/kept.txt"})
    assert answer.json()["ok"] is True and (data / "kept.txt").exists()
    pids = plugin_pids(panel, "tenant")
    assert pids

    gone = admin.delete(f"{MARKET}/uninstall/tenant")

    assert gone.status_code == 200, gone.text
    wait_for(lambda: ended(pids), "the plugin processes to end", state=lambda: states(pids))
    assert not data.exists(), sorted(p.name for p in data.iterdir())
    assert admin.get("/api/v1/tenant/ping").status_code == 404
    assert_panel_serves(admin)


# -- 9. credentials ------------------------------------------------------------------------------

MIRROR_ROUTES = """
@router.get('/headers')
def headers(request: Request) -> dict:
    return {'headers': [[k, v] for k, v in request.headers.items()], 'cookies': request.cookies}


@router.get('/me')
def me(user: sdk.CurrentUser) -> dict:
    return {'username': user.username, 'role': user.role}


@router.get('/client')
def client(request: Request) -> dict:
    return {'host': request.client.host if request.client else None}
"""


def test_plugin_never_sees_credentials_but_knows_the_user(
    tmp_path: Path, panels: list[Panel]
) -> None:
    mirror = route_plugin(tmp_path / "src", "mirror", MIRROR_ROUTES)
    panel = isolated_panel(tmp_path, sqlite_url(tmp_path), [mirror])
    panels.append(panel)
    token = panel.login()
    admin = panel.client(token)
    install(admin, "good")
    install(admin, "mirror")
    forged = {"x-plugdock-user": json.dumps({"id": 999, "username": "mallory", "role": "admin"})}

    # A bearer token: the plugin gets the user, never the token.
    with_theme = panel.client(token)
    with_theme.cookies.set("theme", "dark")
    seen = with_theme.get("/api/v1/mirror/headers", headers=forged).json()
    headers = dict(seen["headers"])
    assert "authorization" not in headers
    assert token not in json.dumps(seen)
    assert seen["cookies"] == {"theme": "dark"}  # the site's own cookies pass
    assert json.loads(headers["x-plugdock-user"])["username"] == "admin"  # not mallory
    assert admin.get("/api/v1/mirror/me", headers=forged).json() == {
        "username": "admin",
        "role": "admin",
    }

    # A browser session: the cookies that prove it stay in the panel.
    browser = panel.client()
    signed_in = browser.post(
        "/api/v1/auth/session", json={"username": "admin", "password": panel_password()}
    )
    assert signed_in.status_code == 200, signed_in.text
    assert browser.cookies.get("plugdock_session")
    seen = browser.get("/api/v1/mirror/headers").json()
    assert not any(name.startswith("plugdock_") for name in seen["cookies"]), seen
    assert browser.cookies["plugdock_session"] not in json.dumps(seen)
    assert browser.get("/api/v1/mirror/me").json()["username"] == "admin"

    # The caller's address reaches the plugin as in-process (rate limits per visitor rely
    # on it), and a client cannot choose it with its own X-Forwarded-For.
    assert browser.get("/api/v1/mirror/client").json() == {"host": "127.0.0.1"}
    spoofed = browser.get("/api/v1/mirror/client", headers={"x-forwarded-for": "203.0.113.9"})
    assert spoofed.json() == {"host": "127.0.0.1"}

    # Anonymous with a forged user header: still anonymous.
    anonymous = panel.client()
    answer = anonymous.get("/api/v1/mirror/me", headers=forged)
    assert answer.status_code == 401, answer.text
    seen = anonymous.get("/api/v1/mirror/headers", headers=forged).json()
    assert "x-plugdock-user" not in dict(seen["headers"])
    assert_panel_serves(admin)


COOKIE_ROUTES = """
from fastapi import Response


@router.get('/cookie')
def cookie(response: Response) -> dict:
    # The panel's session and CSRF cookies, set from the plugin: session fixation.
    response.set_cookie('plugdock_session', 'chosen-by-the-plugin', path='/')
    response.set_cookie('plugdock_csrf', 'chosen-by-the-plugin', path='/')
    response.set_cookie('theme', 'dark', path='/')
    return {'set': True}
"""


def test_forwarded_answers_keep_the_panels_own_headers(tmp_path: Path, panels: list[Panel]) -> None:
    """A plugin's answer passes through the panel: one ``date`` and ``server`` (the plugin's
    uvicorn and the panel's each add theirs; RFC 9110 allows one Date), and the plugin
    cannot set the panel's own cookies (it never sees them either: see below)."""
    baker = route_plugin(tmp_path / "src", "baker", COOKIE_ROUTES)
    _panel, admin = serve_isolated(tmp_path, sqlite_url(tmp_path), panels, baker, "baker")

    baked = admin.get("/api/v1/baker/cookie")
    assert baked.status_code == 200, baked.text
    cookies = baked.headers.get_list("set-cookie")
    assert any(c.startswith("theme=") for c in cookies), cookies  # its own: fine
    assert not any(c.startswith("plugdock_") for c in cookies), cookies

    answer = admin.get("/api/v1/good/ping")
    assert answer.status_code == 200, answer.text
    assert len(answer.headers.get_list("date")) == 1, answer.headers
    assert len(answer.headers.get_list("server")) == 1, answer.headers


SETTINGS_LEAK = "sk-chatbot-key-" + uuid.uuid4().hex


def test_plugin_sees_only_its_own_settings(tmp_path: Path, panels: list[Panel]) -> None:
    """Settings are ``PLUGDOCK_PLUGIN_<ID>_<KEY>``; plugin ``ai`` must not be handed
    ``PLUGDOCK_PLUGIN_AI_CHATBOT_OPENAI_API_KEY``, the chatbot's, just because its id is a
    prefix of ``ai_chatbot`` (sdk.plugin_settings documents the overlap; a sandbox that
    passes only a plugin's own settings must not pass another's)."""
    pack_into(CHATBOT, tmp_path / "modules")
    ai = attack_plugin(tmp_path / "src", "ai")
    panel = isolated_panel(
        tmp_path,
        sqlite_url(tmp_path),
        [ai],
        extra_env={
            "PLUGDOCK_PLUGIN_AI_GREETING": "hello",
            "PLUGDOCK_PLUGIN_AI_CHATBOT_OPENAI_API_KEY": SETTINGS_LEAK,
        },
    )
    panels.append(panel)
    admin = panel.client(panel.login())
    install(admin, "good")
    install(admin, "ai_chatbot")
    install(admin, "ai")

    seen = admin.get("/api/v1/ai/read", params={"path": "/proc/self/environ"}).json()

    assert seen["ok"] is True, seen
    assert "PLUGDOCK_PLUGIN_AI_GREETING=hello" in seen["result"]  # its own
    assert SETTINGS_LEAK not in seen["result"], seen["result"]
    assert_panel_serves(admin)


def panel_password() -> str:
    from panel import ADMIN_PASSWORD

    return ADMIN_PASSWORD


# -- 10. the chatbot ----------------------------------------------------------------------------


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_chatbot_end_to_end_in_process_mode(
    tmp_path: Path, database_url: str, panels: list[Panel]
) -> None:
    pack_into(CHATBOT, tmp_path / "modules")
    panel = isolated_panel(tmp_path, database_url, [])
    panels.append(panel)
    admin, visitor = panel.client(panel.login()), panel.client()
    install(admin, "good")
    install(admin, "ai_chatbot")
    assert installed(admin)["ai_chatbot"]["state"] == "mounted"

    started = visitor.post(
        "/api/v1/chat/sessions",
        json={"guest_name": "Zoë", "guest_email": "zoe@example.com", "guest_phone": None},
    )
    assert started.status_code == 201, started.text
    chat = started.json()
    said = visitor.post(
        f"/api/v1/chat/sessions/{chat['session_id']}/messages",
        json={"content": "What are your opening hours?"},
        headers={"X-Chat-Token": chat["token"]},
    )
    assert said.status_code == 201, said.text
    assert said.json()["reply"]["content"]
    assert visitor.get("/api/v1/chat/sessions").status_code == 401  # admins only
    listed = admin.get("/api/v1/chat/sessions")
    assert listed.status_code == 200, listed.text
    assert [s["guest_name"] for s in listed.json()["items"]] == ["Zoë"]
    assert listed.json()["items"][0]["message_count"] == 3  # greeting, question, reply

    pids = plugin_pids(panel, "ai_chatbot")
    assert pids
    gone = admin.delete(f"{MARKET}/uninstall/ai_chatbot")
    assert gone.status_code == 200, gone.text
    assert admin.get("/api/v1/chat/sessions").status_code == 404
    wait_for(lambda: ended(pids), "the chatbot's processes to end", state=lambda: states(pids))
    assert_panel_serves(admin)
