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
  cannot be written, whoever it is (bubblewrap covers ``/proc/sys`` only when it looks
  writable to it, and its top folder never does, even to root).

It does not see the instance folder (no ``secret.key``, no other plugin's code or data),
the panel's environment (no ``DATABASE_URL``, no ``PLUGDOCK_SECRET_KEY``), other processes
(its own PID namespace), nor any network but what its grants name
(:mod:`plugdock.isolation.egress`): with ``network:<host>[:<port>]`` grants, a network
namespace that the process starting it made (:mod:`plugdock.isolation.netns`), holding
only loopback and the panel's listening sockets on the granted addresses, with the
panel's ``/etc/hosts``; with plain ``network``, the host's network and its resolver's files.

**It is never host root.** A panel that is not root starts bubblewrap as itself: the plugin
runs as the panel's own (unprivileged) user. A panel running as root does not start it as
root (bubblewrap would map the sandbox's uid 0 to the host's, and the kernel checks the
host uid for ``/proc/sys``; no capability set changes that): the process that executes
bubblewrap first becomes the plugin's own host user (:func:`plugin_user`: a uid/gid in
``PLUGDOCK_PLUGIN_UID_BASE`` + 1 .. + 65535, no supplementary groups but, on SQLite, the
database's group), and bubblewrap makes its namespaces as that user. An unprivileged
bubblewrap must reach every folder it binds by path, and the instance folder, the run
folders and perhaps Python (``/root/...``) are closed to that user; so before it becomes
that user, the starting process (still root) makes a mount namespace of its own and binds
each folder to ``<run root>/<n>`` on a tmpfs there (:func:`_stage`), and bubblewrap binds
those. Nothing changes on the host's folders for this; what the plugin itself must open
is made its own (its data folder) or its group's (its run folder and sockets, the SQLite
file) by :mod:`plugdock.isolation.spawner`.

It holds no capabilities (``--cap-drop ALL``), not even in its own user namespace, and a
seccomp filter (:mod:`plugdock.isolation.seccomp`) refuses the system calls a plugin never
needs (mount, ptrace, keyrings, BPF, new namespaces, modules, ...).

Limits (``setrlimit``, inherited through bubblewrap): address space
(``PLUGDOCK_PLUGIN_MEMORY_MB``), open files, file size (at most its data quota) and
processes: at most ``PLUGDOCK_PLUGIN_PROCESSES`` more than its host user already runs (the
panel's user, or the plugin's own when the panel is root). What its processes use together
is the watchdog's to limit (:mod:`plugdock.isolation.resources`).
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import resource
import shutil
import socket
import stat
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from plugdock.isolation import seccomp
from plugdock.isolation.netns import own_network

BACKEND = "/plugin/backend"
DATA = "/plugin/data"
RUN = "/run/plugdock"

OPEN_FILES = 256
FILE_SIZE = 1 << 30  # one file written by a plugin: at most 1 GiB
SHM_SIZE = 64 << 20  # /dev/shm (RAM); /tmp gets the memory limit's size
PROCESSES = 64  # beyond what its host user already runs
UID_SPAN = 1 << 16  # PLUGDOCK_PLUGIN_UID_BASE: the database group, then +1 .. +65535 plugin uids

_UNSHARE_ALL_BUT_NET = (
    "--unshare-user",
    "--unshare-ipc",
    "--unshare-pid",
    "--unshare-uts",
    "--unshare-cgroup-try",
)
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
class HostUser:
    """Who a plugin process is on the host when the panel runs as root: never root.

    ``groups`` are its only supplementary groups (none: SQLite goes through the panel).
    """

    uid: int
    gid: int
    groups: tuple[int, ...] = ()


def plugin_user(home: Path, plugin_id: str, base: int) -> HostUser:
    """The host uid/gid of a plugin of the instance at ``home``: the same at every start.

    One of ``base + 1 .. base + 65535``, from a hash of the instance folder and the plugin
    id (no /etc/passwd entry, no state to keep; two instances on a host most likely differ).
    Two plugins of an instance share one only if their hashes meet (about 1 in 65,535 per
    pair): they still see nothing of each other (namespaces, folders of their own), but
    count against one process limit. ``plugdock doctor`` names such a pair.
    """
    digest = hashlib.sha256(f"{home}\0{plugin_id}".encode()).digest()
    uid = base + 1 + int.from_bytes(digest[:8], "big") % (UID_SPAN - 1)
    return HostUser(uid, uid)


@dataclass(frozen=True)
class Sandbox:
    """Where one plugin process's folders are, and what it may do."""

    plugin_id: str
    backend_dir: Path  # the installed backend code (read-only inside)
    data_dir: Path  # its writable folder
    run_dir: Path  # its sockets
    hidden: Path  # the instance folder: never visible, even below a bound path
    network: bool = False  # plain ``network``: the host's network, shared
    # (address, port) pairs the panel listens on in the plugin's own network namespace
    # (its egress grants), and the files it sees as /etc/hosts and /etc/nsswitch.conf.
    listen: tuple[tuple[str, int], ...] = ()
    resolver_files: tuple[tuple[Path, str], ...] = ()
    memory_bytes: int = 512 << 20
    processes: int = PROCESSES  # beyond what its host user already runs
    file_bytes: int = FILE_SIZE  # one file it writes (its data quota, if smaller)
    env: dict[str, str] = field(default_factory=dict)
    # The host user it runs as; None: the panel's own, which must not be root (launch()).
    user: HostUser | None = None


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


@dataclass(frozen=True)
class Launch:
    """How to start a sandboxed process: bubblewrap's command line, the ``preexec_fn``
    that prepares the process that executes it (staging, host user, limits), and the
    descriptor of the seccomp filter it reads (pass it to the child, close it after)."""

    args: list[str]
    preexec: Callable[[], None]
    seccomp_fd: int
    # After the process started: the sockets listening in its network namespace, one per
    # ``Sandbox.listen`` entry and its DNS socket last, for the panel's egress broker
    # (none without grants).
    listeners: Callable[[], list[socket.socket]] = list


def command(sandbox: Sandbox, argv: list[str], seccomp_fd: int = 3) -> list[str]:
    """The bubblewrap command line that runs ``argv`` inside ``sandbox`` (as :func:`launch`)."""
    if sandbox.listen:  # its network namespace is made by launch()'s preexec: not here
        raise ValueError("a sandbox with egress grants starts only through launch()")
    return _command(sandbox, argv, [] if sandbox.user is not None else None, seccomp_fd)


def launch(sandbox: Sandbox, argv: list[str]) -> Launch:
    """The command line and ``preexec_fn`` that start ``argv`` in ``sandbox`` (Popen)."""
    user = sandbox.user
    if (user is None and os.geteuid() == 0) or (
        user is not None and 0 in (user.uid, user.gid, *user.groups)
    ):
        raise SandboxUnavailable(
            f"{sandbox.plugin_id}: a panel running as root starts a plugin process only as "
            "a host user of its own, never as root"
        )
    sources: list[str] = []
    try:
        fd = seccomp.program_fd()
    except (OSError, RuntimeError) as exc:  # pyseccomp could not load libseccomp.so.2
        raise SandboxUnavailable(
            f"the seccomp filter cannot be built ({exc}): apt-get install libseccomp2"
        ) from exc
    args = _command(sandbox, argv, sources if sandbox.user is not None else None, fd)
    if not sandbox.listen:
        return Launch(args, _prepare(sandbox, sources, None), fd)
    panel_end, child_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)

    def listeners() -> list[socket.socket]:
        with panel_end, child_end:
            panel_end.setblocking(False)  # sent before the exec that Popen waited for
            try:
                _, fds, _, _ = socket.recv_fds(panel_end, 16, len(sandbox.listen) + 1)
            except BlockingIOError:
                return []
        return [socket.socket(fileno=fd) for fd in fds]

    return Launch(args, _prepare(sandbox, sources, child_end), fd, listeners)


def _command(
    sandbox: Sandbox, argv: list[str], staged: list[str] | None, seccomp_fd: int
) -> list[str]:
    """bubblewrap's command line; with ``staged``, each bound path is named by where
    :func:`_stage` binds it (``<run root>/<n>``) and appended to ``staged``."""
    stage = sandbox.run_dir.parent

    def source(path: str | Path) -> str:
        if staged is None:
            return str(path)
        staged.append(str(path))
        return str(stage / str(len(staged) - 1))

    args = [
        bwrap(),
        "--die-with-parent",  # the panel gone: so is every plugin process
        "--new-session",  # no TIOCSTI into the panel's terminal
        # user, PID, IPC, UTS, cgroup and network namespaces; with egress grants, the network
        # namespace is the one netns.own_network made (bubblewrap must not make another).
        *(["--unshare-all"] if not sandbox.listen else _UNSHARE_ALL_BUT_NET),
        # A root bwrap keeps every capability; in its own user namespace that still lets the
        # plugin remount a read-only bind writable (and so write the host's /usr, the venv or
        # its own code). It needs none (and a root panel does not start it as root anyway).
        "--cap-drop",
        "ALL",
        # Loaded last, just before the plugin's Python runs: bubblewrap's own mounts and
        # namespaces come first (plugdock.isolation.seccomp).
        "--seccomp",
        str(seccomp_fd),
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
            args += ["--ro-bind", source(folder), folder]
    etc = _ETC_ALWAYS + (_ETC_NETWORK if sandbox.network else ())
    for name in etc:
        if os.path.exists(name):
            args += ["--ro-bind", source(name), name]
    if sandbox.listen:
        for path, target in sandbox.resolver_files:  # the panel answers its names
            args += ["--ro-bind", source(path), target]
    for python in python_paths():
        args += ["--ro-bind", source(python), str(python)]
    # Whatever was bound above (Python's folders, or the system's: an instance in
    # /usr/local/...), the instance folder stays out of sight: an empty stand-in, made
    # read-only at the end.
    hidden = sandbox.hidden.resolve()
    system = [Path(f).resolve() for f in _SYSTEM if os.path.isdir(f)]
    hide = any(hidden.is_relative_to(p) for p in [*system, *python_paths()])
    if hide:
        args += ["--tmpfs", str(hidden)]
    args += [
        "--ro-bind",
        source(sandbox.backend_dir),
        BACKEND,
        "--bind",
        source(sandbox.data_dir),
        DATA,
        # Read-only: the panel made every socket in it (the plugin's own listening one
        # included, passed as a descriptor), so a plugin cannot swap one for a link.
        "--ro-bind",
        source(sandbox.run_dir),
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


# mount(2) and unshare(2) flags (linux/mount.h, linux/sched.h)
_MS_NOSUID = 0x2
_MS_NODEV = 0x4
_MS_NOEXEC = 0x8
_MS_BIND = 0x1000
_MS_REC = 0x4000
_MS_PRIVATE = 0x40000
_CLONE_NEWNS = 0x20000


def _prepare(
    sandbox: Sandbox, sources: list[str], channel: socket.socket | None
) -> Callable[[], None]:
    """A ``preexec_fn``: staging (root panel only), the network namespace of egress grants
    (sent on ``channel``), the host user (root panel only), then the rlimits.

    It runs in the forked child, before bubblewrap; a failure is written to the plugin's
    log (its stderr by then) and ends the child, so the panel reports it as the process's end.
    """
    user = sandbox.user
    memory = sandbox.memory_bytes
    uid = user.uid if user is not None else os.getuid()
    processes = _processes_of(uid) + sandbox.processes
    file_bytes = sandbox.file_bytes
    needs_libc = user is not None or channel is not None
    libc = ctypes.CDLL(None, use_errno=True) if needs_libc else None  # before the fork

    def apply() -> None:
        try:
            if user is not None and libc is not None:
                _stage(libc, str(sandbox.run_dir.parent), sources)
            if channel is not None and libc is not None:
                own_network(libc, sandbox.listen, channel, as_root=user is not None)
            if user is not None and libc is not None:
                # The order matters: groups and gid while still root, then the uid (after
                # which none of them can change again).
                os.setgroups(list(user.groups))
                os.setresgid(user.gid, user.gid, user.gid)
                os.setresuid(user.uid, user.uid, user.uid)
            resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
            resource.setrlimit(resource.RLIMIT_NOFILE, (OPEN_FILES, OPEN_FILES))
            resource.setrlimit(resource.RLIMIT_FSIZE, (file_bytes, file_bytes))
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
            resource.setrlimit(resource.RLIMIT_NPROC, (processes, processes))
        except BaseException as exc:
            os.write(2, f"plugdock: cannot start the sandbox: {exc}\n".encode())
            os._exit(126)

    return apply


def _stage(libc: ctypes.CDLL, stage: str, sources: list[str]) -> None:
    """Bind each of ``sources`` to ``<stage>/<n>`` in a mount namespace of this process's own.

    Runs as root in the child that is about to become the plugin's user and execute
    bubblewrap. That user cannot reach the instance folder, the run root or perhaps Python
    (closed folders on the way); these binds, on a tmpfs it may cross (0711) over the run
    root, let bubblewrap reach them without opening any folder on the host. The mount
    namespace is private: nothing here is seen outside this process and its sandbox.
    """

    def check(result: int, what: str) -> None:
        if result != 0:
            error = ctypes.get_errno()
            raise OSError(error, f"{what}: {os.strerror(error)}")

    check(libc.unshare(_CLONE_NEWNS), "unshare")
    check(libc.mount(None, b"/", None, _MS_REC | _MS_PRIVATE, None), "making / private")
    # Opened in this namespace (a bind's source must be in it) before the tmpfs covers the
    # run root, where the run folder itself is.
    opened = [os.open(path, os.O_PATH | os.O_CLOEXEC) for path in sources]
    check(
        libc.mount(
            b"tmpfs",
            stage.encode(),
            b"tmpfs",
            _MS_NOSUID | _MS_NODEV | _MS_NOEXEC,
            b"mode=0711,size=64k",
        ),
        f"tmpfs on {stage}",
    )
    for index, (path, fd) in enumerate(zip(sources, opened, strict=True)):
        target = f"{stage}/{index}"
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            os.mkdir(target, 0o700)
        else:
            os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600))
        bound = libc.mount(
            f"/proc/self/fd/{fd}".encode(), target.encode(), None, _MS_BIND | _MS_REC, None
        )
        check(bound, f"binding {path}")
        os.close(fd)


def _processes_of(uid: int) -> int:
    """How many processes (threads count too) this user runs now."""
    count = 0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid == uid:
                    count += len(os.listdir(entry / "task"))
            except OSError:
                continue
    return count


def plugin_ids_taken(base: int) -> list[str]:
    """Host users, groups and subordinate id ranges that use a root panel's plugin ids.

    A host user with a plugin's uid could signal or trace its process and read its data
    folder; members of a group with one of these gids could open what it opens (on SQLite,
    the database file). None may exist: pick another ``PLUGDOCK_PLUGIN_UID_BASE``.
    """
    ids = range(base, base + UID_SPAN)
    taken = []
    for table, what in (("/etc/passwd", "user"), ("/etc/group", "group")):
        for line in _lines(table):
            fields = line.split(":")
            if len(fields) > 2 and fields[2].isdigit() and int(fields[2]) in ids:
                taken.append(f"{what} {fields[0]} ({what[0]}id {fields[2]}, {table})")
    for table in ("/etc/subuid", "/etc/subgid"):
        for line in _lines(table):
            fields = line.split(":")
            if len(fields) == 3 and fields[1].isdigit() and fields[2].isdigit():
                first, count = int(fields[1]), int(fields[2])
                if first < ids.stop and ids.start < first + count:
                    taken.append(f"{fields[0]}'s ids {first}..{first + count - 1} ({table})")
    return taken


def _lines(path: str) -> list[str]:
    try:
        return [line for line in Path(path).read_text().splitlines() if line and line[0] != "#"]
    except OSError:
        return []


def user_namespaces_refused() -> str | None:
    """Why this kernel would refuse bubblewrap's namespaces to an unprivileged user, if it does.

    bubblewrap runs unprivileged for every panel (a root panel's plugin processes start as
    their own users), so it needs unprivileged user namespaces.
    """
    knobs = {
        "/proc/sys/kernel/unprivileged_userns_clone": (
            "0",
            "sysctl kernel.unprivileged_userns_clone=1",
        ),
        "/proc/sys/user/max_user_namespaces": ("0", "sysctl user.max_user_namespaces=15000"),
        "/proc/sys/kernel/apparmor_restrict_unprivileged_userns": (
            "1",
            "an AppArmor profile that allows bwrap user namespaces, or "
            "sysctl kernel.apparmor_restrict_unprivileged_userns=0",
        ),
    }
    for path, (refusing, remedy) in knobs.items():
        try:
            value = Path(path).read_text().strip()
        except OSError:
            continue
        if value == refusing:
            name = path.removeprefix("/proc/sys/").replace("/", ".")
            return (
                f"{name} is {value}: the kernel may refuse bubblewrap's namespaces to an "
                f"unprivileged user, and plugin processes then fail to start ({remedy})"
            )
    return None
