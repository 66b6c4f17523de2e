"""The plugin server's audit trail: one JSON line per publish, approval and rejection.

``DATA/audit.jsonl`` is append-only; each line says who did what, when, to which bytes::

    {"at": "2026-11-26T13:40:02+00:00", "action": "approve", "who": "carol",
     "role": "reviewer", "plugin": "notes", "version": "1.1.0", "sha256": "9f…"}

Lines are written under the storage lock and flushed to disk before the action answers,
so a version listed in the index always has its approval on record.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ACTIONS = ("publish", "approve", "reject")


class AuditTrail:
    """Appends and reads ``audit.jsonl`` (callers hold the storage lock while appending)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def append(
        self,
        action: str,
        *,
        who: str,
        role: str,
        plugin: str,
        version: str,
        sha256: str,
        **extra: Any,
    ) -> dict[str, Any]:
        if action not in ACTIONS:
            raise ValueError(f"unknown audit action {action!r}")
        entry = {
            "at": datetime.now(UTC).replace(microsecond=0).isoformat(),
            "action": action,
            "who": who,
            "role": role,
            "plugin": plugin,
            "version": version,
            "sha256": sha256,
            **extra,
        }
        line = (json.dumps(entry, ensure_ascii=True, sort_keys=False) + "\n").encode()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)
        return entry

    def entries(
        self, plugin: str | None = None, version: str | None = None
    ) -> list[dict[str, Any]]:
        """Every entry, oldest first (optionally of one plugin, or one version of it)."""
        if not self.path.exists():
            return []
        found = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue  # a torn last line after a crash: the rest is still good
            if plugin is not None and entry.get("plugin") != plugin:
                continue
            if version is not None and entry.get("version") != version:
                continue
            found.append(entry)
        return found


__all__ = ["ACTIONS", "AuditTrail"]
