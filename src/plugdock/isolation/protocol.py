"""What the panel and a plugin process tell each other on each forwarded request.

The panel authenticates the request itself (the plugin process never holds the
token-signing key) and sends the result in headers the client cannot set: the forwarder
drops any incoming ``x-plugdock-*`` header first.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import HTTPException, Request

from plugdock import sdk

SOCKET_NAME = "plugin.sock"  # in the plugin's run folder, /run/plugdock inside its sandbox
PRIVATE_PREFIX = "/__plugdock/"  # the panel's own questions to a plugin process; never forwarded
PING_PATH = PRIVATE_PREFIX + "ping"  # liveness: answers only if its event loop is not stuck
DESCRIBE_PATH = PRIVATE_PREFIX + "describe"  # its routes and OpenAPI, for the other workers
EVENT_PATH = PRIVATE_PREFIX + "event"  # run a handler: {"handler", "event"} or {"handler", "job"}
FILTER_PATH = PRIVATE_PREFIX + "filter"  # run a filter: {"handler", "value"} → {"value"|"veto"}

USER_HEADER = "x-plugdock-user"  # {"id", "username", "role"} of the signed-in user
AUTH_ERROR_HEADER = "x-plugdock-auth-error"  # {"status", "detail", "headers"}: credentials refused
HEADER_PREFIX = b"x-plugdock-"


def user_header(user: sdk.User) -> str:
    return json.dumps({"id": user.id, "username": user.username, "role": user.role})


def auth_error_header(error: HTTPException) -> str:
    return json.dumps(
        {"status": error.status_code, "detail": error.detail, "headers": error.headers or {}}
    )


def user_from_headers(request: Request) -> sdk.User | None:
    """The plugin process's ``authenticate``: what the panel found, raised where it refused.

    As in the panel, refused credentials only matter to routes that ask for the user.
    """
    refused = request.headers.get(AUTH_ERROR_HEADER)
    if refused:
        error: dict[str, Any] = json.loads(refused)
        raise HTTPException(error["status"], error["detail"], error["headers"] or None)
    found = request.headers.get(USER_HEADER)
    if not found:
        return None
    user = json.loads(found)
    return sdk.User(id=user["id"], username=user["username"], role=user["role"])
