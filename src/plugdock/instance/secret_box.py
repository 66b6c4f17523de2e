"""Plugin secrets at rest: AES-256-GCM with a key kept outside the database.

The key is ``PLUGDOCK_SETTINGS_KEY`` (base64 of 32 bytes) or, when that is unset, the file
``$PLUGDOCK_HOME/settings.key``, created 0600 the first time a secret is stored. Every
replica must use the same key (set the variable, or copy the file): a replica with another
key cannot read the secrets and says so.

The plugin id and the setting's name are the AEAD's associated data, so a ciphertext
copied to another plugin's row, or another key's, fails to decrypt instead of leaking::

    box = SecretBox.from_settings(settings)
    sealed = box.seal("sms_notifications", "api_key", "s3cret")
    box.open("sms_notifications", "api_key", sealed)  # 's3cret'
"""

from __future__ import annotations

import base64
import binascii
import os
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from plugdock.config import Settings
from plugdock.core.fsutil import PRIVATE_FILE_MODE
from plugdock.errors import SecretKeyError

KEY_ENV = "PLUGDOCK_SETTINGS_KEY"
_VERSION = b"\x01"  # the sealed format: version, 12-byte nonce, ciphertext and tag
_NONCE = 12


def parse_key(text: str, *, source: str = KEY_ENV) -> bytes:
    """The 32 bytes of a base64 key; SecretKeyError naming ``source`` otherwise."""
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise SecretKeyError(
            f"{source} is not base64 (make one: plugdock config --new-key)"
        ) from None
    if len(key) != 32:
        raise SecretKeyError(f"{source} must be base64 of 32 bytes, not {len(key)}")
    return key


def new_key() -> str:
    """A fresh key, as ``PLUGDOCK_SETTINGS_KEY`` holds it."""
    return base64.b64encode(AESGCM.generate_key(bit_length=256)).decode()


def _key_file(path: Path, *, create: bool) -> bytes | None:
    if not path.exists():
        if not create:
            return None
        data = new_key().encode()
        try:  # O_EXCL: two workers needing it at once end up with the same key
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
    return parse_key(path.read_text(), source=str(path))


class SecretBox:
    """Seals and opens plugin secrets with one AES-GCM key."""

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)

    @classmethod
    def from_settings(cls, settings: Settings, *, create: bool = True) -> SecretBox | None:
        """The instance's box: the env key, else the key file (created when ``create``)."""
        if settings.settings_key is not None:
            return cls(parse_key(settings.settings_key.get_secret_value()))
        key = _key_file(settings.settings_key_path, create=create)
        return None if key is None else cls(key)

    @staticmethod
    def _aad(plugin_id: str, name: str) -> bytes:
        return f"plugdock-setting\0{plugin_id}\0{name}".encode()

    def seal(self, plugin_id: str, name: str, value: str) -> str:
        """The secret encrypted for this plugin and setting, as base64 text."""
        nonce = os.urandom(_NONCE)
        sealed = self._aead.encrypt(nonce, value.encode(), self._aad(plugin_id, name))
        return base64.b64encode(_VERSION + nonce + sealed).decode()

    def open(self, plugin_id: str, name: str, sealed: str) -> str:
        """The secret; SecretKeyError when it was sealed with another key, for another
        plugin or setting, or changed since."""
        try:
            raw = base64.b64decode(sealed, validate=True)
        except (binascii.Error, ValueError):
            raw = b""
        if len(raw) < 1 + _NONCE + 16 or raw[:1] != _VERSION:
            raise SecretKeyError(f"{plugin_id}.{name}: the stored secret is damaged")
        try:
            plain = self._aead.decrypt(
                raw[1 : 1 + _NONCE], raw[1 + _NONCE :], self._aad(plugin_id, name)
            )
        except InvalidTag:
            raise SecretKeyError(
                f"{plugin_id}.{name}: the stored secret does not open with this key "
                f"(another {KEY_ENV} or settings.key than the one that saved it, or the row "
                "was changed); set the right key, or set the secret again"
            ) from None
        return plain.decode()
