"""plugdock: a plugin system for FastAPI applications.

Install a plugin package and its code, tables, API routes and UI pages appear;
uninstall it and every trace is gone.
"""

from typing import TYPE_CHECKING, Any

from plugdock.version import __version__

if TYPE_CHECKING:
    from plugdock.errors import FilterVeto
    from plugdock.host.alembic_filter import skip_plugdock_tables
    from plugdock.host.embedding import HostAuth, HostUser, PluginHost

__all__ = [
    "FilterVeto",
    "HostAuth",
    "HostUser",
    "PluginHost",
    "__version__",
    "skip_plugdock_tables",
]

_EMBEDDING = {"HostAuth", "HostUser", "PluginHost"}


def __getattr__(name: str) -> Any:
    """``from plugdock import PluginHost``: imported on first use (the CLI stays quick)."""
    if name in _EMBEDDING:
        from plugdock.host import embedding

        return getattr(embedding, name)
    if name == "FilterVeto":  # what host.filters.apply raises when a plugin refuses
        from plugdock.errors import FilterVeto

        return FilterVeto
    if name == "skip_plugdock_tables":
        from plugdock.host import alembic_filter

        return alembic_filter.skip_plugdock_tables
    raise AttributeError(f"module 'plugdock' has no attribute {name!r}")
