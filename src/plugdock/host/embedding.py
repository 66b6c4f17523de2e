"""plugdock inside a host's own app: :class:`PluginHost`, :class:`HostAuth`, :class:`HostUser`.

A host app keeps its users, sign-in, routes, middleware and lifespan; plugdock brings the
marketplace API, the plugins' routes (live in every worker and replica), their UI bundles
and the machinery behind them::

    from plugdock import HostAuth, HostUser, PluginHost

    def current_user(session: str | None = Cookie(None), db: Session = Depends(get_db)):
        account = db.get(Account, ...)             # the host's own auth, any dependency
        return HostUser(id=account.id, username=account.name, is_admin=account.admin)

    app = FastAPI(lifespan=my_lifespan)
    host = PluginHost(auth=HostAuth(current_user=current_user))   # settings from env
    host.mount(app)

``sdk.CurrentUser`` / ``sdk.AdminUser`` in plugins, and the marketplace's admin checks,
resolve through ``current_user`` (solved with all its own dependencies by a small resolver
app, so the host's app itself gets no dependency override). Plugins in processes of their own get
the same verdict, computed in the host for each forwarded request.

CSRF whatever the host's auth is: a state-changing request (POST, PUT, PATCH, DELETE) to
plugdock's or a plugin's routes that carries cookies must also carry the header
:data:`CSRF_HEADER` (any value). A cross-site form cannot send a custom header, and a
cross-site script cannot without a CORS preflight the host does not grant; bearer-token
clients (no cookies) and webhooks are unaffected. The reference panel, which has its own
per-session CSRF token, keeps it.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
import os
from collections.abc import AsyncIterator, Callable, Iterable, MutableMapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, get_type_hints

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Engine
from starlette.types import ASGIApp, Receive, Scope, Send

from plugdock import sdk
from plugdock.config import Settings, load_settings
from plugdock.core import contract, slow_clients
from plugdock.core.db import make_engine, sync_url
from plugdock.core.headers import SecurityHeadersMiddleware
from plugdock.errors import ForbiddenError
from plugdock.host import (
    events,
    frontend,
    jobs,
    marketplace,
    marketplace_changes,
    plugin_settings_api,
    readiness,
    serving,
)
from plugdock.host.errors import install_error_handlers
from plugdock.host.events import HostEvents
from plugdock.host.filters import HostFilters
from plugdock.host.limits import MULTIPART_SLACK, UPLOAD_PATH, BodyLimitMiddleware
from plugdock.host.state import PanelState
from plugdock.installer import Installer
from plugdock.instance import outbox
from plugdock.instance.plugin_settings import current_settings
from plugdock.instance.privacy import prepare_home
from plugdock.runtime.deliveries import EventDeliverer
from plugdock.runtime.jobs import JobScheduler
from plugdock.runtime.middleware import PluginSyncMiddleware
from plugdock.runtime.replicas import SERVE_ADDRESS_ENV, Replica
from plugdock.runtime.runtime import PluginRuntime

log = logging.getLogger("plugdock.host")

CSRF_HEADER = "X-Plugdock-CSRF"
#: Paths plugdock itself serves in a host (plugins' declared paths come on top).
PLUGDOCK_PREFIXES = (
    "/api/v1/marketplace/",
    "/api/v1/frontend/",
    "/api/v1/extension-points",
    "/api/v1/events/",
    "/api/v1/jobs",
    "/plugins/",
    "/plugins-ui/",
    "/readyz",
)
#: How often each worker looks for events to deliver (seconds), when nothing wakes it.
DELIVERY_INTERVAL = 0.25
_UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class HostUser(BaseModel):
    """A user of the host app, as its auth reports it to plugdock."""

    model_config = ConfigDict(frozen=True)

    id: int | str
    username: str = Field(min_length=1)
    is_admin: bool = False
    roles: tuple[str, ...] = ()

    def as_sdk_user(self) -> sdk.User:
        role = "admin" if self.is_admin else "user"
        return sdk.User(id=self.id, username=self.username, role=role)


@dataclass(frozen=True)
class HostAuth:
    """How plugdock learns who a request is.

    ``current_user`` is any FastAPI dependency (sync or async, with dependencies of its own)
    returning a :class:`HostUser`, or None for an anonymous request; it may raise
    ``HTTPException`` (say 401 for an expired session). ``users``, when given, lists the
    host's active users for plugins granted ``core:users:read``. ``checks_csrf``: the host's
    auth already refuses cross-site state changes on its own (the reference panel's
    per-session token), so plugdock does not ask for :data:`CSRF_HEADER`.
    """

    current_user: Callable[..., Any]
    users: Callable[[], Iterable[HostUser]] | None = None
    checks_csrf: bool = False


def _as_sdk_user(value: Any) -> sdk.User | None:
    if value is None or isinstance(value, sdk.User):
        return value
    if isinstance(value, HostUser):
        return value.as_sdk_user()
    raise TypeError(f"HostAuth.current_user returned {type(value).__name__}, not a HostUser")


def _takes_only_the_request(dependency: Callable[..., Any]) -> bool:
    """``def current_user(request: Request)``: callable directly, without FastAPI's resolver."""
    parameters = list(inspect.signature(dependency).parameters.values())
    if len(parameters) != 1:
        return False
    try:
        hints = get_type_hints(dependency)
    except (NameError, TypeError):
        return False
    return hints.get(parameters[0].name) is Request


class PluginHost:
    """plugdock for one host app: settings, database, the plugins it serves.

    ``settings`` default to the environment (as ``plugdock serve`` reads them);
    ``database_url`` or ``engine`` (sync or async: plugdock opens its own synchronous pool on
    the same database, with the matching sync driver) override ``DATABASE_URL``.
    ``secure_host_routes``: plugdock's body limit and security headers also apply to the
    host's own routes (the reference panel does this); by default they apply to plugdock's
    and the plugins' routes only.
    """

    def __init__(
        self,
        auth: HostAuth,
        *,
        settings: Settings | None = None,
        database_url: str | None = None,
        engine: Any = None,
        secure_host_routes: bool = False,
    ) -> None:
        settings = settings or load_settings()
        if engine is not None:
            database_url = engine.url.render_as_string(hide_password=False)
        if database_url is not None:
            settings = settings.model_copy(update={"database_url": sync_url(database_url)})
        self.settings = settings
        self.auth = auth
        self.secure_host_routes = secure_host_routes
        self._engine: Engine | None = None
        self.runtime: PluginRuntime | None = None
        #: The events this host declares and emits (plugdock.host.events).
        self.events = HostEvents()
        #: The filters this host declares and applies (plugdock.host.filters).
        self.filters = HostFilters()

    @property
    def engine(self) -> Engine:
        """plugdock's own engine on the host's database (created on first use)."""
        if self._engine is None:
            prepare_home(self.settings)
            self._engine = make_engine(self.settings.db_url)
        return self._engine

    def mount(self, app: FastAPI) -> None:
        """Add plugdock to ``app``: routes, plugin runtime, middleware, start and stop.

        The host's lifespan still runs (inside plugdock's: plugins are mounted before the
        host starts serving and unmounted after it stops); its middleware stays outside
        plugdock's. Call it once, before the app starts.
        """
        settings, engine = self.settings, self.engine
        # Runs in every worker (each imports the app): uvicorn's protocol there
        # (uvicorn_options' SlowClientGuard) reads this process's deadlines.
        slow_clients.configure(
            header_timeout=settings.header_timeout, body_timeout=settings.body_timeout
        )
        installer = Installer(settings, engine=engine)
        runtime = self.runtime = PluginRuntime(
            app,
            settings,
            engine,
            undo_install=lambda plugin_id: installer.uninstall(plugin_id, before_commit=None),
        )
        direct = _takes_only_the_request(self.auth.current_user)
        app.state.plugdock = PanelState(
            engine=engine,
            authenticate=self._direct_authenticate() if direct else None,
            users=self._plugin_users if self.auth.users is not None else None,
            host_users=self._host_users if self.auth.users is not None else None,
            settings_of=self._plugin_settings,
            settings=settings,
            installer=installer,
            runtime=runtime,
        )
        self.filters.chain = runtime.filters
        # sdk.CurrentUser & co. in plugins and in the marketplace: the host's dependency,
        # solved by a resolver of its own. Not an override in the host's app: FastAPI
        # rebuilds every dependency of every route on each request while the app has any
        # override, which made the host's own routes 1.6x slower (bench/embedding.py).
        if not direct:
            resolver = _UserResolver(app, self._optional_user_dependency())
            app.state.plugdock.user_of = resolver.user_of
        app.include_router(marketplace.router)
        app.include_router(marketplace_changes.router)
        app.include_router(plugin_settings_api.router)
        app.include_router(readiness.router)
        app.include_router(events.router)
        app.include_router(jobs.router)
        frontend.install_plugin_assets(app)
        ours = self._add_middleware(app, runtime)
        install_error_handlers(app, applies=None if self.secure_host_routes else ours)
        contract.install(app, None)  # error answers in the OpenAPI document (core/contract.py)
        _compose_lifespan(app, self._lifespan(installer, runtime))

    def uvicorn_options(self, *, workers: int = 1) -> dict[str, Any]:
        """Keyword arguments for ``uvicorn.run`` that ``plugdock serve`` uses for its panel:
        slow clients dropped, keep-alive, trusted proxies, worker recycling. See
        :func:`plugdock.host.serving.uvicorn_options`."""
        return serving.uvicorn_options(self.settings, workers=workers)

    def _host_users(self) -> list[sdk.User]:
        assert self.auth.users is not None
        return [user.as_sdk_user() for user in self.auth.users()]

    def _plugin_users(self, request: Request) -> list[sdk.User]:
        """``sdk.Users`` for a plugin served in this app: only with ``core:users:read``."""
        from plugdock.isolation.core_calls import USERS_PERMISSION
        from plugdock.runtime.dispatch import SELECTED_ENTRY

        assert self.runtime is not None and self.auth.users is not None
        entry = request.scope.get(SELECTED_ENTRY)
        mounted = self.runtime.mounts.mounted.values()
        caller = next((m for m in mounted if m.entry is entry), None)
        if caller is None:
            raise ForbiddenError("only plugin routes may list users")
        if USERS_PERMISSION not in caller.installation.permissions:
            raise ForbiddenError(
                f"{caller.installation.plugin_id} was not granted {USERS_PERMISSION}"
            )
        return self._host_users()

    def _plugin_settings(self, request: Request) -> dict[str, Any]:
        """``sdk.PluginSettings`` for a plugin served in this app: its own values only."""
        from plugdock.runtime.dispatch import SELECTED_ENTRY

        assert self.runtime is not None
        entry = request.scope.get(SELECTED_ENTRY)
        mounted = self.runtime.mounts.mounted.values()
        caller = next((m for m in mounted if m.entry is entry), None)
        if caller is None:
            raise ForbiddenError("only plugin routes have plugin settings")
        return current_settings(self.settings, self.engine, caller.installation.plugin_id)

    # -- auth ------------------------------------------------------------------------------

    def _direct_authenticate(self) -> sdk.Authenticate:
        dependency = self.auth.current_user
        if inspect.iscoroutinefunction(dependency):
            raise TypeError(
                "an async current_user that takes only the request: make it sync, "
                "or give it another dependency"
            )

        def authenticate(request: Request) -> sdk.User | None:
            return _as_sdk_user(dependency(request))

        return authenticate

    def _optional_user_dependency(self) -> Callable[..., Any]:
        dependency = self.auth.current_user

        # A default, not an annotation: annotations are strings here (``from __future__``)
        # and FastAPI could not find the local ``dependency`` when it evaluates them.
        async def optional_user(found: Any = Depends(dependency)) -> sdk.User | None:
            return _as_sdk_user(found)

        return optional_user

    # -- middleware and lifespan -----------------------------------------------------------

    def _add_middleware(self, app: FastAPI, runtime: PluginRuntime) -> Callable[[Scope], bool]:
        """plugdock's middleware; returns the test of which requests are plugdock's."""
        settings = self.settings

        def ours(scope: Scope) -> bool:
            path = scope.get("path", "")
            return path.startswith(PLUGDOCK_PREFIXES) or runtime.mounts.dispatch.serves(scope)

        applies = None if self.secure_host_routes else ours
        if not self.auth.checks_csrf:
            app.add_middleware(CookieCsrfMiddleware, applies=ours)
        # In front of the app: an oversized body is refused before anything reads it.
        app.add_middleware(
            BodyLimitMiddleware,
            default=settings.max_request_bytes,
            routes={("POST", UPLOAD_PATH): settings.max_package_bytes + MULTIPART_SLACK},
            applies=applies,
        )
        # Outermost of ours: every answer, a 413 included, carries the security headers; the
        # API's answers (tokens, users, the audit log, plugin data) are never cached.
        app.add_middleware(SecurityHeadersMiddleware, private_prefixes=("/api/",), applies=applies)
        # Outermost: the worker catches up with plugin changes before anything asks whether
        # a path is a plugin's (the CSRF check must see a plugin installed a moment ago).
        app.add_middleware(PluginSyncMiddleware, runtime_of=lambda: runtime)
        return ours

    def _lifespan(
        self, installer: Installer, runtime: PluginRuntime
    ) -> Callable[[FastAPI], contextlib.AbstractAsyncContextManager[None]]:
        settings, engine = self.settings, self.engine

        @asynccontextmanager
        async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
            # Settle an operation a crash interrupted, mount what is installed, watch.
            try:
                await run_in_threadpool(installer.recover)
            except Exception:  # serve what the database says; installs wait until settled
                log.exception("could not settle an interrupted plugin operation")
            replica = runtime.heartbeat.replica = Replica(
                engine, settings.home, address=os.environ.get(SERVE_ADDRESS_ENV)
            )
            await runtime.catch_up()
            watcher = asyncio.create_task(runtime.watch(settings.sync_interval))
            points = self.events.points() + self.filters.points()
            await run_in_threadpool(outbox.record_points, engine, points)
            deliverer = EventDeliverer(
                engine,
                runtime.mounts,
                handler_timeout=settings.hook_timeout,
                wakeup=runtime.events_wakeup,
            )
            delivering = asyncio.create_task(deliverer.run(DELIVERY_INTERVAL))
            scheduler = JobScheduler(engine, runtime.mounts, timeout=settings.hook_timeout)
            scheduling = asyncio.create_task(scheduler.run())
            _app.state.plugdock_jobs = scheduler  # a "run now" answered here wakes it
            try:
                yield
            finally:
                delivering.cancel()
                scheduling.cancel()
                watcher.cancel()
                with contextlib.suppress(Exception):  # gone either way once its heartbeat stops
                    await run_in_threadpool(replica.leave)
                await runtime.close()
                engine.dispose()

        return lifespan


def _compose_lifespan(
    app: FastAPI, ours: Callable[[FastAPI], contextlib.AbstractAsyncContextManager[None]]
) -> None:
    """Run plugdock's start and stop around the host's own lifespan."""
    theirs = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(running: Any) -> AsyncIterator[Any]:
        async with ours(running), theirs(running) as state:
            yield state

    app.router.lifespan_context = lifespan


class CookieCsrfMiddleware:
    """Refuse state-changing requests with cookies but without :data:`CSRF_HEADER` (403)."""

    def __init__(self, app: ASGIApp, applies: Callable[[Scope], bool]) -> None:
        self.app = app
        self.applies = applies

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in _UNSAFE and self.applies(scope):
            names = {name.lower() for name, _ in scope["headers"]}
            if b"cookie" in names and CSRF_HEADER.lower().encode() not in names:
                body = json.dumps(
                    {"detail": f"a request with cookies must send the {CSRF_HEADER} header"}
                ).encode()
                await send(
                    {
                        "type": "http.response.start",
                        "status": 403,
                        "headers": [
                            (b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)


class _Overrides(dict[Any, Any]):
    """The host app's dependency overrides as they are now, with ``sdk.optional_user``'s."""

    def __init__(self, host_app: FastAPI, optional_user: Callable[..., Any]) -> None:
        super().__init__()
        self._host_app = host_app
        self._ours = {sdk.optional_user: optional_user}

    def get(self, key: Any, default: Any = None) -> Any:
        if key in self._ours:
            return self._ours[key]
        return self._host_app.dependency_overrides.get(key, default)

    def __bool__(self) -> bool:
        return True


class _UserResolver:
    """The host's verdict on a request, apart from the route that asks (``sdk.optional_user``).

    A one-route FastAPI app sharing the host's state resolves ``sdk.OptionalUser``, overridden
    there (and only there) by the host's ``current_user`` with all its dependencies, for the
    request's headers: only public FastAPI API, whatever the host's dependencies are.
    """

    def __init__(self, host_app: FastAPI, optional_user: Callable[..., Any]) -> None:
        resolver = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
        resolver.state = host_app.state
        # The host's overrides (a test's, say) too, and sdk.optional_user → its dependency.
        resolver.dependency_overrides = _Overrides(host_app, optional_user)

        @resolver.get("/")
        async def who(user: sdk.OptionalUser) -> dict[str, Any] | None:
            if user is None:
                return None
            return {"id": user.id, "username": user.username, "role": user.role}

        self._app = resolver

    async def user_of(self, request: Request) -> sdk.User | None:
        scope = dict(request.scope) | {"path": "/", "raw_path": b"/", "method": "GET"}
        scope["query_string"] = b""
        scope["root_path"] = ""
        scope.pop("router", None)
        scope.pop("route", None)
        scope.pop("endpoint", None)
        answer: dict[str, Any] = {"body": b""}

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                answer["status"] = message["status"]
                answer["headers"] = message.get("headers", [])
            elif message["type"] == "http.response.body":
                answer["body"] += message.get("body", b"")

        await self._app(scope, receive, send)
        found = json.loads(answer["body"] or b"null")
        if answer.get("status") != 200:
            headers = {k.decode(): v.decode() for k, v in answer.get("headers", [])}
            detail = found.get("detail") if isinstance(found, dict) else None
            raise HTTPException(answer.get("status", 500), detail, headers)
        return None if found is None else sdk.User(**found)
