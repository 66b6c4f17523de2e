"""Fixtures shared by the plugin server's tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from plugdock.server import Storage


@pytest.fixture
def storage(tmp_path: Path) -> Storage:
    return Storage(tmp_path / "data").ensure()
