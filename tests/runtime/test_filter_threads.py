"""The threads in-process sync filters run on: results, errors, and a stuck one never holds
the panel's exit (a ``ThreadPoolExecutor`` joins its threads at exit, so it would)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from plugdock.runtime.filter_threads import FilterThreads


def test_calls_run_and_their_errors_come_back() -> None:
    threads = FilterThreads(2)
    assert threads.submit(lambda a, b: a + b, 2, 3).result(timeout=10) == 5
    failed = threads.submit(lambda: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        failed.result(timeout=10)
    threads.shutdown()


def test_a_stuck_call_does_not_hold_the_process_exit() -> None:
    code = (
        "import threading\n"
        "from plugdock.runtime.filter_threads import FilterThreads\n"
        "threads = FilterThreads(1)\n"
        "threads.submit(threading.Event().wait)\n"  # never returns
        "threads.shutdown()\n"
        "print('leaving')\n"
    )
    try:
        done = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
        )
    except subprocess.TimeoutExpired:
        raise AssertionError("a stuck filter thread held the process") from None
    assert done.returncode == 0 and done.stdout.strip() == "leaving", done.stderr
