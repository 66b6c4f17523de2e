"""Settings for one plugdock instance, from the environment or a config file.

Every field reads its env var (``PLUGIN_SOURCE``, ``PLUGDOCK_HOME``, ...); the same
names may also be set in a dotenv-style file named by ``PLUGDOCK_CONFIG``. Paths are
resolved against the working directory once, so a process that changes directory
keeps pointing at the same instance.
"""

from __future__ import annotations

import os
from enum import StrEnum
from pathlib import Path

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class PluginSource(StrEnum):
    LOCAL = "local"
    REMOTE = "remote"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=os.environ.get("PLUGDOCK_CONFIG"), extra="ignore", populate_by_name=True
    )

    plugin_source: PluginSource = Field(PluginSource.LOCAL, validation_alias="PLUGIN_SOURCE")
    plugin_server_url: str | None = Field(None, validation_alias="PLUGIN_SERVER_URL")
    plugin_local_dir: Path = Field(Path("modules"), validation_alias="PLUGIN_LOCAL_DIR")
    home: Path = Field(Path("instance"), validation_alias="PLUGDOCK_HOME")
    database_url: str | None = Field(None, validation_alias="DATABASE_URL")

    # Limits for reading an untrusted package.
    max_package_bytes: int = Field(
        100 * 1024 * 1024,
        validation_alias=AliasChoices("PLUGDOCK_MAX_PACKAGE_BYTES", "max_package_bytes"),
    )
    max_package_files: int = Field(
        2000, validation_alias=AliasChoices("PLUGDOCK_MAX_PACKAGE_FILES", "max_package_files")
    )
    max_compression_ratio: float = Field(
        100.0,
        validation_alias=AliasChoices("PLUGDOCK_MAX_COMPRESSION_RATIO", "max_compression_ratio"),
    )
    lock_timeout: float = Field(
        60.0, validation_alias=AliasChoices("PLUGDOCK_LOCK_TIMEOUT", "lock_timeout")
    )

    @field_validator("plugin_local_dir", "home")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value.expanduser().resolve()

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
    def registry_path(self) -> Path:
        return self.addons_dir / "addon_registry.json"

    @property
    def staging_dir(self) -> Path:
        return self.home / "staging"

    @property
    def journal_path(self) -> Path:
        return self.home / "journal.json"

    @property
    def lock_path(self) -> Path:
        return self.home / ".lock"

    @property
    def cache_dir(self) -> Path:
        return self.home / "cache"


def load_settings(**overrides: object) -> Settings:
    """Read settings from the environment; keyword overrides win (used by tests and the CLI)."""
    return Settings(**overrides)
