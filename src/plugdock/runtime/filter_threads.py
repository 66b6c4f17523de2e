"""Daemon threads for in-process sync filters.

A sync filter that never returns keeps its thread forever (Python cannot stop it), so these
are daemon threads: unlike ``ThreadPoolExecutor``'s, they never hold the panel's exit.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

_Work = tuple[Future[Any], Callable[..., Any], tuple[Any, ...]]


class FilterThreads:
    """A fixed set of daemon worker threads taking calls from one queue, started on first use."""

    def __init__(self, size: int, name: str = "plugdock-filter") -> None:
        self.size = size
        self.name = name
        self._queue: queue.SimpleQueue[_Work | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def submit(self, function: Callable[..., Any], *args: Any) -> Future[Any]:
        """Run ``function(*args)`` in one of the threads; its result as a future."""
        if len(self._threads) < self.size:
            self._start()
        future: Future[Any] = Future()
        self._queue.put((future, function, args))
        return future

    def shutdown(self) -> None:
        """Idle threads end; a stuck one stays until the process exits (it is a daemon)."""
        for _ in self._threads:
            self._queue.put(None)
        self._threads.clear()

    def _start(self) -> None:
        with self._lock:
            while len(self._threads) < self.size:
                thread = threading.Thread(
                    target=self._work, name=f"{self.name}-{len(self._threads)}", daemon=True
                )
                thread.start()
                self._threads.append(thread)

    def _work(self) -> None:
        while (work := self._queue.get()) is not None:
            future, function, args = work
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(function(*args))
            except BaseException as exc:  # the filter's failure, for the caller
                future.set_exception(exc)
