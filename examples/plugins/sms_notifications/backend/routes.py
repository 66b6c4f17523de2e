"""Send a text message through the admin's gateway, and read the log.

The gateway's URL and key are the plugin's declared settings (``metadata.json``), read at
each request with ``sdk.PluginSettings``: a key an admin replaces is used from the next
message on, in every worker, without a restart. Until both are set plugdock answers 503
"needs configuration" before these routes run.
"""

from typing import Annotated, Any

import httpx
from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, Field
from sqlalchemy import func, select

from plugdock import sdk

from .models import SmsMessage

PLUGIN_ID = "sms_notifications"
GATEWAY_TIMEOUT = 10.0

router = APIRouter(prefix="/api/v1/sms", tags=["sms"])
log = sdk.get_logger(PLUGIN_ID)


class SmsIn(BaseModel):
    to: Annotated[str, Field(pattern=r"^\+?[0-9]{6,20}$", examples=["+4915112345678"])]
    text: Annotated[str, Field(min_length=1, max_length=640)]


class SmsOut(BaseModel):
    id: int
    recipient: str
    sender: str
    body: str
    status: str
    gateway_status: int | None
    gateway_id: str | None
    error: str | None
    sent_by: str
    created_at: Any


class SmsPage(BaseModel):
    items: list[SmsOut]
    total: int


def _out(message: SmsMessage) -> SmsOut:
    return SmsOut.model_validate(message, from_attributes=True)


def deliver(
    config: dict[str, Any], recipient: str, text: str
) -> tuple[int | None, str | None, str | None]:
    """POST the message to the gateway: (HTTP status, gateway's id, error)."""
    try:
        answer = httpx.post(
            config["gateway_url"],
            json={"to": recipient, "from": config.get("sender", "plugdock"), "text": text},
            headers={"Authorization": f"Bearer {config['api_key']}"},
            timeout=GATEWAY_TIMEOUT,
        )
    except httpx.HTTPError as exc:
        return None, None, f"gateway unreachable: {type(exc).__name__}"
    if answer.is_success:
        try:
            gateway_id = str(answer.json().get("id", ""))[:100] or None
        except ValueError:
            gateway_id = None
        return answer.status_code, gateway_id, None
    return answer.status_code, None, f"gateway answered {answer.status_code}"


@router.post("/messages", response_model=SmsOut, status_code=201)
def send(
    body: SmsIn, db: sdk.DbSession, admin: sdk.AdminUser, config: sdk.PluginSettings
) -> SmsOut:
    """Send a text message (admin); the log keeps it whatever the gateway says."""
    status, gateway_id, error = deliver(config, body.to, body.text)
    message = SmsMessage(
        recipient=body.to,
        sender=str(config.get("sender", "plugdock")),
        body=body.text,
        status="failed" if error else "sent",
        gateway_status=status,
        gateway_id=gateway_id,
        error=error,
        sent_by=admin.username,
    )
    db.add(message)
    db.flush()
    log.info("sms %s to %s: %s", message.id, body.to, message.status)
    if error:
        db.commit()  # the failure stays in the log
        raise HTTPException(502, f"the SMS gateway did not take the message: {error}")
    return _out(message)


@router.get("/messages", response_model=SmsPage)
def messages(
    db: sdk.DbSession, _admin: sdk.AdminUser, limit: sdk.Limit = 50, offset: sdk.Offset = 0
) -> SmsPage:
    """The message log, newest first (admin)."""
    total = db.scalar(select(func.count()).select_from(SmsMessage)) or 0
    rows = db.scalars(
        select(SmsMessage).order_by(SmsMessage.id.desc()).limit(limit).offset(offset)
    ).all()
    return SmsPage(items=[_out(m) for m in rows], total=total)
