"""Sign-in and bearer tokens: ``POST /api/v1/auth/login`` and the host's ``authenticate``.

Tokens are JWTs signed with HS256. The key is ``PLUGDOCK_SECRET_KEY`` or, when that is
unset, ``$PLUGDOCK_HOME/secret.key``: generated once (mode 0600) and shared by every worker
of the instance. A token names the user by id; each request loads the user again, so a
deactivated user or a changed role takes effect at once. Lifetime: ``PLUGDOCK_TOKEN_MINUTES``.

The host puts :func:`authenticate` on ``app.state.plugdock_authenticate``; from then on
``plugdock.sdk.current_user`` / ``require_admin`` work for core and plugin routes::

    token = httpx.post(f"{base}/api/v1/auth/login",
                       json={"username": "admin", "password": pw}).json()["access_token"]
    httpx.get(f"{base}/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
import os
import secrets
import stat
import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
from fastapi import APIRouter, HTTPException, Request, status
from pydantic import BaseModel, Field
from sqlalchemy import update

from plugdock import sdk
from plugdock.config import Settings, load_settings
from plugdock.db import connect_read, users
from plugdock.errors import PlugdockError
from plugdock import audit
from plugdock.host import users as user_store
from plugdock.host.passwords import hash_password, needs_rehash, verify_dummy, verify_password

log = logging.getLogger(__name__)

ALGORITHM = "HS256"
ISSUER = "plugdock"
MIN_SECRET_BYTES = 32
BAD_CREDENTIALS = "Incorrect username or password"
_BEARER = {"WWW-Authenticate": "Bearer"}
_INVALID_TOKEN = {"WWW-Authenticate": 'Bearer error="invalid_token"'}
_USER_STATE = "plugdock_user"


class TokenError(Exception):
    """A token that is malformed, badly signed, expired, or not ours. ``str`` says which."""


# -- the signing key -----------------------------------------------------------------------


def load_secret_key(settings: Settings) -> str:
    """The token-signing key of the instance (see the module docstring).

    The key file is created race-free: written whole to a private temporary file, then
    hard-linked into place, which fails if another process got there first (then its
    key is used). Every worker thus reads the same complete key.
    """
    if settings.secret_key is not None:
        key = settings.secret_key.get_secret_value()
        if len(key.encode()) < MIN_SECRET_BYTES:
            raise PlugdockError(
                f"PLUGDOCK_SECRET_KEY must be at least {MIN_SECRET_BYTES} bytes long"
            )
        return key
    path = settings.secret_key_path
    for _ in range(50):
        with contextlib.suppress(FileNotFoundError):
            return _read_key_file(path)
        _create_key_file(path)
    raise PlugdockError(f"cannot create or read {path}")


def _read_key_file(path: Path) -> str:
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("%s is readable by other users (mode %o); chmod 600 it", path, mode & 0o777)
    key = path.read_text(encoding="ascii").strip()
    if len(key) < MIN_SECRET_BYTES:
        raise PlugdockError(f"{path} holds a key shorter than {MIN_SECRET_BYTES} bytes")
    return key


def _create_key_file(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "w", encoding="ascii") as file:
            file.write(secrets.token_urlsafe(48) + "\n")
            file.flush()
            os.fsync(file.fileno())
        with contextlib.suppress(FileExistsError):  # another process won: use its key
            os.link(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


# -- tokens --------------------------------------------------------------------------------


def password_stamp(password_hash: str) -> str:
    """A short fingerprint of a user's password hash, carried in tokens as ``pwd``.

    Changing the password changes the stamp, which revokes every token issued before.
    """
    return hashlib.sha256(password_hash.encode()).hexdigest()[:16]


def create_access_token(
    user: user_store.UserRecord,
    secret: str,
    *,
    minutes: float,
    now: datetime | None = None,
) -> str:
    """A signed bearer token for ``user``, valid for ``minutes`` from ``now``."""
    issued = now or datetime.now(UTC)
    claims = {
        "sub": str(user.id),
        "name": user.username,
        "pwd": password_stamp(user.password_hash),
        "iss": ISSUER,
        "iat": issued,
        "exp": issued + timedelta(minutes=minutes),
    }
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def decode_access_token(token: str, secret: str) -> dict[str, Any]:
    """The claims of a valid token; TokenError("expired" or why it is invalid) otherwise."""
    try:
        return jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            issuer=ISSUER,
            options={"require": ["sub", "exp", "iat", "iss", "pwd"]},
        )
    except jwt.ExpiredSignatureError:
        raise TokenError("expired") from None
    except jwt.InvalidTokenError as error:
        raise TokenError(str(error) or "invalid") from None


# -- per-app state -------------------------------------------------------------------------


@dataclass(frozen=True)
class AuthConfig:
    secret: str
    token_minutes: float


_config_lock = threading.Lock()


def auth_config(app: Any) -> AuthConfig:
    """The signing key and token lifetime for ``app``, read once from ``app.state.settings``."""
    config = getattr(app.state, "plugdock_auth_config", None)
    if config is None:
        with _config_lock:
            config = getattr(app.state, "plugdock_auth_config", None)
            if config is None:
                settings = getattr(app.state, "settings", None) or load_settings()
                config = AuthConfig(load_secret_key(settings), settings.token_minutes)
                app.state.plugdock_auth_config = config
    return config


def _engine(request: Request) -> Any:
    engine = getattr(request.app.state, sdk.ENGINE_STATE, None)
    if engine is None:
        raise RuntimeError(f"app.state.{sdk.ENGINE_STATE} is not set")
    return engine


# -- authenticate: what the host puts on app.state.plugdock_authenticate ---------------------


def authenticate(request: Request) -> sdk.User | None:
    """The user the request's ``Authorization: Bearer`` token names, or None without a token.

    A token that is present but invalid, expired, issued before the user's last password
    change, or names a missing or inactive user is answered with 401
    (``WWW-Authenticate: Bearer error="invalid_token"``) rather than treated as anonymous,
    so a client learns that it must sign in again. The result is cached on
    ``request.state`` for the rest of the request.
    """
    cached = getattr(request.state, _USER_STATE, False)
    if cached is not False:
        return cached
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "Invalid authorization header", _BEARER)
    try:
        claims = decode_access_token(token, auth_config(request.app).secret)
        user_id = int(claims["sub"])
    except (TokenError, ValueError) as error:
        detail = "Token has expired" if str(error) == "expired" else "Invalid token"
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, detail, _INVALID_TOKEN) from None
    with connect_read(_engine(request)) as conn:
        record = user_store.get_by_id(conn, user_id)
    if record is None or not record.is_active:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "User not found or inactive", _INVALID_TOKEN
        )
    if not hmac.compare_digest(str(claims["pwd"]), password_stamp(record.password_hash)):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "Token revoked by a password change", _INVALID_TOKEN
        )
    user = record.as_sdk_user()
    setattr(request.state, _USER_STATE, user)
    return user


# -- the login route -----------------------------------------------------------------------


class LoginRequest(BaseModel):
    username: str = Field(..., min_length=1, max_length=256, examples=["admin"])
    password: str = Field(..., min_length=1, max_length=user_store.MAX_PASSWORD_LENGTH)


class TokenResponse(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int = Field(..., description="Seconds until the token expires.")


router = APIRouter(prefix="/api/v1/auth", tags=["auth"])

# Failed sign-ins allowed per client address in a sliding window, per worker process.
MAX_FAILURES = 10
FAILURE_WINDOW = 300.0
# argon2 takes 64 MiB per check: bound how many run at once, whatever the thread pool.
_ARGON2_SLOTS = threading.BoundedSemaphore(4)


class _FailedLogins:
    """Recent failed sign-ins per client, to slow down password guessing."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._times: dict[str, deque[float]] = {}

    def _recent(self, client: str, now: float) -> deque[float]:
        times = self._times.setdefault(client, deque())
        while times and now - times[0] > FAILURE_WINDOW:
            times.popleft()
        return times

    def retry_after(self, client: str) -> int:
        """Seconds until ``client`` may try again (0: now)."""
        now = time.monotonic()
        with self._lock:
            times = self._recent(client, now)
            if len(times) < MAX_FAILURES:
                return 0
            return int(FAILURE_WINDOW - (now - times[0])) + 1

    def failed(self, client: str) -> None:
        with self._lock:
            self._recent(client, time.monotonic()).append(time.monotonic())

    def succeeded(self, client: str) -> None:
        with self._lock:
            self._times.pop(client, None)


def _failed_logins_of(request: Request) -> _FailedLogins:
    state = request.app.state
    if getattr(state, "plugdock_failed_logins", None) is None:
        state.plugdock_failed_logins = _FailedLogins()
    return state.plugdock_failed_logins


@router.post(
    "/login",
    response_model=TokenResponse,
    responses={401: {"description": BAD_CREDENTIALS}},
    summary="Sign in with username and password; returns a bearer token",
)
def login(body: LoginRequest, request: Request) -> TokenResponse:
    engine = _engine(request)
    config = auth_config(request.app)
    client = request.client.host if request.client else None
    failures = _failed_logins_of(request)
    wait = failures.retry_after(client or "")
    if wait:
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            f"Too many failed sign-ins; try again in {wait} s",
            {"Retry-After": str(wait)},
        )
    with connect_read(engine) as conn:
        record = user_store.get_by_username(conn, body.username)
    with _ARGON2_SLOTS:
        if record is None:
            verify_dummy(body.password)  # the same work as for a real user: no timing oracle
            reason = "unknown user"
        elif not verify_password(record.password_hash, body.password):
            reason = "wrong password"
        elif not record.is_active:
            reason = "inactive user"
        else:
            reason = None
    if reason is not None:
        failures.failed(client or "")
        with engine.begin() as conn:
            audit.record(
                conn,
                actor=None,  # anonymous: the name is only what the client claimed
                action=audit.LOGIN_FAILED,
                detail={"reason": reason, "client": client, "username": body.username[:64]},
            )
        log.warning("failed login for %r from %s: %s", body.username, client, reason)
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, BAD_CREDENTIALS, _BEARER)
    assert record is not None
    with engine.begin() as conn:
        if needs_rehash(record.password_hash):
            conn.execute(
                update(users)
                .where(users.c.id == record.id)
                .values(password_hash=hash_password(body.password))
            )
        audit.record(conn, actor=record.username, action=audit.LOGIN, detail={"client": client})
    failures.succeeded(client or "")
    token = create_access_token(record, config.secret, minutes=config.token_minutes)
    return TokenResponse(access_token=token, expires_in=int(config.token_minutes * 60))
