"""The confinement a plugin process runs in: bubblewrap namespaces plus resource limits.

Inside the sandbox a plugin sees:

- Python and the installed libraries, read-only (the interpreter's prefix, the virtualenv
  and the folders on ``sys.path``), and the system's ``/usr``, read-only;
- its own backend code at ``/plugin/backend``, read-only;
- its own data folder at ``/plugin/data``, the only place it may write (and ``/tmp`` and
  ``/dev/shm``, private tmpfs that disappear with it, ``/tmp`` as large as the memory
  limit, ``/dev/shm`` 64 MiB; everything else is read-only);
- ``/run/plugdock``: the Unix sockets it serves on and reaches the database through;
- on SQLite only, the database file (SQLite has no rights of its own to give);
- ``/proc`` of its own PID namespace, read-only: ``/proc/sys`` and ``/proc/sysrq-trigger``
  cannot be written, whoever it is.

It does not see the instance folder (no ``secret.key``, no other plugin's code or data),
the panel's environment (no ``DATABASE_URL``, no ``PLUGDOCK_SECRET_KEY``), other processes
(its own PID namespace), nor any network unless its metadata asks for ``network``: it then
shares the host's network and gets the resolver's files.

It holds no capabilities, even as root in its own user namespace (``--cap-drop ALL``).

Limits (``setrlimit``, inherited through bubblewrap): address space
(``PLUGDOCK_PLUGIN_MEMORY_MB``), open files, file size and, for a panel that does not run as
root, processes. The kernel does not apply the process limit to root, so a panel running as
root relies on the PID namespace and ``--die-with-parent`` instead (``plugdock doctor`` says so).
"""

from __future__ import annotations

import os
import resource
import shutil
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

BACKEND = "/plugin/backend"
DATA = "/plugin/data"
RUN = "/run/plugdock"

OPEN_FILES = 256
FILE_SIZE = 1 << 30  # one file written by a plugin: at most 1 GiB
SHM_SIZE = 64 << 20  # /dev/shm (RAM); /tmp gets the memory limit's size
PROCESSES = 64  # beyond what the panel's user already runs (not enforced for root)

# Read-only system folders a Python process needs; /etc is given file by file.
_SYSTEM = ("/usr", "/lib", "/lib64", "/lib32", "/bin", "/sbin")
_ETC_ALWAYS = ("/etc/localtime", "/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d")
_ETC_NETWORK = (
    "/etc/resolv.conf",
    "/etc/hosts",
    "/etc/nsswitch.conf",
    "/etc/gai.conf",
    "/etc/ssl",
    "/etc/ca-certificates",
)


class SandboxUnavailable(RuntimeError):
    """bubblewrap is missing or the kernel refuses its namespaces."""


@dataclass(frozen=True)
class Sandbox:
    """Where one plugin process's folders are, and what it may do."""

    plugin_id: str
    backend_dir: Path  # the installed backend code (read-only inside)
    data_dir: Path  # its writable folder
    run_dir: Path  # its sockets
    hidden: Path  # the instance folder: never visible, even below a bound path
    network: bool = False
    memory_bytes: int = 512 << 20
    extra_files: tuple[Path, ...] = ()  # e.g. the SQLite database and its -wal/-shm
    env: dict[str, str] = field(default_factory=dict)


def bwrap() -> str:
    """The bubblewrap executable, or SandboxUnavailable saying how to get it."""
    found = shutil.which("bwrap")
    if found is None:
        raise SandboxUnavailable(
            "process isolation needs bubblewrap: apt-get install bubblewrap "
            "(or set PLUGDOCK_ISOLATION=inprocess to run plugins inside the panel)"
        )
    return found


def python_paths() -> list[Path]:
    """Folders the child's Python needs, read-only: its prefixes and what ``sys.path`` lists."""
    paths = {Path(sys.base_prefix), Path(sys.prefix), Path(sys.executable).parent}
    for entry in sys.path:
        if entry and Path(entry).is_absolute() and Path(entry).exists():
            paths.add(Path(entry))
    return _outermost(p.resolve() for p in paths)


def _outermost(paths: Iterable[Path]) -> list[Path]:
    kept: list[Path] = []
    for path in sorted(set(paths), key=lambda p: len(p.parts)):
        if not any(path.is_relative_to(k) for k in kept):
            kept.append(path)
    return kept


def command(sandbox: Sandbox, argv: list[str]) -> list[str]:
    """The bubblewrap command line that runs ``argv`` inside ``sandbox``."""
    args = [
        bwrap(),
        "--die-with-parent",  # the panel gone: so is every plugin process
        "--new-session",  # no TIOCSTI into the panel's terminal
        "--unshare-all",  # user, PID, IPC, UTS, cgroup and network namespaces
        # bwrap keeps every capability when the panel runs as root; in its own user
        # namespace that still lets the plugin remount a read-only bind writable (and so
        # write the host's /usr, the venv or its own code). It needs none.
        "--cap-drop",
        "ALL",
        "--hostname",
        "plugin",
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        # /tmp and /dev/shm are memory the address-space limit does not count: sized, so
        # files there cannot take the host's RAM. The rest of / and /dev is made read-only
        # at the end (both are RAM too, and writable to the sandbox's root otherwise).
        "--size",
        str(SHM_SIZE),
        "--tmpfs",
        "/dev/shm",
        "--size",
        str(sandbox.memory_bytes),
        "--tmpfs",
        "/tmp",
        "--clearenv",
    ]
    if sandbox.network:
        args.append("--share-net")
    folder: str
    for folder in _SYSTEM:
        if os.path.islink(folder):
            args += ["--symlink", os.readlink(folder), folder]
        elif os.path.isdir(folder):
            args += ["--ro-bind", folder, folder]
    etc = _ETC_ALWAYS + (_ETC_NETWORK if sandbox.network else ())
    for name in etc:
        if os.path.exists(name):
            args += ["--ro-bind", name, name]
    for python in python_paths():
        args += ["--ro-bind", str(python), str(python)]
    # Whatever was bound above (Python's folders, or the system's: an instance in
    # /usr/local/...), the instance folder stays out of sight: an empty stand-in, made
    # read-only at the end (on SQLite, only the database files are bound into it).
    hidden = sandbox.hidden.resolve()
    system = [Path(f).resolve() for f in _SYSTEM if os.path.isdir(f)]
    hide = any(hidden.is_relative_to(p) for p in [*system, *python_paths()])
    if hide:
        args += ["--tmpfs", str(hidden)]
    for extra in sandbox.extra_files:
        args += ["--bind", str(extra), str(extra)]
    args += [
        "--ro-bind",
        str(sandbox.backend_dir),
        BACKEND,
        "--bind",
        str(sandbox.data_dir),
        DATA,
        # Read-only: the panel made every socket in it (the plugin's own listening one
        # included, passed as a descriptor), so a plugin cannot swap one for a link.
        "--ro-bind",
        str(sandbox.run_dir),
        RUN,
        "--chdir",
        DATA,
        "--remount-ro",
        "/dev",
        # The kernel's settings and triggers (/proc/sys, /proc/sysrq-trigger, ...) are
        # files in /proc: read-only for everyone inside, root or not. (bubblewrap covers
        # /proc/sys only when the folder looks writable to it, and it never does, even to
        # root: as root, vm.swappiness and kernel.core_pattern were writable inside.)
        "--remount-ro",
        "/proc",
        "--remount-ro",
        "/",
    ]
    if hide:
        args += ["--remount-ro", str(hidden)]
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": DATA,
        "LANG": "C.UTF-8",
        "TMPDIR": "/tmp",
        "PYTHONDONTWRITEBYTECODE": "1",  # the code is read-only; nothing to cache
        "PYTHONUNBUFFERED": "1",
        "MALLOC_ARENA_MAX": "2",  # glibc's per-thread arenas would eat the address-space limit
        **sandbox.env,
    }
    for name, value in env.items():
        args += ["--setenv", name, value]
    return [*args, "--", *argv]


def limit_resources(memory_bytes: int) -> Callable[[], None]:
    """A ``preexec_fn`` that sets the plugin process's rlimits (kept across bwrap's exec)."""
    processes = None if os.geteuid() == 0 else _processes_of_user() + PROCESSES

    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
        resource.setrlimit(resource.RLIMIT_NOFILE, (OPEN_FILES, OPEN_FILES))
        resource.setrlimit(resource.RLIMIT_FSIZE, (FILE_SIZE, FILE_SIZE))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if processes is not None:
            resource.setrlimit(resource.RLIMIT_NPROC, (processes, processes))

    return apply


def _processes_of_user() -> int:
    """How many processes (threads count too) this user runs now."""
    uid = os.getuid()
    count = 0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid == uid:
                    count += len(os.listdir(entry / "task"))
            except OSError:
                continue
    return count


def process_limit_enforced() -> bool:
    """False when the panel runs as root: the kernel exempts root from RLIMIT_NPROC."""
    return os.geteuid() != 0
