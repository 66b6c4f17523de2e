"""Account administration over HTTP: change a user's role, deactivate or re-activate them.

``PATCH /api/v1/users/{user_id}`` with ``{"role"?, "is_active"?}`` (admins only). A
deactivated user's sessions end at once (their tokens answer 401 on the next request); a
role change applies to the next request (the user is loaded on every request). The last
active admin cannot be deactivated or demoted (409)::

    client.patch(f"/api/v1/users/{bob_id}", json={"is_active": False}, headers=admin)
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel, ConfigDict, StrictBool

from plugdock import sdk
from plugdock.host import users as user_store
from plugdock.host.core_api import _ERRORS, UserOut, bearer_scheme


class UserUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Literal["admin", "user"] | None = None
    # Strict: JSON true/false only. Lax, 0, "0", "no" and "off" deactivated the user.
    is_active: StrictBool | None = None


router = APIRouter(
    prefix="/api/v1/users", tags=["users"], dependencies=[Depends(bearer_scheme)], responses=_ERRORS
)


@router.patch(
    "/{user_id}",
    response_model=UserOut,
    summary="Change a user's role or active flag (admin)",
    responses={
        404: {"description": "No such user"},
        409: {"description": "It would leave no active admin"},
    },
)
def update_user(
    body: UserUpdate,
    request: Request,
    admin: sdk.AdminUser,
    user_id: int = Path(..., ge=1, le=2**31 - 1),
) -> UserOut:
    engine = sdk.host_state(request.app).engine
    with engine.begin() as conn:  # UserNotFoundError: 404, LastAdminError: 409
        record = user_store.update_user(
            conn, user_id, role=body.role, is_active=body.is_active, actor=admin.username
        )
    return UserOut.of(record)
