"""``CHECKSUMS.sha256``: the list of every file in a package with its SHA-256.

The file is in ``sha256sum`` format, one line per file, sorted by path::

    3b5d...e1f0  backend/__init__.py
    9a0c...77d2  metadata.json

so ``sha256sum -c CHECKSUMS.sha256`` works in an unpacked package. It lists every
file of the package except itself and ``SIGNATURE.json``; a signature signs this
file, so through it the signature covers every byte of the package.

>>> text = render({"metadata.json": sha256_bytes(b"{}")})
>>> parse(text) == {"metadata.json": sha256_bytes(b"{}")}
True
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

from plugdock.errors import PackageError
from plugdock.package.layout import CHECKSUMS_FILE, SIGNATURE_FILE

_LINE = re.compile(r"^([0-9a-f]{64})  ([^\\].*)$")
_HEX = re.compile(r"^[0-9a-f]{64}$")
_CHUNK = 1024 * 1024

#: Files a checksums file never lists: itself, and the signature that signs it.
UNLISTED = frozenset({CHECKSUMS_FILE, SIGNATURE_FILE})


def sha256_bytes(data: bytes) -> str:
    """The lowercase hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path | str) -> str:
    """The lowercase hex SHA-256 of a file, read in chunks (any size, constant memory)."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def digest_files(files: Mapping[str, Path]) -> dict[str, str]:
    """Hash each file of ``{package path: file on disk}``; gives ``{package path: sha256}``."""
    return {name: sha256_file(path) for name, path in files.items()}


def render(digests: Mapping[str, str]) -> str:
    """The text of a checksums file for ``{posix path: sha256 hex}``, sorted by path.

    >>> render({"b.txt": "0" * 64, "a.txt": "f" * 64}).splitlines()[0].endswith("  a.txt")
    True
    """
    problems = []
    for path, digest in digests.items():
        if path in UNLISTED:
            problems.append(f"{CHECKSUMS_FILE} never lists {path}")
        if not _HEX.fullmatch(digest):
            problems.append(f"{path!r}: {digest!r} is not a lowercase hex SHA-256")
        if not path or any(c in path for c in "\\\n\r"):
            problems.append(f"{path!r}: cannot be written in a checksums file")
    if problems:
        raise ValueError("; ".join(problems))
    return "".join(f"{digests[path]}  {path}\n" for path in sorted(digests))


def parse(text: str) -> dict[str, str]:
    """Read a checksums file strictly: ``{path: sha256}``, or PackageError listing every bad line.

    Refused: lines not of the form ``<64 lowercase hex>  <path>`` (two spaces, text mode),
    Windows line endings, blank lines, a missing final newline, a path listed twice, and
    entries for the checksums file itself or ``SIGNATURE.json``.
    """
    problems: list[str] = []
    digests: dict[str, str] = {}
    if text and not text.endswith("\n"):
        problems.append("the last line does not end with a newline")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    for number, line in enumerate(lines, start=1):
        where = f"line {number}"
        if "\r" in line:
            problems.append(f"{where}: has a carriage return (Windows line ending)")
            continue
        match = _LINE.fullmatch(line)
        if not match:
            problems.append(f"{where}: {_short(line)!r} is not '<sha256 hex>  <path>'")
            continue
        digest, path = match.groups()
        if path in UNLISTED:
            problems.append(f"{where}: {CHECKSUMS_FILE} must not list {path}")
        elif path in digests:
            problems.append(f"{where}: {path!r} is listed more than once")
        else:
            digests[path] = digest
    if problems:
        raise PackageError([f"{CHECKSUMS_FILE} {p}" for p in problems])
    return digests


def compare_names(listed: Iterable[str], present: Iterable[str]) -> list[str]:
    """Problems where the listed paths and the package's files differ (both ways)."""
    listed_set, present_set = set(listed), set(present) - UNLISTED
    problems = [
        f"{name!r} is in the package but not listed in {CHECKSUMS_FILE}"
        for name in sorted(present_set - listed_set)
    ]
    problems += [
        f"{name!r} is listed in {CHECKSUMS_FILE} but is not in the package"
        for name in sorted(listed_set - present_set)
    ]
    return problems


def compare(listed: Mapping[str, str], actual: Mapping[str, str]) -> list[str]:
    """Every difference between the checksums file and the real hashes of the files, in words."""
    problems = compare_names(listed, actual)
    problems += [
        f"{name!r}: contents do not match its SHA-256 in {CHECKSUMS_FILE} (file was altered)"
        for name in sorted(set(listed) & set(actual))
        if listed[name] != actual[name]
    ]
    return problems


def _short(line: str) -> str:
    return line if len(line) <= 80 else line[:77] + "..."
