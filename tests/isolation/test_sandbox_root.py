"""A plugin process is never host root, and cannot change the host's kernel settings.

Issue 22, item 1: with the panel running as root (as here, and under ``make run``), the
sandbox's uid 0 was the host's uid 0 (``/proc/self/uid_map`` read ``0 0 1``) and
``/proc/sys`` was writable inside: a plugin with no permissions could set the host's
``vm.swappiness``, and ``kernel.core_pattern`` (a pipe helper there, then a crash, runs
code as root on the host). ``--cap-drop ALL`` did not help: the kernel checks the global
uid and the file's mode for ``/proc/sys``.

The hostile plugin below tries each of those. **It never changes a host setting**: it
writes back exactly the value it has just read, so a write that goes through is seen by
the write not raising, never by a changed value (and the test checks the host's values
before and after all the same). ``/proc/sysrq-trigger`` is only opened for writing, never
written.

The same plugin shows what it still may do as its own host user: write its data folder,
use the database (on SQLite, the panel's SQLite relay socket; on PostgreSQL, the relay
socket in its run folder) and ask the panel for the users over the core-calls socket.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
from test_isolation import (
    assert_panel_serves,
    install,
    installed,
    isolated_panel,
    plugin_pids,
    route_plugin,
)

from panel import Panel

# Kernel settings the attack writes back unchanged, and knobs it only opens for writing.
SYSCTLS = ("/proc/sys/vm/swappiness", "/proc/sys/kernel/core_pattern")
KNOBS = (
    "/proc/sys/kernel/core_pattern",
    "/proc/sys/kernel/modprobe",
    "/proc/sys/vm/drop_caches",
    "/proc/sys/kernel/sysrq",
    "/proc/sysrq-trigger",
)

KERNEL_ROUTES = """
import os

from sqlalchemy import text


def attempt(action):
    try:
        return {'ok': True, 'result': action()}
    except BaseException as exc:  # the report is the point
        return {'ok': False, 'error': type(exc).__name__, 'message': str(exc)}


def _write_back(path):
    # Read the value, then write exactly that value again: a write that goes through
    # changes nothing, and the caller sees that it went through because it did not raise.
    with open(path, 'rb') as handle:
        value = handle.read()
    if not value:
        raise RuntimeError('nothing read: nothing written')
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, value)
    finally:
        os.close(fd)
    return value.decode('latin-1')


def _open_for_writing(path):
    # Opened, never written: opening alone must already be refused.
    os.close(os.open(path, os.O_WRONLY))
    return path


@router.post('/sysctl')
def sysctl(path: str) -> dict:
    return attempt(lambda: _write_back(path))


@router.post('/open-for-writing')
def open_for_writing(path: str) -> dict:
    return attempt(lambda: _open_for_writing(path))


@router.get('/whoami')
def whoami() -> dict:
    def read(path):
        with open(path) as handle:
            return handle.read()

    return {
        'uid': os.getuid(),
        'euid': os.geteuid(),
        'gid': os.getgid(),
        'uid_map': read('/proc/self/uid_map'),
        'gid_map': read('/proc/self/gid_map'),
        'status': read('/proc/self/status'),
    }


@router.post('/data')
def data() -> dict:
    def _write():
        with open('/plugin/data/mine.txt', 'w') as handle:
            handle.write('mine')
        return os.stat('/plugin/data/mine.txt').st_uid

    return attempt(_write)


@router.get('/db')
def db_rows(db: sdk.DbSession) -> dict:
    def _rw():
        db.execute(text("INSERT INTO kernel_notes (body) VALUES ('written')"))
        db.commit()
        return [row[0] for row in db.execute(text('SELECT body FROM kernel_notes ORDER BY id'))]

    return attempt(_rw)


@router.get('/users')
def users(found: sdk.Users) -> list:
    return [user.username for user in found]


@router.post('/processes')
def processes(n: int) -> dict:
    import subprocess

    started, error = [], None
    try:
        for _ in range(n):
            started.append(subprocess.Popen(['/bin/sleep', '30']))
    except OSError as exc:
        error = str(exc)
    finally:
        for child in started:
            child.kill()
            child.wait()
    return {'started': len(started), 'error': error}
"""


def _host_values() -> dict[str, bytes]:
    values = {}
    for path in SYSCTLS:
        try:
            values[path] = Path(path).read_bytes()
        except OSError:
            continue
    return values


def _uids(pid: int) -> list[int]:
    """The real, effective, saved and file-system uids of a process, as the host sees them."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return [int(field) for field in line.split()[1:]]
    raise AssertionError(f"no Uid line for {pid}")


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
def test_plugin_process_is_not_host_root_and_cannot_change_kernel_settings(
    tmp_path: Path, database_url: str, panels: list[Panel]
) -> None:
    before = _host_values()
    assert before, "this test needs to read the host's /proc/sys"
    kernel = route_plugin(
        tmp_path / "src", "kernel", KERNEL_ROUTES, metadata={"permissions": ["core:users:read"]}
    )
    panel = isolated_panel(tmp_path, database_url, [kernel])
    panels.append(panel)
    admin = panel.client(panel.login())
    install(admin, "good")
    install(admin, "kernel")
    try:
        # Every attempt first, then one assertion that shows them all when one goes through.
        tried: dict[str, dict] = {}
        for path in SYSCTLS:  # host settings: each write (of the value just read) refused
            answer = admin.post("/api/v1/kernel/sysctl", params={"path": path})
            assert answer.status_code == 200, answer.text
            tried[f"write back {path}"] = answer.json()
        for path in KNOBS:  # other kernel knobs: not even opened for writing (absent: refused)
            answer = admin.post("/api/v1/kernel/open-for-writing", params={"path": path})
            assert answer.status_code == 200, answer.text
            tried[f"open {path}"] = answer.json()
        who = admin.get("/api/v1/kernel/whoami").json()
        seen = {**tried, "uid_map": who["uid_map"], "ids": [who["uid"], who["euid"], who["gid"]]}
        assert not [what for what, result in tried.items() if result["ok"]], seen
        # Not root inside, and not root on the host.
        assert who["uid"] != 0 and who["euid"] != 0 and who["gid"] != 0, seen
        assert who["uid_map"].split() != ["0", "0", "1"], seen
        assert "CapEff:\t0000000000000000" in who["status"], who["status"]
        pids = plugin_pids(panel, "kernel")
        assert pids
        for pid in pids:  # bwrap and the Python inside it
            uids = _uids(pid)
            assert 0 not in uids, (pid, uids)
        host_uids = {uid for pid in pids for uid in _uids(pid)}
        assert len(host_uids) == 1, host_uids  # one user for all of them, every uid the same
        (plugin_uid,) = host_uids
    finally:
        assert _host_values() == before, "a host kernel setting changed"

    # What it must still do, as that user: its data folder, its database, the panel's users.
    written = admin.post("/api/v1/kernel/data").json()
    assert written["ok"] is True, written
    mine = tmp_path / "instance" / "plugin-data" / "kernel" / "mine.txt"
    assert mine.read_text() == "mine"
    assert mine.stat().st_uid == plugin_uid
    rows = admin.get("/api/v1/kernel/db").json()
    assert rows == {"ok": True, "result": ["hello", "written"]}, rows
    assert admin.get("/api/v1/kernel/users").json() == ["admin"]
    # Its own user is not root, so the kernel applies its process limit (64 more than it
    # runs), even for a panel running as root.
    spawned = admin.post("/api/v1/kernel/processes", params={"n": 200}).json()
    assert spawned["started"] < 64 and "Resource temporarily unavailable" in spawned["error"], (
        spawned
    )
    assert installed(admin)["kernel"]["state"] == "mounted"
    assert_panel_serves(admin)
    # On SQLite the database file is not shared with plugin processes: no loose mode.
    doctor = panel.cli("doctor")
    assert "panel.db" not in doctor.stderr and "scratch.db" not in doctor.stderr, doctor.stderr


# -- the host side of it -----------------------------------------------------------------------

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="what a panel running as root does")


@needs_root
def test_a_root_panel_never_starts_a_plugin_process_as_root(tmp_path: Path) -> None:
    from plugdock.isolation.sandbox import Sandbox, SandboxUnavailable, launch

    sandbox = Sandbox("x", tmp_path / "b", tmp_path / "d", tmp_path / "run", tmp_path / "i")

    with pytest.raises(SandboxUnavailable, match="never as root"):
        launch(sandbox, ["true"])


@needs_root
def test_handing_over_the_data_folder_never_follows_a_link(tmp_path: Path) -> None:
    """An older panel ran plugins as root, so their data folders hold root's files: the
    first start as the plugin's own user hands the whole folder over, and a link the
    plugin left there must not hand over what it points to."""
    from plugdock.isolation.sandbox import HostUser, Sandbox
    from plugdock.isolation.spawner import _hand_over

    victim_file = tmp_path / "victim.txt"
    victim_file.write_text("root's")
    victim_folder = tmp_path / "victim"
    victim_folder.mkdir()
    data = tmp_path / "data"
    (data / "sub").mkdir(parents=True)
    (data / "sub" / "note.txt").write_text("old")
    (data / "file-link").symlink_to(victim_file)
    (data / "sub" / "folder-link").symlink_to(victim_folder)
    run = tmp_path / "run"
    run.mkdir(mode=0o700)
    with socket.socket(socket.AF_UNIX) as listening:
        listening.bind(str(run / "core.sock"))
        os.chmod(run / "core.sock", 0o600)
        user = HostUser(212345, 212345)
        sandbox = Sandbox("x", tmp_path / "backend", data, run, tmp_path / "instance")

        _hand_over(sandbox, user)

        for path in (data, data / "sub", data / "sub" / "note.txt", data / "file-link"):
            info = path.lstat()
            assert (info.st_uid, info.st_gid) == (212345, 212345), path
        assert (data.stat().st_mode & 0o777) == 0o700
        for path in (victim_file, victim_folder):
            assert (path.stat().st_uid, path.stat().st_gid) == (0, 0), path
        assert (run.stat().st_uid, run.stat().st_gid, run.stat().st_mode & 0o777) == (
            0,
            212345,
            0o750,
        )
        sock = (run / "core.sock").stat()
        assert (sock.st_uid, sock.st_gid, sock.st_mode & 0o777) == (0, 212345, 0o660)
