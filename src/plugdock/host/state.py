"""The panel's state on ``app.state.plugdock``: one typed object instead of loose attributes.

:func:`plugdock.host.app.create_app` builds it; routes reach it through the request::

    state = panel_state(request.app)
    rows = state.installer.installed()

It is an :class:`plugdock.sdk.HostState`, so plugin routes' ``sdk.DbSession`` and
``sdk.CurrentUser`` find the engine and ``authenticate`` on it as on any host's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from plugdock import sdk
from plugdock.host import throttle

if TYPE_CHECKING:
    from plugdock.config import Settings
    from plugdock.installer import Installer
    from plugdock.runtime.runtime import PluginRuntime


@dataclass(frozen=True)
class AuthConfig:
    """The signing key, token lifetime and cookie policy, read once per app."""

    secret: str
    token_minutes: float
    cookie_secure: bool | None = None


@dataclass(kw_only=True)
class PanelState(sdk.HostState):
    """Everything the panel's routes and middleware share, for one app."""

    settings: Settings
    installer: Installer
    runtime: PluginRuntime
    login_limits: throttle.Limits = throttle.DEFAULT_LIMITS  # failed sign-ins allowed
    auth_config: AuthConfig | None = None  # signing key etc., read once on first use

    def hide(self, text: str) -> str:
        """``text`` without this machine's folders: the instance and the local source.

        Errors name files (an upload's unpacked code, a plugin's traceback, the source
        folder that lacks a package); answers go to clients, who learn nothing from where
        the panel keeps them. The plugin server does the same with its data folder.
        """
        folders = {
            str(self.settings.plugin_local_dir): "<PLUGIN_LOCAL_DIR>",
            str(self.settings.plugin_local_dir.resolve()): "<PLUGIN_LOCAL_DIR>",
            str(self.settings.home): "<instance>",
            str(self.settings.home.resolve()): "<instance>",
        }
        for folder in sorted(folders, key=len, reverse=True):  # the longer (inner) one first
            text = text.replace(folder, folders[folder])
        return text.replace("<PLUGIN_LOCAL_DIR> (PLUGIN_LOCAL_DIR)", "PLUGIN_LOCAL_DIR")


def panel_state(app: Any) -> PanelState:
    """The :class:`PanelState` of a panel app; RuntimeError for any other app."""
    state = sdk.host_state(app)
    if not isinstance(state, PanelState):
        raise RuntimeError("app.state.plugdock is not a PanelState: not a plugdock panel")
    return state
