"""Package signatures: Ed25519 keys, ``SIGNATURE.json``, signing and checking.

A signature signs the package's ``CHECKSUMS.sha256`` (through its SHA-256), and that
file lists the SHA-256 of every other file, so one signature covers every byte of the
package. ``SIGNATURE.json`` sits beside it in the zip::

    {
      "format": "plugdock-signature-v1",
      "signed": {"checksums_sha256": "…", "key_id": "…", "plugin_id": "ai_chatbot",
                 "version": "1.0.0", "signer": "alice"},
      "public_key": "<base64 of the 32 raw public key bytes>",
      "signature": "<base64 Ed25519 signature>"
    }

The signature is over ``b"plugdock-signature-v1\\n"`` + the canonical JSON of
``signed`` (sorted keys, no spaces, UTF-8). ``key_id`` is the SHA-256 of the raw public
key. The embedded public key only says who claims to have signed; whether that key is
*trusted* is decided by the instance's trust store (:mod:`plugdock.trust.store`).

Typical use::

    private, public = generate_keypair(Path("keys"), "alice")   # keys/alice.key (0600), .pub
    sign_package(Path("ai_chatbot_v1.0.0.zip"), load_private_key(private))
    check = read_signature(info)          # info: PackageInfo from inspect/extract_package
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from plugdock.core.fsutil import atomic_write
from plugdock.errors import PlugdockError
from plugdock.package.archive import Limits, PackageInfo, extract_package
from plugdock.package.layout import CHECKSUMS_FILE, SIGNATURE_FILE
from plugdock.package.pack import (
    ZIP_COMPRESS_LEVEL,
    ZIP_CREATE_SYSTEM,
    ZIP_DATE_TIME,
    ZIP_FILE_ATTR,
)

SIGNATURE_FORMAT = "plugdock-signature-v1"
_DOMAIN = SIGNATURE_FORMAT.encode() + b"\n"
_HEX64 = r"^[0-9a-f]{64}$"
_SIGNER = re.compile(r"^[^\x00-\x1f\x7f]{1,100}$")


# ------------------------------------------------------------------------------- keys


def key_id(public_key: Ed25519PublicKey) -> str:
    """The id of a public key: the SHA-256 (hex) of its 32 raw bytes."""
    return hashlib.sha256(raw_public_bytes(public_key)).hexdigest()


def raw_public_bytes(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def generate_keypair(directory: Path, name: str, *, overwrite: bool = False) -> tuple[Path, Path]:
    """Write ``<name>.key`` (PKCS#8 PEM, mode 0600) and ``<name>.pub`` (PEM) into ``directory``.

    >>> private, public = generate_keypair(Path("keys"), "alice")  # doctest: +SKIP
    """
    if not re.fullmatch(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$", name):
        raise PlugdockError(f"{name!r} is not a usable key name (letters, digits, _ . -)")
    directory.mkdir(parents=True, exist_ok=True)
    private_path, public_path = directory / f"{name}.key", directory / f"{name}.pub"
    for path in (private_path, public_path):
        if path.exists() and not overwrite:
            raise PlugdockError(f"{path} already exists; not overwriting a key")
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(private_path, flags, 0o600)
    with os.fdopen(fd, "wb") as handle:
        os.fchmod(handle.fileno(), 0o600)
        handle.write(pem)
    public_path.write_bytes(public_pem(key.public_key()))
    return private_path, public_path


def public_pem(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def load_private_key(path: Path) -> Ed25519PrivateKey:
    """Read an Ed25519 private key written by :func:`generate_keypair` (PEM, unencrypted)."""
    try:
        key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    except OSError as exc:
        raise PlugdockError(f"cannot read key {path}: {exc.strerror}") from None
    except (ValueError, TypeError) as exc:
        raise PlugdockError(f"{path} is not an unencrypted PEM private key ({exc})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise PlugdockError(f"{path} is not an Ed25519 key")
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    """Read an Ed25519 public key: a ``.pub`` PEM file, or a private key file (its public half)."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise PlugdockError(f"cannot read key {path}: {exc.strerror}") from None
    return parse_public_key(data, source=str(path))


def parse_public_key(data: bytes, *, source: str = "key") -> Ed25519PublicKey:
    """A public key from PEM bytes, or from the base64 of its 32 raw bytes."""
    key: object
    try:
        if b"PRIVATE KEY" in data:
            key = serialization.load_pem_private_key(data, password=None).public_key()
        elif b"-----BEGIN" in data:
            key = serialization.load_pem_public_key(data)
        else:
            key = Ed25519PublicKey.from_public_bytes(base64.b64decode(data.strip(), validate=True))
    except (ValueError, TypeError, binascii.Error) as exc:
        raise PlugdockError(f"{source} is not an Ed25519 public key ({exc})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise PlugdockError(f"{source} is not an Ed25519 key")
    return key


# ------------------------------------------------------------------------- the format


class SignedPart(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    checksums_sha256: str = Field(pattern=_HEX64)
    key_id: str = Field(pattern=_HEX64)
    plugin_id: str
    version: str
    signer: str


class SignatureFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    format: str
    signed: SignedPart
    public_key: str
    signature: str


def _message(signed: SignedPart) -> bytes:
    body = json.dumps(signed.model_dump(), sort_keys=True, separators=(",", ":"))
    return _DOMAIN + body.encode("utf-8")


def make_signature(
    checksums_text: bytes, plugin_id: str, version: str, key: Ed25519PrivateKey, signer: str
) -> bytes:
    """The bytes of a ``SIGNATURE.json`` over ``checksums_text`` (deterministic)."""
    if not _SIGNER.fullmatch(signer):
        raise PlugdockError(f"signer name {signer!r} must be 1-100 printable characters")
    public = key.public_key()
    signed = SignedPart(
        checksums_sha256=hashlib.sha256(checksums_text).hexdigest(),
        key_id=key_id(public),
        plugin_id=plugin_id,
        version=version,
        signer=signer,
    )
    document = SignatureFile(
        format=SIGNATURE_FORMAT,
        signed=signed,
        public_key=base64.b64encode(raw_public_bytes(public)).decode(),
        signature=base64.b64encode(key.sign(_message(signed))).decode(),
    )
    return (json.dumps(document.model_dump(), indent=2, sort_keys=True) + "\n").encode()


@dataclass(frozen=True)
class SignatureCheck:
    """What a package's signature says, before any trust decision.

    ``status``: ``unsigned``, ``invalid`` (malformed, tampered, or not matching the
    package), or ``valid`` (mathematically sound: the embedded key signed these
    checksums). Whether the key is trusted is :mod:`plugdock.trust.store`'s business.
    """

    status: str
    detail: str
    key_id: str | None = None
    signer: str | None = None  # the name the signer gave (self-asserted)
    public_key: Ed25519PublicKey | None = None


def read_signature(info: PackageInfo) -> SignatureCheck:
    """Check a verified package's ``SIGNATURE.json`` against its checksums and metadata."""
    if info.signature is None:
        return SignatureCheck("unsigned", "the package is not signed")
    try:
        document = SignatureFile.model_validate_json(info.signature)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "document"
        return SignatureCheck("invalid", f"{SIGNATURE_FILE} is malformed ({where}: {first['msg']})")
    signed = document.signed
    if document.format != SIGNATURE_FORMAT:
        return SignatureCheck("invalid", f"{SIGNATURE_FILE} has unknown format {document.format!r}")
    try:
        public = Ed25519PublicKey.from_public_bytes(
            base64.b64decode(document.public_key, validate=True)
        )
        raw_signature = base64.b64decode(document.signature, validate=True)
    except (ValueError, binascii.Error):
        return SignatureCheck("invalid", f"{SIGNATURE_FILE} holds a malformed key or signature")
    claimed: dict[str, Any] = {"key_id": signed.key_id, "signer": signed.signer}
    if key_id(public) != signed.key_id:
        return SignatureCheck(
            "invalid", "the embedded public key does not match its key id", **claimed
        )
    try:
        public.verify(raw_signature, _message(signed))
    except InvalidSignature:
        return SignatureCheck("invalid", "the signature does not verify (tampered)", **claimed)
    if signed.checksums_sha256 != hashlib.sha256(info.checksums_text).hexdigest():
        return SignatureCheck(
            "invalid", f"the signature is for other contents ({CHECKSUMS_FILE} differs)", **claimed
        )
    meta = info.metadata
    if (signed.plugin_id, signed.version) != (meta.id, meta.version):
        return SignatureCheck(
            "invalid",
            f"the signature is for {signed.plugin_id} {signed.version}, "
            f"not {meta.id} {meta.version}",
            **claimed,
        )
    return SignatureCheck(
        "valid", "the signature is valid", signed.key_id, signed.signer, public_key=public
    )


# ---------------------------------------------------------------------------- signing


def sign_package(
    zip_path: Path,
    key: Ed25519PrivateKey,
    signer: str,
    *,
    output: Path | None = None,
    limits: Limits = Limits(),
) -> Path:
    """Add (or replace) ``SIGNATURE.json`` in a package; returns the signed zip's path.

    The package is verified first (every check ``extract_package`` runs), then rewritten
    deterministically the way ``plugdock pack`` writes it, with the signature added, so
    signing the same package with the same key always gives the same bytes. ``output``
    defaults to replacing ``zip_path`` (atomically).
    """
    zip_path = Path(zip_path)
    output = Path(output) if output is not None else zip_path
    with tempfile.TemporaryDirectory(prefix="plugdock-sign-") as scratch:
        unpacked = Path(scratch) / "package"
        info = extract_package(zip_path, unpacked, limits)
        signature = make_signature(
            info.checksums_text, info.metadata.id, info.metadata.version, key, signer
        )
        entries: dict[str, Path | bytes] = {name: unpacked / name for name in info.files}
        entries[CHECKSUMS_FILE] = info.checksums_text
        entries[SIGNATURE_FILE] = signature
        output.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(output, mode=0o644) as handle:
            _write_entries(handle, entries)
    return output


def _write_entries(handle: BinaryIO, entries: dict[str, Path | bytes]) -> None:
    """The deterministic zip layout of :mod:`plugdock.package.pack`, for ready-made entries."""
    with zipfile.ZipFile(handle, "w") as archive:
        for name in sorted(entries):
            source = entries[name]
            data = source if isinstance(source, bytes) else source.read_bytes()
            info = zipfile.ZipInfo(name, date_time=ZIP_DATE_TIME)
            info.create_system = ZIP_CREATE_SYSTEM
            info.external_attr = ZIP_FILE_ATTR
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data, zipfile.ZIP_DEFLATED, compresslevel=ZIP_COMPRESS_LEVEL)
