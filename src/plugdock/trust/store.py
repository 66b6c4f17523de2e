"""The instance's trust store, and the signature policy the installer applies.

``PLUGDOCK_HOME/trust/`` holds what this instance trusts::

    trust/
    ├── keys/<key id>.json          publisher keys: {"key_id", "name", "public_key", "added"}
    └── servers/<url hash>/         one folder per plugin server
        ├── server.json             its URL, when and how its root was pinned
        ├── pinned_root.json        the TUF root this instance started trusting
        ├── highest_seen.json       the newest version of each plugin its index has listed
        └── metadata/               TUF metadata verified so far (newest root, timestamp, ...)

Publisher keys are added by an administrator (``plugdock trust add alice.pub --name
alice``). A server's root is pinned with ``plugdock trust server URL --root root.json``
(the file handed over out of band), or on first use when ``PLUGDOCK_TRUST_ON_FIRST_USE``
is on (the default), with a warning naming the pinned key ids; over plain http only when
``PLUGDOCK_ALLOW_HTTP_PIN`` is on too.

A trusted key is not trusted for every plugin id: each id is bound to the key that first
signed it (:mod:`plugdock.trust.binding`, re-exported here: ``check_signer``,
``bind_signer``, ``rebind_signer``). The verdict's ``key_id`` is that key's fingerprint.

The policy (:class:`~plugdock.config.SignaturePolicy`) decides what happens to a
package::

    status      require      warn              off
    unsigned    refused      installs, warns   installs
    invalid     refused      refused           installs
    untrusted   refused      refused           installs
    trusted     installs     installs          installs
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from plugdock.config import Settings, SignaturePolicy
from plugdock.core.fsutil import write_json_atomic
from plugdock.errors import PlugdockError, SignatureError
from plugdock.package.archive import PackageInfo

# Each plugin id is bound to one publisher key (plugdock.trust.binding); its functions
# are re-exported here, imported on first use (signer_binding needs the database).
_BINDING = ("SignerMismatchError", "bind_signer", "check_signer", "rebind_signer")


def __getattr__(name: str) -> object:
    if name in _BINDING:
        from plugdock.trust import binding as signer_binding

        return getattr(signer_binding, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# cryptography (through plugdock.trust.signing) is imported where a key or signature is handled:
# commands that only name a server (normalize_server_url, pinned_root) do not load it.
if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

_NAME = re.compile(r"^[^\x00-\x1f\x7f/\\]{1,100}$")
_KEY_ID = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class TrustedKey:
    key_id: str
    name: str
    public_key: Ed25519PublicKey
    added: str

    @property
    def label(self) -> str:
        """How a signer is recorded: ``alice (1a2b3c4d5e6f7081)``."""
        return f"{self.name} ({self.key_id[:16]})"


class TrustStore:
    """Publisher keys this instance trusts.

    >>> store = TrustStore(settings.trust_dir)  # doctest: +SKIP
    >>> store.add(load_public_key(Path("alice.pub")), "alice")  # doctest: +SKIP
    """

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.keys_dir = self.folder / "keys"

    def add(self, public_key: Ed25519PublicKey, name: str) -> TrustedKey:
        if not _NAME.fullmatch(name):
            raise PlugdockError(f"{name!r} is not a usable name (1-100 printable characters)")
        from plugdock.trust.signing import key_id, raw_public_bytes

        kid = key_id(public_key)
        existing = self.get(kid)
        if existing is not None:
            raise PlugdockError(f"that key is already trusted as {existing.label}")
        if any(k.name == name for k in self.list()):
            raise PlugdockError(f"a key named {name!r} is already trusted; pick another name")
        added = datetime.now(UTC).replace(microsecond=0).isoformat()
        self.keys_dir.mkdir(parents=True, exist_ok=True)
        write_json_atomic(
            self.keys_dir / f"{kid}.json",
            {
                "key_id": kid,
                "name": name,
                "public_key": base64.b64encode(raw_public_bytes(public_key)).decode(),
                "added": added,
            },
        )
        return TrustedKey(kid, name, public_key, added)

    def get(self, kid: str) -> TrustedKey | None:
        if not _KEY_ID.fullmatch(kid):
            return None
        path = self.keys_dir / f"{kid}.json"
        if not path.is_file():
            return None
        return _read_key(path)

    def list(self) -> list[TrustedKey]:
        if not self.keys_dir.is_dir():
            return []
        return sorted(
            (_read_key(p) for p in self.keys_dir.glob("*.json")), key=lambda k: k.name.lower()
        )

    def find(self, name_or_id: str) -> TrustedKey:
        """A trusted key by its name, its full id, or an unambiguous id prefix (8+ characters)."""
        keys = self.list()
        matches = [k for k in keys if k.name == name_or_id] or [
            k for k in keys if len(name_or_id) >= 8 and k.key_id.startswith(name_or_id.lower())
        ]
        if not matches:
            raise PlugdockError(f"no trusted key named or with id {name_or_id!r}")
        if len(matches) > 1:
            raise PlugdockError(f"{name_or_id!r} matches {len(matches)} keys; give the full id")
        return matches[0]

    def remove(self, name_or_id: str) -> TrustedKey:
        """Remove a key by its name, its full id, or an unambiguous id prefix (8+ characters)."""
        found = self.find(name_or_id)
        (self.keys_dir / f"{found.key_id}.json").unlink()
        return found


def _read_key(path: Path) -> TrustedKey:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from plugdock.trust.signing import key_id

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        public = Ed25519PublicKey.from_public_bytes(base64.b64decode(data["public_key"]))
        if key_id(public) != data["key_id"] or path.stem != data["key_id"]:
            raise ValueError("key id does not match the key")
        return TrustedKey(data["key_id"], str(data["name"]), public, str(data.get("added", "")))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise PlugdockError(f"trust store entry {path} is damaged ({exc})") from None


# ------------------------------------------------------------------------------ policy


@dataclass(frozen=True)
class SignatureVerdict:
    """The outcome of the policy for one package: who signed it (if trusted) and warnings."""

    status: str  # unsigned | invalid | untrusted | trusted | unchecked
    signer: str | None
    key_id: str | None
    detail: str
    warnings: list[str] = field(default_factory=list)


def examine(info: PackageInfo, store: TrustStore) -> SignatureVerdict:
    """Classify a package's signature against the trust store, without applying a policy."""
    from plugdock.trust.signing import read_signature

    check = read_signature(info)
    if check.status != "valid":
        return SignatureVerdict(check.status, None, check.key_id, check.detail)
    assert check.key_id is not None
    trusted = store.get(check.key_id)
    if trusted is None:
        return SignatureVerdict(
            "untrusted",
            None,
            check.key_id,
            f"signed by {check.signer!r} with key {check.key_id[:16]}, "
            "which this instance does not trust (plugdock trust add)",
        )
    return SignatureVerdict(
        "trusted", trusted.label, check.key_id, f"signed by trusted key {trusted.label}"
    )


def enforce(info: PackageInfo, settings: Settings) -> SignatureVerdict:
    """Apply the instance's signature policy to a verified package.

    Returns the verdict (``signer`` is the trusted key's label, for the install record);
    raises :class:`~plugdock.errors.SignatureError` when the policy refuses the package.
    """
    policy = settings.effective_signature_policy
    meta = info.metadata
    if policy is SignaturePolicy.OFF:
        return SignatureVerdict("unchecked", None, None, "signature checks are off")

    verdict = examine(info, TrustStore(settings.trust_dir))
    what = f"{meta.id} {meta.version}"
    if verdict.status == "trusted":
        return verdict
    if verdict.status == "unsigned":
        if policy is SignaturePolicy.REQUIRE:
            raise SignatureError(
                f"{what} is not signed, and the signature policy requires a trusted signature "
                f"(policy {policy.value}; sign it with 'plugdock sign')"
            )
        warning = f"{what} is not signed; installing it anyway (signature policy {policy.value})"
        return SignatureVerdict("unsigned", None, None, verdict.detail, [warning])
    if verdict.status == "invalid":
        raise SignatureError(f"{what}: bad signature: {verdict.detail}")
    raise SignatureError(f"{what}: {verdict.detail}")


# ------------------------------------------------------------------- plugin servers


#: Per server: the highest version of each plugin its signed index has listed (see
#: ``sources.signed_index.SignedIndexClient._refuse_downgrades``); pinning a root again
#: forgets it.
HIGHEST_SEEN_FILE = "highest_seen.json"


def normalize_server_url(url: str) -> str:
    url = url.strip().rstrip("/")
    if not re.match(r"^https?://[^/\s]+", url):
        raise PlugdockError(f"{url!r} is not an http(s) URL")
    return url


def server_dir(settings: Settings, url: str) -> Path:
    """The trust folder of one plugin server (by a hash of its normalized URL)."""
    slug = hashlib.sha256(normalize_server_url(url).encode()).hexdigest()[:16]
    return settings.trust_dir / "servers" / slug


def pinned_root(settings: Settings, url: str) -> bytes | None:
    path = server_dir(settings, url) / "pinned_root.json"
    return path.read_bytes() if path.is_file() else None


def pin_server_root(settings: Settings, url: str, root: bytes, *, how: str) -> list[str]:
    """Start trusting ``root`` (TUF root metadata) for the server at ``url``; returns its key ids.

    The root must be valid TUF root metadata signed by its own root keys. Pinning
    replaces any earlier pin and forgets the metadata seen so far.
    """
    from tuf.api.exceptions import UnsignedMetadataError
    from tuf.api.metadata import Metadata, Root

    try:
        md = Metadata.from_bytes(root)
    except Exception as exc:
        raise PlugdockError(f"not TUF root metadata ({exc})") from None
    if not isinstance(md.signed, Root):
        raise PlugdockError(f"not TUF root metadata (it is {md.signed.type} metadata)")
    try:
        md.signed.verify_delegate(Root.type, md.signed_bytes, md.signatures)
    except UnsignedMetadataError as exc:
        raise PlugdockError(f"the root is not signed by its own root keys ({exc})") from None
    folder = server_dir(settings, url)
    metadata = folder / "metadata"
    if metadata.exists():
        import shutil

        shutil.rmtree(metadata)
    (folder / HIGHEST_SEEN_FILE).unlink(missing_ok=True)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "pinned_root.json").write_bytes(root)
    key_ids = sorted(md.signed.roles[Root.type].keyids)
    write_json_atomic(
        folder / "server.json",
        {
            "url": normalize_server_url(url),
            "pinned": datetime.now(UTC).replace(microsecond=0).isoformat(),
            "how": how,
            "root_version": md.signed.version,
            "root_key_ids": key_ids,
        },
    )
    return key_ids


def pinned_servers(settings: Settings) -> list[dict[str, object]]:
    folder = settings.trust_dir / "servers"
    if not folder.is_dir():
        return []
    found = []
    for path in sorted(folder.glob("*/server.json")):
        try:
            found.append(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            continue
    return found
