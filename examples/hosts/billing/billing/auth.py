"""Billing's own sign-in: argon2 password hashes, a session table and an HttpOnly cookie.

``POST /api/auth/sign-in`` sets the ``billing_session`` cookie (SameSite=Strict: a
cross-site request never carries it), ``POST /api/auth/sign-out`` ends the session,
``GET /api/auth/me`` says who is signed in. Routes use :data:`SignedIn` / :data:`Admin`.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta
from typing import Annotated

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from fastapi import APIRouter, Cookie, Depends, HTTPException, Response
from pydantic import BaseModel
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from billing.db import get_db
from billing.models import Account, AuthSession, utcnow

COOKIE = "billing_session"
SESSION_LIFETIME = timedelta(hours=12)
hasher = PasswordHasher()
# Verified when the email is unknown, so a wrong email takes as long as a wrong password.
_DUMMY_HASH = hasher.hash("not a password of anyone")

router = APIRouter(prefix="/api/auth", tags=["auth"])


def hash_password(password: str) -> str:
    return hasher.hash(password)


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def optional_account(
    session: Annotated[str | None, Cookie(alias=COOKIE)] = None,
    db: Session = Depends(get_db),
) -> Account | None:
    """The account of the request's session cookie, or None (no cookie, unknown, expired)."""
    if not session:
        return None
    found = db.get(AuthSession, _token_hash(session))
    if found is None or found.expires_at < utcnow():
        return None
    return found.account


def signed_in(account: Account | None = Depends(optional_account)) -> Account:
    if account is None:
        raise HTTPException(401, "sign in first")
    return account


def admin(account: Account = Depends(signed_in)) -> Account:
    if not account.is_admin:
        raise HTTPException(403, "only an admin may do this")
    return account


SignedIn = Annotated[Account, Depends(signed_in)]
Admin = Annotated[Account, Depends(admin)]


class SignIn(BaseModel):
    email: str
    password: str


class Me(BaseModel):
    id: int
    email: str
    is_admin: bool


@router.post("/sign-in")
def sign_in(body: SignIn, response: Response, db: Session = Depends(get_db)) -> Me:
    account = db.scalar(select(Account).where(Account.email == body.email.strip().lower()))
    try:
        hasher.verify(account.password_hash if account else _DUMMY_HASH, body.password)
    except (VerificationError, InvalidHashError):
        account = None
    if account is None:
        raise HTTPException(401, "wrong email or password")
    token = secrets.token_urlsafe(32)
    db.execute(delete(AuthSession).where(AuthSession.expires_at < utcnow()))
    db.add(
        AuthSession(
            token_hash=_token_hash(token),
            account_id=account.id,
            expires_at=utcnow() + SESSION_LIFETIME,
        )
    )
    db.commit()
    response.set_cookie(
        COOKIE,
        token,
        max_age=int(SESSION_LIFETIME.total_seconds()),
        httponly=True,
        samesite="strict",
        path="/",
    )
    return Me(id=account.id, email=account.email, is_admin=account.is_admin)


@router.post("/sign-out", status_code=204)
def sign_out(
    response: Response,
    session: Annotated[str | None, Cookie(alias=COOKIE)] = None,
    db: Session = Depends(get_db),
) -> None:
    if session:
        db.execute(delete(AuthSession).where(AuthSession.token_hash == _token_hash(session)))
        db.commit()
    response.delete_cookie(COOKIE, path="/")


@router.get("/me")
def me(account: SignedIn) -> Me:
    return Me(id=account.id, email=account.email, is_admin=account.is_admin)
