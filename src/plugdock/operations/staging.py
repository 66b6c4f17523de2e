"""Fetch a package and unpack it into the operation's private folder, verifying every byte.

Nothing outside ``staging/<operation id>/`` is touched here, so a refusal needs no undo
beyond removing that folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from plugdock.checks.compat import check_contents
from plugdock.core.db import connect_read
from plugdock.core.failpoints import failpoint
from plugdock.core.fsutil import make_private_dir
from plugdock.errors import PackageError, PlugdockError
from plugdock.operations.runner import Steps
from plugdock.operations.workspace import Workspace
from plugdock.package.archive import PackageInfo, extract_package
from plugdock.package.metadata import PluginMetadata
from plugdock.sources import parse_requirement
from plugdock.trust.binding import check_signer
from plugdock.trust.store import SignatureVerdict
from plugdock.trust.store import enforce as enforce_signature_policy


@dataclass(frozen=True)
class StagedPackage:
    """A verified package, unpacked in ``staging/<operation id>/package``."""

    staging: Path
    info: PackageInfo
    verdict: SignatureVerdict
    package: Path  # the zip it came from: its bytes go to the package store at commit

    @property
    def unpacked(self) -> Path:
        return self.staging / "package"

    @property
    def meta(self) -> PluginMetadata:
        return self.info.metadata


def fetch(
    workspace: Workspace, requirement: str | Path
) -> tuple[Path, str | None, str | None, str | None]:
    """The package file, the wanted id and version, and the sha256 the source vouches for."""
    if isinstance(requirement, Path):  # a string is always an id: never a path from a request
        if not requirement.is_file():
            raise PlugdockError(f"no such package file: {requirement}")
        return requirement, None, None, None
    plugin_id, version = parse_requirement(requirement)
    fetched = workspace.source.fetch(plugin_id, version)
    return fetched.path, plugin_id, fetched.version, fetched.sha256


def stage(
    workspace: Workspace, requirement: str | Path, steps: Steps, staging: Path
) -> StagedPackage:
    """fetch → extract → validate (source's sha256, signature policy, the wanted id/version)."""
    with steps.step("fetch"):
        package_path, wanted_id, wanted_version, wanted_sha256 = fetch(workspace, requirement)
    with steps.step("extract"):
        make_private_dir(staging)
        failpoint(f"{steps.operation}.staging_created")  # the folder exists; no journal yet
        info = extract_package(package_path, staging / "package", workspace.limits)
    with steps.step("validate"):
        if wanted_sha256 is not None and info.sha256 != wanted_sha256:
            raise PackageError(
                f"the package's sha256 {info.sha256} is not the {wanted_sha256} its "
                "source vouches for"
            )
        verdict = enforce_signature_policy(info, workspace.settings)
        meta = info.metadata
        with connect_read(workspace.engine) as conn:  # before any of the package's code runs
            check_signer(conn, meta.id, verdict.key_id)
        if wanted_id and meta.id != wanted_id:
            raise PackageError(f"the package holds plugin {meta.id!r}, not {wanted_id!r}")
        if wanted_version and meta.version != wanted_version:
            raise PackageError(f"the package holds version {meta.version}, not {wanted_version}")
        check_contents(meta, staging / "package")
    return StagedPackage(staging, info, verdict, package_path)
