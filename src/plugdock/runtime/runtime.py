"""The plugins of a running panel: mounted at start, mounted/unmounted live, in step across workers.

The database is the truth: ``addon_installations`` says which plugin (and which
installation of it, by operation id) should be served, and ``plugin_state.generation``
changes with every install or uninstall. Each worker compares that number with the
one it last applied and reconciles when it differs:

- right after an install/uninstall it handled itself;
- on a request, when the hint file ``$PLUGDOCK_HOME/plugins.generation`` changed
  (one ``stat`` per request; the installer rewrites the file after each commit), so
  a worker on the same machine never serves a stale plugin set after an install
  response;
- on a PostgreSQL notification (sent in the installer's transaction), and on a timer,
  for changes made from another machine sharing the database.

The parts: :class:`~plugdock.runtime.mounts.Mounts` (what is served, through which
entry), a :class:`~plugdock.runtime.runner.PluginRunner` (where plugin code runs),
:class:`~plugdock.runtime.replicas.Heartbeat` (this replica's row),
:class:`~plugdock.runtime.recycle.Recycler` and :mod:`~plugdock.runtime.status`.
:class:`PluginRuntime` reconciles them with the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable
from typing import TypeVar

from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import Engine

from plugdock.config import Settings
from plugdock.core.db import connect_read, current_generation
from plugdock.instance.journal import read_journal
from plugdock.instance.locking import wait_for_operation
from plugdock.instance.notify import CHANNEL, EVENTS_CHANNEL, ChangeListener
from plugdock.instance.registry import installations_by_id, list_installations
from plugdock.operations.materialize import code_is_current, needs_sync, sync_code
from plugdock.operations.workspace import Workspace
from plugdock.plugin_code.hook_time import abort_hooks
from plugdock.plugin_code.hooks import BeforeCommit
from plugdock.runtime.configured import SettingsWatch
from plugdock.runtime.filters import FilterChain
from plugdock.runtime.mounts import Mounts
from plugdock.runtime.recycle import Recycler
from plugdock.runtime.replicas import Heartbeat, ServedState
from plugdock.runtime.status import PluginStatus, plugin_status

log = logging.getLogger("plugdock.runtime")
T = TypeVar("T")


class PluginRuntime:
    """Keeps one app's mounted plugins equal to what the database says is installed."""

    def __init__(
        self,
        app: FastAPI,
        settings: Settings,
        engine: Engine,
        *,
        undo_install: Callable[[str], object] | None = None,
    ) -> None:
        """``undo_install``: how to uninstall a plugin whose ``on_install`` failed in its
        process after the commit (process mode). The host hands in its installer's; the
        runtime never imports one."""
        self.app = app
        self.settings = settings
        self.engine = engine
        self.mounts = Mounts(app, settings, engine, undo_install=undo_install)
        self.configured = SettingsWatch(settings, engine, self.mounts)
        self.filters = FilterChain(self.mounts, timeout=settings.filter_timeout)
        self.generation: int | None = None
        self.lock = asyncio.Lock()  # one change of the plugin set at a time, per process
        self._hint_seen: tuple[int, int] | None = None
        self.wakeup = asyncio.Event()  # set by the PostgreSQL listener: look now
        self.events_wakeup = asyncio.Event()  # an event was emitted: deliver now
        self.recycler = Recycler(settings.recycle_after, settings.recycle_lock_path)
        # Replicas: code fetched from the database's package store (see materialize.py).
        self.workspace = Workspace(settings, engine=engine)
        self.pending: dict[str, str] = {}  # plugin id → why its code is not here (yet)
        self.fetch_failures: dict[str, str] = {}  # plugin id → why fetching it failed
        self._retry_at = 0.0  # monotonic time of the next fetch attempt while pending
        self._fetching: asyncio.Task[None] | None = None  # the background fetch, one at a time
        self.heartbeat = Heartbeat(settings.replica_heartbeat, self.served_state)
        self.settling: asyncio.Future[None] | None = None  # see _settle

    # ------------------------------------------------------------ reconciling

    def reconcile(self) -> None:
        """Mount and unmount until the app serves exactly the installed plugins."""
        mounts = self.mounts
        with connect_read(self.engine) as conn:
            generation = current_generation(conn)
            wanted = {i.plugin_id: i for i in list_installations(conn) if i.enabled}
        for plugin_id, mounted in list(mounts.mounted.items()):
            row = wanted.get(plugin_id)
            if row is None or row.operation_id != mounted.installation.operation_id:
                mounts.unmount(plugin_id)
        for plugin_id in [p for p in mounts.failed if p not in wanted]:
            del mounts.failed[plugin_id]
        self.pending = {}
        for plugin_id, row in wanted.items():
            if plugin_id in mounts.mounted:
                continue
            if not code_is_current(self.workspace, row):  # another replica installed it
                self.pending[plugin_id] = self.fetch_failures.get(
                    plugin_id, "its code is not on this machine yet"
                )
                continue
            failed = mounts.failed.get(plugin_id)
            if failed is not None and failed[0] == row.operation_id:
                continue  # the same broken installation: do not retry on every request
            if not (self.settings.backend_dir / plugin_id / "__init__.py").is_file():
                continue  # a plugin without a backend: nothing to serve
            mounts.mount(row)
        self.generation = generation
        self.configured.check()
        self.recycler.if_due(mounts.changes)

    def is_stale(self) -> bool:
        with connect_read(self.engine) as conn:  # never the write lock, on every poll
            return current_generation(conn) != self.generation

    async def refresh(self) -> None:
        """Catch up with the database (skipped while an operation runs here).

        The code already on this machine is served at once, before any await, so no request
        is routed against the old plugin set meanwhile; fetching what another replica
        installed (and removing what it uninstalled) then runs in the background, since it
        may wait for another process's operation to finish.
        """
        if self.settling is not None:  # another request is waiting out an operation here
            await asyncio.shield(self.settling)
            return
        if self.lock.locked():
            self._hint_seen = None  # busy with our own operation: look again next request
            return
        if self.is_stale() or (self.pending and time.monotonic() >= self._retry_at):
            self.reconcile()
            if self._mid_operation():
                self.settling = asyncio.ensure_future(self._settle())
                await asyncio.shield(self.settling)
            # a plugin process just installed elsewhere is joined before this request is routed
            await self.mounts.runner.settled()
            if self._fetching is None or self._fetching.done():
                self._fetching = asyncio.get_running_loop().create_task(self._fetch_and_serve())

    def _mid_operation(self) -> bool:
        """Is a plugin's code here out of step with its row because an operation on this
        machine is changing it (an upgrade moves the new code in before it commits)?"""
        if not self.pending:
            return False
        journal = read_journal(self.settings.journal_path)
        return journal is not None and journal.plugin_id in self.pending

    async def _settle(self) -> None:
        """Wait for this machine's operation to end, then serve what it committed: a worker
        that catches up mid-operation would otherwise answer 404 for an installed plugin
        (bench/load.py saw it when a lagging worker met an upgrade's window)."""
        try:
            await run_in_threadpool(
                wait_for_operation, self.settings.lock_path, self.settings.lock_timeout
            )
            self.reconcile()
        finally:
            self.settling = None

    async def _fetch_and_serve(self) -> None:
        try:
            await run_in_threadpool(self.fetch_code)
        except Exception:  # the database may be restarting; the next tick tries again
            log.exception("fetching plugin code failed")
            return
        if self.lock.locked():
            self._hint_seen = None  # our own operation reconciles when it ends
        else:
            self.reconcile()
            # Say so now: the installing replica's answer waits for this beat, and the
            # watch loop's next one could be a whole sync interval away.
            await self.heartbeat.report()

    def fetch_code(self) -> None:
        """Fetch the code of installations this machine lacks from the database (blocking)."""
        rows = self.workspace.installed()
        if not needs_sync(self.workspace, rows):
            self.fetch_failures = {}
            return
        self.fetch_failures = sync_code(self.workspace)
        # A refused package is not fetched again on every tick; a new generation retries.
        self._retry_at = time.monotonic() + (10.0 if self.fetch_failures else 0.0)

    def hint_changed(self) -> bool:
        """True (once) when the installer rewrote the hint file since we last looked."""
        try:
            stat = os.stat(self.settings.generation_hint_path)
        except FileNotFoundError:
            return False
        seen = (stat.st_ino, stat.st_mtime_ns)
        if seen == self._hint_seen:
            return False
        self._hint_seen = seen
        return True

    # ------------------------------------------------------------ serving's life

    async def catch_up(self) -> None:
        """At start: fetch missing code, mount what is installed, register as a replica."""
        await run_in_threadpool(self.fetch_code)
        self.reconcile()
        await self.mounts.runner.settled()  # up means serving: plugin processes started first
        await self.heartbeat.report(force=True)

    async def watch(self, interval: float) -> None:
        """Follow changes made elsewhere (other machines, the CLI): on a PostgreSQL
        notification at once, and on a timer in any case."""
        listener = None
        if self.engine.dialect.name == "postgresql":
            loop = asyncio.get_running_loop()
            listener = ChangeListener(
                self.engine,
                {
                    CHANNEL: lambda: loop.call_soon_threadsafe(self.wakeup.set),
                    EVENTS_CHANNEL: lambda: loop.call_soon_threadsafe(self.events_wakeup.set),
                },
            )
            listener.start()
        supervising = asyncio.get_running_loop().create_task(self.mounts.runner.watch())
        try:
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wakeup.wait(), interval)
                self.wakeup.clear()
                try:
                    await self.refresh()
                except Exception:  # the database may be restarting; try again next tick
                    log.exception("plugin sync failed")
                # waiting for our turn while another worker recycles
                self.recycler.if_due(self.mounts.changes)
                await self.heartbeat.report()
        finally:
            supervising.cancel()
            if listener is not None:
                listener.stop()

    async def close(self) -> None:
        """The panel stops: unmount everything; plugin processes end."""
        for plugin_id in list(self.mounts.mounted):
            self.mounts.unmount(plugin_id)
        await self.mounts.runner.close()

    # ------------------------------------------------------------ operations

    async def apply(
        self,
        operation: Callable[[BeforeCommit], T],
        *,
        leaving: str | None = None,
        force: bool = False,
    ) -> T:
        """Run an installer operation in a thread, then serve what it committed, at once.

        ``operation`` is called with the ``before_commit`` to hand the installer: arriving
        backends (install, upgrade) are imported and checked inside the transaction against
        what this app serves (less the plugin's own routes, which an upgrade replaces);
        a leaving one runs its ``on_uninstall``. After the commit each arriving backend
        replaces the mounted one in one step on the event loop, so no request sees neither
        version; then the app reconciles with the database. Where the plugin's code runs
        (this process, or its sandbox) is the runner's business; ``leaving`` names the
        plugin an uninstall removes (a sandboxed ``on_uninstall`` runs before it starts).

        ``force`` (a forced uninstall, which runs no plugin code): first stop waiting for any
        hook of ``leaving`` that an operation here is running, so this one does not queue
        behind it (that operation fails and lets go of the locks), and skip the runner's
        ``before_operation``.
        """
        if force and leaving is not None:
            abort_hooks(leaving)
        async with self.lock:
            row = installations_by_id(self.engine).get(leaving) if leaving is not None else None
            hooks = self.mounts.runner.operation(self.mounts.served_besides, row)
            try:
                if not force:
                    await run_in_threadpool(hooks.before_operation)
                result = await run_in_threadpool(operation, hooks.before_commit)
                arrived = await run_in_threadpool(hooks.after_commit)
            except BaseException:
                failures = hooks.failed_after_commit()
                if failures:  # committed, but its hook failed: installed, not served
                    rows = installations_by_id(self.engine)
                    for plugin_id, why in failures.items():
                        if plugin_id in rows:
                            self.mounts.fail(plugin_id, why, rows[plugin_id].operation_id)
                    self.reconcile()
                raise
            finally:
                hooks.discard()
            for plugin_id, (installed, arrival) in arrived.items():
                self.mounts.unmount(plugin_id)
                self.mounts.mount(installed, arrival)
            self.reconcile()
            await self.mounts.runner.settled()  # the answer comes once they serve
        return result

    # ------------------------------------------------------------ reporting

    def served_state(self) -> ServedState:
        """The generation served, whether all of it is served here, and what is not."""
        failures = {p: f"failed: {error}" for p, (_op, error) in self.mounts.failed.items()}
        failures |= {
            p: f"failed: {why}" if p in self.fetch_failures else why
            for p, why in self.pending.items()
        }
        return self.generation or 0, not self.pending, failures

    def status(self) -> dict[str, PluginStatus]:
        """Per plugin id with a backend: mounted, failed or fetching (see :mod:`.status`)."""
        return plugin_status(
            self.mounts, self.pending, self.fetch_failures, self.filters.problems()
        )
