"""PostgreSQL LISTEN/NOTIFY as a hint that the plugin set changed, for workers on other machines.

The installer sends ``NOTIFY plugdock_plugins`` inside its transaction, so it is
delivered exactly when the change commits. A listener thread per worker wakes the
runtime, which then re-reads the generation from the database (still the only truth;
a lost notification just means the timer notices instead).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from sqlalchemy import Connection, Engine, text

CHANNEL = "plugdock_plugins"
EVENTS_CHANNEL = "plugdock_events"  # an event was emitted (plugdock.instance.outbox)
log = logging.getLogger("plugdock.runtime")


def notify_change(conn: Connection, channel: str = CHANNEL) -> None:
    """Queue the notification in the caller's transaction (PostgreSQL only; a no-op elsewhere)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_notify(:channel, '')"), {"channel": channel})


class ChangeListener:
    """A daemon thread calling the wake function of each notified channel (reconnects on
    errors, and then wakes them all: notifications may have been missed meanwhile)."""

    def __init__(self, engine: Engine, wakes: dict[str, Callable[[], object]]) -> None:
        self.url = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        self.wakes = wakes
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="plugdock-listen", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        import psycopg

        while not self._stop.is_set():
            try:
                with psycopg.connect(self.url, autocommit=True) as conn:
                    for channel in self.wakes:  # fixed names, never user data
                        conn.execute(f"LISTEN {channel}")
                    for wake in self.wakes.values():  # (re)connected: may have missed some
                        wake()
                    while not self._stop.is_set():
                        for notice in conn.notifies(timeout=1.0, stop_after=1):
                            self.wakes[notice.channel]()
            except Exception as exc:  # the database restarting: listen again shortly
                log.warning("plugin change listener: %s; retrying", exc)
                self._stop.wait(1.0)
