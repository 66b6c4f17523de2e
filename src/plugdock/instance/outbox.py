"""Host events in the database: declared points, the outbox, and each subscriber's delivery.

- :func:`emit` inserts the event in the emitter's own transaction: rolled back, it never
  happened; committed, it is delivered (at least once) even if the process dies next.
- :func:`fan_out` turns new events into one delivery per plugin subscribed at that moment
  (the event's flag and its deliveries in one transaction: a crash redoes both or neither).
- :func:`claim` hands due deliveries to one worker with a conditional ``UPDATE`` per row, so
  workers and replicas never take the same one and never wait on each other's locks; a
  claim is a lease: a worker that dies leaves it to be claimed again when it runs out.
- Per subscriber and event key, order holds: a delivery waits while an earlier one for the
  same plugin and key is not done (retrying or dead), so "paid" never overtakes "created".
- A failure is retried with backoff, :data:`MAX_ATTEMPTS` times, then dead (an admin
  retries it). A disabled plugin's deliveries wait; an uninstalled plugin's are dropped.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import Connection, Engine, and_, delete, exists, insert, or_, select, update
from sqlalchemy.orm import aliased

from plugdock.core.db import (
    addon_installations,
    connect_read,
    event_deliveries,
    event_outbox,
    event_subscriptions,
    extension_points,
    utcnow,
)
from plugdock.instance import audit
from plugdock.instance.notify import EVENTS_CHANNEL, notify_change

MAX_ATTEMPTS = 8
BACKOFF_CAP_SECONDS = 300
FAN_OUT_BATCH = 200
_NOTIFIED = "plugdock_events_notified"  # conn.info: the transaction that sent the NOTIFY
#: Delivered events and their deliveries are kept this long (the deliveries page), then go.
RETENTION = timedelta(days=7)


class PluginChanged(BaseModel):
    """A plugin was installed, upgraded, uninstalled, enabled or disabled."""

    plugin_id: str
    version: str
    actor: str | None = Field(None, description="who did it; null for plugdock itself")


#: What plugdock emits in every host, in the operation's own transaction (audit action →
#: event name); a host declares them all (plugdock.host.events).
PLUGIN_EVENTS = {
    "install": "plugin.installed",
    "upgrade": "plugin.upgraded",
    "uninstall": "plugin.uninstalled",
    "enable": "plugin.enabled",
    "disable": "plugin.disabled",
}


@dataclass(frozen=True)
class Point:
    """An extension point a host declared (kind ``event`` for now)."""

    kind: str
    name: str
    version: int
    payload_schema: dict[str, Any]
    description: str


@dataclass(frozen=True)
class Delivery:
    """One event for one plugin's handler, as a worker claimed it."""

    id: int
    plugin_id: str
    handler: str
    name: str
    version: int
    key: str | None
    payload: dict[str, Any]
    attempts: int  # this one included


# -- declared points --------------------------------------------------------------------------


def record_points(engine: Engine, points: Iterable[Point]) -> None:
    """Record what the host declares at start (insert or update; others stay listed)."""
    now = utcnow()
    with engine.begin() as conn:
        for point in points:
            values = {
                "version": point.version,
                "payload_schema": point.payload_schema,
                "description": point.description,
                "declared_at": now,
            }
            key = (extension_points.c.kind == point.kind) & (extension_points.c.name == point.name)
            if conn.execute(update(extension_points).where(key).values(values)).rowcount == 0:
                conn.execute(
                    insert(extension_points).values(kind=point.kind, name=point.name, **values)
                )


def declared_points(conn: Connection, kind: str = "event") -> dict[str, Point]:
    rows = conn.execute(
        select(extension_points).where(extension_points.c.kind == kind).order_by("name")
    ).all()
    return {r.name: Point(r.kind, r.name, r.version, r.payload_schema, r.description) for r in rows}


# -- emitting ---------------------------------------------------------------------------------


def emit(
    conn: Connection, name: str, version: int, payload: dict[str, Any], key: str | None
) -> None:
    """Write one event into the outbox, in ``conn``'s transaction (the caller commits)."""
    conn.execute(
        insert(event_outbox).values(
            name=name,
            version=version,
            event_key=key,
            payload=payload,
            emitted_at=utcnow(),
            fanned_out=False,
        )
    )
    # PostgreSQL: every worker looks at the commit. Once per transaction is enough.
    transaction = conn.get_transaction()
    notified = conn.info.get(_NOTIFIED)
    if transaction is None or notified is None or notified() is not transaction:
        notify_change(conn, EVENTS_CHANNEL)
        if transaction is not None:  # a weak reference: an id() could be a later one's
            conn.info[_NOTIFIED] = weakref.ref(transaction)


# -- delivering -------------------------------------------------------------------------------


def set_subscriptions(conn: Connection, plugin_id: str, handlers: Mapping[str, str]) -> None:
    """What ``plugin_id`` handles from now on (event name → handler), in the caller's
    transaction: the install, upgrade or uninstall (nothing) that changes it."""
    s = event_subscriptions.c
    conn.execute(delete(event_subscriptions).where(s.plugin_id == plugin_id))
    if handlers:
        conn.execute(
            insert(event_subscriptions),
            [
                {"plugin_id": plugin_id, "event_name": name, "handler": handler}
                for name, handler in sorted(handlers.items())
            ],
        )


def subscribers(conn: Connection) -> dict[str, list[tuple[str, str]]]:
    """Event name → [(plugin id, handler)] of the installed plugins, enabled or not."""
    s = event_subscriptions.c
    rows = conn.execute(
        select(s.event_name, s.plugin_id, s.handler)
        .join(addon_installations, addon_installations.c.plugin_id == s.plugin_id)
        .order_by(s.event_name, s.plugin_id)
    ).all()
    found: dict[str, list[tuple[str, str]]] = {}
    for row in rows:
        found.setdefault(row.event_name, []).append((row.plugin_id, row.handler))
    return found


def fan_out(engine: Engine) -> int:
    """One delivery per plugin subscribed now (:func:`subscribers`) to each new event.

    The batch is taken under row locks that other workers skip (PostgreSQL, MariaDB; SQLite's
    write lock serializes), so two workers never fan one event out twice."""
    made = 0
    waiting = select(event_outbox.c.id).where(event_outbox.c.fanned_out == False).limit(1)  # noqa: E712
    with connect_read(engine) as conn:  # the common case, nothing new: no write lock taken
        if conn.execute(waiting).first() is None:
            return 0
    with engine.begin() as conn:
        query = (
            select(event_outbox.c.id, event_outbox.c.name, event_outbox.c.event_key)
            .where(event_outbox.c.fanned_out == False)  # noqa: E712 - SQL, not Python
            .order_by(event_outbox.c.id)
            .limit(FAN_OUT_BATCH)
        )
        new = conn.execute(_skip_locked(conn, query)).all()
        if not new:
            return 0
        handlers = subscribers(conn)
        conn.execute(
            update(event_outbox)
            .where(event_outbox.c.id.in_([event.id for event in new]))
            .values(fanned_out=True)
        )
        now = utcnow()
        rows = [
            {
                "event_id": event.id,
                "plugin_id": plugin_id,
                "handler": handler,
                "event_key": event.event_key,
                "status": "pending",
                "attempts": 0,
                "next_at": now,
            }
            for event in new
            for plugin_id, handler in handlers.get(event.name, [])
        ]
        if rows:
            conn.execute(insert(event_deliveries), rows)
            made = len(rows)
    return made


def drop_plugin(conn: Connection, plugin_id: str) -> None:
    """The plugin is uninstalled (in the caller's transaction): its subscriptions and the
    deliveries it has not had go with it."""
    set_subscriptions(conn, plugin_id, {})
    d = event_deliveries.c
    conn.execute(delete(event_deliveries).where(d.plugin_id == plugin_id, d.status != "done"))


def _skip_locked(conn: Connection, query: Any) -> Any:
    """``FOR UPDATE SKIP LOCKED`` where the database has it (SQLite's writer is alone)."""
    return query if conn.dialect.name == "sqlite" else query.with_for_update(skip_locked=True)


def sweep(engine: Engine) -> None:
    """Forget what was delivered more than :data:`RETENTION` ago (dead ones stay)."""
    before = utcnow() - RETENTION
    d = event_deliveries.c
    with engine.begin() as conn:
        conn.execute(delete(event_deliveries).where(d.status == "done", d.finished_at < before))
        undone = exists().where(d.event_id == event_outbox.c.id)
        conn.execute(
            delete(event_outbox).where(
                event_outbox.c.fanned_out == True,  # noqa: E712 - SQL
                event_outbox.c.emitted_at < before,
                ~undone,
            )
        )


def _due(now: datetime) -> Any:
    """Deliveries a worker may take now: pending and due, or claimed by a lease run out."""
    d = event_deliveries.c
    earlier = aliased(event_deliveries)
    held = exists().where(
        earlier.c.plugin_id == d.plugin_id,
        earlier.c.event_key == d.event_key,
        earlier.c.event_id < d.event_id,  # emit order, whatever order fan-out made them in
        earlier.c.status != "done",
    )
    enabled = exists().where(
        addon_installations.c.plugin_id == d.plugin_id, addon_installations.c.enabled
    )
    return and_(
        or_(
            and_(d.status == "pending", d.next_at <= now),
            and_(d.status == "running", d.claimed_until < now),
        ),
        or_(d.event_key.is_(None), ~held),
        enabled,
    )


def claim(
    engine: Engine,
    worker: str,
    *,
    limit: int,
    lease: timedelta,
    plugins: Iterable[str] | None = None,
) -> list[Delivery]:
    """Up to ``limit`` due deliveries for ``worker`` (of ``plugins`` only, if given: those it
    serves), each held until its lease runs out. Rows another worker is claiming are skipped,
    not waited for."""
    now = utcnow()
    d = event_deliveries.c
    query = select(d.id).where(_due(now)).order_by(d.event_id, d.id).limit(limit)
    if plugins is not None:
        query = query.where(d.plugin_id.in_(sorted(plugins)))
    with connect_read(engine) as conn:  # nothing due (the common case): no write lock taken
        if conn.execute(query.limit(1)).first() is None:
            return []
    with engine.begin() as conn:
        claimed = list(conn.execute(_skip_locked(conn, query)).scalars())
        if not claimed:
            return []
        conn.execute(
            update(event_deliveries)
            .where(d.id.in_(claimed))
            .values(
                status="running",
                claimed_by=worker,
                claimed_until=now + lease,
                attempts=d.attempts + 1,
            )
        )
    with connect_read(engine) as conn:
        rows = conn.execute(
            select(
                d.id,
                d.plugin_id,
                d.handler,
                d.event_key,
                d.attempts,
                event_outbox.c.name,
                event_outbox.c.version,
                event_outbox.c.payload,
            )
            .join(event_outbox, event_outbox.c.id == d.event_id)
            .where(d.id.in_(claimed))
            .order_by(d.event_id, d.id)
        ).all()
    return [
        Delivery(
            r.id, r.plugin_id, r.handler, r.name, r.version, r.event_key, r.payload, r.attempts
        )
        for r in rows
    ]


def finish(engine: Engine, delivery: Delivery, worker: str) -> None:
    """The handler returned: done (only if this worker still holds it)."""
    d = event_deliveries.c
    with engine.begin() as conn:
        conn.execute(
            update(event_deliveries)
            .where(d.id == delivery.id, d.claimed_by == worker, d.status == "running")
            .values(status="done", finished_at=utcnow(), last_error=None, claimed_until=None)
        )


def fail(engine: Engine, delivery: Delivery, worker: str, error: str) -> str:
    """The handler failed: retried after a backoff, or dead after :data:`MAX_ATTEMPTS`."""
    d = event_deliveries.c
    now = utcnow()
    dead = delivery.attempts >= MAX_ATTEMPTS
    backoff = timedelta(seconds=min(2 ** (delivery.attempts - 1), BACKOFF_CAP_SECONDS))
    with engine.begin() as conn:
        conn.execute(
            update(event_deliveries)
            .where(d.id == delivery.id, d.claimed_by == worker, d.status == "running")
            .values(
                status="dead" if dead else "pending",
                next_at=now if dead else now + backoff,
                last_error=error[:2000],
                claimed_until=None,
                finished_at=now if dead else None,
            )
        )
    return "dead" if dead else "pending"


def retry(engine: Engine, delivery_id: int, *, actor: str | None = None) -> bool:
    """An admin retries a dead delivery: pending again, its attempts counted afresh (and an
    audit entry, in the same transaction). False when there is no such dead delivery."""
    d = event_deliveries.c
    with engine.begin() as conn:
        done = conn.execute(
            update(event_deliveries)
            .where(d.id == delivery_id, d.status == "dead")
            .values(status="pending", attempts=0, next_at=utcnow(), finished_at=None)
        )
        if done.rowcount != 1:
            return False
        audit.record(conn, actor=actor, action=audit.EVENT_RETRY, detail={"delivery": delivery_id})
    return True


def list_deliveries(
    conn: Connection, *, status: str | None = None, limit: int = 100
) -> list[dict[str, Any]]:
    """The newest deliveries (optionally of one status), with their event's name and key,
    and whether an earlier undone delivery of the same key holds them (``held``)."""
    d = event_deliveries.c
    earlier = aliased(event_deliveries)
    held = (
        exists()
        .where(
            earlier.c.plugin_id == d.plugin_id,
            earlier.c.event_key == d.event_key,
            earlier.c.event_id < d.event_id,
            earlier.c.status != "done",
        )
        .label("held")
    )
    query = (
        select(
            held,
            d.id,
            d.plugin_id,
            d.handler,
            d.status,
            d.attempts,
            d.event_key,
            d.last_error,
            d.next_at,
            d.finished_at,
            event_outbox.c.name,
            event_outbox.c.emitted_at,
        )
        .join(event_outbox, event_outbox.c.id == d.event_id)
        .order_by(d.id.desc())
        .limit(limit)
    )
    if status is not None:
        query = query.where(d.status == status)
    return [dict(row._mapping) for row in conn.execute(query)]
