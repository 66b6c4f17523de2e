"""Delivering host events to the plugins this worker serves (the outbox's consumer).

Every worker of every replica runs :meth:`EventDeliverer.run`: it fans new events out to
the plugins subscribed now, claims due deliveries (a lease each, so two workers never run
the same one and a worker that dies leaves it to another), and runs each handler through
the worker's :class:`~plugdock.runtime.runner.PluginRunner` (in the panel, or in the
plugin's sandbox), bounded in time. A worker claims only for plugins it serves.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
import uuid
from datetime import timedelta

from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool

from plugdock import sdk
from plugdock.errors import PluginProcessError
from plugdock.instance import outbox
from plugdock.runtime.mounts import Mounts

log = logging.getLogger("plugdock.runtime")

CLAIM_BATCH = 50
SWEEP_EVERY = 3600.0  # seconds between a worker's sweeps of old deliveries


class EventDeliverer:
    """One worker's side of event delivery."""

    def __init__(
        self,
        engine: Engine,
        mounts: Mounts,
        *,
        handler_timeout: float,
        wakeup: asyncio.Event | None = None,
    ) -> None:
        """``wakeup``: set when an event was emitted (PostgreSQL's notification)."""
        self.engine = engine
        self.mounts = mounts
        self.handler_timeout = handler_timeout
        # The lease outlasts the bound, so a live worker's delivery is never taken from it.
        self.lease = timedelta(seconds=handler_timeout + 30)
        self.worker = f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
        self.wakeup = wakeup or asyncio.Event()
        self._next_sweep = 0.0

    async def run(self, interval: float) -> None:
        """Deliver until cancelled: at once when woken, else every ``interval`` seconds."""
        while True:
            try:
                while await self.once():
                    pass  # a full batch: more may be due
            except Exception:
                log.exception("delivering host events failed; trying again")
            self.wakeup.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wakeup.wait(), interval)

    async def once(self) -> bool:
        """Fan out, claim and deliver one batch; True when the batch was full."""
        await run_in_threadpool(outbox.fan_out, self.engine)
        if time.monotonic() >= self._next_sweep:
            self._next_sweep = time.monotonic() + SWEEP_EVERY
            await run_in_threadpool(outbox.sweep, self.engine)
        served = set(self.mounts.mounted)
        if not served:
            return False
        batch = await run_in_threadpool(
            outbox.claim,
            self.engine,
            self.worker,
            limit=CLAIM_BATCH,
            lease=self.lease,
            plugins=served,
        )
        # One per (plugin, key) at most (a later one waits for the earlier): all at once.
        await asyncio.gather(*(self._deliver(delivery) for delivery in batch))
        return len(batch) == CLAIM_BATCH

    async def _deliver(self, delivery: outbox.Delivery) -> None:
        mounted = self.mounts.mounted.get(delivery.plugin_id)
        event = sdk.Event(
            delivery_id=delivery.id,
            name=delivery.name,
            version=delivery.version,
            key=delivery.key,
            payload=delivery.payload,
        )
        try:
            if mounted is None:
                raise RuntimeError(f"{delivery.plugin_id} stopped being served here")
            await self.mounts.runner.deliver(mounted, delivery.handler, event, self.handler_timeout)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            if isinstance(exc, PluginProcessError):  # the plugin's own error, already named
                error = str(exc)
            if isinstance(exc, TimeoutError):
                error = f"{delivery.handler} ran over its {self.handler_timeout:g} s"
            now = await run_in_threadpool(outbox.fail, self.engine, delivery, self.worker, error)
            log.warning(
                "%s: %s for %s failed (%s): %s",
                delivery.plugin_id,
                delivery.handler,
                delivery.name,
                "dead" if now == "dead" else "will retry",
                error,
            )
            return
        await run_in_threadpool(outbox.finish, self.engine, delivery, self.worker)
