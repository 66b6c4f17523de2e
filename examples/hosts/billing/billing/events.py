"""What happens in billing that plugins may hear of (plugdock's host events).

Declared with plugdock when it is mounted (billing.app), and emitted by the API in the same
transaction as the change itself: a change that rolls back is never heard of, one that
commits is delivered to every plugin that handles it, at least once, in order per invoice.
Without plugdock (``create_plain_app``) emitting does nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from anyio import from_thread
from fastapi import Depends, Request
from pydantic import BaseModel
from sqlalchemy.orm import Session


class CustomerCreated(BaseModel):
    """A customer was added."""

    customer_id: int
    name: str
    email: str


class InvoiceCreated(BaseModel):
    """An invoice was drafted."""

    invoice_id: int
    customer_id: int
    total_cents: int


class InvoicePaid(BaseModel):
    """An invoice was paid in full."""

    invoice_id: int
    number: str | None
    customer_id: int
    customer_email: str
    total_cents: int


class CustomerSignup(BaseModel):
    """A customer is about to be added: a filter may tidy the fields or refuse (sdk.Veto)."""

    name: str
    email: str


#: Filters billing applies in the request (plugdock's host filters).
FILTERS: dict[str, type[BaseModel]] = {"customer.signup": CustomerSignup}

DECLARED: dict[str, type[BaseModel]] = {
    "customer.created": CustomerCreated,
    "invoice.created": InvoiceCreated,
    "invoice.paid": InvoicePaid,
}

Emit = Callable[[Session, str, BaseModel, str], None]


def _emitter(request: Request) -> Emit:
    events: Any = getattr(request.app.state, "plugin_events", None)

    def emit(db: Session, name: str, payload: BaseModel, key: str) -> None:
        if events is not None:
            db.flush()  # the rows the payload names exist in this transaction
            events.emit(name, payload, conn=db, key=key)

    return emit


Emitter = Annotated[Emit, Depends(_emitter)]
"""Route parameter: ``emit(db, "invoice.paid", InvoicePaid(...), key)`` before the commit."""

Filter = Callable[[str, BaseModel], BaseModel]


def _filterer(request: Request) -> Filter:
    filters: Any = getattr(request.app.state, "plugin_filters", None)

    def apply(name: str, value: BaseModel) -> BaseModel:
        if filters is None:
            return value
        # A sync route runs in a worker thread: the filters run on the app's event loop.
        return from_thread.run(filters.apply, name, value)  # type: ignore[no-any-return]

    return apply


Filterer = Annotated[Filter, Depends(_filterer)]
"""Route parameter: ``value = apply("customer.signup", CustomerSignup(...))``; a plugin's
veto raises plugdock's FilterVeto (a 409 with its message)."""
