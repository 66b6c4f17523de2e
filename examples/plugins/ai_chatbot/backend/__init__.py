"""AI Chatbot plugin backend: a support chat for site visitors, transcripts for admins.

The host imports this package under its own namespace and mounts ``router``; the optional
hooks below are called by the host around install, uninstall, startup and shutdown.
"""

from fastapi import FastAPI

from plugdock import sdk

from .responders import PLUGIN_ID, make_responder
from .routes import router

__all__ = ["PLUGIN_ID", "on_install", "on_shutdown", "on_startup", "on_uninstall", "router"]

log = sdk.get_logger(PLUGIN_ID)


def on_install(ctx: sdk.HookContext) -> None:
    """After the tables exist; nothing to seed."""
    log.info("AI chatbot installed")


def on_uninstall(ctx: sdk.HookContext) -> None:
    """Before the tables are dropped; nothing to clean up outside the database."""
    log.info("AI chatbot uninstalled")


def on_startup(app: FastAPI) -> None:
    """When the router is mounted: say which responder will answer."""
    responder = make_responder()
    log.info(
        "AI chatbot loaded (routes under %s, responder: %s)",
        router.prefix,
        type(responder).__name__,
    )


def on_shutdown(app: FastAPI) -> None:
    log.info("AI chatbot unloaded")
