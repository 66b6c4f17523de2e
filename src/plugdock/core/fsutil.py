"""Small filesystem operations that must survive a crash: atomic writes and durable renames.

Also the modes of private data: folders plugdock creates for an instance are 0700 and
its files 0600 (the database holds password hashes and the audit log; the registry and
journal say what is installed), whatever the umask.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

#: Modes of what plugdock creates for an instance: nobody else may list or read it.
PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600


def make_private_dir(path: Path) -> Path:
    """Create ``path`` and any missing parents with mode 0700; an existing folder is kept as is.

    (``Path.mkdir(mode=..., parents=True)`` gives the parents the umask's 0755.)
    """
    missing = []
    folder = path
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    for folder in reversed(missing):
        with contextlib.suppress(FileExistsError):  # another process made it first
            os.mkdir(folder, PRIVATE_DIR_MODE)
    return path


def create_private_file(path: Path) -> None:
    """Create an empty ``path`` with mode 0600 unless it exists (then it is left alone)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
    except FileExistsError:
        return
    os.close(fd)


def loose_modes(folders: list[Path], files: list[Path]) -> list[str]:
    """One line per existing folder or file that other users may read (or list, or write)."""
    problems = []
    for path, private in [(f, PRIVATE_DIR_MODE) for f in folders] + [
        (f, PRIVATE_FILE_MODE) for f in files
    ]:
        try:
            mode = path.stat().st_mode & 0o777
        except FileNotFoundError:
            continue
        if mode & 0o077:
            problems.append(f"{path} is open to other users (mode {mode:o}); chmod {private:o} it")
    return problems


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_write(
    path: Path,
    *,
    mode: int = PRIVATE_FILE_MODE,
    durable: bool = True,
    check: Callable[[Path], None] | None = None,
) -> Iterator[BinaryIO]:
    """Write ``path`` so readers see the old file or the new one, never a torn one.

    The body writes to a binary handle on a temporary file beside ``path`` (same folder,
    so the rename is atomic); when the body returns, the file is flushed (and fsynced),
    given ``mode``, handed to ``check`` (which may raise to refuse it) and renamed over
    ``path``. Any exception removes the temporary file and leaves ``path`` as it was::

        with atomic_write(target, mode=0o644) as handle:
            handle.write(data)

    ``durable=False`` skips the fsyncs, for files that may be lost on power failure (a
    hint, a cache entry verified on every use). The folder must exist.
    """
    # mkstemp creates the file 0600, and the rename keeps the mode.
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    temp = Path(name)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
        if mode != PRIVATE_FILE_MODE:
            os.chmod(temp, mode)
        if check is not None:
            check(temp)
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    if durable:
        _fsync_dir(path.parent)


def write_json_atomic(path: Path, data: Any, *, durable: bool = True) -> None:
    """Write JSON atomically (:func:`atomic_write`) into a private folder, as a 0600 file."""
    make_private_dir(path.parent)
    text = json.dumps(data, indent=2, sort_keys=True, default=str) + "\n"
    with atomic_write(path, durable=durable) as handle:
        handle.write(text.encode("utf-8"))


def move(src: Path, dst: Path) -> None:
    """Rename ``src`` to ``dst`` (same filesystem) and make the rename durable."""
    move_all([(src, dst)])


def move_all(moves: list[tuple[Path, Path]]) -> None:
    """Rename each ``src`` to its ``dst`` in order, then make all the renames durable.

    Each destination folder is fsynced once, after all the renames: the first fsync
    commits them together (one filesystem journal commit, not one per rename). Nothing
    is durable before this returns, so a caller that needs one rename durable before
    another starts calls this twice.
    """
    for src, dst in moves:
        dst.parent.mkdir(parents=True, exist_ok=True)
        os.rename(src, dst)
    for folder in dict.fromkeys(dst.parent for _, dst in moves):
        _fsync_dir(folder)


def remove_tree(path: Path) -> None:
    """Delete a file or folder if it exists (never follows a symlink out of it)."""
    if path.is_symlink() or path.is_file():
        path.unlink(missing_ok=True)
    elif path.exists():
        shutil.rmtree(path)
