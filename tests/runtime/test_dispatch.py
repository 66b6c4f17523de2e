"""Plugin routes found by their declared prefix (runtime/dispatch.py), as the runtime mounts."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI
from fastapi.testclient import TestClient

from plugdock.runtime.dispatch import PluginDispatch


def plugin_router(slug: str) -> APIRouter:
    router = APIRouter(prefix=f"/api/v1/{slug}")

    @router.get("/ping")
    def ping() -> dict:
        return {"plugin": slug}

    @router.get("/items/{item_id}")
    def item(item_id: int) -> dict:
        return {"plugin": slug, "item": item_id}

    return router


def mount(app: FastAPI, dispatch: PluginDispatch, router: APIRouter, declared: list[str]):
    """What PluginRuntime.mount does: dispatch after the core's routes, then the router."""
    if dispatch not in app.router.routes:
        app.router.routes.append(dispatch)
    app.include_router(router)
    entry = app.router.routes[-1]
    dispatch.add(entry, declared)
    return entry


def panel_with_plugins(count: int) -> tuple[FastAPI, PluginDispatch, list]:
    app = FastAPI()

    @app.get("/api/v1/users/{name}")
    def user(name: str) -> dict:
        return {"core": name}

    dispatch = PluginDispatch()
    entries = [
        mount(app, dispatch, plugin_router(f"p{i}"), [f"/api/v1/p{i}/*"]) for i in range(count)
    ]
    return app, dispatch, entries


def test_only_the_declaring_plugin_is_asked() -> None:
    app, dispatch, entries = panel_with_plugins(50)
    assert dispatch._candidates("/api/v1/p37/items/5") == [entries[37]]
    assert dispatch._candidates("/api/v1/users/x") == []
    with TestClient(app) as client:
        assert client.get("/api/v1/p37/items/5").json() == {"plugin": "p37", "item": 5}
        assert client.get("/api/v1/p0/ping").json() == {"plugin": "p0"}
        assert client.get("/api/v1/p37/items/x").status_code == 422  # the plugin's validation
        assert client.post("/api/v1/p37/ping").status_code == 405  # path known, method not
        assert client.get("/api/v1/p37/nothing").status_code == 404
        assert client.get("/api/v1/p37").status_code == 404  # /* covers what is below only


def test_a_plugins_own_entry_never_matches_by_itself() -> None:
    """The route list's walk skips plugin entries, so it costs nothing per mounted plugin."""
    app, _dispatch, entries = panel_with_plugins(3)
    scope = {"type": "http", "method": "GET", "path": "/api/v1/p1/ping", "root_path": ""}
    assert entries[1].matches(scope)[0].name == "NONE"
    with TestClient(app) as client:  # yet OpenAPI lists every plugin route
        paths = client.get("/openapi.json").json()["paths"]
    assert {"/api/v1/p0/ping", "/api/v1/p2/items/{item_id}"} <= set(paths)


def test_unmounted_plugin_stops_answering_and_others_go_on() -> None:
    app, dispatch, entries = panel_with_plugins(3)
    dispatch.remove(entries[1])
    app.router.routes[:] = [r for r in app.router.routes if r is not entries[1]]
    with TestClient(app) as client:
        assert client.get("/api/v1/p1/ping").status_code == 404
        assert client.get("/api/v1/p2/ping").json() == {"plugin": "p2"}
    assert dispatch._candidates("/api/v1/p1/ping") == []


def test_core_route_still_answers_first_where_a_plugin_route_could_also_match() -> None:
    app, dispatch, _entries = panel_with_plugins(1)
    router = APIRouter()

    @router.get("/api/v1/users/me")
    def me() -> dict:
        return {"plugin": "me"}

    mount(app, dispatch, router, ["/api/v1/users/me"])
    with TestClient(app) as client:
        assert client.get("/api/v1/users/me").json() == {"core": "me"}


def test_exact_and_parameterised_declarations_are_routed() -> None:
    app = FastAPI()
    dispatch = PluginDispatch()
    exact = APIRouter()
    templated = APIRouter()

    @exact.get("/api/v1/exact")
    def exact_route() -> dict:
        return {"route": "exact"}

    @templated.get("/api/v1/{tenant}/report")
    def report(tenant: str) -> dict:
        return {"tenant": tenant}

    mount(app, dispatch, exact, ["/api/v1/exact"])
    mount(app, dispatch, templated, ["/api/v1/{tenant}/report"])
    with TestClient(app) as client:
        assert client.get("/api/v1/exact").json() == {"route": "exact"}
        assert client.get("/api/v1/acme/report").json() == {"tenant": "acme"}
        # redirect_slashes still finds the plugin route through the dispatch
        response = client.get("/api/v1/exact/", follow_redirects=False)
        assert response.status_code == 307
        assert response.headers["location"].endswith("/api/v1/exact")
