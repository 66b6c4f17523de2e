"""The instance folder's privacy: created 0700, its files 0600, loose modes reported.

``panel.db`` holds argon2 hashes and the audit log, ``secret.key`` signs every token,
the registry and journal say what is installed: no other local user may read them.
New instances get the right modes by construction (:func:`prepare_home`, and
:func:`plugdock.core.fsutil.write_json_atomic`, :func:`plugdock.core.db.make_engine` for the files
they create). An existing instance with looser modes is not changed behind the
operator's back: the panel warns at start and ``plugdock doctor`` reports it::

    prepare_home(settings)               # in create_app: makes $PLUGDOCK_HOME 0700 if missing
    for line in loose_modes(settings):   # doctor, start-up warning
        print(line)
"""

from __future__ import annotations

import logging
from pathlib import Path

from sqlalchemy.engine import make_url

from plugdock.config import Settings
from plugdock.core.fsutil import loose_modes as _loose_modes
from plugdock.core.fsutil import make_private_dir

log = logging.getLogger(__name__)


def sqlite_files(database_url: str) -> list[Path]:
    """A SQLite database file and the ``-wal``/``-shm`` files beside it ([] for servers)."""
    url = make_url(database_url)
    if not url.drivername.startswith("sqlite") or url.database in (None, "", ":memory:"):
        return []
    database = Path(url.database)
    return [
        database,
        database.with_name(database.name + "-wal"),
        database.with_name(database.name + "-shm"),
    ]


def private_files(settings: Settings) -> list[Path]:
    """The instance's files that must be 0600."""
    return [
        *sqlite_files(settings.db_url),
        settings.secret_key_path,
        settings.settings_key_path,
        settings.registry_path,
        settings.journal_path,
        settings.generation_hint_path,
        settings.lock_path,
    ]


def loose_modes(settings: Settings) -> list[str]:
    """One line for the instance folder and each private file other users may read."""
    files = [f for f in private_files(settings) if not _opened_by_plugin_processes(settings, f)]
    return _loose_modes([settings.home], files)


def _opened_by_plugin_processes(settings: Settings, path: Path) -> bool:
    """A SQLite file a root panel shared with its plugin processes before SQLite went
    through the panel: 0660, group ``PLUGDOCK_PLUGIN_UID_BASE``, which only they hold. No
    other user may read it, as with 0600; ``plugdock doctor`` names a host user or group
    that has one of those ids."""
    if path not in sqlite_files(settings.db_url):
        return False
    try:
        info = path.stat()
    except FileNotFoundError:
        return False
    return info.st_gid == settings.plugin_uid_base and info.st_mode & 0o777 == 0o660


def prepare_home(settings: Settings) -> None:
    """Create the instance folder 0700 when it is missing; warn when an existing one is open."""
    make_private_dir(settings.home)
    for line in loose_modes(settings):
        log.warning("%s", line)
