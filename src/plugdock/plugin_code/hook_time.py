"""A lifecycle hook's time limit, and how a forced uninstall stops waiting for a hook.

``on_install``, ``on_upgrade`` and ``on_uninstall`` run with a bound,
``PLUGDOCK_HOOK_TIMEOUT`` (``Settings.hook_timeout``). Past it the operation fails with
:class:`~plugdock.errors.HookTimeoutError` and is rolled back like any failed step.

- In process mode the hook runs in the plugin's process, which is killed
  (:mod:`plugdock.isolation.control`).
- In-process, Python cannot stop a thread. :func:`run_bounded` runs the hook in a thread of
  its own and stops *waiting* for it; the caller closes the operation's database connection
  under it (so the transaction is rolled back and the hook's next query fails), but the
  thread may go on running plugin code in the panel until the panel restarts. The error
  says so.

Whoever waits for a hook registers how to stop waiting (:func:`abortable`); a forced
uninstall calls :func:`abort_hooks` for its plugin first, so it never queues behind a hung
hook (nor the locks that operation holds) in this process.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from plugdock.errors import HookTimeoutError

_lock = threading.Lock()
_aborts: dict[str, list[Callable[[], None]]] = {}  # plugin id → how to stop each wait


@contextmanager
def abortable(plugin_id: str, abort: Callable[[], None]) -> Iterator[None]:
    """While inside, :func:`abort_hooks` for ``plugin_id`` calls ``abort`` (from its thread)."""
    with _lock:
        _aborts.setdefault(plugin_id, []).append(abort)
    try:
        yield
    finally:
        with _lock:
            waits = _aborts.get(plugin_id, [])
            if abort in waits:
                waits.remove(abort)
            if not waits:
                _aborts.pop(plugin_id, None)


def abort_hooks(plugin_id: str) -> int:
    """Stop every wait for a hook of ``plugin_id`` in this process; how many there were."""
    with _lock:
        waits = list(_aborts.get(plugin_id, []))
    for abort in waits:
        abort()
    return len(waits)


def run_bounded(
    plugin_id: str,
    what: str,
    call: Callable[[], object],
    timeout: float,
    abandon: Callable[[], None] = lambda: None,
) -> None:
    """Run ``call`` (a hook, in this process) for at most ``timeout`` seconds.

    Returns when it returns, raises what it raises. Past ``timeout``, or when a forced
    uninstall aborts it, calls ``abandon`` (closes what the hook is using) and raises
    :class:`HookTimeoutError`; the thread is left to itself (it cannot be killed).
    """
    finished = threading.Event()
    aborted = threading.Event()
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            call()
            outcome.append(None)
        except BaseException as exc:  # handed to the waiting thread
            outcome.append(exc)
        finally:
            finished.set()

    def abort() -> None:
        aborted.set()
        finished.set()

    context = contextvars.copy_context()  # the hook sees what the operation's thread sees
    thread = threading.Thread(
        target=context.run, args=(run,), name=f"plugdock-hook-{plugin_id}", daemon=True
    )
    with abortable(plugin_id, abort):
        thread.start()
        finished.wait(timeout)
    if outcome:
        error = outcome[0]
        if error is not None:
            raise error
        return
    abandon()
    why = (
        "a forced uninstall stopped waiting for it"
        if aborted.is_set()
        else f"it ran past the hook time limit of {timeout:g} s (PLUGDOCK_HOOK_TIMEOUT)"
    )
    raise HookTimeoutError(
        f"{plugin_id}: {what} did not finish: {why}; it may go on running in the panel until "
        "the panel restarts"
    )
