"""The server's signed index: TUF metadata (root, targets, snapshot, timestamp) for its packages.

Every published package is a TUF *target* named ``<plugin id>/<version>.zip`` with its
length and SHA-256. Hosts verify this metadata with ``tuf.ngclient`` before trusting the
unsigned ``manifest.json`` catalog or any downloaded byte, which protects them from a
tampered index (bad signature), a replayed older one (rollback: versions only grow),
a frozen one (every role expires; the timestamp after a day), and packages the signed
targets do not vouch for (length and hash).

Layout in the server's data folder::

    keys/{root,targets,snapshot,timestamp}.key   Ed25519 private keys (0600)
    tuf/<N>.root.json                            every root version (clients walk the chain)
    tuf/<N>.targets.json, tuf/<N>.snapshot.json  consistent snapshots
    tuf/timestamp.json                           the only unversioned file clients fetch

Online roles (timestamp, snapshot, targets) are re-signed whenever a package is
published, and lazily when a client asks for ``timestamp.json`` and any role has used
up half its lifetime. The root key signs only roots; keep ``keys/root.key`` offline in a
real deployment (nothing but root renewal needs it).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from securesystemslib.signer import CryptoSigner
from tuf.api.metadata import (
    Metadata,
    MetaFile,
    Root,
    Snapshot,
    TargetFile,
    Targets,
    Timestamp,
)
from tuf.api.serialization.json import JSONSerializer

from plugdock.core.fsutil import atomic_write
from plugdock.instance.locking import ThreadAndFileLock

ROLES = (Root.type, Targets.type, Snapshot.type, Timestamp.type)
_SERIALIZER = JSONSerializer(compact=True)


@dataclass(frozen=True)
class Lifetimes:
    """How long each role's metadata stays valid after it is signed."""

    root: timedelta = timedelta(days=365)
    targets: timedelta = timedelta(days=90)
    snapshot: timedelta = timedelta(days=7)
    timestamp: timedelta = timedelta(days=1)

    def of(self, role: str) -> timedelta:
        return getattr(self, role)  # type: ignore[no-any-return]


def target_path(plugin_id: str, version: str) -> str:
    """The TUF target name of one package."""
    return f"{plugin_id}/{version}.zip"


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


log = logging.getLogger("plugdock.server")


class SignedIndex:
    """Maintains the TUF repository of one plugin server.

    >>> index = SignedIndex(Path("data"))
    >>> index.add_target("ai_chatbot", "1.0.0", length=1234, sha256="ab..")  # doctest: +SKIP
    """

    def __init__(self, data_dir: Path, lifetimes: Lifetimes | None = None) -> None:
        self.data_dir = Path(data_dir)
        self.keys_dir = self.data_dir / "keys"
        self.metadata_dir = self.data_dir / "tuf"
        self.lifetimes = lifetimes or Lifetimes()
        self._lock = ThreadAndFileLock(self.data_dir / ".index.lock")
        self._signers: dict[str, CryptoSigner] = {}

    # ------------------------------------------------------------------ set-up

    def ensure(self) -> None:
        """Create keys and the first metadata if this is a new server; otherwise load the keys."""
        with self._lock:
            self.keys_dir.mkdir(parents=True, exist_ok=True)
            os.chmod(self.keys_dir, 0o700)
            self.metadata_dir.mkdir(parents=True, exist_ok=True)
            new = not (self.metadata_dir / "timestamp.json").exists()
            for role in ROLES:
                # Keys are made only with the first metadata: a key generated later would be
                # one the published root does not list, and every host would refuse the index.
                key = self._key(role, create=new)
                if key is not None:
                    self._signers[role] = CryptoSigner(key)
            missing = [r for r in ROLES if r not in self._signers and r != Root.type]
            if missing:
                raise RuntimeError(
                    f"signing keys missing from {self.keys_dir}: {', '.join(missing)} "
                    "(restore them; new keys would not match the published root)"
                )
            if new:
                self._create()
            else:
                self._renew_if_needed()

    def _key(self, role: str, *, create: bool) -> Ed25519PrivateKey | None:
        path = self.keys_dir / f"{role}.key"
        if path.exists():
            key = serialization.load_pem_private_key(path.read_bytes(), password=None)
            if not isinstance(key, Ed25519PrivateKey):
                raise ValueError(f"{path} is not an Ed25519 key")
            return key
        if not create:
            return None
        key = Ed25519PrivateKey.generate()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(
                key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                )
            )
        return key

    def _create(self) -> None:
        now = _now()
        root = Root(expires=now + self.lifetimes.root, consistent_snapshot=True)
        for role in ROLES:
            root.add_key(self._signers[role].public_key, role)
        self._write(Metadata(root))
        targets = Targets(expires=now + self.lifetimes.targets)
        self._write(Metadata(targets))
        self._write_snapshot_and_timestamp(targets.version)

    # ------------------------------------------------------------------ reading

    def _load(self, role: str) -> Metadata[Any]:
        if role == Timestamp.type:
            return Metadata.from_file(str(self.metadata_dir / "timestamp.json"))
        version = self._current_version(role)
        return Metadata.from_file(str(self.metadata_dir / f"{version}.{role}.json"))

    def _current_version(self, role: str) -> int:
        pointer = self.metadata_dir / f"{role}.current"
        return int(pointer.read_text().strip())

    def root_bytes(self, version: int = 1) -> bytes:
        return (self.metadata_dir / f"{version}.root.json").read_bytes()

    def root_key_ids(self) -> list[str]:
        root: Root = self._load(Root.type).signed
        return sorted(root.roles[Root.type].keyids)

    def targets(self) -> dict[str, TargetFile]:
        return dict(self._load(Targets.type).signed.targets)

    def file(self, name: str) -> Path | None:
        """The metadata file a client asks for, re-signing stale roles first for the timestamp."""
        if name == "timestamp.json":
            with self._lock:
                self._renew_if_needed()
        path = self.metadata_dir / name
        return path if path.is_file() and name.endswith(".json") else None

    # ------------------------------------------------------------------ writing

    def add_target(
        self, plugin_id: str, version: str, *, length: int, sha256: str, custom: dict[str, Any]
    ) -> None:
        """Vouch for one package: new targets, snapshot and timestamp versions."""
        with self._lock:
            md = self._load(Targets.type)
            targets: Targets = md.signed
            path = target_path(plugin_id, version)
            targets.targets[path] = TargetFile(
                length=length,
                hashes={"sha256": sha256},
                path=path,
                unrecognized_fields={"custom": custom},
            )
            self._bump(md, self.lifetimes.targets)
            self._write_snapshot_and_timestamp(targets.version)

    def resign_timestamp(self, *, expires: datetime | None = None) -> None:
        """Sign a new timestamp now (tests use ``expires`` in the past to make a frozen index)."""
        with self._lock:
            md = self._load(Timestamp.type)
            self._bump(md, self.lifetimes.timestamp, expires=expires)

    def _renew_if_needed(self) -> None:
        now = _now()

        def stale(md: Metadata[Any], lifetime: timedelta) -> bool:
            expires: datetime = md.signed.expires
            return expires - now < lifetime / 2

        root = self._load(Root.type)
        if stale(root, self.lifetimes.root):
            if Root.type in self._signers:
                self._bump(root, self.lifetimes.root)
            else:  # the root key is kept offline, as docs/publishing.md advises
                log.warning(
                    "the root metadata expires %s; bring keys/root.key back to renew it",
                    root.signed.expires,
                )
        targets = self._load(Targets.type)
        snapshot = self._load(Snapshot.type)
        if stale(targets, self.lifetimes.targets):
            self._bump(targets, self.lifetimes.targets)
            self._write_snapshot_and_timestamp(targets.signed.version)
        elif stale(snapshot, self.lifetimes.snapshot):
            self._write_snapshot_and_timestamp(targets.signed.version)
        else:
            timestamp = self._load(Timestamp.type)
            if stale(timestamp, self.lifetimes.timestamp):
                self._bump(timestamp, self.lifetimes.timestamp)

    def _write_snapshot_and_timestamp(self, targets_version: int) -> None:
        now = _now()
        if (self.metadata_dir / "snapshot.current").exists():
            md = self._load(Snapshot.type)
            md.signed.meta["targets.json"] = MetaFile(version=targets_version)
            self._bump(md, self.lifetimes.snapshot)
            snapshot_version = md.signed.version
        else:
            snapshot = Snapshot(expires=now + self.lifetimes.snapshot)
            snapshot.meta["targets.json"] = MetaFile(version=targets_version)
            self._write(Metadata(snapshot))
            snapshot_version = snapshot.version
        if (self.metadata_dir / "timestamp.json").exists():
            md = self._load(Timestamp.type)
            md.signed.snapshot_meta = MetaFile(version=snapshot_version)
            self._bump(md, self.lifetimes.timestamp)
        else:
            timestamp = Timestamp(
                expires=now + self.lifetimes.timestamp,
                snapshot_meta=MetaFile(version=snapshot_version),
            )
            self._write(Metadata(timestamp))

    def _bump(
        self, md: Metadata[Any], lifetime: timedelta, *, expires: datetime | None = None
    ) -> None:
        md.signed.version += 1
        md.signed.expires = expires or (_now() + lifetime)
        self._write(md)

    def _write(self, md: Metadata[Any]) -> None:
        role = md.signed.type
        md.signatures.clear()
        md.sign(self._signers[role])
        data = md.to_bytes(_SERIALIZER)
        if role == Timestamp.type:
            _atomic_write(self.metadata_dir / "timestamp.json", data)
            return
        _atomic_write(self.metadata_dir / f"{md.signed.version}.{role}.json", data)
        _atomic_write(self.metadata_dir / f"{role}.current", f"{md.signed.version}\n".encode())
        if role == Root.type:
            _atomic_write(self.metadata_dir / "root.json", data)


def _atomic_write(path: Path, data: bytes) -> None:
    with atomic_write(path, mode=0o644) as handle:  # public metadata, served to anyone
        handle.write(data)


__all__ = ["Lifetimes", "SignedIndex", "target_path"]
