"""Declared plugin settings: the ``settings`` of ``metadata.json``, a JSON Schema subset.

A plugin declares what an admin may configure; plugdock stores the values (secrets
encrypted, :mod:`plugdock.instance.plugin_settings`) and shows a form generated from it::

    "settings": {
      "type": "object",
      "required": ["gateway_url", "api_key"],
      "properties": {
        "gateway_url": {"type": "string", "format": "uri", "title": "Gateway URL"},
        "api_key": {"type": "string", "writeOnly": true, "description": "Bearer token"},
        "sender": {"type": "string", "default": "plugdock", "maxLength": 11}
      }
    }

The subset: an object of properties of type string, integer, number or boolean, each
with ``title``, ``description``, ``default``, ``enum``, ``format`` (``uri``, ``email``),
bounds (``minimum``, ``maximum``, ``exclusiveMinimum``, ``exclusiveMaximum``,
``minLength``, ``maxLength``, ``pattern``) and ``writeOnly: true`` for a secret. Anything
else is refused, so the form, the CLI and the storage understand every schema a package
can carry. Values are checked by ``jsonschema`` (Draft 2020-12) with the formats enforced.

>>> check_schema({"type": "object", "properties": {"n": {"type": "integer", "minimum": 1}}})
>>> value_problems(
...     {"type": "object", "properties": {"n": {"type": "integer", "minimum": 1}}}, {"n": 0}
... )
{'n': '0 is less than the minimum of 1'}
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import SchemaError

_KEY = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_TYPES = {"string", "integer", "number", "boolean"}
_FORMATS = {"uri", "email"}
_TOP_KEYS = {"type", "properties", "required", "title", "description", "additionalProperties"}
_COMMON_KEYS = {"type", "title", "description", "default", "enum", "writeOnly"}
_KEYS_BY_TYPE = {
    "string": {"format", "minLength", "maxLength", "pattern"},
    "integer": {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"},
    "number": {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"},
    "boolean": set(),
}
MAX_PROPERTIES = 50
MAX_STRING = 4096  # a stored value's largest size, whatever maxLength says

FORMATS = FormatChecker(formats=())


@FORMATS.checks("uri")
def _is_uri(value: object) -> bool:
    # An absolute http(s) URL with a host: what a plugin's "uri" setting is used for.
    if not isinstance(value, str):
        return True
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.hostname) and " " not in value


@FORMATS.checks("email")
def _is_email(value: object) -> bool:
    if not isinstance(value, str):
        return True
    local, at, domain = value.rpartition("@")
    return bool(at and local and "." in domain and " " not in value)


def is_setting_name(name: str) -> bool:
    """A setting's name: 1-64 of a-z, 0-9 and '_', starting with a letter."""
    return bool(_KEY.fullmatch(name))


def check_schema(schema: Any) -> None:
    """ValueError with every problem when ``schema`` is outside the supported subset."""
    problems = schema_problems(schema)
    if problems:
        raise ValueError("; ".join(problems))


def schema_problems(schema: Any) -> list[str]:
    """Every reason ``schema`` is not a settings schema plugdock supports (empty: fine)."""
    if not isinstance(schema, dict):
        return ["must be a JSON Schema object ({'type': 'object', 'properties': {...}})"]
    problems = [
        f"{k!r} is not supported in a settings schema" for k in schema if k not in _TOP_KEYS
    ]
    if schema.get("type") != "object":
        problems.append("'type' must be 'object'")
    if schema.get("additionalProperties", False) is not False:
        problems.append("'additionalProperties' may only be false")
    properties = schema.get("properties", {})
    if not isinstance(properties, dict):
        return [*problems, "'properties' must be an object"]
    if len(properties) > MAX_PROPERTIES:
        problems.append(f"at most {MAX_PROPERTIES} properties")
    for key, spec in properties.items():
        problems.extend(f"{key}: {p}" for p in _property_problems(key, spec))
    required = schema.get("required", [])
    if not isinstance(required, list) or not all(isinstance(r, str) for r in required):
        problems.append("'required' must be a list of property names")
    else:
        problems.extend(
            f"required {r!r} is not a property" for r in required if r not in properties
        )
    if not problems:
        try:
            Draft202012Validator.check_schema(schema)
        except SchemaError as exc:
            problems.append(exc.message)
    return problems


def _property_problems(key: str, spec: Any) -> list[str]:
    if not _KEY.fullmatch(key):
        return ["a setting's name is 1-64 of a-z, 0-9 and '_', starting with a letter"]
    if not isinstance(spec, dict):
        return ["must be an object"]
    kind = spec.get("type")
    if kind not in _TYPES:
        return [f"'type' must be one of {', '.join(sorted(_TYPES))} (got {kind!r})"]
    allowed = _COMMON_KEYS | _KEYS_BY_TYPE[kind]
    problems = [f"{k!r} is not supported for a {kind} setting" for k in spec if k not in allowed]
    if "format" in spec and spec["format"] not in _FORMATS:
        problems.append(f"format {spec['format']!r} is not supported (uri, email)")
    if "writeOnly" in spec and spec["writeOnly"] is not True:
        problems.append("'writeOnly' may only be true (a secret)")
    if spec.get("writeOnly") and kind != "string":
        problems.append("only a string setting can be a secret (writeOnly)")
    if spec.get("writeOnly") and "default" in spec:
        problems.append("a secret cannot have a default (it would sit in the package)")
    for word in ("title", "description"):
        if word in spec and not isinstance(spec[word], str):
            problems.append(f"{word!r} must be a string")
    if "enum" in spec and (not isinstance(spec["enum"], list) or not spec["enum"]):
        problems.append("'enum' must be a non-empty list")
    if not problems and "default" in spec:
        message = _first_problem(spec, spec["default"])
        if message is not None:
            problems.append(f"default: {message}")
    return problems


def _first_problem(spec: dict[str, Any], value: Any) -> str | None:
    errors = list(Draft202012Validator(spec, format_checker=FORMATS).iter_errors(value))
    return errors[0].message if errors else None


def properties(schema: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    """The declared settings, name → property schema (empty without a schema)."""
    return dict((schema or {}).get("properties", {}))


def secret_keys(schema: dict[str, Any] | None) -> set[str]:
    """The names of the secrets (``writeOnly``)."""
    return {k for k, spec in properties(schema).items() if spec.get("writeOnly") is True}


def required_keys(schema: dict[str, Any] | None) -> list[str]:
    return list((schema or {}).get("required", []))


def defaults(schema: dict[str, Any] | None) -> dict[str, Any]:
    """The declared defaults, name → value."""
    return {k: spec["default"] for k, spec in properties(schema).items() if "default" in spec}


def value_problems(schema: dict[str, Any], values: dict[str, Any]) -> dict[str, str]:
    """One message per setting whose value breaks the schema; ``""`` names the whole object.

    Required settings missing from ``values`` are reported under their own names, so a form
    shows the message beside the field.
    """
    problems: dict[str, str] = {}
    for key in values:
        if key not in properties(schema):
            problems[key] = "not a setting of this plugin"
    for key, value in values.items():
        spec = properties(schema).get(key)
        if spec is None or key in problems:
            continue
        if isinstance(value, str) and len(value) > MAX_STRING:
            problems[key] = f"at most {MAX_STRING} characters"
            continue
        message = _first_problem(spec, value)
        if message is not None:
            problems[key] = _plain(spec, value, message)
    for key in required_keys(schema):
        if key not in values and key not in problems:
            problems[key] = "required"
    return problems


def _plain(spec: dict[str, Any], value: Any, message: str) -> str:
    # jsonschema words a format error as "'x' is not a 'uri'"; a secret's value never
    # appears in a message (it could end in a log or an answer).
    if spec.get("writeOnly"):
        return message.replace(repr(value), "the value")
    return message
