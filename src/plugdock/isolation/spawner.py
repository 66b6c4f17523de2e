"""Starting one plugin process: its run folder and lock, its sandbox, database and environment.

Each installation has a run folder, ``/tmp/pd-<instance>/<installation>/`` (the socket path
must stay short), so an upgrade's new process starts beside the serving one. The worker
holding the folder's lock (``<installation>.lock`` beside it) started the process; another
worker asking for the same installation is told :class:`OwnedElsewhere` and joins it.

A panel running as root runs the process as the plugin's own host user
(:func:`plugdock.isolation.sandbox.plugin_user`), and hands it what it must open
(:func:`_hand_over`): its data folder becomes that user's (0700); its run folder (0750) and
the sockets in it (0660) get that user's group, so it can connect to the database relay and
the core calls but change nothing there. The instance folder and the run root stay root's,
0700 (on SQLite too: the plugin's SQL goes through a socket, never the file).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import shutil
import stat
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from plugdock.config import Settings
from plugdock.core.fsutil import make_private_dir
from plugdock.errors import OwnedElsewhere, PluginProcessError
from plugdock.isolation.control import ChildProcess
from plugdock.isolation.core_calls import UsersOf
from plugdock.isolation.database import PluginDatabase
from plugdock.isolation.resources import Limits, data_over, folder_bytes
from plugdock.isolation.sandbox import FILE_SIZE, HostUser, Sandbox, plugin_user

RUN_ROOT = "/tmp"


class Spawner:
    """Starts the plugin processes of one instance, each with its database role and relays."""

    def __init__(
        self, settings: Settings, engine: Engine, *, users_of: UsersOf | None = None
    ) -> None:
        self.settings = settings
        self.engine = engine
        instance = hashlib.sha256(str(settings.home).encode()).hexdigest()[:12]
        self.root = Path(RUN_ROOT) / f"pd-{instance}"
        make_private_dir(self.root)
        self.database = PluginDatabase(settings, engine, users_of=users_of)
        self.limits = Limits(
            memory_bytes=settings.plugin_memory_mb << 20,
            processes=settings.plugin_processes,
            data_bytes=settings.plugin_data_mb << 20,
        )

    def run_dir(self, plugin_id: str, installation: str) -> Path:
        """The run folder of one installation's process: short, and the same for every worker."""
        name = hashlib.sha256(f"{plugin_id}\0{installation}".encode()).hexdigest()[:16]
        return self.root / name

    def spawn(
        self,
        plugin_id: str,
        operation_id: str,
        permissions: list[str],
        backend_dir: Path | None = None,
        *,
        purpose: str = "serve",
    ) -> ChildProcess:
        """Start a plugin process that has imported the backend (blocking; not serving yet).

        Raises PluginProcessError when another worker owns this installation's process.
        ``purpose`` other than "serve" (an uninstall's hook) gets a folder of its own.
        """
        from plugdock.isolation import egress
        from plugdock.package.permissions import egress_grants, wants_host_network
        from plugdock.plugin_code.loader import module_token

        installation = operation_id if purpose == "serve" else f"{operation_id}/{purpose}"
        run_dir = self.run_dir(plugin_id, installation)
        lock = _take_ownership(run_dir)
        if lock is None:
            raise OwnedElsewhere(f"{plugin_id}: another panel worker runs its process")
        data_dir = self.settings.plugin_data_dir / plugin_id
        make_private_dir(data_dir)
        # No database file enters the sandbox (SQLite goes through the panel's relay).
        user = None
        if os.geteuid() == 0:  # never root inside: the plugin's own host user
            user = plugin_user(self.settings.home, plugin_id, self.settings.plugin_uid_base)
        host_network = wants_host_network(permissions)
        routes = [] if host_network else egress.plan(egress_grants(permissions))
        resolver_files = _resolver_files(run_dir, routes) if routes else ()
        sandbox = Sandbox(
            plugin_id=plugin_id,
            backend_dir=backend_dir or self.settings.backend_dir / plugin_id,
            data_dir=data_dir,
            run_dir=run_dir,
            hidden=self.settings.home,
            network=host_network,
            listen=tuple((route.address, route.port) for route in routes),
            resolver_files=resolver_files,
            memory_bytes=self.settings.plugin_memory_mb << 20,
            processes=self.settings.plugin_processes,
            file_bytes=min(FILE_SIZE, self.limits.data_bytes),
            env=_plugin_environment(plugin_id, self._installed_ids()),
            user=user,
        )
        key = str(run_dir)
        done = False

        def cleanup() -> None:  # once: the process's end, or a failed start
            nonlocal done
            if done:
                return
            done = True
            self.database.close_for(key)
            shutil.rmtree(run_dir, ignore_errors=True)  # never follows a link inside
            os.close(lock)  # the lock file stays: another worker may be waiting on it

        try:
            used = folder_bytes(data_dir)
            if used > self.limits.data_bytes:  # stopped for it before, or the quota lowered
                raise PluginProcessError(data_over(used, self.limits.data_bytes))
            url = self.database.open_for(plugin_id, key, run_dir)
            self.database.open_core_calls(plugin_id, key, run_dir, permissions)
            if user is not None:
                _hand_over(sandbox, user)
            return ChildProcess(
                plugin_id,
                sandbox,
                self.root / "logs" / f"{plugin_id}.log",
                {"plugin_id": plugin_id, "token": module_token(operation_id), "db_url": url},
                cleanup,
                egress=lambda listeners: self.database.open_egress(
                    plugin_id, key, routes, listeners
                ),
            )
        except BaseException:
            cleanup()
            raise

    def _installed_ids(self) -> list[str]:
        from plugdock.core.db import connect_read
        from plugdock.instance.registry import list_installations

        with connect_read(self.engine) as conn:
            return [i.plugin_id for i in list_installations(conn)]

    def grant(self, plugin_id: str, tables: list[str]) -> None:
        """Give the plugin's database role its tables (after they are committed; blocking)."""
        self.database.grant(plugin_id, tables)

    def close(self) -> None:
        """Close the sockets this worker serves to its plugin processes (none may be left)."""
        self.database.close()


def _take_ownership(run_dir: Path) -> int | None:
    """The folder's lock (an open descriptor), or None when another worker holds it.

    The lock file sits beside the folder, where the plugin cannot reach it (its folder is
    mounted in its sandbox, read-only, but the lock must not depend on that).
    """
    make_private_dir(run_dir)
    lock = run_dir.with_name(run_dir.name + ".lock")
    fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def _hand_over(sandbox: Sandbox, user: HostUser) -> None:
    """What a plugin process running as ``user`` must open, made openable by it (root panel).

    - its data folder: its own, 0700, and so is everything in it the first time (an older
      panel, or another uid range, made it). The walk never follows a link;
    - its run folder: root's, with its group, 0750; the sockets in it 0660. It connects to
      them but, the folder being root's (and read-only inside), renames or adds nothing.
    """
    data = sandbox.data_dir
    owner = os.lstat(data)
    if (owner.st_uid, owner.st_gid) != (user.uid, user.gid):
        for _folder, folders, files, fd in os.fwalk(data, follow_symlinks=False):
            for name in folders + files:
                with contextlib.suppress(FileNotFoundError):
                    os.chown(name, user.uid, user.gid, dir_fd=fd, follow_symlinks=False)
        os.chown(data, user.uid, user.gid, follow_symlinks=False)
    os.chmod(data, 0o700)  # the panel made it, in a folder only root may change
    run = sandbox.run_dir
    os.chown(run, -1, user.gid, follow_symlinks=False)
    os.chmod(run, 0o750)
    for entry in os.scandir(run):
        if stat.S_ISSOCK(entry.stat(follow_symlinks=False).st_mode):
            os.chown(entry.path, -1, user.gid, follow_symlinks=False)
            os.chmod(entry.path, 0o660)


def _resolver_files(run_dir: Path, routes: list[Any]) -> tuple[tuple[Path, str], ...]:
    """The sandbox's /etc/hosts (each granted name, from the panel), /etc/nsswitch.conf
    (names from that file only) and /etc/resolv.conf (the panel's DNS socket), written in
    its run folder: read-only to it."""
    from plugdock.isolation import egress

    files = []
    for name, text in (
        ("hosts", egress.hosts_file(routes)),
        ("nsswitch.conf", egress.NSSWITCH),
        ("resolv.conf", egress.RESOLV_CONF),
    ):
        path = run_dir / name
        path.write_text(text)
        os.chmod(path, 0o644)
        files.append((path, f"/etc/{name}"))
    return tuple(files)


def _plugin_environment(plugin_id: str, installed: list[str]) -> dict[str, str]:
    """The plugin's own settings (``PLUGDOCK_PLUGIN_<ID>_*``) and nothing else of the panel's.

    Ids may prefix one another: plugin ``ai`` must not get ``PLUGDOCK_PLUGIN_AI_CHATBOT_*``,
    the settings (an API key, say) of an installed plugin ``ai_chatbot``.
    """
    from plugdock import sdk

    prefix = f"{sdk.SETTINGS_ENV_PREFIX}{plugin_id.upper()}_"
    others = [
        f"{sdk.SETTINGS_ENV_PREFIX}{other.upper()}_"
        for other in installed
        if other != plugin_id and other.startswith(f"{plugin_id}_")
    ]
    return {
        name: value
        for key, value in sdk.plugin_settings(plugin_id).items()
        if re.fullmatch(r"[A-Za-z0-9_]+", key)
        and not (name := f"{prefix}{key.upper()}").startswith(tuple(others))
    }
