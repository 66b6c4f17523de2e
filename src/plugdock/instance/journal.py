"""The journal: a record of the one operation in flight, so a crash can be rolled back or finished.

It is written before an install, upgrade or uninstall touches anything and removed when the
operation is over. Finding one at start means the last operation died midway.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from plugdock.core.fsutil import write_json_atomic


@dataclass
class JournalEntry:
    operation: str  # "install" | "uninstall" | "upgrade"
    operation_id: str
    plugin_id: str
    version: str
    staging: str
    step: str = "prepared"
    tables: list[str] = field(default_factory=list)
    # An upgrade's journal names both installations; the row says which one won.
    from_version: str | None = None
    previous_operation_id: str | None = None
    previous_kinds: list[str] = field(default_factory=list)  # code folders the old one had
    previous_shape: dict[str, dict[str, list[str]]] = field(default_factory=dict)  # MariaDB


def read_journal(path: Path) -> JournalEntry | None:
    if not path.exists():
        return None
    return JournalEntry(**json.loads(path.read_text(encoding="utf-8")))


def write_journal(path: Path, entry: JournalEntry) -> None:
    write_json_atomic(path, asdict(entry))


def clear_journal(path: Path) -> None:
    path.unlink(missing_ok=True)
