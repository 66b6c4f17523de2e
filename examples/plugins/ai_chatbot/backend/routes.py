"""HTTP API of the AI chatbot, under ``/api/v1/chat``.

Visitors (no account) start a session and get a random ``token``; they send it back as the
``X-Chat-Token`` header to post and read the messages of that session only, and to rate it
(1.1.0). Every visitor endpoint is rate-limited per client address (429 + ``Retry-After``,
see ``ratelimit``). Admins (the host's authentication, through ``sdk.require_admin``) list,
read and close every session.
"""

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Header, Path, Query, status

from plugdock import sdk

from . import services
from .ratelimit import start_limit, visitor_limit
from .responders import Responder, make_responder
from .schemas import (
    ChatReply,
    MessageIn,
    MessageOut,
    RatingIn,
    RatingOut,
    SessionDetail,
    SessionOut,
    SessionPage,
    SessionStart,
    SessionStarted,
    SessionSummary,
    Transcript,
)

router = APIRouter(prefix="/api/v1/chat", tags=["ai_chatbot"])

# Bounded (sdk.Id: 1 to 2^63-1): a larger id would crash the query instead of a 422.
SessionId = Annotated[sdk.Id, Path(description="The chat session's id")]
ChatToken = Annotated[
    str | None, Header(description="The token returned when the session was started")
]


def get_responder() -> Responder:
    """The responder for this request (settings are re-read, so a change applies at once)."""
    return make_responder()


# -- visitors ------------------------------------------------------------------------------


VisitorLimit = [Depends(visitor_limit)]
# What a visitor's call can be refused with beyond bad input: no token (401), another
# session's token (403), a closed session (409), too many calls (429).
VISITOR_ERRORS = sdk.errors(401, 403, 409, 429)


@router.post(
    "/sessions",
    status_code=status.HTTP_201_CREATED,
    summary="Start a chat (public)",
    dependencies=[Depends(visitor_limit), Depends(start_limit)],
    responses=sdk.errors(429),
)
def start_session(body: SessionStart, db: sdk.DbSession) -> SessionStarted:
    chat, hello = services.start_session(db, body)
    return SessionStarted(
        session_id=chat.id,
        token=chat.token,
        status=chat.status,
        created_at=chat.created_at,
        greeting=MessageOut.model_validate(hello),
    )


@router.post(
    "/sessions/{session_id}/messages",
    status_code=status.HTTP_201_CREATED,
    summary="Send a message, get the bot's reply (visitor: X-Chat-Token)",
    dependencies=VisitorLimit,
    responses=VISITOR_ERRORS,
)
def post_message(
    session_id: SessionId,
    body: MessageIn,
    db: sdk.DbSession,
    responder: Annotated[Responder, Depends(get_responder)],
    x_chat_token: ChatToken = None,
) -> ChatReply:
    services.get_guest_session(db, session_id, x_chat_token)
    question, answer = services.post_message(db, session_id, body.content, responder)
    return ChatReply(
        message=MessageOut.model_validate(question), reply=MessageOut.model_validate(answer)
    )


@router.get(
    "/sessions/{session_id}/messages",
    summary="Read the conversation (visitor: X-Chat-Token)",
    dependencies=VisitorLimit,
    responses=VISITOR_ERRORS,
)
def get_messages(
    session_id: SessionId, db: sdk.DbSession, x_chat_token: ChatToken = None
) -> Transcript:
    chat = services.get_guest_session(db, session_id, x_chat_token)
    messages = services.get_messages(db, session_id)
    return Transcript(
        session_id=chat.id,
        status=chat.status,
        messages=[MessageOut.model_validate(m) for m in messages],
    )


@router.post(
    "/sessions/{session_id}/rating",
    summary="Rate the conversation, 1 to 5 stars (visitor: X-Chat-Token)",
    dependencies=VisitorLimit,
    responses=VISITOR_ERRORS,
)
def rate_session(
    session_id: SessionId, body: RatingIn, db: sdk.DbSession, x_chat_token: ChatToken = None
) -> RatingOut:
    chat = services.get_guest_session(db, session_id, x_chat_token)
    return RatingOut.model_validate(services.rate_session(db, chat, body))


# -- admins --------------------------------------------------------------------------------


@router.get("/sessions", summary="List sessions, newest first (admin)")
def list_sessions(
    db: sdk.DbSession,
    _admin: sdk.AdminUser,
    limit: Annotated[sdk.Limit, Query(le=services.MAX_PAGE_SIZE)] = 50,
    offset: sdk.Offset = 0,
    status: Literal["open", "closed"] | None = None,
) -> SessionPage:
    rows, total = services.list_sessions(db, limit=limit, offset=offset, status=status)
    items = [
        SessionSummary(**SessionOut.model_validate(chat).model_dump(), message_count=count)
        for chat, count in rows
    ]
    return SessionPage(items=items, total=total, limit=limit, offset=offset)


@router.get("/admin/sessions/{session_id}", summary="A session with all its messages (admin)")
def get_session_detail(
    session_id: SessionId, db: sdk.DbSession, _admin: sdk.AdminUser
) -> SessionDetail:
    return SessionDetail.model_validate(services.get_session(db, session_id))


@router.post(
    "/sessions/{session_id}/close", summary="Close a session (admin)", responses=sdk.errors(409)
)
def close_session(session_id: SessionId, db: sdk.DbSession, _admin: sdk.AdminUser) -> SessionOut:
    return SessionOut.model_validate(services.close_session(db, session_id))
