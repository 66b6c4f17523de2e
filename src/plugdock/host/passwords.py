"""Password hashing: argon2id with argon2-cffi's defaults (RFC 9106 "low memory": 64 MiB, t=3).

::

    stored = hash_password("correct horse")
    verify_password(stored, "correct horse")   # True
    verify_password(stored, "wrong")           # False
"""

from __future__ import annotations

from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()


def hash_password(password: str) -> str:
    """The argon2id PHC string for ``password`` (salted; differs on every call)."""
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """Whether ``password`` matches ``password_hash``; False also for a malformed hash."""
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    """True when the hash was made with weaker parameters than today's (rehash at login)."""
    try:
        return _hasher.check_needs_rehash(password_hash)
    except InvalidHashError:
        return True


@cache
def _dummy_hash() -> str:
    return _hasher.hash("plugdock: no such user")


def verify_dummy(password: str) -> None:
    """Spend the time of one verification, for a user that does not exist (no timing oracle)."""
    verify_password(_dummy_hash(), password)
