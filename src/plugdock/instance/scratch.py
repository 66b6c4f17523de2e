"""Private folders a process owns only while it works in them (the panel's uploads).

``staging/`` needs nothing like this: only the holder of the operation lock writes there.
An upload is written before its operation takes that lock, by any worker, so the rule
here is per folder: ``<parent>/<name>/`` has a lock file ``<parent>/<name>.lock`` that its
process locks before the folder exists and unlocks after it is gone. The kernel drops
that lock when the process dies, SIGKILL included, so a folder whose lock anyone can take
is debris, and :func:`sweep` removes it (run by recovery, under the operation lock).
"""

from __future__ import annotations

import fcntl
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from plugdock.core.fsutil import PRIVATE_FILE_MODE, make_private_dir, remove_tree

_LOCK_SUFFIX = ".lock"


def _try_lock(path: Path) -> int | None:
    """An open descriptor holding ``path``'s lock, or None if a live process holds it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, PRIVATE_FILE_MODE)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


@contextmanager
def owned_folder(parent: Path) -> Iterator[Path]:
    """A new private folder under ``parent``, removed on leaving; :func:`sweep` if killed."""
    make_private_dir(parent)
    name, fd = _new_name(parent)
    lock = parent / f"{name}{_LOCK_SUFFIX}"
    try:
        folder = parent / name
        make_private_dir(folder)
        try:
            yield folder
        finally:
            remove_tree(folder)
            lock.unlink(missing_ok=True)  # still held: no sweep can be inside this name
    finally:
        os.close(fd)


def _new_name(parent: Path) -> tuple[str, int]:
    """A fresh name whose lock file this process holds (the file still at its path)."""
    while True:
        name = uuid.uuid4().hex
        lock = parent / f"{name}{_LOCK_SUFFIX}"
        fd = _try_lock(lock)
        if fd is None:
            continue
        try:  # a sweep may have taken the new file in the instant before we locked it
            if os.stat(lock).st_ino == os.fstat(fd).st_ino:
                return name, fd
        except FileNotFoundError:
            pass
        os.close(fd)


def dead(parent: Path) -> list[Path]:
    """Folders under ``parent`` whose process is gone (a snapshot; nothing is removed)."""
    return [folder for folder in _folders(parent) if _owner_gone(folder, remove=False)]


def sweep(parent: Path) -> int:
    """Remove the folders under ``parent`` whose process is gone; says how many."""
    removed = sum(_owner_gone(folder, remove=True) for folder in _folders(parent))
    for lock in parent.glob(f"*{_LOCK_SUFFIX}") if parent.is_dir() else []:
        if not lock.with_suffix("").exists():  # killed before making its folder
            fd = _try_lock(lock)
            if fd is not None:
                lock.unlink(missing_ok=True)  # its maker, if alive, sees that and moves on
                os.close(fd)
    return removed


def _folders(parent: Path) -> list[Path]:
    if not parent.is_dir():
        return []
    return sorted(p for p in parent.iterdir() if p.is_dir() and not p.is_symlink())


def _owner_gone(folder: Path, *, remove: bool) -> bool:
    lock = folder.with_name(folder.name + _LOCK_SUFFIX)
    if not lock.exists():  # locked before the folder is made, unlinked after it is gone
        found = folder.exists()
        if remove:
            remove_tree(folder)
        return found
    fd = _try_lock(lock)
    if fd is None:
        return False
    try:
        found = folder.exists()  # its owner may have just finished
        if remove:
            remove_tree(folder)
            # Safe while held: the folder existed, so its owner had locked this very file
            # and is gone; no one else ever uses the name.
            lock.unlink(missing_ok=True)
    finally:
        os.close(fd)
    return found
