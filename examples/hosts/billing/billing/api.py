"""Billing's JSON API: customers, invoices and payments.

Rules: anyone signed in reads everything and drafts invoices; only admins add customers,
open (issue) invoices, record payments and mark invoices paid.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from billing.auth import Admin, SignedIn
from billing.db import get_db
from billing.events import (
    CustomerCreated,
    CustomerSignup,
    Emitter,
    Filterer,
    InvoiceCreated,
    InvoicePaid,
)
from billing.models import Customer, Invoice, InvoiceLine, Payment

router = APIRouter(prefix="/api", tags=["billing"])

Cents = Field(ge=0, le=10**11)


class CustomerIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    email: str = Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$", max_length=254)


class CustomerOut(BaseModel):
    id: int
    name: str
    email: str


class LineIn(BaseModel):
    description: str = Field(min_length=1, max_length=200)
    quantity: int = Field(ge=1, le=1_000_000)
    unit_price_cents: int = Cents


class LineOut(LineIn):
    amount_cents: int


class InvoiceIn(BaseModel):
    customer_id: int
    lines: list[LineIn] = Field(min_length=1, max_length=100)


class PaymentIn(BaseModel):
    invoice_id: int
    amount_cents: int = Field(ge=1, le=10**11)
    method: Literal["card", "transfer", "cash"] = "transfer"


class PaymentOut(BaseModel):
    id: int
    invoice_id: int
    invoice_number: str | None
    amount_cents: int
    method: str
    paid_at: datetime


class InvoiceOut(BaseModel):
    id: int
    number: str | None
    status: str
    customer: CustomerOut
    lines: list[LineOut]
    total_cents: int
    paid_cents: int
    created_at: datetime


class InvoiceDetail(InvoiceOut):
    payments: list[PaymentOut]


def _customer(customer: Customer) -> CustomerOut:
    return CustomerOut(id=customer.id, name=customer.name, email=customer.email)


def _payment(payment: Payment) -> PaymentOut:
    return PaymentOut(
        id=payment.id,
        invoice_id=payment.invoice_id,
        invoice_number=payment.invoice.number,
        amount_cents=payment.amount_cents,
        method=payment.method,
        paid_at=payment.paid_at,
    )


def _invoice(invoice: Invoice) -> InvoiceOut:
    return InvoiceOut(
        id=invoice.id,
        number=invoice.number,
        status=invoice.status,
        customer=_customer(invoice.customer),
        lines=[
            LineOut(
                description=line.description,
                quantity=line.quantity,
                unit_price_cents=line.unit_price_cents,
                amount_cents=line.amount_cents,
            )
            for line in invoice.lines
        ],
        total_cents=invoice.total_cents,
        paid_cents=invoice.paid_cents,
        created_at=invoice.created_at,
    )


def _detail(invoice: Invoice) -> InvoiceDetail:
    return InvoiceDetail(
        **_invoice(invoice).model_dump(), payments=[_payment(p) for p in invoice.payments]
    )


def _get_invoice(db: Session, invoice_id: int) -> Invoice:
    invoice = db.get(Invoice, invoice_id)
    if invoice is None:
        raise HTTPException(404, "no such invoice")
    return invoice


def _paid(invoice: Invoice) -> InvoicePaid:
    return InvoicePaid(
        invoice_id=invoice.id,
        number=invoice.number,
        customer_id=invoice.customer_id,
        customer_email=invoice.customer.email,
        total_cents=invoice.total_cents,
    )


# -- customers -----------------------------------------------------------------------------


@router.get("/customers")
def list_customers(_: SignedIn, db: Session = Depends(get_db)) -> list[CustomerOut]:
    return [_customer(c) for c in db.scalars(select(Customer).order_by(Customer.name))]


@router.post("/customers", status_code=201)
def add_customer(
    body: CustomerIn, _: Admin, emit: Emitter, apply: Filterer, db: Session = Depends(get_db)
) -> CustomerOut:
    signup = apply("customer.signup", CustomerSignup(name=body.name, email=str(body.email)))
    assert isinstance(signup, CustomerSignup)
    customer = Customer(name=signup.name, email=signup.email)
    db.add(customer)
    db.flush()
    created = CustomerCreated(customer_id=customer.id, name=customer.name, email=customer.email)
    emit(db, "customer.created", created, f"customer:{customer.id}")
    db.commit()
    return _customer(customer)


# -- invoices ------------------------------------------------------------------------------


@router.get("/invoices")
def list_invoices(
    _: SignedIn,
    status: Literal["draft", "open", "paid"] | None = None,
    db: Session = Depends(get_db),
) -> list[InvoiceOut]:
    query = select(Invoice).order_by(Invoice.id.desc())
    if status is not None:
        query = query.where(Invoice.status == status)
    return [_invoice(i) for i in db.scalars(query).unique()]


@router.get("/invoices/{invoice_id}")
def get_invoice(invoice_id: int, _: SignedIn, db: Session = Depends(get_db)) -> InvoiceDetail:
    return _detail(_get_invoice(db, invoice_id))


@router.post("/invoices", status_code=201)
def draft_invoice(
    body: InvoiceIn, _: SignedIn, emit: Emitter, db: Session = Depends(get_db)
) -> InvoiceDetail:
    if db.get(Customer, body.customer_id) is None:
        raise HTTPException(422, "no such customer")
    invoice = Invoice(
        customer_id=body.customer_id,
        lines=[InvoiceLine(**line.model_dump()) for line in body.lines],
    )
    db.add(invoice)
    db.flush()
    created = InvoiceCreated(
        invoice_id=invoice.id, customer_id=invoice.customer_id, total_cents=invoice.total_cents
    )
    emit(db, "invoice.created", created, f"invoice:{invoice.id}")
    db.commit()
    db.refresh(invoice)
    return _detail(invoice)


@router.post("/invoices/{invoice_id}/open")
def open_invoice(invoice_id: int, _: Admin, db: Session = Depends(get_db)) -> InvoiceDetail:
    """Issue a draft: it gets its number and can no longer change."""
    invoice = _get_invoice(db, invoice_id)
    if invoice.status != "draft":
        raise HTTPException(409, f"the invoice is {invoice.status}, not a draft")
    invoice.status = "open"
    invoice.number = f"INV-{invoice.id:05d}"
    db.commit()
    return _detail(invoice)


@router.post("/invoices/{invoice_id}/mark-paid")
def mark_paid(
    invoice_id: int, _: Admin, emit: Emitter, db: Session = Depends(get_db)
) -> InvoiceDetail:
    """Record a payment of what is still due (by transfer) and mark the invoice paid."""
    invoice = _get_invoice(db, invoice_id)
    if invoice.status != "open":
        raise HTTPException(409, f"the invoice is {invoice.status}, not open")
    due = invoice.total_cents - invoice.paid_cents
    if due > 0:
        db.add(Payment(invoice=invoice, amount_cents=due, method="transfer"))
    invoice.status = "paid"
    emit(db, "invoice.paid", _paid(invoice), f"invoice:{invoice.id}")
    db.commit()
    db.refresh(invoice)
    return _detail(invoice)


# -- payments ------------------------------------------------------------------------------


@router.get("/payments")
def list_payments(_: SignedIn, db: Session = Depends(get_db)) -> list[PaymentOut]:
    payments = db.scalars(select(Payment).order_by(Payment.id.desc()))
    return [_payment(p) for p in payments]


@router.post("/payments", status_code=201)
def record_payment(
    body: PaymentIn, _: Admin, emit: Emitter, db: Session = Depends(get_db)
) -> PaymentOut:
    """A payment against an open invoice; the one that covers its total marks it paid."""
    invoice = _get_invoice(db, body.invoice_id)
    if invoice.status != "open":
        raise HTTPException(409, f"the invoice is {invoice.status}, not open")
    due = invoice.total_cents - invoice.paid_cents
    if body.amount_cents > due:
        raise HTTPException(422, f"only {due} cents are due")
    payment = Payment(invoice=invoice, amount_cents=body.amount_cents, method=body.method)
    db.add(payment)
    if body.amount_cents == due:
        invoice.status = "paid"
        emit(db, "invoice.paid", _paid(invoice), f"invoice:{invoice.id}")
    db.commit()
    return _payment(payment)
