"""The instance an operation works in: settings, database, package source and code folders."""

from __future__ import annotations

import logging
from pathlib import Path

from sqlalchemy import Engine

from plugdock.config import Settings
from plugdock.core.db import connect_read, make_engine
from plugdock.core.fsutil import remove_tree, write_json_atomic
from plugdock.instance.journal import clear_journal
from plugdock.instance.registry import (
    Installation,
    get_installation,
    list_installations,
    write_registry,
)
from plugdock.package.archive import Limits
from plugdock.package.layout import METADATA_FILE
from plugdock.package.metadata import PluginMetadata, parse_metadata
from plugdock.sources import Source, make_source

log = logging.getLogger("plugdock.installer")


class Workspace:
    """One instance (``PLUGDOCK_HOME`` and its database), as every operation sees it."""

    def __init__(
        self, settings: Settings, *, engine: Engine | None = None, source: Source | None = None
    ) -> None:
        self.settings = settings
        self.engine = engine or make_engine(settings.db_url)
        self._source = source
        self.limits = Limits.from_settings(settings)

    @property
    def source(self) -> Source:
        if self._source is None:
            self._source = make_source(self.settings)
        return self._source

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def code_path(self, kind: str, plugin_id: str) -> Path:
        return self.settings.addons_dir / kind / plugin_id

    def installed(self) -> list[Installation]:
        with connect_read(self.engine) as conn:  # never waits for an operation's write lock
            return list_installations(conn)

    def get(self, plugin_id: str) -> Installation | None:
        with connect_read(self.engine) as conn:
            return get_installation(conn, plugin_id)

    def installed_metadata(
        self, installations: list[Installation] | None = None
    ) -> dict[str, PluginMetadata]:
        """The metadata.json of every installed plugin, as installed (from its manifest folder)."""
        found = {}
        for installation in self.installed() if installations is None else installations:
            path = self.settings.manifest_dir / installation.plugin_id / METADATA_FILE
            if path.is_file():
                found[installation.plugin_id] = parse_metadata(path.read_bytes(), source=str(path))
        return found

    def rewrite_registry(self) -> None:
        """Make addon_registry.json match the database rows again."""
        write_registry(self.settings.registry_path, self.installed())

    def announce(self, generation: int) -> None:
        """Tell panel workers on this machine to look at the database now (a hint only)."""
        try:
            write_json_atomic(
                self.settings.generation_hint_path, {"generation": generation}, durable=False
            )
        except OSError as exc:  # workers still notice on their timer
            log.warning("could not write %s: %s", self.settings.generation_hint_path, exc)

    def finish(self, staging: Path) -> None:
        """The operation is over: forget its journal and its private folder."""
        clear_journal(self.settings.journal_path)
        try:
            remove_tree(staging)
        except OSError as exc:  # the operation is done; a stray folder is only clutter
            log.warning("could not remove %s: %s", staging, exc)

    def remove_stale_staging(self) -> int:
        """Remove what is in ``staging/``; call with the operation lock held. Says how many.

        Every folder there is made under the lock (operations, ``materialize``, repairs), so
        one found by the lock's new holder belongs to a process that died, possibly before
        its journal named the folder.
        """
        if not self.settings.staging_dir.is_dir():
            return 0
        leftovers = list(self.settings.staging_dir.iterdir())
        for leftover in leftovers:
            remove_tree(leftover)
        return len(leftovers)
