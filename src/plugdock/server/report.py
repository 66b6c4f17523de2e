"""The automated review report of one uploaded version: what a reviewer reads before deciding.

Built on upload when review is on, stored as ``reviews/<id>/<version>.json``:

* ``checks``   every package check a host runs (archive and checksums, metadata, contents,
  compatibility, SQL rules on SQLite, PostgreSQL and MariaDB, upgrade steps) passed, since
  a failing package is refused outright; for a new version, whether the upgrade from the
  last approved one checks out (a finding, not a refusal);
* ``declared`` the permissions, routes, tables, models and dependencies it asks for;
* ``scan``     bandit's findings on its Python code (:mod:`plugdock.server.scan`);
* ``diff``     against the last approved version: files added/removed/changed, the SQL
  (unified diff), permissions, tables, routes and dependencies added or removed.

Everything here comes from the package, so it is data to show, escaped, never markup.
"""

from __future__ import annotations

import difflib
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from plugdock.checks.validate import ValidationReport, validate_package
from plugdock.errors import PackageError
from plugdock.package.archive import Limits, PackageInfo, extract_package
from plugdock.server.scan import scan_python
from plugdock.trust.signing import read_signature

FORMAT = "plugdock-review-report-v1"
MAX_SQL_DIFF = 64 * 1024
HOST_CHECKS = (
    "archive: paths, sizes, file count, checksums of every file",
    "metadata.json: schema, id, semver version",
    "contents: declared routes, pages and models match the files",
    "compatibility: required core version",
    "SQL rules on sqlite, postgresql and mysql: only the plugin's own tables",
    "upgrade steps: well-formed, versions in order",
)


def build_report(
    zip_path: Path,
    validation: ValidationReport,
    limits: Limits,
    *,
    previous: tuple[str, Path] | None = None,
    scan_timeout: float = 60.0,
) -> dict[str, Any]:
    """The report of the package at ``zip_path`` (already validated: ``validation``).

    ``previous`` is (version, zip path) of the last approved version of the same plugin.
    """
    info = validation.info
    meta = info.metadata
    check = read_signature(info)
    with tempfile.TemporaryDirectory(prefix="plugdock-report-") as scratch:
        new_dir = Path(scratch) / "new"
        extract_package(zip_path, new_dir, limits)
        declared = _declared(info, validation.tables, validation.steps)
        report: dict[str, Any] = {
            "format": FORMAT,
            "generated": datetime.now(UTC).replace(microsecond=0).isoformat(),
            "plugin": meta.id,
            "version": meta.version,
            "name": meta.name,
            "description": meta.description,
            "author": meta.author,
            "sha256": info.sha256,
            "size": info.size,
            "signature": {
                "status": check.status,
                "signer": check.signer if check.status == "valid" else None,
                "key_id": check.key_id if check.status == "valid" else None,
            },
            "checks": {"passed": list(HOST_CHECKS), "dialects": list(validation.dialects)},
            "declared": declared,
            "files": [
                {"path": path, "sha256": digest, "size": _size(new_dir / path)}
                for path, digest in sorted(info.files.items())
            ],
            "scan": scan_python(new_dir, timeout=scan_timeout),  # backend and upgrade steps
            "diff": None,
        }
        if previous is not None:
            old_version, old_zip = previous
            old_dir = Path(scratch) / "old"
            old_info = extract_package(old_zip, old_dir, limits)
            old_tables = validate_package(old_zip, limits).tables
            report["diff"] = _diff(
                old_version,
                old_info,
                old_dir,
                _declared(old_info, old_tables, ()),
                info,
                new_dir,
                declared,
            )
            report["checks"]["upgrade"] = _upgrade_check(zip_path, old_zip, old_version, limits)
    return report


def _size(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except OSError:
        return None


def _declared(info: PackageInfo, tables: tuple[str, ...], steps: tuple[str, ...]) -> dict[str, Any]:
    meta = info.metadata
    return {
        "permissions": sorted(meta.permissions),
        "backend_routes": list(meta.backend.routes),
        "frontend_routes": list(meta.frontend.routes),
        "models": list(meta.backend.models),
        "tables": sorted(tables),
        "dependencies": dict(sorted(meta.dependencies.items())),
        "requires": meta.requires,
        "health": meta.backend.health,
        "upgrade_steps": list(steps),
    }


def _added_removed(old: list[str], new: list[str]) -> dict[str, list[str]]:
    return {
        "added": sorted(set(new) - set(old)),
        "removed": sorted(set(old) - set(new)),
    }


def _diff(
    old_version: str,
    old_info: PackageInfo,
    old_dir: Path,
    old: dict[str, Any],
    new_info: PackageInfo,
    new_dir: Path,
    new: dict[str, Any],
) -> dict[str, Any]:
    old_files, new_files = old_info.files, new_info.files
    changed = sorted(p for p in set(old_files) & set(new_files) if old_files[p] != new_files[p])
    sql = []
    sql_paths = {p for p in set(old_files) | set(new_files) if p.endswith(".sql")}
    for path in sorted(sql_paths):
        if old_files.get(path) == new_files.get(path):
            continue
        before = _text(old_dir / path) if path in old_files else []
        after = _text(new_dir / path) if path in new_files else []
        lines = list(
            difflib.unified_diff(
                before, after, f"{old_version}/{path}", f"{new_info.metadata.version}/{path}"
            )
        )
        text = "".join(lines)
        sql.append(
            {
                "path": path,
                "status": "added"
                if path not in old_files
                else "removed"
                if path not in new_files
                else "changed",
                "diff": text[:MAX_SQL_DIFF],
                "truncated": len(text) > MAX_SQL_DIFF,
            }
        )
    old_deps, new_deps = old["dependencies"], new["dependencies"]
    return {
        "against": old_version,
        "files": {**_added_removed(list(old_files), list(new_files)), "changed": changed},
        "permissions": _added_removed(old["permissions"], new["permissions"]),
        "tables": _added_removed(old["tables"], new["tables"]),
        "backend_routes": _added_removed(old["backend_routes"], new["backend_routes"]),
        "frontend_routes": _added_removed(old["frontend_routes"], new["frontend_routes"]),
        "dependencies": {
            "added": sorted(set(new_deps) - set(old_deps)),
            "removed": sorted(set(old_deps) - set(new_deps)),
            "changed": sorted(
                d for d in set(old_deps) & set(new_deps) if old_deps[d] != new_deps[d]
            ),
        },
        "sql": sql,
    }


def _text(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8", errors="replace").splitlines(keepends=True)


def _upgrade_check(
    new_zip: Path, old_zip: Path, old_version: str, limits: Limits
) -> dict[str, Any]:
    """Whether hosts could upgrade from the last approved version (as ``--upgrade-from``)."""
    try:
        validate_package(new_zip, limits, upgrade_from=old_zip)
    except PackageError as exc:
        return {"from": old_version, "ok": False, "problems": list(exc.problems) or [str(exc)]}
    return {"from": old_version, "ok": True, "problems": []}


__all__ = ["FORMAT", "HOST_CHECKS", "build_report"]
