"""Extraction checks every entry's folders, also those an earlier entry made or checked."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from plugdock.errors import PackageError
from plugdock.package.archive import _Destination


def test_a_folder_swapped_for_a_link_after_first_use_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    destination = _Destination(root)
    with destination.open("backend/a.py") as out:
        out.write(b"1")
    os.rename(root / "backend", tmp_path / "moved")
    (root / "backend").symlink_to(outside, target_is_directory=True)
    with pytest.raises(PackageError, match="is not a folder"):
        destination.open("backend/b.py")
    assert list(outside.iterdir()) == []


def test_nested_folders_are_made_once_and_reused(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    destination = _Destination(root)
    for name in ["frontend/pages/a.js", "frontend/pages/b.js", "frontend/c.js", "metadata.json"]:
        with destination.open(name) as out:
            out.write(name.encode())
    assert (root / "frontend" / "pages" / "b.js").read_bytes() == b"frontend/pages/b.js"
    assert (root / "frontend" / "pages").stat().st_mode & 0o777 == 0o755
    with pytest.raises(PackageError, match="outside the destination"):
        destination.open("frontend/pages/../../../x.js")
