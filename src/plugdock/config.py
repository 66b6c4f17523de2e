"""Settings for one plugdock instance, from the environment or a config file.

Every field reads its env var (``PLUGIN_SOURCE``, ``PLUGDOCK_HOME``, ...) and no other
name; the same names may also be set in a dotenv-style file named by ``PLUGDOCK_CONFIG``.
Paths are resolved against the working directory once, so a process that changes
directory keeps pointing at the same instance.
"""

from __future__ import annotations

import os
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

from pydantic import AliasGenerator, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class PluginSource(StrEnum):
    LOCAL = "local"
    REMOTE = "remote"


class SignaturePolicy(StrEnum):
    """What the installer does with a package's signature (``PLUGDOCK_SIGNATURE_POLICY``).

    ``require``: only packages signed by a key in the instance's trust store install.
    ``warn``: unsigned packages install with a warning; badly signed or untrusted ones never.
    ``off``: signatures and the server's signed index are not checked at all.
    Unset: ``require`` in remote mode, ``warn`` in local mode.
    """

    REQUIRE = "require"
    WARN = "warn"
    OFF = "off"


def _env_name(field_name: str) -> str:
    return f"PLUGDOCK_{field_name.upper()}"


class Settings(BaseSettings):
    # A setting's env var is PLUGDOCK_<FIELD NAME> (any case) unless its Field names another;
    # those few names are public (README) and must not change. The environment and the
    # PLUGDOCK_CONFIG file are read by these names only. Hence no populate_by_name (nor
    # validate_by_name): with it, pydantic-settings also reads the bare field name, so HOME
    # became ``home`` whenever PLUGDOCK_HOME was unset and any SECRET_KEY or ISOLATION on the
    # host configured plugdock. Keyword arguments may still name the field
    # (``load_settings(max_package_bytes=...)``): __init__ renames them to the env names.
    model_config = SettingsConfigDict(
        env_file=os.environ.get("PLUGDOCK_CONFIG"),
        extra="ignore",
        alias_generator=AliasGenerator(validation_alias=_env_name),
        # pydantic-settings before 2.6 reserved "settings_": settings_key is a field here.
        protected_namespaces=("model_validate", "model_dump"),
    )

    plugin_source: PluginSource = Field(PluginSource.LOCAL, validation_alias="PLUGIN_SOURCE")
    plugin_server_url: str | None = Field(None, validation_alias="PLUGIN_SERVER_URL")
    plugin_local_dir: Path = Field(Path("modules"), validation_alias="PLUGIN_LOCAL_DIR")
    home: Path = Field(Path("instance"), validation_alias="PLUGDOCK_HOME")
    database_url: str | None = Field(None, validation_alias="DATABASE_URL")

    # Limits for reading an untrusted package.
    max_package_bytes: int = 100 * 1024 * 1024
    max_package_files: int = 2000
    max_compression_ratio: float = 100.0
    max_request_bytes: int = Field(
        1024 * 1024,
        gt=0,
        description="largest request body the panel reads (the package upload gets "
        "max_package_bytes); larger ones are answered 413",
    )
    recycle_after: int = Field(
        1000, description="plugin mounts/unmounts after which a supervised worker restarts itself"
    )
    sync_interval: float = Field(
        0.5, description="seconds between a worker's checks for plugin changes made elsewhere"
    )
    # Replicas sharing one database (see docs/deploy.md and plugdock.runtime.replicas).
    converge_timeout: float = Field(
        5.0, ge=0, description="seconds a change's answer waits for every live replica to serve it"
    )
    replica_heartbeat: float = Field(
        2.0, gt=0, description="seconds between a serving process's heartbeats in plugdock_replicas"
    )
    replica_stale_after: float = Field(
        10.0, gt=0, description="a replica without a heartbeat for this long counts as gone"
    )
    lock_timeout: float = 60.0
    # Slow clients (plugdock.core.slow_clients): a request's headers, then its body, must
    # arrive within these; past them the connection gets 408 and is closed.
    header_timeout: float = Field(
        10.0, gt=0, description="seconds from a request's first byte until its headers are in"
    )
    body_timeout: float = Field(
        120.0, gt=0, description="seconds from a request's headers until its whole body is in"
    )

    # Remote source and trust (see docs/publishing.md).
    signature_policy: SignaturePolicy | None = None
    download_timeout: float = 30.0
    download_retries: int = Field(3, ge=1)
    trust_on_first_use: bool = True
    # First-use pinning over plain http lets anyone on the path choose the root: opt-in only.
    allow_http_pin: bool = False

    # Panel users and tokens (see plugdock.host.auth).
    admin_password: SecretStr | None = None
    secret_key: SecretStr | None = None
    # Encrypts plugin secrets at rest (plugdock.instance.secret_box): base64 of 32 bytes;
    # unset: the key file settings_key_path, created on first need. Replicas share one.
    settings_key: SecretStr | None = None
    token_minutes: float = Field(60.0, gt=0)
    # Addresses (IPs or CIDRs, comma-separated) of reverse proxies whose X-Forwarded-For and
    # X-Forwarded-Proto are believed; empty: none, the peer's address is the client's.
    trusted_proxies: str = ""
    # The web UI's session cookie: Secure when true; unset: Secure when the request is https.
    cookie_secure: bool | None = None

    # Where plugin backends run (plugdock.isolation): each in a confined process of its own,
    # or inside the panel (development, and plugins the operator trusts with everything).
    isolation: Literal["process", "inprocess"] = "inprocess"
    plugin_memory_mb: int = Field(
        512,
        ge=64,
        description=(
            "memory of one plugin (MiB): each of its processes' address space, and the "
            "watchdog's limit for its whole process tree plus its /tmp and /dev/shm"
        ),
    )
    plugin_processes: int = Field(
        64, ge=8, le=4096, description="processes (threads count) one plugin may run"
    )
    plugin_data_mb: int = Field(
        1024, ge=1, description="what a plugin's data folder may hold (MiB); past it, stopped"
    )
    plugin_timeout: float = Field(
        30.0, gt=0, description="seconds a plugin process may take to answer a request (then 504)"
    )
    # A panel running as root runs each plugin process as a host uid/gid of its own in
    # base+1 .. base+65535; never root, and no host user may have one of these ids
    # (plugdock.isolation.sandbox.plugin_user).
    plugin_uid_base: int = Field(
        200000,
        ge=65536,  # above the 16-bit ids: never ``nobody`` (65534) or a system account
        le=(1 << 31) - 65536,
        description="first of the 65,536 host uids/gids a root panel runs plugin processes as",
    )
    # How long one lifecycle hook (on_install, on_upgrade, on_uninstall) may run before the
    # operation gives up on it and fails (plugdock.plugin_code.hook_time; docs/isolation.md).
    hook_timeout: float = Field(
        60.0, gt=0, description="seconds a plugin's on_install/on_upgrade/on_uninstall may run"
    )
    # How long one plugin filter may take inside a request (plugdock.runtime.filters).
    filter_timeout: float = Field(
        1.0, gt=0, le=60, description="seconds one plugin filter may run inside a request"
    )
    # How long a plugin's declared health path may take to answer during install/upgrade.
    health_timeout: float = Field(5.0, gt=0)

    @property
    def full_rights_notice(self) -> str | None:
        """What ``inprocess`` means, in plain words, for the admin about to install (the
        install plan, ``install --dry-run``, the marketplace card, the upload dialog);
        None in process mode."""
        if self.isolation != "inprocess":
            return None
        return INPROCESS_NOTICE

    def __init__(self, **values: Any) -> None:
        """Keywords may name a field (``home=``) or its env var (``PLUGDOCK_HOME=``)."""
        super().__init__(**{_ENV_NAMES.get(key, key): value for key, value in values.items()})

    @field_validator("plugin_local_dir", "home")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    # -- the instance folder: every path in it is named here, nowhere else -----------------
    #
    #   $PLUGDOCK_HOME/                   0700 (plugdock.instance.privacy: which files must be 0600)
    #     panel.db (-wal, -shm)           the SQLite database, unless DATABASE_URL
    #     addons/<kind>/<plugin id>/      installed code, kind = backend | frontend |
    #                                     migrations | manifest (plugdock.operations.codefiles)
    #     addons/addon_registry.json      what is installed, rewritten from the rows
    #     staging/<operation id>/         a package being installed; recovery empties it
    #     backups/ uploads/ cache/ trust/ row backups, panel uploads, downloads, trusted keys
    #     plugin-data/<plugin id>/        a plugin process's own writable folder
    #     journal.json                    the operation in progress, for crash recovery
    #     plugins.generation              the "look now" hint for workers
    #     secret.key, .lock, recycle.lock the legacy signing key; the operation and
    #                                     worker-recycling locks

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home / 'panel.db'}"

    @property
    def addons_dir(self) -> Path:
        return self.home / "addons"

    @property
    def backend_dir(self) -> Path:
        return self.addons_dir / "backend"

    @property
    def frontend_dir(self) -> Path:
        return self.addons_dir / "frontend"

    @property
    def migrations_dir(self) -> Path:
        """Where each installed plugin's migrations are kept, so uninstall can run down.sql."""
        return self.addons_dir / "migrations"

    @property
    def manifest_dir(self) -> Path:
        """Each installed plugin's metadata.json and CHECKSUMS.sha256, as installed."""
        return self.addons_dir / "manifest"

    @property
    def registry_path(self) -> Path:
        return self.addons_dir / "addon_registry.json"

    @property
    def staging_dir(self) -> Path:
        return self.home / "staging"

    @property
    def backups_dir(self) -> Path:
        """Row backups written before an uninstall (``install --restore`` reads them)."""
        return self.home / "backups"

    @property
    def uploads_dir(self) -> Path:
        """Packages being uploaded to the panel, each folder held by its process's lock.

        Not in staging, which recovery empties: an upload is written before its operation
        takes the lock (``plugdock.instance.scratch``: recovery removes only dead ones).
        """
        return self.home / "uploads"

    @property
    def journal_path(self) -> Path:
        return self.home / "journal.json"

    @property
    def generation_hint_path(self) -> Path:
        """Rewritten after every change of installed plugins: a cheap 'look now' for workers."""
        return self.home / "plugins.generation"

    @property
    def secret_key_path(self) -> Path:
        """The token-signing key, generated on first use when ``PLUGDOCK_SECRET_KEY`` is unset."""
        return self.home / "secret.key"

    @property
    def settings_key_path(self) -> Path:
        """The plugin secrets' key, created 0600 on first need when ``PLUGDOCK_SETTINGS_KEY``
        is unset (plugdock.instance.secret_box)."""
        return self.home / "settings.key"

    @property
    def lock_path(self) -> Path:
        return self.home / ".lock"

    @property
    def recycle_lock_path(self) -> Path:
        """Held by the one worker recycling itself at a time (plugdock.runtime.recycle)."""
        return self.home / "recycle.lock"

    @property
    def plugin_data_dir(self) -> Path:
        """``<id>/``: the one folder a plugin process may write (process isolation)."""
        return self.home / "plugin-data"

    @property
    def cache_dir(self) -> Path:
        return self.home / "cache"

    @property
    def trust_dir(self) -> Path:
        """Trusted publisher keys and plugin-server roots (``plugdock trust``)."""
        return self.home / "trust"

    @property
    def effective_signature_policy(self) -> SignaturePolicy:
        if self.signature_policy is not None:
            return self.signature_policy
        if self.plugin_source is PluginSource.REMOTE:
            return SignaturePolicy.REQUIRE
        return SignaturePolicy.WARN

    def trust_off_warning(self) -> str | None:
        """The warning for remote mode with the policy ``off`` (said on every CLI command)."""
        if (
            self.plugin_source is not PluginSource.REMOTE
            or self.effective_signature_policy is not SignaturePolicy.OFF
        ):
            return None
        return (
            "PLUGDOCK_SIGNATURE_POLICY=off in remote mode: the plugin server's signed index and "
            "package signatures are not checked, and versions come from its unsigned "
            "manifest.json (anyone between this host and the server can change what installs); "
            "for air-gapped development only"
        )


INPROCESS_NOTICE = (
    "Runs inside the panel with the panel's full rights: its code can read and change the "
    "whole database (users, password hashes, the token-signing key), every file the panel "
    "can read, and the panel's secrets, whatever permissions it lists "
    "(PLUGDOCK_ISOLATION=inprocess; PLUGDOCK_ISOLATION=process runs each plugin confined)."
)

# Each field's name -> the one env var it is read from (what keyword arguments are renamed to).
_ENV_NAMES = {
    name: field.validation_alias
    for name, field in Settings.model_fields.items()
    if isinstance(field.validation_alias, str)
}


def load_settings(**overrides: Any) -> Settings:
    """Read settings from the environment; keyword overrides win (used by tests and the CLI)."""
    return Settings(**overrides)
