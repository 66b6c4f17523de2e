"""Sign-in, sign-out, bearer tokens and the web UI's session cookie; the host's ``authenticate``.

Two ways in, one token format:

- API clients: ``POST /api/v1/auth/login`` → ``{"access_token"}``, sent as
  ``Authorization: Bearer``.
- The web UI: ``POST /api/v1/auth/session`` (same body) sets the token as an ``HttpOnly``,
  ``SameSite=Strict`` cookie (``plugdock_session``; ``Secure`` over https, or as
  ``PLUGDOCK_COOKIE_SECURE`` says), which scripts in the page cannot read, plus a readable
  ``plugdock_csrf`` cookie. A cookie-authenticated request with an unsafe method must echo
  that value in ``X-CSRF-Token`` (it is an HMAC of the session id: a sibling site that can
  plant cookies still cannot make one) or is answered 403.
- ``POST /api/v1/auth/logout`` ends the session (``?everywhere=true``: all of the user's)
  and clears the cookies.

Tokens are JWTs signed with HS256. The key is ``PLUGDOCK_SECRET_KEY`` or, when that is
unset, one stored in the database (``plugdock_secrets``): generated once, race-free, and so
shared by every worker and every replica on that database. An instance from before keeps
its tokens valid: the first start imports its ``$PLUGDOCK_HOME/secret.key`` into the
database instead of generating a key; no key file is created any more. A token names the
user by id and a session (``sid``, see
:mod:`plugdock.host.sessions`); each request loads both again, so signing out, a
deactivated user or a changed role takes effect at once. Lifetime: ``PLUGDOCK_TOKEN_MINUTES``.
Failed sign-ins are throttled per account and per client in the database
(:mod:`plugdock.host.throttle`): past the limit the answer is 429 with ``Retry-After``.

The panel's state carries :func:`authenticate` (``PanelState.authenticate``); from then on
``plugdock.sdk.current_user`` / ``require_admin`` work for core and plugin routes::

    token = httpx.post(f"{base}/api/v1/auth/login",
                       json={"username": "admin", "password": pw}).json()["access_token"]
    httpx.get(f"{base}/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import stat
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

import jwt
from fastapi import APIRouter, HTTPException, Query, Request, Response, status
from pydantic import BaseModel, Field
from sqlalchemy import Engine, update

from plugdock import sdk
from plugdock.config import Settings
from plugdock.core.db import connect_read, make_engine, stored_secret, users
from plugdock.errors import PlugdockError
from plugdock.host import devices, sessions, throttle
from plugdock.host import users as user_store
from plugdock.host.passwords import hash_password, needs_rehash, verify_dummy, verify_password
from plugdock.host.state import AuthConfig, panel_state
from plugdock.instance import audit, outbox

log = logging.getLogger(__name__)

ALGORITHM = "HS256"
ISSUER = "plugdock"
MIN_SECRET_BYTES = 32
BAD_CREDENTIALS = "Incorrect username or password"
_BEARER = {"WWW-Authenticate": "Bearer"}
_INVALID_TOKEN = {"WWW-Authenticate": 'Bearer error="invalid_token"'}
_USER_STATE = "plugdock_user"
_SESSION_STATE = "plugdock_session_id"

SESSION_COOKIE = "plugdock_session"
CSRF_COOKIE = "plugdock_csrf"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FAILED = "CSRF token missing or invalid"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class TokenError(Exception):
    """A token that is malformed, badly signed, expired, or not ours. ``str`` says which."""


# -- the signing key -----------------------------------------------------------------------


SECRET_KEY_NAME = "token_signing_key"  # its row in plugdock_secrets


def load_secret_key(settings: Settings, engine: Engine | None = None) -> str:
    """The token-signing key of the instance (see the module docstring).

    Never a file one machine made: replicas share only the database, so the key lives
    there. The first process to need it inserts it (the primary key makes a second insert
    fail, and that process then reads the winner's key), so every worker and replica
    signs with the same key. ``engine`` defaults to one for ``settings.db_url``.
    """
    if settings.secret_key is not None:
        key = settings.secret_key.get_secret_value()
        if len(key.encode()) < MIN_SECRET_BYTES:
            raise PlugdockError(
                f"PLUGDOCK_SECRET_KEY must be at least {MIN_SECRET_BYTES} bytes long"
            )
        return key
    own = engine is None
    engine = engine or make_engine(settings.db_url)
    try:
        legacy = settings.secret_key_path  # a single-machine instance's key from before
        stored = stored_secret(
            engine,
            SECRET_KEY_NAME,
            lambda: _read_key_file(legacy) if legacy.exists() else secrets.token_urlsafe(48),
        )
        if len(stored) < MIN_SECRET_BYTES:
            raise PlugdockError("the database holds no usable token-signing key")
        return stored
    finally:
        if own:
            engine.dispose()


def _read_key_file(path: Path) -> str:
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("%s is readable by other users (mode %o); chmod 600 it", path, mode & 0o777)
    key = path.read_text(encoding="ascii").strip()
    if len(key) < MIN_SECRET_BYTES:
        raise PlugdockError(f"{path} holds a key shorter than {MIN_SECRET_BYTES} bytes")
    return key


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
    session_id: str | None = None,
) -> str:
    """A signed token for ``user`` and its session, valid for ``minutes`` from ``now``.

    Without ``session_id`` the token names no session and is refused by :func:`authenticate`.
    """
    issued = now or datetime.now(UTC)
    claims = {
        "sub": str(user.id),
        "name": user.username,
        "pwd": password_stamp(user.password_hash),
        "iss": ISSUER,
        "iat": issued,
        "exp": issued + timedelta(minutes=minutes),
    }
    if session_id is not None:
        claims["sid"] = session_id
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def decode_access_token(token: str, secret: str) -> dict[str, Any]:
    """The claims of a valid token; TokenError("expired" or why it is invalid) otherwise."""
    try:
        return jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            issuer=ISSUER,
            options={"require": ["sub", "exp", "iat", "iss", "pwd", "sid"]},
        )
    except jwt.ExpiredSignatureError:
        raise TokenError("expired") from None
    except jwt.InvalidTokenError as error:
        raise TokenError(str(error) or "invalid") from None


def csrf_token(session_id: str, secret: str) -> str:
    """The CSRF token of a session: an HMAC of its id, so only the server can make one."""
    digest = hmac.new(secret.encode(), f"csrf:{session_id}".encode(), hashlib.sha256)
    return digest.hexdigest()


# -- per-app state -------------------------------------------------------------------------


_config_lock = threading.Lock()


def auth_config(app: Any) -> AuthConfig:
    """The signing key, token lifetime and cookie policy for ``app``, read once."""
    state = panel_state(app)
    config = state.auth_config
    if config is None:
        with _config_lock:
            config = state.auth_config
            if config is None:
                settings = state.settings
                config = AuthConfig(
                    load_secret_key(settings, state.engine),
                    settings.token_minutes,
                    settings.cookie_secure,
                )
                state.auth_config = config
    return config


def _engine(request: Request) -> Any:
    return sdk.host_state(request.app).engine


def throttle_limits(app: Any) -> throttle.Limits:
    """The sign-in limits of ``app`` (``PanelState.login_limits``)."""
    return panel_state(app).login_limits


# -- authenticate: what the panel's state gives the SDK -------------------------------------


def _invalid(detail: str) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail, _INVALID_TOKEN)


def _credentials(request: Request) -> tuple[str, bool] | None:
    """The token of the request and whether it came from the session cookie; None: none."""
    header = request.headers.get("authorization")
    if header:
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED, "Invalid authorization header", _BEARER
            )
        return token, False
    cookie = request.cookies.get(SESSION_COOKIE)
    return (cookie, True) if cookie else None


def authenticate(request: Request) -> sdk.User | None:
    """The user the request's bearer token or session cookie names, or None without either.

    A bearer header wins over the cookie. A token that is present but invalid, expired,
    issued before the user's last password change, of an ended session, or names a
    missing or inactive user is answered with 401 (``WWW-Authenticate: Bearer
    error="invalid_token"``) rather than treated as anonymous, so a client learns that it
    must sign in again. A cookie-authenticated unsafe request (POST, PUT, PATCH, DELETE)
    without the session's ``X-CSRF-Token`` is answered 403. The result is cached on
    ``request.state`` for the rest of the request.
    """
    cached = getattr(request.state, _USER_STATE, False)  # False: not looked up yet
    if cached is None or isinstance(cached, sdk.User):
        return cached
    credentials = _credentials(request)
    if credentials is None:
        return None
    token, from_cookie = credentials
    config = auth_config(request.app)
    try:
        claims = decode_access_token(token, config.secret)
        user_id = int(claims["sub"])
        session_id = str(claims["sid"])
    except (TokenError, ValueError) as error:
        raise _invalid(
            "Token has expired" if str(error) == "expired" else "Invalid token"
        ) from None
    if from_cookie and request.method not in _SAFE_METHODS:
        sent = request.headers.get(CSRF_HEADER, "")
        if not hmac.compare_digest(sent.encode(), csrf_token(session_id, config.secret).encode()):
            raise HTTPException(status.HTTP_403_FORBIDDEN, CSRF_FAILED)
    with connect_read(_engine(request)) as conn:
        found = sessions.user_of_session(conn, user_id, session_id)
    if found is None or not found[0].is_active:
        raise _invalid("User not found or inactive")
    row, live = found
    if not hmac.compare_digest(str(claims["pwd"]), password_stamp(row.password_hash)):
        raise _invalid("Token revoked by a password change")
    if not live:
        raise _invalid("Session ended; sign in again")
    user = user_store.record_of(row).as_sdk_user()
    setattr(request.state, _USER_STATE, user)
    setattr(request.state, _SESSION_STATE, session_id)
    return user


# -- sign-in -------------------------------------------------------------------------------


class LoginRequest(BaseModel):
    username: str = Field(..., min_length=1, max_length=256, examples=["admin"])
    password: str = Field(..., min_length=1, max_length=user_store.MAX_PASSWORD_LENGTH)
    device_token: str | None = Field(
        None,
        max_length=devices.MAX_TOKEN_LENGTH,
        description="The device_token of this client's last sign-in to the account: "
        "wrong guesses from elsewhere do not lock it out.",
    )


class TokenResponse(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int = Field(..., description="Seconds until the token expires.")
    device_token: str = Field(
        ..., description="Send it as device_token with this account's next sign-in."
    )


class SessionResponse(BaseModel):
    csrf_token: str = Field(
        ..., description=f"Send it as {CSRF_HEADER} with every POST/PUT/PATCH/DELETE."
    )
    expires_in: int = Field(..., description="Seconds until the session expires.")


router = APIRouter(prefix="/api/v1/auth", tags=["auth"])

# argon2 takes 64 MiB per check: bound how many run at once, whatever the thread pool.
_ARGON2_SLOTS = threading.BoundedSemaphore(4)
_THROTTLED: dict[int | str, dict[str, Any]] = {
    429: {"description": "Too many failed sign-ins (see Retry-After)"}
}


class _SignedIn(NamedTuple):
    token: str
    session_id: str
    device_token: str
    config: AuthConfig


def _sign_in(body: LoginRequest, request: Request) -> _SignedIn:
    """Check the credentials (throttled); a new session, its token and a device token."""
    engine = _engine(request)
    config = auth_config(request.app)
    client = request.client.host if request.client else None
    with connect_read(engine) as conn:
        record = user_store.get_by_username(conn, body.username)
    device = None
    if record is not None:  # a client that signed in to this account before: its own budget
        presented = body.device_token or request.cookies.get(devices.DEVICE_COOKIE)
        device = devices.recognise(config.secret, presented, record.id)
    if device is not None:
        account: str | None = devices.bucket(device)
    else:
        account = f"{throttle.ACCOUNT_PREFIX}{record.id}" if record else None
    # Reserve the attempt before any password is checked: parallel guesses cannot overtake.
    try:
        reservation = throttle.reserve(
            engine, throttle.client_key(client), account, throttle_limits(request.app)
        )
    except throttle.Throttled as error:
        log.warning("sign-in refused for %r from %s: %s", body.username[:64], client, error)
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            f"Too many failed sign-ins; try again in {error.retry_after} s",
            {"Retry-After": str(error.retry_after)},
        ) from None
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
    if reason is not None:  # the reserved attempt stays counted
        with engine.begin() as conn:
            audit.record(
                conn,
                actor=None,  # anonymous: the name is only what the client claimed
                action=audit.LOGIN_FAILED,
                detail={"reason": reason, "client": client, "username": body.username[:64]},
            )
        log.warning("failed login for %r from %s: %s", body.username[:64], client, reason)
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, BAD_CREDENTIALS, _BEARER)
    assert record is not None
    with engine.begin() as conn:
        throttle.release(conn, reservation)  # only this attempt: other counts stay
        if needs_rehash(record.password_hash):
            new_hash = hash_password(body.password)
            conn.execute(
                update(users).where(users.c.id == record.id).values(password_hash=new_hash)
            )
            record = user_store.UserRecord(
                record.id, record.username, record.role, True, record.created_at, new_hash
            )
        session_id = sessions.create_session(conn, record.id, minutes=config.token_minutes)
        audit.record(
            conn,
            actor=record.username,
            action=audit.LOGIN,
            detail={"client": client, "known_device": device is not None},
        )
        outbox.emit(
            conn,
            user_store.USER_SIGNED_IN,
            1,
            user_store.UserEvent(
                user_id=record.id, username=record.username, role=record.role
            ).model_dump(),
            f"user:{record.id}",
        )
    token = create_access_token(
        record, config.secret, minutes=config.token_minutes, session_id=session_id
    )
    device_token = devices.issue(config.secret, record.id, device=device)
    return _SignedIn(token, session_id, device_token, config)


@router.post(
    "/login",
    response_model=TokenResponse,
    responses={401: {"description": BAD_CREDENTIALS}, **_THROTTLED},
    summary="Sign in with username and password; returns a bearer token (API clients)",
)
def login(body: LoginRequest, request: Request) -> TokenResponse:
    signed_in = _sign_in(body, request)
    return TokenResponse(
        access_token=signed_in.token,
        expires_in=int(signed_in.config.token_minutes * 60),
        device_token=signed_in.device_token,
    )


def _secure(request: Request, config: AuthConfig) -> bool:
    return (
        config.cookie_secure if config.cookie_secure is not None else request.url.scheme == "https"
    )


@router.post(
    "/session",
    response_model=SessionResponse,
    responses={401: {"description": BAD_CREDENTIALS}, **_THROTTLED},
    summary="Sign in the web UI: sets an HttpOnly session cookie; returns the CSRF token",
)
def create_browser_session(
    body: LoginRequest, request: Request, response: Response
) -> SessionResponse:
    token, session_id, device_token, config = _sign_in(body, request)
    seconds = int(config.token_minutes * 60)
    secure = _secure(request, config)
    csrf = csrf_token(session_id, config.secret)
    response.set_cookie(  # outlives the session and sign-out: it only says "seen before"
        devices.DEVICE_COOKIE,
        device_token,
        max_age=devices.DEVICE_SECONDS,
        path=router.prefix,  # sent to the sign-in routes only
        secure=secure,
        httponly=True,
        samesite="strict",
    )
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=seconds,
        path="/",
        secure=secure,
        httponly=True,
        samesite="strict",
    )
    response.set_cookie(
        CSRF_COOKIE,
        csrf,
        max_age=seconds,
        path="/",
        secure=secure,
        httponly=False,
        samesite="strict",
    )
    response.headers["Cache-Control"] = "no-store"
    return SessionResponse(csrf_token=csrf, expires_in=seconds)


@router.post(
    "/logout",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={403: {"description": CSRF_FAILED}},
    summary="Sign out: end this session (or every session of the user) and clear the cookies",
)
def logout(
    request: Request,
    everywhere: bool = Query(False, description="End every session of the user."),
) -> Response:
    try:
        user = authenticate(request)
    except HTTPException as error:
        if error.status_code != status.HTTP_401_UNAUTHORIZED:
            raise
        user = None  # already signed out or expired: just clear the cookies
    if user is not None:
        session_id = getattr(request.state, _SESSION_STATE)
        with _engine(request).begin() as conn:
            if everywhere:
                sessions.end_user_sessions(conn, int(user.id))
            else:
                sessions.end_session(conn, session_id)
            audit.record(
                conn,
                actor=user.username,
                action=user_store.LOGOUT,
                detail={"everywhere": everywhere},
            )
    response = Response(status_code=status.HTTP_204_NO_CONTENT)
    secure = _secure(request, auth_config(request.app))
    for name, httponly in ((SESSION_COOKIE, True), (CSRF_COOKIE, False)):
        response.delete_cookie(name, path="/", secure=secure, httponly=httponly, samesite="strict")
    return response
