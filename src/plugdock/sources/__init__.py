"""Where plugin packages come from: a local folder or a remote plugin server."""

from __future__ import annotations

from typing import TYPE_CHECKING

from plugdock.sources.base import (
    BrokenPackage,
    Catalog,
    CatalogEntry,
    FetchedPackage,
    Source,
    parse_requirement,
)
from plugdock.sources.local import LocalSource

if TYPE_CHECKING:
    from plugdock.config import Settings

__all__ = [
    "BrokenPackage",
    "Catalog",
    "CatalogEntry",
    "FetchedPackage",
    "LocalSource",
    "Source",
    "make_source",
    "parse_requirement",
]


def make_source(settings: Settings) -> Source:
    """The source the settings select (``PLUGIN_SOURCE``)."""
    from plugdock.config import PluginSource
    from plugdock.errors import PlugdockError

    if settings.plugin_source is PluginSource.LOCAL:
        return LocalSource(settings.plugin_local_dir)
    if settings.plugin_source is PluginSource.REMOTE:
        from plugdock.sources.remote import RemoteSource

        return RemoteSource(settings)
    raise PlugdockError(f"unknown PLUGIN_SOURCE {settings.plugin_source!r}")
