"""Reading untrusted packages: every malicious or broken zip is refused, and leaves nothing behind.

The zips are built for real with ``zipfile``; where ``zipfile`` cannot write a lie
(sizes, flags, NUL bytes, overlapping entries) the bytes of the written file are
patched, field by field, at the offsets the zip format defines.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import struct
import warnings
import zipfile
import zlib
from pathlib import Path

import pytest

from plugdock.config import Settings
from plugdock.errors import PackageError
from plugdock.package import checksums
from plugdock.package.archive import (
    Limits,
    PackageInfo,
    check_names,
    extract_package,
    inspect_package,
    path_problems,
)
from plugdock.package.pack import pack

MIB = 1024 * 1024
METADATA = {"id": "demo_plugin", "name": "Demo", "version": "1.0.0"}
SOURCE_FILES = {
    "metadata.json": json.dumps(METADATA).encode(),
    "backend/__init__.py": b"from fastapi import APIRouter\n\nrouter = APIRouter()\n",
    "migrations/up.sql": b"CREATE TABLE demo_items (id INTEGER PRIMARY KEY);\n",
    "migrations/down.sql": b"DROP TABLE demo_items;\n",
    "frontend/pages/P.tsx": b"export default function P() { return null; }\n",
}


# ----------------------------------------------------------------------------- helpers


def write_plugin(folder: Path, files: dict[str, bytes] = SOURCE_FILES) -> Path:
    for name, data in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return folder


def entry(name: str, *, mode: int | None = None, compress: int = zipfile.ZIP_DEFLATED):
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    info.compress_type = compress
    info.create_system = 3
    info.external_attr = (mode if mode is not None else stat.S_IFREG | 0o644) << 16
    return info


def make_zip(
    path: Path,
    files: dict[str, bytes] | list[tuple[zipfile.ZipInfo | str, bytes]] = (),
    *,
    metadata: bytes | None = json.dumps(METADATA).encode(),
    checksummed: bool = True,
    unlisted: tuple[str, ...] = (),
    listed_extra: tuple[str, ...] = (),
    compress: int = zipfile.ZIP_DEFLATED,
) -> Path:
    """A zip holding ``files`` plus (unless told otherwise) valid metadata and checksums."""
    items = list(files.items()) if isinstance(files, dict) else list(files)
    entries = [
        (i if isinstance(i, zipfile.ZipInfo) else entry(i, compress=compress), d) for i, d in items
    ]
    if metadata is not None:
        entries.append((entry("metadata.json", compress=compress), metadata))
    if checksummed:  # written by hand: render() refuses the unsafe names some tests need
        digests = {
            info.filename: checksums.sha256_bytes(data)
            for info, data in entries
            if not info.filename.endswith("/")
            and info.filename not in (*unlisted, *checksums.UNLISTED)
        }
        digests.update({name: "0" * 64 for name in listed_extra})
        text = "".join(f"{digest}  {name}\n" for name, digest in sorted(digests.items()))
        entries.append((entry("CHECKSUMS.sha256", compress=compress), text.encode()))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about duplicate names; we want them
        with zipfile.ZipFile(path, "w") as archive:
            for info, data in entries:
                archive.writestr(info, data)
    return path


def headers(data: bytes | bytearray, name: str) -> tuple[int, int]:
    """Offsets of the central directory header and the local header of entry ``name``."""
    eocd = data.rindex(b"PK\x05\x06")
    count, _, cd_offset = struct.unpack_from("<HLL", data, eocd + 10)
    pos = cd_offset
    for _ in range(count):
        assert data[pos : pos + 4] == b"PK\x01\x02"
        name_len, extra_len, comment_len = struct.unpack_from("<HHH", data, pos + 28)
        (local,) = struct.unpack_from("<L", data, pos + 42)
        if bytes(data[pos + 46 : pos + 46 + name_len]) == name.encode():
            return pos, local
        pos += 46 + name_len + extra_len + comment_len
    raise KeyError(name)


def patch(
    path: Path, name: str, *, central: dict[int, tuple[str, int]], local: dict[int, tuple[str, int]]
) -> None:
    """Overwrite header fields of one entry: ``{field offset: (struct format, value)}``."""
    data = bytearray(path.read_bytes())
    cd, lh = headers(data, name)
    for offset, (fmt, value) in central.items():
        struct.pack_into(fmt, data, cd + offset, value)
    for offset, (fmt, value) in local.items():
        struct.pack_into(fmt, data, lh + offset, value)
    path.write_bytes(bytes(data))


def data_offset(data: bytes, name: str) -> int:
    _, local = headers(data, name)
    name_len, extra_len = struct.unpack_from("<HH", data, local + 26)
    return local + 30 + name_len + extra_len


def refused(zip_path: Path, *fragments: str, limits: Limits = Limits()) -> PackageError:
    """Both readers refuse the zip, naming every fragment; extraction leaves nothing behind."""
    with pytest.raises(PackageError) as inspected:
        inspect_package(zip_path, limits)
    dest = zip_path.parent / "dest"
    with pytest.raises(PackageError) as extracted:
        extract_package(zip_path, dest, limits)
    assert not dest.exists(), "a refused package left its destination folder behind"
    for error in (inspected.value, extracted.value):
        message = str(error)
        for fragment in fragments:
            assert fragment in message, f"{fragment!r} not in:\n{message}"
    return inspected.value


@pytest.fixture
def packed(tmp_path: Path) -> Path:
    return pack(write_plugin(tmp_path / "src"), tmp_path / "out")


# ----------------------------------------------------------------------------- happy path


def test_pack_inspect_extract_round_trip(tmp_path: Path, packed: Path) -> None:
    info = inspect_package(packed)
    assert isinstance(info, PackageInfo)
    assert info.metadata.id == "demo_plugin" and info.metadata.version == "1.0.0"
    assert info.size == packed.stat().st_size
    assert info.sha256 == hashlib.sha256(packed.read_bytes()).hexdigest()
    assert info.files == {
        name: checksums.sha256_bytes(data) for name, data in sorted(SOURCE_FILES.items())
    }
    assert checksums.parse(info.checksums_text.decode()) == info.files
    assert info.signature is None

    dest = tmp_path / "unpacked"
    assert extract_package(packed, dest) == info
    written = {p.relative_to(dest).as_posix(): p for p in dest.rglob("*") if p.is_file()}
    assert set(written) == {*SOURCE_FILES, "CHECKSUMS.sha256"}
    for name, data in SOURCE_FILES.items():
        assert written[name].read_bytes() == data
    assert (dest / "CHECKSUMS.sha256").read_bytes() == info.checksums_text
    for path in dest.rglob("*"):
        assert stat.S_IMODE(path.stat().st_mode) == (0o755 if path.is_dir() else 0o644)


def test_folder_entries_signature_and_modes_from_the_zip_are_ignored(tmp_path: Path) -> None:
    zip_path = make_zip(
        tmp_path / "p.zip",
        [
            (entry("backend/", mode=stat.S_IFDIR | 0o777), b""),
            (entry("backend/__init__.py", mode=stat.S_IFREG | 0o4777), b"x = 1\n"),
            (entry("SIGNATURE.json"), b'{"sig": "..."}'),
        ],
    )
    info = extract_package(zip_path, tmp_path / "dest")
    assert info.signature == b'{"sig": "..."}'
    assert "SIGNATURE.json" not in info.files
    assert stat.S_IMODE((tmp_path / "dest/backend/__init__.py").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "dest/backend").stat().st_mode) == 0o755


def test_extract_needs_a_new_destination(tmp_path: Path, packed: Path) -> None:
    dest = tmp_path / "existing"
    dest.mkdir()
    (dest / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError):
        extract_package(packed, dest)
    assert (dest / "keep.txt").read_text() == "mine"


def test_limits_from_settings() -> None:
    settings = Settings(max_package_bytes=5, max_package_files=6, max_compression_ratio=7.5)
    assert Limits.from_settings(settings) == Limits(max_total_bytes=5, max_files=6, max_ratio=7.5)


# ----------------------------------------------------------------------------- not a zip


def test_not_a_zip(tmp_path: Path) -> None:
    path = tmp_path / "p.zip"
    path.write_bytes(b"this is not a zip file at all\n" * 10)
    refused(path, "not a zip file")


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "p.zip"
    path.write_bytes(b"")
    refused(path, "not a zip file")


@pytest.mark.parametrize("keep", [0.5, 0.9])
def test_truncated_zip(tmp_path: Path, packed: Path, keep: float) -> None:
    path = tmp_path / "cut.zip"
    data = packed.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    refused(path, "not a zip file")


def test_missing_file_and_folder_path(tmp_path: Path) -> None:
    with pytest.raises(PackageError, match="no such file"):
        inspect_package(tmp_path / "nope.zip")
    with pytest.raises(PackageError, match="not a regular file"):
        inspect_package(tmp_path)
    with pytest.raises(PackageError, match="no such file"):
        extract_package(tmp_path / "nope.zip", tmp_path / "dest")
    assert not (tmp_path / "dest").exists()


def test_local_header_naming_another_file(tmp_path: Path) -> None:
    path = make_zip(tmp_path / "p.zip", {"backend/a.py": b"x = 1\n"})
    data = bytearray(path.read_bytes())
    _, local = headers(data, "backend/a.py")
    data[local + 30 : local + 30 + len("backend/a.py")] = b"backend/b.py"
    path.write_bytes(bytes(data))
    refused(path, "'backend/a.py': its local header names a different file")


def test_local_and_central_headers_disagree_on_compression(tmp_path: Path) -> None:
    path = make_zip(tmp_path / "p.zip", {"backend/a.py": b"x"}, compress=zipfile.ZIP_STORED)
    data = bytearray(path.read_bytes())
    _, local = headers(data, "backend/a.py")
    data[local + 8 : local + 10] = (8).to_bytes(2, "little")
    path.write_bytes(bytes(data))
    refused(path, "disagree on compression")


def test_damaged_central_directory(tmp_path: Path, packed: Path) -> None:
    data = bytearray(packed.read_bytes())
    cd, _ = headers(data, "metadata.json")
    data[cd : cd + 4] = b"XXXX"
    path = tmp_path / "bad.zip"
    path.write_bytes(bytes(data))
    refused(path, "not a readable zip file")


def test_damaged_deflate_stream(tmp_path: Path) -> None:
    path = make_zip(tmp_path / "p.zip", {"backend/a.py": b"print('hello')\n" * 200})
    data = bytearray(path.read_bytes())
    start = data_offset(data, "backend/a.py")
    data[start : start + 8] = b"\xff" * 8
    path.write_bytes(bytes(data))
    refused(path, "'backend/a.py'", "damaged")


# ----------------------------------------------------------------------------- names


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("../evil.py", "'..'"),
        ("backend/../../evil", "'..'"),
        ("/etc/x", "absolute path"),
        ("C:\\x", "drive letter"),
        ("C:x", "drive letter"),
        ("backend\\..\\x", "backslash"),
        ("backend/./x.py", "'.' component"),
        ("backend//x.py", "empty component"),
        ("backend/a\x01.py", "invisible or undecodable character (U+0001)"),
        ("backend/\u202egnp.py", "invisible or undecodable character (U+202E)"),
        ("backend/a:b.py", "':'"),
        ("backend/x.py.", "ending in a space or '.'"),
        ("backend/" + "a" * 300 + ".py", "longer than 255 bytes"),
        ("backend/" + "/".join(["d" * 100] * 6) + "/x.py", "longer than 512 bytes"),
    ],
)
def test_unsafe_names(tmp_path: Path, name: str, fragment: str) -> None:
    path = make_zip(tmp_path / "p.zip", {name: b"x = 1\n"})
    refused(path, repr(name), fragment)


def test_nul_byte_in_name(tmp_path: Path) -> None:
    # zipfile cuts names at NUL when writing, so write 'X' and put the NUL into the bytes.
    path = make_zip(tmp_path / "p.zip", {"backend/aX.py": b"x = 1\n"})
    data = path.read_bytes()
    assert data.count(b"backend/aX.py") == 2  # local header, central header
    path.write_bytes(data.replace(b"backend/aX.py", b"backend/a\x00.py"))
    refused(path, "U+0000")


@pytest.mark.parametrize("name", ["setup.py", "evil/x.py", "Metadata.json", "backend"])
def test_unknown_top_level(tmp_path: Path, name: str) -> None:
    path = make_zip(tmp_path / "p.zip", {name: b"x = 1\n"})
    refused(path, repr(name), "allowed: metadata.json")


def test_unknown_top_level_folder_entry(tmp_path: Path) -> None:
    path = make_zip(tmp_path / "p.zip", [(entry("evil/", mode=stat.S_IFDIR | 0o755), b"")])
    refused(path, "'evil/'", "outside the allowed folders")


@pytest.mark.parametrize(
    "name",
    [
        "backend/__pycache__/routes.cpython-311.pyc",
        "backend/__pycache__/",  # the folder alone: Python reads bytecode from it
        "backend/helpers.pyc",
        "backend/_native.abi3.so",
        "migrations/lib.so.1",
    ],
)
def test_compiled_and_native_code_is_refused(tmp_path: Path, name: str) -> None:
    code = {k: v for k, v in SOURCE_FILES.items() if k != "metadata.json"}
    mode = stat.S_IFDIR | 0o755 if name.endswith("/") else None
    files = [*code.items(), (entry(name, mode=mode), b"" if mode else b"\x7fELF")]
    error = refused(make_zip(tmp_path / "p.zip", files), "compiled or native code")
    assert len(error.problems) == 1 and error.problems[0].startswith(f"{name!r}: is compiled")


def test_duplicate_names(tmp_path: Path) -> None:
    path = make_zip(tmp_path / "p.zip", [("backend/a.py", b"one"), ("backend/a.py", b"two")])
    refused(path, "'backend/a.py': appears more than once")


def test_case_duplicate(tmp_path: Path) -> None:
    path = make_zip(tmp_path / "p.zip", {"backend/A.py": b"one", "backend/a.py": b"two"})
    refused(path, "'backend/a.py' and 'backend/A.py'", "letter case")


def test_case_duplicate_folders(tmp_path: Path) -> None:
    path = make_zip(tmp_path / "p.zip", {"backend/Sub/a.py": b"one", "backend/sub/a.py": b"two"})
    refused(path, "differ only by letter case")


def test_unicode_normalization_duplicate(tmp_path: Path) -> None:
    nfc, nfd = "backend/caf\u00e9.py", "backend/cafe\u0301.py"
    path = make_zip(tmp_path / "p.zip", {nfc: b"one", nfd: b"two"})
    refused(path, "'backend/cafe\\u0301.py' and 'backend/caf\\xe9.py'", "Unicode normalization")


def test_file_used_as_folder(tmp_path: Path) -> None:
    path = make_zip(tmp_path / "p.zip", {"backend/x.py": b"one", "backend/x.py/y.py": b"two"})
    refused(path, "'backend/x.py': is a file, but other entries use it as a folder")


def test_name_problems_are_listed_all_at_once(tmp_path: Path) -> None:
    path = make_zip(
        tmp_path / "p.zip",
        {"../a.py": b"", "/b.py": b"", "setup.py": b"", "backend/c\\d.py": b""},
    )
    error = refused(path, "'../a.py'", "'/b.py'", "'setup.py'", "'backend/c\\\\d.py'")
    assert len(error.problems) >= 4


def test_path_rules_directly() -> None:
    assert path_problems("backend/routes.py") == []
    assert path_problems("frontend/pages/[id].tsx") == []
    assert path_problems("") == ["has an empty name"]
    assert check_names(["metadata.json", "backend/__init__.py", "README.md"]) == []


# ----------------------------------------------------------------------------- entry types


@pytest.mark.parametrize(
    ("mode", "fragment"),
    [
        (stat.S_IFLNK | 0o777, "is a symbolic link"),
        (stat.S_IFIFO | 0o644, "FIFO"),
        (stat.S_IFCHR | 0o644, "character device"),
        (stat.S_IFBLK | 0o644, "block device"),
        (stat.S_IFSOCK | 0o644, "socket"),
        (stat.S_IFDIR | 0o755, "marked as a folder"),
    ],
)
def test_special_entry_types(tmp_path: Path, mode: int, fragment: str) -> None:
    path = make_zip(tmp_path / "p.zip", [(entry("backend/link.py", mode=mode), b"/etc/passwd")])
    refused(path, "'backend/link.py'", fragment)


def test_encrypted_entry(tmp_path: Path) -> None:
    path = make_zip(tmp_path / "p.zip", {"backend/a.py": b"secret"}, compress=zipfile.ZIP_STORED)
    patch(path, "backend/a.py", central={8: ("<H", 0x1)}, local={6: ("<H", 0x1)})
    refused(path, "'backend/a.py': is encrypted")


def test_other_compression_methods_refused(tmp_path: Path) -> None:
    path = make_zip(tmp_path / "p.zip", [(entry("backend/a.py", compress=zipfile.ZIP_BZIP2), b"x")])
    refused(path, "compression method 12")


def test_overlapping_entries(tmp_path: Path) -> None:
    # Point a second central directory entry at the first entry's bytes (the "overlap" bomb).
    path = make_zip(tmp_path / "p.zip", {"backend/a.py": b"a" * 100, "backend/b.py": b"b" * 100})
    data = path.read_bytes()
    _, local_a = headers(data, "backend/a.py")
    patch(path, "backend/b.py", central={42: ("<L", local_a)}, local={})
    refused(path, "overlaps")


# ----------------------------------------------------------------------------- limits


def test_too_many_files(tmp_path: Path) -> None:
    path = make_zip(tmp_path / "p.zip", {f"backend/m{i}.py": b"" for i in range(10)})
    refused(path, "entries, more than the limit of 5", limits=Limits(max_files=5))


def test_entry_count_in_the_end_record_may_lie(tmp_path: Path) -> None:
    path = make_zip(tmp_path / "p.zip", {f"backend/m{i}.py": b"" for i in range(10)})
    data = bytearray(path.read_bytes())
    eocd = data.rindex(b"PK\x05\x06")
    struct.pack_into("<HH", data, eocd + 8, 1, 1)  # "1 entry"; the directory holds 12
    path.write_bytes(bytes(data))
    refused(path, "has 12 entries, more than the limit of 5", limits=Limits(max_files=5))


def test_zip64_end_records(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Real zip64 end records need 65535 entries; let zipfile write them for a few.
    monkeypatch.setattr(zipfile, "ZIP_FILECOUNT_LIMIT", 2)
    path = make_zip(tmp_path / "p.zip", {f"backend/m{i}.py": b"x" for i in range(4)})
    monkeypatch.undo()
    assert b"PK\x06\x06" in path.read_bytes()
    assert len(inspect_package(path).files) == 5
    refused(path, "has 6 entries, more than the limit of 3", limits=Limits(max_files=3))


def test_too_large_total(tmp_path: Path) -> None:
    files = {"backend/a.bin": os.urandom(600_000), "backend/b.bin": os.urandom(600_000)}
    path = make_zip(tmp_path / "p.zip", files)
    refused(path, "more than the limit of 1000000 bytes", limits=Limits(max_total_bytes=1_000_000))


def test_zip_file_itself_too_large(tmp_path: Path) -> None:
    path = make_zip(tmp_path / "p.zip", {"backend/a.py": b"x"})
    with path.open("ab") as handle:  # a zip may carry junk before its end record
        handle.write(b"\0" * 4096)
    refused(path, "the package file is", limits=Limits(max_total_bytes=10, max_files=1))


def test_zip_bomb_by_ratio(tmp_path: Path) -> None:
    path = make_zip(tmp_path / "p.zip", {"backend/zeros.bin": bytes(50 * MIB)})
    assert path.stat().st_size < 100_000
    refused(path, "'backend/zeros.bin': would expand", "zip bomb")


def test_zip_bomb_by_overall_ratio_of_many_small_files(tmp_path: Path) -> None:
    files = {f"frontend/f{i}.txt": bytes(16 * 1024) for i in range(100)}
    refused(make_zip(tmp_path / "p.zip", files), "the package would expand", "zip bomb")


def test_small_files_may_compress_well(tmp_path: Path) -> None:
    path = make_zip(tmp_path / "p.zip", {"backend/zeros.bin": bytes(512 * 1024)})
    assert inspect_package(path).files["backend/zeros.bin"]


def test_lying_header_claims_fewer_bytes(tmp_path: Path) -> None:
    # 10 MiB of zeros whose headers claim 1000 bytes: ratio and size checks see nothing,
    # so only counting the real bytes while decompressing catches it.
    path = make_zip(tmp_path / "p.zip", {"backend/data.bin": bytes(10 * MIB)})
    patch(path, "backend/data.bin", central={24: ("<L", 1000)}, local={22: ("<L", 1000)})
    assert zipfile.ZipFile(path).getinfo("backend/data.bin").file_size == 1000
    refused(path, "'backend/data.bin': unpacks to more than the 1000 bytes", "lying header")


def test_lying_header_claims_more_bytes(tmp_path: Path) -> None:
    path = make_zip(tmp_path / "p.zip", {"backend/data.py": b"x = 1\n" * 100})
    patch(path, "backend/data.py", central={24: ("<L", 5000)}, local={22: ("<L", 5000)})
    refused(path, "'backend/data.py': unpacks to 600 bytes, not the 5000")


def test_lying_stored_sizes(tmp_path: Path) -> None:
    path = make_zip(tmp_path / "p.zip", {"backend/a.py": b"x" * 100}, compress=zipfile.ZIP_STORED)
    patch(path, "backend/a.py", central={24: ("<L", 10)}, local={22: ("<L", 10)})
    refused(path, "'backend/a.py': is stored uncompressed but its two sizes differ")


# ----------------------------------------------------------------------------- checksums


def test_missing_checksums(tmp_path: Path) -> None:
    path = make_zip(tmp_path / "p.zip", {"backend/a.py": b"x"}, checksummed=False)
    refused(path, "CHECKSUMS.sha256 is missing", "not packed by `plugdock pack`")


def test_file_not_listed_in_checksums(tmp_path: Path) -> None:
    path = make_zip(
        tmp_path / "p.zip", {"backend/a.py": b"x", "backend/b.py": b"y"}, unlisted=("backend/b.py",)
    )
    refused(path, "'backend/b.py' is in the package but not listed in CHECKSUMS.sha256")


def test_checksums_list_a_missing_file(tmp_path: Path) -> None:
    path = make_zip(tmp_path / "p.zip", {"backend/a.py": b"x"}, listed_extra=("backend/ghost.py",))
    refused(path, "'backend/ghost.py' is listed in CHECKSUMS.sha256 but is not in the package")


def test_malformed_checksums_file(tmp_path: Path) -> None:
    text = f"{'A' * 64}  backend/a.py\nnot a line\n"
    path = make_zip(
        tmp_path / "p.zip",
        [("backend/a.py", b"x"), ("CHECKSUMS.sha256", text.encode())],
        checksummed=False,
    )
    refused(path, "CHECKSUMS.sha256 line 1", "CHECKSUMS.sha256 line 2")


def test_tampered_byte_breaks_crc(tmp_path: Path) -> None:
    path = make_zip(
        tmp_path / "p.zip", {"backend/a.py": b"x = 1\n" * 50}, compress=zipfile.ZIP_STORED
    )
    data = bytearray(path.read_bytes())
    data[data_offset(data, "backend/a.py") + 10] ^= 0x01
    path.write_bytes(bytes(data))
    refused(path, "'backend/a.py': damaged (its CRC-32 does not match")


def test_tampered_byte_with_fixed_crc_fails_the_checksum(tmp_path: Path) -> None:
    original = b"x = 1\n" * 50
    path = make_zip(tmp_path / "p.zip", {"backend/a.py": original}, compress=zipfile.ZIP_STORED)
    data = bytearray(path.read_bytes())
    start = data_offset(data, "backend/a.py")
    data[start + 10] ^= 0x01
    path.write_bytes(bytes(data))
    crc = zlib.crc32(bytes(data[start : start + len(original)]))
    patch(path, "backend/a.py", central={16: ("<L", crc)}, local={14: ("<L", crc)})
    refused(path, "'backend/a.py': contents do not match its SHA-256 in CHECKSUMS.sha256")


@pytest.mark.parametrize("victim", ["backend/__init__.py", "metadata.json"])
def test_rewritten_entry_fails_the_checksum(tmp_path: Path, packed: Path, victim: str) -> None:
    path = tmp_path / "rewritten.zip"
    with zipfile.ZipFile(packed) as source, zipfile.ZipFile(path, "w") as target:
        for info in source.infolist():
            data = source.read(info)
            if info.filename == victim:
                data = (
                    data.replace(b"demo", b"evil") if victim == "metadata.json" else b"import os\n"
                )
            target.writestr(info, data)
    refused(path, f"'{victim}': contents do not match its SHA-256")


# ----------------------------------------------------------------------------- metadata


def test_missing_metadata(tmp_path: Path) -> None:
    refused(
        make_zip(tmp_path / "p.zip", {"backend/a.py": b"x"}, metadata=None),
        "metadata.json is missing",
    )


def test_invalid_metadata(tmp_path: Path) -> None:
    bad = json.dumps({"id": "Bad Id", "name": "Demo", "version": "one"}).encode()
    refused(make_zip(tmp_path / "p.zip", {}, metadata=bad), "id:", "version:")


def test_metadata_not_json(tmp_path: Path) -> None:
    refused(make_zip(tmp_path / "p.zip", {}, metadata=b"{nope"), "not valid JSON")


def test_oversized_metadata(tmp_path: Path) -> None:
    big = json.dumps({**METADATA, "description": "x" * (2 * MIB)}).encode()
    refused(make_zip(tmp_path / "p.zip", {}, metadata=big), "'metadata.json': is larger than")


def test_destination_rechecks_every_path(tmp_path: Path) -> None:
    """Defense in depth: even a name that slipped past the checks cannot leave the folder."""
    from plugdock.package.archive import _Destination

    root = tmp_path / "root"
    root.mkdir()
    (tmp_path / "outside").mkdir()
    (root / "backend").symlink_to(tmp_path / "outside", target_is_directory=True)
    destination = _Destination(root)
    for name in ["../escape.py", "backend/x.py", "frontend/../../escape.py"]:
        with pytest.raises(PackageError):
            destination.open(name)
    with destination.open("frontend/a.js") as out:
        out.write(b"1")
    with pytest.raises(PackageError, match="collides"):
        destination.open("frontend/a.js")
    assert list((tmp_path / "outside").iterdir()) == []
