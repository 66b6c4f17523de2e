"""What the chat does, as functions of a SQLAlchemy ``Session``; the routes only translate HTTP.

Errors are ``HTTPException`` subclasses, so routes can let them through unchanged and other
callers can still catch them by class.
"""

import secrets

from fastapi import HTTPException, status
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from .models import ChatMessage, ChatRating, ChatSession, utcnow
from .responders import Responder, greeting, log
from .schemas import RatingIn, SessionStart

TOKEN_BYTES = 32  # secrets.token_urlsafe(32) is 43 characters; the column holds 64
MAX_PAGE_SIZE = 200


class SessionNotFound(HTTPException):
    def __init__(self, session_id: int) -> None:
        super().__init__(status.HTTP_404_NOT_FOUND, f"Chat session {session_id} not found")


class SessionClosed(HTTPException):
    def __init__(self, session_id: int) -> None:
        super().__init__(
            status.HTTP_409_CONFLICT,
            f"Chat session {session_id} is closed; start a new chat to send more messages",
        )


class TokenMissing(HTTPException):
    def __init__(self) -> None:
        super().__init__(
            status.HTTP_401_UNAUTHORIZED,
            "Send the session's token in the X-Chat-Token header",
            headers={"WWW-Authenticate": "X-Chat-Token"},
        )


class TokenInvalid(HTTPException):
    def __init__(self, session_id: int) -> None:
        super().__init__(
            status.HTTP_403_FORBIDDEN, f"The X-Chat-Token does not match chat session {session_id}"
        )


def get_session(db: Session, session_id: int) -> ChatSession:
    """The session, or ``SessionNotFound`` (404)."""
    chat = db.get(ChatSession, session_id)
    if chat is None:
        raise SessionNotFound(session_id)
    return chat


def get_guest_session(db: Session, session_id: int, token: str | None) -> ChatSession:
    """The session, if ``token`` is its token: 404 unknown, 401 no token, 403 wrong token."""
    chat = get_session(db, session_id)
    if not token:
        raise TokenMissing()
    if not secrets.compare_digest(chat.token.encode(), token.encode()):
        raise TokenInvalid(session_id)
    return chat


def start_session(db: Session, data: SessionStart) -> tuple[ChatSession, ChatMessage]:
    """Create a session for a visitor, with the bot's greeting as its first message.

    The greeting is fixed text, so starting a chat never waits on a model.
    """
    chat = ChatSession(
        token=secrets.token_urlsafe(TOKEN_BYTES),
        guest_name=data.guest_name,
        guest_email=data.guest_email,
        guest_phone=data.guest_phone,
        status="open",
        message_count=1,
    )
    hello = ChatMessage(sender="bot", content=greeting(data.guest_name))
    chat.messages.append(hello)
    db.add(chat)
    db.flush()
    log.info("chat session %s started", chat.id)
    return chat, hello


def post_message(
    db: Session, session_id: int, content: str, responder: Responder
) -> tuple[ChatMessage, ChatMessage]:
    """Store the visitor's message, ask ``responder``, store and return both messages.

    404 if the session does not exist, 409 if it is closed. The visitor's message is
    committed *before* the responder runs, so a slow model never holds a database
    transaction (or SQLite's write lock) open, and the message survives a failing model.
    """
    chat = get_session(db, session_id)
    if chat.status != "open":
        raise SessionClosed(session_id)
    history = [(m.sender, m.content) for m in get_messages(db, session_id)]
    question = ChatMessage(session_id=chat.id, sender="guest", content=content)
    db.add(question)
    _count_message(chat)
    db.commit()

    answer_text = responder.reply(history, content)

    answer = ChatMessage(session_id=chat.id, sender="bot", content=answer_text)
    db.add(answer)
    _count_message(chat)
    db.commit()
    return question, answer


def _count_message(chat: ChatSession) -> None:
    # Computed by the database, so two requests of one session cannot lose a count.
    chat.message_count = ChatSession.message_count + 1
    chat.updated_at = utcnow()


def get_messages(db: Session, session_id: int) -> list[ChatMessage]:
    """A session's messages, oldest first (404 if the session does not exist)."""
    get_session(db, session_id)
    stmt = (
        select(ChatMessage)
        .where(ChatMessage.session_id == session_id)
        .order_by(ChatMessage.id)  # ids grow with time; MariaDB DATETIME drops microseconds
    )
    return list(db.scalars(stmt))


def list_sessions(
    db: Session, *, limit: int = 50, offset: int = 0, status: str | None = None
) -> tuple[list[tuple[ChatSession, int]], int]:
    """``([(session, message_count), ...], total)``, newest first, ``limit``/``offset`` paged."""
    limit = max(1, min(limit, MAX_PAGE_SIZE))
    offset = max(0, offset)
    stmt = select(ChatSession).order_by(ChatSession.created_at.desc(), ChatSession.id.desc())
    count_stmt = select(func.count(ChatSession.id))
    if status is not None:
        stmt = stmt.where(ChatSession.status == status)
        count_stmt = count_stmt.where(ChatSession.status == status)
    rows = [(chat, chat.message_count) for chat in db.scalars(stmt.limit(limit).offset(offset))]
    return rows, int(db.scalar(count_stmt) or 0)


def rate_session(db: Session, chat: ChatSession, rating: RatingIn) -> ChatRating:
    """Store the visitor's rating of ``chat`` (rating again replaces it); open or closed."""
    feedback = db.scalar(select(ChatRating).where(ChatRating.session_id == chat.id))
    if feedback is None:
        feedback = ChatRating(session_id=chat.id, stars=rating.stars, comment=rating.comment)
        db.add(feedback)
    else:
        feedback.stars = rating.stars
        feedback.comment = rating.comment
        feedback.created_at = utcnow()
    chat.rating = rating.stars
    db.flush()
    log.info("chat session %s rated %s", chat.id, rating.stars)
    return feedback


def close_session(db: Session, session_id: int) -> ChatSession:
    """Mark a session closed (no more visitor messages). Closing twice is harmless."""
    chat = get_session(db, session_id)
    if chat.status != "closed":
        chat.status = "closed"
        chat.updated_at = utcnow()
        db.flush()
        log.info("chat session %s closed", session_id)
    return chat
