"""The small, stable API that plugin backends import: database session, users, settings, logs.

A plugin's backend imports plugdock only through this module, never its internals::

    from fastapi import APIRouter
    from plugdock import sdk

    router = APIRouter(prefix="/api/v1/notes")

    @router.get("/")
    def list_notes(db: sdk.DbSession, user: sdk.CurrentUser) -> list[str]:
        return [n.text for n in db.scalars(select(Note).where(Note.owner == user.id))]

    @router.delete("/{note_id}")
    def delete_note(note_id: sdk.Id, db: sdk.DbSession, admin: sdk.AdminUser) -> None: ...

Integers from a request are bounded with :data:`Id`, :data:`Offset` and :data:`Limit`: a
bare ``int`` takes any size, and one past what the database holds (2^63) crashes the query.

Lifecycle hooks receive a :class:`HookContext`, nothing more::

    def on_install(ctx: sdk.HookContext) -> None:
        ctx.connection.execute(text("INSERT INTO notes_items (title) VALUES ('welcome')"))
        ctx.logger.info("seeded %s %s", ctx.plugin_id, ctx.version)

The host application provides what these helpers need as one :class:`HostState` on
``app.state.plugdock``: the SQLAlchemy :class:`~sqlalchemy.Engine` of the host database and
(optionally) an ``authenticate(request) -> sdk.User | None`` that turns the request's
credentials into a user; without it, every request is anonymous::

    app.state.plugdock = sdk.HostState(engine=engine, authenticate=my_authenticate)

The reference panel stores a :class:`~plugdock.host.state.PanelState`, which is one.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
import threading
import weakref
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import Depends, HTTPException, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.openapi.models import HTTPBearer as HTTPBearerModel
from fastapi.security.base import SecurityBase
from pydantic import Field
from sqlalchemy import Connection, Engine
from sqlalchemy.orm import Session, sessionmaker
from starlette.applications import Starlette

from plugdock.core import contract

__all__ = [
    "MAX_INT",
    "MAX_LIMIT",
    "AdminUser",
    "Authenticate",
    "CurrentUser",
    "DbSession",
    "Event",
    "HookContext",
    "HostState",
    "Id",
    "JobRun",
    "Limit",
    "Offset",
    "OptionalUser",
    "PluginSettings",
    "User",
    "Users",
    "Veto",
    "current_user",
    "db_session",
    "errors",
    "get_logger",
    "host_state",
    "list_users",
    "optional_user",
    "plugin_config",
    "plugin_settings",
    "require_admin",
    "session",
]

SETTINGS_ENV_PREFIX = "PLUGDOCK_PLUGIN_"


# -- bounded integers for path and query values (and body fields) --------------------------

MAX_INT = 2**63 - 1
"""The largest integer every supported database stores (BIGINT; SQLite's INTEGER)."""
MAX_LIMIT = 1000
"""The largest page :data:`Limit` allows."""

Id = Annotated[int, Field(ge=1, le=MAX_INT)]
"""A row id: 1 to :data:`MAX_INT`; anything else is a 422 before the route runs::

    @router.get("/items/{item_id}")
    def get_item(item_id: sdk.Id, db: sdk.DbSession) -> ItemOut: ...

Add a description (or a tighter bound) with FastAPI's own marker around it:
``Annotated[sdk.Id, Path(description="The item's id")]``.
"""
Offset = Annotated[int, Field(ge=0, le=MAX_INT)]
"""How many rows a page skips: 0 to :data:`MAX_INT` (``offset: sdk.Offset = 0``)."""
Limit = Annotated[int, Field(ge=1, le=MAX_LIMIT)]
"""A page size: 1 to :data:`MAX_LIMIT` (``limit: sdk.Limit = 50``). A smaller cap:
``Annotated[sdk.Limit, Query(le=100)]``."""


@dataclass(frozen=True)
class User:
    """The user a request acts for, as the host's authentication reports it.

    >>> User(id=1, username="alice", role="admin").is_admin
    True
    """

    id: int | str
    username: str
    role: str

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


@dataclass(frozen=True)
class Event:
    """One host event delivered to a plugin's handler (``"events"`` in metadata.json).

    ``delivery_id`` is the same on every attempt of this delivery (an event is delivered at
    least once: a handler that records it can skip a repeat); ``version`` is the version of
    the payload's model the host declared when it emitted the event::

        def on_paid(event: sdk.Event) -> None:       # "invoice.paid": "handlers:on_paid"
            send_receipt(event.payload["invoice_id"])
    """

    delivery_id: int
    name: str
    version: int
    key: str | None
    payload: dict[str, Any]


class Veto(Exception):  # the word a plugin author reads: raise sdk.Veto(...)
    """Raised by a filter to refuse what the host is doing; the host shows ``message``::

    def check_signup(value: dict) -> dict:       # "customer.signup": "filters:check_signup"
        if value["email"].endswith("@spam.example"):
            raise sdk.Veto("sign-ups from this domain are not accepted")
        return value
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = str(message)[:500]


@dataclass(frozen=True)
class JobRun:
    """One run of a plugin's scheduled job (``"jobs"`` in metadata.json).

    ``run_id`` names this run in the job's history; ``scheduled_for`` is the tick it runs
    for (UTC; the moment it was asked for, for a "run now"). A tick missed while nothing
    ran is run once, late, with its own ``scheduled_for``::

        def send_reminders(run: sdk.JobRun) -> None:  # {"id": "reminders", "cron": "0 9 * * *",
            with sdk.session() as db:                 #  "handler": "jobs:send_reminders"}
                ...
    """

    run_id: int
    job: str
    scheduled_for: datetime
    manual: bool = False  # asked for by an admin ("run now"), not a tick

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "job": self.job,
            "scheduled_for": self.scheduled_for.isoformat(),
            "manual": self.manual,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> JobRun:
        when = datetime.fromisoformat(data["scheduled_for"])
        return cls(int(data["run_id"]), str(data["job"]), when, bool(data["manual"]))


Authenticate = Callable[[Request], User | None]
"""Turns a request's credentials into a user (``HostState.authenticate``)."""


# -- what the host provides ----------------------------------------------------------------

STATE_ATTRIBUTE = "plugdock"  # app.state.plugdock


@dataclass(kw_only=True)
class HostState:
    """What a host application gives the SDK, stored as ``app.state.plugdock``."""

    engine: Engine
    authenticate: Authenticate | None = None
    # The panel's active users for a plugin granted ``core:users:read`` (sdk.Users).
    users: Callable[[Request], list[User]] | None = None
    # The same users for plugins in processes of their own, asked without a request: the
    # process's core socket checks the grant (plugdock.isolation.core_calls).
    host_users: Callable[[], list[User]] | None = None
    # The user of a request when ``authenticate`` cannot say (a host whose auth is a
    # dependency of dependencies): resolved apart from the route, for plugin routes, the
    # marketplace and a plugin process's forwarded requests alike.
    user_of: Callable[[Request], Awaitable[User | None]] | None = None
    # The current values of the declared settings of the plugin serving a request
    # (sdk.PluginSettings): only that plugin's own, secrets decrypted.
    settings_of: Callable[[Request], Mapping[str, Any]] | None = None


def host_state(app: Starlette) -> HostState:
    """The :class:`HostState` the host stored on ``app``; RuntimeError when there is none."""
    state = getattr(app.state, STATE_ATTRIBUTE, None)
    if not isinstance(state, HostState):
        raise RuntimeError(
            f"the host application did not set app.state.{STATE_ATTRIBUTE} to an sdk.HostState"
        )
    return state


# -- lifecycle hooks -----------------------------------------------------------------------

HookOperation = Literal["install", "upgrade", "uninstall"]


@dataclass(frozen=True, slots=True)
class HookContext:
    """What ``on_install(ctx)``, ``on_upgrade(ctx, from_version)`` and ``on_uninstall(ctx)`` get.

    Only what a hook needs for the plugin's own work: who it is, the operation's database
    transaction, its own settings and its logger; none of the host's configuration (its
    settings, secret key, paths). Every field but ``connection`` is plain data, so a plugin
    running in a process of its own can be handed the same context with a connection of
    its own.

    ``connection`` is the operation's transaction, on which the plugin's tables already
    exist (install, upgrade) or still exist (uninstall). Write through it and never commit
    or roll it back: the host does, and a hook that commits is refused. ORM code binds a
    session to it::

        def on_install(ctx: sdk.HookContext) -> None:
            with Session(bind=ctx.connection, join_transaction_mode="create_savepoint") as db:
                db.add(Item(title="welcome"))
                db.flush()

    An exception in a hook rolls the whole operation back.
    """

    plugin_id: str
    version: str  # the version being installed, upgraded to, or uninstalled
    operation: HookOperation
    connection: Connection
    settings: Mapping[str, str]  # sdk.plugin_settings(plugin_id) when the operation ran
    logger: logging.Logger  # sdk.get_logger(plugin_id)
    from_version: str | None = None  # on upgrade: the version being replaced


# -- database ------------------------------------------------------------------------------

_sessionmakers: weakref.WeakKeyDictionary[Engine, sessionmaker[Session]] = (
    weakref.WeakKeyDictionary()
)
_sessionmakers_lock = threading.Lock()


def _sessionmaker_for(engine: Engine) -> sessionmaker[Session]:
    with _sessionmakers_lock:
        factory = _sessionmakers.get(engine)
        if factory is None:
            # expire_on_commit=False: objects stay readable after the commit, so a route can
            # return them once the dependency has committed.
            factory = sessionmaker(bind=engine, expire_on_commit=False)
            _sessionmakers[engine] = factory
        return factory


def db_session(request: Request) -> Iterator[Session]:
    """FastAPI dependency: a :class:`~sqlalchemy.orm.Session` on the host database.

    Commits when the route succeeds, rolls back when it raises (also ``HTTPException``),
    and always closes. Prefer the :data:`DbSession` annotation, which commits *before*
    the response is sent::

        @router.post("/notes")
        def add_note(body: NoteIn, db: sdk.DbSession) -> NoteOut:
            note = Note(text=body.text)
            db.add(note)
            db.flush()  # assigns note.id
            return NoteOut.model_validate(note)

    With a plain ``Depends(sdk.db_session)`` FastAPI runs the commit after the response has
    gone out, so a failed commit could not change the status the client already received.
    """
    with _sessionmaker_for(host_state(request.app).engine)() as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


#: The database an event handler (or, later, a job) works in, set by whoever runs it.
handler_engine: contextvars.ContextVar[Engine] = contextvars.ContextVar("plugdock_handler_engine")


@contextlib.contextmanager
def session() -> Iterator[Session]:
    """A database session inside an event handler or a job (no request to take ``DbSession`` from);
    committed when the block ends, rolled back if it raises::

        def on_paid(event: sdk.Event) -> None:
            with sdk.session() as db:
                db.add(Receipt(invoice_id=event.payload["invoice_id"]))
    """
    engine = handler_engine.get(None)
    if engine is None:
        raise RuntimeError(
            "sdk.session() is for event handlers and jobs; routes take sdk.DbSession"
        )
    with _sessionmaker_for(engine)() as db:
        try:
            yield db
            db.commit()
        except BaseException:
            db.rollback()
            raise


DbSession = Annotated[Session, Depends(db_session, scope="function")]
"""Route parameter annotation: ``db: sdk.DbSession`` (commits before the response is sent)."""


# -- error answers in the OpenAPI document ------------------------------------------------

errors = contract.errors
"""A ``responses=`` table for a route's own refusals, with the one JSON error model::

    @router.get("/items/{item_id}", responses=sdk.errors(404, 409))

Sign-in (401/403 of :data:`CurrentUser` and :data:`AdminUser`), invalid input (422), an
unparsable or too large body (400/413) and unknown ids in the path (404) are added to every
route that can answer them; declare what the route raises itself (a 409, a 429)."""


# -- users ---------------------------------------------------------------------------------


class _SignIn(SecurityBase):
    """What a route needs, written into the OpenAPI document as a security requirement.

    Only a placeholder: the host's own schemes (the panel's bearer token or cookie session)
    replace it in the finished document (:func:`plugdock.core.contract.complete`). Checks
    nothing itself; the user dependencies below do.
    """

    def __init__(self, name: str) -> None:
        self.model = HTTPBearerModel(description="the host's sign-in")
        self.scheme_name = name

    def __call__(self) -> None:
        return None


_MAYBE_SIGNED_IN = _SignIn(contract.MAYBE_SIGNED_IN)
_SIGNED_IN = _SignIn(contract.SIGNED_IN)
_ADMIN = _SignIn(contract.ADMIN)


async def optional_user(request: Request, _doc: None = Depends(_MAYBE_SIGNED_IN)) -> User | None:
    """FastAPI dependency: the signed-in user, or ``None`` for an anonymous request.

    ::

        @router.get("/greeting")
        def greeting(user: sdk.OptionalUser) -> str:
            return f"Hello {user.username}" if user else "Hello visitor"
    """
    state = getattr(request.app.state, STATE_ATTRIBUTE, None)
    if not isinstance(state, HostState):  # a host without authentication: all anonymous
        return None
    if state.user_of is not None:  # the host's auth is a dependency with dependencies
        return await state.user_of(request)
    if state.authenticate is None:
        return None
    # In a worker thread, as FastAPI runs a sync dependency: it may query the database.
    return await run_in_threadpool(state.authenticate, request)


def current_user(
    user: User | None = Depends(optional_user), _doc: None = Depends(_SIGNED_IN)
) -> User:
    """FastAPI dependency: the signed-in user; answers 401 ``Not authenticated`` without one.

    ::

        @router.get("/me")
        def me(user: sdk.CurrentUser) -> dict[str, str]:
            return {"username": user.username}
    """
    if user is None:
        raise HTTPException(
            status_code=status.HTTP_401_UNAUTHORIZED,
            detail="Not authenticated",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return user


def require_admin(user: User = Depends(current_user), _doc: None = Depends(_ADMIN)) -> User:
    """FastAPI dependency: the signed-in admin; 401 when anonymous, 403 for other users.

    ::

        @router.post("/purge", dependencies=[Depends(sdk.require_admin)])
        def purge() -> None: ...
    """
    if not user.is_admin:
        raise HTTPException(
            status_code=status.HTTP_403_FORBIDDEN, detail="Admin privileges required"
        )
    return user


def list_users(request: Request) -> list[User]:
    """FastAPI dependency: the host's active users (id, name, role; never a password hash).

    The plugin must ask for the ``core:users:read`` permission in its metadata; without it
    the host answers 403. Prefer the :data:`Users` annotation::

        @router.get("/assignees")
        def assignees(users: sdk.Users, admin: sdk.AdminUser) -> list[str]:
            return [u.username for u in users]
    """
    users = host_state(request.app).users
    if users is None:
        raise HTTPException(
            status_code=status.HTTP_501_NOT_IMPLEMENTED,
            detail="this host does not share its users with plugins",
        )
    return users(request)


OptionalUser = Annotated[User | None, Depends(optional_user)]
CurrentUser = Annotated[User, Depends(current_user)]
AdminUser = Annotated[User, Depends(require_admin)]
Users = Annotated[list[User], Depends(list_users)]


# -- settings and logs ---------------------------------------------------------------------


def plugin_settings(plugin_id: str) -> dict[str, str]:
    """A plugin's settings from the environment, read at each call.

    ``PLUGDOCK_PLUGIN_<ID>_<KEY>=value`` becomes ``{"<key>": "value"}`` (id upper-cased,
    key lower-cased)::

        # PLUGDOCK_PLUGIN_AI_CHATBOT_OPENAI_MODEL=gpt-4o-mini
        >>> sdk.plugin_settings("ai_chatbot")
        {'openai_model': 'gpt-4o-mini'}

    Note that ids which prefix one another share names: plugin ``ai`` also sees
    ``PLUGDOCK_PLUGIN_AI_CHATBOT_X`` as key ``chatbot_x``.
    """
    prefix = f"{SETTINGS_ENV_PREFIX}{plugin_id.upper()}_"
    return {
        name[len(prefix) :].lower(): value
        for name, value in os.environ.items()
        if name.startswith(prefix) and len(name) > len(prefix)
    }


def plugin_config(request: Request) -> dict[str, Any]:
    """FastAPI dependency: the current values of the calling plugin's declared settings.

    Read from the host at each request, so a value an admin saves is used from the next
    request on, in every worker and replica, without a restart. A secret (``writeOnly``)
    arrives decrypted; a plugin only ever gets its own. Prefer the :data:`PluginSettings`
    annotation::

        @router.post("/send")
        def send(body: SmsIn, config: sdk.PluginSettings) -> SmsOut:
            bearer = {"Authorization": f"Bearer {config['api_key']}"}
            httpx.post(config["gateway_url"], headers=bearer, json=...)

    A setting without a value (no default, never set) is absent from the mapping; while a
    required one is missing the host answers 503 before any route of the plugin runs.
    """
    reader = host_state(request.app).settings_of
    if reader is None:
        raise HTTPException(
            status_code=status.HTTP_501_NOT_IMPLEMENTED,
            detail="this host keeps no plugin settings",
        )
    return dict(reader(request))


PluginSettings = Annotated[dict[str, Any], Depends(plugin_config)]
"""Route parameter annotation: ``config: sdk.PluginSettings`` (see :func:`plugin_config`)."""


def get_logger(plugin_id: str) -> logging.Logger:
    """The logger for a plugin: ``plugdock.plugins.<plugin_id>``.

    ::

        log = sdk.get_logger("ai_chatbot")
        log.info("chat session %s started", session_id)
    """
    return logging.getLogger(f"plugdock.plugins.{plugin_id}")
