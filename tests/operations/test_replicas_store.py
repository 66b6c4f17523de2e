"""The package store and a replica's fetch, in-process on all three databases.

A second instance folder on the same database stands for another machine: it has no
source, only what the store gives it. Attack cases: bytes changed, a chunk gone, and a
different (well-formed) package put in the row's place.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from sqlalchemy import delete, func, insert, select, update

from plugdock.core.db import addon_installations, plugin_package_chunks, plugin_packages
from plugdock.installer import Installer
from plugdock.instance.package_store import CHUNK_BYTES
from plugdock.operations import codefiles
from plugdock.operations.materialize import code_is_current, sync_code
from plugdock.operations.workspace import Workspace
from support import instance_settings, make_plugin, pack_into


def other_machine(installer: Installer, tmp_path: Path) -> Workspace:
    """Another instance folder on the same database, with an empty source."""
    settings = instance_settings(tmp_path / "other", installer.settings.db_url)
    return Workspace(settings, engine=installer.engine)


def stored(installer: Installer) -> dict[str, tuple[int, int]]:
    with installer.engine.connect() as conn:
        rows = conn.execute(select(plugin_packages)).all()
        chunks = conn.execute(select(func.count()).select_from(plugin_package_chunks)).scalar()
    assert chunks == sum(r.chunks for r in rows)
    return {r.sha256: (r.size, r.chunks) for r in rows}


def big_plugin(tmp_path: Path, version: str = "1.0.0") -> Path:
    """A package over one chunk: 3 MiB of random hex in its frontend (~1.5 MiB zipped)."""
    blob = os.urandom(3 * CHUNK_BYTES // 2).hex()
    folder = make_plugin(
        tmp_path / f"src-{version}", "bulky", version, extra_files={"frontend/blob.txt": blob}
    )
    return pack_into(folder, tmp_path / "modules")


def test_packages_are_stored_chunked_fetched_elsewhere_and_swept(
    installer: Installer, tmp_path: Path
) -> None:
    package = big_plugin(tmp_path)
    result = installer.install("bulky")
    sha = hashlib.sha256(package.read_bytes()).hexdigest()
    assert result.package_sha256 == sha
    size = package.stat().st_size
    assert size > CHUNK_BYTES
    assert stored(installer) == {sha: (size, -(-size // CHUNK_BYTES))}

    there = other_machine(installer, tmp_path)
    assert sync_code(there) == {}
    row = there.get("bulky")
    assert row is not None and code_is_current(there, row)
    for kind in ("backend", "frontend", "migrations"):  # byte for byte what A installed
        for path in installer.workspace.code_path(kind, "bulky").rglob("*"):
            if path.is_file():
                relative = path.relative_to(installer.workspace.code_path(kind, "bulky"))
                assert (there.code_path(kind, "bulky") / relative).read_bytes() == (
                    path.read_bytes()
                )
    assert list(there.settings.staging_dir.iterdir()) == []

    big_plugin(tmp_path, "1.1.0")
    upgraded = installer.upgrade("bulky")
    assert set(stored(installer)) == {upgraded.package_sha256}  # 1.0.0's package went
    assert sync_code(there) == {}
    assert codefiles.local_package(there.settings.manifest_dir, "bulky") == (
        upgraded.package_sha256
    )

    installer.uninstall("bulky")
    assert stored(installer) == {}
    assert sync_code(there) == {}
    assert codefiles.present_kinds(there, "bulky") == []


def _install_and_tamper(installer: Installer, tmp_path: Path, how: str) -> Workspace:
    pack_into(make_plugin(tmp_path / "src", "notes"), installer.settings.plugin_local_dir)
    installer.install("notes")
    row = installer.get("notes")
    assert row is not None
    with installer.engine.begin() as conn:
        if how == "flip":
            data = bytearray(conn.execute(select(plugin_package_chunks.c.data)).scalar_one())
            data[10] ^= 0x01
            conn.execute(update(plugin_package_chunks).values(data=bytes(data)))
        elif how == "drop_chunk":
            conn.execute(delete(plugin_package_chunks))
        elif how == "drop_package":
            conn.execute(delete(plugin_package_chunks))
            conn.execute(delete(plugin_packages))
        elif how == "other_plugin":
            # Someone with write access puts a well-formed package of another plugin in the
            # row's place, sha256 and all: the ids must still agree.
            evil = pack_into(make_plugin(tmp_path / "evil", "evil"), tmp_path / "evil-zip")
            evil_sha = hashlib.sha256(evil.read_bytes()).hexdigest()
            conn.execute(delete(plugin_package_chunks))
            conn.execute(delete(plugin_packages))
            conn.execute(
                insert(plugin_packages).values(
                    sha256=evil_sha, size=evil.stat().st_size, chunks=1, stored_at=row.installed_at
                )
            )
            conn.execute(
                insert(plugin_package_chunks).values(sha256=evil_sha, seq=0, data=evil.read_bytes())
            )
            conn.execute(update(addon_installations).values(package_sha256=evil_sha))
    return other_machine(installer, tmp_path)


@pytest.mark.parametrize(
    ("how", "reason"),
    [
        ("flip", "corrupt"),
        ("drop_chunk", "incomplete"),
        ("drop_package", "not in the database"),
        ("other_plugin", "holds evil 1.0.0, not notes 1.0.0"),
    ],
)
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_bad_stored_package_is_refused_and_nothing_lands(
    installer: Installer, tmp_path: Path, how: str, reason: str
) -> None:
    there = _install_and_tamper(installer, tmp_path, how)
    failures = sync_code(there)
    assert reason in failures["notes"]
    assert codefiles.present_kinds(there, "notes") == []
    assert list(there.settings.staging_dir.iterdir()) == []
    # The replica tries again later and refuses again: still nothing served from it.
    assert reason in sync_code(there)["notes"]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_changed_source_file_is_not_stored(installer: Installer, tmp_path: Path) -> None:
    """The bytes stored are the bytes verified: a zip that changes between the check and
    the commit fails the install instead of storing something else."""
    from plugdock.errors import PackageError
    from plugdock.instance.package_store import store_package

    package = pack_into(make_plugin(tmp_path / "src", "notes"), tmp_path / "m")
    with installer.engine.begin() as conn, pytest.raises(PackageError, match="changed"):
        store_package(conn, package, "0" * 64)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_doctor_repairs_a_replica_from_the_database(installer: Installer, tmp_path: Path) -> None:
    """A replica has no source: a damaged code folder is put back from the stored package."""
    from plugdock.installer import doctor

    pack_into(make_plugin(tmp_path / "src", "notes"), installer.settings.plugin_local_dir)
    installer.install("notes")
    there = Installer(instance_settings(tmp_path / "other", installer.settings.db_url))
    try:
        assert sync_code(there.workspace) == {}
        assert doctor.diagnose(there) == []
        (there.workspace.code_path("backend", "notes") / "routes.py").write_text("import os\n")
        assert [f.problem for f in doctor.diagnose(there)] == [
            "notes: installed file backend/routes.py was modified"
        ]
        actions = doctor.repair(there)
        assert "restored the code of notes 1.0.0 from the database" in actions
        assert doctor.diagnose(there) == []
    finally:
        there.engine.dispose()
