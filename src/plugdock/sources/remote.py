"""The remote source: a plugdock plugin server (``PLUGIN_SOURCE=remote``, ``PLUGIN_SERVER_URL``).

It offers the same two calls as the local source::

    source = RemoteSource(settings, progress=lambda done, total: ...)
    source.catalog()                          # the signed index's versions (+ manifest.json)
    source.fetch("ai_chatbot", "1.0.0")       # → FetchedPackage(path in PLUGDOCK_HOME/cache/)

What it checks before a package reaches the installer:

* **The signed index** (:mod:`plugdock.sources.signed_index`). Unless the signature
  policy is ``off``, the server's TUF metadata is refreshed and verified against the root
  this instance pinned; a bad, replayed, expired or downgraded index is refused with
  :class:`~plugdock.errors.UntrustedIndexError`. The signed targets are the only list
  of versions (the catalog, install's and upgrade's "newest", update offers), and each
  package's expected length and SHA-256 come from them; the unsigned ``manifest.json``
  only adds display fields, and where it disagrees it is ignored and reported. Only with
  the policy ``off``, which an operator sets on purpose and is warned about, do versions
  come from ``manifest.json``.
* **Where it goes** (:mod:`plugdock.sources.connection`). Redirects are followed only
  within the server's origin; one to another origin, or from https to http, is refused
  (:class:`~plugdock.sources.connection.RedirectRefusedError`).
* **The bytes.** The download streams into the cache with the expected length as its
  limit, hashing as it goes; a package whose SHA-256 differs is deleted and refused
  before anything opens it. A cached package is reused when its hash still matches.

Transient failures (connection errors, timeouts, 5xx/429, a body cut short) are retried
with exponential backoff (``PLUGDOCK_DOWNLOAD_RETRIES`` attempts, ``…_TIMEOUT`` per
request); what still fails is a :class:`~plugdock.errors.SourceUnavailableError` with
one clear line (the panel answers 502).
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import httpx

from plugdock.config import Settings, SignaturePolicy
from plugdock.core.fsutil import atomic_write
from plugdock.errors import NotFoundError, PackageError, PlugdockError, SourceUnavailableError
from plugdock.package.archive import Limits
from plugdock.package.checksums import sha256_file
from plugdock.package.metadata import PLUGIN_ID_PATTERN, parse_version
from plugdock.package.permissions import normalize as normalize_permissions
from plugdock.sources.base import (
    BrokenPackage,
    Catalog,
    CatalogEntry,
    FetchedPackage,
    newest_first,
    resolve_version,
)
from plugdock.sources.connection import ServerConnection, Transient, check_status
from plugdock.sources.signed_index import SignedIndexClient, Target, plugin_versions
from plugdock.trust.store import normalize_server_url

log = logging.getLogger("plugdock.sources.remote")

Progress = Callable[[int, int | None], None]

_ID = re.compile(PLUGIN_ID_PATTERN)
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_MAX_MANIFEST_BYTES = 32 * 1024 * 1024
_MAX_SIGNATURE_BYTES = 64 * 1024


class IntegrityError(SourceUnavailableError):
    """The server sent bytes that the index does not vouch for (wrong length or hash)."""


class RemoteSource:
    """Plugins from a plugdock plugin server.

    ``progress(done, total)`` is called while a package downloads (``total`` is its
    length); ``warn(message)`` receives notices such as first-use pinning of the
    server's root (default: the log).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        progress: Progress | None = None,
        warn: Callable[[str], None] | None = None,
        client: httpx.Client | None = None,
    ) -> None:
        if not settings.plugin_server_url:
            raise PlugdockError("PLUGIN_SOURCE=remote needs PLUGIN_SERVER_URL (the plugin server)")
        self.settings = settings
        self.server = ServerConnection(
            normalize_server_url(settings.plugin_server_url),
            retries=settings.download_retries,
            timeout=settings.download_timeout,
            client=client,
        )
        self.warn = warn or log.warning
        self.index = SignedIndexClient(settings, self.server, self.warn)
        self.progress = progress
        self.limits = Limits.from_settings(settings)
        self._reported: set[str] = set()
        if not self.verifies_index:
            # The CLI says it on every command (cli._startup); a panel says it at start.
            log.warning("%s", settings.trust_off_warning())

    def close(self) -> None:
        """Close the HTTP connections (the source can no longer be used)."""
        self.server.close()

    def __enter__(self) -> RemoteSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def verifies_index(self) -> bool:
        return self.settings.effective_signature_policy is not SignaturePolicy.OFF

    # ---------------------------------------------------------------- catalog

    def catalog(self) -> Catalog:
        """Every plugin the server offers: the versions its signed index lists, and no other.

        The signed index alone decides which versions exist (so which is the newest, what
        install and upgrade pick, what an update offer names); ``manifest.json`` only adds
        display fields (name, description, …) to them. Where the two disagree the manifest
        is not believed, and the disagreement is reported (``broken`` and ``warn``): a
        version only the manifest lists is not offered; one the index lists but the
        manifest leaves out (or describes with another sha256, size or signer) is offered
        as the index says. With the signature policy ``off`` (no index) the manifest is all
        there is.
        """
        manifest, broken = self._manifest()
        if not self.verifies_index:
            return self._unsigned_catalog(manifest, broken)
        signed = plugin_versions(self.index.targets())
        plugins: dict[str, CatalogEntry] = {}
        for plugin_id in sorted(set(signed) | set(manifest)):
            summary, listed = manifest.get(plugin_id, ({}, {}))
            vouched = signed.get(plugin_id, {})
            for version in newest_first(set(listed) - set(vouched)):
                broken.append(
                    BrokenPackage(
                        f"{plugin_id} {version}",
                        "manifest.json lists it, the signed index does not: not offered",
                    )
                )
            if not vouched:
                continue
            versions = newest_first(vouched)
            disagreements = {
                version: problem
                for version in versions
                if (problem := _disagreement(listed.get(version), vouched[version]))
            }
            broken += [
                BrokenPackage(f"{plugin_id} {version}", problem)
                for version, problem in disagreements.items()
            ]
            newest = listed.get(versions[0])
            display = summary
            permissions: tuple[str, ...] = ()
            if newest is not None and versions[0] not in disagreements:
                # Display fields of the newest signed version, as its own record gives them.
                if isinstance(newest.get("summary"), dict):
                    display = newest["summary"]
                if display is newest.get("summary") or summary.get("latest") == versions[0]:
                    permissions = _permissions(display.get("permissions"))
            plugins[plugin_id] = _entry(plugin_id, display, versions, permissions)
        self._report(broken)
        return Catalog(plugins=plugins, broken=tuple(broken))

    def _unsigned_catalog(
        self,
        manifest: dict[str, tuple[dict[str, Any], dict[str, dict[str, Any]]]],
        broken: list[BrokenPackage],
    ) -> Catalog:
        """The catalog as the unsigned manifest.json says (signature policy ``off`` only)."""
        plugins = {
            plugin_id: _entry(
                plugin_id,
                summary,
                newest_first(versions),
                _permissions(summary.get("permissions")),
            )
            for plugin_id, (summary, versions) in sorted(manifest.items())
        }
        return Catalog(plugins=plugins, broken=tuple(broken))

    def _report(self, broken: list[BrokenPackage]) -> None:
        """Warn about each disagreement with the signed index once per source."""
        for item in broken:
            message = f"plugin server {self.server.addr}: {item.location}: {item.error}"
            if message not in self._reported:
                self._reported.add(message)
                self.warn(message)

    # ------------------------------------------------------------------ fetch

    def fetch(self, plugin_id: str, version: str | None = None) -> FetchedPackage:
        """Download (or reuse from the cache) one verified package; ``None``/latest = newest."""
        if not _ID.fullmatch(plugin_id):
            raise PlugdockError(f"{plugin_id!r} is not a valid plugin id")
        if self.verifies_index:
            offered = plugin_versions(self.index.targets()).get(plugin_id, {})
        else:
            manifest, _broken = self._manifest()
            versions = manifest.get(plugin_id, ({}, {}))[1]
            offered = {v: Target(rec["size"], rec["sha256"]) for v, rec in versions.items()}
        if not offered:
            raise NotFoundError(
                f"plugin {plugin_id!r} is not on the plugin server {self.server.addr}"
            )
        resolved = resolve_version(plugin_id, version, offered)
        length, sha256, signer_key_id = offered[resolved][:3]
        if length > self.limits.max_zip_bytes:
            raise PackageError(
                f"{plugin_id} {resolved} is {length} bytes, more than the limit of "
                f"{self.limits.max_zip_bytes} (PLUGDOCK_MAX_PACKAGE_BYTES)"
            )
        path = self._cached(sha256, length) or self._download(plugin_id, resolved, length, sha256)
        if signer_key_id is not None:
            _check_index_signer(path, f"{plugin_id} {resolved}", signer_key_id)
        return FetchedPackage(
            path=path,
            plugin_id=plugin_id,
            version=resolved,
            sha256=sha256,
            signer_key_id=signer_key_id,
        )

    def _cached(self, sha256: str, length: int) -> Path | None:
        path = self.settings.cache_dir / f"{sha256}.zip"
        try:
            if path.stat().st_size == length and sha256_file(path) == sha256:
                if self.progress:
                    self.progress(length, length)
                return path
        except FileNotFoundError:
            return None
        path.unlink(missing_ok=True)  # damaged cache entry
        return None

    def _download(self, plugin_id: str, version: str, length: int, sha256: str) -> Path:
        cache = self.settings.cache_dir
        cache.mkdir(parents=True, exist_ok=True)
        url = f"{self.server.url}/download/{plugin_id}/{version}"
        what = f"{plugin_id} {version}"
        target = cache / f"{sha256}.zip"
        # Not fsynced: a cache entry is checked against its sha256 whenever it is used.
        with atomic_write(target, durable=False) as handle:
            self.server.retrying(what, lambda: self._stream_once(url, handle, length, sha256, what))
        return target

    def _stream_once(self, url: str, handle: BinaryIO, length: int, sha256: str, what: str) -> None:
        """One download attempt into ``handle``, from its start (a retry overwrites)."""
        handle.seek(0)
        handle.truncate()
        digest = hashlib.sha256()
        received = 0
        with self.server.client.stream("GET", url) as response:
            check_status(response, what)
            declared = response.headers.get("content-length")
            if declared is not None and declared.isdigit() and int(declared) != length:
                raise IntegrityError(
                    f"the server offers {what} as {declared} bytes, but the index says {length}; "
                    "refusing it"
                )
            for chunk in response.iter_raw():
                received += len(chunk)
                if received > length:
                    raise IntegrityError(
                        f"the server sent more than the {length} bytes the index lists for "
                        f"{what}; refusing it"
                    )
                digest.update(chunk)
                handle.write(chunk)
                if self.progress:
                    self.progress(received, length)
        if received < length:
            raise Transient(f"the download stopped after {received} of {length} bytes")
        if digest.hexdigest() != sha256:
            raise IntegrityError(
                f"{what} from the server does not match its sha256 in the index "
                f"({digest.hexdigest()[:16]}… instead of {sha256[:16]}…): the package was "
                "altered; refusing it"
            )

    # --------------------------------------------------------------- manifest

    def _manifest(
        self,
    ) -> tuple[dict[str, tuple[dict[str, Any], dict[str, dict[str, Any]]]], list[BrokenPackage]]:
        """``{id: (summary, {version: record})}`` from manifest.json, and the entries refused."""
        import json

        raw = self.server.get_bytes(
            "/manifest.json", "the catalog (manifest.json)", _MAX_MANIFEST_BYTES
        )
        try:
            data = json.loads(raw)
            plugins = data["plugins"]
            if not isinstance(plugins, dict):
                raise TypeError("'plugins' is not an object")
        except (ValueError, KeyError, TypeError) as exc:
            raise SourceUnavailableError(
                f"plugin server {self.server.addr} sent an unreadable manifest.json ({exc})"
            ) from None
        found: dict[str, tuple[dict[str, Any], dict[str, dict[str, Any]]]] = {}
        broken: list[BrokenPackage] = []
        for plugin_id, entry in plugins.items():
            if not isinstance(plugin_id, str) or not _ID.fullmatch(plugin_id):
                broken.append(BrokenPackage(str(plugin_id)[:80], "not a valid plugin id"))
                continue
            if not isinstance(entry, dict) or not isinstance(entry.get("versions"), dict):
                broken.append(BrokenPackage(plugin_id, "malformed manifest entry"))
                continue
            versions: dict[str, dict[str, Any]] = {}
            for version, record in entry["versions"].items():
                problem = _record_problem(version, record)
                if problem:
                    broken.append(BrokenPackage(f"{plugin_id} {str(version)[:40]}", problem))
                else:
                    versions[version] = record
            if versions:
                found[plugin_id] = (entry, versions)
        return found, broken


def _check_index_signer(path: Path, what: str, expected: str) -> None:
    """Refuse a package not signed by the key the signed index records for it.

    Only the key id the package's signature names is read here; the installer then
    verifies that signature with that very key (its key id is the key's hash), so the
    two checks together mean: signed by the key the index vouches for.
    """
    import json
    import zipfile

    from plugdock.package.layout import SIGNATURE_FILE

    claimed = None
    try:
        with zipfile.ZipFile(path) as archive:
            info = archive.getinfo(SIGNATURE_FILE)
            if info.file_size <= _MAX_SIGNATURE_BYTES:
                signed = json.loads(archive.read(info)).get("signed")
                claimed = signed.get("key_id") if isinstance(signed, dict) else None
    except KeyError:
        claimed = None  # unsigned
    except (OSError, ValueError, zipfile.BadZipFile, AttributeError):
        claimed = None
    if claimed != expected:
        signed_by = f"the key with fingerprint {claimed}" if isinstance(claimed, str) else "no key"
        raise IntegrityError(
            f"the plugin server's signed index says {what} is signed by the key with "
            f"fingerprint {expected}, but the package is signed by {signed_by}; refusing it"
        )


def _disagreement(record: dict[str, Any] | None, target: Target) -> str | None:
    """How manifest.json's record of a signed version differs from the index, or None."""
    if record is None:
        return "the signed index lists it, manifest.json does not; offered as the signed index says"
    differs = [
        name
        for name, theirs, ours in (
            ("sha256", record.get("sha256"), target.sha256),
            ("size", record.get("size"), target.length),
            ("signer", record.get("signer_key_id"), target.signer_key_id),
        )
        if theirs is not None and ours is not None and theirs != ours
    ]
    if differs:
        return (
            f"manifest.json gives another {' and '.join(differs)} than the signed index; "
            "its record is ignored, the signed index decides"
        )
    return None


def _entry(
    plugin_id: str, summary: dict[str, Any], versions: tuple[str, ...], permissions: tuple[str, ...]
) -> CatalogEntry:
    return CatalogEntry(
        id=plugin_id,
        name=str(summary.get("name") or plugin_id),
        description=str(summary.get("description") or ""),
        author=str(summary.get("author") or ""),
        category=str(summary.get("category") or ""),
        price=_price(summary.get("price")),
        icon=str(summary.get("icon") or ""),
        versions=versions,
        permissions=permissions,
    )


def _record_problem(version: object, record: object) -> str | None:
    if not isinstance(version, str):
        return "version is not a string"
    try:
        parse_version(version)
    except ValueError as exc:
        return str(exc)
    if not isinstance(record, dict):
        return "malformed record"
    if not isinstance(record.get("sha256"), str) or not _HEX64.fullmatch(record["sha256"]):
        return "no valid sha256"
    size = record.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        return "no valid size"
    return None


def _permissions(value: object) -> tuple[str, ...]:
    """The summary's permissions for display; the package's own list is what gets granted."""
    if not isinstance(value, list):
        return ()
    try:
        return tuple(normalize_permissions(str(p) for p in value))
    except ValueError:  # unknown to this core: the package fails validation if installed
        return ()


def _price(value: object) -> float:
    try:
        price = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 0.0
    return price if price >= 0 else 0.0
