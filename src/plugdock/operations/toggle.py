"""Disable or enable an installed plugin: served nowhere, or served again; no SQL of its own runs.

Its code, tables and rows stay. The change is one row update in one transaction with the
generation bump, so every worker and replica follows it like an install.
"""

from __future__ import annotations

from plugdock.errors import ConflictError, PlugdockError
from plugdock.instance import audit
from plugdock.instance.registry import set_enabled
from plugdock.operations.runner import Change, Steps, commit_change, reraise
from plugdock.operations.uninstall import installed_or_refuse
from plugdock.operations.workspace import Workspace


class AlreadyInStateError(ConflictError):
    """The plugin is already enabled (or disabled)."""


def set_plugin_enabled(
    workspace: Workspace, plugin_id: str, enabled: bool, *, actor: str | None
) -> None:
    """Enable or disable ``plugin_id``; call with the lock held."""
    steps = Steps("enable" if enabled else "disable")
    try:
        with steps.step("check_installed"):
            installation = installed_or_refuse(workspace, plugin_id)
            if installation.enabled == enabled:
                state = "enabled" if enabled else "disabled"
                raise AlreadyInStateError(f"{plugin_id} is already {state}")
            if not enabled:
                _check_no_enabled_dependents(workspace, plugin_id)
        with workspace.engine.connect() as conn, conn.begin() as transaction:
            with steps.step("record"):
                set_enabled(conn, plugin_id, enabled)
            generation = commit_change(
                conn,
                transaction,
                workspace,
                steps,
                Change(
                    actor,
                    audit.ENABLE if enabled else audit.DISABLE,
                    plugin_id,
                    installation.version,
                ),
            )
    except BaseException as exc:
        workspace.rewrite_registry()  # the registry step may have run before a failed commit
        reraise(steps, exc)
    workspace.announce(generation)


def _check_no_enabled_dependents(workspace: Workspace, plugin_id: str) -> None:
    """An enabled plugin that needs ``plugin_id`` would break with it gone."""
    rows = workspace.installed()
    enabled = {i.plugin_id for i in rows if i.enabled}
    needing = sorted(
        other
        for other, meta in workspace.installed_metadata(rows).items()
        if other in enabled and plugin_id in meta.dependencies
    )
    if needing:
        raise PlugdockError(
            f"{plugin_id} is needed by {', '.join(needing)}; disable "
            f"{'it' if len(needing) == 1 else 'them'} first"
        )
