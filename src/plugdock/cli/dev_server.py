"""``plugdock dev <folder>``: a panel serving one plugin from its source folder, live.

The author edits files; the panel follows within about a second, without pack → install →
uninstall by hand. How each kind of change is applied, and why this is the simplest
correct thing:

- **At start** the folder is packed and installed through the normal path (pack, the
  installer's checks, ``up.sql``, ``on_install``, the route rules), inside
  :meth:`PluginRuntime.apply` like an install from the UI: what ``dev`` serves is what a
  real install would serve, and a package the installer refuses is refused here too.
- **backend/ changes** re-import ``<folder>/backend`` under a fresh module name and swap it
  for the mounted one with the runtime's own ``unmount``/``mount`` (the swap an upgrade
  makes after its commit; ``on_shutdown``/``on_startup`` run). Going through the installer
  instead would need a higher version on every save (upgrade) or drop the plugin's rows
  each time (reinstall), and code alone changes neither schema nor metadata. The new code
  must import and serve only declared paths, or the old code keeps serving and the error
  is logged.
- **frontend/ changes** re-bundle with esbuild (:mod:`plugdock.package.frontend_build`, as
  ``pack`` does) and replace the installed bundle; the dev panel serves bundles with
  ``Cache-Control: no-cache`` (a real panel says ``immutable``), so a page reload shows it.
  A build error is logged and the old bundle stays.
- **metadata.json or migrations/ changes** alter what an install records (tables, declared
  routes), which only the installer may do. When the folder's version is higher than the
  installed one, it is an *upgrade* (the upgrade steps run, rows are kept: how an author
  tries a new ``migrations/versions/<v>/up.sql``); otherwise a *reinstall* (uninstall with
  a backup of the rows in ``instance/backups/``, then install), since a dev instance's data
  is scratch and a half-written ``up.sql`` is what is being tried. A save that leaves these
  files byte-identical to the installed ones changes nothing.

The instance is a scratch folder (SQLite, removed at exit) unless ``--home`` names one to
keep; only ``--database-url`` points it at another database. One worker, no reload: the
plugin is what reloads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from plugdock.checks.validate import ON_THIS_HOST, validate_package
from plugdock.config import Settings, SignaturePolicy, load_settings
from plugdock.errors import PlugdockError
from plugdock.host.state import panel_state
from plugdock.installer import Installer
from plugdock.package.archive import Limits
from plugdock.package.frontend_build import BUNDLE, build_frontend
from plugdock.package.layout import METADATA_FILE
from plugdock.package.metadata import PluginMetadata, parse_version, read_metadata
from plugdock.package.pack import is_junk, pack, package_files
from plugdock.plugin_code.loader import load_backend, module_token, unload
from plugdock.plugin_code.routes import check_collisions, check_declared, router_routes
from plugdock.runtime.runtime import PluginRuntime

log = logging.getLogger("plugdock.cli.dev_server")

#: What a changed path asks for (the first folder of its path in the plugin).
BACKEND, FRONTEND, SCHEMA = "backend", "frontend", "schema"


def change_kind(relative: Path) -> str | None:
    """What a change to ``relative`` (a path inside the plugin folder) needs, if anything.

    >>> change_kind(Path("backend/routes.py")), change_kind(Path("migrations/up.sql"))
    ('backend', 'schema')
    >>> change_kind(Path("frontend/dist/addon.js")) is None  # our own build output
    True
    """
    parts = relative.parts
    if not parts or any(is_junk(part) for part in parts):
        return None
    if parts[0] == METADATA_FILE or parts[0] == "migrations":
        return SCHEMA
    if parts[0] == "backend":
        return BACKEND
    if parts[0] == "frontend" and parts[:2] != ("frontend", "dist"):
        return FRONTEND
    return None  # README, CHANGELOG.md, package.json: nothing the panel serves


@dataclass
class DevPlugin:
    """Keeps one running panel serving the plugin in ``folder`` as it is on disk now."""

    folder: Path
    installer: Installer
    runtime: PluginRuntime
    workdir: Path  # packages made from the folder go here
    plugin_id: str = ""
    reloads: int = field(default=0)  # makes each re-import's module name new

    async def sync(self, kinds: Iterable[str]) -> None:
        """Bring the panel in line with the folder for these kinds of change; log, never raise."""
        kinds = set(kinds)
        try:
            meta = read_metadata(self.folder)
            self.plugin_id = meta.id
            installed = await run_in_threadpool(self.installer.get, meta.id)
            if installed is None:
                await self._install(meta)
            elif not await run_in_threadpool(self._schema_matches, meta.id):
                if parse_version(meta.version) > parse_version(installed.version):
                    await self._upgrade(meta)
                else:
                    await self._reinstall(meta)
            elif not installed.enabled:
                log.warning("%s is disabled in this panel: enable it to see changes", meta.id)
            else:
                if BACKEND in kinds:
                    await self._remount(meta)
                if FRONTEND in kinds:
                    await run_in_threadpool(self._rebundle)
        except PlugdockError as exc:
            log.error("not applied (fix it and save again): %s", exc)
        except Exception:
            log.exception("not applied (fix it and save again)")

    # -- through the installer: the normal path ---------------------------------------

    async def _pack(self) -> Path:
        return await run_in_threadpool(pack, self.folder, self.workdir)

    async def _install(self, meta: PluginMetadata) -> None:
        await self._install_package(meta, await self._pack())

    async def _upgrade(self, meta: PluginMetadata) -> None:
        package = await self._pack()
        await self.runtime.apply(
            lambda hooks: self.installer.upgrade(meta.id, package=package, before_commit=hooks)
        )
        log.info("upgraded %s to %s: upgrade steps ran, rows kept", meta.id, meta.version)

    async def _reinstall(self, meta: PluginMetadata) -> None:
        package = await self._pack()
        # Every check install runs, while the old version still serves: a broken up.sql is
        # refused here, not after the uninstall has taken the working version away.
        limits = Limits.from_settings(self.installer.settings)
        await run_in_threadpool(lambda: validate_package(package, limits, code=ON_THIS_HOST))
        log.info("metadata.json or migrations/ changed: reinstalling %s", meta.id)
        removed = await self.runtime.apply(
            lambda hooks: self.installer.uninstall(meta.id, before_commit=hooks, backup=True),
            leaving=meta.id,
        )
        if removed.backup is not None:
            log.info("%s rows saved to %s", meta.id, removed.backup)
        await self._install_package(meta, package)

    async def _install_package(self, meta: PluginMetadata, package: Path) -> None:
        await self.runtime.apply(lambda hooks: self.installer.install(package, before_commit=hooks))
        log.info("installed %s %s from %s", meta.id, meta.version, self.folder)

    def _schema_matches(self, plugin_id: str) -> bool:
        """Are metadata.json and migrations/ byte-identical to what is installed?"""
        settings = self.installer.settings
        installed_migrations = settings.addons_dir / "migrations" / plugin_id
        wanted = {
            name: path
            for name, path in package_files(self.folder).items()
            if name == METADATA_FILE or name.startswith("migrations/")
        }
        have = {
            f"migrations/{p.relative_to(installed_migrations).as_posix()}": p
            for p in installed_migrations.rglob("*")
            if p.is_file()
        }
        have[METADATA_FILE] = settings.manifest_dir / plugin_id / METADATA_FILE
        if wanted.keys() != have.keys():
            return False
        return all(_same_bytes(wanted[name], have[name]) for name in wanted)

    # -- straight from the folder: code and bundle --------------------------------------

    async def _remount(self, meta: PluginMetadata) -> None:
        row = await run_in_threadpool(self.installer.get, meta.id)
        if row is None:
            return
        self.reloads += 1
        token = f"{module_token(row.operation_id)}_dev{self.reloads}"
        # An import error raises here, and the mounted code keeps serving.
        backend = await run_in_threadpool(load_backend, meta.id, self.folder / "backend", token)
        async with self.runtime.lock:
            try:  # the install's route rules, before the working copy is let go
                if backend.router is not None:
                    routes = router_routes(backend.router)
                    check_declared(meta.id, routes, meta.backend.routes)
                    mounted = self.runtime.mounts.mounted.get(meta.id)
                    own = set(mounted.routes) if mounted is not None else set()
                    others = [r for r in self.runtime.mounts.served_routes() if r not in own]
                    check_collisions(meta.id, routes, others)
            except BaseException:
                unload(backend)
                raise
            self.runtime.mounts.unmount(meta.id)
            self.runtime.mounts.mount(row, backend)
        failed = self.runtime.mounts.failed.get(meta.id)
        if failed is not None:
            log.error("%s is not served: %s", meta.id, failed[1])
        else:
            log.info("reloaded %s backend from %s", meta.id, self.folder / "backend")

    def _rebundle(self) -> None:
        files = build_frontend(self.folder, package_files(self.folder))
        bundle = files.get(BUNDLE)
        if bundle is None:
            return  # no UI
        target = (
            self.installer.settings.frontend_dir / self.plugin_id / BUNDLE.removeprefix("frontend/")
        )
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.dev")
        shutil.copyfile(bundle, partial)
        os.replace(partial, target)  # a request sees the old bundle or the new one, whole
        log.info("rebuilt %s frontend bundle: reload the page to see it", self.plugin_id)


def _same_bytes(a: Path, b: Path) -> bool:
    try:
        return a.read_bytes() == b.read_bytes()
    except FileNotFoundError:
        return False


async def watch_folder(
    folder: Path, on_change: Callable[[set[str]], Awaitable[None]], stop: asyncio.Event
) -> None:
    """Call ``on_change(kinds)`` for each burst of relevant changes under ``folder``."""
    from watchfiles import awatch

    root = folder.resolve()

    def relevant(_change: object, path: str) -> bool:
        try:
            return change_kind(Path(path).resolve().relative_to(root)) is not None
        except ValueError:
            return False

    async for changes in awatch(root, watch_filter=relevant, stop_event=stop):
        kinds = {change_kind(Path(p).resolve().relative_to(root)) for _c, p in changes}
        await on_change({k for k in kinds if k is not None})


class DevCacheMiddleware:
    """Plugin bundles answer ``Cache-Control: no-cache``: a reload must fetch an edited one."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/plugins/"):
            await self.app(scope, receive, send)
            return

        async def revalidate(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message["headers"] if k.lower() != b"cache-control"]
                message["headers"] = [*headers, (b"cache-control", b"no-cache")]
            await send(message)

        await self.app(scope, receive, revalidate)


def dev_settings(home: Path, database_url: str | None) -> Settings:
    """The environment's settings, on ``home`` and (unless given) SQLite inside it.

    The package ``dev`` installs is the author's own and unsigned: it installs with a
    warning, whatever policy the environment asks of real instances.
    """
    return load_settings(
        home=home, database_url=database_url, signature_policy=SignaturePolicy.WARN
    )


def create_dev_app(folder: Path, settings: Settings, *, scratch: bool = False) -> FastAPI:
    """The panel of :func:`plugdock.host.app.create_app`, following ``folder`` while it runs.

    ``scratch``: remove the instance folder once the panel has shut down (here, not after
    ``uvicorn.run`` returns: uvicorn re-raises the SIGTERM or SIGINT that stopped it).
    """
    from plugdock.host.app import create_app

    app = create_app(settings)
    panel_lifespan = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            async with following(app):
                yield
        finally:
            if scratch:
                shutil.rmtree(settings.home, ignore_errors=True)

    @asynccontextmanager
    async def following(app: FastAPI) -> AsyncIterator[None]:
        async with panel_lifespan(app):
            with tempfile.TemporaryDirectory(prefix="plugdock-dev-packages-") as workdir:
                plugin = DevPlugin(
                    folder, panel_state(app).installer, panel_state(app).runtime, Path(workdir)
                )
                await plugin.sync({BACKEND, FRONTEND})  # served from the folder from the start
                stop = asyncio.Event()
                watcher = asyncio.create_task(watch_folder(folder, plugin.sync, stop))
                log.info("watching %s for changes", folder)
                try:
                    yield
                finally:
                    stop.set()
                    watcher.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await watcher

    app.router.lifespan_context = lifespan
    app.add_middleware(DevCacheMiddleware)
    return app


def run(
    folder: Path,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    home: Path | None = None,
    database_url: str | None = None,
) -> None:
    """Serve the dev panel until interrupted; a scratch ``home`` is removed afterwards."""
    import uvicorn

    from plugdock.host.app import log_config

    folder = folder.resolve()
    read_metadata(folder)  # a folder that is no plugin fails here, before anything starts
    scratch = home is None
    home = Path(tempfile.mkdtemp(prefix="plugdock-dev-")) if home is None else home.resolve()
    if home.is_relative_to(folder):
        raise PlugdockError(f"--home {home} is inside the plugin folder; choose another place")
    try:
        settings = dev_settings(home, database_url)
        kept = "removed at exit" if scratch else "kept"
        address = f"http://{host}:{port}/" if port else "a free port (uvicorn names it below)"
        print(
            f"plugdock dev: {folder} on {address} (instance {home}, {kept})",
            file=sys.stderr,
            flush=True,
        )
        uvicorn.run(
            create_dev_app(folder, settings, scratch=scratch),
            host=host,
            port=port,
            log_level="info",
            # INFO: the dev loop's messages and the plugin's own logger.info reach the terminal.
            log_config=log_config(logging.INFO),
        )
    finally:  # also when the panel failed to start
        if scratch:
            shutil.rmtree(home, ignore_errors=True)
