"""``plugdock validate``: every check the installer runs, without installing anything."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from plugdock.compat import check_compatibility, check_contents
from plugdock.errors import PackageError
from plugdock.migrations import load_migration
from plugdock.package.archive import Limits, PackageInfo, extract_package
from plugdock.package.pack import pack
from plugdock.upgrade_steps import check_steps, check_upgrade_schema, load_upgrade_steps

DIALECTS = ("sqlite", "postgresql", "mysql")


@dataclass(frozen=True)
class ValidationReport:
    info: PackageInfo
    tables: tuple[str, ...]
    dialects: tuple[str, ...]
    steps: tuple[str, ...] = ()  # versions with an upgrade step (migrations/versions/)
    upgraded_from: str | None = None  # the older version checked with --upgrade-from


def validate_package(
    path: Path, limits: Limits, *, upgrade_from: Path | None = None
) -> ValidationReport:
    """Check a package zip, or a plugin folder as it would be packed; raises PackageError.

    With ``upgrade_from`` (an older package of the same plugin, zip or folder), also check
    that its tables plus this package's upgrade steps give the schema this package installs.
    """
    with tempfile.TemporaryDirectory(prefix="plugdock-validate-") as scratch:
        scratch_dir = Path(scratch)
        info, unpacked = _open(path, scratch_dir, "new", limits)
        check_contents(info.metadata, unpacked)
        check_compatibility(info.metadata.model_copy(update={"dependencies": {}}), {})
        tables: tuple[str, ...] = ()
        for dialect in DIALECTS:
            tables = load_migration(unpacked / "migrations", dialect).tables
        steps = check_steps(unpacked / "migrations", info.metadata.version)
        upgraded_from = None
        if upgrade_from is not None:
            upgraded_from = _check_upgrade(upgrade_from, info, unpacked, scratch_dir, limits)
        return ValidationReport(
            info=info,
            tables=tables,
            dialects=DIALECTS,
            steps=tuple(steps),
            upgraded_from=upgraded_from,
        )


def _open(path: Path, scratch: Path, name: str, limits: Limits) -> tuple[PackageInfo, Path]:
    if path.is_dir():
        path = pack(path, scratch / f"packed-{name}")
    unpacked = scratch / name
    return extract_package(path, unpacked, limits), unpacked


def _check_upgrade(
    older: Path, info: PackageInfo, unpacked: Path, scratch: Path, limits: Limits
) -> str:
    old_info, old_unpacked = _open(older, scratch, "old", limits)
    old, new = old_info.metadata, info.metadata
    if old.id != new.id:
        raise PackageError(f"--upgrade-from is a package of {old.id}, not of {new.id}")
    if old.semver >= new.semver:
        raise PackageError(f"--upgrade-from is version {old.version}, not older than {new.version}")
    for dialect in DIALECTS:
        owned = load_migration(old_unpacked / "migrations", dialect).tables
        load_upgrade_steps(
            unpacked / "migrations",
            dialect,
            from_version=old.version,
            to_version=new.version,
            owned_tables=owned,
        )
    check_upgrade_schema(
        old_unpacked / "migrations", unpacked / "migrations", old.version, new.version
    )
    return old.version
