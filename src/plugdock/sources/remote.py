"""The remote source: a plugdock plugin server (``PLUGIN_SOURCE=remote``, ``PLUGIN_SERVER_URL``).

It offers the same two calls as the local source::

    source = RemoteSource(settings, progress=lambda done, total: ...)
    source.catalog()                          # from GET /manifest.json
    source.fetch("ai_chatbot", "1.0.0")       # → FetchedPackage(path in PLUGDOCK_HOME/cache/)

What it checks before a package reaches the installer:

* **The signed index.** Unless the signature policy is ``off``, the server's TUF metadata
  (``/tuf/``) is refreshed with ``tuf.ngclient`` against the root this instance pinned
  (:mod:`plugdock.trust.store`). A bad signature, an index older than one already seen
  (rollback), an expired one (freeze) or metadata that does not match its snapshot is
  refused with :class:`~plugdock.trust.store.UntrustedIndexError`. Versions are resolved from
  the signed targets, and each package's expected length and SHA-256 come from them.
  With the policy ``off`` they come from ``manifest.json``.
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
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple
from urllib.parse import urlsplit

import httpx
from filelock import FileLock

from plugdock.config import Settings, SignaturePolicy
from plugdock.core.fsutil import atomic_write, write_json_atomic
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
from plugdock.sources.connection import (
    ServerConnection,
    Transient,
    check_status,
    without_credentials,
)
from plugdock.trust.store import (
    HIGHEST_SEEN_FILE,
    UntrustedIndexError,
    normalize_server_url,
    pin_server_root,
    pinned_root,
    server_dir,
)

log = logging.getLogger("plugdock.sources.remote")

Progress = Callable[[int, int | None], None]

_ID = re.compile(PLUGIN_ID_PATTERN)
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_MAX_MANIFEST_BYTES = 32 * 1024 * 1024
_MAX_METADATA_BYTES = 16 * 1024 * 1024
_MAX_SIGNATURE_BYTES = 64 * 1024


class _Target(NamedTuple):
    """What the index says about one package."""

    length: int
    sha256: str
    signer_key_id: str | None = None  # the key that signed it, when the index records one


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
        self.progress = progress
        self.warn = warn or log.warning
        self.limits = Limits.from_settings(settings)

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
        """Every plugin the server offers; with index checks on, only versions it vouches for."""
        manifest, broken = self._manifest()
        signed = self._signed_targets() if self.verifies_index else None
        plugins: dict[str, CatalogEntry] = {}
        for plugin_id, (summary, versions) in sorted(manifest.items()):
            kept = []
            for version, record in versions.items():
                if signed is not None:
                    target = signed.get(_target(plugin_id, version))
                    if target is None or target[1] != record["sha256"]:
                        broken.append(
                            BrokenPackage(
                                f"{plugin_id} {version}", "not vouched for by the signed index"
                            )
                        )
                        continue
                kept.append(version)
            if kept:
                plugins[plugin_id] = CatalogEntry(
                    id=plugin_id,
                    name=str(summary.get("name") or plugin_id),
                    description=str(summary.get("description") or ""),
                    author=str(summary.get("author") or ""),
                    category=str(summary.get("category") or ""),
                    price=_price(summary.get("price")),
                    icon=str(summary.get("icon") or ""),
                    versions=newest_first(kept),
                    permissions=_permissions(summary.get("permissions")),
                )
        return Catalog(plugins=plugins, broken=tuple(broken))

    # ------------------------------------------------------------------ fetch

    def fetch(self, plugin_id: str, version: str | None = None) -> FetchedPackage:
        """Download (or reuse from the cache) one verified package; ``None``/latest = newest."""
        if not _ID.fullmatch(plugin_id):
            raise PlugdockError(f"{plugin_id!r} is not a valid plugin id")
        if self.verifies_index:
            signed = self._signed_targets()
            offered = {
                v: target for (pid, v), target in _by_plugin(signed).items() if pid == plugin_id
            }
        else:
            manifest, _broken = self._manifest()
            versions = manifest.get(plugin_id, ({}, {}))[1]
            offered = {v: _Target(rec["size"], rec["sha256"]) for v, rec in versions.items()}
        if not offered:
            raise NotFoundError(
                f"plugin {plugin_id!r} is not on the plugin server {self.server.addr}"
            )
        resolved = resolve_version(plugin_id, version, offered)
        length, sha256, signer_key_id = offered[resolved]
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

    # ----------------------------------------------------------- signed index

    def _signed_targets(self) -> dict[str, _Target]:
        """``{target path: _Target}`` from the server's verified TUF metadata."""
        from tuf.api import exceptions as tuf_errors
        from tuf.api.metadata import Metadata
        from tuf.ngclient import Updater

        url, addr = self.server.url, self.server.addr
        root = pinned_root(self.settings, url) or self._pin_on_first_use()
        folder = server_dir(self.settings, url)
        metadata_dir = folder / "metadata"
        metadata_dir.mkdir(parents=True, exist_ok=True)
        try:
            with FileLock(str(folder / ".lock"), timeout=self.settings.lock_timeout):
                updater = Updater(
                    str(metadata_dir),
                    f"{url}/tuf/",
                    fetcher=_fetcher(self.server),
                    bootstrap=root,
                )
                updater.refresh()
                targets = Metadata.from_file(str(metadata_dir / "targets.json")).signed
                found = _vouched(targets)
                self._refuse_downgrades(folder / HIGHEST_SEEN_FILE, found)
        except tuf_errors.ExpiredMetadataError as exc:
            raise UntrustedIndexError(
                f"plugin server {addr}: its signed index has expired ({exc}); this is what "
                "a freeze attack looks like (or the server stopped re-signing); refusing it"
            ) from None
        except tuf_errors.BadVersionNumberError as exc:
            raise UntrustedIndexError(
                f"plugin server {addr}: its signed index is older than one already seen "
                f"({exc}); this is what a rollback attack looks like; refusing it"
            ) from None
        except tuf_errors.UnsignedMetadataError as exc:
            raise UntrustedIndexError(
                f"plugin server {addr}: a signature on its index does not verify ({exc}); "
                "refusing it"
            ) from None
        except tuf_errors.RepositoryError as exc:
            raise UntrustedIndexError(
                f"plugin server {addr}: its signed index failed verification "
                f"({type(exc).__name__}: {exc}); refusing it"
            ) from None
        except tuf_errors.DownloadError as exc:
            cause = exc.__cause__ or exc
            if isinstance(cause, SourceUnavailableError):
                raise cause from None
            raise SourceUnavailableError(
                f"plugin server {addr}: cannot get its signed index ({cause})"
            ) from None
        return found

    def _refuse_downgrades(self, path: Path, signed: dict[str, _Target]) -> None:
        """Refuse an index whose newest version of a plugin is older than one seen before.

        TUF stops a replayed *old* index, but not a *new* one, signed with the server's own
        keys, that lists fewer versions: that would silently make an older (say, vulnerable)
        version "latest". So the host remembers the highest version it has seen per plugin
        from this server (``highest_seen.json`` beside the pinned root; re-pinning the server
        forgets it) and refuses the whole index when any plugin's newest version goes back.
        Called under the server folder's lock.
        """
        latest: dict[str, str] = {}
        for plugin_id, version in _by_plugin(signed):
            if plugin_id not in latest or _newer(version, latest[plugin_id]):
                latest[plugin_id] = version
        seen = _read_highest_seen(path)
        backwards = [
            f"{plugin_id} {latest[plugin_id]} (this host has seen {seen[plugin_id]})"
            for plugin_id in sorted(latest)
            if plugin_id in seen and _newer(seen[plugin_id], latest[plugin_id])
        ]
        if backwards:
            addr = self.server.addr
            raise UntrustedIndexError(
                f"plugin server {addr}: its signed index now offers an older newest "
                f"version than before: {', '.join(backwards)}; this is what a downgrade attack "
                "looks like (a server signing away newer versions); refusing it. If the "
                "operator really withdrew them, re-pin the server: plugdock trust server "
                f"{addr} --root root.json"
            )
        highest = dict(seen)
        for plugin_id, version in latest.items():
            if plugin_id not in highest or _newer(version, highest[plugin_id]):
                highest[plugin_id] = version
        if highest != seen:
            write_json_atomic(path, {"format": "plugdock-highest-seen-v1", "plugins": highest})

    def _pin_on_first_use(self) -> bytes:
        url, addr = self.server.url, self.server.addr
        if not self.settings.trust_on_first_use:
            raise UntrustedIndexError(
                f"this instance does not trust the plugin server {addr} yet: run "
                f"'plugdock trust server {addr} --root root.json' with the server's root "
                "metadata (or allow first-use pinning: PLUGDOCK_TRUST_ON_FIRST_USE=true)"
            )
        if urlsplit(url).scheme != "https" and not self.settings.allow_http_pin:
            # Over plain http anyone on the network path could hand over their own root, and
            # every later check would then be against the attacker's keys.
            raise UntrustedIndexError(
                f"this instance does not trust the plugin server {addr} yet, and will not "
                "pin its index root on first use over plain http: pin it explicitly with "
                f"'plugdock trust server {addr} --root root.json' (the file from the "
                "server's operator), use https, or allow it: PLUGDOCK_ALLOW_HTTP_PIN=true"
            )
        root = self.server.get_bytes("/tuf/root.json", "the signed index root", _MAX_METADATA_BYTES)
        try:
            key_ids = pin_server_root(self.settings, url, root, how="first-use")
        except PlugdockError as exc:
            raise UntrustedIndexError(
                f"plugin server {addr}: its root metadata is not usable ({exc})"
            ) from None
        self.warn(
            f"trusting plugin server {addr} on first use: pinned its index root keys "
            f"{', '.join(k[:16] for k in key_ids)}; compare them with what 'plugdock server' "
            f"printed (or pin explicitly: plugdock trust server {addr} --root root.json)"
        )
        return root


def _vouched(targets: Any) -> dict[str, _Target]:
    """The well-formed targets, with the signer key the index records (custom data)."""
    found = {}
    for path, target in targets.targets.items():
        sha = target.hashes.get("sha256", "")
        if isinstance(target.length, int) and _HEX64.fullmatch(sha):
            custom = target.unrecognized_fields.get("custom")
            signer = custom.get("signer_key_id") if isinstance(custom, dict) else None
            if signer is not None and not (isinstance(signer, str) and _HEX64.fullmatch(signer)):
                continue  # a record this host cannot hold the package to: not offered
            found[path] = _Target(target.length, sha, signer)
    return found


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


def _newer(version: str, than: str) -> bool:
    return bool(parse_version(version) > parse_version(than))


def _read_highest_seen(path: Path) -> dict[str, str]:
    import json

    damaged = f"{path} is damaged; re-pin the plugin server (plugdock trust server)"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError):
        raise PlugdockError(damaged) from None
    plugins = data.get("plugins") if isinstance(data, dict) else None
    if not isinstance(plugins, dict):
        raise PlugdockError(damaged)
    for version in plugins.values():
        try:
            parse_version(version)
        except ValueError:
            raise PlugdockError(damaged) from None
    return {str(k): str(v) for k, v in plugins.items()}


def _fetcher(server: ServerConnection) -> Any:
    """TUF's fetcher interface over the server's client, with the same retries and limits."""
    from tuf.api import exceptions as tuf_errors
    from tuf.ngclient.fetcher import FetcherInterface

    class Fetcher(FetcherInterface):
        def _fetch(self, url: str) -> Iterator[bytes]:
            def once() -> bytes:
                with server.client.stream("GET", url) as response:
                    if response.status_code in (403, 404):  # "no newer root" for ngclient
                        raise tuf_errors.DownloadHTTPError(
                            f"{without_credentials(url)}: HTTP {response.status_code}",
                            response.status_code,
                        )
                    check_status(response, url.rsplit("/", 1)[-1])
                    chunks, size = [], 0
                    for chunk in response.iter_bytes():
                        size += len(chunk)
                        if size > _MAX_METADATA_BYTES:
                            raise tuf_errors.DownloadLengthMismatchError(
                                f"{without_credentials(url)} is too large"
                            )
                        chunks.append(chunk)
                    return b"".join(chunks)

            return iter([server.retrying(url.rsplit("/", 1)[-1], once)])

    return Fetcher()


def _target(plugin_id: str, version: str) -> str:
    return f"{plugin_id}/{version}.zip"


def _by_plugin(signed: dict[str, _Target]) -> dict[tuple[str, str], _Target]:
    found = {}
    for path, target in signed.items():
        plugin_id, slash, name = path.partition("/")
        if not slash or not name.endswith(".zip") or not _ID.fullmatch(plugin_id):
            continue
        version = name[: -len(".zip")]
        try:
            parse_version(version)
        except ValueError:
            continue
        found[(plugin_id, version)] = target
    return found


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
