"""Fixtures shared by the process-isolation tests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture
def panels() -> Iterator[list[Any]]:
    """Panels (tests/panel.py) a test started; stopped after it, their log printed (shown
    when it fails)."""
    started: list[Any] = []
    yield started
    for panel in started:
        panel.stop()
        print(f"--- panel log {panel.log}:\n{panel.output()[-6000:]}")
