"""``metadata.json``: the model of a plugin's manifest and its validation.

Validation collects every problem at once and words each one for a plugin author,
so a single ``plugdock validate`` run shows everything to fix.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Any

import semver
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_core import ErrorDetails

from plugdock.errors import PackageError
from plugdock.package.permissions import normalize as normalize_permissions
from plugdock.package.settings_schema import check_schema as check_settings_schema

PLUGIN_ID_PATTERN = r"^[a-z][a-z0-9_]{1,63}$"
_ROUTE_PATTERN = re.compile(r"^/api/[A-Za-z0-9_\-/{}.]*\*?$")
_PAGE_PATTERN = re.compile(r"^/[A-Za-z0-9_\-/:]*$")
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,99}$")
_COMPARISON = re.compile(r"^(>=|<=|==|!=|>|<)\s*(\S+)$")
_PARTIAL_VERSION = re.compile(r"^\d+(?:\.\d+)?$")

PluginId = Annotated[str, Field(pattern=PLUGIN_ID_PATTERN)]


_NUMBER = r"(?:0|[1-9][0-9]*)"
_PRE = rf"(?:{_NUMBER}|[0-9]*[A-Za-z-][0-9A-Za-z-]*)"
_BUILD = r"[0-9A-Za-z-]+"
#: Exactly what :func:`parse_version` takes (semver 2.0, build metadata too), for schemas.
SEMVER_PATTERN = (
    rf"^{_NUMBER}\.{_NUMBER}\.{_NUMBER}(?:-{_PRE}(?:\.{_PRE})*)?(?:\+{_BUILD}(?:\.{_BUILD})*)?$"
)


def parse_version(value: str) -> semver.Version:
    """Parse a semantic version, with a plain-words error."""
    try:
        return semver.Version.parse(value)
    except (ValueError, TypeError):
        raise ValueError(f"{value!r} is not a semantic version like 1.2.3") from None


def check_range(spec: str) -> str:
    """Validate a version range like ``>=1.0.0,<2.0.0`` (comma means 'and')."""
    parts = [p.strip() for p in spec.split(",") if p.strip()]
    if not parts:
        raise ValueError("empty version range")
    for part in parts:
        match = _COMPARISON.fullmatch(part)
        if not match:
            raise ValueError(f"{part!r} is not a comparison like '>=1.0.0'")
        parse_version(_full_version(match.group(2)))
    return spec


def _full_version(bound: str) -> str:
    """``<2`` and ``<1.2`` in a range mean ``<2.0.0`` and ``<1.2.0`` (as npm reads them)."""
    if _PARTIAL_VERSION.fullmatch(bound):
        return bound + ".0" * (2 - bound.count("."))
    return bound


def _comparison(part: str) -> str:
    match = _COMPARISON.fullmatch(part)
    return match.group(1) + _full_version(match.group(2)) if match else part


def version_in_range(version: str, spec: str) -> bool:
    """True when ``version`` satisfies every comparison in ``spec``."""
    parsed = parse_version(version)
    return all(
        parsed.match(_comparison(p.strip().replace(" ", ""))) for p in spec.split(",") if p.strip()
    )


class BackendSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    routes: list[str] = Field(default_factory=list)
    models: list[str] = Field(default_factory=list)
    # A GET path the panel calls before an install or upgrade commits; not 2xx → rolled back.
    health: str | None = Field(None, max_length=200)

    @field_validator("health")
    @classmethod
    def _health_path(cls, health: str | None) -> str | None:
        if health is not None and (
            not _ROUTE_PATTERN.fullmatch(health) or ".." in health or "*" in health
        ):
            raise ValueError(f"health path {health!r} must be a concrete path under /api/")
        return health

    @field_validator("routes")
    @classmethod
    def _routes_under_api(cls, routes: list[str]) -> list[str]:
        for route in routes:
            if not _ROUTE_PATTERN.fullmatch(route) or ".." in route:
                raise ValueError(
                    f"route pattern {route!r} must be a path under /api/ (e.g. /api/v1/x/*)"
                )
        return routes

    @field_validator("models")
    @classmethod
    def _model_names(cls, models: list[str]) -> list[str]:
        for name in models:
            if not _IDENTIFIER.fullmatch(name):
                raise ValueError(f"model name {name!r} is not a Python identifier")
        return models


class FrontendSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    routes: list[str] = Field(default_factory=list)
    components: list[str] = Field(default_factory=list)

    @field_validator("routes")
    @classmethod
    def _page_routes(cls, routes: list[str]) -> list[str]:
        for route in routes:
            if not _PAGE_PATTERN.fullmatch(route) or route.startswith("/api/") or ".." in route:
                raise ValueError(
                    f"page route {route!r} must be a path like /support/chats, not under /api/"
                )
        return routes

    @field_validator("components")
    @classmethod
    def _component_names(cls, components: list[str]) -> list[str]:
        for name in components:
            if not _IDENTIFIER.fullmatch(name):
                raise ValueError(f"component name {name!r} is not an identifier")
        return components


#: A host's extension point: dotted lowercase words, e.g. ``invoice.paid``.
POINT_NAME = re.compile(r"[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+")
#: A handler inside the plugin's backend package: ``module:function`` (``handlers:on_paid``).
HANDLER_REF = re.compile(r"[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*")


class FilterSpec(BaseModel):
    """One filter a plugin runs on a host's value: lower ``priority`` runs first."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    handler: str = Field(max_length=200)
    priority: int = Field(10, ge=-1000, le=1000)

    @field_validator("handler")
    @classmethod
    def _handler(cls, handler: str) -> str:
        if not HANDLER_REF.fullmatch(handler):
            raise ValueError(f"handler {handler!r} must be 'module:function' in the backend")
        return handler


#: A scheduled job's id: unique within its plugin (``reminders``).
JOB_ID = re.compile(r"[a-z][a-z0-9_]{0,63}")
MAX_JOBS = 20


class JobSpec(BaseModel):
    """One scheduled job (``"jobs"`` in metadata.json), run by :mod:`plugdock.runtime.jobs`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(description="unique within the plugin, e.g. 'reminders'")
    cron: str = Field(
        description="5 fields (minute hour day month weekday), or 6 with seconds first"
    )
    handler: str = Field(description="'module:function' in the plugin's backend")
    timezone: str = Field("UTC", description="IANA time zone the cron is read in")

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        if not JOB_ID.fullmatch(value):
            raise ValueError(f"{value!r} is not a job id (lowercase letters, digits, '_')")
        return value

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        from plugdock.package.schedule import check_cron

        return check_cron(value)

    @field_validator("handler")
    @classmethod
    def _handler(cls, value: str) -> str:
        if len(value) > 200 or not HANDLER_REF.fullmatch(value):
            raise ValueError(f"handler {value!r} must be 'module:function' in the backend")
        return value

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        from plugdock.package.schedule import check_timezone

        return check_timezone(value)


class PluginMetadata(BaseModel):
    """The contents of ``metadata.json``. Only ``id``, ``name`` and ``version`` are required."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: PluginId
    name: str = Field(min_length=1, max_length=100)
    version: str
    author: str = Field("", max_length=200)
    description: str = Field("", max_length=2000)
    category: str = Field("General", max_length=50)
    price: float = Field(0, ge=0)
    icon: str = Field("", max_length=200)
    backend: BackendSpec = Field(default_factory=BackendSpec)
    frontend: FrontendSpec = Field(default_factory=FrontendSpec)
    requires: str | None = Field(None, description="core version range, e.g. '>=0.1.0,<1.0.0'")
    dependencies: dict[PluginId, str] = Field(
        default_factory=dict, description="other plugins this one needs, id → version range"
    )
    # What the plugin may do beyond its own tables (plugdock.package.permissions):
    # stored normalised, de-duplicated and sorted, so two spellings are one grant.
    permissions: list[str] = Field(default_factory=list, max_length=50)
    # The host's events this plugin handles: point name → "module:function" in its backend.
    events: dict[str, str] = Field(default_factory=dict, max_length=50)
    # What an admin configures (plugdock.package.settings_schema): a JSON Schema subset,
    # secrets marked writeOnly.
    settings: dict[str, Any] | None = None
    # The host's filters it runs: point name → {"handler", "priority"} (or just "handler").
    filters: dict[str, FilterSpec] = Field(default_factory=dict, max_length=50)

    # Scheduled jobs: each tick runs once across all workers and replicas.
    jobs: list[JobSpec] = Field(default_factory=list, max_length=MAX_JOBS)

    @field_validator("version")
    @classmethod
    def _semver(cls, value: str) -> str:
        if parse_version(value).build:
            # Semver ignores build metadata when ordering, so 1.0.0+x would be a second
            # "1.0.0": a published version could be replaced, and 'latest' be ambiguous.
            raise ValueError(f"{value!r} has build metadata ('+...'); use a new version instead")
        return value

    @field_validator("requires")
    @classmethod
    def _requires(cls, value: str | None) -> str | None:
        return None if value is None else check_range(value)

    @field_validator("dependencies")
    @classmethod
    def _dependencies(cls, value: dict[str, str]) -> dict[str, str]:
        for spec in value.values():
            check_range(spec)
        return value

    @field_validator("permissions")
    @classmethod
    def _permissions(cls, value: list[str]) -> list[str]:
        return normalize_permissions(value)

    @field_validator("events")
    @classmethod
    def _events(cls, value: dict[str, str]) -> dict[str, str]:
        for point, handler in value.items():
            if len(point) > 100 or not POINT_NAME.fullmatch(point):
                raise ValueError(f"{point!r} is not an event name (dotted words: invoice.paid)")
            if len(handler) > 200 or not HANDLER_REF.fullmatch(handler):
                raise ValueError(
                    f"handler {handler!r} of {point} must be 'module:function' in the backend"
                )
        return value

    @field_validator("settings")
    @classmethod
    def _settings(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None:
            check_settings_schema(value)
        return value

    @field_validator("filters", mode="before")
    @classmethod
    def _filters(cls, value: object) -> object:
        if not isinstance(value, dict):
            return value
        for point in value:
            if not isinstance(point, str) or len(point) > 100 or not POINT_NAME.fullmatch(point):
                raise ValueError(f"{point!r} is not a filter name (dotted words: invoice.total)")
        # "filters:add_fee" alone: the default priority
        return {k: {"handler": v} if isinstance(v, str) else v for k, v in value.items()}

    @field_validator("jobs")
    @classmethod
    def _jobs(cls, value: list[JobSpec]) -> list[JobSpec]:
        ids = [job.id for job in value]
        twice = sorted({i for i in ids if ids.count(i) > 1})
        if twice:
            raise ValueError(f"job ids must be unique: {', '.join(twice)} appears twice")
        return value

    @property
    def semver(self) -> semver.Version:
        return parse_version(self.version)


def _plain(error: ErrorDetails) -> str:
    where = ".".join(str(part) for part in error["loc"]) or "metadata"
    kind = error["type"]
    if kind == "missing":
        return f"{where}: required field is missing"
    if kind == "extra_forbidden":
        return f"{where}: unknown field"
    if kind == "string_pattern_mismatch" and where.startswith(("id", "dependencies")):
        return (
            f"{where}: {error['input']!r} is not a valid plugin id "
            "(2-64 characters: lowercase letters, digits, '_', starting with a letter)"
        )
    message = error["msg"].removeprefix("Value error, ")
    return f"{where}: {message}"


def parse_metadata(raw: bytes | str, *, source: str = "metadata.json") -> PluginMetadata:
    """Parse and validate ``metadata.json`` content; raises PackageError listing every problem."""
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PackageError(f"metadata.json is not valid JSON ({exc})", source=source) from None
    if not isinstance(data, dict):
        raise PackageError("metadata.json must hold a JSON object", source=source)
    try:
        return PluginMetadata.model_validate(data)
    except ValidationError as exc:
        raise PackageError([_plain(e) for e in exc.errors()], source=source) from None


def read_metadata(folder: Path) -> PluginMetadata:
    """Read ``metadata.json`` from a plugin folder."""
    path = folder / "metadata.json"
    if not path.is_file():
        raise PackageError("metadata.json is missing", source=str(folder))
    return parse_metadata(path.read_bytes(), source=str(folder))
