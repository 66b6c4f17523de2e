"""Request and response bodies of the chat API (Pydantic v2)."""

import re
from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

from .models import Sender, Status

# Deliberately simple (no extra dependency): one "@", no spaces, a dot in the domain.
EMAIL_PATTERN = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
PHONE_PATTERN = re.compile(r"^[0-9 +\-()]+$")
MAX_MESSAGE_LENGTH = 4000


def _as_utc(value: datetime) -> datetime:
    # The database stores naive UTC; say so in the JSON ("...Z") so browsers read it right.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


UtcDatetime = Annotated[datetime, AfterValidator(_as_utc)]


class SessionStart(BaseModel):
    """What a visitor gives to start a chat."""

    model_config = ConfigDict(str_strip_whitespace=True)

    guest_name: str = Field(min_length=1, max_length=100, examples=["Ada Lovelace"])
    guest_email: str = Field(
        max_length=255, examples=["ada@example.com"], json_schema_extra={"format": "email"}
    )
    guest_phone: str | None = Field(
        default=None,
        max_length=50,
        examples=["+44 20 7946 0958"],
        # What the validators below take, for the OpenAPI document (blank means none). Not
        # enforced as a pattern: their message is for visitors.
        json_schema_extra={"pattern": r"^\s*(?:[ +()-]*(?:[0-9][ +()-]*){4,})?\s*$"},
    )

    # Messages here are shown to visitors as they are, so they say what to do.
    @field_validator("guest_email")
    @classmethod
    def _email_looks_right(cls, value: str) -> str:
        if not EMAIL_PATTERN.fullmatch(value):
            raise PydanticCustomError("email", "Enter a valid email address, like name@example.com")
        return value

    @field_validator("guest_phone", mode="before")
    @classmethod
    def _empty_phone_is_none(cls, value: object) -> object:
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @field_validator("guest_phone")
    @classmethod
    def _phone_looks_right(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not PHONE_PATTERN.fullmatch(value) or sum(c.isdigit() for c in value) < 4:
            raise PydanticCustomError(
                "phone", "Enter a phone number: at least 4 digits; spaces and + - ( ) are fine"
            )
        return value


class MessageIn(BaseModel):
    """A message the visitor sends."""

    model_config = ConfigDict(str_strip_whitespace=True)

    content: str = Field(min_length=1, max_length=MAX_MESSAGE_LENGTH)


class MessageOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    session_id: int
    sender: Sender
    content: str
    created_at: UtcDatetime


class RatingIn(BaseModel):
    """A visitor's rating of their conversation (1.1.0)."""

    model_config = ConfigDict(str_strip_whitespace=True)

    stars: int = Field(ge=1, le=5, examples=[5])
    comment: str | None = Field(default=None, max_length=500, examples=["Quick and helpful"])

    @field_validator("comment")
    @classmethod
    def _empty_comment_is_none(cls, value: str | None) -> str | None:
        return value or None


class RatingOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    session_id: int
    stars: int
    comment: str | None
    created_at: UtcDatetime


class SessionOut(BaseModel):
    """A session as admins see it (never with its token)."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    guest_name: str
    guest_email: str
    guest_phone: str | None
    status: Status
    created_at: UtcDatetime
    updated_at: UtcDatetime
    rating: int | None = None  # the visitor's stars, 1 to 5 (1.1.0)


class SessionSummary(SessionOut):
    message_count: int


class SessionPage(BaseModel):
    items: list[SessionSummary]
    total: int
    limit: int
    offset: int


class SessionDetail(SessionOut):
    messages: list[MessageOut]
    feedback: RatingOut | None = None  # the rating with the visitor's comment (1.1.0)


class SessionStarted(BaseModel):
    """Answer to a visitor starting a chat: keep ``token`` and send it as ``X-Chat-Token``."""

    session_id: int
    token: str
    status: Status
    created_at: UtcDatetime
    greeting: MessageOut


class Transcript(BaseModel):
    """A session's messages, oldest first, as the visitor sees them."""

    session_id: int
    status: Status
    messages: list[MessageOut]


class ChatReply(BaseModel):
    """The visitor's stored message and the bot's answer to it."""

    message: MessageOut
    reply: MessageOut
