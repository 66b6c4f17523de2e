"""``plugdock pack``: turn a plugin source folder into a package zip, deterministically.

The same files (names and bytes) always give the same zip bytes, on any machine and at
any time: entries are sorted, every timestamp is 1980-01-01 00:00, every file has mode
0o644, there are no folder entries, and compression is deflate at a fixed level. File
times, permissions, owners and creation order in the folder play no part::

    zip_path = pack(Path("plugins/ai_chatbot"), Path("dist"))   # dist/ai_chatbot_v1.0.0.zip

The zip holds a ``CHECKSUMS.sha256`` of every file. Before anything is written the folder
is checked (:func:`check_folder`) and every problem is reported at once; after writing,
the new zip is read back with the same checks an installer uses, so ``pack`` never
produces a package that ``install`` would refuse. The zip appears atomically.

Junk is skipped silently: dotfiles and dot-folders (``.git/``, ``.DS_Store``, ``.env``,
...), ``__pycache__/``, ``node_modules/``, ``*.pyc`` and ``*.pyo`` (Python writes the
bytecode while the author runs the plugin; no package may hold it). A native library
(``*.so``, ``*.pyd``, ``*.dylib``, ``*.dll``) is not junk but code no reviewer can read: it
is refused, as the package reader refuses it. A ``CHECKSUMS.sha256``
or ``SIGNATURE.json`` in the folder is skipped too: pack writes fresh checksums, and its
output is unsigned (signing is a separate step). So are the npm project files at the top
level (``package.json``, ``package-lock.json``, ``tsconfig.json``): they serve the author's
build, not the installed plugin.
"""

from __future__ import annotations

import os
import stat
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import BinaryIO

from plugdock.core.fsutil import atomic_write
from plugdock.errors import PackageError
from plugdock.package import checksums
from plugdock.package.archive import Limits, check_names, inspect_package
from plugdock.package.frontend_build import build_frontend
from plugdock.package.layout import CHECKSUMS_FILE, SIGNATURE_FILE, package_filename
from plugdock.package.metadata import PluginMetadata, read_metadata
from plugdock.package.ui_contract import compare, read_ui

#: Every entry's timestamp: the earliest a zip can hold.
ZIP_DATE_TIME = (1980, 1, 1, 0, 0, 0)
#: Every entry's attributes: a regular file, rw-r--r--, made on Unix.
ZIP_FILE_ATTR = (stat.S_IFREG | 0o644) << 16
ZIP_CREATE_SYSTEM = 3
ZIP_COMPRESS_LEVEL = 9

JUNK_NAMES = frozenset({"__pycache__", "node_modules"})
JUNK_SUFFIXES = (".pyc", ".pyo")
#: Files pack makes itself; copies in the source folder are ignored.
GENERATED = frozenset({CHECKSUMS_FILE, SIGNATURE_FILE})
#: The plugin as an npm project (``plugdock new`` writes package.json): the author's tools.
AUTHOR_TOOLING = frozenset({"package.json", "package-lock.json", "tsconfig.json"})


def is_junk(name: str) -> bool:
    """True for a file or folder name that never goes into a package."""
    return name.startswith(".") or name in JUNK_NAMES or name.endswith(JUNK_SUFFIXES)


def package_files(folder: Path) -> dict[str, Path]:
    """Every file of ``folder`` that goes into its package: ``{package path: file on disk}``.

    This is the one place that decides what is packed; a build step (for example
    bundling the frontend) transforms this mapping before it is written. Raises
    PackageError listing every unsafe entry (symlinks, special files, bad names).

    >>> sorted(package_files(Path("plugins/ai_chatbot")))  # doctest: +SKIP
    ['backend/__init__.py', 'backend/routes.py', 'metadata.json', 'migrations/up.sql', ...]
    """
    files, problems = _gather(Path(folder))
    if problems:
        raise PackageError(problems, source=str(folder))
    return files


def check_folder(folder: Path, limits: Limits = Limits()) -> PluginMetadata:
    """Check a plugin source folder; return its metadata, or raise PackageError listing everything.

    Checked: ``metadata.json`` is valid; only allowed names at the top level; no
    symlinks or special files anywhere; every path obeys the rules the package reader
    applies (:func:`plugdock.package.archive.path_problems`); the file count and total
    size fit ``limits``.
    """
    return _check(Path(folder), limits)[0]


def pack(folder: Path, outdir: Path, limits: Limits = Limits(), *, compare_ui: bool = True) -> Path:
    """Pack ``folder`` into ``outdir/<id>_v<version>.zip`` and return that path.

    ``metadata.json``'s ``frontend`` must agree with ``addon.config``
    (:mod:`plugdock.package.ui_contract`; that runs the config on this host, so
    ``validate``, which compares them itself, passes ``compare_ui=False``). An existing
    package of the same name is
    replaced atomically. ``outdir`` is created
    if needed; when it lies inside ``folder`` it is left out of the package.
    """
    folder, outdir = Path(folder), Path(outdir)
    metadata, files = _check(folder, limits, outputs=outdir)
    if compare_ui:
        disagreements = compare(metadata.frontend, read_ui(folder, files))
        if disagreements:
            raise PackageError(disagreements, source=str(folder))
    # Build steps map ``files`` (package path -> file on disk) to the files actually shipped:
    # frontend/addon.config.* is bundled by esbuild into frontend/dist/addon.js.
    files = build_frontend(folder, files)
    target = outdir / package_filename(metadata.id, metadata.version)
    outdir.mkdir(parents=True, exist_ok=True)

    def refused_on_install(packed: Path) -> None:
        try:
            inspect_package(packed, limits)
        except PackageError as exc:
            raise PackageError(
                [f"the packed zip would be refused on install: {p}" for p in exc.problems],
                source=str(folder),
            ) from None

    with atomic_write(target, mode=0o644, check=refused_on_install) as handle:
        write_zip(handle, files)
    return target


def write_zip(handle: BinaryIO, files: Mapping[str, Path]) -> dict[str, str]:
    """Write the deterministic zip of ``files`` plus their ``CHECKSUMS.sha256``; return the digests.

    ``handle`` must be a seekable binary file opened for writing.
    """
    digests = checksums.digest_files(files)
    entries: dict[str, Path | bytes] = dict(files)
    entries[CHECKSUMS_FILE] = checksums.render(digests).encode("utf-8")
    with zipfile.ZipFile(handle, "w") as archive:
        for name in sorted(entries):
            source = entries[name]
            data = source if isinstance(source, bytes) else source.read_bytes()
            archive.writestr(
                _zip_info(name), data, zipfile.ZIP_DEFLATED, compresslevel=ZIP_COMPRESS_LEVEL
            )
    return digests


def _zip_info(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=ZIP_DATE_TIME)
    info.create_system = ZIP_CREATE_SYSTEM
    info.external_attr = ZIP_FILE_ATTR
    info.compress_type = zipfile.ZIP_DEFLATED
    return info


def _check(
    folder: Path, limits: Limits, outputs: Path | None = None
) -> tuple[PluginMetadata, dict[str, Path]]:
    if not folder.is_dir():
        raise PackageError("is not a folder", source=str(folder))
    files, problems = _gather(folder, outputs)
    if len(files) + 1 > limits.max_files:  # + CHECKSUMS.sha256
        problems.append(f"has {len(files)} files, more than the limit of {limits.max_files}")
    total = sum(path.stat(follow_symlinks=False).st_size for path in files.values())
    if total > limits.max_total_bytes:
        problems.append(
            f"its files hold {total} bytes, more than the limit of {limits.max_total_bytes}"
        )
    metadata = None
    try:
        metadata = read_metadata(folder)
    except PackageError as exc:
        problems += exc.problems
    if problems or metadata is None:
        raise PackageError(problems, source=str(folder))
    return metadata, files


def _gather(folder: Path, outputs: Path | None = None) -> tuple[dict[str, Path], list[str]]:
    """The files to pack and the problems found while walking ``folder`` (not following links)."""
    files: dict[str, Path] = {}
    problems: list[str] = []
    skip = _output_location(folder, outputs)

    def walk(directory: Path, prefix: str) -> None:
        try:
            with os.scandir(directory) as scan:
                entries = sorted(scan, key=lambda e: e.name)
        except OSError as exc:
            problems.append(f"{prefix or './'!r}: cannot be read ({exc.strerror})")
            return
        for entry in entries:
            rel = prefix + entry.name
            path = Path(entry.path)
            if (
                is_junk(entry.name)
                or (not prefix and entry.name in GENERATED | AUTHOR_TOOLING)
                or skip(rel, path)
            ):
                continue
            if entry.is_symlink():
                problems.append(f"{rel!r}: is a symbolic link (a package holds only regular files)")
            elif entry.is_dir(follow_symlinks=False):
                walk(path, rel + "/")
            elif entry.is_file(follow_symlinks=False):
                files[rel] = path
            else:
                problems.append(f"{rel!r}: is a special file (device, FIFO or socket)")

    walk(folder, "")
    problems += check_names(files)
    return files, problems


def _output_location(folder: Path, outputs: Path | None) -> Callable[[str, Path], bool]:
    """A predicate for entries that are pack's own output, when ``outputs`` is inside ``folder``."""
    if outputs is None:
        return lambda rel, path: False
    root, out = folder.resolve(), outputs.resolve()
    if out == root:
        # Packing into the plugin folder itself: earlier packages lie at the top level.
        return lambda rel, path: "/" not in rel and rel.endswith(".zip")
    if out.is_relative_to(root):
        return lambda rel, path: path.resolve() == out
    return lambda rel, path: False
