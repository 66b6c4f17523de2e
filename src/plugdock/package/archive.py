"""Reading an untrusted plugin package (a zip file) safely: inspect it, or extract it.

Nothing in a package is trusted. Before a byte is unpacked, every entry's name, type,
sizes and position in the file are checked, and all such problems are reported at
once. Then each entry is decompressed as a stream, counting the real bytes (the sizes
in the zip headers are only claims), hashing them, and comparing every hash with the
package's ``CHECKSUMS.sha256``::

    info = inspect_package(Path("ai_chatbot_v1.0.0.zip"))       # reads, writes nothing
    info = extract_package(Path("ai_chatbot_v1.0.0.zip"), dest)   # dest must not exist

Both raise :class:`~plugdock.errors.PackageError` naming each offending entry;
``extract_package`` removes ``dest`` again on any failure.

What is refused:

* not a zip, a damaged or truncated zip, encrypted entries, compression other than
  stored/deflate, entries whose local and central headers disagree, overlapping entries;
* unsafe names: absolute (``/x``, ``C:\\x``, ``C:x``), ``..``/``.``/empty components,
  backslashes, ``:``, control or invisible characters, over-long names, components that
  end in a space or dot;
* symlinks, devices, FIFOs, sockets (the Unix type bits in ``external_attr``);
* duplicate names, also ones that differ only by case or Unicode normalization, and a
  file used as a folder by another entry;
* anything outside ``metadata.json``, ``CHECKSUMS.sha256``, ``SIGNATURE.json``,
  ``README.md``, ``LICENSE``, ``CHANGELOG.md`` and the folders ``backend/``,
  ``frontend/``, ``migrations/``;
* compiled or native code anywhere: ``__pycache__/`` folders, ``*.pyc``/``*.pyo`` bytecode,
  ``*.so``/``*.pyd``/``*.dylib``/``*.dll`` libraries (see :func:`compiled_code_problem`);
* more entries, more (declared or real) bytes, or a higher compression ratio than
  :class:`Limits` allow, and entries that unpack to a size other than the declared one;
* a missing ``CHECKSUMS.sha256``, a file it does not list, a listed file that is absent,
  bytes that do not match their hash, and a missing or invalid ``metadata.json``.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import stat
import struct
import unicodedata
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from plugdock.errors import PackageError
from plugdock.package import checksums
from plugdock.package.layout import (
    CHECKSUMS_FILE,
    CODE_DIRS,
    METADATA_FILE,
    SIGNATURE_FILE,
    TOP_LEVEL_FILES,
)
from plugdock.package.metadata import PluginMetadata, parse_metadata

if TYPE_CHECKING:
    from plugdock.config import Settings

MIB = 1024 * 1024

#: Compression ratios are only checked for entries (or packages) larger than this:
#: small files compress very well and are harmless.
RATIO_FLOOR = 1 * MIB
#: Longest allowed path inside a package, and longest component, in UTF-8 bytes.
MAX_PATH_BYTES = 512
MAX_COMPONENT_BYTES = 255
#: Files read into memory have a size cap of their own.
SMALL_FILE_CAPS = {METADATA_FILE: 1 * MIB, CHECKSUMS_FILE: 8 * MIB, SIGNATURE_FILE: 64 * 1024}
#: Room allowed per entry for zip headers (central directory, local header).
HEADER_ALLOWANCE = 1024

ALLOWED_TOP_LEVEL = "allowed: " + ", ".join([*TOP_LEVEL_FILES, *(f"{d}/" for d in CODE_DIRS)])

_CHUNK = 1024 * 1024
_BAD_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Zl", "Zp"})
_DRIVE = re.compile(r"^[A-Za-z]:")
#: Bytecode and native libraries (``libx.so.1`` too): code a reviewer cannot read.
_COMPILED = re.compile(r"\.(pyc|pyo|pyd|dylib|dll|so(\.[0-9]+)*)$", re.IGNORECASE)
_SPECIAL_KINDS = {
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFIFO: "a FIFO (named pipe)",
    stat.S_IFSOCK: "a socket",
}

_EOCD = struct.Struct("<4s4H2LH")  # end of central directory record (22 bytes)
_EOCD64_LOCATOR = struct.Struct("<4sLQL")  # zip64 end of central directory locator (20 bytes)
_EOCD64 = struct.Struct("<4sQ2H2L4Q")  # zip64 end of central directory record (56 bytes)
_LOCAL = struct.Struct("<4s5H3L2H")  # local file header (30 bytes)


@dataclass(frozen=True)
class Limits:
    """How much an untrusted package may hold; the defaults match ``Settings``."""

    max_total_bytes: int = 100 * MIB
    max_files: int = 2000
    max_ratio: float = 100.0

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        """The limits configured in ``settings`` (``max_package_*``, ``max_compression_ratio``)."""
        return cls(
            max_total_bytes=settings.max_package_bytes,
            max_files=settings.max_package_files,
            max_ratio=settings.max_compression_ratio,
        )

    @property
    def max_zip_bytes(self) -> int:
        """Largest zip file accepted: the unpacked limit plus room for headers."""
        return self.max_total_bytes + self.max_files * 2 * HEADER_ALLOWANCE


@dataclass(frozen=True)
class PackageInfo:
    """What a verified package holds."""

    metadata: PluginMetadata
    sha256: str  # of the whole zip file
    size: int  # zip file bytes
    files: dict[str, str]  # path -> sha256, from the verified checksums file
    checksums_text: bytes  # raw CHECKSUMS.sha256: what a signature covers
    signature: bytes | None  # raw SIGNATURE.json if present (verified elsewhere)


def inspect_package(zip_path: Path, limits: Limits = Limits()) -> PackageInfo:
    """Check every entry of a package and verify every byte against its checksums; write nothing.

    >>> info = inspect_package(Path("ai_chatbot_v1.0.0.zip"))  # doctest: +SKIP
    >>> info.metadata.id, info.sha256  # doctest: +SKIP
    ('ai_chatbot', '9f86d0...')
    """
    return _Reader(Path(zip_path), limits).read(None)


def extract_package(zip_path: Path, dest: Path, limits: Limits = Limits()) -> PackageInfo:
    """Check and unpack a package into ``dest``, which must not exist (its parent must).

    Files are written with mode 0o644 and folders 0o755, whatever the zip says; no
    existing file is ever overwritten. On any failure ``dest`` is removed entirely and
    the error is raised (a :class:`PackageError` for anything wrong with the package).

    >>> info = extract_package(Path("ai_chatbot_v1.0.0.zip"), staging / "pkg")  # doctest: +SKIP
    """
    dest = Path(dest)
    if dest.exists() or dest.is_symlink():
        raise FileExistsError(f"{dest} already exists; extract_package needs a new folder")
    os.mkdir(dest, 0o755)
    try:
        os.chmod(dest, 0o755)
        return _Reader(Path(zip_path), limits).read(_Destination(dest))
    except BaseException:
        shutil.rmtree(dest, ignore_errors=True)
        raise


# ------------------------------------------------------------------------------- names


def path_problems(path: str) -> list[str]:
    """Why ``path`` is not a safe file path inside a package (empty list: it is).

    The same rules apply to zip entries and to the files ``plugdock pack`` collects.

    >>> path_problems("backend/routes.py")
    []
    >>> path_problems("../evil.py")
    ["has a '..' component (it would climb out of the folder)"]
    """
    if not path:
        return ["has an empty name"]
    problems: list[str] = []
    bad = next((c for c in path if unicodedata.category(c) in _BAD_CATEGORIES), None)
    if bad is not None:
        problems.append(
            f"contains a control, invisible or undecodable character (U+{ord(bad):04X})"
        )
    if "\\" in path:
        problems.append("contains a backslash (a Windows path separator)")
    if path.startswith("/"):
        problems.append("is an absolute path")
    elif _DRIVE.match(path):
        problems.append("starts with a drive letter (a Windows absolute path)")
    elif ":" in path:
        problems.append("contains ':' (a drive or stream separator on Windows)")
    parts = path.lstrip("/").split("/")
    if ".." in parts:
        problems.append("has a '..' component (it would climb out of the folder)")
    if "." in parts:
        problems.append("has a '.' component")
    if "" in parts:
        problems.append("has an empty component ('//', or a '/' at the end)")
    if any(p not in (".", "..") and p.endswith((" ", ".")) for p in parts):
        problems.append("has a component ending in a space or '.' (Windows drops them)")
    if len(_utf8(path)) > MAX_PATH_BYTES:
        problems.append(f"is longer than {MAX_PATH_BYTES} bytes")
    elif any(len(_utf8(p)) > MAX_COMPONENT_BYTES for p in parts):
        problems.append(f"has a component longer than {MAX_COMPONENT_BYTES} bytes")
    return problems


def compiled_code_problem(path: str) -> str | None:
    """Why ``path`` is compiled or native code, which no package may hold (None: it is not).

    A package is reviewed, and trusted, as the source it shows. Python runs what it finds
    instead of that source: an unchecked hash-based ``.pyc`` in ``__pycache__/`` (PEP 552)
    is loaded in place of the ``.py`` beside it without comparing the two, a sourceless
    ``x.pyc`` or an extension ``x.so`` is imported as ``x``. So bytecode, the folder Python
    keeps it in, and native libraries are refused wherever they appear.

    >>> compiled_code_problem("backend/__pycache__/routes.cpython-311.pyc")[:58]
    'is compiled or native code (inside a __pycache__ folder): '
    >>> compiled_code_problem("backend/routes.py") is None
    True
    """
    parts = path.split("/")
    if any(p.casefold() == "__pycache__" for p in parts):
        what = "inside a __pycache__ folder"
    else:
        found = _COMPILED.search(parts[-1])
        if found is None:
            return None
        what = f"a {found.group(0).lower()} file"
    return (
        f"is compiled or native code ({what}): a package holds only source a reviewer can "
        "read, and Python would run this instead of it"
    )


def check_names(files: Iterable[str], folders: Iterable[str] = ()) -> list[str]:
    """Every problem with a package's file paths (and explicit folder paths), each naming its path.

    Checks :func:`path_problems`, the allowed top level, compiled or native code
    (:func:`compiled_code_problem`), duplicates (also by letter case and Unicode
    normalization, which collide on some filesystems), and files that other entries use as
    folders.
    """
    problems: list[str] = []
    seen: dict[str, str] = {}  # collision key -> name
    for name in files:
        reasons = path_problems(name) or _top_level_problems(name, is_folder=False)
        if not reasons:
            reasons = _compiled_code_problems(name)
        if reasons:
            problems += [f"{name!r}: {reason}" for reason in reasons]
            continue
        key = _collision_key(name)
        if key not in seen:
            seen[key] = name
        elif seen[key] == name:
            problems.append(f"{name!r}: appears more than once")
        else:
            first = seen[key]
            # Names equal under NFC look identical when printed: show their code points.
            show = (
                ascii
                if unicodedata.normalize("NFC", name) == unicodedata.normalize("NFC", first)
                else repr
            )
            problems.append(
                f"{show(name)} and {show(first)}: differ only by letter case or Unicode "
                "normalization (they would be the same file on some filesystems)"
            )
    used_as_folder: set[str] = set()
    for name in folders:
        reasons = (
            path_problems(name)
            or _top_level_problems(name, is_folder=True)
            or _compiled_code_problems(name)
        )
        problems += [f"{name + '/'!r}: {reason}" for reason in reasons]
        if not reasons:
            used_as_folder.add(_collision_key(name))
    for key in seen:
        parts = key.split("/")
        used_as_folder.update("/".join(parts[:i]) for i in range(1, len(parts)))
    problems += [
        f"{name!r}: is a file, but other entries use it as a folder"
        for key, name in seen.items()
        if key in used_as_folder
    ]
    return problems


def _top_level_problems(path: str, *, is_folder: bool) -> list[str]:
    parts = path.split("/")
    top = parts[0]
    if len(parts) == 1 and not is_folder:
        if top in TOP_LEVEL_FILES:
            return []
        if top in CODE_DIRS:
            return [f"must be a folder, not a file ({ALLOWED_TOP_LEVEL})"]
        return [f"is not allowed at the top level of a package ({ALLOWED_TOP_LEVEL})"]
    if top in CODE_DIRS:
        return []
    if len(parts) == 1 and top in TOP_LEVEL_FILES:
        return [f"must be a file, not a folder ({ALLOWED_TOP_LEVEL})"]
    return [f"is outside the allowed folders ({ALLOWED_TOP_LEVEL})"]


def _compiled_code_problems(path: str) -> list[str]:
    problem = compiled_code_problem(path)
    return [] if problem is None else [problem]


def _collision_key(name: str) -> str:
    """Names with one key may be one file on a case- or normalization-insensitive filesystem."""
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", name).casefold())


def _utf8(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


# ------------------------------------------------------------------------------- reading


@dataclass
class _Entry:
    name: str
    info: zipfile.ZipInfo
    data_offset: int = -1


class _Destination:
    """Where extracted files go; every path is checked against the folder before writing.

    For each entry, every folder on its path is (made and) checked to be a real folder,
    not a symlink; the first time a folder is used it is also resolved and checked to lie
    inside the destination (later entries reuse that, as the lstat per entry already
    shows the folder has not been swapped for a link). The file itself is created with
    ``O_EXCL | O_NOFOLLOW``: it cannot already exist, so it cannot be a link out.
    """

    def __init__(self, root: Path) -> None:
        self.root = os.path.realpath(root)  # str paths: pathlib costs more than the lstat
        self._under = os.path.join(self.root, "")  # "root/", to test a resolved folder
        self._inside: set[tuple[str, ...]] = set()  # folders (as parts) resolved inside root

    def open(self, name: str) -> BinaryIO:
        parts = tuple(name.split("/"))
        if parts[-1] in ("", ".", ".."):  # refused by the name checks already
            raise PackageError(f"{name!r}: would be written outside the destination folder")
        target = os.path.join(self._folder(name, parts[:-1]), parts[-1])
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            fd = os.open(target, flags, 0o644)
        except FileExistsError:
            raise PackageError(
                f"{name!r}: collides with another entry on this filesystem"
            ) from None
        try:
            os.fchmod(fd, 0o644)
            return os.fdopen(fd, "wb")
        except BaseException:
            os.close(fd)
            raise

    def _folder(self, name: str, parts: tuple[str, ...]) -> str:
        """``root/parts``: each folder on the way made (0o755) or checked to be a real one."""
        folder = self.root
        for depth in range(1, len(parts) + 1):
            folder = os.path.join(folder, parts[depth - 1])
            try:
                mode = os.lstat(folder).st_mode
            except FileNotFoundError:
                os.mkdir(folder, 0o755)
                os.chmod(folder, 0o755)
            else:
                if not stat.S_ISDIR(mode):  # a symlink, a file, ...
                    raise PackageError(f"{name!r}: {folder} is not a folder")
            if parts[:depth] not in self._inside:
                resolved = os.path.realpath(folder)
                if resolved != self.root and not resolved.startswith(self._under):
                    raise PackageError(f"{name!r}: would be written outside the destination folder")
                self._inside.add(parts[:depth])
        return folder


class _Reader:
    """One pass over one package file: structure checks, then streamed, verified contents."""

    def __init__(self, path: Path, limits: Limits) -> None:
        self.path = path
        self.limits = limits
        self.source = str(path)
        self.unpacked = 0  # real decompressed bytes so far, across all entries

    def fail(self, problems: list[str] | str) -> PackageError:
        return PackageError(problems, source=self.source)

    def read(self, dest: _Destination | None) -> PackageInfo:
        try:
            mode = self.path.stat().st_mode
        except FileNotFoundError:
            raise self.fail("no such file") from None
        if not stat.S_ISREG(mode):
            raise self.fail("is not a regular file")
        with self.path.open("rb") as fp:
            size = os.fstat(fp.fileno()).st_size
            if size > self.limits.max_zip_bytes:
                raise self.fail(
                    f"the package file is {size} bytes, more than the limit of "
                    f"{self.limits.max_zip_bytes} bytes"
                )
            whole = hashlib.file_digest(fp, "sha256").hexdigest()
            files = self._entries(fp, size)
            return self._contents(fp, files, dest, whole, size)

    # -- structure ----------------------------------------------------------------------

    def _entries(self, fp: BinaryIO, size: int) -> dict[str, _Entry]:
        """Every file entry, by name, after all checks that need no decompression."""
        cd_start = self._check_directory_size(fp, size)
        try:
            fp.seek(0)
            with zipfile.ZipFile(fp) as archive:
                infos = archive.infolist()
        except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError) as exc:
            raise self.fail(f"is not a readable zip file ({exc})") from None
        except (EOFError, OSError, ValueError, struct.error) as exc:
            raise self.fail(f"is not a readable zip file ({type(exc).__name__}: {exc})") from None

        limits = self.limits
        problems: list[str] = []
        if len(infos) > limits.max_files:
            problems.append(f"has {len(infos)} entries, more than the limit of {limits.max_files}")
        files: list[_Entry] = []
        folders: list[str] = []
        declared = compressed = 0
        for info in infos:
            name = info.orig_filename
            is_folder = name.endswith("/")
            problems += [f"{name!r}: {p}" for p in self._entry_problems(info, is_folder)]
            if is_folder:
                folders.append(name[:-1])
            else:
                files.append(_Entry(name, info))
            declared += info.file_size
            compressed += info.compress_size
        problems += check_names([e.name for e in files], folders)
        problems += self._layout_problems(fp, infos, files, cd_start)

        if declared > limits.max_total_bytes:
            problems.append(
                f"its files unpack to {declared} bytes, more than the limit of "
                f"{limits.max_total_bytes} bytes"
            )
        ratio = declared / max(compressed, 1)
        if declared > RATIO_FLOOR and ratio > limits.max_ratio:
            problems.append(
                f"the package would expand {ratio:.0f} times ({compressed} → {declared} bytes), "
                f"more than the limit of {limits.max_ratio:g}: a zip bomb?"
            )
        by_name = {e.name: e for e in files}
        if CHECKSUMS_FILE not in by_name:
            problems.append(
                f"{CHECKSUMS_FILE} is missing: the package was not packed by `plugdock pack`"
            )
        if METADATA_FILE not in by_name:
            problems.append(f"{METADATA_FILE} is missing")
        for name, cap in SMALL_FILE_CAPS.items():
            if name in by_name and by_name[name].info.file_size > cap:
                problems.append(f"{name!r}: is larger than {cap} bytes")
        if problems:
            raise self.fail(problems)
        return by_name

    def _check_directory_size(self, fp: BinaryIO, size: int) -> int:
        """Refuse an oversized central directory before parsing it; return where it starts."""
        found = _central_directory(fp, size)
        if found is None:
            raise self.fail("is not a zip file (no end of central directory record found)")
        entries, cd_size, cd_start = found
        problems = []
        if entries > self.limits.max_files:
            problems.append(
                f"has {entries} entries, more than the limit of {self.limits.max_files}"
            )
        if cd_size > self.limits.max_files * HEADER_ALLOWANCE:
            problems.append(f"its central directory is {cd_size} bytes, too large for the limits")
        if cd_start < 0:
            problems.append("is not a readable zip file (bad central directory offset)")
        if problems:
            raise self.fail(problems)
        return cd_start

    def _entry_problems(self, info: zipfile.ZipInfo, is_folder: bool) -> list[str]:
        problems = []
        if info.flag_bits & 0x1:
            problems.append("is encrypted")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            problems.append(
                f"uses compression method {info.compress_type} "
                "(only stored and deflate are allowed)"
            )
        mode = info.external_attr >> 16
        kind = stat.S_IFMT(mode)
        if stat.S_ISLNK(mode):
            problems.append("is a symbolic link")
        elif kind in _SPECIAL_KINDS:
            problems.append(f"is {_SPECIAL_KINDS[kind]}, not a regular file")
        elif kind == stat.S_IFDIR and not is_folder:
            problems.append("is marked as a folder but its name does not end in '/'")
        elif kind == stat.S_IFREG and is_folder:
            problems.append("is marked as a regular file but its name ends in '/'")
        elif kind not in (0, stat.S_IFREG, stat.S_IFDIR):
            problems.append(f"has an unknown file type ({kind:#o}), not a regular file")
        if is_folder and info.file_size:
            problems.append("is a folder entry but has contents")
        ratio = info.file_size / max(info.compress_size, 1)
        if info.file_size > RATIO_FLOOR and ratio > self.limits.max_ratio:
            problems.append(
                f"would expand {ratio:.0f} times ({info.compress_size} → {info.file_size} bytes), "
                f"more than the limit of {self.limits.max_ratio:g}: a zip bomb?"
            )
        if info.compress_type == zipfile.ZIP_STORED and info.compress_size != info.file_size:
            problems.append("is stored uncompressed but its two sizes differ (a lying header)")
        return problems

    def _layout_problems(
        self, fp: BinaryIO, infos: list[zipfile.ZipInfo], files: list[_Entry], cd_start: int
    ) -> list[str]:
        """Read each local header: it must match the central directory; entries must not overlap."""
        problems = []
        offsets: dict[int, int] = {}  # id(info) -> data offset
        previous_end, previous_name = 0, ""
        for info in sorted(infos, key=lambda i: i.header_offset):
            name = info.orig_filename
            if not 0 <= info.header_offset < cd_start:
                problems.append(f"{name!r}: its local header offset is outside the file data")
                continue
            fp.seek(info.header_offset)
            raw = fp.read(_LOCAL.size)
            if len(raw) < _LOCAL.size or raw[:4] != b"PK\x03\x04":
                problems.append(f"{name!r}: its local header is missing or damaged")
                continue
            _, _, flags, method, _, _, _, _, _, name_len, extra_len = _LOCAL.unpack(raw)
            local_name = fp.read(name_len)
            encoding = "utf-8" if info.flag_bits & 0x800 else "cp437"
            try:
                same_name = local_name == name.encode(encoding)
            except UnicodeEncodeError:
                same_name = False
            if not same_name:
                problems.append(f"{name!r}: its local header names a different file")
            if flags & 0x1:
                problems.append(f"{name!r}: is encrypted")
            if method != info.compress_type:
                problems.append(f"{name!r}: its local and central headers disagree on compression")
            if info.header_offset < previous_end:
                problems.append(
                    f"{name!r}: overlaps entry {previous_name!r} (overlapping entries are a "
                    "zip-bomb trick)"
                )
            data_offset = info.header_offset + _LOCAL.size + name_len + extra_len
            end = data_offset + info.compress_size
            if end > cd_start:
                problems.append(f"{name!r}: its data runs past the end of the file data")
            offsets[id(info)] = data_offset
            previous_end, previous_name = max(previous_end, end), name
        for entry in files:
            entry.data_offset = offsets.get(id(entry.info), -1)
        return problems

    # -- contents -----------------------------------------------------------------------

    def _contents(
        self,
        fp: BinaryIO,
        files: dict[str, _Entry],
        dest: _Destination | None,
        whole_sha256: str,
        size: int,
    ) -> PackageInfo:
        checksums_text = self._small(fp, files[CHECKSUMS_FILE], dest)
        try:
            listed = checksums.parse(checksums_text.decode("utf-8"))
        except UnicodeDecodeError:
            raise self.fail(f"{CHECKSUMS_FILE} is not UTF-8 text") from None
        except PackageError as exc:
            raise self.fail(exc.problems) from None
        problems = checksums.compare_names(listed, files)
        if problems:
            raise self.fail(problems)

        actual: dict[str, str] = {}
        raw_metadata = self._small(fp, files[METADATA_FILE], dest)
        actual[METADATA_FILE] = checksums.sha256_bytes(raw_metadata)
        problems = checksums.compare({METADATA_FILE: listed[METADATA_FILE]}, actual)
        if problems:
            raise self.fail(problems)
        metadata = parse_metadata(raw_metadata, source=self.source)

        signature = None
        if SIGNATURE_FILE in files:
            signature = self._small(fp, files[SIGNATURE_FILE], dest)

        done = {CHECKSUMS_FILE, METADATA_FILE, SIGNATURE_FILE}
        for entry in sorted(files.values(), key=lambda e: e.data_offset):
            if entry.name in done:
                continue
            digest = hashlib.sha256()
            if dest is None:
                for chunk in self._stream(fp, entry):
                    digest.update(chunk)
            else:
                with dest.open(entry.name) as out:
                    for chunk in self._stream(fp, entry):
                        digest.update(chunk)
                        out.write(chunk)
            actual[entry.name] = digest.hexdigest()
        problems = checksums.compare(listed, actual)
        if problems:
            raise self.fail(problems)
        return PackageInfo(
            metadata=metadata,
            sha256=whole_sha256,
            size=size,
            files=dict(sorted(listed.items())),
            checksums_text=checksums_text,
            signature=signature,
        )

    def _small(self, fp: BinaryIO, entry: _Entry, dest: _Destination | None) -> bytes:
        data = b"".join(self._stream(fp, entry))
        if dest is not None:
            with dest.open(entry.name) as out:
                out.write(data)
        return data

    def _stream(self, fp: BinaryIO, entry: _Entry) -> Iterator[bytes]:
        """The real bytes of an entry, counted against its declared size and the limit."""
        info, name = entry.info, entry.name
        produced, crc = 0, 0
        try:
            for chunk in _raw_chunks(fp, entry):
                produced += len(chunk)
                if produced > info.file_size:
                    raise self.fail(
                        f"{name!r}: unpacks to more than the {info.file_size} bytes its header "
                        "declares (a lying header)"
                    )
                self.unpacked += len(chunk)
                if self.unpacked > self.limits.max_total_bytes:
                    raise self.fail(
                        f"{name!r}: the package unpacks to more than the limit of "
                        f"{self.limits.max_total_bytes} bytes"
                    )
                crc = zlib.crc32(chunk, crc)
                yield chunk
        except zlib.error as exc:
            raise self.fail(f"{name!r}: damaged compressed data ({exc})") from None
        except _Damaged as exc:
            raise self.fail(f"{name!r}: damaged ({exc})") from None
        if produced != info.file_size:
            raise self.fail(
                f"{name!r}: unpacks to {produced} bytes, "
                f"not the {info.file_size} its header declares"
            )
        if crc != info.CRC:
            raise self.fail(f"{name!r}: damaged (its CRC-32 does not match its contents)")


class _Damaged(Exception):
    pass


def _raw_chunks(fp: BinaryIO, entry: _Entry) -> Iterator[bytes]:
    """Decompress an entry from its data offset, reading exactly ``compress_size`` bytes."""
    fp.seek(entry.data_offset)
    left = entry.info.compress_size

    def read() -> bytes:
        nonlocal left
        data = fp.read(min(_CHUNK, left))
        if not data:
            raise _Damaged("the file ends inside its data")
        left -= len(data)
        return data

    if entry.info.compress_type == zipfile.ZIP_STORED:
        while left:
            yield read()
        return
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    while not inflater.eof:
        data = inflater.unconsumed_tail or (read() if left else b"")
        out = inflater.decompress(data, _CHUNK)
        if not out and not data:
            raise _Damaged("its compressed data ends early")
        if out:
            yield out
    if left or inflater.unused_data:
        raise _Damaged("extra bytes after its compressed data")


def _central_directory(fp: BinaryIO, size: int) -> tuple[int, int, int] | None:
    """(entries, bytes, start offset) of the central directory as the end records declare it."""
    tail_size = min(size, _EOCD.size + 0xFFFF)
    fp.seek(size - tail_size)
    tail = fp.read(tail_size)
    pos = tail.rfind(b"PK\x05\x06")
    if pos < 0 or tail_size - pos < _EOCD.size:
        return None
    eocd_at = size - tail_size + pos
    _, _, _, _, entries, cd_size, cd_offset, _ = _EOCD.unpack_from(tail, pos)
    cd_end = eocd_at
    if entries == 0xFFFF or 0xFFFFFFFF in (cd_size, cd_offset):
        locator_at = eocd_at - _EOCD64_LOCATOR.size
        record_at = locator_at - _EOCD64.size
        if record_at >= 0:
            fp.seek(record_at)
            raw = fp.read(_EOCD64.size + _EOCD64_LOCATOR.size)
            if raw[:4] == b"PK\x06\x06" and raw[_EOCD64.size : _EOCD64.size + 4] == b"PK\x06\x07":
                fields = _EOCD64.unpack_from(raw)
                entries, cd_size = fields[7], fields[8]
                cd_end = record_at
    return entries, cd_size, cd_end - cd_size
