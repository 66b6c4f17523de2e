"""A plugin server's signed index, as a host sees it: which packages the server vouches for.

The server signs the index of its packages with TUF metadata (``/tuf/``,
:mod:`plugdock.server.index`). :meth:`SignedIndexClient.targets` refreshes it with
``tuf.ngclient`` against the root this instance pinned (:mod:`plugdock.trust.store`),
pinning the server's root on first use when the settings allow it. A bad signature, an
index older than one already seen (rollback), an expired one (freeze), metadata that does
not match its snapshot, or one whose newest version of a plugin went back (downgrade) is
refused with :class:`~plugdock.errors.UntrustedIndexError`. What remains is each
package's expected length and SHA-256, and the key the index records as its signer.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from filelock import FileLock

from plugdock.config import Settings
from plugdock.core.fsutil import write_json_atomic
from plugdock.errors import (
    NotFoundError,
    PlugdockError,
    SourceUnavailableError,
    UntrustedIndexError,
)
from plugdock.package.metadata import PLUGIN_ID_PATTERN, parse_version
from plugdock.sources.connection import ServerConnection, check_status, without_credentials
from plugdock.trust.store import (
    HIGHEST_SEEN_FILE,
    pin_server_root,
    pinned_root,
    server_dir,
)

_ID = re.compile(PLUGIN_ID_PATTERN)
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_MAX_METADATA_BYTES = 16 * 1024 * 1024


class Target(NamedTuple):
    """What the index says about one package (one version of one plugin).

    Everything a host decides about a version comes from here, never from the unsigned
    ``manifest.json``: that it exists (so which one is the newest), its length and sha256,
    the key that signed it, and whatever else the server signs per version in the target's
    ``custom`` object (``signer_key_id`` today; advisories and licences go there too, read
    from ``custom`` by whoever needs them, so the index's shape does not change).
    """

    length: int
    sha256: str
    signer_key_id: str | None = None  # the key that signed it, when the index records one
    custom: Mapping[str, Any] = MappingProxyType({})  # the target's signed custom data


class SignedIndexClient:
    """The verified targets of one server's signed index, over its :class:`ServerConnection`.

    ``warn(message)`` receives the notice of a first-use pinning of the server's root.
    """

    def __init__(
        self, settings: Settings, server: ServerConnection, warn: Callable[[str], None]
    ) -> None:
        self.settings = settings
        self.server = server
        self.warn = warn

    def targets(self) -> dict[str, Target]:
        """``{target path: Target}`` from the server's verified TUF metadata."""
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

    def _refuse_downgrades(self, path: Path, signed: dict[str, Target]) -> None:
        """Refuse an index whose newest version of a plugin is older than one seen before.

        TUF stops a replayed *old* index, but not a *new* one, signed with the server's own
        keys, that lists fewer versions: that would silently make an older (say, vulnerable)
        version "latest". So the host remembers the highest version it has seen per plugin
        from this server (``highest_seen.json`` beside the pinned root; re-pinning the server
        forgets it) and refuses the whole index when any plugin's newest version goes back.
        Called under the server folder's lock.
        """
        latest: dict[str, str] = {}
        for plugin_id, version in by_plugin(signed):
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
        try:
            root = self.server.get_bytes(
                "/tuf/root.json", "the signed index root", _MAX_METADATA_BYTES
            )
        except NotFoundError:
            raise UntrustedIndexError(
                f"plugin server {addr} serves no signed index (no /tuf/root.json); remote "
                "mode installs only what a signed index lists, so it is refused (only "
                "PLUGDOCK_SIGNATURE_POLICY=off, for air-gapped development, goes without)"
            ) from None
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


def target_path(plugin_id: str, version: str) -> str:
    """The name of a package in the signed index."""
    return f"{plugin_id}/{version}.zip"


def by_plugin(signed: dict[str, Target]) -> dict[tuple[str, str], Target]:
    """The targets named like packages, by ``(plugin id, version)``; others are left out."""
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


def plugin_versions(signed: dict[str, Target]) -> dict[str, dict[str, Target]]:
    """``{plugin id: {version: Target}}``: the only list of versions a host chooses from."""
    found: dict[str, dict[str, Target]] = {}
    for (plugin_id, version), target in by_plugin(signed).items():
        found.setdefault(plugin_id, {})[version] = target
    return found


def _vouched(targets: Any) -> dict[str, Target]:
    """The well-formed targets, with the signer key the index records (custom data)."""
    found = {}
    for path, target in targets.targets.items():
        sha = target.hashes.get("sha256", "")
        if isinstance(target.length, int) and _HEX64.fullmatch(sha):
            custom = target.unrecognized_fields.get("custom")
            signer = custom.get("signer_key_id") if isinstance(custom, dict) else None
            if signer is not None and not (isinstance(signer, str) and _HEX64.fullmatch(signer)):
                continue  # a record this host cannot hold the package to: not offered
            data = MappingProxyType(dict(custom)) if isinstance(custom, dict) else None
            found[path] = Target(target.length, sha, signer, data or MappingProxyType({}))
    return found


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
