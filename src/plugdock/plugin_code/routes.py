"""What a plugin's router serves, and whether it may: declared paths only, no collisions."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from fastapi import APIRouter
from fastapi.routing import iter_route_contexts
from starlette.routing import BaseRoute

from plugdock.errors import PackageError

_PARAM = re.compile(r"\{[^}]*\}")


@dataclass(frozen=True)
class ServedRoute:
    path: str
    methods: frozenset[str]

    @property
    def shape(self) -> str:
        """The path with parameter names erased: /a/{x} and /a/{y} are the same route."""
        return _PARAM.sub("{}", self.path)


def served_routes(routes: Iterable[BaseRoute]) -> list[ServedRoute]:
    """Every concrete path (with methods) the routes serve, nested routers flattened."""
    served = []
    for context in iter_route_contexts(list(routes)):
        path = getattr(context, "path", None)
        if path is None:  # e.g. a Host route: it would answer any path, so name it to refuse it
            path = f"<{type(getattr(context, 'route', context)).__name__} without a path>"
        methods = getattr(context, "methods", None) or {"WEBSOCKET"}
        served.append(ServedRoute(path, frozenset(methods)))
    return served


def router_routes(router: APIRouter) -> list[ServedRoute]:
    """What ``router`` serves once included. Read from its own routes: including it into a
    scratch app first rebuilt every route's FastAPI context (2 ms a plugin, at each start)."""
    return served_routes(router.routes)


def pattern_matches(pattern: str, path: str) -> bool:
    """``/api/v1/chat/*`` matches everything below /api/v1/chat/; other patterns match exactly.

    Parameter names do not count: ``/a/{x}`` matches the route ``/a/{y}``.
    """
    pattern, path = _PARAM.sub("{}", pattern), _PARAM.sub("{}", path)
    if pattern.endswith("/*"):
        return path.startswith(pattern[:-1])
    return pattern == path


def patterns_overlap(a: str, b: str) -> bool:
    """Could one request path match both patterns? (Declared routes of two plugins, say.)"""
    if b.endswith("/*") and not a.endswith("/*"):
        a, b = b, a
    if a.endswith("/*") and b.endswith("/*"):  # one lies below the other
        return pattern_matches(a, b[:-1]) or pattern_matches(b, a[:-1])
    return pattern_matches(a, b)


def check_declared(plugin_id: str, routes: list[ServedRoute], declared: list[str]) -> None:
    """Refuse a router that serves a path its metadata's ``backend.routes`` does not declare."""
    undeclared = [r.path for r in routes if not any(pattern_matches(p, r.path) for p in declared)]
    if undeclared:
        allowed = ", ".join(declared) or "nothing (backend.routes is empty)"
        raise PackageError(
            [
                f"{plugin_id}: serves {path}, which is outside its declared routes ({allowed})"
                for path in undeclared
            ]
        )


def check_collisions(
    plugin_id: str, routes: list[ServedRoute], existing: list[ServedRoute]
) -> None:
    """Refuse a route that the app (core or another plugin) already serves with the same method."""
    taken = {}
    for route in existing:
        for method in route.methods:
            taken[(route.shape, method)] = route.path
    clashes = sorted(
        {
            f"{method} {route.path}"
            for route in routes
            for method in route.methods
            if (route.shape, method) in taken
        }
    )
    if clashes:
        raise PackageError(
            [
                f"{plugin_id}: {clash} is already served by the panel or another plugin"
                for clash in clashes
            ]
        )
