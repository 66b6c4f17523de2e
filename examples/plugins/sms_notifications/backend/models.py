"""The message log; mirrors ``migrations/up.sql`` column for column."""

from datetime import UTC, datetime

from sqlalchemy import DateTime, Integer, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> datetime:
    """Now in UTC, without tzinfo: stored the same way on SQLite, PostgreSQL and MariaDB."""
    return datetime.now(UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    pass


class SmsMessage(Base):
    """One message the plugin handed to the gateway, and what the gateway said."""

    __tablename__ = "sms_messages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    recipient: Mapped[str] = mapped_column(String(32))
    sender: Mapped[str] = mapped_column(String(11))
    body: Mapped[str] = mapped_column(String(640))
    status: Mapped[str] = mapped_column(String(10))  # sent | failed
    gateway_status: Mapped[int | None] = mapped_column(Integer)
    gateway_id: Mapped[str | None] = mapped_column(String(100))
    error: Mapped[str | None] = mapped_column(String(300))
    sent_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
