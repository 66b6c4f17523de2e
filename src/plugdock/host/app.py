"""The panel's app factory: core routes, auth, the marketplace, and the plugin runtime."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool

from plugdock import __version__
from plugdock.config import Settings, load_settings
from plugdock.core import slow_clients
from plugdock.core.db import make_engine
from plugdock.core.headers import SecurityHeadersMiddleware, install_docs
from plugdock.host import (
    accounts,
    auth,
    core_api,
    frontend,
    marketplace,
    marketplace_changes,
    readiness,
)
from plugdock.host.errors import install_error_handlers
from plugdock.host.limits import MULTIPART_SLACK, UPLOAD_PATH, BodyLimitMiddleware
from plugdock.host.state import PanelState
from plugdock.installer import Installer
from plugdock.instance.privacy import prepare_home
from plugdock.runtime.middleware import PluginSyncMiddleware
from plugdock.runtime.replicas import SERVE_ADDRESS_ENV, Replica
from plugdock.runtime.runtime import PluginRuntime

log = logging.getLogger("plugdock.host")


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the panel for one instance. ``uvicorn --factory plugdock.host.app:create_app``."""
    settings = settings or load_settings()
    # Runs in every worker: uvicorn's protocol there reads the deadlines of this process.
    slow_clients.configure(
        header_timeout=settings.header_timeout, body_timeout=settings.body_timeout
    )
    prepare_home(settings)  # 0700 when new; a warning when an existing one is open to others
    engine = make_engine(settings.db_url)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(core_api.start_up, engine, settings)  # e.g. the first admin
        # Settle an operation a crash interrupted, mount what is installed, watch for changes.
        try:
            await run_in_threadpool(installer.recover)
        except Exception:  # serve what the database says; installs stay refused until settled
            log.exception("could not settle an interrupted plugin operation")
        # This process is a replica: fetch code other replicas installed, mount, register.
        replica = runtime.heartbeat.replica = Replica(
            engine, settings.home, address=os.environ.get(SERVE_ADDRESS_ENV)
        )
        await runtime.catch_up()
        watcher = asyncio.create_task(runtime.watch(settings.sync_interval))
        try:
            yield
        finally:
            watcher.cancel()
            with contextlib.suppress(Exception):  # gone either way once its heartbeat stops
                await run_in_threadpool(replica.leave)
            await runtime.close()
            engine.dispose()

    app = FastAPI(
        title="plugdock panel",
        version=__version__,
        lifespan=lifespan,
        docs_url=None,  # served by install_docs, with a Content-Security-Policy that fits them
        redoc_url=None,
    )
    install_docs(app)
    installer = Installer(settings, engine=engine)
    runtime = PluginRuntime(
        app,
        settings,
        engine,
        undo_install=lambda plugin_id: installer.uninstall(plugin_id, before_commit=None),
    )
    app.state.plugdock = PanelState(
        engine=engine,
        authenticate=auth.authenticate,  # sdk.current_user and friends: the panel's tokens
        users=core_api.plugin_users,  # sdk.Users, for plugins granted core:users:read
        settings=settings,
        installer=installer,
        runtime=runtime,
    )
    core_api.install(app)
    app.include_router(accounts.router)  # the user admin routes, on core_api's models
    app.include_router(marketplace.router)
    app.include_router(marketplace_changes.router)
    app.include_router(readiness.router)
    frontend.install(app)  # the web UI: /static, plugin bundles, the SPA fallback
    app.add_middleware(PluginSyncMiddleware, runtime_of=lambda: runtime)
    # In front of the app: an oversized body is refused before anything reads it.
    app.add_middleware(
        BodyLimitMiddleware,
        default=settings.max_request_bytes,
        routes={("POST", UPLOAD_PATH): settings.max_package_bytes + MULTIPART_SLACK},
    )
    # Outermost of ours: every answer, a 413 included, carries the security headers; the
    # API's answers (tokens, users, the audit log, plugin data) are never cached.
    app.add_middleware(SecurityHeadersMiddleware, private_prefixes=("/api/",))
    install_error_handlers(app)
    return app


def log_config(level: int = logging.WARNING) -> dict[str, Any]:
    """uvicorn's logging set-up plus the root logger at ``level`` (WARNING by default).

    Passed to ``uvicorn.run(log_config=...)`` by ``plugdock serve``, so every worker
    process applies it: plugdock's own warnings (a world-readable key or instance file,
    failed sign-ins) reach the log in uvicorn's format instead of being dropped.
    """
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["root"] = {"handlers": ["default"], "level": logging.getLevelName(level)}
    return config
