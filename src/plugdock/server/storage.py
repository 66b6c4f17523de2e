"""The plugin server's storage: a folder holding packages, their records and publishers.

::

    DATA/
    ├── packages/<id>/<id>_v<version>.zip   published packages (immutable)
    ├── catalog.json                        every plugin: owner, and per version its record
    │                                       (plugdock.server.catalog)
    ├── publishers.json                     publisher names with the SHA-256 of their token
    ├── reviewers.json                      reviewer names with the SHA-256 of their token
    │                                       (both: plugdock.server.accounts)
    ├── reviews/<id>/<version>.json         the automated report of each version (review on)
    ├── audit.jsonl                         every publish, approval and rejection
    ├── keys/, tuf/                         the signed index (plugdock.server.index)
    └── incoming/                           uploads being checked

:class:`Storage` is what the server's routes hold: it changes the folder (publish, approve,
reject) under one lock, keeping packages, catalog, signed index and audit trail in step, and
answers from the catalog and the accounts. A plugin id belongs to the publisher who first
published it.

With review on, a published version is stored with ``"status": "pending"``: it takes its
version number, but is not in the manifest, not downloadable and not in the signed index
until a reviewer approves it (``"approved"``, then signed into the index) or rejects it
(``"rejected"``, never listed). Records without a status were published with review off
and are listed, as before.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from plugdock.core.fsutil import write_json_atomic
from plugdock.errors import ConflictError, ForbiddenError, NotFoundError, PlugdockError
from plugdock.instance.locking import ThreadAndFileLock
from plugdock.package.archive import Limits, PackageInfo
from plugdock.package.layout import package_filename
from plugdock.package.metadata import parse_version
from plugdock.server.accounts import Accounts, Publisher, Reviewer
from plugdock.server.audit_trail import AuditTrail
from plugdock.server.catalog import APPROVED, PENDING, REJECTED, CatalogFile, now
from plugdock.server.index import Lifetimes, SignedIndex
from plugdock.trust.signing import read_signature

MAX_REASON = 2000


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
        self.reviewers_path = self.data_dir / "reviewers.json"
        self.reviews_dir = self.data_dir / "reviews"
        self.audit = AuditTrail(self.data_dir / "audit.jsonl")
        self.index = SignedIndex(self.data_dir, lifetimes)
        self._lock = ThreadAndFileLock(self.data_dir / ".storage.lock")
        self.catalog = CatalogFile(self.catalog_path)
        self.accounts = Accounts(self.publishers_path, self.reviewers_path, self._lock)

    def ensure(self) -> Storage:
        """Create the folder layout and the signed index if missing."""
        for folder in (self.data_dir, self.packages_dir, self.incoming_dir):
            folder.mkdir(parents=True, exist_ok=True)
        self.index.ensure()
        return self

    # What the routes (app.py, review_api.py), the CLI and the tests ask of the storage;
    # the accounts and the catalog answer.

    def create_token(self, name: str, role: str = "publisher") -> str:
        return self.accounts.create_token(name, role)

    def authenticate(self, token: str) -> Publisher | None:
        return self.accounts.authenticate(token)

    def authenticate_reviewer(self, token: str) -> Reviewer | None:
        return self.accounts.authenticate_reviewer(token)

    def record(
        self, plugin_id: str, version: str, *, unlisted: bool = False
    ) -> dict[str, Any] | None:
        return self.catalog.record(plugin_id, version, unlisted=unlisted)

    def manifest(self) -> dict[str, Any]:
        return self.catalog.manifest()

    def versions(
        self, *, status: str | None = None, publisher: str | None = None
    ) -> list[dict[str, Any]]:
        return self.catalog.versions(status=status, publisher=publisher)

    def last_approved(self, plugin_id: str, *, below: str | None = None) -> str | None:
        return self.catalog.last_approved(plugin_id, below=below)

    def package_path(self, plugin_id: str, version: str) -> Path:
        return self.packages_dir / plugin_id / package_filename(plugin_id, version)

    # ----------------------------------------------------------------- publish

    def incoming_file(self) -> Path:
        """A fresh file path for an upload being received."""
        self.incoming_dir.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=self.incoming_dir, suffix=".zip")
        os.close(fd)
        return Path(name)

    def publish(
        self,
        upload: Path,
        info: PackageInfo,
        publisher: Publisher,
        *,
        pending: bool = False,
        report: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Store a package that passed every check; returns its record.

        Raises ForbiddenError (the id belongs to another publisher) or ConflictError
        (this version exists). ``upload`` is moved into place. With ``pending`` (review on)
        the version is stored with its ``report`` but not signed into the index.
        """
        meta = info.metadata
        parse_version(meta.version)
        check = read_signature(info)
        with self._lock:
            catalog = dict(self.catalog.read(fresh=True))
            entry = catalog.get(meta.id)
            self.check_can_publish(meta.id, meta.version, publisher, catalog)
            record = {
                "version": meta.version,
                "sha256": info.sha256,
                "size": info.size,
                "published": now(),
                "publisher": publisher.name,
                "signed": check.status == "valid",
                "signer": check.signer if check.status == "valid" else None,
                "signer_key_id": check.key_id if check.status == "valid" else None,
                "download": f"/download/{meta.id}/{meta.version}",
                **({"status": PENDING} if pending else {}),
                "summary": {
                    "name": meta.name,
                    "description": meta.description,
                    "category": meta.category,
                    "price": meta.price,
                    "icon": meta.icon,
                    "author": meta.author,
                    "permissions": list(meta.permissions),
                },
            }
            target = self.package_path(meta.id, meta.version)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(upload), target)
            target.chmod(0o444)
            if pending:
                if report is not None:
                    self._write_report(meta.id, meta.version, report)
            else:
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
            self.catalog.write(catalog)
            self.audit.append(
                "publish",
                who=publisher.name,
                role="publisher",
                plugin=meta.id,
                version=meta.version,
                sha256=info.sha256,
                status=PENDING if pending else "published",
            )
        return record

    def check_can_publish(
        self,
        plugin_id: str,
        version: str,
        publisher: Publisher,
        catalog: dict[str, Any] | None = None,
    ) -> None:
        """Raise ForbiddenError (another publisher's id) or ConflictError (version taken).

        Called early (before a costly review report) and again under the lock by publish.
        """
        entry = (catalog if catalog is not None else self.catalog.read()).get(plugin_id)
        if entry is not None and entry["owner"] != publisher.name:
            raise ForbiddenError(
                f"plugin {plugin_id!r} belongs to another publisher; {publisher.name!r} "
                "may not publish it"
            )
        if entry is not None and version in entry["versions"]:
            state = entry["versions"][version].get("status")
            how = {PENDING: " (pending review)", REJECTED: " (and was rejected)"}.get(state, "")
            raise ConflictError(
                f"{plugin_id} {version} is already published{how}; published versions are "
                "immutable (publish a new version)"
            )

    # ------------------------------------------------------------------ review

    def report_path(self, plugin_id: str, version: str) -> Path:
        return self.reviews_dir / plugin_id / f"{version}.json"

    def _write_report(self, plugin_id: str, version: str, report: dict[str, Any]) -> None:
        path = self.report_path(plugin_id, version)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(path, report)

    def report(self, plugin_id: str, version: str) -> dict[str, Any] | None:
        """The automated report stored with a version (None: published with review off)."""
        path = self.report_path(plugin_id, version)
        if not path.is_file():
            return None
        return dict(json.loads(path.read_text(encoding="utf-8")))

    def _pending(self, catalog: dict[str, Any], plugin_id: str, version: str) -> dict[str, Any]:
        record = catalog.get(plugin_id, {}).get("versions", {}).get(version)
        if record is None:
            raise NotFoundError(f"{plugin_id} {version} is not published here")
        if record.get("status") != PENDING:
            state = record.get("status", "published")
            raise ConflictError(f"{plugin_id} {version} is not pending review (it is {state})")
        return dict(record)

    def approve(self, plugin_id: str, version: str, reviewer: Reviewer) -> dict[str, Any]:
        """Sign a pending version into the index and list it; returns its record.

        Raises NotFoundError, ConflictError (not pending) or ForbiddenError (the reviewer
        published it). The stored bytes are hashed again: what is signed is what was reviewed.
        """
        with self._lock:
            catalog = dict(self.catalog.read(fresh=True))
            record = self._pending(catalog, plugin_id, version)
            if record.get("publisher") == reviewer.name:
                raise ForbiddenError(
                    f"{reviewer.name!r} published {plugin_id} {version} and may not approve it"
                )
            path = self.package_path(plugin_id, version)
            if hashlib.sha256(path.read_bytes()).hexdigest() != record["sha256"]:
                raise PlugdockError(
                    f"the stored package of {plugin_id} {version} no longer matches its sha256"
                )
            when = now()
            record.update(status=APPROVED, approved_by=reviewer.name, approved=when)
            self.index.add_target(
                plugin_id,
                version,
                length=record["size"],
                sha256=record["sha256"],
                custom={
                    "signer_key_id": record["signer_key_id"],
                    "approved_by": reviewer.name,
                    "approved": when,
                },
            )
            self._store(catalog, plugin_id, version, record)
            self.audit.append(
                "approve",
                who=reviewer.name,
                role="reviewer",
                plugin=plugin_id,
                version=version,
                sha256=record["sha256"],
            )
        return record

    def reject(
        self, plugin_id: str, version: str, reviewer: Reviewer, reason: str
    ) -> dict[str, Any]:
        """Refuse a pending version for good (its number stays taken); returns its record."""
        reason = " ".join(str(reason).split())
        if not reason:
            raise PlugdockError("a rejection needs a reason (the publisher sees it)")
        if len(reason) > MAX_REASON:
            raise PlugdockError(f"the reason is longer than {MAX_REASON} characters")
        with self._lock:
            catalog = dict(self.catalog.read(fresh=True))
            record = self._pending(catalog, plugin_id, version)
            record.update(status=REJECTED, rejected_by=reviewer.name, rejected=now(), reason=reason)
            self._store(catalog, plugin_id, version, record)
            self.audit.append(
                "reject",
                who=reviewer.name,
                role="reviewer",
                plugin=plugin_id,
                version=version,
                sha256=record["sha256"],
                reason=reason,
            )
        return record

    def _store(
        self, catalog: dict[str, Any], plugin_id: str, version: str, record: dict[str, Any]
    ) -> None:
        entry = dict(catalog[plugin_id])
        entry["versions"] = {**entry["versions"], version: record}
        catalog[plugin_id] = entry
        self.catalog.write(catalog)


def upload_limit(limits: Limits) -> int:
    """Largest upload accepted (the zip limit plus room for multipart framing)."""
    return limits.max_zip_bytes + 64 * 1024


__all__ = [
    "APPROVED",
    "PENDING",
    "REJECTED",
    "ConflictError",
    "ForbiddenError",
    "Publisher",
    "Reviewer",
    "Storage",
    "upload_limit",
]
