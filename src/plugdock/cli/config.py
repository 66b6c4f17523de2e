"""``plugdock config``: a plugin's declared settings from the command line, and the key.

::

    plugdock config sms_notifications                      # every setting (secrets: "set")
    plugdock config sms_notifications sender               # one
    plugdock config sms_notifications sender ACME          # set it
    plugdock config sms_notifications api_key              # a secret: asks without echo
    plugdock config sms_notifications sender --clear       # back to its default
    plugdock config --new-key                              # print a PLUGDOCK_SETTINGS_KEY
    PLUGDOCK_OLD_SETTINGS_KEY=... plugdock config --rotate-key   # re-encrypt with the new key
"""

from __future__ import annotations

import json
import os
from typing import Any

import typer

OLD_KEY_ENV = "PLUGDOCK_OLD_SETTINGS_KEY"


def _typed(spec: dict[str, Any], text: str) -> Any:
    """A command-line value in the setting's type (JSON for numbers and booleans)."""
    if spec.get("type") in ("integer", "number", "boolean"):
        try:
            return json.loads(text.lower() if spec["type"] == "boolean" else text)
        except ValueError:
            return text  # the schema check says what is wrong
    return text


def _shown(state: Any) -> str:
    if state.secret:
        shown = "set" if state.is_set else "not set"
    else:
        shown = json.dumps(state.value) if state.is_set else "(not set)"
    extra = [state.source] if state.source not in ("stored", "unset") else []
    if state.problem:
        extra.append(f"needs configuration: {state.problem}")
    return shown + (f"  [{'; '.join(extra)}]" if extra else "")


def register(app: typer.Typer) -> None:
    """Add ``config`` to the ``plugdock`` command."""

    @app.command("config")
    def config(
        plugin_id: str = typer.Argument("", help="An installed plugin."),
        key: str = typer.Argument("", help="One of its settings."),
        value: str | None = typer.Argument(None, help="The new value (a secret: asked)."),
        clear: bool = typer.Option(False, "--clear", help="Remove KEY's stored value."),
        new_key: bool = typer.Option(False, "--new-key", help="Print a new settings key."),
        rotate_key: bool = typer.Option(
            False,
            "--rotate-key",
            help=f"Re-encrypt every secret from {OLD_KEY_ENV} to the current key "
            "(PLUGDOCK_SETTINGS_KEY or settings.key).",
        ),
    ) -> None:
        """Show or change a plugin's settings (secrets are shown only as "set")."""
        from plugdock.instance.secret_box import new_key as make_key

        if new_key:
            typer.echo(make_key())
            return
        if rotate_key:
            _rotate()
            return
        if not plugin_id:
            raise typer.BadParameter("name a plugin (or --new-key, --rotate-key)")
        _configure(plugin_id, key, value, clear)


def _configure(plugin_id: str, key: str, value: str | None, clear: bool) -> None:
    from plugdock.config import load_settings
    from plugdock.core.db import connect_read, make_engine
    from plugdock.errors import NotInstalledError, SettingsInvalidError
    from plugdock.instance import plugin_settings
    from plugdock.instance.registry import get_installation
    from plugdock.instance.secret_box import SecretBox

    settings = load_settings()
    engine = make_engine(settings.db_url)
    try:
        with connect_read(engine) as conn:
            installation = get_installation(conn, plugin_id)
        if installation is None:
            raise NotInstalledError(f"{plugin_id} is not installed")
        schema = plugin_settings.installed_schema(settings, plugin_id)
        declared = (schema or {}).get("properties", {})
        if key and key not in declared:
            raise SettingsInvalidError(plugin_id, {key: "not a setting of this plugin"})
        spec = declared.get(key, {})
        if key and (value is not None or clear or spec.get("writeOnly")):
            if clear:
                new: Any = None
            elif value is None:  # a secret: never on the command line, where ps shows it
                new = typer.prompt(f"{key}", hide_input=True, confirmation_prompt=True)
            else:
                new = _typed(spec, value)
            with engine.begin() as conn:
                generation = plugin_settings.save(
                    conn,
                    plugin_id,
                    schema,
                    {key: new},
                    SecretBox.from_settings(settings),
                    actor=os.environ.get("USER") or None,
                    version=installation.version,
                )
            plugin_settings.announce(settings, generation)
            typer.echo(f"{plugin_id}.{key}: {'cleared' if clear else 'saved'}")
            return
        box = SecretBox.from_settings(settings, create=False)
        with connect_read(engine) as conn:
            states = plugin_settings.describe(conn, plugin_id, schema, box)
    finally:
        engine.dispose()
    if not states:
        typer.echo(f"{plugin_id} declares no settings")
    for state in states:
        if not key or state.name == key:
            typer.echo(f"{state.name} = {_shown(state)}")


def _rotate() -> None:
    from plugdock.config import load_settings
    from plugdock.core.db import make_engine
    from plugdock.errors import SecretKeyError
    from plugdock.instance import plugin_settings
    from plugdock.instance.secret_box import SecretBox, parse_key

    old_text = os.environ.get(OLD_KEY_ENV)
    if not old_text:
        raise SecretKeyError(f"set {OLD_KEY_ENV} to the key the secrets are encrypted with now")
    settings = load_settings()
    new = SecretBox.from_settings(settings)
    assert new is not None
    engine = make_engine(settings.db_url)
    try:
        with engine.begin() as conn:
            count = plugin_settings.rotate(
                conn, SecretBox(parse_key(old_text, source=OLD_KEY_ENV)), new
            )
    finally:
        engine.dispose()
    typer.echo(f"re-encrypted {count} secret(s) with the current key")
