"""The panel's core routes: health, the signed-in user, the dashboard, users and the audit log.

``router`` holds them all, including the login route from :mod:`plugdock.host.auth`;
the app includes it once. Everything but ``/healthz`` and the login needs a bearer token.
"""

from __future__ import annotations

import logging
import sys
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, status
from fastapi.responses import JSONResponse
from fastapi.security import HTTPBearer
from pydantic import BaseModel, Field
from sqlalchemy import Engine, func, select, text

from plugdock import sdk
from plugdock.core.db import addon_installations, connect_read, current_generation
from plugdock.errors import AuthenticationError
from plugdock.host import auth as auth_module
from plugdock.host import users as user_store
from plugdock.host.embedding import HostUser
from plugdock.host.passwords import hash_password
from plugdock.instance import audit

log = logging.getLogger(__name__)

# Declares the bearer scheme in OpenAPI, so /docs has an "Authorize" button and padlocks.
# The checking itself is sdk.current_user / sdk.require_admin (through auth.authenticate).
bearer_scheme = HTTPBearer(
    auto_error=False, description="The access_token from POST /api/v1/auth/login."
)

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "No token, or an invalid or expired one"},
    403: {"description": "Signed in, but not an admin"},
}


# -- response and request models -----------------------------------------------------------


class HealthOut(BaseModel):
    status: Literal["ok", "unavailable"]


class UserOut(BaseModel):
    id: int
    username: str
    role: Literal["admin", "user"]
    is_active: bool
    created_at: datetime

    @classmethod
    def of(cls, record: user_store.UserRecord) -> UserOut:
        return cls(
            id=record.id,
            username=record.username,
            role=record.role,
            is_active=record.is_active,
            created_at=record.created_at,
        )


class UserCreate(BaseModel):
    username: str = Field(
        ...,
        min_length=1,
        max_length=64,
        # The schema says what is refused: the pattern (any case) is the store's, checked here.
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$",
        description="a-z, 0-9, '_', '.', '@', '-', starting with a letter or digit; stored "
        "lower-case",
        examples=["bob"],
    )
    password: str = Field(
        ...,
        min_length=user_store.MIN_PASSWORD_LENGTH,
        max_length=user_store.MAX_PASSWORD_LENGTH,
    )
    role: Literal["admin", "user"] = "user"


class AuditEntryOut(BaseModel):
    id: int
    at: datetime
    actor: str | None
    action: str
    plugin_id: str | None
    version: str | None
    detail: Any = None

    @classmethod
    def of(cls, entry: audit.AuditEntry) -> AuditEntryOut:
        return cls(**entry.__dict__)


class AuditPage(BaseModel):
    items: list[AuditEntryOut]
    total: int
    limit: int
    offset: int


class DashboardOut(BaseModel):
    user: UserOut
    users: int = Field(..., description="How many users the panel has.")
    plugins_installed: int
    plugin_generation: int = Field(..., description="Counts every change of the installed plugins.")
    recent_activity: list[AuditEntryOut] | None = Field(
        None, description="The latest audit entries; admins only (null for other users)."
    )


# -- helpers --------------------------------------------------------------------------------


def _engine(request: Request) -> Engine:
    return sdk.host_state(request.app).engine


def _load_user(request: Request, user: sdk.User) -> user_store.UserRecord:
    with connect_read(_engine(request)) as conn:
        record = user_store.get_by_id(conn, int(user.id))
    if record is None:  # deleted after authenticate looked it up
        raise AuthenticationError("User not found or inactive")
    return record


# -- routes ---------------------------------------------------------------------------------

router = APIRouter()
router.include_router(auth_module.router)

health_router = APIRouter(tags=["health"])


@health_router.get(
    "/healthz",
    response_model=HealthOut,
    responses={503: {"model": HealthOut, "description": "The database does not answer"}},
    summary="Liveness and database check",
)
def healthz(request: Request) -> Any:
    try:
        with connect_read(_engine(request)) as conn:
            conn.execute(text("SELECT 1"))
    except Exception as error:  # any failure of the database is "unavailable"
        log.warning("health check failed: %s", error)
        return JSONResponse({"status": "unavailable"}, status.HTTP_503_SERVICE_UNAVAILABLE)
    return HealthOut(status="ok")


protected = APIRouter(prefix="/api/v1", dependencies=[Depends(bearer_scheme)], responses=_ERRORS)


@protected.get("/auth/me", response_model=UserOut, tags=["auth"], summary="The signed-in user")
def me(request: Request, user: sdk.CurrentUser) -> UserOut:
    return UserOut.of(_load_user(request, user))


@protected.get(
    "/dashboard",
    response_model=DashboardOut,
    tags=["dashboard"],
    summary="Counts for the panel's home page (recent activity for admins)",
)
def dashboard(request: Request, user: sdk.CurrentUser) -> DashboardOut:
    with connect_read(_engine(request)) as conn:
        record = user_store.get_by_id(conn, int(user.id))
        if record is None:
            raise AuthenticationError("User not found or inactive")
        installed = conn.execute(select(func.count()).select_from(addon_installations))
        return DashboardOut(
            user=UserOut.of(record),
            users=user_store.count_users(conn),
            plugins_installed=int(installed.scalar_one()),
            plugin_generation=current_generation(conn),
            recent_activity=[AuditEntryOut.of(e) for e in audit.query(conn, limit=10)]
            if user.is_admin
            else None,
        )


@protected.get("/users", response_model=list[UserOut], tags=["users"], summary="Every user (admin)")
def list_users(request: Request, _admin: sdk.AdminUser) -> list[UserOut]:
    with connect_read(_engine(request)) as conn:
        return [UserOut.of(r) for r in user_store.list_users(conn)]


@protected.post(
    "/users",
    response_model=UserOut,
    status_code=status.HTTP_201_CREATED,
    tags=["users"],
    summary="Create a user (admin)",
    responses={409: {"description": "The username is taken"}},
)
def create_user(body: UserCreate, request: Request, admin: sdk.AdminUser) -> UserOut:
    name = user_store.normalize_username(body.username)  # UserError: 422
    password_hash = hash_password(body.password)  # outside the transaction: ~0.1 s
    with _engine(request).begin() as conn:
        record = user_store.create_user(  # UserExistsError: 409
            conn,
            name,
            body.password,
            role=body.role,
            actor=admin.username,
            password_hash=password_hash,
        )
    return UserOut.of(record)


@protected.get("/audit", response_model=AuditPage, tags=["audit"], summary="Audit log (admin)")
def audit_log(
    request: Request,
    _admin: sdk.AdminUser,
    limit: Annotated[sdk.Limit, Query(le=500)] = 50,
    offset: sdk.Offset = 0,  # bounded: from 2^63 the query crashed (a 500)
    action: str | None = Query(None, max_length=32),
    plugin_id: str | None = Query(None, max_length=64),
) -> AuditPage:
    with connect_read(_engine(request)) as conn:
        items = audit.query(conn, limit=limit, offset=offset, action=action, plugin_id=plugin_id)
        total = audit.count(conn, action=action, plugin_id=plugin_id)
    return AuditPage(
        items=[AuditEntryOut.of(e) for e in items], total=total, limit=limit, offset=offset
    )


router.include_router(health_router)
router.include_router(protected)


# -- wiring (called by plugdock.host.app) ---------------------------------------------------


def active_users(engine: Engine) -> list[HostUser]:
    """The panel's active users, as ``HostAuth.users`` gives them to plugins."""
    from plugdock.isolation import core_calls

    return [
        HostUser(
            id=u["id"], username=u["username"], is_admin=u["role"] == "admin", roles=(u["role"],)
        )
        for u in core_calls.read_users(engine)
    ]


def install(app: Any) -> None:
    """Include the core routes (``PanelState.authenticate`` makes ``sdk.current_user`` use
    the tokens they hand out)."""
    app.include_router(router)


def start_up(engine: Engine, settings: Any) -> None:
    """First start: create the admin account; show a generated password once, on stderr."""
    password = user_store.ensure_admin(engine, settings)
    if password is not None:
        print(
            f"created admin user {user_store.FIRST_ADMIN!r} with password: {password}\n"
            "(shown once; change it with: plugdock user passwd admin)",
            file=sys.stderr,
            flush=True,
        )
    auth_module.load_secret_key(settings, engine)  # create the key now, not at the first login
