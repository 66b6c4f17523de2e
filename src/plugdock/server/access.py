"""Who asks the plugin server: the publisher or reviewer a request's bearer token names.

Both raise :class:`~plugdock.errors.AuthenticationError` (401) without a token and
:class:`~plugdock.errors.ForbiddenError` (403) for a token that is not one of theirs: a
publisher's token never signs in a reviewer, whatever the names. (The tokens themselves are
kept by :mod:`plugdock.server.accounts`.)
"""

from __future__ import annotations

from fastapi import Depends, Request
from fastapi.security import HTTPBearer

from plugdock.errors import AuthenticationError, ForbiddenError
from plugdock.server.state import server_state
from plugdock.server.storage import Publisher, Reviewer


def bearer(request: Request) -> str | None:
    """The request's ``Authorization: Bearer`` token, or None."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def signed_in_publisher(request: Request) -> Publisher:
    token = bearer(request)
    if token is None:
        raise AuthenticationError("a publisher token is required (Authorization: Bearer <token>)")
    found = server_state(request.app).storage.authenticate(token)
    if found is None:
        raise ForbiddenError("the publisher token is not valid")
    return found


def signed_in_reviewer(request: Request) -> Reviewer:
    token = bearer(request)
    if token is None:
        raise AuthenticationError("a reviewer token is required (Authorization: Bearer <token>)")
    found = server_state(request.app).storage.authenticate_reviewer(token)
    if found is None:
        raise ForbiddenError("this is not a reviewer token")
    return found


# For the OpenAPI document only (the routes check the token themselves, above): which token
# an operation takes. ``dependencies=PUBLISHER`` on a route.
PUBLISHER = [
    Depends(
        HTTPBearer(
            auto_error=False,
            scheme_name="publisher",
            description="A publisher token (plugdock server token create NAME).",
        )
    )
]
REVIEWER = [
    Depends(
        HTTPBearer(
            auto_error=False,
            scheme_name="reviewer",
            description="A reviewer token (plugdock server token create NAME --role reviewer).",
        )
    )
]
