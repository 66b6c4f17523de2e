"""A hook's time limit in the panel's own process, and a forced uninstall's abort
(plugdock.plugin_code.hook_time): no panel, no database, no timing asserted.

Before, an in-process hook ran in the operation's thread with no bound: a hook that never
returned held the operation (and its locks) for good.
"""

from __future__ import annotations

import threading

import pytest

from plugdock.errors import HookTimeoutError
from plugdock.plugin_code.hook_time import abort_hooks, abortable, run_bounded


def test_a_hook_that_never_returns_fails_past_the_bound_and_is_abandoned() -> None:
    release = threading.Event()
    abandoned: list[bool] = []
    try:
        with pytest.raises(HookTimeoutError, match=r"hook time limit of 0\.2 s") as raised:
            run_bounded("stuck", "on_uninstall", release.wait, 0.2, lambda: abandoned.append(True))
    finally:
        release.set()  # lets the abandoned thread end with this test
    assert abandoned == [True]
    assert "until the panel restarts" in str(raised.value)


def test_a_hook_that_returns_or_raises_in_time_is_not_abandoned() -> None:
    abandoned: list[bool] = []
    run_bounded("fine", "on_install", lambda: None, 60, lambda: abandoned.append(True))

    def refuse() -> None:
        raise RuntimeError("I refuse to leave")

    with pytest.raises(RuntimeError, match="I refuse to leave"):
        run_bounded("refuser", "on_uninstall", refuse, 60, lambda: abandoned.append(True))
    assert abandoned == []


def test_a_forced_uninstall_stops_the_wait_for_that_plugin_only() -> None:
    started, release = threading.Event(), threading.Event()
    outcome: list[BaseException] = []

    def hang() -> None:
        started.set()
        release.wait()

    def wait_for_hook() -> None:
        try:
            run_bounded("stuck", "on_uninstall", hang, 3600)  # only the abort ends it
        except BaseException as exc:
            outcome.append(exc)

    waiting = threading.Thread(target=wait_for_hook)
    waiting.start()
    try:
        assert started.wait(60)
        assert abort_hooks("other") == 0  # another plugin's force touches nothing
        assert abort_hooks("stuck") == 1
        waiting.join(60)
        assert not waiting.is_alive()
    finally:
        release.set()
    assert isinstance(outcome[0], HookTimeoutError), outcome
    assert "a forced uninstall stopped waiting for it" in str(outcome[0])
    assert abort_hooks("stuck") == 0  # the wait is gone


def test_abortable_forgets_its_abort_when_left() -> None:
    calls: list[str] = []
    with abortable("p", lambda: calls.append("a")):
        assert abort_hooks("p") == 1
    assert abort_hooks("p") == 0
    assert calls == ["a"]
