"""The plugin server's state on ``app.state.plugin_server``: one typed object per app.

:func:`plugdock.server.app.create_app` builds it; routes and the error handlers reach it
through the request::

    state = server_state(request.app)
    record = state.storage.record(plugin_id, version)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from plugdock.package.archive import Limits
from plugdock.server.storage import Storage

STATE_ATTRIBUTE = "plugin_server"


@dataclass(frozen=True)
class ServerState:
    """What the plugin server's routes share, for one app."""

    storage: Storage  # ensure()-d
    limits: Limits  # what an uploaded package may be
    review: str  # "required": versions wait for a reviewer; "off": listed at once
    scan_timeout: float  # seconds for the review report's code scan

    @property
    def reviewing(self) -> bool:
        return self.review == "required"

    def hide(self, text: str) -> str:
        """``text`` without the server's data path (answers go to any publisher)."""
        return text.replace(str(self.storage.data_dir), "<server data>")


def server_state(app: Any) -> ServerState:
    """The :class:`ServerState` of a plugin server app; RuntimeError for any other app."""
    state = getattr(app.state, STATE_ATTRIBUTE, None)
    if not isinstance(state, ServerState):
        raise RuntimeError(f"app.state.{STATE_ATTRIBUTE} is not a ServerState: not a plugin server")
    return state
