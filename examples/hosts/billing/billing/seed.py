"""``python -m billing.seed``: the billing schema, an admin, a clerk and some demo data.

Idempotent: the schema is migrated to Alembic's head (alembic.ini beside the package),
accounts and demo data are added only when absent.
The admin's and clerk's passwords come from BILLING_ADMIN_PASSWORD / BILLING_CLERK_PASSWORD.
"""

from __future__ import annotations

import os
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import select
from sqlalchemy.orm import Session

from billing.auth import hash_password
from billing.db import Database
from billing.models import Account, Customer, Invoice, InvoiceLine, Payment

ADMIN_EMAIL = "admin@billing.example"
CLERK_EMAIL = "clerk@billing.example"
DEFAULT_ADMIN_PASSWORD = "billing-admin"
DEFAULT_CLERK_PASSWORD = "billing-clerk"

CUSTOMERS = [
    ("Acme Tools", "accounts@acme.example"),
    ("Blue Harbor Café", "hello@blueharbor.example"),
    ("Northwind Traders", "billing@northwind.example"),
]


ALEMBIC_INI = Path(__file__).resolve().parent.parent / "alembic.ini"


def migrate() -> None:
    """``alembic upgrade head`` on DATABASE_URL (migrations/env.py reads it)."""
    command.upgrade(Config(str(ALEMBIC_INI)), "head")


def seed(database: Database) -> None:
    migrate()
    with database.sessions() as db:
        _account(db, ADMIN_EMAIL, "BILLING_ADMIN_PASSWORD", DEFAULT_ADMIN_PASSWORD, admin=True)
        _account(db, CLERK_EMAIL, "BILLING_CLERK_PASSWORD", DEFAULT_CLERK_PASSWORD, admin=False)
        if db.scalar(select(Customer.id).limit(1)) is None:
            _demo_data(db)
        db.commit()


def _account(db: Session, email: str, variable: str, default: str, *, admin: bool) -> None:
    if db.scalar(select(Account).where(Account.email == email)) is None:
        password = os.environ.get(variable) or default
        db.add(Account(email=email, password_hash=hash_password(password), is_admin=admin))


def _demo_data(db: Session) -> None:
    customers = [Customer(name=name, email=email) for name, email in CUSTOMERS]
    db.add_all(customers)
    acme, cafe, northwind = customers
    paid = Invoice(
        customer=acme,
        status="paid",
        lines=[
            InvoiceLine(description="Support plan, March", quantity=1, unit_price_cents=49_00),
            InvoiceLine(description="On-site visit (hours)", quantity=3, unit_price_cents=85_00),
        ],
    )
    unpaid = Invoice(
        customer=cafe,
        status="open",
        lines=[
            InvoiceLine(description="Espresso machine service", quantity=1, unit_price_cents=180_00)
        ],
    )
    draft = Invoice(
        customer=northwind,
        lines=[InvoiceLine(description="Consulting (days)", quantity=2, unit_price_cents=950_00)],
    )
    db.add_all([paid, unpaid, draft])
    db.flush()
    for invoice in (paid, unpaid):
        invoice.number = f"INV-{invoice.id:05d}"
    db.add(Payment(invoice=paid, amount_cents=paid.total_cents, method="card"))


if __name__ == "__main__":
    seed(Database())  # the database of DATABASE_URL, as migrate's
    print(f"billing: seeded; admin {ADMIN_EMAIL}, clerk {CLERK_EMAIL}")
