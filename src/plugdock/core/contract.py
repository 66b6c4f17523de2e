"""The API contract every plugdock HTTP surface shares: one JSON error model, the error
answers each operation can really give, and its security, written once.

Routes declare what is particular to them (``responses=errors(404, 409)``); the rest follows
from the operation itself and is filled in by :func:`complete` when the OpenAPI document is
built (:func:`install`): a JSON body can be unparsable (400) or too large (413), parameters
can be invalid (422), and the sign-in an operation needs (the placeholders of
:mod:`plugdock.sdk`, replaced by the host's own schemes) can be missing (401) or lack
rights (403). A generated client then gets every failure typed, and knows which calls need
a token.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AwareDatetime, BaseModel, BeforeValidator, Field

# The placeholders sdk.optional_user, sdk.current_user and sdk.require_admin carry (as
# security dependencies, so they reach the document even from a plugin's own process).
SIGNED_IN = "plugdock_signed_in"
ADMIN = "plugdock_admin"
MAYBE_SIGNED_IN = "plugdock_maybe_signed_in"
PLACEHOLDERS = (ADMIN, SIGNED_IN, MAYBE_SIGNED_IN)

UNSAFE_METHODS = frozenset({"post", "put", "patch", "delete"})


class ErrorOut(BaseModel):
    """Every error answer but 422: a sentence in ``detail``, plus what some refusals add."""

    detail: str = Field(description="what went wrong, in one sentence")
    problems: list[str] | None = Field(
        None, description="an invalid package: every problem found (when more than one)"
    )
    permissions: list[str] | None = Field(
        None, description="409 of an upgrade: the permissions to confirm, sent back as 'grant'"
    )
    permission_descriptions: list[str] | None = Field(
        None, description="one sentence per permission, in the same order"
    )


class Issue(BaseModel):
    loc: list[str | int] = Field(description="where: 'body', 'query', 'path' and the field")
    msg: str
    type: str


class ValidationErrorOut(BaseModel):
    """A 422: always a list of issues, never the values that were sent."""

    detail: list[Issue]


DESCRIPTIONS: dict[int, str] = {
    400: "The body could not be parsed",
    401: "Not signed in, or the token or session is no longer valid",
    403: "Signed in without the rights this needs (or a cookie session without its CSRF header)",
    404: "Not found",
    405: "Method not allowed (Allow lists the path's methods)",
    409: "Conflicts with the current state",
    411: "A Content-Length is required",
    413: "The body is larger than allowed",
    415: "Not the media type this takes",
    422: "Invalid input",
    429: "Too many attempts; Retry-After says when to try again",
    502: "The plugin source did not answer",
    503: "Busy or not ready; try again",
}


def errors(*codes: int, **described: str) -> dict[int | str, dict[str, Any]]:
    """A ``responses=`` table: each code with the shared model and a description.

    ``described`` overrides a description: ``errors(404, _409="already installed")``.
    """
    table: dict[int | str, dict[str, Any]] = {}
    for code in (*codes, *(int(k.lstrip("_")) for k in described)):
        text = described.get(f"_{code}", DESCRIPTIONS.get(code, "Error"))
        model = ValidationErrorOut if code == 422 else ErrorOut
        table[code] = {"model": model, "description": text}
    return table


@dataclass(frozen=True)
class Security:
    """How a host signs requests in: its OpenAPI security schemes, and the requirement
    (alternatives, each a set of schemes) for reading and for changing requests."""

    schemes: dict[str, dict[str, Any]]
    read: list[dict[str, list[str]]]
    change: list[dict[str, list[str]]] = field(default_factory=list)

    def requirement(self, method: str) -> list[dict[str, list[str]]]:
        return self.change if method in UNSAFE_METHODS and self.change else self.read


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _answer(code: int, text: str | None = None) -> dict[str, Any]:
    model = "ValidationErrorOut" if code == 422 else "ErrorOut"
    return {
        "description": text or DESCRIPTIONS.get(code, "Error"),
        "content": {"application/json": {"schema": _ref(model)}},
    }


def _add(responses: dict[str, Any], code: int, text: str | None = None) -> None:
    """Document ``code`` with the shared model, keeping a description the route gave."""
    found = responses.get(str(code))
    if found is None:
        responses[str(code)] = _answer(code, text)
    elif "content" not in found or code == 422:  # declared by a route without a body model
        found["content"] = _answer(code)["content"]


def complete(document: dict[str, Any], security: Security | None) -> dict[str, Any]:
    """Fill ``document`` in place (idempotent): the shared models, each operation's error
    answers and security (``security``: the host's schemes for the placeholders; an
    operation without any is public, said outright)."""
    components = document.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for model in (ErrorOut, ValidationErrorOut):
        found = model.model_json_schema(ref_template="#/components/schemas/{model}")
        for name, schema in found.pop("$defs", {}).items():
            schemas.setdefault(name, schema)
        schemas.setdefault(model.__name__, found)
    schemes = components.setdefault("securitySchemes", {})
    if security is not None:  # else the placeholders stay: "the host's sign-in"
        for name in PLACEHOLDERS:
            schemes.pop(name, None)  # replaced below, operation by operation
        schemes.update(security.schemes)
    for item in document.get("paths", {}).values():
        for method, operation in item.items():
            if method in ("parameters", "summary", "description", "servers"):
                continue
            _complete_operation(operation, method, security)
    if not schemes:
        components.pop("securitySchemes")
    return document


def _complete_operation(operation: dict[str, Any], method: str, security: Security | None) -> None:
    responses = operation.setdefault("responses", {})
    needs = {name for req in operation.get("security", []) for name in req}
    placeholders = needs.intersection(PLACEHOLDERS)
    if placeholders:
        signed_in = ADMIN in placeholders or SIGNED_IN in placeholders
        # The strongest need stands for them all (AdminUser depends on CurrentUser, which
        # depends on OptionalUser); sdk.OptionalUser alone: anonymous too (an empty one).
        strongest = next(name for name in PLACEHOLDERS if name in placeholders)
        requirement = security.requirement(method) if security else [{strongest: []}]
        operation["security"] = requirement if signed_in else [*requirement, {}]
        if signed_in:
            _add(responses, 401)
        if ADMIN in placeholders:
            _add(responses, 403, "Signed in, but not an admin")
    if security is not None and operation.get("security") and method in UNSAFE_METHODS:
        _add(responses, 403)  # a cookie session without its X-CSRF-Token
    if security is not None and "security" not in operation:
        operation["security"] = []  # said outright: anyone may call it
    if operation.get("parameters") or operation.get("requestBody"):
        _add(responses, 422)
    if any(p.get("in") == "path" for p in operation.get("parameters", [])):
        _add(responses, 404)
    body = operation.get("requestBody")
    if body is not None:
        _add(responses, 413)
        if any(kind != "application/octet-stream" for kind in body.get("content", {})):
            _add(responses, 400)
    for code, answer in responses.items():
        if code.startswith(("4", "5")) and "content" not in answer:
            answer["content"] = _answer(int(code))["content"]


def install(app: Any, security: Security | None) -> None:
    """Complete ``app``'s OpenAPI document whenever it is built (after any wrapper that
    adds plugin paths: call this last). ``PluginHost.mount`` installs it without schemes (a
    host's own sign-in stays "the host's sign-in"); the panel once more with its own."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        return complete(build(), security)

    app.openapi = openapi


def issues(messages: Sequence[str], kind: str = "value_error") -> list[dict[str, Any]]:
    """A refusal's messages as a 422 ``detail``: a list of issues, as every 422 is. Its
    ``loc`` is empty: it is about what was asked as a whole (the package, the state)."""
    return [{"loc": [], "msg": message, "type": kind} for message in messages]


def detail_text(detail: object) -> str:
    """An answer's ``detail`` in words: the sentence, or a 422's issues joined."""
    if isinstance(detail, list):
        return "; ".join(
            str(item.get("msg", item)) if isinstance(item, dict) else str(item) for item in detail
        )
    return str(detail)


def _as_utc(value: object) -> object:
    """A naive datetime (as SQLite and MariaDB hand them back) is UTC: say so."""
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


#: A timestamp as ``date-time`` requires it: with its timezone (UTC when stored naive).
UtcDatetime = Annotated[AwareDatetime, BeforeValidator(_as_utc)]
