"""The values of each plugin's declared settings: stored per plugin and name, secrets sealed.

A plugin's effective settings are, per declared name, the first of: the environment
(``PLUGDOCK_PLUGIN_<ID>_<NAME>``, as before settings were declared), the stored value,
the schema's default. Secrets are stored sealed by :class:`~plugdock.instance.secret_box.SecretBox`
and opened only to hand them to the plugin itself::

    with engine.begin() as conn:
        save(conn, "sms_notifications", schema, {"api_key": "s3cret"}, box, actor="alice")
    with connect_read(engine) as conn:
        values = effective_values(conn, "sms_notifications", schema, box)

Every save bumps the plugin generation, so every worker and replica looks again (and runs
the plugin's ``on_settings_changed``, :mod:`plugdock.runtime.runtime`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import Connection, Engine, delete, insert, select

from plugdock.config import Settings
from plugdock.core.db import (
    bump_generation,
    connect_read,
    current_generation,
    plugin_settings,
    utcnow,
)
from plugdock.core.fsutil import write_json_atomic
from plugdock.errors import SecretKeyError, SettingsInvalidError
from plugdock.instance import audit
from plugdock.instance.notify import notify_change
from plugdock.instance.secret_box import SecretBox
from plugdock.package import settings_schema
from plugdock.package.layout import METADATA_FILE
from plugdock.package.metadata import parse_metadata

ENV_PREFIX = "PLUGDOCK_PLUGIN_"
SETTINGS_CHANGE = "settings_change"  # the audit action
Source = Literal["environment", "stored", "default", "unset"]
_KEEP = object()


@dataclass(frozen=True)
class SettingState:
    """One declared setting as the admin sees it: a secret's value is never here."""

    name: str
    schema: dict[str, Any]
    secret: bool
    required: bool
    source: Source
    value: Any = None  # None for a secret, and when unset
    problem: str | None = None

    @property
    def is_set(self) -> bool:
        return self.source != "unset"


# metadata.json path → (its inode, ctime and size, the schema): sdk.PluginSettings asks at
# every request, and parsing and checking the metadata each time would cost more than the
# query. ctime, not mtime: packages carry fixed mtimes, but moving a new file in changes ctime.
_schemas: dict[str, tuple[tuple[int, int, int], dict[str, Any] | None]] = {}


def installed_schema(settings: Settings, plugin_id: str) -> dict[str, Any] | None:
    """The settings schema of the installed version (None: it declares none)."""
    path = settings.manifest_dir / plugin_id / METADATA_FILE
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    seen = (stat.st_ino, stat.st_ctime_ns, stat.st_size)
    cached = _schemas.get(str(path))
    if cached is not None and cached[0] == seen:
        return cached[1]
    schema = parse_metadata(path.read_bytes(), source=str(path)).settings
    _schemas[str(path)] = (seen, schema)
    return schema


def env_name(plugin_id: str, name: str) -> str:
    """The variable that overrides a setting: ``PLUGDOCK_PLUGIN_<ID>_<NAME>``."""
    return f"{ENV_PREFIX}{plugin_id.upper()}_{name.upper()}"


def _from_env(spec: dict[str, Any], text: str) -> Any:
    """An environment value in the setting's type (left as text when it does not convert,
    so validation says what is wrong)."""
    kind = spec.get("type")
    try:
        if kind == "integer":
            return int(text)
        if kind == "number":
            return float(text)
    except ValueError:
        return text
    if kind == "boolean":
        lowered = text.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
    return text


def _stored_rows(conn: Connection, plugin_id: str) -> dict[str, Any]:
    rows = conn.execute(
        select(plugin_settings.c.name, plugin_settings.c.value, plugin_settings.c.secret).where(
            plugin_settings.c.plugin_id == plugin_id
        )
    ).all()
    return {row.name: row for row in rows}


def _stored_value(plugin_id: str, row: Any, box: SecretBox | None) -> Any:
    if row.secret:
        if box is None:
            raise SecretKeyError(
                f"{plugin_id}.{row.name}: a secret is stored but this instance has no settings "
                "key (PLUGDOCK_SETTINGS_KEY, or the settings.key file the other replicas use)"
            )
        return box.open(plugin_id, row.name, row.value)
    return json.loads(row.value)


def effective_values(
    conn: Connection, plugin_id: str, schema: dict[str, Any] | None, box: SecretBox | None
) -> dict[str, Any]:
    """Every declared setting that has a value (environment, stored, default), secrets opened.

    SecretKeyError when a stored secret does not open (wrong key, changed row).
    """
    values, unreadable = _read(conn, plugin_id, schema, box)
    for message in unreadable.values():
        raise SecretKeyError(message)
    return values


def _read(
    conn: Connection, plugin_id: str, schema: dict[str, Any] | None, box: SecretBox | None
) -> tuple[dict[str, Any], dict[str, str]]:
    """The values that can be read, and why the others (secrets that do not open) cannot."""
    stored = _stored_rows(conn, plugin_id)
    values: dict[str, Any] = {}
    unreadable: dict[str, str] = {}
    for name, spec in settings_schema.properties(schema).items():
        env = os.environ.get(env_name(plugin_id, name))
        if env is not None:
            values[name] = _from_env(spec, env)
        elif name in stored:
            try:
                values[name] = _stored_value(plugin_id, stored[name], box)
            except SecretKeyError as exc:
                unreadable[name] = str(exc)
        elif "default" in spec:
            values[name] = spec["default"]
    return values, unreadable


def current_settings(settings: Settings, engine: Engine, plugin_id: str) -> dict[str, Any]:
    """What the plugin's code gets (``sdk.PluginSettings``): its effective values now."""
    schema = installed_schema(settings, plugin_id)
    if not settings_schema.properties(schema):
        return {}
    box = SecretBox.from_settings(settings, create=False)
    with connect_read(engine) as conn:
        return effective_values(conn, plugin_id, schema, box)


def describe(
    conn: Connection, plugin_id: str, schema: dict[str, Any] | None, box: SecretBox | None
) -> list[SettingState]:
    """Each declared setting: where its value comes from, the value unless a secret, and
    what is wrong with it (a missing required one, a kept value a new schema refuses)."""
    stored = _stored_rows(conn, plugin_id)
    secrets = settings_schema.secret_keys(schema)
    required = set(settings_schema.required_keys(schema))
    values, unreadable = _read(conn, plugin_id, schema, box)
    problems = settings_schema.value_problems(schema or {}, values) | unreadable
    states = []
    for name, spec in settings_schema.properties(schema).items():
        source: Source
        if os.environ.get(env_name(plugin_id, name)) is not None:
            source = "environment"
        elif name in stored:
            source = "stored"
        elif "default" in spec:
            source = "default"
        else:
            source = "unset"
        states.append(
            SettingState(
                name=name,
                schema=spec,
                secret=name in secrets,
                required=name in required,
                source=source,
                value=None if name in secrets else values.get(name),
                problem=problems.get(name),
            )
        )
    return states


def problems(
    conn: Connection, plugin_id: str, schema: dict[str, Any] | None, box: SecretBox | None
) -> dict[str, str]:
    """Why the plugin needs configuration, per setting (empty: it is configured)."""
    if not settings_schema.properties(schema):
        return {}
    values, unreadable = _read(conn, plugin_id, schema, box)
    return settings_schema.value_problems(schema or {}, values) | unreadable


def save(
    conn: Connection,
    plugin_id: str,
    schema: dict[str, Any] | None,
    changes: dict[str, Any],
    box: SecretBox | None,
    *,
    actor: str | None,
    version: str | None = None,
) -> int:
    """Validate and store ``changes`` (name → new value; ``None`` clears a stored value, so
    a default or nothing applies again), audit them without secret values, and tell every
    worker; the new generation. SettingsInvalidError lists a message per setting; nothing is
    stored then."""
    if not changes:  # nothing to store, audit or announce
        return current_generation(conn)
    declared = settings_schema.properties(schema)
    unknown = {k: "not a setting of this plugin" for k in changes if k not in declared}
    if unknown:
        raise SettingsInvalidError(plugin_id, unknown)
    secrets = settings_schema.secret_keys(schema)
    stored = _stored_rows(conn, plugin_id)
    # The values after the change, as the plugin would see them (environment first).
    candidate: dict[str, Any] = {}
    for name, spec in declared.items():
        env = os.environ.get(env_name(plugin_id, name))
        new = changes.get(name, _KEEP)
        if env is not None:
            candidate[name] = _from_env(spec, env)
        elif new is not _KEEP and new is not None:
            candidate[name] = new
        elif new is _KEEP and name in stored:
            # a kept secret that does not open is the key's problem, not this change's
            with contextlib.suppress(SecretKeyError):
                candidate[name] = _stored_value(plugin_id, stored[name], box)
        elif "default" in spec:
            candidate[name] = spec["default"]
    # Only what this change touches is refused: other required settings may still be
    # missing (set one at a time); the plugin then keeps needing configuration.
    found = {
        k: v
        for k, v in settings_schema.value_problems(schema or {}, candidate).items()
        if k in changes
    }
    if found:
        raise SettingsInvalidError(plugin_id, found)
    if any(name in secrets for name, v in changes.items() if v is not None) and box is None:
        raise SecretKeyError("no settings key to encrypt secrets with")
    detail: dict[str, Any] = {}
    now = utcnow()
    for name, new in changes.items():
        conn.execute(
            delete(plugin_settings).where(
                plugin_settings.c.plugin_id == plugin_id, plugin_settings.c.name == name
            )
        )
        secret = name in secrets
        if new is None:
            detail[name] = "cleared"
            continue
        if secret:
            assert box is not None
            value = box.seal(plugin_id, name, str(new))
            detail[name] = "replaced (secret)"
        else:
            value = json.dumps(new)
            detail[name] = new
        conn.execute(
            insert(plugin_settings).values(
                plugin_id=plugin_id,
                name=name,
                value=value,
                secret=secret,
                updated_at=now,
                updated_by=actor[:64] if actor else None,
            )
        )
    audit.record(
        conn,
        actor=actor,
        action=SETTINGS_CHANGE,
        plugin_id=plugin_id,
        version=version,
        detail=detail,
    )
    generation = bump_generation(conn)
    notify_change(conn)
    return generation


def announce(settings: Settings, generation: int) -> None:
    """After the commit: the other workers on this machine look now (the file is their hint;
    other machines follow PostgreSQL's NOTIFY or their timer)."""
    with contextlib.suppress(OSError):  # they still notice on their timer
        write_json_atomic(settings.generation_hint_path, {"generation": generation}, durable=False)


def forget(conn: Connection, plugin_id: str) -> None:
    """Remove every stored value of a plugin (its uninstall)."""
    conn.execute(delete(plugin_settings).where(plugin_settings.c.plugin_id == plugin_id))


def export_rows(conn: Connection, plugin_id: str) -> list[dict[str, Any]]:
    """The plugin's stored values as they are stored (secrets still sealed): for a backup."""
    rows = conn.execute(
        select(plugin_settings.c.name, plugin_settings.c.value, plugin_settings.c.secret)
        .where(plugin_settings.c.plugin_id == plugin_id)
        .order_by(plugin_settings.c.name)
    ).all()
    return [{"name": r.name, "value": r.value, "secret": bool(r.secret)} for r in rows]


def import_rows(conn: Connection, plugin_id: str, rows: Any, *, actor: str | None) -> None:
    """Replace the plugin's stored values with a backup's :func:`export_rows` (a sealed secret
    opens again only with the key and for the plugin and name it was sealed for)."""
    if not isinstance(rows, list) or not all(
        isinstance(r, dict)
        and isinstance(r.get("name"), str)
        and settings_schema.is_setting_name(r["name"])
        and isinstance(r.get("value"), str)
        and isinstance(r.get("secret"), bool)
        for r in rows
    ):
        raise SettingsInvalidError(plugin_id, {"": "the backup's settings.json is not readable"})
    forget(conn, plugin_id)
    now = utcnow()
    for row in rows:
        conn.execute(
            insert(plugin_settings).values(
                plugin_id=plugin_id,
                name=row["name"],
                value=row["value"],
                secret=row["secret"],
                updated_at=now,
                updated_by=actor[:64] if actor else None,
            )
        )


def digests(conn: Connection) -> dict[str, str]:
    """Per plugin with stored values, a digest that changes whenever one of them does."""
    rows = conn.execute(
        select(
            plugin_settings.c.plugin_id, plugin_settings.c.name, plugin_settings.c.value
        ).order_by(plugin_settings.c.plugin_id, plugin_settings.c.name)
    ).all()
    hashes: dict[str, Any] = {}
    for row in rows:
        digest = hashes.setdefault(row.plugin_id, hashlib.sha256())
        digest.update(f"{row.name}\0{row.value}\0".encode())
    return {plugin_id: h.hexdigest() for plugin_id, h in hashes.items()}


def rotate(conn: Connection, old: SecretBox, new: SecretBox) -> int:
    """Re-seal every stored secret from ``old`` to ``new`` in the caller's transaction; how
    many. SecretKeyError (nothing changed) when one does not open with ``old``."""
    rows = conn.execute(select(plugin_settings).where(plugin_settings.c.secret)).all()
    resealed = [
        (row, new.seal(row.plugin_id, row.name, old.open(row.plugin_id, row.name, row.value)))
        for row in rows
    ]
    for row, value in resealed:
        conn.execute(
            plugin_settings.update()
            .where(plugin_settings.c.plugin_id == row.plugin_id, plugin_settings.c.name == row.name)
            .values(value=value)
        )
    return len(resealed)
