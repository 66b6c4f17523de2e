"""A package's ``CHANGELOG.md``: what a new version changes, shown before an update.

The file is optional, at the top level of the package, UTF-8 Markdown. plugdock shows it
as text (never as HTML) and reads at most :data:`MAX_CHANGELOG_BYTES` of it; anything
longer is cut with a note::

    text = read_changelog(Path("modules/ai_chatbot_v1.1.0.zip"))   # or an unpacked folder
"""

from __future__ import annotations

import stat
import zipfile
import zlib
from pathlib import Path

from plugdock.errors import PackageError
from plugdock.package import checksums
from plugdock.package.layout import CHECKSUMS_FILE

CHANGELOG_FILE = "CHANGELOG.md"
MAX_CHANGELOG_BYTES = 64 * 1024
TRUNCATED_NOTE = "\n\n… (the changelog is longer; the rest is in the package)"


def read_changelog(package: Path) -> str | None:
    """The changelog of a package zip or an unpacked package folder; None if it has none.

    From a zip, the bytes must match the package's ``CHECKSUMS.sha256`` (which a signature
    covers), unless the file is longer than the limit and only its start is read. Raises
    PackageError for a file that is not text or does not match its checksum.
    """
    package = Path(package)
    if package.is_dir():
        return _from_folder(package)
    return _from_zip(package)


def _from_folder(folder: Path) -> str | None:
    path = folder / CHANGELOG_FILE
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return None
    if not stat.S_ISREG(mode):
        raise PackageError(f"{CHANGELOG_FILE} is not a regular file", source=str(folder))
    with path.open("rb") as handle:
        data = handle.read(MAX_CHANGELOG_BYTES + 1)
    return _text(data, str(folder))


def _from_zip(zip_path: Path) -> str | None:
    try:
        with zipfile.ZipFile(zip_path) as archive:
            try:
                info = archive.getinfo(CHANGELOG_FILE)
            except KeyError:
                return None
            with archive.open(info) as handle:
                data = handle.read(MAX_CHANGELOG_BYTES + 1)
            listed = _listed_digest(archive)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, RuntimeError, zlib.error) as error:
        raise PackageError(
            f"cannot read its {CHANGELOG_FILE} ({error})", source=str(zip_path)
        ) from None
    whole = len(data) <= MAX_CHANGELOG_BYTES
    if whole and listed != checksums.sha256_bytes(data):
        raise PackageError(f"{CHANGELOG_FILE} does not match its checksum", source=str(zip_path))
    return _text(data, str(zip_path))


def _listed_digest(archive: zipfile.ZipFile) -> str | None:
    try:
        info = archive.getinfo(CHECKSUMS_FILE)
    except KeyError:
        return None
    if info.file_size > 8 * 1024 * 1024:
        return None
    with archive.open(info) as handle:
        text = handle.read(8 * 1024 * 1024).decode("utf-8", "replace")
    try:
        return checksums.parse(text).get(CHANGELOG_FILE)
    except PackageError:
        return None


def _text(data: bytes, source: str) -> str:
    cut = len(data) > MAX_CHANGELOG_BYTES
    data = data[:MAX_CHANGELOG_BYTES]
    try:
        # A cut may split a character: drop only that partial tail.
        text = data.decode("utf-8-sig", "ignore" if cut else "strict")
    except UnicodeDecodeError:
        raise PackageError(f"{CHANGELOG_FILE} is not UTF-8 text", source=source) from None
    if "\x00" in text:
        raise PackageError(f"{CHANGELOG_FILE} contains a NUL byte", source=source)
    return text + TRUNCATED_NOTE if cut else text
