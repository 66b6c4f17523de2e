"""plugdock: a plugin system for FastAPI applications.

Install a plugin package and its code, tables, API routes and UI pages appear;
uninstall it and every trace is gone.
"""

__version__ = "0.1.0"

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from plugdock.host.embedding import HostAuth, HostUser, PluginHost

__all__ = ["HostAuth", "HostUser", "PluginHost", "__version__"]

_EMBEDDING = {"HostAuth", "HostUser", "PluginHost"}


def __getattr__(name: str) -> Any:
    """``from plugdock import PluginHost``: imported on first use (the CLI stays quick)."""
    if name in _EMBEDDING:
        from plugdock.host import embedding

        return getattr(embedding, name)
    raise AttributeError(f"module 'plugdock' has no attribute {name!r}")
