"""Route patterns have one matcher (plugdock.plugin_code.routes), for install checks and compat."""

from __future__ import annotations

import pytest

from plugdock.plugin_code.routes import pattern_matches, patterns_overlap


@pytest.mark.parametrize(
    ("pattern", "path", "expected"),
    [
        ("/api/v1/chat/*", "/api/v1/chat/", True),
        ("/api/v1/chat/*", "/api/v1/chat/messages/{id}", True),
        ("/api/v1/chat/*", "/api/v1/chat", False),  # the prefix itself is not below it
        ("/api/v1/chat/*", "/api/v1/chatter/x", False),  # a longer name is another plugin's
        ("/api/v1/notes/{note_id}", "/api/v1/notes/{id}", True),  # parameter names do not count
        ("/api/v1/{org}/*", "/api/v1/{o}/items", True),
        ("/api/v1/notes", "/api/v1/notes/", False),
    ],
)
def test_pattern_matches(pattern: str, path: str, expected: bool) -> None:
    assert pattern_matches(pattern, path) is expected


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("/api/v1/chat/*", "/api/v1/chat/admin/*", True),  # one below the other
        ("/api/v1/chat/*", "/api/v1/chatbot/*", False),
        ("/api/v1/auth/*", "/api/v1/auth/login", True),
        ("/api/v1/users", "/api/v1/users/*", False),  # /users is not below /users/
        ("/api/v1/x/{a}", "/api/v1/x/{b}", True),
        ("/api/v1/x/{a}", "/api/v1/y/{a}", False),
    ],
)
def test_patterns_overlap_is_symmetric(a: str, b: str, expected: bool) -> None:
    assert patterns_overlap(a, b) is expected
    assert patterns_overlap(b, a) is expected


def test_a_routers_own_routes_are_what_the_app_serves_once_included() -> None:
    """router_routes reads the router itself (no scratch app); it must list exactly what an
    app serves after include_router, for nested routers, prefixes, websockets and mounts."""
    from fastapi import APIRouter, FastAPI
    from starlette.routing import Mount

    from plugdock.plugin_code.routes import router_routes, served_routes

    inner = APIRouter()

    @inner.get("/items/{item_id}")
    def item(item_id: int) -> dict:
        return {}

    @inner.websocket("/live")
    async def live(websocket: object) -> None:
        return None

    router = APIRouter(prefix="/api/v1/p")

    @router.post("/ping")
    def ping() -> dict:
        return {}

    router.include_router(inner, prefix="/inner")
    outer = APIRouter()
    outer.include_router(router)
    outer.include_router(inner, prefix="/api/v1/elsewhere")  # as a sneaky plugin would
    outer.routes.append(Mount("/api/v1/p/static", app=FastAPI()))

    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    app.include_router(outer)
    served = served_routes(app.router.routes)
    assert sorted(router_routes(outer), key=repr) == sorted(served, key=repr)
    assert {r.path for r in served} >= {
        "/api/v1/p/ping",
        "/api/v1/p/inner/items/{item_id}",
        "/api/v1/p/inner/live",
        "/api/v1/elsewhere/items/{item_id}",
        "/api/v1/p/static",
    }
