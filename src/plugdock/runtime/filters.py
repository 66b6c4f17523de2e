"""Running the plugins' filters on a host's value, inside the host's request.

:class:`FilterChain` is one worker's side of ``host.filters.apply``: it finds the served
plugins that run a filter for the point (``"filters"`` in their metadata.json), in priority
order then plugin id, and passes the value through each, through the worker's
:class:`~plugdock.runtime.runner.PluginRunner` (in the panel or in the plugin's sandbox).
A filter that fails, runs over its bound or returns a value of the wrong type is skipped
(the value goes on unchanged) and reported in the plugin's status, never raised to the host;
a filter that vetoes (``sdk.Veto``) ends the chain with :class:`~plugdock.errors.FilterVeto`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from pydantic import BaseModel, ValidationError

from plugdock import sdk
from plugdock.errors import FilterOverran, FilterVeto, PluginProcessError
from plugdock.package.metadata import FilterSpec
from plugdock.runtime.mounts import Mounts

log = logging.getLogger("plugdock.runtime")


@dataclass(frozen=True)
class FilterTrouble:
    """The last problem one plugin's filter had in this worker."""

    operation_id: str  # the installation it was served from: a new mount starts clean
    message: str


class FilterChain:
    """The filters this worker runs, and what went wrong with them."""

    def __init__(self, mounts: Mounts, *, timeout: float) -> None:
        self.mounts = mounts
        self.timeout = timeout
        self.trouble: dict[str, FilterTrouble] = {}  # plugin id → its filters' last problem
        self._stuck: set[tuple[str, str, str]] = set()  # (plugin, operation, point): skipped
        self._specs: dict[tuple[str, str], dict[str, FilterSpec]] = {}  # (plugin, operation)

    def filters_of(self, plugin_id: str, operation_id: str) -> dict[str, FilterSpec]:
        """The installed plugin's filters (metadata.json), read once per installation."""
        key = (plugin_id, operation_id)
        specs = self._specs.get(key)
        if specs is None:
            try:
                specs = dict(self.mounts.metadata(plugin_id).filters)
            except Exception:  # its metadata is gone (being uninstalled): nothing to run
                return {}
            self._specs = {k: v for k, v in self._specs.items() if k[0] != plugin_id}
            self._specs[key] = specs
        return specs

    def subscribers(self, point: str) -> list[tuple[str, str, FilterSpec]]:
        """(plugin id, operation id, filter) for ``point``, in the order they run."""
        found = []
        for plugin_id, mounted in list(self.mounts.mounted.items()):
            operation_id = mounted.installation.operation_id
            spec = self.filters_of(plugin_id, operation_id).get(point)
            if spec is not None:
                found.append((plugin_id, operation_id, spec))
        found.sort(key=lambda f: (f[2].priority, f[0]))
        return found

    def problems(self) -> dict[str, str]:
        """Per plugin id served now: its filters' last problem in this worker."""
        return {
            plugin_id: trouble.message
            for plugin_id, trouble in self.trouble.items()
            if (mounted := self.mounts.mounted.get(plugin_id)) is not None
            and mounted.installation.operation_id == trouble.operation_id
        }

    async def apply(self, point: str, model: type[BaseModel], value: BaseModel) -> BaseModel:
        """``value`` through every served plugin's filter for ``point``."""
        for plugin_id, operation_id, spec in self.subscribers(point):
            if (plugin_id, operation_id, point) in self._stuck:
                continue
            mounted = self.mounts.mounted.get(plugin_id)
            if mounted is None:  # unmounted while an earlier filter ran
                continue
            data = value.model_dump(mode="json")
            try:
                result = await self.mounts.runner.apply_filter(
                    mounted, spec.handler, data, self.timeout
                )
                if isinstance(result, BaseModel):
                    result = result.model_dump(mode="json")
                value = model.model_validate(result)
            except sdk.Veto as veto:
                raise FilterVeto(plugin_id, point, veto.message) from None
            except FilterOverran as exc:
                self._stuck.add((plugin_id, operation_id, point))
                self._report(plugin_id, operation_id, point, f"{exc}; skipped until re-mounted")
            except TimeoutError:
                self._report(plugin_id, operation_id, point, f"ran over its {self.timeout:g} s")
            except ValidationError as exc:
                errors = "; ".join(
                    f"{'.'.join(map(str, e['loc'])) or 'value'}: {e['msg']}"
                    for e in exc.errors()[:3]
                )
                self._report(plugin_id, operation_id, point, f"returned a wrong value ({errors})")
            except PluginProcessError as exc:
                self._report(plugin_id, operation_id, point, str(exc))
            except Exception as exc:  # the plugin's own error: the host never sees it
                self._report(plugin_id, operation_id, point, f"{type(exc).__name__}: {exc}")
        return value

    def _report(self, plugin_id: str, operation_id: str, point: str, why: str) -> None:
        message = f"filter {point} skipped: {why}"[:2000]
        log.warning("%s: %s", plugin_id, message)
        self.trouble[plugin_id] = FilterTrouble(operation_id, message)
