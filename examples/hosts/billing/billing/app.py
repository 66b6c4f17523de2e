"""The billing app: its API, its UI, and plugdock embedded in it.

Run it with several workers::

    DATABASE_URL=sqlite:///billing.db uvicorn --factory billing.app:create_app --workers 2

``create_plain_app`` is the same app without plugdock (what bench/embedding.py compares).
"""

from __future__ import annotations

import os
from pathlib import Path

from fastapi import Depends, FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import FileResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy import select
from starlette.exceptions import HTTPException as StarletteHTTPException

from billing import api, auth, events
from billing.db import Database
from billing.models import Account
from plugdock import HostAuth, HostUser, PluginHost

#: The built UI (``npm run build`` in web/); BILLING_WEB_DIST points elsewhere.
WEB_DIST = Path(os.environ.get("BILLING_WEB_DIST", Path(__file__).parent.parent / "web" / "dist"))


def create_app(*, with_plugdock: bool = True, database_url: str | None = None) -> FastAPI:
    """The billing app; ``with_plugdock=False`` builds it without plugdock mounted."""
    database = Database(database_url)
    app = FastAPI(title="Billing")
    app.state.db = database
    app.include_router(auth.router)
    app.include_router(api.router)
    _serve_ui(app)

    # --- plugdock: plugins in the billing app (the whole integration) ---------------------
    if with_plugdock:

        def plugdock_user(
            account: Account | None = Depends(auth.optional_account),
        ) -> HostUser | None:
            if account is None:
                return None
            return HostUser(id=account.id, username=account.email, is_admin=account.is_admin)

        def plugdock_users() -> list[HostUser]:  # what plugins granted core:users:read see
            with database.sessions() as db:
                accounts = db.scalars(select(Account).order_by(Account.id))
                return [HostUser(id=a.id, username=a.email, is_admin=a.is_admin) for a in accounts]

        auth_for_plugins = HostAuth(current_user=plugdock_user, users=plugdock_users)
        host = PluginHost(auth=auth_for_plugins, engine=database.engine)
        for name, model in events.DECLARED.items():  # invoice.paid & co. (billing/events.py)
            host.events.declare(name, model)
        for name, model in events.FILTERS.items():  # customer.signup
            host.filters.declare(name, model)
        app.state.plugin_events, app.state.plugin_filters = host.events, host.filters
        host.mount(app)
    # --- end of plugdock ------------------------------------------------------------------
    return app


def create_plain_app() -> FastAPI:
    """The billing app as it was before plugdock (for comparisons)."""
    return create_app(with_plugdock=False)


def _serve_ui(app: FastAPI) -> None:
    """The React UI: its assets, and index.html for any page navigation that is no route.

    A 404 handler rather than a catch-all route: plugin routes mount after the app's own,
    and a catch-all would answer for them first.
    """
    if (WEB_DIST / "assets").is_dir():
        app.mount("/assets", StaticFiles(directory=WEB_DIST / "assets"), name="assets")

    async def not_found(request: Request, exc: Exception) -> Response:
        index = WEB_DIST / "index.html"
        page = request.method == "GET" and "text/html" in request.headers.get("accept", "")
        if page and not request.url.path.startswith("/api/") and index.is_file():
            return FileResponse(index, headers={"Cache-Control": "no-cache"})
        assert isinstance(exc, StarletteHTTPException)
        return await http_exception_handler(request, exc)

    app.add_exception_handler(404, not_found)
