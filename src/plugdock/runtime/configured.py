"""Declared settings in a serving process: "needs configuration", and ``on_settings_changed``.

After every reconcile (so after every change of the plugin generation, which a settings
save bumps) each mounted plugin's settings are looked at:

- a required setting without a value, or a kept value its installed version's schema
  refuses: the plugin's routes answer 503 saying so (the dispatch entry's gate) and the
  installed list says "needs configuration", until an admin sets them;
- stored values that changed since this process last looked: the plugin's
  ``on_settings_changed(settings)`` runs, once in this serving process, with the new values.

Plugin code reads current values itself (``sdk.PluginSettings``) at each request; the hook
is for what a plugin builds from them once (a client, a cache).
"""

from __future__ import annotations

import logging

from sqlalchemy import Engine

from plugdock.config import Settings
from plugdock.core.db import connect_read
from plugdock.errors import PlugdockError
from plugdock.instance import plugin_settings
from plugdock.instance.secret_box import SecretBox
from plugdock.package.settings_schema import properties
from plugdock.runtime.mounts import Mounts
from plugdock.runtime.runner import MountedPlugin

log = logging.getLogger("plugdock.runtime")
HOOK = "on_settings_changed"


def _short(message: str) -> str:
    # Anyone calling the plugin's routes reads the 503, so it names settings but never
    # repeats a value; the admin's GET .../settings has the whole message.
    if message == "required":
        return message
    if "does not open with this key" in message:
        return "its stored secret does not open with this key"
    return "its value is not valid"


def needs_configuration(plugin_id: str, problems: dict[str, str]) -> str:
    """The 503's words: which settings to set, and where."""
    listed = "; ".join(
        f"{k}: {_short(v)}" if k else "no usable settings key" for k, v in problems.items()
    )
    return (
        f"{plugin_id} needs configuration: an admin must set its settings "
        f"(Installed plugins → Settings, or plugdock config {plugin_id}): {listed}"
    )


class SettingsWatch:
    """Which mounted plugins need configuration here, and whose settings changed."""

    def __init__(self, settings: Settings, engine: Engine, mounts: Mounts) -> None:
        self.settings = settings
        self.engine = engine
        self.mounts = mounts
        self.unconfigured: dict[str, str] = {}  # plugin id → the 503's message
        self._seen: dict[str, str] = {}  # plugin id → digest of its stored values

    def check(self) -> None:
        """Look at every mounted plugin's settings (blocking; after each reconcile)."""
        digests: dict[str, str] = {}
        box: SecretBox | None = None
        broken: str | None = None
        try:
            with connect_read(self.engine) as conn:
                digests = plugin_settings.digests(conn)
            box = SecretBox.from_settings(self.settings, create=False)
        except PlugdockError as exc:  # a malformed PLUGDOCK_SETTINGS_KEY: every plugin says so
            broken = str(exc)
        for plugin_id in [p for p in self._seen if p not in self.mounts.mounted]:
            del self._seen[plugin_id]
        self.unconfigured = {}
        for plugin_id, mounted in self.mounts.mounted.items():
            self._check_one(plugin_id, mounted, digests.get(plugin_id, ""), box, broken)

    def _check_one(
        self,
        plugin_id: str,
        mounted: MountedPlugin,
        digest: str,
        box: SecretBox | None,
        broken: str | None,
    ) -> None:
        gate = self.mounts.dispatch.unconfigured
        schema = plugin_settings.installed_schema(self.settings, plugin_id)
        if not properties(schema):
            gate.pop(id(mounted.entry), None)
            return
        if broken is not None:
            problems = {"": broken}
        else:
            with connect_read(self.engine) as conn:
                problems = plugin_settings.problems(conn, plugin_id, schema, box)
        if problems:
            self.unconfigured[plugin_id] = needs_configuration(plugin_id, problems)
            if mounted.entry is not None:
                gate[id(mounted.entry)] = self.unconfigured[plugin_id]
        else:
            gate.pop(id(mounted.entry), None)
        changed = plugin_id in self._seen and self._seen[plugin_id] != digest
        self._seen[plugin_id] = digest
        if changed and not problems:
            self._run_hook(plugin_id, mounted)

    def _run_hook(self, plugin_id: str, mounted: MountedPlugin) -> None:
        if mounted.backend is None:  # a plugin process runs its own (isolation.child)
            return
        hook = mounted.backend.hook(HOOK)
        if hook is None:
            return
        try:
            hook(plugin_settings.current_settings(self.settings, self.engine, plugin_id))
        except Exception:  # the plugin's bug: logged, the panel goes on
            log.exception("%s: %s failed", plugin_id, HOOK)
