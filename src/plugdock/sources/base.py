"""The interface every package source offers: a catalog, and fetching one version."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from plugdock.errors import NotFoundError, PlugdockError
from plugdock.package.metadata import PLUGIN_ID_PATTERN, PluginMetadata, parse_version

_ID = re.compile(PLUGIN_ID_PATTERN)


@dataclass(frozen=True)
class CatalogEntry:
    """One plugin a source offers, described by its newest version's metadata."""

    id: str
    name: str
    description: str
    author: str
    category: str
    price: float
    icon: str
    versions: tuple[str, ...]  # newest first, by semver
    permissions: tuple[str, ...] = ()  # what the newest version asks for (normal forms)

    @property
    def latest(self) -> str:
        return self.versions[0]


@dataclass(frozen=True)
class BrokenPackage:
    location: str
    error: str


@dataclass(frozen=True)
class Catalog:
    plugins: dict[str, CatalogEntry] = field(default_factory=dict)
    broken: tuple[BrokenPackage, ...] = ()

    def resolve(self, plugin_id: str, version: str | None = None) -> str:
        """The concrete version for ``id`` and an optional version (None or 'latest' = newest)."""
        entry = self.plugins.get(plugin_id)
        if entry is None:
            raise NotFoundError(f"plugin {plugin_id!r} is not in the catalog")
        return resolve_version(plugin_id, version, entry.versions)


@dataclass(frozen=True)
class FetchedPackage:
    """A package file on local disk, ready for the installer to verify and extract."""

    path: Path
    plugin_id: str
    version: str
    #: The SHA-256 the source vouches for (remote: the signed index); the installer
    #: refuses a package whose hash differs. None when the source has no such claim.
    sha256: str | None = None
    #: The fingerprint of the key the source's signed index says signed the package (the
    #: remote source has checked the package names it). None when there is no such record.
    signer_key_id: str | None = None
    #: Its metadata.json as the source already read it (the local folder's scan), for
    #: planning only: an install reads the metadata again from the verified package.
    metadata: PluginMetadata | None = None


class Source(Protocol):
    """Where packages come from. The installer only ever talks to this."""

    def catalog(self) -> Catalog: ...

    def fetch(self, plugin_id: str, version: str | None = None) -> FetchedPackage: ...


def parse_requirement(text: str) -> tuple[str, str | None]:
    """Split ``id`` or ``id@version`` and check both parts."""
    plugin_id, at, version = text.partition("@")
    if not _ID.fullmatch(plugin_id):
        raise PlugdockError(f"{plugin_id!r} is not a valid plugin id")
    if at and not version:
        raise PlugdockError(f"{text!r}: a version must follow '@'")
    if means_newest(version):
        return plugin_id, None
    try:
        parse_version(version)
    except ValueError as exc:
        raise PlugdockError(str(exc)) from None
    return plugin_id, version


def newest_first(versions: Iterable[str]) -> tuple[str, ...]:
    """Sort semantic versions newest first (1.10.0 before 1.9.0)."""
    return tuple(sorted(set(versions), key=parse_version, reverse=True))


#: The version word that asks for the newest version on offer (``id@latest``, ``/latest``).
LATEST = "latest"


def means_newest(version: str | None) -> bool:
    """Whether ``version`` asks for no particular version: None, "" or ``latest``."""
    return version in (None, "", LATEST)


def resolve_version(plugin_id: str, version: str | None, offered: Iterable[str]) -> str:
    """The concrete version ``version`` names among ``offered`` (at least one).

    None or ``latest`` is the newest by semver; a version not on offer raises NotFoundError
    naming the ones that are. Every source and the plugin server resolve through this.
    """
    versions = newest_first(offered)
    if version is None or means_newest(version):
        return versions[0]
    if version not in versions:
        known = ", ".join(versions)
        raise NotFoundError(f"{plugin_id} has no version {version} (available: {known})")
    return version
