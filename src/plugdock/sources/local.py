"""The local source: a folder of plugin ZIPs (``PLUGIN_LOCAL_DIR``), for development."""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

from plugdock.errors import NotFoundError, PackageError, PlugdockError
from plugdock.package.layout import METADATA_FILE
from plugdock.package.metadata import PluginMetadata, parse_metadata
from plugdock.sources.base import (
    BrokenPackage,
    Catalog,
    CatalogEntry,
    FetchedPackage,
    newest_first,
)

_MAX_METADATA_BYTES = 256 * 1024


def read_zip_metadata(path: Path) -> PluginMetadata:
    """Read only ``metadata.json`` from a zip, bounded in size (for listing, not installing)."""
    try:
        with zipfile.ZipFile(path) as archive:
            info = archive.getinfo(METADATA_FILE)
            if info.file_size > _MAX_METADATA_BYTES:
                raise PackageError("metadata.json is too large")
            with archive.open(info) as handle:
                raw = handle.read(_MAX_METADATA_BYTES + 1)
    except KeyError:
        raise PackageError("no metadata.json in the package") from None
    except (zipfile.BadZipFile, OSError, RuntimeError) as exc:
        raise PackageError(f"not a readable zip ({exc})") from None
    if len(raw) > _MAX_METADATA_BYTES:
        raise PackageError("metadata.json is too large")
    return parse_metadata(raw, source=path.name)


class LocalSource:
    """Plugins are the ``*.zip`` files in one folder; versions come from their metadata."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        # metadata.json per zip, kept while the file's (mtime, size) stay the same: catalog,
        # fetch and the install planner each scan the folder, and a stat is all a rescan costs.
        self._read: dict[Path, tuple[tuple[int, int], PluginMetadata | PlugdockError]] = {}

    def _scan(
        self,
    ) -> tuple[dict[tuple[str, str], tuple[Path, PluginMetadata]], list[BrokenPackage]]:
        found: dict[tuple[str, str], tuple[Path, PluginMetadata]] = {}
        broken: list[BrokenPackage] = []
        if not self.folder.is_dir():
            return found, broken
        for path in sorted(self.folder.glob("*.zip")):
            meta = self._metadata(path)
            if isinstance(meta, PlugdockError):
                broken.append(BrokenPackage(path.name, str(meta)))
                continue
            key = (meta.id, meta.version)
            if key in found:
                broken.append(
                    BrokenPackage(
                        path.name, f"duplicate of {found[key][0].name} ({meta.id} {meta.version})"
                    )
                )
                continue
            found[key] = (path, meta)
        return found, broken

    def _metadata(self, path: Path) -> PluginMetadata | PlugdockError:
        try:
            stat = path.stat()
        except OSError as exc:
            return PlugdockError(f"cannot read it ({exc})")
        seen = (stat.st_mtime_ns, stat.st_size)
        cached = self._read.get(path)
        if cached is None or cached[0] != seen:
            try:
                cached = (seen, read_zip_metadata(path))
            except PlugdockError as exc:
                cached = (seen, exc)
            self._read[path] = cached
        return cached[1]

    def catalog(self) -> Catalog:
        return self._catalog(*self._scan())

    def _catalog(
        self,
        found: dict[tuple[str, str], tuple[Path, PluginMetadata]],
        broken: list[BrokenPackage],
    ) -> FolderCatalog:
        catalog = _catalog(found, broken)
        return FolderCatalog(catalog.plugins, catalog.broken, folder=self.folder)

    def fetch(self, plugin_id: str, version: str | None = None) -> FetchedPackage:
        found, broken = self._scan()
        resolved = self._catalog(found, broken).resolve(plugin_id, version)
        path, meta = found[(plugin_id, resolved)]
        return FetchedPackage(path=path, plugin_id=plugin_id, version=resolved, metadata=meta)


@dataclass(frozen=True)
class FolderCatalog(Catalog):
    """A local folder's catalog: a plugin it lacks is reported with the folder's path."""

    folder: Path | None = None

    def resolve(self, plugin_id: str, version: str | None = None) -> str:
        if plugin_id not in self.plugins and self.folder is not None:
            # Say where we looked: a wrong or missing folder is the usual cause.
            where = f"{self.folder} (PLUGIN_LOCAL_DIR)"
            raise NotFoundError(
                f"plugin {plugin_id!r} is not in the catalog: no package of it in {where}"
                if self.folder.is_dir()
                else f"plugin {plugin_id!r} is not in the catalog: the folder {where} "
                "does not exist"
            )
        return super().resolve(plugin_id, version)


def _catalog(
    found: dict[tuple[str, str], tuple[Path, PluginMetadata]], broken: list[BrokenPackage]
) -> Catalog:
    by_id: dict[str, list[PluginMetadata]] = {}
    for _path, meta in found.values():
        by_id.setdefault(meta.id, []).append(meta)
    plugins = {}
    for plugin_id, metas in sorted(by_id.items()):
        versions = newest_first([m.version for m in metas])
        newest = next(m for m in metas if m.version == versions[0])
        plugins[plugin_id] = CatalogEntry(
            id=plugin_id,
            name=newest.name,
            description=newest.description,
            author=newest.author,
            category=newest.category,
            price=newest.price,
            icon=newest.icon,
            versions=versions,
            permissions=tuple(newest.permissions),
        )
    return Catalog(plugins=plugins, broken=tuple(broken))
