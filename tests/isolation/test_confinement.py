"""A hostile plugin author against the seccomp filter and the per-plugin resource limits.

Issue 22, item 3 ("resources are per process, not per plugin") and the seccomp part of
item 1. Before this, in process mode:

- the 512 MiB address-space limit held per process: four children held 800 MiB together,
  and the sandbox's ``/tmp`` (RAM) counted against nothing;
- the process limit was 64 per host user, not the operator's choice;
- the data folder had no quota (1,300 MiB written);
- the plugin's log grew without bound while it ran (trimmed only at the next start);
- no seccomp filter: a plugin could make a user namespace of its own, trace, use the
  kernel keyrings, change its personality, open perf events ...

One panel (SQLite; the database does not matter here) serves one plugin per attack, each
with its own host user and limits kept small so that nothing here can hurt the machine:
192 MiB of memory, 24 processes, a 16 MiB data quota. What the watchdog stops it may stop
while the attack's request runs: that request answers 200 or 503, either way.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from test_isolation import (
    assert_panel_serves,
    install,
    installed,
    isolated_panel,
    route_plugin,
    sqlite_url,
    wait_for,
)
from test_sandbox_root import KERNEL_ROUTES

from panel import Panel
from plugdock.isolation.plugin_log import CHUNK
from plugdock.isolation.resources import LOG_BYTES
from plugdock.isolation.seccomp import DENIED

pytestmark = pytest.mark.processes

MEMORY_MB = 192
PROCESSES = 24
DATA_MB = 16

# Four children, each well under the per-process address-space limit, together past the
# plugin's memory; they touch every page (bytes * n writes them), then wait.
MEMORY_ROUTES = """
import subprocess
import sys

HOLD = 'import time; block = b"x" * (56 << 20); time.sleep(120)'
children = []


@router.post('/hold')
def hold() -> dict:
    for _ in range(4):
        children.append(subprocess.Popen([sys.executable, '-c', HOLD]))
    return {'started': len(children)}
"""

# Files of 8 MiB (one file may not be larger than the data quota, /tmp's included) until
# /tmp is full: no process holds that memory.
TMP_ROUTES = """
@router.post('/fill')
def fill() -> dict:
    chunk = b'x' * (1 << 20)
    written = 0
    try:
        for index in range(1000):
            with open(f'/tmp/ballast{index}', 'wb') as handle:
                for _ in range(8):
                    handle.write(chunk)
                    handle.flush()
                    written += 1
    except OSError as exc:
        return {'written': written, 'error': exc.errno}
    return {'written': written, 'error': None}
"""

DATA_ROUTES = """
import os


def _write(path, mb):
    chunk = os.urandom(1 << 20)  # real blocks: no sparse file, nothing to compress away
    with open(path, 'wb') as handle:
        for _ in range(mb):
            handle.write(chunk)
            handle.flush()


@router.post('/one-file')
def one_file(mb: int) -> dict:
    try:
        _write('/plugin/data/big.bin', mb)
        return {'ok': True}
    except OSError as exc:
        return {'ok': False, 'errno': exc.errno}
    finally:
        if os.path.exists('/plugin/data/big.bin'):
            os.remove('/plugin/data/big.bin')


@router.post('/files')
def files(n: int, mb: int) -> dict:
    for index in range(n):
        _write(f'/plugin/data/part{index}.bin', mb)
    return {'ok': True}
"""

LOG_ROUTES = """
import os


@router.post('/spam')
def spam(mb: int) -> dict:
    line = b'spam ' * 200 + b'\\n'
    for _ in range(mb * (1 << 20) // len(line)):
        os.write(2, line)
    os.write(2, b'spam-done\\n')
    return {'ok': True}
"""

# Each denied call, made from a Python subprocess (single-threaded, as unshare(CLONE_NEWUSER)
# needs), with arguments that the kernel would not refuse with EPERM on its own: without a
# filter, most of them succeed or fail otherwise (ESRCH, EFAULT, EBADF, EINVAL).
PROBE = r"""
import ctypes, json, os
import pyseccomp

libc = ctypes.CDLL(None, use_errno=True)
arch = pyseccomp.system_arch()
NONE = ctypes.c_void_p(0)
ARGS = {
    'ptrace': (3, 999999, 0, 0),  # PTRACE_PEEKUSER of no such process
    'process_vm_readv': (999999, NONE, 1, NONE, 1, 0),
    'keyctl': (0, -3, 0),  # KEYCTL_GET_KEYRING_ID of the session keyring
    'add_key': (NONE, NONE, NONE, 0, -3),
    'request_key': (NONE, NONE, NONE, 0),
    'bpf': (5, NONE, 0),
    'perf_event_open': (NONE, 0, -1, -1, 0),
    'unshare': (0x10000000,),  # CLONE_NEWUSER
    'setns': (-1, 0),
    'mount': (b'none', b'/tmp', b'tmpfs', 0, NONE),
    'umount2': (b'/tmp', 0),
    'pivot_root': (b'/tmp', b'/tmp'),
    'open_by_handle_at': (-1, NONE, 0),
    'name_to_handle_at': (-1, NONE, NONE, NONE, 0),
    'userfaultfd': (1,),  # UFFD_USER_MODE_ONLY
    'io_uring_setup': (1, NONE),
    'init_module': (NONE, 0, NONE),
    'finit_module': (-1, b'', 0),
    'delete_module': (b'nothing_here', 0),
    'kexec_load': (0, 0, NONE, 0),
    'reboot': (0, 0, 0, NONE),  # wrong magic numbers
    'swapon': (b'/nonexistent', 0),
    'swapoff': (b'/nonexistent',),
    'acct': (NONE,),
    'quotactl': (0, NONE, 0, NONE),
    'syslog': (10, NONE, 0),  # SYSLOG_ACTION_SIZE_BUFFER
    'personality': (0x0040000,),  # ADDR_NO_RANDOMIZE
}
results = {}
for name in NAMES:
    number = pyseccomp.resolve_syscall(arch, name)
    if number < 0:
        continue
    ctypes.set_errno(0)
    answer = libc.syscall(number, *ARGS.get(name, ()))
    results[name] = 0 if answer >= 0 else ctypes.get_errno()
# A new user namespace through clone(2) too: the child would leave at once.
number = pyseccomp.resolve_syscall(arch, 'clone')
pid = libc.syscall(number, 0x10000000 | 17, 0, 0, 0, 0)  # CLONE_NEWUSER | SIGCHLD
if pid == 0:
    os._exit(0)
if pid > 0:
    os.waitpid(pid, 0)
results['clone(CLONE_NEWUSER)'] = 0 if pid > 0 else ctypes.get_errno()
status = dict(line.split(':', 1) for line in open('/proc/self/status').read().splitlines())
print(json.dumps({'errors': results, 'seccomp': status['Seccomp'].strip()}))
"""

SYSCALL_ROUTES = (
    """
import json
import subprocess
import sys
import threading

from sqlalchemy import text

PROBE = """
    + repr(PROBE)
    + """
NAMES = """
    + repr([*DENIED, "personality"])
    + """


@router.get('/probe')
def probe() -> dict:
    code = 'NAMES = ' + repr(NAMES) + '\\n' + PROBE
    done = subprocess.run([sys.executable, '-c', code], capture_output=True, timeout=60)
    return {'out': done.stdout.decode(), 'err': done.stderr.decode()[-2000:]}


@router.get('/work')
def work(db: sdk.DbSession) -> dict:
    # What a plugin does every day still works under the filter: threads, a Python
    # subprocess, its database.
    seen = []
    worker = threading.Thread(target=lambda: seen.append('thread'))
    worker.start()
    worker.join()
    child = subprocess.run([sys.executable, '-c', 'print(6 * 7)'], capture_output=True)
    db.execute(text("INSERT INTO syscalls_notes (body) VALUES ('under seccomp')"))
    db.commit()
    rows = [row[0] for row in db.execute(text('SELECT body FROM syscalls_notes ORDER BY id'))]
    return {'thread': seen, 'child': child.stdout.decode().strip(), 'rows': rows}
"""
)

PLUGINS = {
    "memhog": MEMORY_ROUTES,
    "tmpfill": TMP_ROUTES,
    "forker": KERNEL_ROUTES,  # its /processes starts n children (a bounded fork bomb)
    "filler": DATA_ROUTES,
    "spammer": LOG_ROUTES,
    "syscalls": SYSCALL_ROUTES,
}


@pytest.fixture(scope="module")
def confined(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Panel, httpx.Client]]:
    """One process-mode panel with small limits, serving ``good`` and one plugin per attack."""
    tmp_path = tmp_path_factory.mktemp("confined")
    plugins = [route_plugin(tmp_path / "src", name, body) for name, body in PLUGINS.items()]
    panel = isolated_panel(
        tmp_path,
        sqlite_url(tmp_path),
        plugins,
        extra_env={
            "PLUGDOCK_PLUGIN_MEMORY_MB": str(MEMORY_MB),
            "PLUGDOCK_PLUGIN_PROCESSES": str(PROCESSES),
            "PLUGDOCK_PLUGIN_DATA_MB": str(DATA_MB),
        },
    )
    try:
        admin = panel.client(panel.login())
        for plugin_id in ["good", *PLUGINS]:
            install(admin, plugin_id)
        panel.home = tmp_path / "instance"  # type: ignore[attr-defined]
        yield panel, admin
    finally:
        panel.stop()
        print(f"--- panel log {panel.log}:\n{panel.output()[-6000:]}")


def stopped(admin: httpx.Client, plugin_id: str) -> dict:
    """Wait until the watchdog has stopped the plugin; its entry in the installed list."""
    return wait_for(
        lambda: (
            (p := installed(admin)[plugin_id])["state"] == "failed"
            and (p.get("error") or "").startswith("stopped:")
            and p
        ),
        f"{plugin_id} to be stopped by the watchdog",
        state=lambda: installed(admin)[plugin_id],
    )


def test_children_together_past_the_memory_limit_stop_the_plugin(
    confined: tuple[Panel, httpx.Client],
) -> None:
    _panel, admin = confined
    held = admin.post("/api/v1/memhog/hold")  # each child alone is within its limits
    assert held.status_code in (200, 503), held.text

    entry = stopped(admin, "memhog")

    assert entry["error"].startswith("stopped: used "), entry
    assert f"limit {MEMORY_MB} MiB" in entry["error"], entry
    answer = admin.get("/api/v1/memhog/ping")  # not started again: it says why
    assert answer.status_code == 503, answer.text
    assert answer.json()["detail"].startswith("memhog is not running: stopped: used"), answer.text
    assert_panel_serves(admin)


def test_filling_tmp_counts_against_the_plugins_memory(
    confined: tuple[Panel, httpx.Client],
) -> None:
    _panel, admin = confined
    filled = admin.post("/api/v1/tmpfill/fill")
    assert filled.status_code in (200, 503), filled.text
    if filled.status_code == 200:  # /tmp is no larger than the memory limit
        assert filled.json()["written"] <= MEMORY_MB, filled.json()
        assert filled.json()["error"] == errno.ENOSPC, filled.json()

    entry = stopped(admin, "tmpfill")  # what it holds is the plugin's memory

    assert entry["error"].startswith("stopped: used "), entry
    assert "/tmp" in entry["error"], entry
    assert_panel_serves(admin)


def test_a_fork_bomb_stops_at_the_plugins_process_limit(
    confined: tuple[Panel, httpx.Client],
) -> None:
    _panel, admin = confined
    bomb = admin.post("/api/v1/forker/processes", params={"n": 200}).json()
    assert bomb["started"] < PROCESSES, bomb
    assert "Resource temporarily unavailable" in bomb["error"], bomb
    assert admin.get("/api/v1/forker/ping").json() == {"pong": True}
    assert_panel_serves(admin)


def test_the_data_folder_has_an_enforced_quota(confined: tuple[Panel, httpx.Client]) -> None:
    panel, admin = confined
    data = panel.home / "plugin-data" / "filler"
    # One file past the quota: the write itself fails (file too large).
    one = admin.post("/api/v1/filler/one-file", params={"mb": DATA_MB + 8}).json()
    assert one == {"ok": False, "errno": errno.EFBIG}, one
    # Files each within it, together past it: the plugin is stopped, and says why.
    files = admin.post("/api/v1/filler/files", params={"n": 3, "mb": 8})
    assert files.status_code in (200, 503), files.text

    entry = stopped(admin, "filler")

    held = re.fullmatch(
        rf"stopped: its data folder holds (\d+) MiB, quota {DATA_MB} MiB", entry["error"]
    )
    assert held is not None and DATA_MB <= int(held[1]) <= 24, entry
    assert "part2.bin" in {p.name for p in data.iterdir()}
    assert_panel_serves(admin)


def test_the_plugins_log_is_bounded_while_it_runs(
    confined: tuple[Panel, httpx.Client],
) -> None:
    panel, admin = confined
    instance = hashlib.sha256(str(panel.home).encode()).hexdigest()[:12]
    log = Path("/tmp") / f"pd-{instance}" / "logs" / "spammer.log"
    spammed = admin.post("/api/v1/spammer/spam", params={"mb": 3 * LOG_BYTES >> 20})
    assert spammed.json() == {"ok": True}

    # The writes returned, so all but the pipe's and the copier's last chunk is in the log;
    # the copier catches up with the last line (and finishes a rotation it may be in).
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with contextlib.suppress(FileNotFoundError):
            if log.read_bytes().endswith(b"spam-done\n"):
                break
        time.sleep(0.05)
    older = log.with_name("spammer.log.1")  # rotated twice: 12 MiB through 4 MiB files
    assert older.exists()
    for path in (log, older):
        assert path.stat().st_size <= LOG_BYTES + CHUNK, (path, path.stat().st_size)
    assert admin.get("/api/v1/spammer/ping").json() == {"pong": True}
    assert installed(admin)["spammer"]["state"] == "mounted"


def test_each_denied_system_call_fails_with_eperm_and_plugin_work_goes_on(
    confined: tuple[Panel, httpx.Client],
) -> None:
    import json

    panel, admin = confined
    probe = admin.get("/api/v1/syscalls/probe")
    assert probe.status_code == 200, probe.text
    assert probe.json()["out"], probe.json()
    seen = json.loads(probe.json()["out"])
    assert seen["seccomp"] == "2", seen  # a filter is loaded (2: SECCOMP_MODE_FILTER)
    errors = seen["errors"]
    for name in ("ptrace", "keyctl", "bpf", "perf_event_open", "unshare", "mount", "personality"):
        assert name in errors, errors
    assert "clone(CLONE_NEWUSER)" in errors
    allowed = {name: code for name, code in errors.items() if code != errno.EPERM}
    assert not allowed, allowed

    work = admin.get("/api/v1/syscalls/work").json()
    assert work == {
        "thread": ["thread"],
        "child": "42",
        "rows": ["hello", "under seccomp"],
    }, work
    # Where it is said: the panel's API and the doctor.
    limits = installed(admin)["syscalls"]["limits"]
    assert limits.startswith(f"watchdog: memory {MEMORY_MB} MiB"), limits
    doctor = panel.cli("doctor")
    notes = doctor.stdout + doctor.stderr
    assert "seccomp: a filter of" in notes, notes
    assert "plugin resources: watchdog" in notes and "cgroup v2 not used" in notes, notes
