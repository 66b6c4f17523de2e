"""Calling a function a plugin names in its metadata (``"handlers:on_paid"``).

The same in the panel and in a plugin's own process: the reference is resolved inside the
plugin's loaded backend package only (never an arbitrary import path), and a coroutine
function is awaited.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

from plugdock.errors import PackageError
from plugdock.package.metadata import HANDLER_REF


def resolve(package: str, ref: str) -> Any:
    """The callable ``ref`` (``module:function``) names inside the backend ``package``."""
    if not HANDLER_REF.fullmatch(ref):
        raise PackageError(f"{ref!r} is not 'module:function'")
    module_name, function_name = ref.split(":")
    try:
        module = importlib.import_module(f"{package}.{module_name}")
    except ImportError as exc:
        raise PackageError(f"handler {ref}: importing {module_name} failed: {exc!r}") from exc
    function = getattr(module, function_name, None)
    if not callable(function):
        raise PackageError(f"handler {ref}: {module_name} has no function {function_name}")
    return function


async def call(function: Any, argument: Any) -> Any:
    """Run ``function(argument)``: awaited if it is async, else in a worker thread."""
    if inspect.iscoroutinefunction(function):
        return await function(argument)
    from starlette.concurrency import run_in_threadpool

    return await run_in_threadpool(function, argument)
