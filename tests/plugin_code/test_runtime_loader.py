"""Loading and unloading plugin backends: module names, shared metadata, route checks."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest
from sqlalchemy import Integer
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from plugdock.errors import PackageError
from plugdock.plugin_code.loader import load_backend, unload
from plugdock.plugin_code.routes import check_declared, router_routes


def write_backend(folder: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    return folder


def test_unload_removes_only_the_plugins_own_tables(tmp_path: Path) -> None:
    class SharedBase(DeclarativeBase):
        pass

    class HostThing(SharedBase):
        __tablename__ = "host_things"
        id: Mapped[int] = mapped_column(Integer, primary_key=True)

    shared = types.ModuleType("plugdock_test_shared")
    shared.SharedBase, shared.HostThing = SharedBase, HostThing
    sys.modules["plugdock_test_shared"] = shared
    try:
        backend_dir = write_backend(
            tmp_path / "backend",
            {
                "__init__.py": "from .models import Note\n",
                "models.py": "from sqlalchemy.orm import Mapped, mapped_column\n"
                "from plugdock_test_shared import HostThing, SharedBase\n\n\n"
                "class Note(SharedBase):\n    __tablename__ = 'shared_notes'\n"
                "    id: Mapped[int] = mapped_column(primary_key=True)\n",
            },
        )
        backend = load_backend("shared_user", backend_dir, "t1")
        assert set(SharedBase.metadata.tables) == {"host_things", "shared_notes"}
        unload(backend)
        assert set(SharedBase.metadata.tables) == {"host_things"}
        assert not [m for m in sys.modules if m.startswith("plugdock_addons.shared_user_t1")]
    finally:
        del sys.modules["plugdock_test_shared"]


def test_a_failed_import_leaves_nothing_behind(tmp_path: Path) -> None:
    backend_dir = write_backend(
        tmp_path / "backend",
        {"__init__.py": "from .helper import x\n", "helper.py": "raise ValueError('boom')\n"},
    )
    with pytest.raises(PackageError, match="boom"):
        load_backend("fails", backend_dir, "t2")
    assert not [m for m in sys.modules if m.startswith("plugdock_addons.fails_")]


def test_routes_without_a_path_are_refused(tmp_path: Path) -> None:
    """A Host route would answer any path; it cannot be declared, so it is refused."""
    backend_dir = write_backend(
        tmp_path / "backend",
        {
            "__init__.py": "from fastapi import APIRouter, FastAPI\n"
            "from starlette.routing import Host\n\n"
            "router = APIRouter(prefix='/api/v1/hosty')\n"
            "router.routes.append(Host('{anything}', app=FastAPI()))\n"
        },
    )
    backend = load_backend("hosty", backend_dir, "t3")
    try:
        with pytest.raises(PackageError, match="without a path"):
            check_declared("hosty", router_routes(backend.router), ["/api/v1/hosty/*"])
    finally:
        unload(backend)
