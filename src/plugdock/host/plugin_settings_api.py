"""``GET|PUT /api/v1/plugins/{id}/settings``: an installed plugin's declared settings (admin).

A secret's value never leaves the panel: the answer says only whether it is set. A value
the environment sets (``PLUGDOCK_PLUGIN_<ID>_<NAME>``) says so and cannot be changed here.
``PUT {"values": {...}}`` changes only the names it holds: a value replaces, ``null``
clears (a default applies again; a secret is gone). Wrong values answer 422 with one
message per setting, in FastAPI's own ``detail`` list form.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from plugdock import sdk
from plugdock.core.db import connect_read
from plugdock.errors import NotInstalledError
from plugdock.host.marketplace import PluginId
from plugdock.host.state import PanelState, panel_state
from plugdock.instance import plugin_settings
from plugdock.instance.registry import get_installation
from plugdock.instance.secret_box import SecretBox

router = APIRouter(prefix="/api/v1/plugins", tags=["plugin settings"])


class SettingOut(BaseModel):
    name: str
    title: str
    description: str
    type: Literal["string", "integer", "number", "boolean"]
    secret: bool = Field(description="writeOnly: its value is never returned, only 'set'")
    required: bool
    set: bool = Field(description="it has a value (environment, stored or default)")
    source: Literal["environment", "stored", "default", "unset"]
    env_var: str = Field(description="the environment variable that overrides it")
    value: Any = Field(None, description="the value; always null for a secret")
    problem: str | None = Field(None, description="why the current value does not do")
    property_schema: dict[str, Any] = Field(description="its JSON Schema (enum, bounds...)")


class PluginSettingsOut(BaseModel):
    plugin_id: str
    needs_configuration: bool
    settings: list[SettingOut]


class SettingsChange(BaseModel):
    values: dict[str, str | int | float | bool | None] = Field(
        description="name → new value; null clears it; a name left out keeps its value"
    )


def _schema(state: PanelState, plugin_id: str) -> dict[str, Any] | None:
    with connect_read(state.engine) as conn:
        if get_installation(conn, plugin_id) is None:
            raise NotInstalledError(f"{plugin_id} is not installed")
    return plugin_settings.installed_schema(state.settings, plugin_id)


def read_settings(state: PanelState, plugin_id: str) -> PluginSettingsOut:
    """What ``GET`` answers (blocking)."""
    schema = _schema(state, plugin_id)
    box = SecretBox.from_settings(state.settings, create=False)
    with connect_read(state.engine) as conn:
        states = plugin_settings.describe(conn, plugin_id, schema, box)
    return PluginSettingsOut(
        plugin_id=plugin_id,
        needs_configuration=any(s.problem for s in states),
        settings=[
            SettingOut(
                name=s.name,
                title=str(s.schema.get("title", s.name)),
                description=str(s.schema.get("description", "")),
                type=s.schema["type"],
                secret=s.secret,
                required=s.required,
                set=s.is_set,
                source=s.source,
                env_var=plugin_settings.env_name(plugin_id, s.name),
                value=s.value,
                problem=s.problem,
                property_schema=s.schema,
            )
            for s in states
        ],
    )


def _save(state: PanelState, plugin_id: str, values: dict[str, Any], actor: str) -> None:
    schema = _schema(state, plugin_id)
    box = SecretBox.from_settings(state.settings)
    with state.engine.begin() as conn:
        installation = get_installation(conn, plugin_id)
        generation = plugin_settings.save(
            conn,
            plugin_id,
            schema,
            values,
            box,
            actor=actor,
            version=installation.version if installation else None,
        )
    plugin_settings.announce(state.settings, generation)


@router.get(
    "/{plugin_id}/settings",
    response_model=PluginSettingsOut,
    summary="An installed plugin's settings (admin; secrets only as 'set')",
)
async def get_settings(
    plugin_id: PluginId, request: Request, _admin: sdk.AdminUser
) -> PluginSettingsOut:
    return await run_in_threadpool(read_settings, panel_state(request.app), plugin_id)


@router.put(
    "/{plugin_id}/settings",
    response_model=PluginSettingsOut,
    summary="Change an installed plugin's settings (admin)",
)
async def put_settings(
    plugin_id: PluginId, body: SettingsChange, request: Request, admin: sdk.AdminUser
) -> PluginSettingsOut:
    state = panel_state(request.app)
    await run_in_threadpool(_save, state, plugin_id, body.values, admin.username)
    await state.runtime.refresh()  # this worker serves the change before it answers
    return await run_in_threadpool(read_settings, state, plugin_id)
