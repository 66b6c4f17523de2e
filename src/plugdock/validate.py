"""``plugdock validate``: every check the installer runs, without installing anything."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from plugdock.compat import check_compatibility, check_contents
from plugdock.migrations import load_migration
from plugdock.package.archive import Limits, PackageInfo, extract_package
from plugdock.package.pack import pack

DIALECTS = ("sqlite", "postgresql", "mysql")


@dataclass(frozen=True)
class ValidationReport:
    info: PackageInfo
    tables: tuple[str, ...]
    dialects: tuple[str, ...]


def validate_package(path: Path, limits: Limits) -> ValidationReport:
    """Check a package zip, or a plugin folder as it would be packed; raises PackageError."""
    with tempfile.TemporaryDirectory(prefix="plugdock-validate-") as scratch:
        scratch_dir = Path(scratch)
        if path.is_dir():
            path = pack(path, scratch_dir / "packed")
        unpacked = scratch_dir / "package"
        info = extract_package(path, unpacked, limits)
        check_contents(info.metadata, unpacked)
        check_compatibility(info.metadata.model_copy(update={"dependencies": {}}), {})
        tables: tuple[str, ...] = ()
        for dialect in DIALECTS:
            tables = load_migration(unpacked / "migrations", dialect).tables
        return ValidationReport(info=info, tables=tables, dialects=DIALECTS)
