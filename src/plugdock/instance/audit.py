"""The audit log: who did what to the instance, and when.

Write an entry in the transaction that makes the change, so the entry exists exactly
when the change does::

    with engine.begin() as conn:
        ...  # install the plugin
        audit.record(conn, actor="alice", action=audit.INSTALL, plugin_id="ai_chatbot",
                     version="1.0.0", detail={"tables": ["chat_sessions"]})

    with engine.connect() as conn:
        latest = audit.query(conn, limit=20)   # newest first
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, func, insert, select

from plugdock.core.db import audit_log, utcnow

# The actions plugdock writes. Other strings (up to 32 characters) are allowed too.
INSTALL = "install"
UNINSTALL = "uninstall"
UPGRADE = "upgrade"
DISABLE = "disable"
ENABLE = "enable"
EVENT_RETRY = "event_retry"
RESTORE = "restore"
LOGIN = "login"
LOGIN_FAILED = "login_failed"
USER_CREATE = "user_create"
PASSWORD_CHANGE = "password_change"

_MAX_ACTOR = 64
_MAX_ACTION = 32


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: datetime  # aware, UTC
    actor: str | None
    action: str
    plugin_id: str | None
    version: str | None
    detail: Any


def record(
    conn: Connection,
    *,
    actor: str | None,
    action: str,
    plugin_id: str | None = None,
    version: str | None = None,
    detail: Any = None,
) -> None:
    """Add one entry in the caller's transaction.

    ``actor`` is the acting username (``None`` for plugdock itself); names longer than the
    column are cut. ``detail`` is anything JSON can hold; other objects become strings.
    """
    if not action or len(action) > _MAX_ACTION:
        raise ValueError(f"audit action must be 1-{_MAX_ACTION} characters: {action!r}")
    if detail is not None:
        detail = json.loads(json.dumps(detail, default=str))
    conn.execute(
        insert(audit_log).values(
            at=utcnow(),
            actor=actor[:_MAX_ACTOR] if actor is not None else None,
            action=action,
            plugin_id=plugin_id,
            version=version,
            detail=detail,
        )
    )


def _filtered(statement: Any, action: str | None, plugin_id: str | None, actor: str | None) -> Any:
    if action is not None:
        statement = statement.where(audit_log.c.action == action)
    if plugin_id is not None:
        statement = statement.where(audit_log.c.plugin_id == plugin_id)
    if actor is not None:
        statement = statement.where(audit_log.c.actor == actor)
    return statement


def query(
    conn: Connection,
    *,
    limit: int = 50,
    offset: int = 0,
    action: str | None = None,
    plugin_id: str | None = None,
    actor: str | None = None,
) -> list[AuditEntry]:
    """Entries newest first, optionally only one action, plugin or actor."""
    statement = _filtered(select(audit_log), action, plugin_id, actor)
    rows = conn.execute(statement.order_by(audit_log.c.id.desc()).limit(limit).offset(offset))
    return [
        AuditEntry(
            id=row.id,
            at=row.at.replace(tzinfo=UTC) if row.at.tzinfo is None else row.at,
            actor=row.actor,
            action=row.action,
            plugin_id=row.plugin_id,
            version=row.version,
            detail=row.detail,
        )
        for row in rows
    ]


def count(
    conn: Connection,
    *,
    action: str | None = None,
    plugin_id: str | None = None,
    actor: str | None = None,
) -> int:
    """How many entries :func:`query` would page through with the same filters."""
    statement = _filtered(select(func.count()).select_from(audit_log), action, plugin_id, actor)
    return int(conn.execute(statement).scalar_one())
