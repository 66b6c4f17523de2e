"""Packing a plugin folder: checks, junk, determinism, and the checksums file format."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import zipfile
from pathlib import Path

import pytest

from plugdock.errors import PackageError
from plugdock.package import checksums
from plugdock.package.archive import Limits, extract_package, inspect_package
from plugdock.package.pack import check_folder, pack, package_files

METADATA = {"id": "demo_plugin", "name": "Demo", "version": "1.2.3"}
FILES = {
    "metadata.json": json.dumps(METADATA, indent=2).encode(),
    "README.md": b"# Demo\n",
    "backend/__init__.py": b"from .routes import router\n",
    "backend/routes.py": b"from fastapi import APIRouter\n\nrouter = APIRouter()\n",
    "migrations/up.sql": b"CREATE TABLE demo_items (id INTEGER PRIMARY KEY);\n",
    "migrations/down.sql": b"DROP TABLE demo_items;\n",
    "frontend/pages/P.tsx": b"export default function P() { return null; }\n",
    "frontend/pages/caf\u00e9.tsx": b"export const x = 1;\n",
}


def write(folder: Path, files: dict[str, bytes], order: list[str] | None = None) -> Path:
    for name in order or list(files):
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(files[name])
    return folder


def names_in(zip_path: Path) -> list[str]:
    with zipfile.ZipFile(zip_path) as archive:
        return archive.namelist()


@pytest.fixture
def plugin(tmp_path: Path) -> Path:
    return write(tmp_path / "demo", FILES)


# ----------------------------------------------------------------------------- output


def test_file_name_and_contents(tmp_path: Path, plugin: Path) -> None:
    zip_path = pack(plugin, tmp_path / "out")
    assert zip_path == tmp_path / "out" / "demo_plugin_v1.2.3.zip"
    assert names_in(zip_path) == sorted([*FILES, "CHECKSUMS.sha256"])
    with zipfile.ZipFile(zip_path) as archive:
        for info in archive.infolist():
            assert info.date_time == (1980, 1, 1, 0, 0, 0)
            assert info.external_attr == (stat.S_IFREG | 0o644) << 16
            assert info.create_system == 3
            assert info.compress_type == zipfile.ZIP_DEFLATED
            assert not info.is_dir()
            if info.filename in FILES:
                assert archive.read(info) == FILES[info.filename]
    assert sorted(os.listdir(tmp_path / "out")) == ["demo_plugin_v1.2.3.zip"]  # no temp files
    assert stat.S_IMODE(zip_path.stat().st_mode) == 0o644


def test_checksums_cover_every_file(tmp_path: Path, plugin: Path) -> None:
    info = inspect_package(pack(plugin, tmp_path / "out"))
    assert info.files == {name: checksums.sha256_bytes(data) for name, data in FILES.items()}
    assert list(info.files) == sorted(info.files)


@pytest.mark.skipif(shutil.which("sha256sum") is None, reason="needs coreutils sha256sum")
@pytest.mark.parametrize("unpacker", ["unzip", "plugdock"])
def test_sha256sum_can_check_the_unpacked_package(
    tmp_path: Path, plugin: Path, unpacker: str
) -> None:
    zip_path = pack(plugin, tmp_path / "out")
    dest = tmp_path / "unpacked"
    if unpacker == "unzip":
        if shutil.which("unzip") is None:
            pytest.skip("needs unzip")
        subprocess.run(["unzip", "-q", str(zip_path), "-d", str(dest)], check=True)
    else:
        extract_package(zip_path, dest)
    result = subprocess.run(
        ["sha256sum", "--check", "--strict", "CHECKSUMS.sha256"],
        cwd=dest,
        capture_output=True,
        text=True,
        env={**os.environ, "LC_ALL": "C.UTF-8"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count(": OK") == len(FILES)
    (dest / "backend/routes.py").write_bytes(b"import os\n")
    failed = subprocess.run(["sha256sum", "-c", "CHECKSUMS.sha256"], cwd=dest, capture_output=True)
    assert failed.returncode != 0


def test_pack_replaces_an_older_package(tmp_path: Path, plugin: Path) -> None:
    first = pack(plugin, tmp_path / "out")
    (plugin / "backend/routes.py").write_bytes(b"router = None\n")
    second = pack(plugin, tmp_path / "out")
    assert first == second
    assert inspect_package(second).files["backend/routes.py"] == checksums.sha256_bytes(
        b"router = None\n"
    )


# ----------------------------------------------------------------------------- determinism


def test_deterministic(tmp_path: Path, plugin: Path) -> None:
    one = pack(plugin, tmp_path / "a").read_bytes()
    two = pack(plugin, tmp_path / "b").read_bytes()
    assert one == two

    # Same names and bytes, created in another order, at other times, with other modes.
    other = write(tmp_path / "elsewhere" / "demo", FILES, order=sorted(FILES, reverse=True))
    for i, path in enumerate(sorted(other.rglob("*"))):
        os.utime(path, (1_000_000_000 + i * 7919, 1_500_000_000 + i * 104729))
    os.chmod(other / "backend/routes.py", 0o755)
    os.chmod(other / "README.md", 0o600)
    (other / "backend/__pycache__").mkdir()
    (other / "backend/__pycache__/routes.cpython-311.pyc").write_bytes(b"junk")
    (other / "frontend/empty_folder").mkdir()
    assert pack(other, tmp_path / "c").read_bytes() == one


def test_content_change_changes_the_package(tmp_path: Path, plugin: Path) -> None:
    one = pack(plugin, tmp_path / "a").read_bytes()
    (plugin / "README.md").write_bytes(b"# Demo!\n")
    assert pack(plugin, tmp_path / "b").read_bytes() != one


# ----------------------------------------------------------------------------- junk


def test_junk_is_skipped(tmp_path: Path, plugin: Path) -> None:
    junk = [
        "backend/__pycache__/routes.cpython-311.pyc",
        "backend/old.pyc",
        "backend/old.pyo",
        ".DS_Store",
        "frontend/.DS_Store",
        "frontend/node_modules/react/index.js",
        "node_modules/x/index.js",
        ".git/config",
        ".env",
        "backend/.secret",
        "frontend/.cache/x.js",
        ".venv/bin/python",
    ]
    write(plugin, dict.fromkeys(junk, b"junk"))
    # Junk folders are not even walked: a symlink inside one is no problem.
    (plugin / "frontend/node_modules/.bin").mkdir()
    (plugin / "frontend/node_modules/.bin/tool").symlink_to("/usr/bin/env")
    assert set(package_files(plugin)) == set(FILES)
    assert names_in(pack(plugin, tmp_path / "out")) == sorted([*FILES, "CHECKSUMS.sha256"])


def test_generated_files_in_the_folder_are_ignored(tmp_path: Path, plugin: Path) -> None:
    (plugin / "CHECKSUMS.sha256").write_text("stale\n")
    (plugin / "SIGNATURE.json").write_text("{}")
    zip_path = pack(plugin, tmp_path / "out")
    assert "SIGNATURE.json" not in names_in(zip_path)
    assert inspect_package(zip_path).signature is None


def test_the_plugins_npm_project_files_are_not_packed(tmp_path: Path, plugin: Path) -> None:
    """``plugdock new`` makes the plugin an npm project; its tooling files stay at home."""
    write(
        plugin,
        {
            "package.json": b"{}",
            "package-lock.json": b"{}",
            "tsconfig.json": b"{}",
            ".gitignore": b"node_modules/\n",
            "node_modules/.bin/esbuild": b"#!/bin/sh\n",
        },
    )
    assert names_in(pack(plugin, tmp_path / "out")) == sorted([*FILES, "CHECKSUMS.sha256"])
    write(plugin, {"backend/package.json": b"{}"})  # below the top level it is plugin content
    assert "backend/package.json" in names_in(pack(plugin, tmp_path / "out"))


def test_outdir_inside_the_plugin_folder(plugin: Path) -> None:
    first = pack(plugin, plugin / "dist")
    second = pack(plugin, plugin / "dist")
    assert first.read_bytes() == second.read_bytes()
    assert not any(n.startswith("dist") for n in names_in(second))


def test_outdir_is_the_plugin_folder(plugin: Path) -> None:
    first = pack(plugin, plugin)
    assert pack(plugin, plugin).read_bytes() == first.read_bytes()
    assert first.name not in names_in(first)


# ----------------------------------------------------------------------------- refusals


def test_symlink_is_refused(tmp_path: Path, plugin: Path) -> None:
    (plugin / "backend/passwd.py").symlink_to("/etc/passwd")
    (plugin / "frontend/linked").symlink_to(plugin / "backend", target_is_directory=True)
    with pytest.raises(PackageError) as error:
        pack(plugin, tmp_path / "out")
    assert "'backend/passwd.py': is a symbolic link" in str(error.value)
    assert "'frontend/linked': is a symbolic link" in str(error.value)
    assert not (tmp_path / "out").exists()


def test_fifo_is_refused(plugin: Path) -> None:
    os.mkfifo(plugin / "backend/pipe")
    with pytest.raises(PackageError, match="'backend/pipe': is a special file"):
        check_folder(plugin)


@pytest.mark.parametrize("name", ["setup.py", "evil/x.py", "Backend/x.py"])
def test_unknown_top_level_is_refused(plugin: Path, name: str) -> None:
    write(plugin, {name: b"x = 1\n"})
    with pytest.raises(PackageError, match=r"allowed: metadata\.json"):
        check_folder(plugin)


def test_unsafe_file_names_are_refused(plugin: Path) -> None:
    write(plugin, {"backend/a\\b.py": b"", "backend/c\x01.py": b"", "backend/d.py ": b""})
    with pytest.raises(PackageError) as error:
        check_folder(plugin)
    assert len(error.value.problems) == 3
    assert "backslash" in str(error.value) and "U+0001" in str(error.value)


def test_native_libraries_are_refused_while_bytecode_is_skipped(
    tmp_path: Path, plugin: Path
) -> None:
    """Python writes __pycache__ while the author runs the plugin: skipped. A native library
    is code no reviewer can read, which no package may hold: refused, naming it."""
    write(
        plugin,
        {
            "backend/__pycache__/routes.cpython-311.pyc": b"\xa7\r\r\n",
            "backend/_fast.cpython-311-x86_64-linux-gnu.so": b"\x7fELF",
            "backend/lib/helper.dll": b"MZ",
        },
    )
    with pytest.raises(PackageError) as error:
        pack(plugin, tmp_path / "out")
    assert len(error.value.problems) == 2
    text = str(error.value)
    assert "'backend/_fast.cpython-311-x86_64-linux-gnu.so': is compiled or native code" in text
    assert "'backend/lib/helper.dll': is compiled or native code" in text
    assert "__pycache__" not in text
    assert not (tmp_path / "out").exists()


def test_case_collision_is_refused(plugin: Path) -> None:
    write(plugin, {"backend/Models.py": b"", "backend/models.py": b""})
    with pytest.raises(PackageError, match="differ only by letter case"):
        check_folder(plugin)


def test_all_problems_are_listed_at_once(tmp_path: Path, plugin: Path) -> None:
    (plugin / "metadata.json").write_text(json.dumps({"id": "Bad Id", "version": "x"}))
    write(plugin, {"setup.py": b"", "backend/a\\b.py": b""})
    (plugin / "backend/link.py").symlink_to("/etc/passwd")
    with pytest.raises(PackageError) as error:
        pack(plugin, tmp_path / "out")
    text = "\n".join(error.value.problems)
    for fragment in [
        "'setup.py'",
        "backslash",
        "'backend/link.py': is a symbolic link",
        "id:",
        "name:",
        "version:",
    ]:
        assert fragment in text, f"{fragment!r} missing from:\n{text}"
    assert error.value.source == str(plugin)


def test_missing_metadata(plugin: Path) -> None:
    (plugin / "metadata.json").unlink()
    with pytest.raises(PackageError, match=r"metadata\.json is missing"):
        check_folder(plugin)


def test_not_a_folder(tmp_path: Path) -> None:
    with pytest.raises(PackageError, match="is not a folder"):
        pack(tmp_path / "nope", tmp_path / "out")


def test_check_folder_returns_the_metadata(plugin: Path) -> None:
    assert check_folder(plugin).id == "demo_plugin"


def test_limits_are_checked_before_packing(tmp_path: Path, plugin: Path) -> None:
    with pytest.raises(PackageError, match="files, more than the limit of 3"):
        pack(plugin, tmp_path / "out", Limits(max_files=3))
    with pytest.raises(PackageError, match="more than the limit of 100"):
        pack(plugin, tmp_path / "out", Limits(max_total_bytes=100))


def test_pack_never_writes_a_package_install_would_refuse(tmp_path: Path, plugin: Path) -> None:
    write(plugin, {"frontend/zeros.bin": bytes(2 * 1024 * 1024)})  # compresses ~1000:1
    with pytest.raises(PackageError, match=r"would be refused on install.*zip bomb"):
        pack(plugin, tmp_path / "out")
    assert os.listdir(tmp_path / "out") == []


# ----------------------------------------------------------------------------- checksums format


def test_checksums_render_and_parse() -> None:
    digests = {"b/x.py": "b" * 64, "a.txt": "a" * 64, "metadata.json": "c" * 64}
    text = checksums.render(digests)
    assert text == f"{'a' * 64}  a.txt\n{'b' * 64}  b/x.py\n{'c' * 64}  metadata.json\n"
    assert checksums.parse(text) == digests
    assert checksums.parse("") == {}


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("nonsense\n", "is not '<sha256 hex>  <path>'"),
        (f"{'a' * 64} a.txt\n", "is not '<sha256 hex>  <path>'"),  # one space
        (f"{'a' * 64} *a.txt\n", "is not '<sha256 hex>  <path>'"),  # binary mode marker
        (f"{'A' * 64}  a.txt\n", "is not '<sha256 hex>  <path>'"),  # upper case
        (f"{'g' * 64}  a.txt\n", "is not '<sha256 hex>  <path>'"),  # not hex
        (f"{'a' * 63}  a.txt\n", "is not '<sha256 hex>  <path>'"),  # too short
        (f"{'a' * 64}  a.txt", "does not end with a newline"),
        (f"{'a' * 64}  a.txt\r\n", "carriage return"),
        (f"{'a' * 64}  a.txt\n\n", "line 2"),
        (f"{'a' * 64}  a.txt\n{'b' * 64}  a.txt\n", "listed more than once"),
        (f"{'a' * 64}  CHECKSUMS.sha256\n", "must not list CHECKSUMS.sha256"),
        (f"{'a' * 64}  SIGNATURE.json\n", "must not list SIGNATURE.json"),
        (f"\\{'a' * 64}  a\\\\b\n", "is not '<sha256 hex>  <path>'"),  # sha256sum's escaping
    ],
)
def test_checksums_parse_is_strict(text: str, fragment: str) -> None:
    with pytest.raises(PackageError, match=r"CHECKSUMS\.sha256") as error:
        checksums.parse(text)
    assert fragment in str(error.value)


def test_checksums_parse_lists_every_bad_line() -> None:
    with pytest.raises(PackageError) as error:
        checksums.parse("x\ny\nz\n")
    assert len(error.value.problems) == 3


def test_checksums_render_refuses_what_it_cannot_write() -> None:
    for bad in ({"a\nb": "a" * 64}, {"a": "A" * 64}, {"CHECKSUMS.sha256": "a" * 64}):
        with pytest.raises(ValueError):
            checksums.render(bad)


def test_sha256_file_streams(tmp_path: Path) -> None:
    path = tmp_path / "big.bin"
    data = os.urandom(3 * 1024 * 1024 + 5)
    path.write_bytes(data)
    assert checksums.sha256_file(path) == checksums.sha256_bytes(data)


def test_compare_reports_each_difference() -> None:
    listed = {"a": "1" * 64, "b": "2" * 64}
    actual = {"a": "1" * 64, "b": "3" * 64, "c": "4" * 64}
    problems = checksums.compare(listed, actual)
    assert problems == [
        "'c' is in the package but not listed in CHECKSUMS.sha256",
        "'b': contents do not match its SHA-256 in CHECKSUMS.sha256 (file was altered)",
    ]
    assert checksums.compare({"a": "1" * 64}, {"a": "1" * 64, "CHECKSUMS.sha256": "x"}) == []
