"""One at a time: the locks that serialize writers.

:func:`operation_lock`: one install/upgrade/uninstall at a time, with a file lock on the
instance and an advisory lock in the database. The file lock stops two processes on this
machine; the database lock stops two machines (or instances) sharing one PostgreSQL or
MariaDB database. SQLite needs no second lock: its file is local and ``BEGIN IMMEDIATE``
serializes writers anyway.

:class:`ThreadAndFileLock`: one writer of a set of files (the plugin server's catalog and
signed index) among the threads of this process and the processes on this machine.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout
from sqlalchemy import Engine, text

from plugdock.core.db import MYSQL_LOCK_SQL
from plugdock.core.fsutil import PRIVATE_FILE_MODE, make_private_dir
from plugdock.errors import LockTimeoutError

# Any fixed 64-bit number; "plugdock" in ASCII keeps it recognisable in pg_locks.
_PG_LOCK_KEY = 0x706C7567646F636B
_MYSQL_LOCK_NAME = "plugdock_operations"


class ThreadAndFileLock:
    """A re-entrant lock held against other threads and other processes on this machine.

    The thread lock is taken first, so threads queue on it instead of polling the file
    lock, and one thread may nest ``with`` blocks::

        lock = ThreadAndFileLock(data_dir / ".storage.lock")
        with lock:
            ...  # read, decide, write
    """

    def __init__(self, path: Path) -> None:
        self._thread_lock = threading.RLock()
        self._file_lock = FileLock(str(path))

    def __enter__(self) -> None:
        self._thread_lock.acquire()
        try:
            self._file_lock.acquire()
        except BaseException:
            self._thread_lock.release()
            raise

    def __exit__(self, *exc: object) -> None:
        self._file_lock.release()
        self._thread_lock.release()


@contextmanager
def operation_lock(lock_path: Path, engine: Engine, timeout: float) -> Iterator[None]:
    """Hold both locks for the duration of one install/uninstall/repair."""
    deadline = time.monotonic() + timeout
    try:
        with local_operation_lock(lock_path, timeout), _database_lock(engine, deadline):
            yield
    except Timeout:
        raise LockTimeoutError(
            f"another plugdock operation holds {lock_path} (waited {timeout:.0f}s)"
        ) from None


def local_operation_lock(lock_path: Path, timeout: float) -> FileLock:
    """The file lock operations on this machine hold (raises filelock's Timeout)."""
    make_private_dir(lock_path.parent)
    return FileLock(str(lock_path), timeout=timeout, mode=PRIVATE_FILE_MODE)


@contextmanager
def unless_operation_running(lock_path: Path) -> Iterator[bool]:
    """Hold this machine's operation lock if it is free (True), or not at all (False): no wait.

    For a reader that must tell a running operation's journal and staging folder from
    what a dead one left.
    """
    lock = local_operation_lock(lock_path, timeout=0)
    try:
        lock.acquire()
    except Timeout:
        yield False
        return
    try:
        yield True
    finally:
        lock.release()


def wait_for_operation(lock_path: Path, timeout: float) -> None:
    """Return once no operation on this machine holds ``lock_path`` (or after ``timeout``)."""
    try:
        with local_operation_lock(lock_path, timeout):
            pass
    except Timeout:
        pass


@contextmanager
def _database_lock(engine: Engine, deadline: float) -> Iterator[None]:
    name = engine.dialect.name
    if name not in ("postgresql", "mysql"):
        yield
        return
    with engine.connect() as conn:
        while True:
            if name == "postgresql":
                got = conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": _PG_LOCK_KEY})
            else:
                got = conn.execute(
                    text(f"SELECT GET_LOCK({MYSQL_LOCK_SQL}, 0)"), {"n": _MYSQL_LOCK_NAME}
                )
            conn.commit()
            if got.scalar() == 1:  # True on PostgreSQL, 1 on MariaDB
                break
            if time.monotonic() > deadline:
                raise LockTimeoutError("another plugdock operation holds the database lock")
            time.sleep(0.05)
        try:
            yield
        finally:
            if name == "postgresql":
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _PG_LOCK_KEY})
            else:
                conn.execute(
                    text(f"SELECT RELEASE_LOCK({MYSQL_LOCK_SQL})"), {"n": _MYSQL_LOCK_NAME}
                )
            conn.commit()
