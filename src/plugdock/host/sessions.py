"""Sign-in sessions: every token names a row of ``auth_sessions``; deleting it revokes the token.

A JWT alone cannot be taken back before it expires. So each sign-in creates a session row
and the token carries its id (``sid``); :func:`user_of_session` (one query per request,
the user and the session together) refuses a token whose session is gone. Signing out
deletes the session, deactivating a user or changing a password deletes all of theirs::

    with engine.begin() as conn:
        sid = create_session(conn, user.id, minutes=60)
    with engine.begin() as conn:
        end_session(conn, sid)                 # this token is dead at once, in every worker
"""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any

from sqlalchemy import Connection, and_, delete, insert, select

from plugdock.core.db import auth_sessions, users, utcnow


def create_session(conn: Connection, user_id: int, *, minutes: float) -> str:
    """A new session of ``user_id`` lasting ``minutes``; its id. Expired sessions are pruned."""
    now = utcnow()
    conn.execute(delete(auth_sessions).where(auth_sessions.c.expires_at <= now))
    session_id = secrets.token_urlsafe(24)
    conn.execute(
        insert(auth_sessions).values(
            id=session_id,
            user_id=user_id,
            created_at=now,
            expires_at=now + timedelta(minutes=minutes, seconds=1),
        )
    )
    return session_id


def end_session(conn: Connection, session_id: str) -> bool:
    """Delete one session (sign-out); whether it existed."""
    result = conn.execute(delete(auth_sessions).where(auth_sessions.c.id == session_id))
    return bool(result.rowcount)


def end_user_sessions(conn: Connection, user_id: int) -> int:
    """Delete every session of a user (deactivated, password changed); how many."""
    result = conn.execute(delete(auth_sessions).where(auth_sessions.c.user_id == user_id))
    return int(result.rowcount or 0)


def user_of_session(conn: Connection, user_id: int, session_id: str) -> tuple[Any, bool] | None:
    """The ``users`` row of ``user_id`` (None: no such user), and whether ``session_id`` is
    a live session of that user. One query (an outer join)."""
    live = and_(
        auth_sessions.c.id == session_id,
        auth_sessions.c.user_id == users.c.id,
        auth_sessions.c.expires_at > utcnow(),
    )
    row = conn.execute(
        select(users, auth_sessions.c.id.label("session_id"))
        .select_from(users.outerjoin(auth_sessions, live))
        .where(users.c.id == user_id)
    ).first()
    if row is None:
        return None
    return row, row.session_id is not None
