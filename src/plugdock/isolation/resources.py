"""What one plugin uses, all its processes together, and which mechanism holds it to its limits.

The kernel's per-process limits (``setrlimit`` in :mod:`plugdock.isolation.sandbox`) do not
add up a plugin's processes: four children each under the address-space limit hold four
times it, and the sandbox's ``/tmp`` is RAM no process limit counts. cgroup v2 would count
them together, but only where the panel has been given (delegated) a cgroup whose memory
and pids controllers it may use; without one (this machine, most containers), the panel's
**watchdog** (:meth:`plugdock.isolation.supervisor.PluginProcesses.watch`) measures each
plugin every second, with :func:`measure`:

- memory: the proportional set size (PSS; RSS where smaps cannot be read) of every process
  in the plugin's tree, plus what its ``/tmp`` and ``/dev/shm`` hold (tmpfs: RAM);
- processes: the threads of that tree (each counts against ``RLIMIT_NPROC`` too);
- its data folder: the disk blocks everything in it takes (links not followed).

Past a limit the plugin is stopped, with a status that says which and by how much.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

MIB = 1 << 20


@dataclass(frozen=True)
class Limits:
    """One plugin's budget (``PLUGDOCK_PLUGIN_MEMORY_MB``, ``_PROCESSES``, ``_DATA_MB``)."""

    memory_bytes: int
    processes: int
    data_bytes: int


@dataclass(frozen=True)
class Usage:
    """What a plugin uses now (:func:`measure`)."""

    memory_bytes: int  # its processes' PSS plus its /tmp and /dev/shm
    processes: int  # threads of its process tree
    data_bytes: int  # disk blocks of its data folder


def over(usage: Usage, limits: Limits) -> str | None:
    """Why a plugin must be stopped ("stopped: ..."), or None within its limits."""
    if usage.memory_bytes > limits.memory_bytes:
        return (
            f"stopped: used {usage.memory_bytes // MIB} MiB, "
            f"limit {limits.memory_bytes // MIB} MiB (its processes, /tmp and /dev/shm)"
        )
    if usage.processes > limits.processes:
        return f"stopped: ran {usage.processes} processes, limit {limits.processes}"
    if usage.data_bytes > limits.data_bytes:
        return data_over(usage.data_bytes, limits.data_bytes)
    return None


def data_over(used: int, quota: int) -> str:
    return f"stopped: its data folder holds {used // MIB} MiB, quota {quota // MIB} MiB"


def measure(pid: int, data_dir: Path) -> Usage:
    """What the plugin whose outermost process (bubblewrap, as started) is ``pid`` uses."""
    tree = process_tree(pid)
    memory = sum(_memory_of(p) for p in tree)
    threads = sum(_threads_of(p) for p in tree)
    inside = [p for p in tree if p != pid]  # bubblewrap's children are in the sandbox's mounts
    if inside:
        for folder in ("tmp", "dev/shm"):
            memory += _tmpfs_used(f"/proc/{inside[0]}/root/{folder}")
    return Usage(memory, threads, folder_bytes(data_dir))


def process_tree(pid: int) -> list[int]:
    """``pid`` and every process below it (from /proc, as the host sees them)."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as handle:
                fields = handle.read().rpartition(b")")[2].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(children.get(current, []))
    return tree


def _memory_of(pid: int) -> int:
    """PSS (shared pages split between their users), else RSS; 0 once the process is gone."""
    for path, key in ((f"/proc/{pid}/smaps_rollup", b"Pss:"), (f"/proc/{pid}/status", b"VmRSS:")):
        try:
            with open(path, "rb") as handle:
                for line in handle:
                    if line.startswith(key):
                        return int(line.split()[1]) * 1024
        except (OSError, ValueError):
            continue
    return 0


def _threads_of(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/task"))
    except OSError:
        return 0


def _tmpfs_used(path: str) -> int:
    try:
        info = os.statvfs(path)
    except OSError:
        return 0
    return (info.f_blocks - info.f_bfree) * info.f_frsize


def folder_bytes(folder: Path) -> int:
    """Disk blocks taken by ``folder`` and everything in it; links are not followed.

    A file counts its data blocks at most: a sparse file only what it holds, and never
    the file system's blocks that index it, so a file as large as the quota fits it.
    """
    total = 0
    todo = [str(folder)]
    while todo:
        try:
            entries = list(os.scandir(todo.pop()))
        except OSError:
            continue
        for entry in entries:
            try:
                info = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            used = info.st_blocks * 512
            if stat.S_ISREG(info.st_mode):  # a file's data, not the file system's own blocks
                used = min(used, -(-info.st_size // 4096) * 4096)  # (an extent tree, say)
            total += used
            if stat.S_ISDIR(info.st_mode):
                todo.append(entry.path)
    return total


CGROUP_ROOT = Path("/sys/fs/cgroup")


def cgroup_v2_refused() -> str:
    """Why the panel does not use a cgroup v2 of its own here (it uses the watchdog)."""
    controllers = CGROUP_ROOT / "cgroup.controllers"
    if not controllers.exists():
        return "no cgroup v2 hierarchy at /sys/fs/cgroup (cgroup v1 or hybrid)"
    try:
        line = Path("/proc/self/cgroup").read_text().splitlines()
        own = next(entry.partition("::")[2] for entry in line if entry.startswith("0::"))
        mine = CGROUP_ROOT / own.lstrip("/")
        enabled = set((mine / "cgroup.controllers").read_text().split())
    except (OSError, StopIteration):
        return "the panel's own cgroup v2 cannot be read"
    missing = {"memory", "pids"} - enabled
    if missing:
        return f"the panel's cgroup ({mine}) lacks the {', '.join(sorted(missing))} controller"
    if not os.access(mine / "cgroup.subtree_control", os.W_OK):
        return f"the panel's cgroup ({mine}) is not delegated to it (not writable)"
    return (
        f"the panel's cgroup ({mine}) could hold plugins, but plugdock does not place them in "
        "cgroups yet"
    )


def mechanism(limits: Limits, *, own_user: bool) -> str:
    """In plain words, what holds a plugin to ``limits`` on this machine (doctor, the API)."""
    processes = (
        "RLIMIT_NPROC of its own host user"
        if own_user
        else "RLIMIT_NPROC shared with the panel's user, and the watchdog"
    )
    return (
        f"watchdog: memory {limits.memory_bytes // MIB} MiB (its processes, /tmp and /dev/shm "
        f"together), data folder {limits.data_bytes // MIB} MiB; processes "
        f"{limits.processes} ({processes}); log rotated at {LOG_BYTES // MIB} MiB"
    )


LOG_BYTES = 4 * MIB  # a plugin's log while it runs: this much, and one older file as large
