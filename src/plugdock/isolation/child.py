"""What a plugin's backend runs in, inside its sandbox: ``python -m plugdock.isolation.child``.

It imports the plugin's backend, reports what its router serves, and then follows the
panel's orders, one JSON line each on stdin, answering one JSON line each on stdout:

- at start, unasked: ``{"event": "loaded", "routes": [[path, [methods]], ...]}``, or
  ``{"event": "error", "error": "..."}`` and exit 1 when the import fails;
- ``{"cmd": "hook", "operation": "install" | "upgrade" | "uninstall", "version": ...,
  "from_version": ...}``: runs ``on_<operation>`` in a transaction of its own, on the
  plugin's own database role, and answers ``{"event": "done"}`` or an error;
- ``{"cmd": "serve"}``: runs ``on_startup`` and serves the router over HTTP on
  ``/run/plugdock/plugin.sock``, answering ``{"event": "serving"}`` once it listens. This is
  the last order; SIGTERM stops it.

The panel authenticates each request and passes the user in the ``x-plugdock-user`` header
(or the authentication error in ``x-plugdock-auth-error``), so ``sdk.CurrentUser`` works
here as in the panel while the token-signing key stays out of this process.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import traceback
from pathlib import Path
from typing import Any

from plugdock.isolation import protocol
from plugdock.isolation.sandbox import BACKEND, RUN

log = logging.getLogger("plugdock.plugin_process")


# The orders' answers go out on a private copy of stdout; fd 1 itself becomes stderr, so
# whatever the plugin prints lands in its log, not in the conversation with the panel.
_answers = os.fdopen(os.dup(1), "w")
os.dup2(2, 1)


def _reply(**message: Any) -> None:
    _answers.write(json.dumps(message) + "\n")
    _answers.flush()


def _engine(url: str | None) -> Any:
    if url is None:
        return None
    from sqlalchemy import create_engine

    from plugdock.core.db import make_engine
    from plugdock.isolation import sqlite_client

    if url.startswith(sqlite_client.URL_PREFIX):  # SQLite: through the panel, own tables only
        return sqlite_client.engine(url)
    if url.startswith("sqlite"):
        return make_engine(url, upgrade=False)
    return create_engine(url, pool_pre_ping=True, pool_size=4, max_overflow=4)


def _run_hook(backend: Any, engine: Any, order: dict[str, Any], plugin_id: str) -> None:
    from plugdock import sdk

    operation = order["operation"]
    hook = backend.hook(f"on_{operation}")
    if hook is None:
        return
    if engine is None:
        raise RuntimeError("this plugin process has no database")
    with engine.begin() as connection:
        context = sdk.HookContext(
            plugin_id=plugin_id,
            version=order["version"],
            operation=operation,
            connection=connection,
            settings=sdk.plugin_settings(plugin_id),
            logger=sdk.get_logger(plugin_id),
            from_version=order.get("from_version"),
        )
        if operation == "upgrade":
            hook(context, order.get("from_version"))
        else:
            hook(context)


def _users_from_panel(request: Any) -> list[Any]:
    """``sdk.Users`` here: the panel answers, if the admin granted ``core:users:read``."""
    from fastapi import HTTPException

    from plugdock import sdk
    from plugdock.isolation import core_calls

    answer = core_calls.ask(f"{RUN}/{core_calls.SOCKET_NAME}", "users")
    if "error" in answer:
        raise HTTPException(answer.get("status", 502), answer["error"])
    return [sdk.User(**user) for user in answer["users"]]


def _settings_from_panel(request: Any = None) -> dict[str, Any]:
    """``sdk.PluginSettings`` here: the panel answers with this plugin's own values."""
    from fastapi import HTTPException

    from plugdock.isolation import core_calls

    answer = core_calls.ask(f"{RUN}/{core_calls.SOCKET_NAME}", "settings")
    if "error" in answer:
        raise HTTPException(answer.get("status", 502), answer["error"])
    settings: dict[str, Any] = answer["settings"]
    return settings


def _follow_settings(hook: Any, interval: float = 0.5) -> None:
    """Run the plugin's ``on_settings_changed`` in this process when its values change:
    a thread asks the panel twice a second (only for a plugin that has the hook)."""
    import threading
    import time

    def follow() -> None:
        last: Any = None
        while True:
            try:
                now = _settings_from_panel()
            except Exception:  # the panel restarting, or a secret that does not open
                now = last
            if last is not None and now != last:
                try:
                    hook(now)
                except Exception:
                    traceback.print_exc()
            last = now
            time.sleep(interval)

    threading.Thread(target=follow, name="plugdock-settings", daemon=True).start()


def _client_from_panel(app: Any) -> Any:
    """``request.client`` as the panel saw it, as in-process (per-visitor rate limits).

    Over the Unix socket uvicorn knows no client address. The panel appends the caller's
    as the *last* ``X-Forwarded-For``; any the caller sent come before it and are not
    trusted (only the panel can reach this socket).
    """

    async def with_client(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            forwarded = [v for k, v in scope["headers"] if k == b"x-forwarded-for"]
            if forwarded:
                host = forwarded[-1].decode("latin-1").rsplit(",", 1)[-1].strip()
                scope = {**scope, "client": (host, 0)}
        await app(scope, receive, send)

    return with_client


def _serve(backend: Any, engine: Any, order: dict[str, Any], described: dict[str, Any]) -> None:
    import uvicorn
    from fastapi import FastAPI
    from fastapi.exceptions import RequestValidationError
    from starlette.exceptions import HTTPException as StarletteHTTPException

    from plugdock import sdk
    from plugdock.core.allow import answer_http_error
    from plugdock.core.headers import answer_internal_error
    from plugdock.core.validation_errors import answer_validation_error

    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    app.state.plugdock = sdk.HostState(
        engine=engine,
        authenticate=protocol.user_from_headers,
        users=_users_from_panel,
        settings_of=_settings_from_panel,
    )
    # As in the panel: a 422 never repeats the submitted values.
    app.add_exception_handler(RequestValidationError, answer_validation_error)
    app.add_exception_handler(Exception, answer_internal_error)  # a crash: a JSON 500
    app.add_exception_handler(StarletteHTTPException, answer_http_error)  # 405: full Allow
    if backend.router is not None:
        app.include_router(backend.router)

    @app.get(protocol.PING_PATH, include_in_schema=False)
    async def ping() -> dict[str, bool]:  # the panel's liveness check: answers only if not hung
        return {"ok": True}

    @app.get(protocol.DESCRIBE_PATH, include_in_schema=False)
    async def describe() -> dict[str, Any]:  # for the panel's workers that did not start it
        return described

    @app.post(protocol.EVENT_PATH, include_in_schema=False)
    async def event(order: dict[str, Any]) -> Any:  # the panel delivers an event, or runs a job
        from fastapi.responses import JSONResponse

        from plugdock.plugin_code import handlers

        sdk.handler_engine.set(engine)  # this request's own context: sdk.session()
        try:
            function = handlers.resolve(backend.module_name, order["handler"])
            job = order.get("job")
            argument = sdk.JobRun.from_json(job) if job else sdk.Event(**order["event"])
            await handlers.call(function, argument)
        except Exception as exc:  # the handler's failure, for the delivery's record
            error = f"{type(exc).__name__}: {exc}"
            return JSONResponse({"error": error[:2000]}, status_code=500)
        return {"ok": True}

    @app.post(protocol.FILTER_PATH, include_in_schema=False)
    async def filter_value(order: dict[str, Any]) -> Any:  # the panel applies a filter
        from fastapi.encoders import jsonable_encoder
        from fastapi.responses import JSONResponse

        from plugdock.plugin_code import handlers

        sdk.handler_engine.set(engine)  # sdk.session() in a filter too
        try:
            function = handlers.resolve(backend.module_name, order["handler"])
            value = jsonable_encoder(await handlers.call(function, order["value"]))
        except sdk.Veto as veto:  # the plugin refuses: the panel raises FilterVeto
            return {"veto": veto.message}
        except Exception as exc:  # the filter's failure: the panel skips it and reports
            error = f"{type(exc).__name__}: {exc}"
            return JSONResponse({"error": error[:2000]}, status_code=500)
        return {"value": value}

    hook = backend.hook("on_startup")
    if hook is not None:
        hook(app)
    changed = backend.hook("on_settings_changed")
    if changed is not None:
        _follow_settings(changed)

    class Server(uvicorn.Server):
        async def startup(self, sockets: Any = None) -> None:
            await super().startup(sockets)
            _reply(event="serving")

    config = uvicorn.Config(
        _client_from_panel(app),
        fd=order["fd"],  # bound by the panel at /run/plugdock/plugin.sock
        log_level="warning",
        lifespan="off",
        timeout_keep_alive=300,  # the panel keeps its connections; it closes them itself
        access_log=False,
        proxy_headers=False,  # _client_from_panel reads the one X-Forwarded-For to trust
    )
    Server(config).run()


def _openapi(router: Any) -> dict[str, Any]:
    """The router's paths and schemas, for the panel's own OpenAPI document."""
    if router is None:
        return {}
    from fastapi import FastAPI

    scratch = FastAPI()
    scratch.include_router(router)
    document = scratch.openapi()
    return {
        "paths": document.get("paths", {}),
        "schemas": document.get("components", {}).get("schemas", {}),
    }


def main() -> None:
    order = json.loads(sys.argv[1])
    plugin_id: str = order["plugin_id"]
    logging.basicConfig(level=logging.INFO, format=f"[{plugin_id}] %(levelname)s %(message)s")
    from plugdock.plugin_code.loader import load_backend
    from plugdock.plugin_code.routes import router_routes

    try:
        backend = load_backend(plugin_id, Path(BACKEND), order["token"])
        routes = router_routes(backend.router) if backend.router is not None else []
    except BaseException as exc:
        _reply(event="error", error=str(exc) or repr(exc))
        sys.exit(1)
    described = {
        "routes": [[r.path, sorted(r.methods)] for r in routes],
        "openapi": _openapi(backend.router),
    }
    _reply(event="loaded", **described)
    engine = _engine(order.get("db_url"))
    for line in sys.stdin:
        command = json.loads(line)
        if command["cmd"] == "serve":
            _serve(backend, engine, order, described)
            return
        if command["cmd"] == "hook":
            try:
                _run_hook(backend, engine, command, plugin_id)
            except BaseException as exc:
                traceback.print_exc()
                _reply(event="error", error=f"on_{command['operation']}: {exc!r}")
                continue
            _reply(event="done")


if __name__ == "__main__":
    main()
