"""The event outbox on SQLite, PostgreSQL and MariaDB: what is delivered, to whom, in what order.

The deliverer of each worker is only a loop around these calls, so the guarantees live
here: a rolled-back emit is never delivered, a claim is exclusive, a key's events reach a
plugin in order (a failing one holds the later ones), failures back off and die, a dead
delivery can be retried, a disabled plugin's deliveries wait and an uninstalled one's go.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from plugdock.core.db import event_deliveries, utcnow
from plugdock.installer import Installer
from plugdock.instance import outbox
from support import make_plugin, pack_into

LEASE = timedelta(seconds=60)
PAID = outbox.Point("event", "invoice.paid", 1, {"type": "object"}, "An invoice was paid")


@pytest.fixture
def two_plugins(installer: Installer, tmp_path: Path) -> Installer:
    """alpha and beta, both handling invoice.paid (their installs record it)."""
    outbox.record_points(installer.engine, [PAID])
    for plugin_id in ("alpha", "beta"):
        folder = make_plugin(
            tmp_path / "src",
            plugin_id,
            extra_files={"backend/handlers.py": "def paid(event):\n    pass\n"},
            metadata={"events": {"invoice.paid": "handlers:paid"}},
        )
        pack_into(folder, installer.settings.plugin_local_dir)
        installer.install(plugin_id)
    return installer


def emit(installer: Installer, key: str | None = None, *, commit: bool = True) -> None:
    conn = installer.engine.connect()
    transaction = conn.begin()
    outbox.emit(conn, "invoice.paid", 1, {"invoice_id": 7}, key)
    if commit:
        transaction.commit()
    else:
        transaction.rollback()
    conn.close()


def make_due(installer: Installer) -> None:
    """As if the backoff had passed."""
    with installer.engine.begin() as conn:
        conn.execute(update(event_deliveries).values(next_at=utcnow() - timedelta(seconds=1)))


def test_only_committed_events_are_delivered_once_per_subscriber(two_plugins: Installer) -> None:
    engine = two_plugins.engine
    emit(two_plugins, commit=False)
    assert outbox.fan_out(engine) == 0
    emit(two_plugins)
    assert outbox.fan_out(engine) == 2
    assert outbox.fan_out(engine) == 0  # fanned out once

    first = outbox.claim(engine, "worker-1", limit=10, lease=LEASE)
    second = outbox.claim(engine, "worker-2", limit=10, lease=LEASE)
    assert sorted(d.plugin_id for d in first) == ["alpha", "beta"]
    assert second == []  # a claim is exclusive
    assert first[0].payload == {"invoice_id": 7} and first[0].attempts == 1
    for delivery in first:
        outbox.finish(engine, delivery, "worker-1")
    with engine.connect() as conn:
        assert {d["status"] for d in outbox.list_deliveries(conn)} == {"done"}


def test_a_key_is_delivered_in_order_and_a_failure_holds_the_later_ones(
    two_plugins: Installer,
) -> None:
    engine = two_plugins.engine
    alpha = {"alpha"}  # beta has its own deliveries, claimed by nobody here
    emit(two_plugins, key="invoice:7")
    emit(two_plugins, key="invoice:7")
    emit(two_plugins, key="invoice:8")
    outbox.fan_out(engine)

    batch = outbox.claim(engine, "w", limit=10, lease=LEASE, plugins=alpha)
    assert [d.key for d in batch] == ["invoice:7", "invoice:8"]  # the second 7 waits
    seven, eight = batch
    outbox.finish(engine, eight, "w")
    assert outbox.fail(engine, seven, "w", "gateway down") == "pending"
    make_due(two_plugins)
    again = outbox.claim(engine, "w", limit=10, lease=LEASE, plugins=alpha)
    assert [(d.id, d.attempts) for d in again] == [(seven.id, 2)]  # still before the next 7

    for _ in range(outbox.MAX_ATTEMPTS - 2):
        outbox.fail(engine, again[0], "w", "gateway down")
        make_due(two_plugins)
        again = outbox.claim(engine, "w", limit=10, lease=LEASE, plugins=alpha)
        assert [d.id for d in again] == [seven.id]
    assert outbox.fail(engine, again[0], "w", "gateway down") == "dead"
    make_due(two_plugins)
    # dead holds its key
    assert outbox.claim(engine, "w", limit=10, lease=LEASE, plugins=alpha) == []
    with engine.connect() as conn:
        dead = outbox.list_deliveries(conn, status="dead")
    assert [(d["id"], d["last_error"]) for d in dead] == [(seven.id, "gateway down")]

    assert outbox.retry(engine, seven.id)
    assert not outbox.retry(engine, seven.id)  # only a dead one
    retried = outbox.claim(engine, "w", limit=10, lease=LEASE, plugins=alpha)
    assert [(d.id, d.attempts) for d in retried] == [(seven.id, 1)]
    outbox.finish(engine, retried[0], "w")
    later = outbox.claim(engine, "w", limit=10, lease=LEASE, plugins=alpha)
    assert [d.key for d in later] == ["invoice:7"]  # the held one, at last


def test_a_lease_that_runs_out_is_claimed_again(two_plugins: Installer) -> None:
    engine = two_plugins.engine
    alpha = {"alpha"}
    emit(two_plugins)
    outbox.fan_out(engine)
    taken = outbox.claim(engine, "dies", limit=10, lease=timedelta(seconds=-1), plugins=alpha)
    assert len(taken) == 1
    again = outbox.claim(engine, "lives", limit=10, lease=LEASE, plugins=alpha)
    assert [(d.id, d.attempts) for d in again] == [(taken[0].id, 2)]
    outbox.finish(engine, taken[0], "dies")  # the dead worker's late word changes nothing
    with engine.connect() as conn:
        [mine] = [d for d in outbox.list_deliveries(conn) if d["id"] == taken[0].id]
    assert mine["status"] == "running"


def test_disabled_plugins_wait_and_uninstalled_ones_are_dropped(two_plugins: Installer) -> None:
    engine = two_plugins.engine
    two_plugins.disable("alpha")
    emit(two_plugins)
    outbox.fan_out(engine)
    assert [d.plugin_id for d in outbox.claim(engine, "w", limit=10, lease=LEASE)] == ["beta"]
    two_plugins.enable("alpha")
    assert [d.plugin_id for d in outbox.claim(engine, "w", limit=10, lease=LEASE)] == ["alpha"]

    emit(two_plugins)
    two_plugins.uninstall("beta")
    outbox.fan_out(engine)  # beta's new delivery is made, then swept
    with engine.connect() as conn:
        pending = [d for d in outbox.list_deliveries(conn) if d["status"] == "pending"]
    assert [d["plugin_id"] for d in pending] == ["alpha"]


def test_declared_points_are_recorded_and_updated(engine: object) -> None:
    from sqlalchemy import Engine

    assert isinstance(engine, Engine)
    point = outbox.Point("event", "invoice.paid", 1, {"type": "object"}, "An invoice was paid")
    outbox.record_points(engine, [point])
    outbox.record_points(engine, [outbox.Point("event", "invoice.paid", 2, {}, "v2")])
    with engine.connect() as conn:
        points = outbox.declared_points(conn)
    assert list(points) == ["invoice.paid"]
    assert (points["invoice.paid"].version, points["invoice.paid"].description) == (2, "v2")


def test_old_deliveries_are_swept_but_dead_ones_stay(two_plugins: Installer) -> None:
    from plugdock.core.db import event_outbox

    engine = two_plugins.engine
    alpha = {"alpha"}
    two_plugins.uninstall("beta")
    emit(two_plugins)
    emit(two_plugins)
    outbox.fan_out(engine)
    done, dead = outbox.claim(engine, "w", limit=10, lease=LEASE, plugins=alpha)
    outbox.finish(engine, done, "w")
    with engine.begin() as conn:
        conn.execute(
            update(event_deliveries)
            .where(event_deliveries.c.id == dead.id)
            .values(status="dead", finished_at=utcnow())
        )
        old = utcnow() - outbox.RETENTION - timedelta(days=1)
        conn.execute(update(event_deliveries).values(finished_at=old))
        conn.execute(update(event_outbox).values(emitted_at=old))
    outbox.sweep(engine)
    with engine.connect() as conn:
        assert [(d["id"], d["status"]) for d in outbox.list_deliveries(conn)] == [(dead.id, "dead")]
        events_left = conn.execute(select(event_outbox.c.id)).scalars().all()
    assert len(events_left) == 1  # the dead delivery's event; the delivered one is gone
