"""Replicas know each other: every serving process registers in ``plugdock_replicas``.

Each panel process (every worker of every machine sharing the database) keeps one row:
where it runs, the plugin-set generation it serves, whether it serves all of it
(``ready``) and, per plugin, why not. The runtime's watch loop refreshes the row (its
heartbeat) every ``PLUGDOCK_REPLICA_HEARTBEAT`` seconds and at once when what it serves
changes; a row not refreshed for ``PLUGDOCK_REPLICA_STALE_AFTER`` seconds counts as gone
(a machine that died), and is deleted after a day. Times are the processes' UTC clocks,
so replicas' clocks must agree to well within the stale window (NTP).

A change answered by one replica waits (bounded by ``PLUGDOCK_CONVERGE_TIMEOUT``) until
every live replica serves the new generation, so a client behind a load balancer reads
its own write::

    replica = Replica(engine, address="10.0.0.5:8000")
    replica.beat(generation=7, ready=True, failures={})
    count = await wait_converged(engine, 7, timeout=5.0, stale_after=10.0)
    count.converged, count.total        # e.g. 3, 3
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, delete, insert, select, update
from starlette.concurrency import run_in_threadpool

from plugdock.core.db import connect_read, plugdock_replicas, utcnow

#: Set by ``plugdock serve`` to the host:port it listens on, shown in the replica list.
SERVE_ADDRESS_ENV = "PLUGDOCK_SERVE_ADDRESS"
#: Rows of processes gone this long are deleted by whoever registers next.
FORGET_AFTER = timedelta(days=1)

log = logging.getLogger("plugdock.runtime")

#: What a process serves: the generation, whether all of it, and per plugin why not.
ServedState = tuple[int, bool, dict[str, str]]


def instance_key(host: str, home: Path) -> str:
    """Names one instance folder on one machine; the workers of an instance share it."""
    return f"{host[:32]}:{hashlib.sha256(str(home).encode()).hexdigest()[:8]}"


@dataclass(frozen=True)
class ReplicaInfo:
    id: str
    host: str
    address: str | None
    pid: int
    started_at: datetime
    last_seen: datetime
    generation: int
    ready: bool
    failures: dict[str, str]
    live: bool

    def converged(self, generation: int) -> bool:
        """Serves ``generation`` (or a later one) completely."""
        return self.live and self.ready and self.generation >= generation

    def sibling_of(self, instance: str | None) -> bool:
        """A worker of the instance ``instance`` (on the same machine)."""
        return instance is not None and self.id.startswith(f"{instance}/")


@dataclass(frozen=True)
class ReplicaCount:
    converged: int
    total: int


class Replica:
    """This process's row in ``plugdock_replicas``."""

    def __init__(self, engine: Engine, home: Path, *, address: str | None = None) -> None:
        self.engine = engine
        self.host = socket.gethostname()[:255]
        self.pid = os.getpid()
        self.instance = instance_key(self.host, home)
        self.id = f"{self.instance}/{self.pid}-{uuid.uuid4().hex[:8]}"
        self.address = address
        self.started_at = utcnow()
        self._registered = False

    def beat(self, generation: int, ready: bool, failures: dict[str, str]) -> None:
        """Say what this process serves now (registers it the first time)."""
        values: dict[str, Any] = {
            "last_seen": utcnow(),
            "generation": generation,
            "ready": ready,
            "failures": failures,
        }
        with self.engine.begin() as conn:
            if self._registered:
                done = conn.execute(
                    update(plugdock_replicas)
                    .where(plugdock_replicas.c.id == self.id)
                    .values(**values)
                ).rowcount
                if done:
                    return
            conn.execute(
                delete(plugdock_replicas).where(
                    plugdock_replicas.c.last_seen < utcnow() - FORGET_AFTER
                )
            )
            conn.execute(
                insert(plugdock_replicas).values(
                    id=self.id,
                    host=self.host,
                    address=self.address,
                    pid=self.pid,
                    started_at=self.started_at,
                    **values,
                )
            )
        self._registered = True

    def leave(self) -> None:
        """Remove this process's row (a clean shutdown)."""
        with self.engine.begin() as conn:
            conn.execute(delete(plugdock_replicas).where(plugdock_replicas.c.id == self.id))


class Heartbeat:
    """Keeps this process's replica row current: at once when what it serves changed, else
    every ``interval`` seconds. Without a ``replica`` (not serving) it does nothing."""

    def __init__(self, interval: float, served: Callable[[], ServedState]) -> None:
        self.interval = interval
        self.served = served
        self.replica: Replica | None = None  # set when the panel starts serving
        self._beaten: ServedState | None = None
        self._beat_at = 0.0
        self._reporting = asyncio.Lock()

    async def report(self, *, force: bool = False) -> None:
        if self.replica is None:
            return
        # One beat at a time, its state read inside: a heartbeat still writing the old
        # generation from a pool thread could otherwise land after a change's forced beat
        # and show this replica as behind (tests/host/test_lifecycle_api.py saw it).
        async with self._reporting:
            state = self.served()
            now = time.monotonic()
            if not force and state == self._beaten and now - self._beat_at < self.interval:
                return
            try:
                await run_in_threadpool(self.replica.beat, *state)
            except Exception:  # the database may be restarting; the next tick tries again
                log.exception("replica heartbeat failed")
                return
            self._beaten, self._beat_at = state, now


def list_replicas(engine: Engine, stale_after: float) -> list[ReplicaInfo]:
    """Every registered process, oldest first; ``live`` when its heartbeat is recent."""
    cutoff = utcnow() - timedelta(seconds=stale_after)
    with connect_read(engine) as conn:
        rows = conn.execute(
            select(plugdock_replicas).order_by(
                plugdock_replicas.c.started_at, plugdock_replicas.c.id
            )
        ).all()
    return [
        ReplicaInfo(
            id=r.id,
            host=r.host,
            address=r.address,
            pid=r.pid,
            started_at=r.started_at,
            last_seen=r.last_seen,
            generation=int(r.generation),
            ready=bool(r.ready),
            failures=dict(r.failures or {}),
            live=r.last_seen >= cutoff,
        )
        for r in rows
    ]


def count(
    replicas: list[ReplicaInfo], generation: int, siblings_of: str | None = None
) -> ReplicaCount:
    """Live replicas, and how many serve ``generation``. Workers of ``siblings_of`` count as
    serving it: the installer rewrote their instance's hint file, which each checks before
    routing its next request (see plugdock.runtime.runtime)."""
    live = [r for r in replicas if r.live]
    done = sum(r.converged(generation) or (r.sibling_of(siblings_of) and r.ready) for r in live)
    return ReplicaCount(done, len(live))


async def wait_converged(
    engine: Engine,
    generation: int,
    *,
    timeout: float,
    stale_after: float,
    siblings_of: str | None = None,
) -> ReplicaCount:
    """Wait until every live replica serves ``generation``, or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    delay = 0.01
    while True:
        replicas = await asyncio.to_thread(list_replicas, engine, stale_after)
        found = count(replicas, generation, siblings_of)
        if found.converged >= found.total or time.monotonic() >= deadline:
            return found
        await asyncio.sleep(min(delay, max(0.0, deadline - time.monotonic())))
        delay = min(delay * 1.5, 0.025)
