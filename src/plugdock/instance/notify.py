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
log = logging.getLogger("plugdock.runtime")


def notify_change(conn: Connection) -> None:
    """Queue the notification in the caller's transaction (PostgreSQL only; a no-op elsewhere)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_notify(:channel, '')"), {"channel": CHANNEL})


class ChangeListener:
    """A daemon thread calling ``wake()`` for every notified change (reconnects on errors)."""

    def __init__(self, engine: Engine, wake: Callable[[], object]) -> None:
        self.url = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        self.wake = wake
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
                    conn.execute(f"LISTEN {CHANNEL}")
                    self.wake()  # (re)connected: changes may have been missed meanwhile
                    while not self._stop.is_set():
                        for _notice in conn.notifies(timeout=1.0, stop_after=1):
                            self.wake()
            except Exception as exc:  # the database restarting: listen again shortly
                log.warning("plugin change listener: %s; retrying", exc)
                self._stop.wait(1.0)
