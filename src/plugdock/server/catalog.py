"""The plugin server's catalog, ``DATA/catalog.json``, and what hosts and reviewers see of it.

::

    {"<plugin id>": {"owner": "<publisher>", "versions": {"<version>": <record>}}}

A record says what was published (sha256, size, signer, summary, who and when) and, with
review on, its ``status``: ``pending`` (its number is taken, but hosts do not see it),
``approved`` or ``rejected`` (never listed). Records without a status were published
with review off and are listed.

:class:`CatalogFile` reads the file (cached until it changes) and replaces it whole; the
storage (:mod:`plugdock.server.storage`) decides what to write, under its lock. The views:
a version's record (``latest``: the highest listed), the public ``/manifest.json``, every
version for the review queue, and a plugin's last listed version.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from plugdock.core.fsutil import write_json_atomic
from plugdock.package.metadata import parse_version
from plugdock.sources.base import LATEST, newest_first, resolve_version

PENDING, APPROVED, REJECTED = "pending", "approved", "rejected"


def listed(record: dict[str, Any]) -> bool:
    """Whether hosts may see this version: approved, or published with review off."""
    return record.get("status") in (None, APPROVED)


def now() -> str:
    """The time as records hold it (UTC, whole seconds, ISO 8601)."""
    return datetime.now(UTC).replace(microsecond=0).isoformat()


class CatalogFile:
    """``catalog.json``: read with a cache, written whole (callers hold the storage lock)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._cache: tuple[int, dict[str, Any]] | None = None

    def read(self, *, fresh: bool = False) -> dict[str, Any]:
        """``{plugin id: {"owner", "versions": {version: record}}}`` (cached until it changes).

        ``fresh=True`` always reads the file: under the lock a decision (ownership, immutable
        versions) must not rest on a cache a coarse file timestamp could leave stale.
        """
        try:
            mtime = self.path.stat().st_mtime_ns
        except FileNotFoundError:
            return {}
        if fresh or self._cache is None or self._cache[0] != mtime:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            self._cache = (mtime, data)
        return self._cache[1]

    def write(self, catalog: dict[str, Any]) -> None:
        """Replace the file with ``catalog`` (atomically)."""
        write_json_atomic(self.path, catalog)
        self._cache = None

    def record(
        self, plugin_id: str, version: str, *, unlisted: bool = False
    ) -> dict[str, Any] | None:
        """A listed version's record (``latest``: the highest listed); ``unlisted=True`` also
        returns pending and rejected versions (for reviewers and their publisher)."""
        entry = self.read().get(plugin_id)
        if entry is None:
            return None
        if version == LATEST:
            versions = [v for v, r in entry["versions"].items() if listed(r)]
            if not versions:
                return None
            version = resolve_version(plugin_id, LATEST, versions)
        record = entry["versions"].get(version)
        if record is None or (not unlisted and not listed(record)):
            return None
        return record  # type: ignore[no-any-return]

    def manifest(self) -> dict[str, Any]:
        """The public catalog served as ``/manifest.json``."""
        plugins: dict[str, Any] = {}
        for plugin_id, entry in sorted(self.read().items()):
            versions = newest_first([v for v, r in entry["versions"].items() if listed(r)])
            if not versions:
                continue
            latest = entry["versions"][versions[0]]
            plugins[plugin_id] = {
                **latest["summary"],
                "id": plugin_id,
                "latest": versions[0],
                "versions": {v: entry["versions"][v] for v in versions},
            }
        return {"format": "plugdock-manifest-v1", "generated": now(), "plugins": plugins}

    def versions(
        self, *, status: str | None = None, publisher: str | None = None
    ) -> list[dict[str, Any]]:
        """Every version (``id`` added), newest published first, filtered by status/publisher."""
        found = []
        for plugin_id, entry in self.read().items():
            for record in entry["versions"].values():
                if status is not None and record.get("status", APPROVED) != status:
                    continue
                if publisher is not None and record.get("publisher") != publisher:
                    continue
                found.append({"id": plugin_id, **record})
        found.sort(key=lambda r: (str(r.get("published", "")), r["id"]), reverse=True)
        return found

    def last_approved(self, plugin_id: str, *, below: str | None = None) -> str | None:
        """The highest listed version of ``plugin_id`` (below ``below`` when one is)."""
        entry = self.read().get(plugin_id)
        if entry is None:
            return None
        versions = newest_first([v for v, r in entry["versions"].items() if listed(r)])
        if below is not None:
            lower = tuple(v for v in versions if parse_version(v) < parse_version(below))
            versions = lower or versions
        return versions[0] if versions else None
