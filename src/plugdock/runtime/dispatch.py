"""Sending a request straight to the plugin that declared its path, however many are mounted.

Starlette finds a route by trying each entry of the app's route list in turn, so with
every mounted plugin a request for a plugin route (and every 404, which the web UI's deep
links are) walks one more router: 2 ms per request at 200 plugins. A plugin may only serve
paths under its metadata's ``backend.routes`` (checked at install and at every mount), so
the declared prefix names the one plugin that can answer.

:class:`PluginDispatch` is a single route-list entry that looks the request path up by its
prefixes and asks only those plugins. The plugins' own entries stay in the route list, as
``include_router`` made them, so OpenAPI, ``url_path_for`` and the route checks see them as
before; they are only told never to match on their own. The dispatch entry goes after the
core's routes, so the core still answers first where a core route and a plugin route with
parameters could both match a path.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Match, get_route_path
from starlette.types import Receive, Scope, Send

SELECTED_ENTRY = "plugdock.plugin_entry"  # the scope key carrying the entry that matched


def _never_matches(scope: Scope) -> tuple[Match, Scope]:
    return Match.NONE, {}


class PluginDispatch(BaseRoute):
    """Route-list entry for every mounted plugin, indexed by the prefixes they declared."""

    def __init__(self) -> None:
        self._prefixed: dict[str, list[BaseRoute]] = {}  # "/api/v1/chat/" or an exact path
        self._walked: list[BaseRoute] = []  # declared with a {parameter}: tried one by one
        self._own_matches: dict[int, Any] = {}  # id(entry) → the entry's real matches()
        # id(entry) → why the plugin cannot serve until an admin sets its settings (503)
        self.unconfigured: dict[int, str] = {}

    def add(self, entry: BaseRoute, declared: list[str]) -> None:
        """Route the declared paths to ``entry`` (the route-list entry of one plugin's router)."""
        self._own_matches[id(entry)] = entry.matches
        entry.matches = _never_matches  # type: ignore[method-assign]  # matched from here only
        for pattern in declared:
            if "{" in pattern:
                if entry not in self._walked:
                    self._walked.append(entry)
                continue
            key = pattern[:-1] if pattern.endswith("/*") else pattern
            entries = self._prefixed.setdefault(key, [])
            if entry not in entries:
                entries.append(entry)

    def remove(self, entry: BaseRoute) -> None:
        self._own_matches.pop(id(entry), None)
        self.unconfigured.pop(id(entry), None)
        self._walked = [e for e in self._walked if e is not entry]
        for key in list(self._prefixed):
            self._prefixed[key] = [e for e in self._prefixed[key] if e is not entry]
            if not self._prefixed[key]:
                del self._prefixed[key]

    def _candidates(self, path: str) -> list[BaseRoute]:
        """Entries whose declared prefix (longest first) or exact path covers ``path``."""
        found = list(self._prefixed.get(path, ()))
        cut = len(path)
        while (cut := path.rfind("/", 0, cut)) >= 0:
            found.extend(self._prefixed.get(path[: cut + 1], ()))
        found.extend(self._walked)
        return found

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] not in ("http", "websocket"):
            return Match.NONE, {}
        partial: tuple[Match, Scope] | None = None
        for entry in self._candidates(get_route_path(scope)):
            own = self._own_matches.get(id(entry))
            if own is None:
                continue
            match, child_scope = own(scope)
            if match == Match.FULL:
                return match, {**child_scope, SELECTED_ENTRY: entry}
            if match == Match.PARTIAL and partial is None:
                partial = (match, {**child_scope, SELECTED_ENTRY: entry})
        return partial or (Match.NONE, {})

    def serves(self, scope: Scope) -> bool:
        """A mounted plugin answers this request's path (for middleware of plugins' paths)."""
        return self.matches(scope)[0] is not Match.NONE

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        entry = scope[SELECTED_ENTRY]
        why = self.unconfigured.get(id(entry))
        if why is not None and scope["type"] == "http":
            answer = JSONResponse({"detail": why}, status_code=503, headers={"Retry-After": "30"})
            await answer(scope, receive, send)
            return
        await entry.handle(scope, receive, send)

    def __repr__(self) -> str:
        return f"PluginDispatch({sorted(self._prefixed)}, walked={len(self._walked)})"
