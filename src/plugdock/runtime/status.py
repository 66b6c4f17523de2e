"""What this process serves of each plugin, for the panel's API and its readiness."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from plugdock.runtime.mounts import Mounts


@dataclass(frozen=True)
class PluginStatus:
    """What this process serves of one plugin (``PluginRuntime.status``)."""

    state: Literal["mounted", "failed", "fetching"]
    routes: tuple[str, ...] = ()  # mounted: the paths it serves
    error: str | None = None  # failed, fetching: why it is not served; mounted: a filter's
    # last problem (it is served, but a filter of it was skipped)
    limits: str | None = None  # process mode: what holds it to its resource limits


def plugin_status(
    mounts: Mounts,
    pending: dict[str, str],
    fetch_failures: dict[str, str],
    filter_problems: dict[str, str] | None = None,
) -> dict[str, PluginStatus]:
    """Per plugin id with a backend: mounted (with its served paths, and its filters' last
    problem), failed or fetching (with why). A plugin without a backend has no entry."""
    filter_problems = filter_problems or {}
    report: dict[str, PluginStatus] = {}
    limits = mounts.runner.limits()
    for plugin_id, mounted in mounts.mounted.items():
        routes = mounts.runner.paths(mounted)
        trouble = mounts.runner.trouble(mounted)  # a plugin process crashed, hung …: restarting
        if trouble is None:
            problem = filter_problems.get(plugin_id)
            report[plugin_id] = PluginStatus("mounted", routes, problem, limits=limits)
        else:
            report[plugin_id] = PluginStatus("failed", routes=routes, error=trouble, limits=limits)
    for plugin_id, (_operation, error) in mounts.failed.items():
        report[plugin_id] = PluginStatus("failed", error=error)
    for plugin_id, why in pending.items():
        failed = plugin_id in fetch_failures
        report[plugin_id] = PluginStatus("failed" if failed else "fetching", error=why)
    return report
