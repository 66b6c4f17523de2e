"""Panel users: create, look up, list, change passwords, and the first admin account.

Usernames are case-insensitive: they are stored lower-case, so ``Bob`` and ``bob`` are
one user on every database (MariaDB would compare them equal anyway). Functions that
take a ``Connection`` work in the caller's transaction::

    with engine.begin() as conn:
        bob = create_user(conn, "bob", "a long password", role="user", actor="admin")
    with engine.connect() as conn:
        assert get_by_username(conn, "BOB") == bob
"""

from __future__ import annotations

import logging
import re
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy import Connection, Engine, func, insert, select, true, update
from sqlalchemy.exc import IntegrityError

from plugdock import sdk
from plugdock.config import Settings
from plugdock.core.db import connect_read, users, utcnow
from plugdock.errors import LastAdminError, UserError, UserExistsError, UserNotFoundError
from plugdock.host.passwords import hash_password
from plugdock.host.sessions import end_user_sessions
from plugdock.instance import audit, outbox

log = logging.getLogger(__name__)

ROLES = ("admin", "user")
MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 1024
USERNAME_PATTERN = r"[a-z0-9][a-z0-9_.@-]{0,63}"
_USERNAME = re.compile(USERNAME_PATTERN)
FIRST_ADMIN = "admin"


#: Audit actions of account changes.
USER_UPDATE = "user_update"
LOGOUT = "logout"


@dataclass(frozen=True)
class UserRecord:
    """A row of ``users``. The hash stays out of ``repr``."""

    id: int
    username: str
    role: str
    is_active: bool
    created_at: datetime  # aware, UTC
    password_hash: str = field(repr=False)

    def as_sdk_user(self) -> sdk.User:
        return sdk.User(id=self.id, username=self.username, role=self.role)


#: The panel's own events (declared by plugdock.host.app, emitted with the change).
USER_CREATED = "user.created"
USER_SIGNED_IN = "user.signed_in"


class UserEvent(BaseModel):
    """A panel user was created, or signed in."""

    user_id: int
    username: str
    role: str


def normalize_username(username: str) -> str:
    """The stored form of ``username`` (trimmed, lower-case); UserError when it is not valid."""
    name = username.strip().lower()
    if not _USERNAME.fullmatch(name):
        raise UserError(
            f"invalid username {username!r}: 1-64 characters of a-z, 0-9, '_', '.', '@', '-', "
            "starting with a letter or digit"
        )
    return name


def check_password(password: str) -> None:
    """UserError unless ``password`` is acceptable (8 to 1024 characters)."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise UserError(f"the password must have at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise UserError(f"the password must have at most {MAX_PASSWORD_LENGTH} characters")


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise UserError(f"invalid role {role!r}: one of {', '.join(ROLES)}")


def record_of(row: Any) -> UserRecord:
    """A :class:`UserRecord` from a ``users`` row."""
    return _record(row)


def _record(row: Any) -> UserRecord:
    created = row.created_at
    return UserRecord(
        id=int(row.id),
        username=row.username,
        role=row.role,
        is_active=bool(row.is_active),
        created_at=created.replace(tzinfo=UTC) if created.tzinfo is None else created,
        password_hash=row.password_hash,
    )


def create_user(
    conn: Connection,
    username: str,
    password: str,
    *,
    role: str = "user",
    actor: str | None = None,
    password_hash: str | None = None,
) -> UserRecord:
    """Add a user (and an audit entry) in the caller's transaction.

    Raises UserError for a bad name/password/role and UserExistsError when the name is
    taken; the caller's transaction stays usable either way (the insert runs in a
    savepoint). ``password_hash`` skips hashing when the caller hashed already (hashing
    takes ~0.1 s, better done outside a transaction).
    """
    name = normalize_username(username)
    _check_role(role)
    if password_hash is None:
        check_password(password)
        password_hash = hash_password(password)
    try:
        with conn.begin_nested():
            conn.execute(
                insert(users).values(
                    username=name,
                    password_hash=password_hash,
                    role=role,
                    is_active=True,
                    created_at=utcnow(),
                )
            )
    except IntegrityError:
        raise UserExistsError(f"user {name!r} already exists") from None
    audit.record(
        conn, actor=actor, action=audit.USER_CREATE, detail={"username": name, "role": role}
    )
    record = get_by_username(conn, name)
    assert record is not None
    outbox.emit(  # the panel declares it (plugdock.host.app); in the same transaction
        conn,
        USER_CREATED,
        1,
        UserEvent(user_id=record.id, username=name, role=role).model_dump(),
        f"user:{record.id}",
    )
    return record


def get_by_username(conn: Connection, username: str) -> UserRecord | None:
    """The user called ``username`` (any case), or None (also for names that cannot exist)."""
    try:
        name = normalize_username(username)
    except UserError:
        return None
    row = conn.execute(select(users).where(users.c.username == name)).first()
    return _record(row) if row else None


def get_by_id(conn: Connection, user_id: int) -> UserRecord | None:
    row = conn.execute(select(users).where(users.c.id == user_id)).first()
    return _record(row) if row else None


def list_users(conn: Connection) -> list[UserRecord]:
    """Every user, by name."""
    return [_record(row) for row in conn.execute(select(users).order_by(users.c.username))]


def count_users(conn: Connection) -> int:
    return int(conn.execute(select(func.count()).select_from(users)).scalar_one())


def set_password(
    conn: Connection,
    username: str,
    password: str,
    *,
    actor: str | None = None,
    password_hash: str | None = None,
) -> None:
    """Replace a user's password; UserNotFoundError when there is no such user.

    Tokens issued before stop working (see ``auth.password_stamp``).
    """
    if password_hash is None:
        check_password(password)
        password_hash = hash_password(password)
    name = normalize_username(username)
    result = conn.execute(
        update(users).where(users.c.username == name).values(password_hash=password_hash)
    )
    if result.rowcount == 0:
        raise UserNotFoundError(f"no user {name!r}")
    record = get_by_username(conn, name)
    if record is not None:
        end_user_sessions(conn, record.id)  # sign out everywhere (the token stamp agrees)
    audit.record(conn, actor=actor, action=audit.PASSWORD_CHANGE, detail={"username": name})


def update_user(
    conn: Connection,
    user_id: int,
    *,
    role: str | None = None,
    is_active: bool | None = None,
    actor: str | None = None,
) -> UserRecord:
    """Change a user's role and/or active flag in the caller's transaction; the new record.

    Deactivating deletes the user's sessions, so their tokens stop working at once (also
    after a later re-activation). LastAdminError when no active admin would remain: the
    active admins are locked first (``FOR UPDATE``; SQLite's write lock), so two admins
    demoting each other at once cannot both succeed.
    """
    if role is not None:
        _check_role(role)
    record = get_by_id(conn, user_id)
    if record is None:
        raise UserNotFoundError(f"no user with id {user_id}")
    new_role = record.role if role is None else role
    new_active = record.is_active if is_active is None else is_active
    if not (new_role == "admin" and new_active):
        admins = conn.execute(
            select(users.c.id)
            .where(users.c.role == "admin", users.c.is_active == true())
            .with_for_update()
        ).scalars()
        if not any(int(other) != user_id for other in admins):
            raise LastAdminError(
                f"{record.username!r} is the last active admin: make another admin first"
            )
    changes: dict[str, Any] = {}
    if new_role != record.role:
        changes["role"] = new_role
    if new_active != record.is_active:
        changes["is_active"] = new_active
    if changes:
        conn.execute(update(users).where(users.c.id == user_id).values(**changes))
        audit.record(
            conn, actor=actor, action=USER_UPDATE, detail={"username": record.username} | changes
        )
    if not new_active:
        end_user_sessions(conn, user_id)
    updated = get_by_id(conn, user_id)
    assert updated is not None
    return updated


def has_admin(conn: Connection) -> bool:
    """Whether any account (active or not) has the admin role."""
    found = conn.execute(select(users.c.id).where(users.c.role == "admin").limit(1)).first()
    return found is not None


def ensure_admin(engine: Engine, settings: Settings) -> str | None:
    """On an instance without an admin, create ``admin``; the password when it was generated.

    Users made with ``plugdock user create`` before the first start do not prevent it: only
    an admin account does (one made with ``--role admin``, even if deactivated since). The
    password is ``PLUGDOCK_ADMIN_PASSWORD`` when set (then None is returned), else a
    random one that is returned for the caller to show once. Safe when several workers
    start at once: exactly one creates the account, the others see it exists (or lose
    the race on the unique username) and return None.
    """
    with connect_read(engine) as conn:
        if has_admin(conn):
            return None
        if get_by_username(conn, FIRST_ADMIN) is not None:  # a plain user took the name
            log.warning(
                "no admin account, and the name %r is taken by a user: make one an admin "
                "with 'plugdock user role %s admin'",
                FIRST_ADMIN,
                FIRST_ADMIN,
            )
            return None
    configured = settings.admin_password.get_secret_value() if settings.admin_password else None
    password = configured if configured is not None else secrets.token_urlsafe(15)
    try:
        check_password(password)
    except UserError as error:
        raise UserError(f"PLUGDOCK_ADMIN_PASSWORD: {error}") from None
    password_hash = hash_password(password)  # outside the transaction: it takes a while
    try:
        with engine.begin() as conn:
            if has_admin(conn):
                return None
            conn.execute(
                insert(users).values(
                    username=FIRST_ADMIN,
                    password_hash=password_hash,
                    role="admin",
                    is_active=True,
                    created_at=utcnow(),
                )
            )
            audit.record(
                conn,
                actor=None,
                action=audit.USER_CREATE,
                detail={"username": FIRST_ADMIN, "role": "admin", "reason": "first start"},
            )
    except IntegrityError:  # another worker created it between our check and our insert
        return None
    log.info("created the first admin user %r", FIRST_ADMIN)
    return None if configured is not None else password
