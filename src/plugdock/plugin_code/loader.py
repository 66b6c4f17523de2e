"""Import a plugin's backend package under its own module name, and forget it again.

Each load gets a fresh name, ``plugdock_addons.<id>_<token>``: a module still
referenced anywhere (a running request, a closure) outlives its ``sys.modules`` entry,
so a reinstalled or upgraded plugin must never be served by the previous copy's modules. Nothing
is added to ``sys.path``; relative imports inside the plugin resolve through the
package's own ``__path__``.

Plugin code is imported from its ``.py`` source only, compiled afresh on every load: no
``.pyc`` is read or written and no native extension is loaded (:class:`_SourceOnlyFinder`).
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import sys
import types
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import APIRouter
from sqlalchemy import Table

from plugdock.errors import PackageError

NAMESPACE = "plugdock_addons"
HOOKS = ("on_install", "on_upgrade", "on_uninstall", "on_startup", "on_shutdown")


@dataclass
class LoadedBackend:
    """One imported plugin backend."""

    plugin_id: str
    module_name: str
    module: types.ModuleType
    router: APIRouter | None
    tables: list[Table] = field(default_factory=list)  # the plugin's own mapped tables

    def hook(self, name: str) -> Any:
        """The plugin's lifecycle hook ``name``, or None if it defines none."""
        hook = getattr(self.module, name, None)
        return hook if callable(hook) else None


def module_token(operation_id: str) -> str:
    """The suffix an installation's backend is imported under (``<id>_<token>``)."""
    return operation_id[:12]


# Why plugin code never comes from bytecode: Python's default machinery runs, in place of the
# reviewed .py, an unchecked hash-based .pyc in __pycache__/ (PEP 552, never compared with the
# source), a sourceless x.pyc, or an extension x.so (tried before x.py). The package reader
# refuses such files, but some could reach an installed folder another way (an older install,
# a restored backup). Never looking is simpler and surer than checking: a finder that knows
# only .py files, a loader that compiles them itself. A compile per load costs milliseconds,
# and nothing is written into the plugin's folder.


class _SourceOnlyLoader(importlib.machinery.SourceFileLoader):
    """Compiles the ``.py`` file on every load; never reads nor writes a ``.pyc``."""

    def get_code(self, fullname: str) -> types.CodeType:
        path = self.get_filename(fullname)
        return compile(self.get_data(path), path, "exec", dont_inherit=True)


class _SourceOnlyFinder(importlib.abc.MetaPathFinder):
    """Finds modules under ``plugdock_addons.`` as ``.py`` files (or folders) and nothing else.

    It comes first in ``sys.meta_path``. A name it cannot find as source is an error right
    here: returning None would hand it to the default path finder, which also loads
    bytecode and extension modules.
    """

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: types.ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if not fullname.startswith(NAMESPACE + "."):
            return None
        portions: list[str] = []  # folders without __init__.py: a namespace package
        for entry in path or ():
            finder = importlib.machinery.FileFinder(
                entry, (_SourceOnlyLoader, importlib.machinery.SOURCE_SUFFIXES)
            )
            spec = finder.find_spec(fullname, target)
            if spec is not None and spec.loader is not None:
                return spec
            if spec is not None:
                portions += spec.submodule_search_locations or []
        if portions:
            spec = importlib.machinery.ModuleSpec(fullname, None, is_package=True)
            spec.submodule_search_locations = portions
            return spec
        raise ModuleNotFoundError(f"No module named {fullname!r}", name=fullname)


_FINDER = _SourceOnlyFinder()


def _namespace() -> types.ModuleType:
    if _FINDER not in sys.meta_path:
        sys.meta_path.insert(0, _FINDER)
    module = sys.modules.get(NAMESPACE)
    if module is None:
        module = types.ModuleType(NAMESPACE, "Plugin backends loaded by plugdock.")
        module.__path__ = []  # a package with no folder: children are registered by name
        sys.modules[NAMESPACE] = module
    return module


def load_backend(plugin_id: str, backend_dir: Path, token: str) -> LoadedBackend:
    """Import ``backend_dir`` as ``plugdock_addons.<plugin_id>_<token>``.

    Raises PackageError (with the plugin's own exception text) if the import fails;
    nothing stays in ``sys.modules`` then.
    """
    init = backend_dir / "__init__.py"
    if not init.is_file():
        raise PackageError(f"{plugin_id}: backend/__init__.py is missing")
    _namespace()
    name = f"{NAMESPACE}.{plugin_id}_{token}"
    spec = importlib.util.spec_from_file_location(
        name,
        init,
        loader=_SourceOnlyLoader(name, str(init)),
        submodule_search_locations=[str(backend_dir)],
    )
    if spec is None or spec.loader is None:  # pragma: no cover - a file location always has one
        raise PackageError(f"{plugin_id}: cannot import {init}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        unload_modules(name)
        raise PackageError(f"{plugin_id}: importing its backend failed: {exc!r}") from exc
    router = getattr(module, "router", None)
    if router is not None and not isinstance(router, APIRouter):
        unload_modules(name)
        raise PackageError(f"{plugin_id}: backend 'router' is not a FastAPI APIRouter")
    return LoadedBackend(plugin_id, name, module, router, _own_tables(name))


def _own_tables(prefix: str) -> list[Table]:
    """Tables mapped by classes defined in the plugin's own modules (not imported ones)."""
    found: dict[int, Table] = {}
    for key, module in list(sys.modules.items()):
        if key != prefix and not key.startswith(prefix + "."):
            continue
        for value in vars(module).values():
            table = getattr(value, "__table__", None)
            own = getattr(value, "__module__", "").startswith(prefix)
            if isinstance(value, type) and own and isinstance(table, Table):
                found[id(table)] = table
    return list(found.values())


def unload_modules(name: str) -> None:
    """Remove a loaded plugin's modules from ``sys.modules``."""
    for key in [k for k in sys.modules if k == name or k.startswith(name + ".")]:
        del sys.modules[key]


def unload(backend: LoadedBackend) -> None:
    """Forget a plugin backend: its modules, its tables in whatever MetaData holds them, and
    FastAPI's memory of its endpoints."""
    for table in backend.tables:
        if table.metadata.tables.get(table.key) is table:
            table.metadata.remove(table)
    unload_modules(backend.module_name)
    _forget_fastapi_callables()


# FastAPI memoizes "is this callable a coroutine / generator" in LRU caches of 4,096 entries
# keyed by the callable. They would keep every unloaded plugin's endpoints, and through them
# its modules and models, alive for thousands of changes (about 25 KiB per install/uninstall).
# Clearing all of them is the only eviction lru_cache offers; core callables are re-checked
# once, in microseconds.
_FASTAPI_CALLABLE_CACHES = (
    "_is_gen_callable_cached",
    "_is_async_gen_callable_cached",
    "_is_coroutine_callable_cached",
)


def _forget_fastapi_callables() -> None:
    from fastapi.dependencies import models

    for name in _FASTAPI_CALLABLE_CACHES:
        cached = getattr(models, name, None)
        if cached is not None:
            cached.cache_clear()
