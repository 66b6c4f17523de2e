"""Database models of the AI chatbot; they mirror ``migrations/up.sql`` column for column.

1.1.0 added ``chat_sessions.message_count`` and ``.rating`` and the ``chat_ratings`` table
(``migrations/versions/1.1.0/up.sql`` carries a 1.0.0 database forward).

The tables are created by the migration, not by ``Base.metadata.create_all``: the plugin has
its own ``Base`` (and so its own ``MetaData``) only so that unloading it leaves nothing behind
in the host's ORM registry.
"""

from datetime import UTC, datetime
from typing import Literal

from sqlalchemy import DateTime, ForeignKey, Index, Integer, String, Text, func, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

Sender = Literal["guest", "bot"]
Status = Literal["open", "closed"]


def utcnow() -> datetime:
    """Now in UTC, without tzinfo: stored the same way on SQLite, PostgreSQL and MariaDB."""
    return datetime.now(UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    pass


class ChatSession(Base):
    """A conversation a site visitor started. ``token`` is the visitor's secret for it."""

    __tablename__ = "chat_sessions"
    __table_args__ = (Index("ix_chat_sessions_rating", "rating"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    token: Mapped[str] = mapped_column(String(64), unique=True)
    guest_name: Mapped[str] = mapped_column(String(100))
    guest_email: Mapped[str] = mapped_column(String(255))
    guest_phone: Mapped[str | None] = mapped_column(String(50))
    status: Mapped[str] = mapped_column(String(20), default="open", server_default=text("'open'"))
    created_at: Mapped[datetime] = mapped_column(
        DateTime, default=utcnow, server_default=func.current_timestamp()
    )
    updated_at: Mapped[datetime] = mapped_column(
        DateTime, default=utcnow, onupdate=utcnow, server_default=func.current_timestamp()
    )
    # 1.1.0: kept up to date by the services (1.0.0 sessions were back-filled by the upgrade),
    # so listing sessions needs no count over chat_messages.
    message_count: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    # 1.1.0: the visitor's stars (1-5), copied from chat_ratings for listing and filtering.
    rating: Mapped[int | None] = mapped_column(Integer)

    messages: Mapped[list["ChatMessage"]] = relationship(
        back_populates="session", cascade="all, delete-orphan", order_by="ChatMessage.id"
    )
    feedback: Mapped["ChatRating | None"] = relationship(
        back_populates="session", cascade="all, delete-orphan"
    )


class ChatMessage(Base):
    """One message of a session, from the visitor (``guest``) or the assistant (``bot``)."""

    __tablename__ = "chat_messages"
    __table_args__ = (Index("ix_chat_messages_session_id", "session_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("chat_sessions.id", ondelete="CASCADE"))
    sender: Mapped[str] = mapped_column(String(10))
    content: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(
        DateTime, default=utcnow, server_default=func.current_timestamp()
    )

    session: Mapped[ChatSession] = relationship(back_populates="messages")


class ChatRating(Base):
    """A visitor's rating of their conversation (1.1.0): one per session, the latest wins."""

    __tablename__ = "chat_ratings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    session_id: Mapped[int] = mapped_column(
        ForeignKey("chat_sessions.id", ondelete="CASCADE"), unique=True
    )
    stars: Mapped[int] = mapped_column(Integer)
    comment: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(
        DateTime, default=utcnow, server_default=func.current_timestamp()
    )

    session: Mapped[ChatSession] = relationship(back_populates="feedback")
