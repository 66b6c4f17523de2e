"""Compiled and native code in a package (issue 24, item 1): refused everywhere, never loaded.

The attack: a package whose ``backend/routes.py`` is clean and whose
``backend/__pycache__/routes.<tag>.pyc`` is an *unchecked* hash-based pyc (PEP 552) of a
malicious ``routes.py``. Python loads such a pyc instead of the source beside it without
comparing the two, so a reviewer reading the source saw nothing while the host ran the
hidden code. Here the hidden code writes a marker file the moment it is imported.

Every door a package comes through refuses it (install, the panel's upload, ``plugdock
validate``, the plugin server's upload, signing), and a bytecode or native file planted
later beside an installed plugin's source is never loaded.
"""

from __future__ import annotations

import importlib.machinery
import os
import py_compile
import subprocess
import sys
import uuid
import zipfile
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from panel import start_panel
from plugdock.errors import PackageError
from plugdock.installer import Installer
from plugdock.package.archive import inspect_package
from plugdock.package.checksums import render, sha256_bytes
from plugdock.plugin_code.loader import load_backend, unload
from plugdock.server import Storage, create_app
from plugdock.trust.signing import generate_keypair, load_private_key, sign_package
from support import detail, make_plugin, pack_into, snapshot

SQLITE = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
#: Where this interpreter looks for the bytecode of ``routes.py`` (``cpython-311`` on 3.11).
PYC_NAME = f"backend/__pycache__/routes.{sys.implementation.cache_tag}.pyc"
#: The name CPython would import a native ``routes`` extension from, before ``routes.py``.
NATIVE_NAME = f"backend/routes{importlib.machinery.EXTENSION_SUFFIXES[0]}"

EVIL_ROUTES = """\
from pathlib import Path

from fastapi import APIRouter

Path({marker!r}).write_text("the hidden code ran")
router = APIRouter(prefix="/api/v1/{slug}")


@router.get("/ping")
def ping() -> dict:
    return {{"pong": "hidden"}}
"""


def evil_pyc(tmp_path: Path, marker: Path, slug: str) -> bytes:
    """An unchecked hash-based pyc of a ``routes.py`` that writes ``marker`` at import."""
    work = tmp_path / f"evil-{uuid.uuid4().hex[:8]}"
    work.mkdir()
    source = work / "routes.py"
    source.write_text(EVIL_ROUTES.format(marker=str(marker), slug=slug), encoding="utf-8")
    compiled = py_compile.compile(
        str(source),
        cfile=str(work / "routes.pyc"),
        doraise=True,
        invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
    )
    return Path(compiled).read_bytes()


def with_files(package: Path, extra: dict[str, bytes]) -> Path:
    """Rewrite a package zip with more files, and checksums that cover them (as an attacker can)."""
    with zipfile.ZipFile(package) as archive:
        entries = {i.filename: archive.read(i) for i in archive.infolist()}
    entries.update(extra)
    entries.pop("CHECKSUMS.sha256")
    entries["CHECKSUMS.sha256"] = render({k: sha256_bytes(v) for k, v in entries.items()}).encode()
    with zipfile.ZipFile(package, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in sorted(entries.items()):
            archive.writestr(name, data)
    return package


def attack_package(tmp_path: Path, outdir: Path, marker: Path, plugin_id: str = "sneaky") -> Path:
    """Clean source, packed as usual, plus the hidden pyc beside it."""
    source = make_plugin(tmp_path / f"src-{uuid.uuid4().hex[:8]}", plugin_id)
    package = pack_into(source, outdir)
    pyc = evil_pyc(tmp_path, marker, plugin_id.replace("_", "-"))
    return with_files(package, {PYC_NAME: pyc})


def test_the_attack_package_is_real(tmp_path: Path) -> None:
    """The pyc in the test package is what Python would load instead of the clean source."""
    marker = tmp_path / "ran"
    pyc = evil_pyc(tmp_path, marker, "sneaky")
    flags = int.from_bytes(pyc[4:8], "little")
    assert flags == 0b01  # hash-based, check_source off: never compared with routes.py
    folder = make_plugin(tmp_path / "plain", "sneaky") / "backend"
    target = folder / PYC_NAME.removeprefix("backend/")
    target.parent.mkdir()
    target.write_bytes(pyc)
    # A plain import of the folder (what the loader did before) runs the hidden code.
    code = f"import sys; sys.path.insert(0, {str(folder.parent)!r}); import backend.routes"
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, timeout=60)
    assert marker.read_text() == "the hidden code ran"


@pytest.mark.parametrize(
    "name",
    [
        PYC_NAME,
        "backend/__pycache__/README.md",  # the folder alone: Python reads from it
        "backend/helpers.pyc",  # sourceless: imported as ``helpers`` with no .py at all
        "backend/helpers.pyo",
        "migrations/versions/1.1.0/step.pyc",
        NATIVE_NAME,
        "backend/_speedups.so",
        "backend/speedups.pyd",
        "backend/lib/libthing.dylib",
        "frontend/dist/thing.dll",
        "backend/Routes.PYC",  # case does not matter on every filesystem
    ],
)
def test_the_package_reader_refuses_compiled_and_native_code(tmp_path: Path, name: str) -> None:
    package = pack_into(make_plugin(tmp_path / "src", "sneaky"), tmp_path / "dist")
    with_files(package, {name: b"\x7fELF binary the reviewer cannot read"})
    with pytest.raises(PackageError) as refused:
        inspect_package(package)
    assert len(refused.value.problems) == 1
    problem = refused.value.problems[0]
    assert problem.startswith(f"{name!r}: ") and "compiled or native code" in problem


@SQLITE
def test_install_refuses_the_hidden_pyc_and_changes_nothing(
    installer: Installer, tmp_path: Path
) -> None:
    marker = tmp_path / "ran"
    attack_package(tmp_path, installer.settings.plugin_local_dir, marker)
    before = snapshot(installer.settings, installer.engine)
    with pytest.raises(PackageError) as refused:
        installer.install("sneaky", installed_by="alice")
    assert PYC_NAME in str(refused.value) and "compiled or native code" in str(refused.value)
    assert not marker.exists()
    assert snapshot(installer.settings, installer.engine) == before
    assert not list(installer.settings.addons_dir.rglob("*sneaky*"))


def test_validate_refuses_the_hidden_pyc_without_running_it(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    package = attack_package(tmp_path, tmp_path / "dist", marker)
    env = os.environ | {
        "PLUGDOCK_HOME": str(tmp_path / "instance"),
        "PLUGIN_LOCAL_DIR": str(tmp_path / "modules"),
    }
    result = subprocess.run(
        [sys.executable, "-m", "plugdock", "validate", str(package)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1, result.stdout
    assert PYC_NAME in result.stderr and "compiled or native code" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not marker.exists()


def test_the_plugin_server_refuses_the_upload_and_signing_refuses_the_package(
    tmp_path: Path,
) -> None:
    marker = tmp_path / "ran"
    package = attack_package(tmp_path, tmp_path / "dist", marker)
    storage = Storage(tmp_path / "data").ensure()
    alice = storage.create_token("alice")
    with TestClient(create_app(storage)) as client:  # review required: the default
        answer = client.post(
            "/api/v1/plugins",
            files={"file": (package.name, package.read_bytes(), "application/zip")},
            headers={"Authorization": f"Bearer {alice}"},
        )
        assert answer.status_code == 422, answer.text
        assert PYC_NAME in detail(answer)
        assert "sneaky" not in client.get("/manifest.json").json()["plugins"]
    assert storage.versions() == []  # not even pending review
    # A signer never vouches for it either.
    private, _public = generate_keypair(tmp_path / "keys", "alice")
    with pytest.raises(PackageError, match="compiled or native code"):
        sign_package(package, load_private_key(private), "alice")
    assert not marker.exists()


@pytest.mark.server  # a panel on loopback
@SQLITE
def test_the_panels_upload_answers_422_and_installs_nothing(
    tmp_path: Path, database_url: str
) -> None:
    marker = tmp_path / "ran"
    package = attack_package(tmp_path, tmp_path / "uploads", marker)
    panel = start_panel(tmp_path, database_url)
    try:
        admin = panel.client(panel.login())
        answer = admin.post(
            "/api/v1/marketplace/upload",
            files={"file": (package.name, package.read_bytes(), "application/zip")},
        )
        assert answer.status_code == 422, answer.text
        assert PYC_NAME in detail(answer)
        installed = admin.get("/api/v1/marketplace/installed")
        assert [p["id"] for p in installed.json()] == []
    finally:
        panel.stop()
    assert not marker.exists()


# --------------------------------------------------------------- planted after install


def _installed_backend(installer: Installer, tmp_path: Path) -> Path:
    pack_into(make_plugin(tmp_path / "src", "sneaky"), installer.settings.plugin_local_dir)
    installer.install("sneaky", installed_by="alice")
    backend = installer.settings.addons_dir / "backend" / "sneaky"
    assert (backend / "routes.py").is_file()
    return backend


def _ping(backend_dir: Path) -> object:
    loaded = load_backend("sneaky", backend_dir, uuid.uuid4().hex[:12])
    try:
        assert loaded.router is not None
        route = next(r for r in loaded.router.routes if getattr(r, "path", "").endswith("/ping"))
        return route.endpoint()  # type: ignore[attr-defined]
    finally:
        unload(loaded)


@SQLITE
def test_a_pyc_planted_beside_installed_source_is_never_loaded(
    installer: Installer, tmp_path: Path
) -> None:
    backend = _installed_backend(installer, tmp_path)
    marker = tmp_path / "ran"
    planted = backend / PYC_NAME.removeprefix("backend/")
    planted.parent.mkdir(exist_ok=True)
    planted.write_bytes(evil_pyc(tmp_path, marker, "sneaky"))
    assert _ping(backend) == {"pong": True}  # the source's answer, not the hidden one
    assert not marker.exists()


@SQLITE
def test_a_native_library_beside_installed_source_is_never_loaded(
    installer: Installer, tmp_path: Path
) -> None:
    backend = _installed_backend(installer, tmp_path)
    # CPython tries an extension module before the source of the same name.
    (backend / NATIVE_NAME.removeprefix("backend/")).write_bytes(b"\x7fELF not a library")
    assert _ping(backend) == {"pong": True}


def test_a_sourceless_pyc_is_never_imported(tmp_path: Path) -> None:
    """``helpers.pyc`` with no ``helpers.py``: the default machinery imports it as ``helpers``."""
    backend = (
        make_plugin(
            tmp_path,
            "sneaky",
            extra_files={
                "backend/__init__.py": "from .routes import router\nfrom . import helpers\n"
            },
        )
        / "backend"
    )
    marker = tmp_path / "ran"
    (backend / "helpers.pyc").write_bytes(evil_pyc(tmp_path, marker, "sneaky"))
    with pytest.raises(PackageError, match="helpers"):
        _ping(backend)
    assert not marker.exists()


def test_loading_writes_no_bytecode_into_the_plugin_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "dont_write_bytecode", False)  # as a panel runs (the tests set -B)
    backend = make_plugin(tmp_path, "sneaky") / "backend"
    assert _ping(backend) == {"pong": True}
    assert not list(backend.rglob("__pycache__"))


def test_subpackages_and_namespace_folders_still_import_from_source(tmp_path: Path) -> None:
    backend = (
        make_plugin(
            tmp_path,
            "sneaky",
            extra_files={
                "backend/__init__.py": "from .routes import router\nfrom .lib import answer\n",
                "backend/lib/__init__.py": "from .inner import answer\n",
                "backend/lib/inner.py": "from ..plain.deep import answer\n",
                "backend/plain/deep.py": "answer = 42\n",  # no __init__.py: a namespace package
            },
        )
        / "backend"
    )
    loaded = load_backend("sneaky", backend, uuid.uuid4().hex[:12])
    try:
        assert loaded.module.answer == 42
        with pytest.raises(ModuleNotFoundError):
            __import__(f"{loaded.module_name}.missing")
    finally:
        unload(loaded)
