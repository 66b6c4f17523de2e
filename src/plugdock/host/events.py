"""Events a host declares and emits, for plugins to handle (``host.events``).

::

    class InvoicePaid(BaseModel):
        invoice_id: int
        amount: Decimal

    host.events.declare("invoice.paid", InvoicePaid)
    ...
    with engine.begin() as conn:                          # the host's own transaction
        conn.execute(update(invoices)...)
        host.events.emit("invoice.paid", InvoicePaid(...), conn=conn, key=f"invoice:{id}")

    async with async_engine.begin() as conn:              # an async host: await it
        await host.events.emit("invoice.paid", InvoicePaid(...), conn=conn)

``emit`` writes into plugdock's outbox inside the caller's transaction: an event of a
transaction that rolls back never reaches a plugin, and one that commits is delivered at
least once to every plugin subscribed (``"events"`` in its metadata.json), by one worker of
one replica (:mod:`plugdock.instance.outbox`, :mod:`plugdock.runtime.deliveries`).
Declared points are recorded in the database at start, so the CLI, other replicas and the
installer (which refuses a subscription to an undeclared point) see them.
"""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import UTC, datetime
from typing import Any, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field
from sqlalchemy import Connection
from sqlalchemy.orm import Session

from plugdock import sdk
from plugdock.core.db import connect_read
from plugdock.errors import NotFoundError, PlugdockError
from plugdock.host.state import panel_state
from plugdock.instance import outbox
from plugdock.package.metadata import POINT_NAME

_PAST = {
    "install": "installed",
    "upgrade": "upgraded",
    "uninstall": "uninstalled",
    "enable": "enabled",
    "disable": "disabled",
}


class HostEvents:
    """The events one host declares (:meth:`declare`) and emits (:meth:`emit`)."""

    def __init__(self) -> None:
        self._models: dict[str, tuple[type[BaseModel], int, str]] = {}
        for action, name in outbox.PLUGIN_EVENTS.items():  # plugdock's own, in every host
            self._models[name] = (outbox.PluginChanged, 1, f"A plugin was {_PAST[action]}.")

    def declare(
        self,
        name: str,
        model: type[BaseModel],
        *,
        version: int = 1,
        description: str | None = None,
    ) -> None:
        """Declare event ``name`` with its payload model. Change the model's fields in a way
        handlers would notice, and give it a new ``version``: stored events keep theirs."""
        if not POINT_NAME.fullmatch(name) or len(name) > 100:
            raise PlugdockError(f"{name!r} is not an event name (dotted words: invoice.paid)")
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            raise PlugdockError(f"the payload of {name} must be a pydantic model class")
        if version < 1:
            raise PlugdockError(f"the version of {name} must be 1 or more")
        if name in self._models:
            raise PlugdockError(f"event {name} is declared twice")
        about = description or (model.__doc__ or "").strip().split("\n")[0]
        self._models[name] = (model, version, about)

    def points(self) -> list[outbox.Point]:
        """What this host declares, as recorded in the database."""
        return [
            outbox.Point("event", name, version, model.model_json_schema(), about)
            for name, (model, version, about) in sorted(self._models.items())
        ]

    def emit(
        self, name: str, payload: BaseModel, *, conn: Any, key: str | None = None
    ) -> Awaitable[None] | None:
        """Write event ``name`` into the outbox inside ``conn``'s transaction.

        ``conn``: a SQLAlchemy ``Connection`` or ``Session`` (then it returns None), or an
        ``AsyncConnection`` or ``AsyncSession`` (then await what it returns). ``key``: events
        with the same key reach each plugin in the order they were emitted (an invoice's id).
        """
        declared = self._models.get(name)
        if declared is None:
            raise PlugdockError(f"event {name} is not declared (host.events.declare)")
        model, version, _about = declared
        if not isinstance(payload, model):
            raise PlugdockError(f"the payload of {name} must be a {model.__name__}")
        data = payload.model_dump(mode="json")
        if key is not None and not (0 < len(key) <= 200):
            raise PlugdockError("an event key is 1 to 200 characters")

        def write(sync_conn: Connection | Session) -> None:
            connection = sync_conn.connection() if isinstance(sync_conn, Session) else sync_conn
            outbox.emit(connection, name, version, data, key)

        run_sync = getattr(conn, "run_sync", None)  # AsyncConnection, AsyncSession
        if run_sync is not None:
            return run_sync(write)  # type: ignore[no-any-return]
        write(conn)
        return None


# -- the API -----------------------------------------------------------------------------------

router = APIRouter(prefix="/api/v1", tags=["events"])


class Subscriber(BaseModel):
    plugin_id: str
    handler: str
    priority: int | None = Field(None, description="filters: lower runs first")


class ExtensionPoint(BaseModel):
    kind: str = Field(description="'event' or 'filter' (services and slots come later)")
    name: str
    version: int
    payload_schema: dict[str, Any]
    description: str
    subscribers: list[Subscriber]


@router.get("/extension-points", response_model=list[ExtensionPoint])
def extension_points(request: Request, _admin: sdk.AdminUser) -> list[ExtensionPoint]:
    """What the host declares for plugins, and which installed plugins handle each point."""
    state = panel_state(request.app)
    with connect_read(state.engine) as conn:
        points = [
            *outbox.declared_points(conn).values(),
            *outbox.declared_points(conn, "filter").values(),
        ]
    handlers: dict[tuple[str, str], list[Subscriber]] = {}
    installed = state.installer.workspace.installed_metadata()
    for plugin_id, meta in sorted(installed.items()):
        for name, handler in meta.events.items():
            handlers.setdefault(("event", name), []).append(
                Subscriber(plugin_id=plugin_id, handler=handler)
            )
        for name, spec in meta.filters.items():
            handlers.setdefault(("filter", name), []).append(
                Subscriber(plugin_id=plugin_id, handler=spec.handler, priority=spec.priority)
            )
    for found in handlers.values():
        found.sort(key=lambda s: (s.priority or 0, s.plugin_id))  # filters: in the order they run
    return [
        ExtensionPoint(
            kind=p.kind,
            name=p.name,
            version=p.version,
            payload_schema=p.payload_schema,
            description=p.description,
            subscribers=handlers.get((p.kind, p.name), []),
        )
        for p in points
    ]


class DeliveryOut(BaseModel):
    id: int
    event: str
    event_key: str | None
    plugin_id: str
    handler: str
    status: str = Field(description="pending, running, done or dead")
    attempts: int
    last_error: str | None
    emitted_at: datetime
    next_at: datetime = Field(description="a pending delivery is not tried before this")
    finished_at: datetime | None
    held: bool = Field(description="waiting for an earlier delivery of the same key")


DeliveryStatus = Literal["pending", "running", "done", "dead"]


@router.get("/events/deliveries", response_model=list[DeliveryOut])
def deliveries(
    request: Request,
    _admin: sdk.AdminUser,
    status: DeliveryStatus | None = None,
    limit: sdk.Limit = 100,
) -> list[DeliveryOut]:
    """The newest deliveries of host events to plugins (optionally of one status)."""
    state = panel_state(request.app)
    with connect_read(state.engine) as conn:
        rows = outbox.list_deliveries(conn, status=status, limit=limit)
    return [
        DeliveryOut(
            id=r["id"],
            event=r["name"],
            event_key=r["event_key"],
            plugin_id=r["plugin_id"],
            handler=r["handler"],
            status=r["status"],
            attempts=r["attempts"],
            last_error=r["last_error"],
            emitted_at=_utc(r["emitted_at"]),
            next_at=_utc(r["next_at"]),
            finished_at=_utc(r["finished_at"]) if r["finished_at"] else None,
            held=r["held"],
        )
        for r in rows
    ]


class RetryOut(BaseModel):
    id: int
    message: str


@router.post("/events/deliveries/{delivery_id}/retry", response_model=RetryOut)
def retry_delivery(delivery_id: sdk.Id, request: Request, admin: sdk.AdminUser) -> RetryOut:
    """Deliver a dead delivery again, its attempts counted afresh."""
    state = panel_state(request.app)
    if not outbox.retry(state.engine, delivery_id, actor=admin.username):
        raise NotFoundError(f"no dead delivery {delivery_id}")
    return RetryOut(id=delivery_id, message=f"delivery {delivery_id} will be delivered again")


def _utc(value: datetime) -> datetime:
    """The database's naive UTC, said as UTC."""
    return value.replace(tzinfo=UTC)
