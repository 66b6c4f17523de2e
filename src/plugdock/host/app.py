"""The panel's app factory: its users, sign-in and shell, plus plugdock as any host mounts it."""

from __future__ import annotations

import copy
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool

from plugdock.config import Settings, load_settings
from plugdock.core import contract
from plugdock.core.headers import install_docs
from plugdock.host import accounts, auth, core_api, frontend, users
from plugdock.host.embedding import HostAuth, PluginHost
from plugdock.version import __version__

log = logging.getLogger("plugdock.host")


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the panel for one instance. ``uvicorn --factory plugdock.host.app:create_app``.

    The panel is a host like any other (:class:`PluginHost`): it brings its own users,
    sign-in (tokens and session cookies with their own CSRF token), users page and shell.
    """
    settings = settings or load_settings()
    host = PluginHost(
        HostAuth(
            current_user=auth.authenticate,  # bearer token or session cookie
            users=lambda: core_api.active_users(host.engine),
            checks_csrf=True,  # the session's own X-CSRF-Token
        ),
        settings=settings,
        secure_host_routes=True,  # every answer of the panel gets the limits and headers
    )
    engine = host.engine
    for name in (users.USER_CREATED, users.USER_SIGNED_IN):
        host.events.declare(name, users.UserEvent)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(core_api.start_up, engine, settings)  # e.g. the first admin
        yield

    app = FastAPI(
        title="plugdock panel",
        version=__version__,
        lifespan=lifespan,
        docs_url=None,  # served by install_docs, with a Content-Security-Policy that fits them
        redoc_url=None,
    )
    install_docs(app)
    core_api.install(app)
    app.include_router(accounts.router)  # the user admin routes, on core_api's models
    host.mount(app)
    frontend.install_shell(app)  # the web UI: /static and the SPA fallback, after the API
    contract.install(app, PANEL_SECURITY)  # last: after the wrapper adding plugin processes' paths
    return app


#: The panel's sign-in, for the OpenAPI document: a bearer token, or the session cookie, which
#: needs its X-CSRF-Token on every change.
PANEL_SECURITY = contract.Security(
    schemes={
        "HTTPBearer": {
            "type": "http",
            "scheme": "bearer",
            "description": "The access_token from POST /api/v1/auth/login.",
        },
        "session": {
            "type": "apiKey",
            "in": "cookie",
            "name": auth.SESSION_COOKIE,
            "description": "Set by POST /api/v1/auth/session (the web UI's sign-in).",
        },
        "csrf": {
            "type": "apiKey",
            "in": "header",
            "name": auth.CSRF_HEADER,
            "description": "The session's csrf_token; with the cookie, on every change.",
        },
    },
    read=[{"HTTPBearer": []}, {"session": []}],
    change=[{"HTTPBearer": []}, {"session": [], "csrf": []}],
)


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
