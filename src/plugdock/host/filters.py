"""Filters a host declares and applies, for plugins to transform or veto (``host.filters``).

::

    class InvoiceTotal(BaseModel):
        invoice_id: int
        total: Decimal

    host.filters.declare("invoice.total", InvoiceTotal)
    ...
    total = await host.filters.apply("invoice.total", InvoiceTotal(invoice_id=7, total=100))

``apply`` runs, inside the request, every served plugin's filter for the point (``"filters"``
in its metadata.json) in priority order, each bounded by ``PLUGDOCK_FILTER_TIMEOUT``
(:mod:`plugdock.runtime.filters`). A filter gets the value as JSON-ready data and returns the
new value, which must validate against the model; one that fails, runs over its bound or
returns a wrong value is skipped and reported on the installed plugins page. A filter that
raises ``sdk.Veto("...")`` makes ``apply`` raise :class:`~plugdock.errors.FilterVeto`.
Declared filters are recorded in the database at start (kind ``filter``) beside the events.
"""

from __future__ import annotations

from typing import TypeVar

from pydantic import BaseModel

from plugdock.errors import PlugdockError
from plugdock.instance import outbox
from plugdock.package.metadata import POINT_NAME
from plugdock.runtime.filters import FilterChain

Value = TypeVar("Value", bound=BaseModel)


class HostFilters:
    """The filters one host declares (:meth:`declare`) and applies (:meth:`apply`)."""

    def __init__(self) -> None:
        self._models: dict[str, tuple[type[BaseModel], str]] = {}
        self.chain: FilterChain | None = None  # set by PluginHost.mount

    def declare(self, name: str, model: type[BaseModel], *, description: str | None = None) -> None:
        """Declare filter ``name``: plugins get and return a value of ``model``."""
        if not POINT_NAME.fullmatch(name) or len(name) > 100:
            raise PlugdockError(f"{name!r} is not a filter name (dotted words: invoice.total)")
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            raise PlugdockError(f"the value of {name} must be a pydantic model class")
        if name in self._models:
            raise PlugdockError(f"filter {name} is declared twice")
        about = description or (model.__doc__ or "").strip().split("\n")[0]
        self._models[name] = (model, about)

    def points(self) -> list[outbox.Point]:
        """What this host declares, as recorded in the database."""
        return [
            outbox.Point("filter", name, 1, model.model_json_schema(), about)
            for name, (model, about) in sorted(self._models.items())
        ]

    async def apply(self, name: str, value: Value) -> Value:
        """``value`` after every enabled plugin's filter for ``name``; raises
        :class:`~plugdock.errors.FilterVeto` when a plugin refuses it."""
        declared = self._models.get(name)
        if declared is None:
            raise PlugdockError(f"filter {name} is not declared (host.filters.declare)")
        model = declared[0]
        if not isinstance(value, model):
            raise PlugdockError(f"the value of {name} must be a {model.__name__}")
        if self.chain is None:  # not mounted: no plugins
            return value
        return await self.chain.apply(name, model, value)  # type: ignore[return-value]
