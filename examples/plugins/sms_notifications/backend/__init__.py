"""SMS Notifications plugin backend: send through the admin's gateway, log every message.

``on_settings_changed`` runs once in each serving process after an admin saves the
plugin's settings; the routes read current values at each request anyway, so it only logs.
"""

from typing import Any

from plugdock import sdk

from .routes import PLUGIN_ID, router

__all__ = ["on_settings_changed", "router"]


def on_settings_changed(settings: dict[str, Any]) -> None:
    """An admin saved the settings (never log the key itself)."""
    sdk.get_logger(PLUGIN_ID).info(
        "settings changed: gateway %s, sender %s",
        settings.get("gateway_url"),
        settings.get("sender"),
    )
