"""The plugin server's storage: a folder holding packages, their records and publishers.

::

    DATA/
    ├── packages/<id>/<id>_v<version>.zip   published packages (immutable)
    ├── catalog.json                        every plugin: owner, and per version its record
    ├── publishers.json                     publisher names with the SHA-256 of their token
    ├── keys/, tuf/                         the signed index (plugdock.server.index)
    └── incoming/                           uploads being checked

Tokens are 256-bit random strings shown once at creation; only their SHA-256 is kept
(a fast hash is enough for secrets that cannot be guessed), and they are compared in
constant time. A plugin id belongs to the publisher who first published it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import shutil
import tempfile
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from filelock import FileLock

from plugdock.errors import PlugdockError
from plugdock.fsutil import write_json_atomic
from plugdock.package.archive import Limits, PackageInfo
from plugdock.package.layout import package_filename
from plugdock.package.metadata import parse_version
from plugdock.server.index import Lifetimes, SignedIndex
from plugdock.signing import read_signature
from plugdock.sources.base import newest_first

TOKEN_PREFIX = "pdt_"
_PUBLISHER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class ConflictError(PlugdockError):
    """The version is already published (published versions are immutable)."""


class ForbiddenError(PlugdockError):
    """The publisher may not publish this plugin id."""


@dataclass(frozen=True)
class Publisher:
    name: str


def _now() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat()


class Storage:
    """The data folder of one plugin server.

    >>> storage = Storage(Path("server-data")); storage.ensure()
    >>> token = storage.create_token("alice")      # shown once
    >>> storage.authenticate(token).name
    'alice'
    """

    def __init__(self, data_dir: Path, *, lifetimes: Lifetimes | None = None) -> None:
        self.data_dir = Path(data_dir).expanduser().resolve()
        self.packages_dir = self.data_dir / "packages"
        self.incoming_dir = self.data_dir / "incoming"
        self.catalog_path = self.data_dir / "catalog.json"
        self.publishers_path = self.data_dir / "publishers.json"
        self.index = SignedIndex(self.data_dir, lifetimes)
        self._lock = threading.RLock()
        self._file_lock = FileLock(str(self.data_dir / ".storage.lock"))
        self._catalog_cache: tuple[int, dict[str, Any]] | None = None

    def ensure(self) -> Storage:
        """Create the folder layout and the signed index if missing."""
        for folder in (self.data_dir, self.packages_dir, self.incoming_dir):
            folder.mkdir(parents=True, exist_ok=True)
        self.index.ensure()
        return self

    # --------------------------------------------------------------- publishers

    def _publishers(self) -> dict[str, Any]:
        if not self.publishers_path.exists():
            return {}
        return dict(json.loads(self.publishers_path.read_text(encoding="utf-8")))

    def create_token(self, name: str) -> str:
        """Create (or replace) the token of publisher ``name``; returns the token, shown once."""
        if not _PUBLISHER.fullmatch(name):
            raise PlugdockError(f"{name!r} is not a usable publisher name (letters, digits, _ . -)")
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        with self._locked():
            publishers = self._publishers()
            publishers[name] = {"token_sha256": _token_hash(token), "created": _now()}
            self.data_dir.mkdir(parents=True, exist_ok=True)
            write_json_atomic(self.publishers_path, publishers)
            self.publishers_path.chmod(0o600)
        return token

    def authenticate(self, token: str) -> Publisher | None:
        """The publisher whose token this is, or None."""
        presented = _token_hash(token)
        found = None
        for name, entry in self._publishers().items():
            if hmac.compare_digest(presented, str(entry.get("token_sha256", ""))):
                found = Publisher(name)
        return found

    # ----------------------------------------------------------------- catalog

    def catalog(self, *, fresh: bool = False) -> dict[str, Any]:
        """``{plugin id: {"owner", "versions": {version: record}}}`` (cached until it changes).

        ``fresh=True`` always reads the file: under the lock a decision (ownership, immutable
        versions) must not rest on a cache a coarse file timestamp could leave stale.
        """
        try:
            mtime = self.catalog_path.stat().st_mtime_ns
        except FileNotFoundError:
            return {}
        if fresh or self._catalog_cache is None or self._catalog_cache[0] != mtime:
            data = json.loads(self.catalog_path.read_text(encoding="utf-8"))
            self._catalog_cache = (mtime, data)
        return self._catalog_cache[1]

    def record(self, plugin_id: str, version: str) -> dict[str, Any] | None:
        entry = self.catalog().get(plugin_id)
        if entry is None:
            return None
        if version == "latest":
            versions = newest_first(list(entry["versions"]))
            if not versions:
                return None
            version = versions[0]
        return entry["versions"].get(version)  # type: ignore[no-any-return]

    def package_path(self, plugin_id: str, version: str) -> Path:
        return self.packages_dir / plugin_id / package_filename(plugin_id, version)

    def manifest(self) -> dict[str, Any]:
        """The public catalog served as ``/manifest.json``."""
        plugins: dict[str, Any] = {}
        for plugin_id, entry in sorted(self.catalog().items()):
            versions = newest_first(list(entry["versions"]))
            if not versions:
                continue
            latest = entry["versions"][versions[0]]
            plugins[plugin_id] = {
                **latest["summary"],
                "id": plugin_id,
                "latest": versions[0],
                "versions": {v: entry["versions"][v] for v in versions},
            }
        return {"format": "plugdock-manifest-v1", "generated": _now(), "plugins": plugins}

    # ----------------------------------------------------------------- publish

    def incoming_file(self) -> Path:
        """A fresh file path for an upload being received."""
        self.incoming_dir.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=self.incoming_dir, suffix=".zip")
        os.close(fd)
        return Path(name)

    def publish(self, upload: Path, info: PackageInfo, publisher: Publisher) -> dict[str, Any]:
        """Store a package that passed every check; returns its record.

        Raises ForbiddenError (the id belongs to another publisher) or ConflictError
        (this version exists). ``upload`` is moved into place.
        """
        meta = info.metadata
        parse_version(meta.version)
        check = read_signature(info)
        with self._locked():
            catalog = dict(self.catalog(fresh=True))
            entry = catalog.get(meta.id)
            if entry is not None and entry["owner"] != publisher.name:
                raise ForbiddenError(
                    f"plugin {meta.id!r} belongs to another publisher; {publisher.name!r} "
                    "may not publish it"
                )
            if entry is not None and meta.version in entry["versions"]:
                raise ConflictError(
                    f"{meta.id} {meta.version} is already published; published versions are "
                    "immutable (publish a new version)"
                )
            record = {
                "version": meta.version,
                "sha256": info.sha256,
                "size": info.size,
                "published": _now(),
                "publisher": publisher.name,
                "signed": check.status == "valid",
                "signer": check.signer if check.status == "valid" else None,
                "signer_key_id": check.key_id if check.status == "valid" else None,
                "download": f"/download/{meta.id}/{meta.version}",
                "summary": {
                    "name": meta.name,
                    "description": meta.description,
                    "category": meta.category,
                    "price": meta.price,
                    "icon": meta.icon,
                    "author": meta.author,
                },
            }
            target = self.package_path(meta.id, meta.version)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(upload), target)
            target.chmod(0o444)
            self.index.add_target(
                meta.id,
                meta.version,
                length=info.size,
                sha256=info.sha256,
                custom={"signer_key_id": record["signer_key_id"]},
            )
            versions = dict(entry["versions"]) if entry else {}
            versions[meta.version] = record
            catalog[meta.id] = {"owner": publisher.name, "versions": versions}
            write_json_atomic(self.catalog_path, catalog)
            self._catalog_cache = None
        return record

    def _locked(self) -> _Locked:
        return _Locked(self._lock, self._file_lock)


class _Locked:
    def __init__(self, lock: threading.RLock, file_lock: FileLock) -> None:
        self.lock, self.file_lock = lock, file_lock

    def __enter__(self) -> None:
        self.lock.acquire()
        try:
            self.file_lock.acquire()
        except BaseException:
            self.lock.release()
            raise

    def __exit__(self, *exc: object) -> None:
        self.file_lock.release()
        self.lock.release()


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def upload_limit(limits: Limits) -> int:
    """Largest upload accepted (the zip limit plus room for multipart framing)."""
    return limits.max_zip_bytes + 64 * 1024


__all__ = [
    "ConflictError",
    "ForbiddenError",
    "Publisher",
    "Storage",
    "upload_limit",
]
